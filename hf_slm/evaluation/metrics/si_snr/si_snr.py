"""Scale-invariant signal-to-noise ratio (SI-SNR, dB) of reconstructed audio against a reference.

Self-contained `evaluate` module (numpy only): ``evaluate.load("hf_slm/evaluation/metrics/si_snr")`` or
``hf_slm.evaluation.load_metric("si_snr")``.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
SI-SNR (Le Roux et al., 2019) of each prediction against its reference, both made zero-mean: the prediction is
projected onto the reference (the target part, scale-free), and the ratio of the target's energy to the residual's
is given in dB. Higher is better; a perfect copy at any gain is +inf (capped at `max_db`), unrelated noise is about
-inf (very negative). The two signals must share a sampling rate and are cut to the shorter length. It is only
meaningful for waveform-preserving codecs: unit vocoders do not keep phase, so compare them by mel distance.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): reconstructed waveforms.
    references (`list[list[float]]`): reference waveforms (same sampling rate).
    max_db (`float`, defaults to 100): cap of a single utterance's SI-SNR.
Returns:
    si_snr (`float`): mean over utterances (dB); si_snr_per_item (`list[float]`).
"""


def si_snr(prediction, reference, max_db: float = 100.0, eps: float = 1e-12) -> float:
    """SI-SNR in dB of one waveform against one reference (cut to the shorter length)."""
    prediction = np.asarray(prediction, dtype=np.float64).ravel()
    reference = np.asarray(reference, dtype=np.float64).ravel()
    n = min(len(prediction), len(reference))
    if n == 0:
        raise ValueError("SI-SNR needs non-empty waveforms")
    prediction = prediction[:n] - prediction[:n].mean()
    reference = reference[:n] - reference[:n].mean()
    energy = float(reference @ reference)
    if energy <= eps:
        raise ValueError("the reference is silent (zero energy after removing its mean); SI-SNR is undefined")
    target = (prediction @ reference) / energy * reference
    noise = prediction - target
    ratio = float(target @ target) / max(float(noise @ noise), eps)
    return float(min(10 * np.log10(max(ratio, eps)), max_db))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SiSnr(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Le Roux et al., 2019, SDR - half-baked or well done?",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")),
                 "references": datasets.Sequence(datasets.Value("float32"))}
            ),  # fmt: skip
        )

    def _compute(self, predictions, references, max_db=100.0):
        values = [si_snr(p, r, max_db=max_db) for p, r in zip(predictions, references)]
        return {"si_snr": float(np.mean(values)), "si_snr_per_item": values}


__all__ = ["SiSnr", "si_snr"]
