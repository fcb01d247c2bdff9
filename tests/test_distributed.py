"""Data-parallel training proven on this machine: `accelerate launch --num_processes 2` (gloo DDP on CPU) of the
speech-LM pre-training, LoRA instruction tuning and GAN vocoder examples matches a 1-process run with the same
global batch (per-device batch 2 x 2 ranks vs 4 x 1 rank, same data order): the same losses and the same weights
after step 1. Only rank 0 writes. Packed and bucketed data shard without an utterance seen twice in an epoch, under
a real 2-rank gloo group."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
import torch.multiprocessing as torch_mp
from safetensors.torch import load_file

from hf_slm.data import load_text_corpus, synthesize_dataset
from hf_slm.training import CausalLMCollator, PackedSequenceCollator, pack_dataset

ROOT = Path(__file__).resolve().parents[1]
DDP_YAML = ROOT / "examples" / "pretraining" / "accelerate_ddp.yaml"
RTOL = 1e-4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**overrides) -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "OMP_NUM_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": "",  # the CPU (gloo) path, even on a GPU host
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **overrides}  # fmt: skip


def accelerate_launch(num_processes: int, *extra: str, port: int | None = None) -> list[str]:
    """`accelerate launch --config_file accelerate_ddp.yaml --num_processes N` (what the docs tell CPU users)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(DDP_YAML),
            "--num_processes", str(num_processes), "--mixed_precision", "no",
            "--main_process_port", str(port or _free_port()), *extra]  # fmt: skip


def start(command: list[str], log: Path, **env) -> subprocess.Popen:
    with open(log, "w") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=_env(**env))


def finish(process: subprocess.Popen, log: Path, timeout: float = 300) -> str:
    process.wait(timeout=timeout)
    text = log.read_text()
    assert process.returncode == 0, text[-5000:]
    return text


def run_pair(script: Path, args_for, tmp_path: Path, name: str) -> tuple[Path, str, Path, str]:
    """The same training once on 1 process (per-device batch 4) and once on 2 (per-device batch 2), both
    started at once. Returns (output 1-proc, log 1-proc, output 2-proc, log 2-proc)."""
    one, two = tmp_path / f"{name}_1proc", tmp_path / f"{name}_2proc"
    log_one, log_two = tmp_path / f"{name}_1proc.log", tmp_path / f"{name}_2proc.log"
    single = start([sys.executable, str(script), *args_for(one, 4)], log_one)
    double = start([*accelerate_launch(2), str(script), *args_for(two, 2)], log_two)
    return one, finish(single, log_one), two, finish(double, log_two)


def step_losses(trainer_state: Path) -> dict[int, float]:
    history = json.loads(trainer_state.read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


def logged(trainer_state: Path, keys: tuple) -> dict[tuple, float]:
    history = json.loads(trainer_state.read_text())["log_history"]
    return {(entry["step"], k): entry[k] for entry in history for k in keys if k in entry}


def assert_same_training(one: Path, two: Path, weights: str, final_state: str = "trainer_state.json",
                         keys: tuple = ("loss",)) -> dict:  # fmt: skip
    """Same logged losses (`keys`) step by step, and the same weights in checkpoint-1 (every tensor, rel 1e-4 of its
    largest entry). Returns the largest differences, for the docs."""
    assert sorted(step_losses(one / "checkpoint-1" / "trainer_state.json")) == [1]
    assert sorted(step_losses(two / "checkpoint-1" / "trainer_state.json")) == [1]
    final_one, final_two = logged(one / final_state, keys), logged(two / final_state, keys)
    assert sorted(final_one) == sorted(final_two) and len(final_one) >= 2 * len(keys)
    loss_diff = max(abs(final_one[s] - final_two[s]) / abs(final_one[s]) for s in final_one)
    assert loss_diff < RTOL, (final_one, final_two)
    tensors_one = load_file(one / "checkpoint-1" / weights)
    tensors_two = load_file(two / "checkpoint-1" / weights)
    assert sorted(tensors_one) == sorted(tensors_two)
    worst = 0.0
    for key, a in tensors_one.items():
        b = tensors_two[key]
        scale = a.abs().max().clamp_min(1e-6)
        diff = float((a - b).abs().max() / scale)
        worst = max(worst, diff)
        assert diff < RTOL, f"{key}: {diff}"
    return {"loss_rel": loss_diff, "weights_rel": worst, "losses": final_one}


def assert_one_writer(one: Path, two: Path, log_two: str, marker: str) -> None:
    """The 2-process run writes exactly the files a single writer writes, and says `marker` once."""
    files = lambda root: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())  # noqa: E731
    rng = lambda names: [n for n in names if "rng_state" not in n]  # noqa: E731  one RNG state file per rank
    assert rng(files(one)) == rng(files(two))
    assert log_two.count(marker) == 1, log_two[-3000:]
    assert "world_size 2" in log_two


