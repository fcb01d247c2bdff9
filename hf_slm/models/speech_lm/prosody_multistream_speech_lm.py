"""pGSLM streams: deduplicated units + quantised durations + quantised log-F0, and a small autocorrelation F0 tracker.

pGSLM (Kharitonov et al., 2022) models speech as three parallel streams over *deduplicated* units: the unit, how many
frames it lasts, and its mean log-F0. Both prosody streams are quantised here (durations clipped to
`1..max_duration` frames, log-F0 in `num_f0_bins` uniform bins between `f0_min` and `f0_max`, plus one bin for
unvoiced units), so every stream is a classification target; the paper's continuous-regression variant is not
implemented (the quantised one is the simpler and, in the paper, the competitive choice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def estimate_f0(
    waveform: torch.Tensor,
    sample_rate: int,
    frame_rate: float = 50.0,
    f0_min: float = 60.0,
    f0_max: float = 400.0,
    voicing_threshold: float = 0.5,
    silence_threshold: float = 0.03,
) -> torch.FloatTensor:
    """
    Frame-level F0 in Hz (0 = unvoiced) from the normalised autocorrelation of each frame.

    Frame `t` is centred on sample `(t + 0.5) * sample_rate / frame_rate` and spans `2.5 / f0_min` seconds, so it
    holds at least two periods of the lowest pitch; there are `ceil(len / hop)` frames (the unit tokenizers' frame
    count, up to a frame or two at the end). A frame is voiced when its best normalised autocorrelation in the lag
    range `[1 / f0_max, 1 / f0_min]` reaches `voicing_threshold` and its RMS is at least `silence_threshold` times
    the loudest frame's. A small cost per octave of lag favours the shortest strong period (against octave errors).

    Args:
        waveform (`Tensor` `[T]` or `[B, T]`): mono audio.
        sample_rate (`int`): its sample rate; `sample_rate / frame_rate` must be a whole number of samples.
        frame_rate (`float`): output frames per second (50 = HuBERT / our MFCC units).

    Returns:
        `FloatTensor` `[frames]` or `[B, frames]`.
    """
    waveform = torch.as_tensor(waveform, dtype=torch.float32)
    if waveform.dim() not in (1, 2) or waveform.shape[-1] == 0:
        raise ValueError(f"waveform must be non-empty mono audio [T] or [B, T], got shape {tuple(waveform.shape)}")
    hop = sample_rate / frame_rate
    if abs(hop - round(hop)) > 1e-6:
        raise ValueError(f"sample_rate / frame_rate must be a whole number of samples, got {sample_rate}/{frame_rate}")
    if not 0 < f0_min < f0_max < sample_rate / 2:
        raise ValueError(f"need 0 < f0_min < f0_max < sample_rate / 2, got f0_min={f0_min}, f0_max={f0_max}")
    hop = round(hop)
    squeeze = waveform.dim() == 1
    audio = waveform[None] if squeeze else waveform
    window = int(math.ceil(2.5 * sample_rate / f0_min))
    num_frames = math.ceil(audio.shape[-1] / hop)
    left = window // 2 - hop // 2
    padded = torch.nn.functional.pad(audio, (left, num_frames * hop + window - audio.shape[-1] - left))
    frames = padded.unfold(-1, window, hop)[:, :num_frames]  # [B, F, W]
    frames = frames - frames.mean(-1, keepdim=True)

    spectrum = torch.fft.rfft(frames, n=2 * window)
    autocorr = torch.fft.irfft(spectrum.abs().square(), n=2 * window)[..., :window]
    lags = torch.arange(window, dtype=torch.float32)
    normalised = autocorr / autocorr[..., :1].clamp(min=1e-12) * window / (window - lags)  # unbiased
    low, high = int(sample_rate // f0_max), min(int(math.ceil(sample_rate / f0_min)), window - 2)
    candidates = normalised[..., low : high + 1]
    score = candidates - 0.05 * torch.log2(lags[low : high + 1] / low)
    best = score.argmax(-1)
    strength = candidates.gather(-1, best[..., None])[..., 0]

    # parabolic interpolation of the peak for a sub-sample period
    lag = (best + low).clamp(1, window - 2)
    y0, y1, y2 = (normalised.gather(-1, (lag + d)[..., None])[..., 0] for d in (-1, 0, 1))
    shift = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2).where((y0 - 2 * y1 + y2).abs() > 1e-9, torch.tensor(-1e-9))
    f0 = sample_rate / (lag + shift.clamp(-0.5, 0.5))

    rms = frames.square().mean(-1).sqrt()
    loud = rms >= silence_threshold * rms.amax(-1, keepdim=True).clamp(min=1e-8)
    voiced = (strength >= voicing_threshold) & loud & (f0 >= f0_min) & (f0 <= f0_max)
    f0 = torch.where(voiced, f0, torch.zeros_like(f0))
    return f0[0] if squeeze else f0


@dataclass(frozen=True)
class ProsodyQuantizer:
    r"""
    Builds and reads the three pGSLM streams `[units, duration, f0]` (see [`MultiStreamSpeechLMConfig`] with
    `stream_kind="pgslm"`).

    - duration token = `min(frames, max_duration) - 1` (runs longer than `max_duration` frames are clipped);
    - F0 token = 0 for an unvoiced unit, else `1 + ` the bin of its mean log-F0 among `num_f0_bins` uniform bins of
      `[log f0_min, log f0_max]`. A unit is voiced when at least half of its frames are.

    Args:
        max_duration (`int`, defaults to 32): longest duration in frames (32 frames = 0.64 s at 50 Hz).
        num_f0_bins (`int`, defaults to 32): voiced F0 bins.
        f0_min, f0_max (`float`, default 60 / 400 Hz): range of the bins (values outside are clamped).

    Example:

    ```python
    >>> import torch
    >>> from hf_slm.models.speech_lm.prosody_multistream_speech_lm import ProsodyQuantizer
    >>> quantizer = ProsodyQuantizer()
    >>> quantizer.stream_vocab_sizes(num_units=100)
    [100, 32, 33]
    >>> units = torch.tensor([5, 5, 5, 7, 7, 2])
    >>> f0 = torch.tensor([100.0, 110.0, 105.0, 0.0, 0.0, 220.0])
    >>> quantizer.build_streams(units, f0)
    tensor([[ 5,  7,  2],
            [ 2,  1,  0],
            [10,  0, 22]])

    ```
    """

    max_duration: int = 32
    num_f0_bins: int = 32
    f0_min: float = 60.0
    f0_max: float = 400.0

    def __post_init__(self):
        for name in ("max_duration", "num_f0_bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not 0 < self.f0_min < self.f0_max:
            raise ValueError(f"need 0 < f0_min < f0_max, got f0_min={self.f0_min}, f0_max={self.f0_max}")

    def stream_vocab_sizes(self, num_units: int) -> list[int]:
        """`stream_vocab_sizes` of the matching `MultiStreamSpeechLMConfig(stream_kind="pgslm")`."""
        return [int(num_units), self.max_duration, self.num_f0_bins + 1]

    # ------------------------------------------------------------------ F0 <-> bins
    def quantize_f0(self, f0: torch.Tensor) -> torch.LongTensor:
        """Hz -> F0 tokens (0 where `f0 <= 0` or NaN: unvoiced)."""
        f0 = torch.as_tensor(f0, dtype=torch.float32)
        voiced = f0 > 0  # False for NaN too
        span = math.log(self.f0_max) - math.log(self.f0_min)
        position = (f0.clamp(min=1e-6).log() - math.log(self.f0_min)) / span
        bins = (position * self.num_f0_bins).floor().clamp(0, self.num_f0_bins - 1).long() + 1
        return torch.where(voiced, bins, torch.zeros_like(bins))

    def dequantize_f0(self, tokens: torch.Tensor) -> torch.FloatTensor:
        """F0 tokens -> Hz at the (geometric) centre of each bin; 0 for unvoiced."""
        tokens = torch.as_tensor(tokens).long()
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) > self.num_f0_bins):
            raise ValueError(f"F0 tokens must lie in [0, {self.num_f0_bins}], got {tokens.min()}..{tokens.max()}")
        span = math.log(self.f0_max) - math.log(self.f0_min)
        log_f0 = math.log(self.f0_min) + (tokens.float() - 0.5) / self.num_f0_bins * span
        return torch.where(tokens > 0, log_f0.exp(), torch.zeros_like(log_f0))

    # ------------------------------------------------------------------ frames <-> streams
    def build_streams(
        self, units: torch.Tensor, f0: torch.Tensor, durations: torch.Tensor | None = None
    ) -> torch.LongTensor:
        """
        `[3, N]` pGSLM streams of one utterance.

        Args:
            units (`LongTensor`): frame-level units `[T]` (runs are collapsed here, as
                `UnitEncoderModel.deduplicate` does), or already deduplicated units `[N]` with `durations`.
            f0 (`Tensor` `[T]`): frame-level F0 in Hz (0 = unvoiced), e.g. from [`estimate_f0`]; one or two frames
                more or fewer than the units (different framing at the end) are cropped / edge-padded.
            durations (`LongTensor` `[N]`, *optional*): frames of each deduplicated unit.
        """
        units = torch.as_tensor(units).long()
        if units.dim() != 1:
            raise ValueError(f"units must be 1-D (one utterance), got shape {tuple(units.shape)}")
        if durations is None:
            units, durations = torch.unique_consecutive(units, return_counts=True)
        durations = torch.as_tensor(durations).long()
        if durations.shape != units.shape or (durations.numel() and int(durations.min()) < 1):
            raise ValueError(
                f"durations must be >= 1, one per unit ({tuple(units.shape)}), got {durations.tolist()}"
            )
        num_frames = int(durations.sum())
        f0 = torch.as_tensor(f0, dtype=torch.float32)
        if f0.dim() != 1 or abs(f0.shape[0] - num_frames) > 2 or (num_frames and f0.shape[0] == 0):
            raise ValueError(
                f"f0 must be 1-D with one value per unit frame ({num_frames}), got shape {tuple(f0.shape)}"
            )
        f0 = f0[:num_frames]
        if f0.shape[0] < num_frames:
            f0 = torch.cat([f0, f0[-1:].expand(num_frames - f0.shape[0])])
        run = torch.repeat_interleave(torch.arange(len(units)), durations)
        voiced = (f0 > 0).float()
        voiced_frames = torch.zeros(len(units)).index_add_(0, run, voiced)
        log_sum = torch.zeros(len(units)).index_add_(0, run, torch.where(f0 > 0, f0.clamp(min=1e-6).log(), 0.0))
        mean_f0 = (log_sum / voiced_frames.clamp(min=1)).exp()
        mean_f0 = torch.where(voiced_frames * 2 >= durations, mean_f0, torch.zeros_like(mean_f0))
        duration_tokens = durations.clamp(max=self.max_duration) - 1
        return torch.stack([units, duration_tokens, self.quantize_f0(mean_f0)])

    def expand_streams(self, streams: torch.Tensor) -> tuple[torch.LongTensor, torch.FloatTensor]:
        """Inverse of `build_streams` for a vocoder: `[3, N]` -> frame-level `(units [T], f0 [T] in Hz)`."""
        streams = torch.as_tensor(streams).long()
        if streams.dim() != 2 or streams.shape[0] != 3:
            raise ValueError(f"streams must be [3 (units, duration, f0), N], got shape {tuple(streams.shape)}")
        units, duration_tokens, f0_tokens = streams
        low, high = (int(duration_tokens.min()), int(duration_tokens.max())) if duration_tokens.numel() else (0, 0)
        if low < 0 or high >= self.max_duration:
            raise ValueError(f"duration tokens must lie in [0, {self.max_duration})")
        durations = duration_tokens + 1
        return units.repeat_interleave(durations), self.dequantize_f0(f0_tokens).repeat_interleave(durations)


__all__ = ["ProsodyQuantizer", "estimate_f0"]
