"""Batches of (units, waveform) pairs for vocoder training, with HiFi-GAN-style random aligned segments."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence


def _to_tensor(value, dtype, name, index):
    if value is None:
        raise ValueError(f"feature {index} has no {name!r}")
    if hasattr(value, "get_all_samples"):  # a torchcodec AudioDecoder (datasets' Audio feature)
        value = value.get_all_samples().data.mean(0)
    elif isinstance(value, dict) and "array" in value:
        value = value["array"]
    tensor = torch.as_tensor(np.asarray(value), dtype=dtype)
    if tensor.dim() != 1:
        raise ValueError(f"feature {index}: {name!r} must be 1-D (mono audio / one unit per frame), got {tuple(tensor.shape)}")
    return tensor


@dataclass
class UnitVocoderCollator:
    """Pad `input_ids` (units at the vocoder's frame rate) and their target audio into a vocoder training batch.

    Each feature is a dict with `input_ids` (1-D units) and `audio` (1-D float waveform at the vocoder's sampling
    rate, or a `{"array": ...}` dict / torchcodec decoder) or `labels`; optional `durations` (deduplicated units),
    `speaker_id`. The target of item i is cut or zero-padded to `len(units) * hop_length` samples (unit frame t starts
    at sample t * hop_length) and `labels_mask` marks its real samples.

    `segment_units` crops a random window of that many unit frames and the matching audio from every longer item
    (HiFi-GAN trains on 8960-sample segments, i.e. 28 frames of 320 samples), which bounds memory and lets a batch
    hold many utterances. Cropping needs one unit per frame, so it is refused together with `durations`.

    Crops are drawn from Python's `random` (seeded and checkpointed by the `Trainer`) for the whole global batch:
    on `num_shards` data-parallel ranks each call draws `num_shards x len(features)` offsets and rank
    `shard_index` uses its slice, so rank r's items get the crops that one process with the global batch gives
    them (rank r holds the r-th part of each global batch under accelerate's sharded sampler).

    Returns `input_ids`, `attention_mask`, `labels`, `labels_mask` (always, so the `Trainer` sees both label
    columns), plus `durations` / `speaker_id` when the features have them.
    """

    hop_length: int
    segment_units: int | None = None
    pad_unit_id: int = 0
    num_shards: int = 1
    shard_index: int = 0

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        if self.hop_length < 1:
            raise ValueError(f"hop_length must be >= 1, got {self.hop_length}")
        has_durations = all(f.get("durations") is not None for f in features)
        if self.segment_units is not None and has_durations:
            raise ValueError("segment_units cannot crop deduplicated units (features have durations)")
        ids, waves, durations = [], [], []
        offsets = [random.random() for _ in range(self.num_shards * len(features))] if self.segment_units else []
        offsets = offsets[self.shard_index * len(features) : (self.shard_index + 1) * len(features)]
        for i, feature in enumerate(features):
            units = _to_tensor(feature.get("input_ids"), torch.long, "input_ids", i)
            audio = feature.get("audio", feature.get("labels"))
            wave = _to_tensor(audio, torch.float32, "audio", i)
            dur = _to_tensor(feature["durations"], torch.long, "durations", i) if has_durations else None
            if units.numel() == 0:
                raise ValueError(f"feature {i} has no units")
            if dur is not None and dur.shape != units.shape:
                raise ValueError(f"feature {i}: durations {tuple(dur.shape)} do not match input_ids {tuple(units.shape)}")
            frames = int(dur.sum()) if dur is not None else units.numel()
            if self.segment_units is not None and units.numel() > self.segment_units:
                start = int(offsets[i] * (units.numel() - self.segment_units + 1))
                units = units[start : start + self.segment_units]
                wave = wave[start * self.hop_length :]
                frames = units.numel()
            wave = wave[: frames * self.hop_length]
            ids.append(units)
            waves.append(wave)
            durations.append(dur)
        target_lengths = [
            (int(d.sum()) if d is not None else u.numel()) * self.hop_length for u, d in zip(ids, durations)
        ]
        labels = torch.zeros(len(features), max(target_lengths))
        labels_mask = torch.zeros(len(features), max(target_lengths), dtype=torch.long)
        for i, wave in enumerate(waves):
            labels[i, : wave.numel()] = wave
            labels_mask[i, : wave.numel()] = 1
        batch = {
            "input_ids": pad_sequence(ids, batch_first=True, padding_value=self.pad_unit_id),
            "attention_mask": pad_sequence([torch.ones_like(u) for u in ids], batch_first=True, padding_value=0),
            "labels": labels,
            "labels_mask": labels_mask,
        }
        if has_durations:
            batch["durations"] = pad_sequence(durations, batch_first=True, padding_value=0)
        if all(f.get("speaker_id") is not None for f in features):
            batch["speaker_id"] = torch.as_tensor([int(f["speaker_id"]) for f in features], dtype=torch.long)
        return batch


__all__ = ["UnitVocoderCollator"]
