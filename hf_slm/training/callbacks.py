"""Trainer callbacks: `WallClockLimit`, `ThreadSchedule` and `ReadableCheckpoints`.

`WallClockLimit` stops a `Trainer` run after a time budget, as if `max_steps` had been reached there. Useful to
measure "what N minutes of training give" on a shared machine, where steps per minute are not known in advance: the
run stops after the first optimiser step past the budget, logs that last window, saves a checkpoint (a later run with
a larger budget resumes from it) and returns to the script, which saves and evaluates as usual.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..utils import widen_to_umask


class WallClockLimit(TrainerCallback):
    """Stop training `minutes` after `on_train_begin` (of this process: a resumed run gets a fresh budget).

    Args:
        minutes (`float`): the budget; the step running when it expires finishes first.
        save (`bool`, defaults to `True`): also write a checkpoint at the stopping step (when saving by steps).
    """

    def __init__(self, minutes: float, save: bool = True):
        if not minutes > 0:
            raise ValueError(f"the wall-clock budget must be > 0 minutes, got {minutes!r}")
        self.minutes, self.save = float(minutes), save
        self.started = None
        self.stopped_at_step = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.started is not None and time.monotonic() - self.started >= 60 * self.minutes:
            control.should_training_stop = True
            control.should_log = True
            control.should_save = self.save and args.save_strategy == "steps"
            self.stopped_at_step = state.global_step
        return control


class ThreadSchedule(TrainerCallback):
    """Change the number of torch CPU threads at fixed optimiser steps, e.g. ``ThreadSchedule({700: 2})``: one thread
    while another process shares the machine, both cores from step 700 on.

    Why fixed steps rather than "when the other process ends": a CPU kernel may split its reductions by thread, so
    the thread count can change the last bits of the weights; tied to steps, a rerun (or a run resumed from any
    checkpoint: every step applies the entry in force at its own step) trains the same weights whenever the other
    process finishes. Steps before the first entry keep the process's setting; `on_train_end` restores it.

    Args:
        schedule (`dict[int, int]`): completed optimiser steps -> threads from then on (steps >= 0, threads >= 1).
    """

    def __init__(self, schedule: dict[int, int]):
        for step, threads in schedule.items():
            if not (isinstance(step, int) and step >= 0 and isinstance(threads, int) and threads >= 1):
                raise ValueError(
                    f"a thread schedule maps steps >= 0 to threads >= 1 (integers), got {step!r}: {threads!r}"
                )
        self.schedule = dict(sorted(schedule.items()))
        self.initial_threads = None

    @classmethod
    def parse(cls, text: str) -> "ThreadSchedule":
        """From ``"STEP:THREADS[,STEP:THREADS...]"`` (a command-line flag), e.g. ``"700:2"``."""
        schedule = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            try:
                step, threads = item.split(":")
                schedule[int(step)] = int(threads)
            except ValueError:
                message = f"a thread schedule is STEP:THREADS[,STEP:THREADS...], e.g. 700:2; got {text!r}"
                raise ValueError(message) from None
        return cls(schedule)

    def threads_at(self, step: int) -> int | None:
        """The threads the schedule sets for the optimiser step after ``step`` completed ones (None: not set yet)."""
        due = [threads for start, threads in self.schedule.items() if start <= step]
        return due[-1] if due else None

    def _apply(self, step: int) -> None:
        threads = self.threads_at(step)
        if threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    def on_train_begin(self, args, state, control, **kwargs):
        self.initial_threads = torch.get_num_threads()

    def on_step_begin(self, args, state, control, **kwargs):
        self._apply(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.initial_threads is not None:
            torch.set_num_threads(self.initial_threads)


class ReadableCheckpoints(TrainerCallback):
    """Give every checkpoint the permissions a plain write has under the umask.

    safetensors (>= 0.8) writes ``model.safetensors`` through a private temporary file, so a checkpoint's weights end
    up ``-rw-------`` whatever the umask; on a shared machine colleagues could not read them. Call
    `hf_slm.utils.widen_to_umask` on the final ``output_dir`` after ``trainer.save_model`` as well.
    """

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            widen_to_umask(Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")


__all__ = ["ReadableCheckpoints", "ThreadSchedule", "WallClockLimit"]
