"""Perplexity of sequences from their summed negative log-likelihoods (e.g. continuations under a judge LM).

Self-contained `evaluate` module (numpy only): ``evaluate.load("hf_slm/evaluation/metrics/unit_perplexity")`` or
``hf_slm.evaluation.load_metric("unit_perplexity")``. (The Hub's `perplexity` downloads a text model; this one takes
the NLLs the speech LM already computed, e.g. `SpeechLMForCausalLM.log_likelihood`.)
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Corpus perplexity exp(sum of NLL / number of tokens) over all sequences (token-weighted, as a language model's
evaluation loss), plus the mean of the per-sequence perplexities. NLLs are in nats.
"""

_KWARGS_DESCRIPTION = """
Args:
    sum_nll (`list[float]`): summed NLL (nats) of each sequence's scored tokens.
    num_tokens (`list[int]`): how many tokens each sum covers (> 0).
Returns:
    perplexity (`float`): exp(sum(sum_nll) / sum(num_tokens)).
    mean_perplexity (`float`): mean over sequences of exp(sum_nll / num_tokens).
Examples:
    >>> import evaluate, math  # doctest: +SKIP
    >>> ppl = evaluate.load("hf_slm/evaluation/metrics/unit_perplexity")  # doctest: +SKIP
    >>> ppl.compute(sum_nll=[2 * math.log(4)], num_tokens=[2])["perplexity"]  # doctest: +SKIP
    4.0
"""


def perplexity(sum_nll, num_tokens) -> dict:
    """Corpus and mean per-sequence perplexity (see the module docstring)."""
    nll = np.asarray(sum_nll, dtype=np.float64)
    counts = np.asarray(num_tokens, dtype=np.float64)
    if nll.shape != counts.shape or nll.ndim != 1 or nll.size == 0:
        raise ValueError(f"sum_nll and num_tokens must be non-empty 1-D lists of one length, got {nll.shape}, {counts.shape}")
    if (counts <= 0).any():
        raise ValueError(f"every num_tokens must be positive, got {counts[counts <= 0][:5].tolist()}")
    if not np.isfinite(nll).all():
        raise ValueError("sum_nll contains NaN or inf")
    return {"perplexity": float(np.exp(nll.sum() / counts.sum())), "mean_perplexity": float(np.exp(nll / counts).mean())}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class UnitPerplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"sum_nll": datasets.Value("float64"), "num_tokens": datasets.Value("int64")}),
        )

    def _compute(self, sum_nll, num_tokens):
        return perplexity(sum_nll, num_tokens)


__all__ = ["UnitPerplexity", "perplexity"]
