"""Sequence packing without cross-document attention: many short documents share one fixed-length row.

A packed row carries `position_ids` that restart at 0 for every document and **no** `attention_mask`. That is the
format transformers itself recognises as packed (`transformers.masking_utils.find_packed_sequence_indices`: a new
document starts wherever a position id is not its predecessor + 1), so the sdpa, eager and flex masks become
block-diagonal causal masks and the flash-attention path switches to its varlen kernel for a batch of one row -- no
token attends across a document boundary, and each document sees the positions it would see alone. `labels` are the
input ids with -100 at every document start (the token before it belongs to another document, so predicting it
would teach the model to guess the next utterance from the previous one) and on padding.

Two ways to use it, as in transformers' `DataCollatorWithFlattening` (which flattens a whole batch into one row of
variable length; it is the right choice for flash-attention varlen, see examples/pretraining/README.md):

- `pack_dataset(dataset, seq_length)` / `SequencePacker` as a `datasets.map(batched=True)` function: fixed-size rows
  built once and cached with the dataset; then `PackedSequenceCollator` stacks them (and pads short rows, padding
  being its own segment so it still needs no attention mask).
- `pack_sequences(list_of_token_lists, seq_length)` directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

PACKING_STRATEGIES = ("bfd", "wrapped")
IGNORE_INDEX = -100


def _split(sequence: list[int], seq_length: int) -> list[list[int]]:
    return [sequence[i : i + seq_length] for i in range(0, len(sequence), seq_length)]


def _positions_and_labels(batch: pa.Table) -> pa.Table:
    """From trl's `seq_lengths`: positions that restart at every piece, labels -100 at every piece's first token."""
    lengths = batch["seq_lengths"].combine_chunks()
    piece_lengths = lengths.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    ids = batch["input_ids"].combine_chunks()
    starts = np.repeat(np.cumsum(piece_lengths) - piece_lengths, piece_lengths)
    positions = np.arange(len(starts), dtype=np.int64) - starts
    source = batch["labels"].combine_chunks() if "labels" in batch.column_names else ids
    labels = np.where(positions == 0, IGNORE_INDEX, source.flatten().to_numpy(zero_copy_only=False)).astype(np.int64)
    offsets = ids.offsets
    columns = {
        "input_ids": pa.ListArray.from_arrays(offsets, ids.flatten().cast(pa.int64())),
        "position_ids": pa.ListArray.from_arrays(offsets, pa.array(positions)),
        "labels": pa.ListArray.from_arrays(offsets, pa.array(labels)),
    }
    return pa.table(columns)


def _pack_table(table: dict[str, list], seq_length: int, batch_size: int, **map_kwargs):
    """trl's best-fit-decreasing packer (`bfd_split`: a piece longer than a row is split, nothing dropped)."""
    from datasets import Dataset
    from trl import pack_dataset as trl_pack_dataset

    dataset = table if not isinstance(table, dict) else Dataset.from_dict(table)
    packed = trl_pack_dataset(dataset, seq_length, "bfd_split", map_kwargs={"batch_size": batch_size, **map_kwargs})
    map_kwargs.pop("desc", None)
    packed = packed.with_format("arrow").map(
        _positions_and_labels, batched=True, batch_size=batch_size, remove_columns=packed.column_names, **map_kwargs
    )
    return packed.with_format(None)


def _check_arguments(seq_length: int, strategy: str) -> None:
    if strategy not in PACKING_STRATEGIES:
        raise ValueError(f"strategy must be one of {PACKING_STRATEGIES}, got {strategy!r}")
    if isinstance(seq_length, bool) or not isinstance(seq_length, int) or seq_length < 1:
        raise ValueError(f"seq_length must be a positive int, got {seq_length!r}")


