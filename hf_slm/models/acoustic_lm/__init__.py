"""Acoustic LMs over codec codes conditioned on a prefix: AudioLM's coarse (semantic units -> first codebooks) and
fine (first codebooks -> the rest) stages."""

from .configuration_acoustic_lm import AcousticLMConfig
from .modeling_acoustic_lm import AcousticLMForCausalLM, AcousticLMPreTrainedModel

__all__ = ["AcousticLMConfig", "AcousticLMForCausalLM", "AcousticLMPreTrainedModel"]
