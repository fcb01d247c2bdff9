"""Log-mel distance between resynthesised (or decoded) audio and its reference, tolerant of small timing shifts.

Self-contained `evaluate` module (numpy + torch + torchaudio): ``evaluate.load("hf_slm/evaluation/metrics/mel_distance")``
or ``hf_slm.evaluation.load_metric("mel_distance")``.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
import torch
import torchaudio

_DESCRIPTION = """
Mean absolute difference of natural-log magnitude mel spectrograms (80 bins, 1024-point FFT, 10 ms hop at 16 kHz,
floored at 1e-5: HiFi-GAN's analysis) between each prediction and its reference, after resampling both to
`sampling_rate`. Unit vocoders do not keep phase, so the distance is taken on magnitudes. With `align="truncate"`
(default) both spectrograms are cut to the shorter one (resynthesis keeps the frame count up to a unit hop); with
`align="dtw"` the frames are aligned by DTW first (for audio whose timing may differ, e.g. other durations), and the
distance is the mean along the path. Lower is better; 0 for identical audio.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): waveforms (mono).
    references (`list[list[float]]`): reference waveforms (mono).
    sampling_rate (`int`, defaults to 16000): rate of both; `prediction_sampling_rate` overrides it for predictions.
    align (`str`, defaults to `"truncate"`): `"truncate"` or `"dtw"`.
Returns:
    mel_distance (`float`): mean over utterances; mel_distance_per_item (`list[float]`).
"""

_N_FFT, _N_MELS, _FLOOR = 1024, 80, 1e-5


def log_mel(waveform, sampling_rate: int) -> np.ndarray:
    """`[frames, 80]` natural-log magnitude mel of a mono waveform, at 16 kHz with a 10 ms hop."""
    wave = torch.as_tensor(np.asarray(waveform, dtype=np.float32)).reshape(-1)
    if sampling_rate != 16000:
        wave = torchaudio.functional.resample(wave, int(sampling_rate), 16000)
    if wave.numel() <= _N_FFT // 2:
        raise ValueError(f"waveform has {wave.numel()} samples at 16 kHz; the mel analysis needs more than {_N_FFT // 2}")
    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=_N_FFT, hop_length=160, n_mels=_N_MELS, power=1.0, norm="slaney", mel_scale="slaney"
    )
    return torch.log(transform(wave).clamp_min(_FLOOR)).T.numpy().astype(np.float64)


def _dtw_mean(cost: np.ndarray) -> float:
    rows, cols = cost.shape
    total = np.full((rows + 1, cols + 1), np.inf)
    steps = np.zeros((rows + 1, cols + 1))
    total[0, 0] = 0.0
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            options = ((total[i - 1, j - 1], steps[i - 1, j - 1]), (total[i - 1, j], steps[i - 1, j]),
                       (total[i, j - 1], steps[i, j - 1]))  # fmt: skip
            best_total, best_steps = min(options)
            total[i, j] = best_total + cost[i - 1, j - 1]
            steps[i, j] = best_steps + 1
    return float(total[rows, cols] / steps[rows, cols])


def mel_distance(prediction, reference, sampling_rate: int = 16000, prediction_sampling_rate: int | None = None,
                 align: str = "truncate") -> float:  # fmt: skip
    """Mean |log-mel difference| of one prediction against its reference (see the module docstring)."""
    if align not in ("truncate", "dtw"):
        raise ValueError(f"align must be 'truncate' or 'dtw', got {align!r}")
    pred = log_mel(prediction, prediction_sampling_rate or sampling_rate)
    ref = log_mel(reference, sampling_rate)
    if align == "truncate":
        n = min(len(pred), len(ref))
        return float(np.abs(pred[:n] - ref[:n]).mean())
    cost = np.abs(pred[:, None, :] - ref[None, :, :]).mean(-1)
    return _dtw_mean(cost)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MelDistance(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")),
                 "references": datasets.Sequence(datasets.Value("float32"))}
            ),  # fmt: skip
        )

    def _compute(self, predictions, references, sampling_rate=16000, prediction_sampling_rate=None, align="truncate"):
        values = [
            mel_distance(p, r, sampling_rate, prediction_sampling_rate, align) for p, r in zip(predictions, references)
        ]
        return {"mel_distance": float(np.mean(values)), "mel_distance_per_item": values}


__all__ = ["MelDistance", "log_mel", "mel_distance"]
