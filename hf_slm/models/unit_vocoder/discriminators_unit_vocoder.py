"""HiFi-GAN discriminators (Kong et al., 2020): multi-period (MPD) and multi-scale (MSD).

Each sub-discriminator returns a score map and the list of its intermediate feature maps (for feature matching).
A discriminator's `forward(waveform [B, S])` returns `(scores, features)`: a list of score tensors (one per
sub-discriminator) and a list of feature-map lists. Call it once on real and once on generated audio.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from .configuration_unit_vocoder import SCALE_DISCRIMINATOR_GROUPS


def _as_batch_channel(waveform: torch.Tensor) -> torch.Tensor:
    if waveform.dim() == 2:
        waveform = waveform[:, None]
    if waveform.dim() != 3 or waveform.shape[1] != 1:
        raise ValueError(f"a discriminator takes mono audio [batch, samples], got shape {tuple(waveform.shape)}")
    return waveform


class PeriodDiscriminator(nn.Module):
    """Folds the waveform into [S / period, period] and applies 2-D convs along time (HiFi-GAN's DiscriminatorP)."""

    def __init__(self, period, channels=(32, 128, 512, 1024, 1024), kernel_size=5, stride=3, leaky_relu_slope=0.1):
        super().__init__()
        self.period = period
        self.leaky_relu_slope = leaky_relu_slope
        padding = ((kernel_size - 1) // 2, 0)
        in_channels = (1,) + tuple(channels[:-1])
        strides = (stride,) * (len(channels) - 1) + (1,)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (kernel_size, 1), (s, 1), padding=padding))
            for c_in, c_out, s in zip(in_channels, channels, strides)
        )
        self.conv_post = weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, waveform: torch.Tensor):
        hidden = _as_batch_channel(waveform)
        batch, _, length = hidden.shape
        if length % self.period:
            pad = self.period - length % self.period
            mode = "reflect" if pad < length else "constant"
            hidden = nn.functional.pad(hidden, (0, pad), mode)
            length = length + pad
        hidden = hidden.view(batch, 1, length // self.period, self.period)
        features = []
        for conv in self.convs:
            hidden = nn.functional.leaky_relu(conv(hidden), self.leaky_relu_slope)
            features.append(hidden)
        hidden = self.conv_post(hidden)
        features.append(hidden)
        return hidden.flatten(1), features


class ScaleDiscriminator(nn.Module):
    """Grouped strided 1-D convs over (possibly average-pooled) audio (MelGAN / HiFi-GAN's DiscriminatorS)."""

    _KERNELS = (15, 41, 41, 41, 41, 41, 5)
    _STRIDES = (1, 2, 2, 4, 4, 1, 1)
    _GROUPS = SCALE_DISCRIMINATOR_GROUPS

    def __init__(self, channels=(128, 128, 256, 512, 1024, 1024, 1024), use_spectral_norm=False, leaky_relu_slope=0.1):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        self.leaky_relu_slope = leaky_relu_slope
        in_channels = (1,) + tuple(channels[:-1])
        self.convs = nn.ModuleList(
            norm(nn.Conv1d(c_in, c_out, k, s, groups=g, padding=(k - 1) // 2))
            for c_in, c_out, k, s, g in zip(in_channels, channels, self._KERNELS, self._STRIDES, self._GROUPS)
        )
        self.conv_post = norm(nn.Conv1d(channels[-1], 1, 3, 1, padding=1))

    def forward(self, waveform: torch.Tensor):
        hidden = _as_batch_channel(waveform)
        features = []
        for conv in self.convs:
            hidden = nn.functional.leaky_relu(conv(hidden), self.leaky_relu_slope)
            features.append(hidden)
        hidden = self.conv_post(hidden)
        features.append(hidden)
        return hidden.flatten(1), features


class MultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN's MPD: one [`PeriodDiscriminator`] per period (2, 3, 5, 7, 11 by default; primes avoid overlap)."""

    def __init__(self, periods=(2, 3, 5, 7, 11), channels=(32, 128, 512, 1024, 1024), leaky_relu_slope=0.1):
        super().__init__()
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(p, channels, leaky_relu_slope=leaky_relu_slope) for p in periods
        )

    def forward(self, waveform: torch.Tensor):
        scores, features = [], []
        for discriminator in self.discriminators:
            score, feature = discriminator(waveform)
            scores.append(score)
            features.append(feature)
        return scores, features


class MultiScaleDiscriminator(nn.Module):
    """HiFi-GAN's MSD: scale discriminators on raw, x2 and x4 average-pooled audio; the first uses spectral norm."""

    def __init__(self, num_scales=3, channels=(128, 128, 256, 512, 1024, 1024, 1024), leaky_relu_slope=0.1):
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(channels, use_spectral_norm=(i == 0), leaky_relu_slope=leaky_relu_slope)
            for i in range(num_scales)
        )
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, waveform: torch.Tensor):
        hidden = _as_batch_channel(waveform)
        scores, features = [], []
        for i, discriminator in enumerate(self.discriminators):
            if i > 0:
                hidden = self.pool(hidden)
            score, feature = discriminator(hidden)
            scores.append(score)
            features.append(feature)
        return scores, features


class HifiGanDiscriminator(nn.Module):
    """MPD + MSD as one module: `forward` concatenates their score and feature lists (8 sub-discriminators)."""

    def __init__(
        self,
        mpd_periods=(2, 3, 5, 7, 11),
        mpd_channels=(32, 128, 512, 1024, 1024),
        msd_num_scales=3,
        msd_channels=(128, 128, 256, 512, 1024, 1024, 1024),
        leaky_relu_slope=0.1,
    ):
        super().__init__()
        self.mpd = MultiPeriodDiscriminator(mpd_periods, mpd_channels, leaky_relu_slope) if mpd_periods else None
        self.msd = MultiScaleDiscriminator(msd_num_scales, msd_channels, leaky_relu_slope) if msd_num_scales else None

    @classmethod
    def from_config(cls, config):
        """Build from a [`UnitHifiGanVocoderConfig`] (or anything with the same `mpd_*` / `msd_*` fields)."""
        return cls(config.mpd_periods, config.mpd_channels, config.msd_num_scales, config.msd_channels)

    def forward(self, waveform: torch.Tensor):
        scores, features = [], []
        for part in (self.mpd, self.msd):
            if part is not None:
                part_scores, part_features = part(waveform)
                scores.extend(part_scores)
                features.extend(part_features)
        return scores, features


__all__ = [
    "HifiGanDiscriminator",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "PeriodDiscriminator",
    "ScaleDiscriminator",
]
