"""Log-mel analysis and the Griffin-Lim inverse: the signal processing shared by the vocoders and their losses."""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

#: Floor of the magnitude before the log (HiFi-GAN's `dynamic_range_compression` clamp).
LOG_MEL_FLOOR = 1e-5


def _check_waveform(waveform: torch.Tensor, name: str = "waveform") -> torch.Tensor:
    if not torch.is_tensor(waveform):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(waveform).__name__}")
    if waveform.dim() == 3 and waveform.shape[1] == 1:
        waveform = waveform[:, 0]
    if waveform.dim() == 1:
        waveform = waveform[None]
    if waveform.dim() != 2:
        raise ValueError(f"{name} must be [batch, samples] (mono), got shape {tuple(waveform.shape)}")
    if not waveform.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got {waveform.dtype}")
    return waveform


class LogMelSpectrogram(nn.Module):
    """Waveform [B, S] -> natural-log magnitude mel spectrogram [B, frames, n_mels] (transformers' time-major layout).

    Magnitude (power 1) mel with slaney filters, floored at 1e-5 before the log, as HiFi-GAN's `mel_spectrogram`;
    `center=True`, so frame k is centred on sample k * hop_length and S samples give S // hop_length + 1 frames.
    Computed in float32 whatever the input dtype (the STFT under bf16 is not accurate enough for a loss).
    """

    def __init__(
        self,
        sampling_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int | None = None,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float | None = None,
    ):
        super().__init__()
        self.sampling_rate = sampling_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length or n_fft
        self.n_mels = n_mels
        self.f_min = f_min
        self.f_max = f_max
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sampling_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=self.win_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            power=1.0,
            center=True,
            pad_mode="reflect",
            norm="slaney",
            mel_scale="slaney",
        )

    def num_frames(self, num_samples: torch.Tensor | int):
        """Frames produced from `num_samples` samples (centred STFT)."""
        return num_samples // self.hop_length + 1

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        waveform = _check_waveform(waveform)
        if waveform.shape[-1] <= self.n_fft // 2:
            raise ValueError(
                f"waveform has {waveform.shape[-1]} samples; the mel analysis (reflect padding of n_fft // 2 = "
                f"{self.n_fft // 2}) needs more"
            )
        mel = self.mel.float()(waveform.float())
        return torch.log(torch.clamp(mel, min=LOG_MEL_FLOOR)).transpose(1, 2)


_SLANEY_HZ_PER_MEL = 200.0 / 3  # linear below 1 kHz
_SLANEY_LOG_STEP = math.log(6.4) / 27.0  # log-spaced above


def _hz_to_slaney_mel(hz: float) -> float:
    mel = hz / _SLANEY_HZ_PER_MEL
    return mel if hz < 1000.0 else 1000.0 / _SLANEY_HZ_PER_MEL + math.log(hz / 1000.0) / _SLANEY_LOG_STEP


def slaney_mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> torch.Tensor:
    """`[n_freqs, n_mels]` slaney-scale, slaney-normalised triangular filters: torchaudio's `melscale_fbanks(...,
    norm="slaney", mel_scale="slaney")` without its warning about empty filters, whose test on the data stops
    `torch.export` / `torch.compile(fullgraph=True)` (the filters here are built inside the traced call)."""
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    mels = torch.linspace(_hz_to_slaney_mel(f_min), _hz_to_slaney_mel(f_max), n_mels + 2)
    linear_mel_top = 1000.0 / _SLANEY_HZ_PER_MEL
    f_pts = torch.where(
        mels >= linear_mel_top,
        1000.0 * torch.exp(_SLANEY_LOG_STEP * (mels - linear_mel_top)),
        _SLANEY_HZ_PER_MEL * mels,
    )
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None] - all_freqs[:, None]
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    filters = torch.clamp(torch.min(down, up), min=0.0)
    return filters * (2.0 / (f_pts[2 : n_mels + 2] - f_pts[:n_mels]))[None]


def least_squares_magnitude(log_mel: torch.Tensor, sampling_rate: int = 16000, n_fft: int = 1024, f_min: float = 0.0,
                            f_max: float | None = None) -> torch.Tensor:  # fmt: skip
    """Log-mel [B, frames, n_mels] in [`LogMelSpectrogram`]'s convention -> the minimum-norm least-squares linear
    magnitude [B, n_fft // 2 + 1, frames] (>= 0), as torchaudio's `InverseMelScale`, through the pseudo-inverse:
    `torch.linalg.lstsq` returns outputs of data-dependent shape, which stop torch.export. What Griffin-Lim inverts
    and what the mel vocoder's inverse-STFT head corrects."""
    mel = torch.exp(log_mel.float()).transpose(1, 2)  # [B, n_mels, frames]
    inverse = _mel_pseudo_inverse(n_fft // 2 + 1, f_min, f_max or float(sampling_rate // 2), log_mel.shape[-1],
                                  sampling_rate, mel.device)  # fmt: skip
    return torch.relu(inverse @ mel)


