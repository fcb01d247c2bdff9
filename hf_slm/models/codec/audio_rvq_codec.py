"""The log-mel of `RVQCodecModel`'s reconstruction loss (HiFi-GAN's convention, as the unit vocoders use)."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

#: Floor of the mel magnitude before the log (HiFi-GAN's clamp), also the log-mel of silence.
LOG_MEL_FLOOR = 1e-5


class CodecLogMel(nn.Module):
    """Waveform [B, S] -> natural-log magnitude slaney mel [B, frames, n_mels], floored at 1e-5, centred STFT.

    HiFi-GAN's loss mel (the unit vocoders use the same convention); computed in float32.
    """

    def __init__(self, sampling_rate, n_fft, hop_length, win_length, n_mels, f_min=0.0, f_max=None):
        super().__init__()
        self.hop_length = hop_length
        self.n_fft = n_fft
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sampling_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=win_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            power=1.0,
            center=True,
            pad_mode="reflect",
            norm="slaney",
            mel_scale="slaney",
        )

    def forward(self, waveform):
        if waveform.shape[-1] <= self.n_fft // 2:
            raise ValueError(
                f"waveform has {waveform.shape[-1]} samples; the loss mel (reflect padding of n_fft // 2 = "
                f"{self.n_fft // 2}) needs more: use longer segments or a smaller mel_n_fft"
            )
        return torch.log(torch.clamp(self.mel(waveform.float()), min=LOG_MEL_FLOOR)).transpose(1, 2)


__all__ = ["LOG_MEL_FLOOR", "CodecLogMel"]
