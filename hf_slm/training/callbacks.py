"""Trainer callbacks: `WallClockLimit` and `ReadableCheckpoints`.

`WallClockLimit` stops a `Trainer` run after a time budget, as if `max_steps` had been reached there. Useful to
measure "what N minutes of training give" on a shared machine, where steps per minute are not known in advance: the
run stops after the first optimiser step past the budget, logs that last window, saves a checkpoint (a later run with
a larger budget resumes from it) and returns to the script, which saves and evaluates as usual.
"""

from __future__ import annotations

import time
from pathlib import Path

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


class ReadableCheckpoints(TrainerCallback):
    """Give every checkpoint the permissions a plain write has under the umask.

    safetensors (>= 0.8) writes ``model.safetensors`` through a private temporary file, so a checkpoint's weights end
    up ``-rw-------`` whatever the umask; on a shared machine colleagues could not read them. Call
    `hf_slm.utils.widen_to_umask` on the final ``output_dir`` after ``trainer.save_model`` as well.
    """

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            widen_to_umask(Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")


__all__ = ["ReadableCheckpoints", "WallClockLimit"]
