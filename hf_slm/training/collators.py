"""Batch collators for the HF `Trainer`: pad variable-length unit / token sequences and their targets."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence


def _as_long(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.long)


@dataclass
class CausalLMCollator:
    """Pad ``input_ids`` (and optional ``labels``) right; padded label positions are -100 so they carry no loss.

    Rows without ``labels`` are trained on every real token (the causal LM shifts labels itself).
    """

    pad_token_id: int
    max_length: int | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        ids = [_as_long(f["input_ids"])[: self.max_length] for f in features]
        if any(x.numel() == 0 for x in ids):
            raise ValueError("a row has an empty input_ids sequence")
        labels = [
            _as_long(f["labels"])[: self.max_length] if "labels" in f and f["labels"] is not None else x.clone()
            for f, x in zip(features, ids)
        ]
        mask = [torch.ones_like(x) for x in ids]
        return {
            "input_ids": pad_sequence(ids, batch_first=True, padding_value=self.pad_token_id),
            "attention_mask": pad_sequence(mask, batch_first=True, padding_value=0),
            "labels": pad_sequence(labels, batch_first=True, padding_value=-100),
        }


__all__ = ["CausalLMCollator"]
