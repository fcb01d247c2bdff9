"""What the training scripts do around `Trainer.train`, whatever launched them.

- `data_parallel_defaults`: a multi-process launch on a machine without CUDA becomes one gloo DDP group (CPU), and a
  launch that would silently run a single process is refused (`LaunchError`).
- `require_single_process`: the same refusal for scripts written for one process.
- `log_launch`: rank and world size once, from rank 0; log lines carry the rank.
- `completed_step` / `finished_results`: a rerun of a finished run is a no-op instead of a step past ``max_steps``;
  `train_resuming`: a run killed after its checkpoint at ``max_steps`` (before its own end) ends on that checkpoint.
- `resumable_interrupt`: Ctrl-C prints where the last checkpoint is and that rerunning resumes, not a traceback.
- `end_distributed`: every rank leaves the process group together before the interpreter exits.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import torch

from .checkpoints import last_complete_checkpoint

_WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


class LaunchError(RuntimeError):
    """The launcher asked for several processes but started one (or started several that would not cooperate)."""


def _first_int(names, default: int) -> int:
    for name in names:
        value = os.environ.get(name, "")
        if value.strip().lstrip("-").isdigit():
            return int(value)
    return default


def launched_world() -> tuple[int, int]:
    """`(rank, world_size)` as the launcher set them in the environment (torchrun, accelerate, MPI); `(0, 1)` alone."""
    return _first_int(_RANK_VARIABLES, 0), _first_int(_WORLD_SIZE_VARIABLES, 1)


def _accelerate_cpu_simple_launch() -> bool:
    """`accelerate launch --cpu --num_processes N>1`: its simple launcher sets MASTER_ADDR for N > 1 but starts one
    process, with no world size."""
    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return cpu and "MASTER_ADDR" in os.environ and not any(v in os.environ for v in _WORLD_SIZE_VARIABLES)


def data_parallel_defaults() -> dict:
    """`TrainingArguments` defaults for how the process was launched.

    Several processes without CUDA (`torchrun --nproc_per_node N`, `accelerate launch --multi_gpu` or a DDP config
    file on a CPU machine) get ``use_cpu=True`` and the gloo backend: without them accelerate finds no GPU backend and
    every rank trains alone on the whole data set, all writing the same ``output_dir``. `accelerate launch --cpu
    --num_processes N` starts ONE process (accelerate runs multi-CPU jobs through mpirun only): refused with a
    `LaunchError`. Defaults, not overrides: they must be in place before `TrainingArguments` sets up its devices.

    An FSDP launch (`accelerate launch --config_file accelerate_fsdp.yaml`, which sets ``ACCELERATE_USE_FSDP``)
    without CUDA is refused too: accelerate turns a CPU (MULTI_CPU) state into FSDP only for GPU-like device types, so
    it would silently train as DDP with a full replica per rank (torch's FSDP2 itself runs on CPU over gloo).
    """
    _, world_size = launched_world()
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true", "yes")
    if fsdp and world_size > 1 and not torch.cuda.is_available():
        raise LaunchError(
            "an FSDP launch on a machine without CUDA would not shard: accelerate enables FSDP only for GPU-like "
            "devices and would train plain DDP on CPU. Use examples/pretraining/accelerate_ddp.yaml with "
            "--mixed_precision no (gloo DDP) on CPU, and the FSDP config on GPUs."
        )
    if _accelerate_cpu_simple_launch():
        raise LaunchError(
            "`accelerate launch --cpu --num_processes N` starts a single process (accelerate runs multi-CPU jobs "
            "through mpirun only), so this would not be data-parallel. On CPU use `torchrun --nproc_per_node N "
            "SCRIPT ...` or `accelerate launch --multi_gpu --num_processes N SCRIPT ...` (without --cpu; the script "
            "then trains on CPU with the gloo backend), or drop --num_processes for one process."
        )
    if world_size > 1 and not torch.cuda.is_available():
        return {"use_cpu": True, "ddp_backend": "gloo"}
    return {}


def require_single_process(script: str) -> None:
    """Refuse a multi-process launch of a script that is not written for one (its ranks would each train alone and
    write the same files)."""
    if launched_world()[1] > 1 or _accelerate_cpu_simple_launch():
        raise LaunchError(f"{script} runs on one process; launch it with `python {script} ...`")


def log_launch(training_args, name: str) -> None:
    """Configure logging with the rank in every line (ranks > 0 at WARNING) and say, from rank 0, how the run is
    parallelised. Raises `LaunchError` when the launcher started several processes that do not form one group."""
    rank, launched = launched_world()
    world_size = training_args.world_size  # sets up the process group
    prefix = f"[rank {training_args.process_index}/{world_size}] " if world_size > 1 else ""
    logging.basicConfig(format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
                        level=logging.INFO if training_args.process_index == 0 else logging.WARNING)  # fmt: skip
    if launched != world_size:
        raise LaunchError(
            f"the launcher started {launched} processes (this is rank {rank}) but the Trainer sees world_size "
            f"{world_size}: they would train independently and overwrite each other's output_dir"
        )
    if training_args.process_index == 0:
        mode = str(training_args.parallel_mode).split(".")[-1]
        backend = getattr(training_args.distributed_state, "backend", None)
        print(f"{name}: world_size {world_size} ({mode}, backend {backend}, device {training_args.device}); "
              f"rank 0 writes {training_args.output_dir}", flush=True)  # fmt: skip


def completed_step(checkpoint, training_args) -> int | None:
    """The step of ``checkpoint`` when it already ends the run (at or past ``max_steps``, or the planned last step of
    an epoch-based run), else None."""
    if not checkpoint:
        return None
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    last = training_args.max_steps if training_args.max_steps > 0 else int(state.get("max_steps") or 0)
    step = int(state.get("global_step", 0))
    return step if last > 0 and step >= last else None


def finished_results(checkpoint, training_args, results_file) -> dict | None:
    """The saved results of a run that is already complete (`completed_step`, and `results_file` written), else None.
    Rank 0 says so; the caller returns them instead of training (a resumed finished run would step past max_steps
    and overwrite them)."""
    step = completed_step(checkpoint, training_args)
    if step is None or not Path(results_file).is_file():
        return None
    if training_args.process_index == 0:
        print(f"the run is already complete: {checkpoint} is at step {step}; its results are in {results_file} "
              "(raise --max_steps to train further, or use another --output_dir)", flush=True)  # fmt: skip
    return json.loads(Path(results_file).read_text())


def train_resuming(trainer, checkpoint: str | None):
    """`trainer.train(resume_from_checkpoint=checkpoint)`, except that a checkpoint which already ends the run
    (`completed_step`: the run was killed after saving it, before its own end) is loaded as it is: transformers'
    Trainer would train one step past ``max_steps`` from it, and end on other weights than an uninterrupted run.
    A PEFT model loads the checkpoint's adapter (as the Trainer does), any other model its ``model.safetensors``.

    Returns the `TrainOutput`; for a loaded finished checkpoint, its step, the mean of the losses its log holds (the
    Trainer's own ``training_loss`` is the mean over every step) and ``train_runtime`` 0."""
    from transformers import TrainerState
    from transformers.trainer_utils import TrainOutput

    if completed_step(checkpoint, trainer.args) is None:
        return trainer.train(resume_from_checkpoint=checkpoint)
    _load_checkpoint_weights(trainer.model, Path(checkpoint))
    trainer.state = state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    losses = [float(log["loss"]) for log in state.log_history if "loss" in log]
    loss = sum(losses) / len(losses) if losses else float("nan")
    return TrainOutput(state.global_step, loss, {"train_runtime": 0.0, "train_loss": loss, "epoch": state.epoch})


def _adapter_mismatches(model, adapter: str, checkpoint: Path) -> list[str]:
    """Keys of the checkpoint's adapter file that the model does not hold, or holds with other values, after
    `load_adapter`. PEFT's own load report lists the tied output layer's copy of a trainable-token delta and the
    ``modules_to_save`` rows as unexpected although it loaded them, so this compares with what PEFT would save."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors import safe_open

    held = get_peft_model_state_dict(model, adapter_name=adapter, save_embedding_layers=True)
    with safe_open(str(checkpoint / "adapter_model.safetensors"), "pt") as weights:
        return [key for key in weights.keys()
                if key not in held or not torch.equal(held[key].detach().cpu(), weights.get_tensor(key).to(held[key].dtype))]  # fmt: skip


def _load_checkpoint_weights(model, checkpoint: Path) -> None:
    """Load what a Trainer checkpoint holds of `model` into it; RuntimeError naming the file when it is not its."""
    from transformers import PreTrainedModel

    try:
        from peft import PeftModel
    except ImportError:  # peft is a dependency; without it no model is a PEFT one
        PeftModel = ()
    if isinstance(model, PeftModel):  # adapter_model.safetensors, loaded into the active adapter
        adapter = model.active_adapter
        refused = f"{checkpoint} does not hold the adapter {adapter!r} of this {type(model.base_model.model).__name__}"
        try:
            result = model.load_adapter(str(checkpoint), adapter_name=adapter, is_trainable=True)
        except (RuntimeError, ValueError, OSError) as error:  # shapes differ, or no adapter files
            raise RuntimeError(f"{refused}: {error}") from None
        mismatched = _adapter_mismatches(model, adapter, checkpoint) if not result.missing_keys else []
        if result.missing_keys or mismatched:
            raise RuntimeError(f"{refused}: missing {result.missing_keys[:5]}, not loaded as saved {mismatched[:5]}")
        return
    weights = checkpoint / "model.safetensors"
    if weights.is_file():  # everything the Trainer saved, GAN discriminators included
        from safetensors.torch import load_file

        state = load_file(str(weights))
        refused = f"{weights} does not hold the weights of this {type(model).__name__}"
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as error:  # shapes differ: another model's checkpoint
            raise RuntimeError(f"{refused}: {error}") from None
        current = model.state_dict()
        loaded = {current[name].data_ptr() for name in state if name in current}
        missing = [name for name in missing if current[name].data_ptr() not in loaded]  # tied copies are loaded
        if missing or unexpected:
            raise RuntimeError(f"{refused}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    elif isinstance(model, PreTrainedModel):  # sharded or another format: the model class reads it
        model.load_state_dict(type(model).from_pretrained(checkpoint).state_dict())
    else:
        raise RuntimeError(f"{checkpoint} has no model.safetensors for this {type(model).__name__}")


@contextmanager
def resumable_interrupt(output_dir, is_main: bool = True):
    """Turn Ctrl-C (KeyboardInterrupt) into one line, where the last complete checkpoint is and that rerunning the
    same command resumes from it, and exit status 130."""
    try:
        yield
    except KeyboardInterrupt:
        if is_main:
            last = last_complete_checkpoint(output_dir)
            if last:
                message = f"the last checkpoint is {last}; rerun the same command to resume from it"
            else:
                message = f"no checkpoint in {output_dir} yet; rerunning the same command starts over"
            print(f"\ninterrupted: {message}", file=sys.stderr, flush=True)
        raise SystemExit(130) from None


def end_distributed() -> None:
    """Wait for every rank, then destroy the default process group (`Accelerator.end_training` does the same),
    where a launch made one. Left to interpreter teardown, a gloo rank can abort ("terminate called without an
    active exception", SIGABRT) after its work is saved, and the launcher then fails the whole run. Call it once the
    script's work is done, on every rank."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


__all__ = [
    "LaunchError",
    "completed_step",
    "data_parallel_defaults",
    "end_distributed",
    "finished_results",
    "launched_world",
    "log_launch",
    "require_single_process",
    "resumable_interrupt",
    "train_resuming",
]
