"""Configuration of the SpiRit-LM-style expressive (pitch / style) tokenizer."""

from __future__ import annotations

from transformers import PretrainedConfig

#: F0 reference of the log2 pitch features (Hz).
F0_REFERENCE = 100.0


class ExpressiveEncoderConfig(PretrainedConfig):
    r"""
    Configuration of [`ExpressiveEncoderModel`].

    Args:
        sampling_rate (`int`, defaults to 16000): audio rate the tokenizer reads (other rates are resampled).
        frame_rate (`float`, defaults to 50.0): F0 / mel analysis frames per second (the unit frame rate).
        num_pitch_tokens (`int`, defaults to 64): pitch codebook size (SpiRit-LM: 64).
        pitch_frames (`int`, defaults to 4): analysis frames per pitch token (4 at 50 Hz = 12.5 Hz, SpiRit-LM's rate).
        num_style_tokens (`int`, defaults to 16): style codebook size (SpiRit-LM: 100).
        style_frames (`int`, defaults to 50): analysis frames per style token (50 at 50 Hz = 1 Hz).
        num_mel_bins (`int`, defaults to 24): mel bands of the style statistics.
        f0_min, f0_max (`float`, defaults to 60 / 400 Hz): F0 search range.
    """

    model_type = "hf_slm_expressive_encoder"

    def __init__(
        self,
        sampling_rate: int = 16000,
        frame_rate: float = 50.0,
        num_pitch_tokens: int = 64,
        pitch_frames: int = 4,
        num_style_tokens: int = 16,
        style_frames: int = 50,
        num_mel_bins: int = 24,
        f0_min: float = 60.0,
        f0_max: float = 400.0,
        **kwargs,
    ):
        for name, value in (
            ("sampling_rate", sampling_rate),
            ("num_pitch_tokens", num_pitch_tokens),
            ("pitch_frames", pitch_frames),
            ("num_style_tokens", num_style_tokens),
            ("style_frames", style_frames),
            ("num_mel_bins", num_mel_bins),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not isinstance(frame_rate, (int, float)) or frame_rate <= 0:
            raise ValueError(f"frame_rate must be a positive number, got {frame_rate!r}")
        hop = sampling_rate / frame_rate
        if abs(hop - round(hop)) > 1e-6:
            raise ValueError(f"sampling_rate / frame_rate must be a whole number of samples, got {sampling_rate}/{frame_rate}")
        if not 0 < f0_min < f0_max < sampling_rate / 2:
            raise ValueError(f"need 0 < f0_min < f0_max < sampling_rate / 2, got {f0_min}, {f0_max}")
        self.sampling_rate = sampling_rate
        self.frame_rate = float(frame_rate)
        self.num_pitch_tokens = num_pitch_tokens
        self.pitch_frames = pitch_frames
        self.num_style_tokens = num_style_tokens
        self.style_frames = style_frames
        self.num_mel_bins = num_mel_bins
        self.f0_min = float(f0_min)
        self.f0_max = float(f0_max)
        super().__init__(**kwargs)

    @property
    def hop_length(self) -> int:
        return round(self.sampling_rate / self.frame_rate)

    @property
    def pitch_rate(self) -> float:
        """Pitch tokens per second (12.5 by default)."""
        return self.frame_rate / self.pitch_frames

    @property
    def style_rate(self) -> float:
        """Style tokens per second (1 by default)."""
        return self.frame_rate / self.style_frames

    @property
    def pitch_feature_dim(self) -> int:
        return 2 * self.pitch_frames  # log2(F0 / 100 Hz) and voicing per frame

    @property
    def style_feature_dim(self) -> int:
        return 2 * self.num_mel_bins + 5  # mel mean / std, F0 mean / std / voiced fraction, energy mean / std

    @property
    def produces(self) -> dict:
        return {"expressive.pitch_rate": self.pitch_rate, "expressive.style_rate": self.style_rate}


__all__ = ["ExpressiveEncoderConfig", "F0_REFERENCE"]
