"""Helpers shared by the converters: reading source checkpoints safely and folding weight norm."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch


def read_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def load_torch_checkpoint(path: str | os.PathLike) -> dict:
    """`torch.load(..., weights_only=True)` on CPU: tensors, dicts, lists and numbers only, never arbitrary code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError subclasses with long texts; keep the cause attached
        raise ValueError(
            f"{path} is not a plain tensor checkpoint that torch.load(weights_only=True) accepts: {err}"
        ) from err


def _norm_except(v: torch.Tensor, dim: int) -> torch.Tensor:
    dims = [d for d in range(v.dim()) if d != dim]
    return v.norm(2, dim=dims, keepdim=True)


def fold_weight_norm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace every weight-normed pair by the plain weight `g * v / ||v||`.

    Accepts both parametrisations torch writes: the legacy hook (`X.weight_g`, `X.weight_v`, what speech-resynthesis,
    fairseq and textlesslib checkpoints hold) and `torch.nn.utils.parametrizations.weight_norm`
    (`X.parametrizations.weight.original0` / `original1`). The norm runs over every dimension but the one where `g`
    is not 1 (dim 0 for torch's default, also for transposed convolutions).
    """
    out: dict[str, torch.Tensor] = {}
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        for g_suffix, v_suffix, stem_suffix in (
            (".weight_g", ".weight_v", ".weight"),
            (".parametrizations.weight.original0", ".parametrizations.weight.original1", ".weight"),
        ):
            if key.endswith(g_suffix):
                pairs.setdefault(key[: -len(g_suffix)] + stem_suffix, {})["g"] = value
                break
            if key.endswith(v_suffix):
                pairs.setdefault(key[: -len(v_suffix)] + stem_suffix, {})["v"] = value
                break
        else:
            out[key] = value
    for name, pair in pairs.items():
        if set(pair) != {"g", "v"}:
            raise ValueError(f"weight norm of {name} is incomplete: found only {sorted(pair)}")
        g, v = pair["g"].float(), pair["v"].float()
        if g.dim() != v.dim():
            raise ValueError(f"weight norm of {name}: g {tuple(g.shape)} and v {tuple(v.shape)} differ in rank")
        dim = next((d for d in range(g.dim()) if g.shape[d] != 1), 0)
        out[name] = (v * (g / _norm_except(v, dim))).to(pair["v"].dtype)
    return out


def strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}


def load_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """`load_state_dict(strict=True)` with an error that names the source format."""
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"the converted {source} weights do not fit {type(model).__name__}: missing {result.missing_keys[:8]}, "
            f"unexpected {result.unexpected_keys[:8]}"
        )
