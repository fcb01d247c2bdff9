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
