"""VERT: how repetitive generated unit (or word) sequences are, within and across generations (GSLM).

Self-contained `evaluate` module (numpy only): ``evaluate.load("hf_slm/evaluation/metrics/vert")`` or
``hf_slm.evaluation.load_metric("vert")``.
"""

from __future__ import annotations

from collections import Counter

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
VERT (Lakhotia et al., 2021, GSLM) is the geometric mean of two k-gram repetition rates of a set of generations:

- auto-BLEU (within a generation): for each k = 1..max_k, the fraction of the k-grams of a sequence that occur
  again elsewhere in the same sequence; the k rates are combined by a geometric mean, then averaged over sequences.
  A loop ("a b a b a b") scores near 1, a sequence with no repeated k-gram scores 0.
- self-BLEU (across generations): for each k, the clipped fraction of a sequence's k-grams found in the other
  sequences (BLEU's modified precision with the others as references, without brevity penalty or smoothing);
  geometric mean over k, averaged over sequences. Identical generations score 1.

VERT = sqrt(auto-BLEU x self-BLEU): low for diverse, non-looping output; GSLM plots perplexity against VERT over
sampling temperatures.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[int]]`): the generated sequences (units, or word ids).
    max_k (`int`, defaults to 2): longest k-gram (GSLM uses 2).
Returns:
    vert, auto_bleu, self_bleu (`float`): see above (self_bleu needs at least 2 sequences; with 1, it and vert are NaN).
    auto_bleu_k (`list[float]`): the auto-BLEU rate of each k, averaged over sequences.
Examples:
    >>> import evaluate  # doctest: +SKIP
    >>> vert = evaluate.load("hf_slm/evaluation/metrics/vert")  # doctest: +SKIP
    >>> vert.compute(predictions=[[1, 2, 1, 2], [3, 4, 5, 6]], max_k=1)["auto_bleu"]  # doctest: +SKIP
    0.5
"""


def _kgrams(sequence, k: int) -> list[tuple]:
    return [tuple(sequence[i : i + k]) for i in range(len(sequence) - k + 1)]


def auto_bleu_rates(sequence, max_k: int = 2) -> list[float]:
    """For k = 1..max_k: the fraction of k-gram positions whose k-gram occurs at another position (NaN if none)."""
    rates = []
    for k in range(1, max_k + 1):
        grams = _kgrams(list(sequence), k)
        counts = Counter(grams)
        rates.append(float(np.mean([counts[g] > 1 for g in grams])) if grams else float("nan"))
    return rates


def self_bleu_rates(sequence, others, max_k: int = 2) -> list[float]:
    """For k = 1..max_k: clipped fraction of the sequence's k-grams found in any of `others` (NaN if none)."""
    rates = []
    for k in range(1, max_k + 1):
        grams = Counter(_kgrams(list(sequence), k))
        if not grams:
            rates.append(float("nan"))
            continue
        reference = Counter()
        for other in others:
            reference |= Counter(_kgrams(list(other), k))  # max count over references (BLEU's clipping)
        matched = sum(min(count, reference[g]) for g, count in grams.items())
        rates.append(matched / sum(grams.values()))
    return rates


def _geometric_mean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any():
        return float("nan")
    return float(np.exp(np.mean(np.log(np.maximum(values, 1e-12))))) if values.min() > 0 else 0.0


def vert(predictions, max_k: int = 2) -> dict:
    """VERT, auto-BLEU and self-BLEU of a set of sequences (see the module docstring)."""
    if isinstance(max_k, bool) or not isinstance(max_k, int) or max_k < 1:
        raise ValueError(f"max_k must be a positive int, got {max_k!r}")
    sequences = [list(p) for p in predictions]
    if not sequences:
        raise ValueError("no sequences given")
    too_short = [i for i, s in enumerate(sequences) if len(s) < max_k]
    if too_short:
        raise ValueError(f"sequence(s) {too_short[:5]} are shorter than max_k={max_k}")
    auto = np.array([auto_bleu_rates(s, max_k) for s in sequences])
    auto_bleu = float(np.mean([_geometric_mean(r) for r in auto]))
    if len(sequences) > 1:
        self_rates = [self_bleu_rates(s, sequences[:i] + sequences[i + 1 :], max_k) for i, s in enumerate(sequences)]
        self_bleu = float(np.mean([_geometric_mean(r) for r in self_rates]))
    else:
        self_bleu = float("nan")
    return {
        "vert": float(np.sqrt(auto_bleu * self_bleu)),
        "auto_bleu": auto_bleu,
        "self_bleu": self_bleu,
        "auto_bleu_k": auto.mean(0).tolist(),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Vert(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lakhotia et al., 2021, On Generative Spoken Language Modeling from Raw Audio (GSLM).",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("int64"))}),
        )

    def _compute(self, predictions, max_k=2):
        return vert(predictions, max_k=max_k)


__all__ = ["Vert", "auto_bleu_rates", "self_bleu_rates", "vert"]
