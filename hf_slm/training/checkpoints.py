"""Find the checkpoint to resume from after a crash or a kill.

`transformers.trainer_utils.get_last_checkpoint` returns the highest-numbered `checkpoint-*` folder whatever its
state. The `Trainer` writes a checkpoint in place (weights, optimiser, scheduler, RNG states, and `trainer_state.json`
last), so a process killed while saving leaves a folder that looks newest but cannot be resumed from. Here a
checkpoint counts only once its `trainer_state.json` parses and its weights are there.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.safetensors")


def is_complete_checkpoint(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a parseable `trainer_state.json` and model weights (FSDP shards count as weights)."""
    folder = Path(folder)
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return any((folder / name).exists() for name in _WEIGHTS) or any(folder.glob("pytorch_model_fsdp*"))


def last_complete_checkpoint(output_dir: str | os.PathLike, remove_incomplete: bool = False) -> str | None:
    """The highest-step complete `checkpoint-N` folder of `output_dir` (None if there is none).

    With `remove_incomplete=True`, checkpoints newer than it that are incomplete (a save cut short) are deleted,
    so that the resumed run writes those steps into clean folders and checkpoint rotation sees only real ones.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    checkpoints = sorted(
        (int(m.group(1)), path)
        for path in output_dir.iterdir()
        if path.is_dir() and (m := _CHECKPOINT.match(path.name))
    )
    last = None
    for _, path in reversed(checkpoints):
        if is_complete_checkpoint(path):
            last = path
            break
        if remove_incomplete:
            logger.warning("removing incomplete checkpoint %s (its save was cut short)", path)
            shutil.rmtree(path, ignore_errors=True)
    return None if last is None else str(last)


__all__ = ["is_complete_checkpoint", "last_complete_checkpoint"]
