"""Prosody (pGSLM), STOI, PESQ and speaker similarity on constructed inputs with hand-checked values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_slm.evaluation import load_metric
from hf_slm.evaluation.metrics.prosody.prosody import (
    consistency,
    expressiveness,
    f0_from_audio,
    log_f0_mae,
    min_mae,
)
from hf_slm.evaluation.metrics.stoi.stoi import stoi

from evaluation_helpers import synthesize


@pytest.fixture(scope="module")
def speech():
    """Two espeak-ng utterances of one sentence: a male and a female voice (16 kHz)."""
    text = "The quick brown fox jumps over the lazy dog near the river bank."
    male, female = (synthesize([text], voice=v)[0] for v in ("en-us+m3", "en-us+f2"))
    return male, female


@pytest.fixture(scope="module")
def other_sentence():
    """Another sentence in the same male voice as `speech`'s first utterance."""
    return synthesize(["She sells sea shells by the sea shore every summer."], voice="en-us+m3")[0]


# ---------------------------------------------------------------------------------------------------------- prosody
CONTOUR = [0.0, 100.0, 120.0, 0.0, 150.0, 110.0, 90.0, 0.0]


def test_log_f0_mae_identical_is_zero_and_an_octave_is_log2():
    assert log_f0_mae(CONTOUR, CONTOUR) == 0.0
    assert log_f0_mae([2 * f for f in CONTOUR], CONTOUR) == pytest.approx(math.log(2))
    # frames voiced in one contour only are ignored; the longer contour is cut
    assert log_f0_mae([100.0, 0.0, 200.0, 50.0, 7.0], [200.0, 300.0, 0.0, 100.0]) == pytest.approx(math.log(2))
    assert math.isnan(log_f0_mae([0.0, 100.0], [100.0, 0.0]))


def test_min_mae_takes_the_closest_sample():
    samples = [[2 * f for f in CONTOUR], [4 * f for f in CONTOUR], [0.0] * 8]  # the silent sample shares no frame
    assert min_mae(samples, CONTOUR) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="no sample shares a voiced frame"):
        min_mae([[0.0] * 8], CONTOUR)


def test_expressiveness_is_the_ratio_of_log_f0_stds():
    reference = [100.0, 200.0, 0.0, 100.0, 200.0]  # voiced log-F0 std = log(2) / 2
    flatter = [100.0, 100.0 * 2**0.5, 0.0, 100.0, 100.0 * 2**0.5]  # std = log(2) / 4
    assert expressiveness([reference], reference) == pytest.approx(1.0)
    assert expressiveness([flatter], reference) == pytest.approx(0.5)
    assert expressiveness([flatter, reference], reference) == pytest.approx(0.75)
    assert expressiveness([[3 * f for f in reference]], reference) == pytest.approx(1.0)  # a transposition keeps it
    with pytest.raises(ValueError, match="constant"):
        expressiveness([reference], [100.0, 100.0])


def test_consistency_is_pearson_of_mean_log_f0():
    prompts = [[100.0, 0.0], [200.0, 200.0], [400.0, 0.0]]
    following = [[[150.0]], [[300.0], [300.0]], [[600.0]]]  # means follow the prompt's exactly (x 1.5)
    assert consistency(prompts, following) == pytest.approx(1.0)
    inverted = [[[600.0]], [[300.0]], [[150.0]]]
    assert consistency(prompts, inverted) == pytest.approx(-1.0)
    assert math.isnan(consistency(prompts[:1], following[:1]))  # one item: undefined


def test_prosody_metric_through_evaluate():
    reference = [100.0, 200.0, 0.0, 100.0, 200.0]
    out = load_metric("prosody").compute(
        prompts=[[100.0, 110.0], [200.0, 220.0]],
        continuations=[[[2 * f for f in reference], reference], [[2 * f for f in reference]]],
        references=[reference, reference],
    )
    assert out["min_mae_per_item"] == pytest.approx([0.0, math.log(2)], abs=1e-6)
    assert out["min_mae"] == pytest.approx(math.log(2) / 2, abs=1e-6)
    assert out["expressiveness"] == pytest.approx(1.0, abs=1e-5)
    assert out["consistency"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="item 0 has no sampled continuation"):
        load_metric("prosody").compute(prompts=[[100.0]], continuations=[[]], references=[[100.0]])