# ====================================================================== speech data shared by the runs
@pytest.fixture(scope="module")
def speech_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("speech")
    ds = synthesize_dataset(load_text_corpus("builtin", limit=24, seed=0), voices=("en-us", "en-us+f3"),
                            rates=(170,), cache_dir=root / "synthesis_cache", show_progress=False)  # fmt: skip
    ds.save_to_disk(str(root / "speech"))
    return root / "speech"


# ====================================================================== speech-LM pre-training
PRETRAIN = ROOT / "examples" / "pretraining" / "pretrain_speech_lm.py"


def test_pretraining_two_processes_match_one(speech_dataset, tmp_path):
    def args(out: Path, batch: int) -> list[str]:
        flags = {"dataset_path": speech_dataset, "output_dir": out, "num_eval_utterances": 2,
                 "speech_tokenizer_path": "default", "seq_length": 64, "hidden_size": 32, "num_hidden_layers": 2,
                 "num_attention_heads": 2, "intermediate_size": 64, "per_device_train_batch_size": batch,
                 "per_device_eval_batch_size": 2, "learning_rate": 0.005, "warmup_steps": 0, "max_steps": 3,
                 "logging_steps": 1, "save_steps": 1, "save_total_limit": 5, "disable_tqdm": True,
                 "units_cache_dir": out.parent / f"units_{out.name}"}  # fmt: skip
        return [str(ROOT / "examples/pretraining/config_tiny.json")] + [f"--{k}={v}" for k, v in flags.items()]

    one, _, two, log_two = run_pair(PRETRAIN, args, tmp_path, "pretrain")
    measured = assert_same_training(one, two, "model.safetensors")
    print("pretraining 1 vs 2 processes:", measured)
    results = json.loads((two / "all_results.json").read_text())
    assert results["world_size"] == 2
    assert_one_writer(one, two, log_two, "starting from step 0")


# ====================================================================== GAN vocoder (two optimisers)
VOCODER = ROOT / "examples" / "vocoder" / "train_vocoder.py"


def test_gan_vocoder_two_processes_match_one(speech_dataset, tmp_path):
    def args(out: Path, batch: int) -> list[str]:
        flags = {"dataset_path": speech_dataset, "output_dir": out, "num_eval_utterances": 2, "segment_units": 8,
                 "per_device_train_batch_size": batch, "max_steps": 3,
                 "logging_steps": 1, "save_steps": 1, "save_total_limit": 5, "disable_tqdm": True,
                 "units_cache_dir": out.parent / f"units_{out.name}"}  # fmt: skip
        return [str(ROOT / "examples/vocoder/config_tiny.json")] + [f"--{k}={v}" for k, v in flags.items()]

    one, _, two, log_two = run_pair(VOCODER, args, tmp_path, "vocoder")
    keys = ("loss", "loss_disc", "loss_mel", "loss_gen_adv", "loss_fm")
    # checkpoint-1 holds generator AND discriminators: both optimisers took the same step
    measured = assert_same_training(one, two, "model.safetensors", "checkpoint-3/trainer_state.json", keys)
    print("GAN vocoder 1 vs 2 processes:", measured)
    assert any(k.startswith("discriminator.") for k in load_file(two / "checkpoint-1" / "model.safetensors"))
    assert json.loads((two / "results.json").read_text())["world_size"] == 2
    assert_one_writer(one, two, log_two, "starting from step 0")


# ====================================================================== LoRA instruction tuning
TUNE = ROOT / "examples" / "instruction_tuning" / "tune.py"


