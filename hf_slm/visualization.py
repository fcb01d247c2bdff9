"""Pictures a person would rather look at than numbers: waveform, spectrogram and the unit sequence over it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def log_mel(waveform: np.ndarray, sampling_rate: int, n_mels: int = 80, hop_length: int | None = None) -> np.ndarray:
    """Log-mel spectrogram [n_mels, frames] (torchaudio), for display."""
    import torchaudio

    hop_length = hop_length or sampling_rate // 100
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sampling_rate, n_fft=1024 if sampling_rate > 16000 else 512, hop_length=hop_length, n_mels=n_mels
    )(torch.as_tensor(waveform, dtype=torch.float32))
    return torch.log(mel.clamp_min(1e-5)).numpy()


def plot_speech_units(
    panels: list[tuple[str, np.ndarray, int, np.ndarray | None, float | None]],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Write a PNG with, per panel, the waveform, the log-mel spectrogram and the units drawn over it.

    Each panel is ``(label, waveform, sampling_rate, units or None, unit frame rate or None)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2 * len(panels), 1, figsize=(12, 3.2 * len(panels)), squeeze=False)
    for i, (label, wav, sr, units, frame_rate) in enumerate(panels):
        wav = np.asarray(wav, dtype=np.float32)
        duration = len(wav) / sr
        ax_w, ax_s = axes[2 * i, 0], axes[2 * i + 1, 0]
        ax_w.plot(np.arange(len(wav)) / sr, wav, linewidth=0.5)
        ax_w.set_xlim(0, duration)
        ax_w.set_ylabel("amplitude")
        ax_w.set_title(label)
        spec = log_mel(wav, sr)
        ax_s.imshow(spec, origin="lower", aspect="auto", extent=(0, duration, 0, spec.shape[0]), cmap="magma")
        ax_s.set_ylabel("mel bin")
        ax_s.set_xlabel("time (s)")
        if units is not None and frame_rate:
            units = np.asarray(units)
            times = (np.arange(len(units)) + 0.5) / frame_rate
            ax_u = ax_s.twinx()
            ax_u.step(times, units, where="mid", color="cyan", linewidth=0.9)
            ax_u.set_ylabel("unit id", color="cyan")
            # label each run of identical units once, where it starts (readable for short clips)
            change = np.flatnonzero(np.diff(units, prepend=-1))
            if len(change) <= 60:
                for j in change:
                    ax_u.text(times[j], units[j], str(int(units[j])), color="white", fontsize=6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["log_mel", "plot_speech_units"]
