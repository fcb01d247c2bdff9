"""Every shipped metric on tiny inputs with hand-checked values, through its function and through `evaluate.load`."""

from __future__ import annotations

import math

import evaluate
import numpy as np
import pytest

from hf_slm.evaluation import METRICS, load_metric, metric_path
from hf_slm.evaluation.metrics.abx.abx import abx, abx_from_distances, dtw_distance
from hf_slm.evaluation.metrics.error_rate.error_rate import edit_distance, error_rate
from hf_slm.evaluation.metrics.mel_distance.mel_distance import mel_distance
from hf_slm.evaluation.metrics.pair_accuracy.pair_accuracy import pair_accuracy
from hf_slm.evaluation.metrics.si_snr.si_snr import si_snr
from hf_slm.evaluation.metrics.unit_perplexity.unit_perplexity import perplexity
from hf_slm.evaluation.metrics.vert.vert import auto_bleu_rates, self_bleu_rates, vert


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_loads_offline_by_name_and_by_path(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert isinstance(load_metric(name), evaluate.Metric)
    folder, config = METRICS[name]
    assert isinstance(evaluate.load(metric_path(name), config), evaluate.Metric)


def test_unknown_metric_names_the_choices():
    with pytest.raises(ValueError, match="unknown metric 'bleu'.*vert"):
        metric_path("bleu")


# ---------------------------------------------------------------------------------------------------- pair accuracy
def test_pair_accuracy_counts_ties_half_and_per_category():
    out = load_metric("pair_accuracy").compute(good_nll=[1.0, 2.0, 3.0], bad_nll=[2.0, 1.0, 3.0], categories=list("aba"))
    assert out["accuracy"] == 0.5 and out["n"] == 3
    assert out["per_category"] == {"a": {"accuracy": 0.75, "n": 2}, "b": {"accuracy": 0.0, "n": 1}}


@pytest.mark.parametrize(
    "good, bad, match",
    [([1.0], [1.0, 2.0], "one length"), ([float("nan")], [1.0], "NaN"), ([], [], "no pairs")],
)
def test_pair_accuracy_rejects_bad_input(good, bad, match):
    with pytest.raises(ValueError, match=match):
        pair_accuracy(good, bad)


# ---------------------------------------------------------------------------------------------------- WER / CER
@pytest.mark.parametrize(
    "hyp, ref, distance",
    [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("abc", "abc", 0), ("ab", "ba", 2)],
)
def test_edit_distance(hyp, ref, distance):
    assert edit_distance(hyp, ref) == distance


def test_wer_and_cer_hand_checked():
    wer = load_metric("wer").compute(predictions=["the cat sat"], references=["The cat sat, down."])
    assert wer["wer"] == 0.25 and wer["errors"] == 1 and wer["reference_length"] == 4
    # corpus-level: (1 + 0) errors over (4 + 2) words, not the mean of per-utterance rates
    assert error_rate(["the cat sat", "a dog"], ["the cat sat down", "a dog"])["wer"] == pytest.approx(1 / 6)
    assert error_rate(["a b c"], ["x"])["wer"] == 3.0  # insertions can push WER above 1
    cer = load_metric("cer").compute(predictions=["abd"], references=["abc"])
    assert cer["cer"] == pytest.approx(1 / 3)


def test_error_rate_refuses_an_empty_reference():
    with pytest.raises(ValueError, match="reference 0 is empty"):
        error_rate(["a"], ["..."])


# ---------------------------------------------------------------------------------------------------- VERT
def test_vert_of_known_sequences():
    assert auto_bleu_rates([1, 2, 1, 2], max_k=2) == [1.0, pytest.approx(2 / 3)]
    assert auto_bleu_rates([1, 2, 3, 4], max_k=2) == [0.0, 0.0]
    # unigrams 2 and 3 occur in the others, 1 does not; of the bigrams (1, 2), (2, 3) only (2, 3) does
    assert self_bleu_rates([1, 2, 3], [[3, 9, 9], [2, 3, 9]], max_k=2) == [pytest.approx(2 / 3), 0.5]
    out = vert([[1, 2, 1, 2], [1, 2, 1, 2]], max_k=2)
    assert out["auto_bleu"] == pytest.approx(math.sqrt(2 / 3))
    assert out["self_bleu"] == pytest.approx(1.0)
    assert out["vert"] == pytest.approx((2 / 3) ** 0.25)
    diverse = vert([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert diverse["vert"] == 0.0 and diverse["auto_bleu"] == 0.0 and diverse["self_bleu"] == 0.0
    via_evaluate = load_metric("vert").compute(predictions=[[1, 2, 1, 2], [1, 2, 1, 2]], max_k=2)
    assert via_evaluate["vert"] == pytest.approx(out["vert"])


def test_vert_rejects_too_short_sequences():
    with pytest.raises(ValueError, match="shorter than max_k=2"):
        vert([[1], [1, 2]])


# ---------------------------------------------------------------------------------------------------- ABX
def test_dtw_distance_hand_checked():
    # cheapest cumulated path is the diagonal (1 + 4), averaged over its 2 steps
    assert dtw_distance(np.array([[1.0, 2.0], [3.0, 4.0]])) == pytest.approx(2.5)
    # a repeated frame costs nothing: |a - b| along the warped path is 0
    a, b = np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.0, 1.0, 2.0])
    assert dtw_distance(np.abs(a[:, None] - b[None, :])) == 0.0
    # batched with padding = one by one
    costs = np.random.default_rng(0).random((2, 4, 5))
    batched = dtw_distance(costs, lengths_a=[4, 2], lengths_b=[5, 3])
    assert batched[0] == pytest.approx(dtw_distance(costs[0]))
    assert batched[1] == pytest.approx(dtw_distance(costs[1, :2, :3]))


def _separable_items(seed=0):
    rng = np.random.default_rng(seed)
    features, labels, speakers = [], [], []
    for label, direction in (("a", [1.0, 0.0, 0.0]), ("b", [0.0, 1.0, 0.0]), ("c", [0.0, 0.0, 1.0])):
        for speaker in ("s1", "s2"):
            for _ in range(2):
                length = int(rng.integers(3, 8))
                features.append((np.array(direction) + 0.05 * rng.random((length, 3))).tolist())
                labels.append(label)
                speakers.append(speaker)
    return features, labels, speakers


def test_abx_of_a_trivially_separable_set_is_zero():
    features, labels, speakers = _separable_items()
    out = load_metric("abx").compute(features=features, labels=labels, speakers=speakers)
    assert out["within_speaker_error"] == 0.0 and out["between_speaker_error"] == 0.0
    # within: 2 speakers x 6 ordered category pairs x (2 A x 2 B x 1 X != A); between: 2 x 6 x (2 x 2 x 2)
    assert out["within_speaker_triplets"] == 2 * 6 * 4 and out["between_speaker_triplets"] == 2 * 6 * 8


def test_abx_of_an_inverted_distance_is_one_and_ties_are_half():
    labels, speakers = ["a", "a", "b", "b"], ["s", "s", "s", "s"]
    same = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=float)  # same category = far
    assert abx_from_distances(same, labels, speakers)["within_speaker_error"] == 1.0
    assert abx_from_distances(np.zeros((4, 4)), labels, speakers)["within_speaker_error"] == 0.5