def test_lora_instruction_tuning_two_processes_match_one(tmp_path):
    """With SGD: the step-1 adapter is then init - lr x the averaged gradient, what DDP must get right. (With AdamW,
    whose first step is lr x g / (|g| + eps), the few LoRA-B entries whose gradient is of the size of eps = 1e-8 turn
    float-rounding noise into a visible difference: measured 2 entries of one matrix off by 2.3e-4 of lr, while the
    losses agree to 1e-7.)"""

    def args(out: Path, batch: int) -> list[str]:
        flags = {"output_dir": out, "per_device_train_batch_size": batch, "max_steps": 3, "save_strategy": "steps",
                 "optim": "sgd", "learning_rate": 0.05,
                 "save_steps": 1, "disable_tqdm": "true", "synth_cache_dir": out.parent / f"synth_{out.name}"}  # fmt: skip
        return [str(ROOT / "examples/instruction_tuning/config_tiny.json")] + [f"--{k}={v}" for k, v in flags.items()]

    one, _, two, log_two = run_pair(TUNE, args, tmp_path, "tune")
    # the adapter (LoRA + trainable token rows) after one optimiser step
    measured = assert_same_training(one, two, "adapter_model.safetensors", "checkpoint-3/trainer_state.json")
    print("LoRA instruction tuning 1 vs 2 processes:", measured)
    assert json.loads((two / "instruct_summary.json").read_text())["world_size"] == 2
    assert_one_writer(one, two, log_two, "starting from step 0")


# ====================================================================== sharding: packed and bucketed data
NUM_UTTERANCES, PAD_ID = 40, 0


def utterances() -> datasets.Dataset:
    """Utterance k (1..40) is k repeated 3-20 times, so any batch says which utterances it holds."""
    lengths = torch.randint(3, 21, (NUM_UTTERANCES,), generator=torch.Generator().manual_seed(0)).tolist()
    return datasets.Dataset.from_dict({"input_ids": [[k + 1] * n for k, n in enumerate(lengths)]})


def _epoch_per_rank(rank: int, port: int, out: str) -> None:
    """One rank of a real 2-process gloo group: the dataloaders the `Trainer` builds for packed rows (shuffled),
    length-bucketed utterances (`group_by_length`) and packed rows with `dataloader_drop_last`; one epoch each,
    recorded as the utterance ids of every batch."""
    from transformers import Trainer, TrainingArguments

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2", CUDA_VISIBLE_DEVICES="")  # fmt: skip
    packed = pack_dataset(utterances(), seq_length=32, strategy="bfd", keep_in_memory=True)
    packed_even = packed.select(range(len(packed) - len(packed) % 4))  # whole global batches (2 ranks x 2)
    cases = {
        "packed": (packed_even, PackedSequenceCollator(pad_token_id=PAD_ID), {}),
        "bucketed": (utterances(), CausalLMCollator(pad_token_id=PAD_ID), {"train_sampling_strategy": "group_by_length"}),
        "packed_drop_last": (packed, PackedSequenceCollator(pad_token_id=PAD_ID), {"dataloader_drop_last": True}),
        "packed_uneven": (packed, PackedSequenceCollator(pad_token_id=PAD_ID), {}),
    }
    seen = {"rows": {name: len(ds) for name, (ds, _, _) in cases.items()}}
    for name, (dataset, collator, extra) in cases.items():
        args = TrainingArguments(output_dir=out, use_cpu=True, ddp_backend="gloo", per_device_train_batch_size=2,
                                 report_to="none", seed=0, remove_unused_columns=False, **extra)  # fmt: skip
        assert args.world_size == 2 and args.process_index == rank
        trainer = Trainer(model=torch.nn.Linear(1, 1), args=args, train_dataset=dataset, data_collator=collator)
        seen[name] = [[sorted({int(t) for t in row if t != PAD_ID}) for row in batch["input_ids"].tolist()]
                      for batch in trainer.get_train_dataloader()]  # fmt: skip
    Path(out, f"rank{rank}.json").write_text(json.dumps(seen))
    torch.distributed.destroy_process_group()


