"""Unit-to-phone purity / PNMI on espeak-ng phone alignments (`hf_slm.evaluation.unit_purity`)."""

from __future__ import annotations

import numpy as np
import pytest

from hf_slm.data import EspeakSynthesizer, load_text_corpus
from hf_slm.evaluation.unit_purity import (
    SILENCE,
    build_phone_items,
    evaluate_unit_purity,
    frame_phone_labels,
    unit_phone_statistics,
)


def test_phoneme_events_leave_audio_unchanged_and_cover_it():
    synthesizer = EspeakSynthesizer("en-us", rate=170)
    plain = synthesizer.synthesize("the cat sat on a mat")
    timed = synthesizer.synthesize("the cat sat on a mat", phonemes=True)
    np.testing.assert_array_equal(plain.waveform, timed.waveform)
    assert plain.phones == [] and ["k", "a", "t"] == timed.phones[2:5]
    assert timed.phone_start == sorted(timed.phone_start) and 0 <= timed.phone_start[0] < timed.phone_start[-1] <= timed.duration


def test_frame_labels_take_the_phone_at_each_frame_centre():
    # frames of 320 samples hop / 400 window at 16 kHz: centres at 12.5 ms, 32.5 ms, 52.5 ms, ...
    labels = frame_phone_labels(["_", "k", "a", "_:"], [0.0, 0.03, 0.05, 0.1], 6, 320, 400, 16000)
    assert labels == [SILENCE, "k", "a", "a", "a", SILENCE]
    assert frame_phone_labels(["k"], [0.05], 2, 320, 400, 16000) == [SILENCE, SILENCE]


def test_statistics_of_perfect_split_and_independent_units():
    phones = [["a", "a", "b", "b", "c", "c"]]
    perfect = unit_phone_statistics([np.array([0, 0, 1, 1, 2, 2])], phones)
    assert perfect["phone_purity"] == perfect["cluster_purity"] == pytest.approx(1.0) and perfect["pnmi"] == pytest.approx(1.0)
    split = unit_phone_statistics([np.array([0, 1, 2, 3, 4, 5])], phones)  # every unit pure, each phone on two units
    assert split["phone_purity"] == pytest.approx(1.0) and split["cluster_purity"] == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    noise = unit_phone_statistics([rng.integers(0, 5, 20000)], [list(rng.choice(["a", "b", "c"], 20000))])
    assert noise["pnmi"] < 0.01 and noise["phone_purity"] < 0.4
    with pytest.raises(ValueError, match="utterance 0: 3 units but 6"):
        unit_phone_statistics([np.array([0, 1, 2])], phones)


def test_default_units_carry_phone_information_that_shuffling_destroys():
    from hf_slm.pipelines.loading import load_speech_tokenizer

    fe, tokenizer = load_speech_tokenizer("default")
    # enough frames that 500 units are not each seen about once (PNMI of a handful of frames is ~1 for any labels:
    # two sentences gave 0.945 against 0.884 shuffled; these 1,860 frames 0.80 against 0.60)
    texts = load_text_corpus("builtin", limit=12, seed=3)
    items = build_phone_items(texts, voices=("en-us", "en-gb"), rates=(170,))
    scores = evaluate_unit_purity(fe, tokenizer.eval(), items)
    assert scores["num_frames"] > 3 * tokenizer.config.num_units and scores["num_phones"] > 8
    shuffled = [dict(item, phones=list(np.random.default_rng(0).permutation(item["phones"]))) for item in items]
    baseline = evaluate_unit_purity(fe, tokenizer, shuffled)
    assert scores["pnmi"] > baseline["pnmi"] + 0.1 and scores["phone_purity"] > baseline["phone_purity"]


def test_evaluate_purity_command_scores_a_tokenizer_folder(tmp_path):
    import json

    from hf_slm.cli import main
    from hf_slm.pipelines.loading import load_speech_tokenizer

    fe, tokenizer = load_speech_tokenizer("default")
    tokenizer.save_pretrained(tmp_path / "tok")
    fe.save_pretrained(tmp_path / "tok")
    texts = tmp_path / "texts.txt"
    texts.write_text("a cat sat on the mat\nthe dog ran home\n")
    out = tmp_path / "purity.json"
    assert main(["evaluate", "purity", "--pipeline", str(tmp_path / "tok"), "--texts", str(texts), "--voices", "en-us",
                 "--rates", "170", "--output", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    items = build_phone_items(["a cat sat on the mat", "the dog ran home"], voices=("en-us",), rates=(170,))
    expected = evaluate_unit_purity(fe, tokenizer.eval(), items)
    assert {k: result[k] for k in expected} == pytest.approx(expected)