def test_abx_needs_two_categories():
    with pytest.raises(ValueError, match="at least 2 categories"):
        abx([[[1.0]], [[1.0]]], ["a", "a"], ["s", "t"])


# ---------------------------------------------------------------------------------------------------- audio metrics
def test_si_snr_hand_checked():
    reference = np.array([1.0, -1.0, 1.0, -1.0])
    noise = 0.1 * np.array([1.0, 1.0, -1.0, -1.0])  # zero mean, orthogonal to the reference: SNR = 4 / 0.04
    assert si_snr(reference + noise, reference) == pytest.approx(20.0)
    assert si_snr(3 * (reference + noise), reference) == pytest.approx(20.0)  # scale-invariant
    out = load_metric("si_snr").compute(predictions=[reference + noise], references=[reference])
    assert out["si_snr"] == pytest.approx(20.0, abs=1e-4)
    with pytest.raises(ValueError, match="silent"):
        si_snr(reference, np.zeros(4))


def test_mel_distance_of_a_gain_is_its_log():
    wave = 0.5 * np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    assert mel_distance(wave, wave) == 0.0
    assert mel_distance(2 * wave, wave) == pytest.approx(math.log(2), abs=1e-4)
    assert mel_distance(2 * wave, wave, align="dtw") == pytest.approx(math.log(2), abs=1e-4)
    out = load_metric("mel_distance").compute(predictions=[2 * wave], references=[wave], sampling_rate=16000)
    assert out["mel_distance"] == pytest.approx(math.log(2), abs=1e-4)


def test_unit_perplexity_hand_checked():
    out = load_metric("unit_perplexity").compute(sum_nll=[2 * math.log(4), math.log(2)], num_tokens=[2, 1])
    assert out["perplexity"] == pytest.approx((4 * 4 * 2) ** (1 / 3))
    assert out["mean_perplexity"] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="positive"):
        perplexity([1.0], [0])