#: (n_freqs, f_min, f_max, n_mels, sampling_rate, device) -> pseudo-inverse of the mel filters [n_freqs, n_mels]
_MEL_PSEUDO_INVERSES: dict[tuple, torch.Tensor] = {}


def _mel_pseudo_inverse(n_freqs, f_min, f_max, n_mels, sampling_rate, device) -> torch.Tensor:
    """Built once per setting and device: the filterbank and its pseudo-inverse took 1.4 ms a call, 30 % of a
    streaming chunk's vocoder forward. Not cached while torch.compile / torch.export trace (fake tensors)."""
    key = (n_freqs, float(f_min), float(f_max), n_mels, sampling_rate, str(device))
    inverse = _MEL_PSEUDO_INVERSES.get(key)
    if inverse is None:
        filters = slaney_mel_filterbank(n_freqs, f_min, f_max, n_mels, sampling_rate)
        inverse = torch.linalg.pinv(filters.transpose(0, 1).to(device))
        if not (torch.compiler.is_compiling() or torch.compiler.is_exporting()):
            _MEL_PSEUDO_INVERSES[key] = inverse
    return inverse


def griffin_lim_from_mel(
    log_mel: torch.Tensor,
    sampling_rate: int = 16000,
    n_fft: int = 1024,
    hop_length: int = 160,
    win_length: int | None = None,
    f_min: float = 0.0,
    f_max: float | None = None,
    n_iter: int = 32,
    momentum: float = 0.99,
    length: int | None = None,
    rand_init: bool = False,
) -> torch.Tensor:
    """Pure signal-processing vocoder: log-mel -> linear magnitude (least squares) -> Griffin-Lim phase -> waveform.

    The survey's "pure signal processing vocoder" baseline. `log_mel` is [frames, n_mels] or [B, frames, n_mels] in
    the convention of [`LogMelSpectrogram`] (natural log of a magnitude slaney mel); the analysis parameters must be
    the ones the mel was computed with. Returns [S] or [B, S] float32 with S = `length` or (frames - 1) * hop.
    `rand_init=False` starts from zero phase, which makes the output deterministic.
    """
    if not torch.is_tensor(log_mel) or log_mel.dim() not in (2, 3):
        shape = tuple(log_mel.shape) if torch.is_tensor(log_mel) else type(log_mel).__name__
        raise ValueError(f"log_mel must be a [frames, n_mels] or [batch, frames, n_mels] tensor, got {shape}")
    unbatched = log_mel.dim() == 2
    log_mel = log_mel[None] if unbatched else log_mel
    if log_mel.shape[1] < 2:
        raise ValueError(f"log_mel needs at least 2 frames for Griffin-Lim, got {log_mel.shape[1]}")
    win_length = win_length or n_fft
    magnitude = least_squares_magnitude(log_mel, sampling_rate, n_fft, f_min, f_max)  # [B, n_freqs, frames]
    natural_length = (magnitude.shape[-1] - 1) * hop_length
    # torch.stft's centre padding needs more than n_fft / 2 samples: a very short mel (a reply of one or two units)
    # gets silent frames appended, and the output is cut back to its own length below.
    min_frames = n_fft // (2 * hop_length) + 2
    if magnitude.shape[-1] < min_frames:
        magnitude = torch.nn.functional.pad(magnitude, (0, min_frames - magnitude.shape[-1]))
    window = torch.hann_window(win_length, device=magnitude.device)
    # torchaudio's griffinlim re-analyses its own output, so it must run at the natural length (frames - 1) * hop.
    waveform = torchaudio.functional.griffinlim(
        magnitude,
        window=window,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        power=1.0,
        n_iter=n_iter,
        momentum=momentum,
        length=None,
        rand_init=rand_init,
    )
    length = natural_length if length is None else length
    waveform = waveform[..., :length]
    waveform = torch.nn.functional.pad(waveform, (0, length - waveform.shape[-1]))
    return waveform[0] if unbatched else waveform


__all__ = [
    "LOG_MEL_FLOOR",
    "LogMelSpectrogram",
    "griffin_lim_from_mel",
    "least_squares_magnitude",
    "slaney_mel_filterbank",
]
