"""Deprecated alias of `hf_slm.models.unit_encoder` (renamed in hf_slm 0.2), removed in hf_slm 0.3.

`from hf_slm.models.unit_tokenizer import KMeansUnitTokenizer` still works and gives `UnitEncoderModel`, with a
FutureWarning naming the new import."""

from __future__ import annotations

import warnings

from . import unit_encoder

#: old name -> new name in `hf_slm.models.unit_encoder` (names not listed kept theirs)
RENAMED = {
    "KMeansUnitTokenizer": "UnitEncoderModel",
    "KMeansUnitTokenizerConfig": "UnitEncoderConfig",
    "KMeansUnitTokenizerOutput": "UnitEncoderOutput",
}


def __getattr__(name: str):
    new = RENAMED.get(name, name)
    if name.startswith("__") or new not in unit_encoder.__all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    what = f"{name} was renamed {new}"
    if new == name:
        what = "hf_slm.models.unit_tokenizer was renamed hf_slm.models.unit_encoder"
    warnings.warn(
        f"{what} in hf_slm 0.2; the old name is removed in hf_slm 0.3: use "
        f"`from hf_slm.models.unit_encoder import {new}` (or `hf_slm.{new}`)",
        FutureWarning,
        stacklevel=2,
    )
    return getattr(unit_encoder, new)


def __dir__():
    return sorted(set(unit_encoder.__all__) | set(RENAMED))


__all__: list[str] = []  # nothing new is exported from here
