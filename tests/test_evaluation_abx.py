"""ABX on synthesised items: features separate words far better than chance; a one-unit tokenizer is at chance."""

from __future__ import annotations

import pytest

from evaluation_helpers import fitted_tokenizer, one_torch_thread, synthesize, tiny_pipeline  # noqa: F401
from hf_slm import SpeechLMPipeline
from hf_slm.evaluation.abx import DEFAULT_ABX_WORDS, build_abx_items, evaluate_abx

WORDS = DEFAULT_ABX_WORDS[:4]


@pytest.fixture(scope="module")
def items():
    return build_abx_items(words=WORDS, voices=("en-us", "en-us+m3"))


def test_abx_items_cover_every_word_voice_and_rate(items):
    assert len(items) == 4 * 2 * 2
    assert {(i["label"], i["speaker"], i["rate"]) for i in items} == {
        (w, v, r) for w in WORDS for v in ("en-us", "en-us+m3") for r in (150, 200)
    }
    with pytest.raises(ValueError, match="at least 2 distinct words"):
        build_abx_items(words=["bat", "bat"])


def test_abx_of_espeak_words_is_far_below_chance(items):
    pipe = tiny_pipeline(list(WORDS) * 2, with_vocoder=False)
    features = evaluate_abx(pipe, items, "features")
    units = evaluate_abx(pipe, items, "units")
    for result in (features, units):
        assert 0 <= result["within_speaker_error"] < 0.25 and 0 <= result["between_speaker_error"] < 0.25
        # within: 2 voices x 12 ordered word pairs x (2 A x 2 B x 1 X); between: 2 x 12 x (2 x 2 x 2)
        assert result["within_speaker_triplets"] == 96 and result["between_speaker_triplets"] == 192
    assert features["distance"] == "cosine" and units["distance"] == "hamming"


def test_abx_of_a_single_unit_is_chance(items):
    """With one unit every frame is equal: every distance ties and ABX is exactly 0.5."""
    feature_extractor, tokenizer = fitted_tokenizer(synthesize(["bat"]), num_units=1)
    pipe = SpeechLMPipeline(feature_extractor=feature_extractor, speech_tokenizer=tokenizer)
    result = evaluate_abx(pipe, items, "units")
    assert result["within_speaker_error"] == 0.5 and result["between_speaker_error"] == 0.5
    with pytest.raises(ValueError, match="representation must be"):
        evaluate_abx(pipe, items, "spectrogram")