def test_packed_and_bucketed_data_shard_without_repeats(tmp_path):
    torch_mp.spawn(_epoch_per_rank, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    everyone = set(range(1, NUM_UTTERANCES + 1))

    def ids(name: str, rank: int) -> list[int]:
        return [k for batch in ranks[rank][name] for row in batch for k in row]

    for name in ("packed", "bucketed", "packed_drop_last"):
        zero, one = ids(name, 0), ids(name, 1)
        assert len(ranks[0][name]) == len(ranks[1][name])  # ranks step together
        assert len(zero) == len(set(zero)) and len(one) == len(set(one)), name  # not twice on one rank
        assert not set(zero) & set(one), name  # nor on both
    assert 2 * 2 * len(ranks[0]["packed"]) == ranks[0]["rows"]["packed"]  # every row of the epoch, once
    assert set(ids("bucketed", 0)) | set(ids("bucketed", 1)) == everyone  # 40 utterances = 10 global batches
    # bucketed: each batch holds utterances of similar length (a batch's lengths span less than the data's)
    lengths = {k + 1: len(row) for k, row in enumerate(utterances()["input_ids"])}
    spans = [max(lengths[k] for k in batch_ids) - min(lengths[k] for k in batch_ids)
             for r in (0, 1) for batch in ranks[r]["bucketed"] for batch_ids in [[k for row in batch for k in row]]]
    assert sorted(spans)[len(spans) // 2] < (max(lengths.values()) - min(lengths.values())) / 2
    # drop_last: whole global batches only; the rows of the last partial one wait for the next epoch's order
    total = ranks[0]["rows"]["packed_drop_last"]
    assert total % 4 == 2  # 14 packed rows: the last global batch is partial
    assert 2 * 2 * len(ranks[0]["packed_drop_last"]) == total - total % 4
    # without drop_last, accelerate's even_batches fills the last global batch with the epoch's first rows: every
    # utterance is seen, and only those fill-in rows are seen twice
    zero, one = ids("packed_uneven", 0), ids("packed_uneven", 1)
    assert set(zero) | set(one) == everyone
    repeated_rows = 4 * len(ranks[0]["packed_uneven"]) - total
    assert repeated_rows == (-total) % 4
    first_rows = [row for batch_index in range(len(ranks[0]["packed_uneven"])) for r in (0, 1)
                  for row in ranks[r]["packed_uneven"][batch_index]][:repeated_rows]  # fmt: skip
    repeats = sorted(k for k in everyone if (zero + one).count(k) > 1)
    assert repeats == sorted(k for row in first_rows for k in row)


# ====================================================================== FSDP on CPU: refused, not silently DDP
def test_fsdp_launch_on_cpu_is_refused(speech_dataset, tmp_path):
    """accelerate makes a CPU state FSDP only for GPU-like devices: `accelerate_fsdp.yaml` on CPU would train plain
    DDP under an FSDP name. The scripts refuse it and point at the DDP config."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "examples/pretraining/accelerate_fsdp.yaml"), "--num_processes", "2", "--mixed_precision", "no",
               "--main_process_port", str(_free_port()), str(PRETRAIN), str(ROOT / "examples/pretraining/config_tiny.json"),
               f"--dataset_path={speech_dataset}", f"--output_dir={tmp_path / 'out'}"]  # fmt: skip
    log = tmp_path / "fsdp.log"
    process = start(command, log)
    process.wait(timeout=120)
    text = log.read_text()
    assert process.returncode != 0 and "would not shard" in text and "accelerate_ddp.yaml" in text, text[-3000:]
    assert not (tmp_path / "out").exists()


# ====================================================================== multi-node launch, as 2 "machines" on loopback
def _node_command(launcher: str, rank: int, port: int) -> list[str]:
    if launcher == "accelerate":  # what docs/pretraining.md gives each node, 1 process per node here
        return accelerate_launch(2, "--num_machines", "2", "--machine_rank", str(rank), "--main_process_ip",
                                 "127.0.0.1", port=port)  # fmt: skip
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(rank),
            "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port)]  # fmt: skip


@pytest.mark.parametrize(
    "launcher, script", [("accelerate", PRETRAIN), ("torchrun", VOCODER)], ids=["pretraining-accelerate", "vocoder-torchrun"]
)
def test_multi_node_launch_reaches_the_first_step(launcher, script, speech_dataset, tmp_path):
    """The documented multi-node commands, each "node" a launcher process on this machine (loopback only)."""
    out = tmp_path / "out"
    config = ROOT / "examples" / script.parent.name / "config_tiny.json"
    flags = {"dataset_path": speech_dataset, "output_dir": out, "num_eval_utterances": 2, "max_steps": 1,
             "per_device_train_batch_size": 2, "save_strategy": "no", "disable_tqdm": True,
             "units_cache_dir": tmp_path / "units"}  # fmt: skip
    flags.update({"speech_tokenizer_path": "default", "seq_length": 64, "hidden_size": 32, "num_attention_heads": 2,
                  "intermediate_size": 64} if script == PRETRAIN else {"segment_units": 8})  # fmt: skip
    args = [str(script), str(config)] + [f"--{k}={v}" for k, v in flags.items()]
    port = _free_port()
    logs = [tmp_path / f"node{rank}.log" for rank in (0, 1)]
    nodes = [start([*_node_command(launcher, rank, port), *args], logs[rank]) for rank in (0, 1)]
    texts = [finish(node, log) for node, log in zip(nodes, logs)]
    assert "world_size 2" in texts[0] and "starting from step 0" in texts[0] and "starting from step" not in texts[1]
    results = json.loads((out / ("all_results.json" if script == PRETRAIN else "results.json")).read_text())
    assert results["world_size"] == 2 and results.get("global_step", results.get("steps")) == 1
