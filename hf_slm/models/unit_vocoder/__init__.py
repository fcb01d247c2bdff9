"""Unit vocoders: discrete units -> waveform.

- `UnitHifiGanVocoder`: the unit HiFi-GAN of speech resynthesis (Polyak et al., 2021), with optional duration
  predictor, speaker and F0 conditioning; trained against `HifiGanDiscriminator` (MPD + MSD) with the HiFi-GAN losses.
- `UnitMelVocoder`: units -> log-mel -> Griffin-Lim (input-enhanced synthesis; trains with the plain `Trainer`).
- `griffin_lim_from_mel`: the pure signal-processing baseline.
"""

from .audio_unit_vocoder import LogMelSpectrogram, griffin_lim_from_mel
from .configuration_unit_vocoder import UnitHifiGanVocoderConfig, UnitMelVocoderConfig
from .discriminators_unit_vocoder import (
    HifiGanDiscriminator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    PeriodDiscriminator,
    ScaleDiscriminator,
)
from .losses_unit_vocoder import discriminator_loss, feature_matching_loss, generator_adversarial_loss, mel_l1_loss
from .modeling_unit_mel_vocoder import UnitMelVocoder
from .modeling_unit_vocoder import UnitHifiGanVocoder, UnitVocoderOutput

__all__ = [
    "HifiGanDiscriminator",
    "LogMelSpectrogram",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "PeriodDiscriminator",
    "ScaleDiscriminator",
    "UnitHifiGanVocoder",
    "UnitHifiGanVocoderConfig",
    "UnitMelVocoder",
    "UnitMelVocoderConfig",
    "UnitVocoderOutput",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "griffin_lim_from_mel",
    "mel_l1_loss",
]
