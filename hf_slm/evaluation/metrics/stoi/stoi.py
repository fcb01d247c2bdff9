"""Short-time objective intelligibility (STOI, or extended STOI) of processed speech against clean speech, via pystoi.

Self-contained `evaluate` module: ``evaluate.load("hf_slm/evaluation/metrics/stoi")`` or
``hf_slm.evaluation.load_metric("stoi")``. Needs `pystoi` (a pure-Python wheel, a dependency of hf_slm).
"""

from __future__ import annotations

import warnings

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
STOI (Taal et al., 2011) of each prediction against its clean reference: the mean correlation of short-time (384 ms)
one-third-octave band envelopes, after pystoi resamples both to 10 kHz and drops the reference's silent frames. In
[0, 1]; 1 = as intelligible as the reference. Its floor is not 0: its clipping step (the prediction is clipped to
the reference's envelope + 15 dB) leaves unrelated signals around 0.4 (white noise vs espeak-ng speech: 0.39).
`extended=True` gives ESTOI (Jensen & Taal, 2016), which handles fluctuating noise and scores unrelated signals ~0.
Unlike SI-SNR it ignores phase at the sample level, so it suits codecs and, less strictly, vocoders; signals are cut
to the shorter length.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): processed / reconstructed waveforms.
    references (`list[list[float]]`): clean reference waveforms.
    sampling_rate (`int`): the sampling rate of both.
    extended (`bool`, defaults to `False`): ESTOI instead of STOI.
Returns:
    stoi (`float`): mean over utterances; stoi_per_item (`list[float]`).
"""


def stoi(prediction, reference, sampling_rate: int, extended: bool = False) -> float:
    """STOI (or ESTOI) of one waveform against one clean reference, cut to the shorter length."""
    try:
        from pystoi import stoi as _pystoi
    except ImportError as error:  # pragma: no cover - pystoi is a dependency of hf_slm
        raise ImportError("the stoi metric needs pystoi: pip install pystoi") from error
    prediction = np.asarray(prediction, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if prediction.ndim != 1 or reference.ndim != 1:
        raise ValueError(f"STOI takes mono waveforms [T], got shapes {prediction.shape} and {reference.shape}")
    if not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be a positive integer, got {sampling_rate!r}")
    n = min(len(prediction), len(reference))
    # pystoi needs 30 STFT frames (~0.4 s) of non-silent reference; otherwise it only warns and returns 1e-5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_pystoi(reference[:n], prediction[:n], sampling_rate, extended=extended))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        raise ValueError(
            f"STOI needs at least ~0.4 s of non-silent reference speech; got {n / sampling_rate:.3f} s in all"
        )
    return value


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Stoi(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Taal et al., 2011, An Algorithm for Intelligibility Prediction of Time-Frequency Weighted Noisy "
            "Speech; Jensen & Taal, 2016 (ESTOI)",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")),
                 "references": datasets.Sequence(datasets.Value("float32"))}
            ),  # fmt: skip
        )

    def _compute(self, predictions, references, sampling_rate=None, extended=False):
        if sampling_rate is None:
            raise ValueError("the stoi metric needs sampling_rate=")
        values = [stoi(p, r, sampling_rate, extended=extended) for p, r in zip(predictions, references)]
        return {"stoi": float(np.mean(values)), "stoi_per_item": values}


__all__ = ["Stoi", "stoi"]
