"""Resynthesis evaluation: pocketsphinx ASR (closed / open vocabulary), WER/CER of original vs resynthesised audio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from evaluation_helpers import one_torch_thread, synthesize, tiny_pipeline  # noqa: F401
from hf_slm.evaluation.metrics.error_rate.error_rate import error_rate
from hf_slm.data.real_speech import read_audio_dir
from hf_slm.evaluation.asr import PocketSphinxASR
from hf_slm.evaluation.resynthesis import evaluate_resynthesis

TEXTS = ["the small dog runs to the red house", "many horses work quickly"]


@pytest.fixture(scope="module")
def pipeline():
    return tiny_pipeline(TEXTS)


def test_closed_vocabulary_asr_recognises_espeak_words():
    words = ["yes", "no", "seven", "children"]
    asr = PocketSphinxASR(vocabulary=words + ["notawordxyz"])
    assert asr.vocabulary == sorted(words)  # words outside the pronouncing dictionary are dropped
    hypotheses = [asr.transcribe(a["array"], a["sampling_rate"]) for a in synthesize(words)]
    assert set(" ".join(hypotheses).split()) <= set(words)
    assert error_rate(hypotheses, words)["wer"] <= 0.25
    with pytest.raises(ValueError, match="none of the vocabulary words"):
        PocketSphinxASR(vocabulary=["qqqzzz"])


def test_a_transcript_does_not_depend_on_the_utterances_decoded_before_it():
    """The same audio gets the same transcript whatever was transcribed before it (a reused pocketsphinx decoder
    carried state between utterances: the WER of an original depended on the resynthesis decoded before it)."""
    texts = ["this quiet mouse near her cups swims", "her calm bakers beside our red tables dance",
             "these birds jump and many proud dogs dance"]  # the middle one changed after noise (seen)
    words = sorted({w for t in texts for w in t.split()})
    audio = synthesize(texts)
    fresh = [PocketSphinxASR(vocabulary=words).transcribe(a["array"], a["sampling_rate"]) for a in audio]
    asr = PocketSphinxASR(vocabulary=words)
    noise = (np.random.default_rng(0).standard_normal(48000) * 0.2).astype(np.float32)
    reused = []
    for a in audio:
        asr.transcribe(noise, 16000)
        reused.append(asr.transcribe(a["array"], a["sampling_rate"]))
    assert reused == fresh and any(fresh)


def test_resynthesis_reports_wer_cer_and_mel_distance(pipeline, tmp_path):
    result = evaluate_resynthesis(pipeline, TEXTS, output_dir=tmp_path)
    for key in ("wer_original", "wer_resynthesized", "cer_original", "cer_resynthesized", "mel_distance"):
        assert np.isfinite(result[key]) and result[key] >= 0
    assert result["n"] == 2 and len(result["items"]) == 2
    originals = [item["asr_original"] for item in result["items"]]
    assert result["wer_original"] == error_rate(originals, TEXTS)["wer"]
    # the tiny vocoder is untrained: its audio is noise, so the original must be recognised better
    assert result["wer_original"] < result["wer_resynthesized"]
    assert result["mel_distance"] > 0.5
    assert sorted(p.name for p in tmp_path.glob("*.wav"))[:2] == ["000_original.wav", "000_resynthesized.wav"]


def test_resynthesis_of_real_audio_with_transcripts(pipeline, tmp_path):
    for i, (text, audio) in enumerate(zip(TEXTS, synthesize(TEXTS))):
        sf.write(tmp_path / f"utt{i}.wav", audio["array"], audio["sampling_rate"], subtype="FLOAT")
        (tmp_path / f"utt{i}.txt").write_text(text + "\n")
    files, texts = read_audio_dir(tmp_path)
    assert texts == TEXTS
    from_files = evaluate_resynthesis(pipeline, texts, audio=files)
    from_text = evaluate_resynthesis(pipeline, TEXTS)
    assert from_files["wer_original"] == from_text["wer_original"]
    (tmp_path / "utt1.txt").unlink()
    with pytest.raises(FileNotFoundError, match="no transcript.*utt1.wav"):
        read_audio_dir(tmp_path)


def test_resynthesis_errors_name_the_problem(pipeline):
    with pytest.raises(ValueError, match="1 audio items for 2 texts"):
        evaluate_resynthesis(pipeline, TEXTS, audio=[synthesize(TEXTS[:1])[0]])
    with pytest.raises(ValueError, match="vocabulary must be"):
        evaluate_resynthesis(pipeline, TEXTS, vocabulary="big")
    no_vocoder = tiny_pipeline(TEXTS, with_vocoder=False)
    with pytest.raises(ValueError, match="needs a vocoder"):
        evaluate_resynthesis(no_vocoder, TEXTS)
