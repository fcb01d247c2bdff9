"""PESQ (ITU-T P.862 narrow-band / P.862.2 wide-band MOS-LQO) of processed speech against clean speech, via `pesq`.

Self-contained `evaluate` module: ``evaluate.load("hf_slm/evaluation/metrics/pesq")`` or
``hf_slm.evaluation.load_metric("pesq")``. Needs the `pesq` package (compiles C; ``pip install hf_slm[eval]``).
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
PESQ (Rix et al., 2001) of each prediction against its clean reference, as a MOS-LQO score: about 1 (bad) to 4.64
(wide band, `mode="wb"`, at 16 kHz) or 4.55 (narrow band, `mode="nb"`, at 8 kHz). P.862 is defined at 8 and 16 kHz
only, so other rates are resampled with torchaudio (to 16 kHz for wb, 8 kHz for nb). It aligns the signals in time
itself (so vocoder delays are tolerated), but it models telephone-band codecs and is known to punish unit vocoders
that change timbre; read it next to STOI and mel distance. Both signals are cut to the shorter length.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): processed / reconstructed waveforms.
    references (`list[list[float]]`): clean reference waveforms.
    sampling_rate (`int`): the sampling rate of both.
    mode (`str`, defaults to `"wb"`): `"wb"` (P.862.2, 16 kHz) or `"nb"` (P.862, 8 kHz).
Returns:
    pesq (`float`): mean over utterances; pesq_per_item (`list[float]`).
"""

_MODE_RATES = {"wb": 16000, "nb": 8000}


def pesq(prediction, reference, sampling_rate: int, mode: str = "wb") -> float:
    """PESQ MOS-LQO of one waveform against one clean reference (resampled to the mode's rate, cut to the shorter)."""
    try:
        from pesq import NoUtterancesError
        from pesq import pesq as _pesq
    except ImportError as error:
        raise ImportError("the pesq metric needs the pesq package: pip install pesq (it compiles C)") from error
    if mode not in _MODE_RATES:
        raise ValueError(f"mode must be 'wb' or 'nb', got {mode!r}")
    if not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be a positive integer, got {sampling_rate!r}")
    prediction = np.asarray(prediction, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if prediction.ndim != 1 or reference.ndim != 1:
        raise ValueError(f"PESQ takes mono waveforms [T], got shapes {prediction.shape} and {reference.shape}")
    n = min(len(prediction), len(reference))
    prediction, reference = prediction[:n], reference[:n]
    rate = _MODE_RATES[mode]
    if sampling_rate != rate:
        import torch
        import torchaudio.functional as F

        prediction, reference = (
            F.resample(torch.from_numpy(x), sampling_rate, rate).numpy() for x in (prediction, reference)
        )
    if not np.any(reference) or not np.any(prediction):
        raise ValueError("PESQ is undefined for a silent (all-zero) prediction or reference")
    try:
        return float(_pesq(rate, reference, prediction, mode))
    except NoUtterancesError as error:
        seconds = n / sampling_rate
        raise ValueError(f"PESQ found no speech in the reference or the prediction ({seconds:.3f} s)") from error


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Pesq(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Rix et al., 2001, Perceptual evaluation of speech quality (PESQ); ITU-T P.862 / P.862.2",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")),
                 "references": datasets.Sequence(datasets.Value("float32"))}
            ),  # fmt: skip
        )

    def _compute(self, predictions, references, sampling_rate=None, mode="wb"):
        if sampling_rate is None:
            raise ValueError("the pesq metric needs sampling_rate=")
        values = [pesq(p, r, sampling_rate, mode=mode) for p, r in zip(predictions, references)]
        return {"pesq": float(np.mean(values)), "pesq_per_item": values}


__all__ = ["Pesq", "pesq"]
