"""VALL-E-style zero-shot TTS: phonemes + an acoustic prompt -> codebook 1 (autoregressive, VALL-E 2 grouped codes)
-> codebooks 2..Q (non-autoregressive) -> a codec decodes them."""

from .configuration_valle import VallEARConfig, VallENARConfig
from .modeling_valle import (
    VallEARModel,
    VallENARModel,
    VallEOutput,
    VallEPreTrainedModel,
    group_codes,
    ungroup_codes,
)

__all__ = [
    "VallEARConfig",
    "VallEARModel",
    "VallENARConfig",
    "VallENARModel",
    "VallEOutput",
    "VallEPreTrainedModel",
    "group_codes",
    "ungroup_codes",
]
