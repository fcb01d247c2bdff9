"""Deprecated alias of `hf_slm.models.codec` (renamed in hf_slm 0.2), removed in hf_slm 0.3.

`from hf_slm.models.codec_tokenizer import CodecTokenizer` still works and gives `CodecModel`, with a FutureWarning
naming the new import. The output classes follow transformers' Encodec now: the old `CodecOutput` (what `encode`
returns) is `CodecEncoderOutput`, and the old `CodecModelOutput` (what `forward` returns) is `CodecOutput`. Names
imported from this module keep their old meaning."""

from __future__ import annotations

from . import codec
from .legacy_names import renamed_module_attributes

#: old name -> new name in `hf_slm.models.codec` (names not listed kept theirs)
RENAMED = {
    "CodecTokenizer": "CodecModel",
    "CodecTokenizerConfig": "CodecConfig",
    "CodecOutput": "CodecEncoderOutput",
    "CodecModelOutput": "CodecOutput",
    "RVQCodec": "RVQCodecModel",
}


__getattr__, __dir__ = renamed_module_attributes(__name__, codec, RENAMED)

__all__: list[str] = []  # nothing new is exported from here
