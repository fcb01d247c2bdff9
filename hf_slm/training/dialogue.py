"""Trainer collators for duplex LMs on two-channel dialogue units (`hf_slm.data.dialogue_units`): dGSLM's
`DialogueLMForCausalLM` on `[2, T]` units, the Moshi-style `MultiStreamSpeechLMForCausalLM` on `[S, T]` parallel
streams (system, user, optional text). Long dialogues are cut into windows of `max_frames` at a random offset drawn
from the collator's own seeded generator (the same batches for the same seed and order)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.dialogue_units import TEXT_VOCAB_SIZE, dialogue_streams
from ..models.dialogue_lm import DialogueLMConfig, DialogueLMForCausalLM
from ..models.speech_lm import MultiStreamSpeechLMConfig, MultiStreamSpeechLMForCausalLM

#: The duplex LMs `duplex_lm` builds: dGSLM's two towers, Moshi-style parallel streams, the latter with text.
DUPLEX_KINDS = ("dgslm", "moshi", "moshi_text")


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


class _WindowedRows:
    """Cuts rows to `max_frames` at offsets from a generator seeded with `seed`, then right-pads them."""

    max_frames: int | None
    seed: int

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.seed)

    def _batch(self, features: list[dict], key: str, num_streams: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _pad(_crop(_rows(features, key, num_streams), self.max_frames, self.generator), 0)


@dataclass
class DialogueUnitsCollator(_WindowedRows):
    """Rows `{"units": [2][T]}` -> `DialogueLMForCausalLM` batches: `input_ids` `[B, 2, L]` (right-padded),
    `attention_mask` `[B, L]`, `labels` (-100 on padding)."""

    max_frames: int | None = None
    seed: int = 0

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        input_ids, mask = self._batch(features, "units", 2)
        return {"input_ids": input_ids, "attention_mask": mask,
                "labels": input_ids.masked_fill(~mask.bool()[:, None], -100)}  # fmt: skip


@dataclass
class DialogueStreamsCollator(_WindowedRows):
    """Rows `{"streams": [S][T]}` (`hf_slm.data.dialogue_units.dialogue_streams`) -> the multi-stream LM's
    `prepare_inputs` batch (`<s>` frame, delay pattern, -100 labels), on the CPU (the Trainer moves it)."""

    model: torch.nn.Module
    max_frames: int | None = None
    seed: int = 0

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        streams, mask = self._batch(features, "streams", self.model.config.num_streams)
        return {k: v.cpu() for k, v in self.model.prepare_inputs(streams, mask).items()}


def duplex_lm(kind: str, num_units: int, silence_unit: int | None = None, frame_rate: float = 50.0,
              hidden_size: int = 64, num_hidden_layers: int = 2, num_attention_heads: int = 4, max_duration: int = 8,
              dropout: float = 0.0):  # fmt: skip
    """A duplex LM of `kind` (`DUPLEX_KINDS`) of the given size: `"dgslm"` a `DialogueLMForCausalLM`; `"moshi"` /
    `"moshi_text"` a `MultiStreamSpeechLMForCausalLM(stream_kind="dialogue")` on a Llama backbone with the system
    and user streams (and the text stream)."""
    if kind not in DUPLEX_KINDS:
        raise ValueError(f"kind must be one of {DUPLEX_KINDS}, got {kind!r}")
    if kind == "dgslm":
        return DialogueLMForCausalLM(DialogueLMConfig(
            num_units=num_units, hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
            num_attention_heads=num_attention_heads, max_duration=max_duration, dropout=dropout,
            silence_unit=silence_unit, frame_rate=frame_rate))  # fmt: skip
    backbone = {"model_type": "llama", "hidden_size": hidden_size, "intermediate_size": 4 * hidden_size,
                "num_hidden_layers": num_hidden_layers, "num_attention_heads": num_attention_heads,
                "num_key_value_heads": num_attention_heads, "max_position_embeddings": 4096,
                "attention_dropout": dropout}  # fmt: skip
    sizes = ([TEXT_VOCAB_SIZE] if kind == "moshi_text" else []) + [num_units, num_units]
    return MultiStreamSpeechLMForCausalLM(MultiStreamSpeechLMConfig(text_config=backbone, stream_vocab_sizes=sizes,
                                                                    stream_kind="dialogue", frame_rate=frame_rate))


def duplex_rows(model, units: list[torch.Tensor], dialogues=None, system_channel: int = 1) -> list[dict]:
    """Training rows of `model`'s collator: `{"units"}` for dGSLM, `{"streams"}` (`dialogue_streams`; with the
    system's text when the model has a text stream, from `dialogues`' word timestamps) for the multi-stream LM."""
    if isinstance(model, DialogueLMForCausalLM):
        return [{"units": u.tolist()} for u in units]
    text = model.config.num_streams == 3
    if text and dialogues is None:
        raise ValueError("a model with a text stream needs the dialogues (their word timestamps)")
    rate = model.config.frame_rate
    return [{"streams": dialogue_streams(u, system_channel, dialogues[i] if text else None, rate).tolist()}
            for i, u in enumerate(units)]  # fmt: skip


def duplex_collator(model, max_frames: int | None = None, seed: int = 0):
    """The Trainer collator of `model` (`DialogueUnitsCollator` or `DialogueStreamsCollator`). Its rows' keys are
    not the model's arguments: train with `TrainingArguments(remove_unused_columns=False)`."""
    if isinstance(model, DialogueLMForCausalLM):
        return DialogueUnitsCollator(max_frames=max_frames, seed=seed)
    return DialogueStreamsCollator(model, max_frames=max_frames, seed=seed)


@torch.no_grad()
def generate_duplex(model, prompts: torch.Tensor, max_new_frames: int, temperature: float = 1.0, seed: int = 0,
                    system_channel: int = 1, text_prompts: torch.Tensor | None = None) -> torch.LongTensor:
    """Continue two-channel unit prompts `[B, 2, T]` with either duplex LM: `[B, 2, T + max_new_frames]` (prompt
    included, channel order kept). A multi-stream LM with a text stream is prompted with `text_prompts` `[B, T]`
    (the system's text stream) and generates its text too (dropped here)."""
    prompts = torch.as_tensor(prompts).long()
    generator = torch.Generator(device=model.device).manual_seed(seed)
    if isinstance(model, DialogueLMForCausalLM):
        new = model.generate(prompts, max_new_frames=max_new_frames, temperature=temperature, generator=generator)
        return torch.cat([prompts, new.cpu()], dim=-1)
    streams = torch.stack([prompts[:, system_channel], prompts[:, 1 - system_channel]], dim=1)
    if model.config.num_streams == 3:
        if text_prompts is None:
            raise ValueError("a model with a text stream needs `text_prompts` [batch, frames]")
        streams = torch.cat([torch.as_tensor(text_prompts).long()[:, None], streams], dim=1)
    new = model.generate(streams, max_new_frames=max_new_frames, temperature=temperature, generator=generator).cpu()
    system, user = new[:, -2], new[:, -1]
    channels = [user, system] if system_channel == 1 else [system, user]
    return torch.cat([prompts, torch.stack(channels, dim=1)], dim=-1)


__all__ = [
    "DUPLEX_KINDS",
    "DialogueStreamsCollator",
    "DialogueUnitsCollator",
    "duplex_collator",
    "duplex_lm",
    "duplex_rows",
    "generate_duplex",
]
