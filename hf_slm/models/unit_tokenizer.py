"""Deprecated alias of `hf_slm.models.unit_encoder` (renamed in hf_slm 0.2), removed in hf_slm 0.3.

`from hf_slm.models.unit_tokenizer import KMeansUnitTokenizer` still works and gives `UnitEncoderModel`, with a
FutureWarning naming the new import."""

from __future__ import annotations

from . import unit_encoder
from .legacy_names import renamed_module_attributes

#: old name -> new name in `hf_slm.models.unit_encoder` (names not listed kept theirs)
RENAMED = {
    "KMeansUnitTokenizer": "UnitEncoderModel",
    "KMeansUnitTokenizerConfig": "UnitEncoderConfig",
    "KMeansUnitTokenizerOutput": "UnitEncoderOutput",
}


__getattr__, __dir__ = renamed_module_attributes(__name__, unit_encoder, RENAMED)

__all__: list[str] = []  # nothing new is exported from here