def _pack_wrapped(sequences: list[list[int]], labels: list[list[int]], seq_length: int) -> dict[str, list[list[int]]]:
    """Ours, not trl's `wrapped`: trl's drops the document boundaries, so documents in a row would attend to each other."""
    # one stream, cut every seq_length tokens; a piece is a run of one document inside one row
    stream = [(doc, pos) for doc, ids in enumerate(sequences) for pos in range(len(ids))]
    out = {"input_ids": [], "position_ids": [], "labels": []}
    for row in _split(stream, seq_length):
        starts = [k == 0 or row[k - 1][0] != doc for k, (doc, _) in enumerate(row)]
        out["input_ids"].append([sequences[doc][pos] for doc, pos in row])
        out["labels"].append([IGNORE_INDEX if s else labels[doc][pos] for s, (doc, pos) in zip(starts, row)])
        position, positions = 0, []
        for s in starts:
            position = 0 if s else position + 1
            positions.append(position)
        out["position_ids"].append(positions)
    return out


def pack_sequences(
    sequences: Sequence[Sequence[int]],
    seq_length: int,
    strategy: str = "bfd",
    labels: Sequence[Sequence[int]] | None = None,
) -> dict[str, list[list[int]]]:
    """Pack token sequences into rows of at most `seq_length` tokens; every input token lands in exactly one row.

    Args:
        sequences: token ids of each document.
        seq_length: row length. A document longer than this is cut into `seq_length` pieces, each packed as a
            document of its own (positions restart; nothing is dropped).
        strategy: `"bfd"` (trl's best-fit decreasing, `trl.pack_dataset(strategy="bfd_split")`: whole documents, the
            fewest rows, a row ends short when nothing else fits; ~1-3 % padding on utterance-length data) or
            `"wrapped"` (documents back to back in dataset order, cut at row ends, every row full but the last; a cut
            document continues at position 0 in the next row).
        labels: per-document labels (e.g. -100 on a prompt); default: the input ids.

    Returns:
        `{"input_ids", "position_ids", "labels"}`, one list per row. `labels` is -100 at each piece's first token.
    """
    _check_arguments(seq_length, strategy)
    sequences = [list(map(int, s)) for s in sequences]
    if labels is None:
        labels = sequences
    else:
        labels = [list(map(int, s)) for s in labels]
        if len(labels) != len(sequences):
            raise ValueError(f"got {len(labels)} label sequences for {len(sequences)} documents")
        for i, (ids, lab) in enumerate(zip(sequences, labels)):
            if len(ids) != len(lab):
                raise ValueError(f"document {i}: {len(ids)} input ids but {len(lab)} labels")
    if strategy == "wrapped":
        return _pack_wrapped(sequences, labels, seq_length)
    if not any(sequences):
        return {"input_ids": [], "position_ids": [], "labels": []}
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    table, shown = {"input_ids": sequences, "labels": labels}, not are_progress_bars_disabled()
    disable_progress_bars()  # a call on a Python list, not a dataset job: no "Map" bars
    try:
        return _pack_table(table, seq_length, batch_size=max(1, len(sequences)), keep_in_memory=True).to_dict()
    finally:
        if shown:
            enable_progress_bars()


@dataclass
class SequencePacker:
    """A `datasets.map(batched=True, remove_columns=...)` function that packs one map batch into rows.

    Documents never cross map batches, so a larger `batch_size` in `map` packs tighter (the last row of each map
    batch may be short). A plain dataclass, so datasets' fingerprint (and thus its cache) is stable across runs.
    """

    seq_length: int
    strategy: str = "bfd"
    input_column: str = "input_ids"
    labels_column: str | None = None

    def __post_init__(self):
        _check_arguments(self.seq_length, self.strategy)  # now, not at the first batch

    def __call__(self, batch: dict[str, list]) -> dict[str, list[list[int]]]:
        if self.input_column not in batch:
            raise ValueError(f"no column {self.input_column!r} to pack; columns: {sorted(batch)}")
        labels = batch[self.labels_column] if self.labels_column else None
        return pack_sequences(batch[self.input_column], self.seq_length, self.strategy, labels)


