"""Deprecated alias of `hf_slm.models.codec` (renamed in hf_slm 0.2), removed in hf_slm 0.3.

`from hf_slm.models.codec_tokenizer import CodecTokenizer` still works and gives `CodecModel`, with a FutureWarning
naming the new import. The output classes follow transformers' Encodec now: the old `CodecOutput` (what `encode`
returns) is `CodecEncoderOutput`, and the old `CodecModelOutput` (what `forward` returns) is `CodecOutput`. Names
imported from this module keep their old meaning."""

from __future__ import annotations

import warnings

from . import codec

#: old name -> new name in `hf_slm.models.codec` (names not listed kept theirs)
RENAMED = {
    "CodecTokenizer": "CodecModel",
    "CodecTokenizerConfig": "CodecConfig",
    "CodecOutput": "CodecEncoderOutput",
    "CodecModelOutput": "CodecOutput",
    "RVQCodec": "RVQCodecModel",
}


def __getattr__(name: str):
    new = RENAMED.get(name, name)
    if name.startswith("__") or new not in codec.__all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    what = f"{name} was renamed {new}"
    if new == name:
        what = "hf_slm.models.codec_tokenizer was renamed hf_slm.models.codec"
    warnings.warn(
        f"{what} in hf_slm 0.2; the old name is removed in hf_slm 0.3: use "
        f"`from hf_slm.models.codec import {new}` (or `hf_slm.{new}`)",
        FutureWarning,
        stacklevel=2,
    )
    return getattr(codec, new)


def __dir__():
    return sorted(set(codec.__all__) | set(RENAMED))


__all__: list[str] = []  # nothing new is exported from here
