"""Trainer collators for duplex LMs on two-channel dialogue units (`hf_slm.data.dialogue_units`): dGSLM's
`DialogueLMForCausalLM` on `[2, T]` units, the Moshi-style `MultiStreamSpeechLMForCausalLM` on `[S, T]` parallel
streams (system, user, optional text). Long dialogues are cut into windows of `max_frames` at a random offset drawn
from the collator's own seeded generator (the same batches for the same seed and order)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


def _crop(rows: list[torch.Tensor], max_frames: int | None, generator: torch.Generator) -> list[torch.Tensor]:
    out = []
    for row in rows:
        if max_frames is not None and row.shape[-1] > max_frames:
            start = int(torch.randint(row.shape[-1] - max_frames + 1, (1,), generator=generator))
            row = row[..., start : start + max_frames]
        out.append(row)
    return out


def _pad(rows: list[torch.Tensor], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(row.shape[-1] for row in rows)
    batch = torch.full((len(rows), rows[0].shape[0], length), value, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        batch[i, :, : row.shape[-1]] = row
        mask[i, : row.shape[-1]] = 1
    return batch, mask


def _rows(features: list[dict], key: str, num_streams: int | None) -> list[torch.Tensor]:
    if not features:
        raise ValueError("cannot collate an empty batch")
    rows = [torch.as_tensor(f[key], dtype=torch.long) for f in features]
    for i, row in enumerate(rows):
        if row.dim() != 2 or row.shape[-1] == 0 or (num_streams is not None and row.shape[0] != num_streams):
            raise ValueError(f"row {i}: `{key}` must be [{num_streams or 'S'} streams, frames >= 1], got shape "
                             f"{tuple(row.shape)}")  # fmt: skip
    return rows


@dataclass
class DialogueUnitsCollator:
    """Rows `{"units": [2][T]}` -> `DialogueLMForCausalLM` batches: `input_ids` `[B, 2, L]` (right-padded),
    `attention_mask` `[B, L]`, `labels` (-100 on padding)."""

    max_frames: int | None = None
    seed: int = 0
    generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        rows = _crop(_rows(features, "units", 2), self.max_frames, self.generator)
        input_ids, mask = _pad(rows, 0)
        return {"input_ids": input_ids, "attention_mask": mask,
                "labels": input_ids.masked_fill(~mask.bool()[:, None], -100)}  # fmt: skip


@dataclass
class DialogueStreamsCollator:
    """Rows `{"streams": [S][T]}` (`hf_slm.data.dialogue_units.dialogue_streams`) -> the multi-stream LM's
    `prepare_inputs` batch (`<s>` frame, delay pattern, -100 labels), on the CPU (the Trainer moves it)."""

    model: torch.nn.Module
    max_frames: int | None = None
    seed: int = 0
    generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        rows = _crop(_rows(features, "streams", self.model.config.num_streams), self.max_frames, self.generator)
        streams, mask = _pad(rows, 0)
        return {k: v.cpu() for k, v in self.model.prepare_inputs(streams, mask).items()}


__all__ = ["DialogueStreamsCollator", "DialogueUnitsCollator"]