def pack_dataset(dataset, seq_length: int, strategy: str = "bfd", batch_size: int = 2000, **map_kwargs):
    """Pack the `input_ids` column of a `datasets.Dataset` into rows (`input_ids`, `position_ids`, `labels`).

    `"bfd"` runs trl's Arrow packer (`trl.pack_dataset(strategy="bfd_split")`) and adds the per-document positions
    and labels. The other columns are dropped.
    `map_kwargs` go to `Dataset.map` (`num_proc`, `desc`, `load_from_cache_file`, ...); a file-backed dataset keeps
    the packed rows in datasets' cache, keyed by its fingerprint.
    """
    _check_arguments(seq_length, strategy)
    if "input_ids" not in dataset.column_names:
        raise ValueError(f"no column 'input_ids' to pack; columns: {dataset.column_names}")
    map_kwargs.setdefault("desc", f"packing into rows of {seq_length} ({strategy})")
    if strategy == "bfd":
        dataset = dataset.select_columns(["input_ids"])
        return _pack_table(dataset, seq_length, batch_size, **map_kwargs)
    packer = SequencePacker(seq_length=seq_length, strategy=strategy)
    return dataset.map(packer, batched=True, batch_size=batch_size, remove_columns=dataset.column_names, **map_kwargs)


@dataclass
class PackedSequenceCollator:
    """Stack packed rows into a `Trainer` batch: `input_ids`, `position_ids`, `labels`, and no `attention_mask`.

    Rows shorter than the longest (or than `pad_to_multiple_of`) are right-padded with `pad_token_id`; the padding
    gets positions 0, 1, ... so transformers sees it as one more document (nothing real attends to it) and labels
    -100. A row without `labels` is labelled from its `position_ids` (-100 at each document start).

    The batch also carries `use_cache=False`: transformers looks for packed documents only when the forward pass has
    no KV cache, and a backbone whose own `config.use_cache` is True builds one even in training (the `Trainer` only
    switches off `use_cache` on the outer model's config, which a wrapper such as `SpeechLMForCausalLM` does not
    forward). Without it the documents of a row silently attend to each other. `disable_cache=False` leaves it out.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    disable_cache: bool = True

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        rows = []
        for i, feature in enumerate(features):
            if feature.get("position_ids") is None:
                raise ValueError(
                    f"feature {i} has no position_ids: pack the dataset first (hf_slm.training.pack_dataset) or use "
                    "CausalLMCollator for unpacked rows"
                )
            ids = torch.as_tensor(feature["input_ids"], dtype=torch.long)
            positions = torch.as_tensor(feature["position_ids"], dtype=torch.long)
            if ids.dim() != 1 or ids.shape != positions.shape or ids.numel() == 0:
                raise ValueError(
                    f"feature {i}: input_ids {tuple(ids.shape)} and position_ids {tuple(positions.shape)} must be "
                    "the same non-empty 1-D length"
                )
            if feature.get("labels") is not None:
                labels = torch.as_tensor(feature["labels"], dtype=torch.long)
            else:
                labels = ids.masked_fill(positions == 0, IGNORE_INDEX)
            rows.append((ids, positions, labels))
        length = max(len(r[0]) for r in rows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {"input_ids": [], "position_ids": [], "labels": []}
        for ids, positions, labels in rows:
            pad = length - len(ids)
            batch["input_ids"].append(torch.cat([ids, ids.new_full((pad,), self.pad_token_id)]))
            batch["position_ids"].append(torch.cat([positions, torch.arange(pad)]))
            batch["labels"].append(torch.cat([labels, labels.new_full((pad,), IGNORE_INDEX)]))
        batch = {key: torch.stack(value) for key, value in batch.items()}
        if self.disable_cache:
            batch["use_cache"] = False
        return batch


__all__ = [
    "IGNORE_INDEX",
    "PACKING_STRATEGIES",
    "PackedSequenceCollator",
    "SequencePacker",
    "pack_dataset",
    "pack_sequences",
]