def test_f0_from_audio_tracks_a_tone():
    sr = 16000
    t = np.arange(sr // 2) / sr
    contour = np.array(f0_from_audio(0.5 * np.sin(2 * np.pi * 150.0 * t), sr))
    assert len(contour) == 25  # 50 frames per second
    assert np.median(contour[contour > 0]) == pytest.approx(150.0, rel=0.03)
    with pytest.raises(ValueError, match="mono"):
        f0_from_audio(np.zeros((2, 100)), sr)


# ------------------------------------------------------------------------------------------------------------- stoi
def test_stoi_of_clean_speech_is_one_and_of_noise_is_low(speech):
    clean, sr = np.asarray(speech[0]["array"], dtype=np.float64), speech[0]["sampling_rate"]
    noise = np.random.default_rng(0).standard_normal(len(clean)) * clean.std()
    assert stoi(clean, clean, sr) == pytest.approx(1.0, abs=1e-6)
    noisy, noisier, unrelated = (stoi(x, clean, sr) for x in (clean + noise, clean + 3 * noise, noise))
    assert 1.0 > noisy > noisier > unrelated  # 0 dB, -9.5 dB, noise alone
    assert unrelated < 0.45  # STOI's floor for unrelated signals (~0.4, from its clipping step), ...
    assert abs(stoi(noise, clean, sr, extended=True)) < 0.1  # ... which ESTOI does not have
    out = load_metric("stoi").compute(predictions=[clean, clean + noise], references=[clean, clean], sampling_rate=sr)
    assert out["stoi_per_item"] == pytest.approx([1.0, noisy], abs=1e-4)
    with pytest.raises(ValueError, match="0.4 s"):
        stoi(clean[: sr // 10], clean[: sr // 10], sr)


# ------------------------------------------------------------------------------------------------------------- pesq
def test_pesq_of_clean_speech_is_its_maximum_and_noise_lowers_it(speech):
    pytest.importorskip("pesq", reason="pesq is optional (hf_slm[eval]; it compiles C)")
    from hf_slm.evaluation.metrics.pesq.pesq import pesq

    clean, sr = np.asarray(speech[0]["array"], dtype=np.float64), speech[0]["sampling_rate"]  # 22.05 kHz: resampled
    noise = np.random.default_rng(0).standard_normal(len(clean)) * clean.std()
    assert pesq(clean, clean, sr) == pytest.approx(4.64, abs=0.01)  # P.862.2's ceiling
    assert pesq(clean, clean, sr, mode="nb") == pytest.approx(4.55, abs=0.01)  # P.862's
    light, heavy = pesq(clean + 0.1 * noise, clean, sr), pesq(clean + noise, clean, sr)  # 20 dB and 0 dB SNR
    assert 4.64 > light > heavy and heavy < 1.5
    out = load_metric("pesq").compute(predictions=[clean, clean + noise], references=[clean, clean], sampling_rate=sr)
    assert out["pesq_per_item"] == pytest.approx([pesq(clean, clean, sr), heavy], abs=1e-3)
    with pytest.raises(ValueError, match="silent"):
        pesq(np.zeros(sr), clean[:sr], sr)
    with pytest.raises(ValueError, match="mode"):
        pesq(clean, clean, sr, mode="swb")


# --------------------------------------------------------------------------------------------- speaker similarity
def test_speaker_similarity_same_voice_beats_another_voice(speech, other_sentence):
    pytest.importorskip("resemblyzer", reason="resemblyzer is optional (it bundles its speaker encoder)")
    from hf_slm.evaluation.metrics.speaker_similarity.speaker_similarity import speaker_similarity

    (male, female), sr = speech, other_sentence["sampling_rate"]
    same = speaker_similarity(other_sentence["array"], male["array"], sr)  # another sentence, same voice
    different = speaker_similarity(other_sentence["array"], female["array"], sr)
    assert speaker_similarity(male["array"], male["array"], sr) == pytest.approx(1.0, abs=1e-5)
    assert same > different + 0.1
    out = load_metric("speaker_similarity").compute(
        predictions=[other_sentence["array"]] * 2, references=[male["array"], female["array"]], sampling_rate=sr
    )
    assert out["speaker_similarity_per_item"] == pytest.approx([same, different], abs=1e-4)
    with pytest.raises(ValueError, match="no speech"):
        speaker_similarity(np.zeros(sr), male["array"], sr)
