"""How a list of utterances is cut into batches and spread over workers, for `UnitEncoderModel.tokenize`.

Utterances are sorted by length and grouped so that padding stays under a stated share of every batch; the batch
size and the number of workers follow the device and the size of the encoder:

- CUDA: one worker, batches of up to `max_batch_size` with up to half of each padded (the GPU is fed by one stream;
  fewer, larger batches are what pays there: HuBERT-base on an H200, 16 utterances of 6-10 s, ran 3.0x faster as one
  batch than as five batches of <= 10 % padding);
- CPU: one worker per torch thread, each running with one intra-op thread (independent workers keep both cores busy
  where one 2-thread op waits for its slower thread, which on a shared machine is most of the time); an SSL encoder
  runs one utterance per batch: on a CPU batching bought nothing at HuBERT-base size and lost at a tiny size (padding
  and the masked GroupNorm cost more than the batched products save); the MFCC front end (float64, exact under
  padding, cheap) batches. `docs/benchmarks.md` has the measurements behind these choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

#: padding bound of the GPU plan (see the module docstring)
GPU_MAX_PADDING = 0.5


@dataclass(frozen=True)
class TokenizationPlan:
    """Batching choices of `UnitEncoderModel.tokenize`: at most `batch_size` utterances per batch, padding at most
    `max_padding` of each batch's samples, `num_workers` batches in flight, each run with `threads_per_worker` torch
    intra-op threads (`None`: leave torch's setting alone)."""

    batch_size: int
    max_padding: float = 0.1
    num_workers: int = 1
    threads_per_worker: int | None = None

    def __post_init__(self):
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {self.batch_size!r}")
        if not 0 <= self.max_padding < 1:
            raise ValueError(f"max_padding must be in [0, 1), got {self.max_padding!r}")
        if not isinstance(self.num_workers, int) or self.num_workers < 1:
            raise ValueError(f"num_workers must be an int >= 1, got {self.num_workers!r}")


def default_plan(config, device: torch.device, max_batch_size: int = 16, num_workers: int | None = None) -> TokenizationPlan:
    """The plan for a tokenizer `config` on `device` (see the module docstring); `num_workers` overrides the CPU's
    default of one worker per torch thread (e.g. `datasets.map(num_proc=N)` gives each process its share)."""
    if torch.device(device).type != "cpu":
        return TokenizationPlan(batch_size=max_batch_size, max_padding=GPU_MAX_PADDING, num_workers=1)
    workers = num_workers or max(1, torch.get_num_threads())
    batch_size = 1 if config.frontend == "ssl" else max_batch_size
    return TokenizationPlan(batch_size=batch_size, num_workers=workers, threads_per_worker=1 if workers > 1 else None)


def length_buckets(lengths: Sequence[int], batch_size: int, max_padding: float = 0.1) -> list[list[int]]:
    """Indices of `lengths` grouped into batches, longest first: a batch takes the next utterance (in decreasing
    length) while it has fewer than `batch_size` and that utterance is at least `1 - max_padding` of the batch's
    longest. Every utterance is then padded by less than `max_padding` of the batch's length, so padded samples are
    at most `max_padding` of each batch's samples. Ties keep input order (a stable sort)."""
    order = sorted(range(len(lengths)), key=lambda i: -int(lengths[i]))
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        if (
            current is not None
            and len(current) < batch_size
            and int(lengths[index]) >= (1 - max_padding) * int(lengths[current[0]])
        ):
            current.append(index)
        else:
            batches.append([index])
    return batches


__all__ = ["TokenizationPlan", "default_plan", "length_buckets"]
