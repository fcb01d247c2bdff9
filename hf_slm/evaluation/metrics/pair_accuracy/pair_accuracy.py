"""Minimal-pair accuracy (sWUGGY / sBLIMP / spoken StoryCloze): how often the LM prefers the good side of a pair.

Self-contained `evaluate` module (numpy only): load it offline with
``evaluate.load("hf_slm/evaluation/metrics/pair_accuracy")`` or ``hf_slm.evaluation.load_metric("pair_accuracy")``.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Accuracy over minimal pairs scored by a language model. Each pair gives the negative log-likelihood (NLL, lower =
more likely) of its good side (a real word, a grammatical sentence, the true story ending) and of its bad side. The
pair is right when `good_nll < bad_nll`, wrong when `good_nll > bad_nll`, and counts 0.5 on a tie (ZeroSpeech 2021's
rule, so a constant scorer gets 50%, never 100%).
"""

_KWARGS_DESCRIPTION = """
Args:
    good_nll (`list[float]`): NLL of the good side of each pair (summed or length-normalised, the same for both).
    bad_nll (`list[float]`): NLL of the bad side, in the same order.
    categories (`list[str]`, *optional*): a category per pair (e.g. `"lexical"`, `"agreement_attractor"`); adds a
        per-category accuracy.
Returns:
    accuracy (`float`): mean of the per-pair scores (1, 0.5 or 0).
    n (`int`): number of pairs.
    per_category (`dict[str, dict]`, only with `categories`): `{category: {"accuracy", "n"}}`.
Examples:
    >>> import evaluate  # doctest: +SKIP
    >>> metric = evaluate.load("hf_slm/evaluation/metrics/pair_accuracy")  # doctest: +SKIP
    >>> metric.compute(good_nll=[1.0, 2.0, 3.0], bad_nll=[2.0, 1.0, 3.0])["accuracy"]  # doctest: +SKIP
    0.5
"""


def pair_scores(good_nll, bad_nll) -> np.ndarray:
    """Per-pair score: 1 when the good side is more likely, 0.5 on a tie, 0 otherwise."""
    good = np.asarray(good_nll, dtype=np.float64)
    bad = np.asarray(bad_nll, dtype=np.float64)
    if good.shape != bad.shape or good.ndim != 1:
        raise ValueError(f"good_nll and bad_nll must be 1-D lists of one length, got {good.shape} and {bad.shape}")
    if not (np.isfinite(good).all() and np.isfinite(bad).all()):
        raise ValueError("good_nll / bad_nll contain NaN or inf")
    return (good < bad).astype(np.float64) + 0.5 * (good == bad)


def pair_accuracy(good_nll, bad_nll, categories=None) -> dict:
    """Accuracy over pairs (see the module docstring); also per category when `categories` is given."""
    scores = pair_scores(good_nll, bad_nll)
    if scores.size == 0:
        raise ValueError("no pairs to score")
    result = {"accuracy": float(scores.mean()), "n": int(scores.size)}
    if categories is not None:
        categories = list(categories)
        if len(categories) != scores.size:
            raise ValueError(f"got {len(categories)} categories for {scores.size} pairs")
        result["per_category"] = {
            name: {"accuracy": float(scores[[c == name for c in categories]].mean()), "n": categories.count(name)}
            for name in sorted(set(categories))
        }
    return result


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PairAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Nguyen et al., 2020, The Zero Resource Speech Benchmark 2021 (sWUGGY, sBLIMP).",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"good_nll": datasets.Value("float64"), "bad_nll": datasets.Value("float64")}),
        )

    def _compute(self, good_nll, bad_nll, categories=None):
        return pair_accuracy(good_nll, bad_nll, categories)


__all__ = ["PairAccuracy", "pair_accuracy", "pair_scores"]
