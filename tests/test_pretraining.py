"""Pre-training: sequence packing without cross-document attention (logits of a packed row equal each document run
alone, sdpa and eager), no token lost, resumable checkpoints, and the example script run on synthesised speech on CPU:
the loss goes down, and a run killed with SIGKILL resumes from its last checkpoint and ends where an uninterrupted run
ends (same losses step by step)."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import DataCollatorWithFlattening, HfArgumentParser, LlamaConfig, LlamaForCausalLM

from hf_slm.data import load_text_corpus, synthesize_dataset
from hf_slm.models.speech_lm import SpeechLMConfig, SpeechLMForCausalLM
from hf_slm.training import (
    PackedSequenceCollator,
    SequencePacker,
    is_complete_checkpoint,
    last_complete_checkpoint,
    pack_dataset,
    pack_sequences,
)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "pretraining" / "pretrain_speech_lm.py"
CONFIG_TINY = ROOT / "examples" / "pretraining" / "config_tiny.json"
NUM_UNITS = 20
PAD = NUM_UNITS  # <pad> of SpeechLMConfig(num_units=20)


def tiny_model(attn_implementation: str = "sdpa", seed: int = 0) -> SpeechLMForCausalLM:
    backbone = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        attn_implementation=attn_implementation,
    )
    torch.manual_seed(seed)
    return SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, num_units=NUM_UNITS))


def random_documents(lengths, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, NUM_UNITS, (n,), generator=g).tolist() for n in lengths]


def segments(position_ids: torch.Tensor) -> list[tuple[int, int]]:
    starts = (position_ids == 0).nonzero().flatten().tolist() + [len(position_ids)]
    return list(zip(starts[:-1], starts[1:]))


# ====================================================================== packing: layout
LENGTHS = (7, 3, 12, 1, 9, 5, 20, 2)


@pytest.mark.parametrize("strategy", ["bfd", "wrapped"])
@pytest.mark.parametrize("seq_length", [1, 5, 16, 64])
def test_packing_keeps_every_token_and_restarts_positions(strategy, seq_length):
    docs = random_documents(LENGTHS)
    packed = pack_sequences(docs, seq_length, strategy=strategy)
    rows = list(zip(packed["input_ids"], packed["position_ids"], packed["labels"]))
    assert all(0 < len(ids) <= seq_length and len(ids) == len(pos) == len(lab) for ids, pos, lab in rows)
    assert sum(len(ids) for ids, _, _ in rows) == sum(LENGTHS)
    pieces = []
    for ids, pos, lab in rows:
        for a, b in segments(torch.tensor(pos)):
            assert pos[a:b] == list(range(b - a))  # positions count 0, 1, ... inside every piece
            assert lab[a:b] == [-100] + ids[a + 1 : b]  # no target at a piece start, the token itself elsewhere
            pieces.append(ids[a:b])
    if strategy == "wrapped":  # the stream in order, cut into full rows
        assert [t for ids, _, _ in rows for t in ids] == [t for d in docs for t in d]
        assert all(len(ids) == seq_length for ids, _, _ in rows[:-1])
    else:  # whole documents (cut only when longer than a row), each exactly once
        expected = [d[i : i + seq_length] for d in docs for i in range(0, len(d), seq_length)]
        assert sorted(pieces) == sorted(expected)


def test_best_fit_decreasing_fills_rows():
    # 12+2+2 | 9+7 | 8+5+3: three full rows of 16; whole documents in dataset order would need four
    packed = pack_sequences(random_documents((9, 12, 5, 7, 3, 8, 2, 2)), 16, strategy="bfd")
    assert [len(r) for r in packed["input_ids"]] == [16, 16, 16]
    # a longer-than-row document is split into row-sized pieces, nothing dropped
    packed = pack_sequences(random_documents((40,)), 16, strategy="bfd")
    assert [len(r) for r in packed["input_ids"]] == [16, 16, 8]


def test_packing_validates_arguments():
    with pytest.raises(ValueError, match="strategy"):
        pack_sequences([[1]], 4, strategy="greedy")
    with pytest.raises(ValueError, match="seq_length"):
        pack_sequences([[1]], 0)
    with pytest.raises(ValueError, match="document 0: 2 input ids but 1 labels"):
        pack_sequences([[1, 2]], 4, labels=[[1]])
    with pytest.raises(ValueError, match="seq_length"):
        SequencePacker(seq_length=-1)
    with pytest.raises(ValueError, match="no position_ids"):
        PackedSequenceCollator(pad_token_id=PAD)([{"input_ids": [1, 2]}])


def test_custom_labels_survive_packing():
    docs = random_documents((4, 6))
    labels = [[-100, -100, d[2], d[3]] if len(d) == 4 else d for d in docs]  # e.g. a masked prompt
    packed = pack_sequences(docs, 16, labels=labels)
    # one row, the longer document first (best-fit decreasing places pieces longest first)
    assert packed["labels"] == [[-100] + docs[1][1:] + [-100, -100, docs[0][2], docs[0][3]]]


def test_bfd_rows_hold_the_same_pieces_as_a_reference_packer():
    """trl's packer (behind "bfd") against a plain best-fit-decreasing reference: the same number of rows, the same
    row lengths, and each document piece once with the same ids, positions and labels."""
    import random

    rng = random.Random(0)
    docs = [[rng.randrange(1, NUM_UNITS) for _ in range(rng.randrange(1, 50))] for _ in range(60)]
    packed = pack_sequences(docs, 48)
    pieces = [d[i : i + 48] for d in docs for i in range(0, len(d), 48)]
    rooms = []  # reference: longest first, each into the fullest row it still fits
    for length in sorted(map(len, pieces), reverse=True):
        fits = [k for k, room in enumerate(rooms) if room >= length]
        k = min(fits, key=lambda k: rooms[k]) if fits else len(rooms)
        if not fits:
            rooms.append(48)
        rooms[k] -= length
    assert sorted(len(r) for r in packed["input_ids"]) == sorted(48 - room for room in rooms)
    found = []
    for ids, pos, lab in zip(packed["input_ids"], packed["position_ids"], packed["labels"]):
        for a, b in segments(torch.tensor(pos)):
            assert lab[a:b] == [-100] + ids[a + 1 : b] and pos[a:b] == list(range(b - a))
            found.append(ids[a:b])
    assert sorted(found) == sorted(pieces)


def test_pack_dataset_with_datasets_map():
    from datasets import Dataset

    docs = random_documents(LENGTHS)
    ds = Dataset.from_dict({"input_ids": docs, "text": [str(i) for i in range(len(docs))]})
    packed = pack_dataset(ds, 16, batch_size=4)  # documents never cross map batches
    assert packed.column_names == ["input_ids", "position_ids", "labels"]
    assert sum(len(r) for r in packed["input_ids"]) == sum(LENGTHS)
    assert packed._fingerprint == pack_dataset(ds, 16, batch_size=4)._fingerprint  # stable -> datasets' cache hits
    assert packed._fingerprint != pack_dataset(ds, 8, batch_size=4)._fingerprint


def test_collator_pads_rows_as_their_own_segment():
    packed = pack_sequences(random_documents((5, 9)), 10)
    features = [dict(zip(packed, row)) for row in zip(*packed.values())]
    batch = PackedSequenceCollator(pad_token_id=PAD, pad_to_multiple_of=8)(features)
    assert batch["input_ids"].shape == (2, 16) and "attention_mask" not in batch and batch["use_cache"] is False
    # row 2 holds 5 tokens (one document), then 11 pads numbered 0..10 with no loss
    assert batch["position_ids"][1].tolist() == list(range(5)) + list(range(11))
    assert batch["input_ids"][1, 5:].eq(PAD).all() and batch["labels"][1, 5:].eq(-100).all()
    # labels are derived from position ids when a row has none
    no_labels = [{k: v for k, v in f.items() if k != "labels"} for f in features]
    assert torch.equal(PackedSequenceCollator(pad_token_id=PAD)(no_labels)["labels"],
                       PackedSequenceCollator(pad_token_id=PAD)(features)["labels"])  # fmt: skip


# ====================================================================== packing: no attention across documents
@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_packed_logits_equal_each_document_alone(attn_implementation):
    model = tiny_model(attn_implementation).eval()
    packed = pack_sequences(random_documents(LENGTHS), 16)
    batch = PackedSequenceCollator(pad_token_id=PAD)([dict(zip(packed, row)) for row in zip(*packed.values())])
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        concatenated = model(input_ids=batch["input_ids"]).logits  # control: the same rows, positions not reset
        checked = leaked = 0
        for r, row in enumerate(batch["input_ids"]):
            for a, b in segments(batch["position_ids"][r]):
                if batch["input_ids"][r, a:b].eq(PAD).all():
                    continue  # padding
                alone = model(input_ids=row[a:b][None]).logits[0]
                torch.testing.assert_close(logits[r, a:b], alone, rtol=1e-5, atol=1e-5)
                checked += 1
                leaked += a > 0 and not torch.allclose(concatenated[r, a:b], alone, atol=1e-3)
    assert checked == sum(math.ceil(n / 16) for n in LENGTHS)
    assert leaked >= 3  # without position ids the later documents of a row do see the earlier ones


def _per_document_loss(model, docs) -> torch.Tensor:
    total, count = 0.0, 0
    for d in docs:
        if len(d) > 1:
            ids = torch.tensor(d)[None]
            total = total + model(input_ids=ids, labels=ids, use_cache=False).loss * (len(d) - 1)
            count += len(d) - 1
    return total / count


@pytest.mark.parametrize("collator", ["packed", "flatten"])
def test_training_loss_on_packed_rows_is_the_per_document_loss(collator):
    """In training mode, configured as the Trainer leaves it (use_cache off on the outer config only)."""
    model = tiny_model("sdpa").train()
    model.config.use_cache = False
    docs = random_documents(LENGTHS)
    if collator == "packed":
        packed = pack_sequences(docs, 32)  # no document is cut (a cut costs one target)
        batch = PackedSequenceCollator(pad_token_id=PAD)([dict(zip(packed, row)) for row in zip(*packed.values())])
    else:
        batch = {**DataCollatorWithFlattening()([{"input_ids": d} for d in docs]), "use_cache": False}
    torch.testing.assert_close(model(**batch).loss, _per_document_loss(model, docs), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_packed_rows_under_torch_compile():
    """`torch_compile=True`: traced, transformers always builds the packed mask (no data-dependent shortcut); two
    batches with different boundaries (and shapes) both give the per-document loss."""
    model = tiny_model("sdpa").train()
    model.config.use_cache = False
    compiled = torch.compile(model)
    for seed, lengths in ((0, LENGTHS), (1, (10, 10, 12, 9, 11, 8, 6, 3))):
        docs = random_documents(lengths, seed=seed)
        packed = pack_sequences(docs, 32)
        batch = PackedSequenceCollator(pad_token_id=PAD)([dict(zip(packed, row)) for row in zip(*packed.values())])
        torch.testing.assert_close(compiled(**batch).loss, _per_document_loss(model, docs), rtol=1e-5, atol=1e-6)


def test_plain_llama_packed_rows():
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=NUM_UNITS + 1, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=4)).eval()  # fmt: skip
    docs = random_documents((6, 4, 5))
    packed = pack_sequences(docs, 15)
    batch = PackedSequenceCollator(pad_token_id=PAD)([dict(zip(packed, row)) for row in zip(*packed.values())])
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).loss, _per_document_loss(model, docs), rtol=1e-5, atol=1e-6)


# ====================================================================== checkpoints
def _fake_checkpoint(folder: Path, state: str | None = '{"global_step": 1}', weights: bool = True) -> Path:
    folder.mkdir(parents=True)
    if state is not None:
        (folder / "trainer_state.json").write_text(state)
    if weights:
        (folder / "model.safetensors").write_bytes(b"x")
    return folder


def test_last_complete_checkpoint_skips_a_save_cut_short(tmp_path):
    assert last_complete_checkpoint(tmp_path / "missing") is None
    assert last_complete_checkpoint(tmp_path) is None
    good = _fake_checkpoint(tmp_path / "checkpoint-10")
    _fake_checkpoint(tmp_path / "checkpoint-9")
    truncated = _fake_checkpoint(tmp_path / "checkpoint-20", state='{"global_st')
    no_state = _fake_checkpoint(tmp_path / "checkpoint-30", state=None)
    no_weights = _fake_checkpoint(tmp_path / "checkpoint-40", weights=False)
    (tmp_path / "checkpoint-50.txt").write_text("not a folder")
    assert not any(is_complete_checkpoint(p) for p in (truncated, no_state, no_weights))
    assert last_complete_checkpoint(tmp_path) == str(good)
    assert truncated.exists()
    assert last_complete_checkpoint(tmp_path, remove_incomplete=True) == str(good)
    assert not truncated.exists() and not no_state.exists() and not no_weights.exists()
    assert (tmp_path / "checkpoint-9").exists()


def test_a_run_killed_after_its_last_checkpoint_ends_on_that_checkpoint(tmp_path):
    """A run killed between its checkpoint at `max_steps` and its own end resumes to that checkpoint's weights and
    step, as the uninterrupted run ended (transformers would train a step more); a checkpoint before `max_steps`
    trains on to it."""
    import shutil

    from transformers import Trainer, TrainingArguments

    from hf_slm.training import train_resuming

    config = LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, tie_word_embeddings=True)  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    rows = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, 16, (12, 6), generator=generator)]

    def stage(max_steps: int) -> Trainer:
        torch.manual_seed(0)
        args = TrainingArguments(str(tmp_path), max_steps=max_steps, per_device_train_batch_size=2, save_steps=2,
                                 learning_rate=0.05, report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
                                 logging_steps=1)  # fmt: skip
        return Trainer(model=LlamaForCausalLM(config), args=args, train_dataset=rows)

    uninterrupted = stage(4)
    uninterrupted.train()
    assert (tmp_path / "checkpoint-4").is_dir()
    killed = stage(4)
    result = train_resuming(killed, last_complete_checkpoint(tmp_path))
    assert result.global_step == killed.state.global_step == 4 and result.metrics["train_runtime"] == 0
    logged = [log["loss"] for log in killed.state.log_history if "loss" in log]
    assert logged and result.training_loss == pytest.approx(sum(logged) / len(logged))
    expected = uninterrupted.model.state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in killed.model.state_dict().items())
    assert not torch.equal(killed.model.lm_head.weight, stage(4).model.lm_head.weight)  # trained, not a fresh init
    other = stage(4)  # a checkpoint of another model is refused, naming the file
    other.model = LlamaForCausalLM(LlamaConfig(**{**config.to_dict(), "intermediate_size": 12}))
    with pytest.raises(RuntimeError, match=r"checkpoint-4/model.safetensors does not hold the weights of this Llama"):
        train_resuming(other, last_complete_checkpoint(tmp_path))

    shutil.rmtree(tmp_path / "checkpoint-4")  # killed before it: the run trains from step 2 to 4
    resumed = stage(4)
    assert train_resuming(resumed, last_complete_checkpoint(tmp_path)).global_step == 4
    assert resumed.state.global_step == 4 and (tmp_path / "checkpoint-4").is_dir()


def test_thread_schedule_sets_threads_by_step_also_after_a_resume(tmp_path):
    """`ThreadSchedule({2: 2, 4: 1})`: steps 1-2 keep the process's threads, 3-4 run on 2, 5-6 on 1; a run resumed
    from checkpoint-4 starts on the entry in force there; the process's setting comes back after training."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from hf_slm.training import ThreadSchedule

    class Probe(TrainerCallback):  # the threads each optimiser step ran with
        def __init__(self):
            self.seen = {}

        def on_step_end(self, args, state, control, **kwargs):
            self.seen[state.global_step] = torch.get_num_threads()

    config = LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2)  # fmt: skip
    rows = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, 16, (12, 6))]

    def run(probe, resume=None):
        args = TrainingArguments(str(tmp_path), max_steps=6, per_device_train_batch_size=2, save_steps=4,
                                 report_to=[], use_cpu=True, disable_tqdm=True)  # fmt: skip
        trainer = Trainer(model=LlamaForCausalLM(config), args=args, train_dataset=rows,
                          callbacks=[ThreadSchedule.parse("2:2, 4:1"), probe])  # fmt: skip
        trainer.train(resume_from_checkpoint=resume)

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        probe = Probe()
        run(probe)
        assert probe.seen == {1: 3, 2: 3, 3: 2, 4: 2, 5: 1, 6: 1}
        assert torch.get_num_threads() == 3
        torch.set_num_threads(2)  # a resumed run at step 4 is on the schedule's 1 thread from its first step
        probe = Probe()
        run(probe, resume=str(tmp_path / "checkpoint-4"))
        assert probe.seen == {5: 1, 6: 1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    for bad in ("700", "a:2", "700:0", "-1:2", "2:2,4"):
        with pytest.raises(ValueError, match="thread schedule"):
            ThreadSchedule.parse(bad)


def test_end_distributed_leaves_the_process_group_and_is_a_no_op_without_one():
    """The launchable examples call it last on every rank (a gloo group left to interpreter teardown can abort a
    rank after its work is saved); here a one-rank gloo group in this process."""
    from hf_slm.training import end_distributed

    assert not torch.distributed.is_initialized()
    end_distributed()  # no group: nothing to do
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        assert torch.distributed.is_initialized()
        end_distributed()
        assert not torch.distributed.is_initialized()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_launch_defaults_follow_the_launcher(monkeypatch, tmp_path):
    """Environment as the launchers set it: several ranks without CUDA -> gloo on CPU; accelerate's --cpu simple
    launcher asked for several processes (MASTER_ADDR, no WORLD_SIZE) -> refused; one plain process -> nothing."""
    from transformers import TrainingArguments

    from hf_slm.training import LaunchError, completed_step, data_parallel_defaults, require_single_process

    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "MASTER_ADDR",
                 "ACCELERATE_USE_CPU"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    assert data_parallel_defaults() == {}
    require_single_process("x.py")
    monkeypatch.setenv("WORLD_SIZE", "2")
    expected = {} if torch.cuda.is_available() else {"use_cpu": True, "ddp_backend": "gloo"}
    assert data_parallel_defaults() == expected
    with pytest.raises(LaunchError, match="x.py runs on one process"):  # the GAN and instruct scripts
        require_single_process("x.py")
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    with pytest.raises(LaunchError, match="single process"):
        data_parallel_defaults()
    monkeypatch.delenv("ACCELERATE_USE_CPU")
    monkeypatch.delenv("MASTER_ADDR")

    checkpoint = _fake_checkpoint(tmp_path / "checkpoint-10", state='{"global_step": 10, "max_steps": 10}')
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=10, report_to="none")
    assert completed_step(None, args) is None and completed_step(checkpoint, args) == 10
    longer = TrainingArguments(output_dir=str(tmp_path), max_steps=20, report_to="none")
    assert completed_step(checkpoint, longer) is None
    epochs = TrainingArguments(output_dir=str(tmp_path), num_train_epochs=1, report_to="none")  # max_steps from state
    assert completed_step(checkpoint, epochs) == 10


# ====================================================================== the example, on synthesised speech
@pytest.fixture(scope="module")
def speech_dataset(tmp_path_factory) -> Path:
    """~20 espeak-ng utterances, saved with `save_to_disk` (what `hf-slm synth` writes)."""
    root = tmp_path_factory.mktemp("speech")
    ds = synthesize_dataset(
        load_text_corpus("builtin", limit=22, seed=0),
        voices=("en-us", "en-us+f3"),
        rates=(170,),
        cache_dir=root / "synthesis_cache",
        show_progress=False,
    )
    ds.save_to_disk(str(root / "speech"))
    return root / "speech"


def _script_args(dataset: Path, output_dir: Path, **overrides) -> list[str]:
    args = {
        "dataset_path": dataset,
        "output_dir": output_dir,
        "num_eval_utterances": 2,
        "num_units": NUM_UNITS,
        "kmeans_max_frames": 20000,
        "seq_length": 64,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 2,
        "learning_rate": 0.005,
        "warmup_steps": 0,
        "max_steps": 30,
        "logging_steps": 1,
        "save_steps": 10,
        "save_total_limit": 2,
        "disable_tqdm": True,
        "units_cache_dir": dataset.parent / "units_cache",
        **overrides,
    }
    return [str(CONFIG_TINY)] + [f"--{k}={v}" for k, v in args.items()]


def _run_script(args: list[str], log: Path, launcher: tuple = (sys.executable,), **env_overrides) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **env_overrides}  # fmt: skip
    with open(log, "w") as handle:
        return subprocess.Popen([*launcher, str(SCRIPT), *args], stdout=handle, stderr=subprocess.STDOUT,
                                cwd=ROOT, env=env, preexec_fn=lambda: os.umask(0o022))  # fmt: skip


def _finish(process: subprocess.Popen, log: Path, timeout: float = 240) -> str:
    process.wait(timeout=timeout)
    text = log.read_text()
    assert process.returncode == 0, text[-4000:]
    return text


def _losses(trainer_state: Path) -> dict[int, float]:
    history = json.loads(trainer_state.read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


@pytest.fixture(scope="module")
def reference_run(speech_dataset, tmp_path_factory) -> Path:
    """One uninterrupted run of the example (config_tiny.json plus overrides) in a subprocess."""
    out = tmp_path_factory.mktemp("reference")
    log = out.parent / f"{out.name}.log"
    _finish(_run_script(_script_args(speech_dataset, out), log), log)
    return out


def test_example_trains_and_the_loss_goes_down(reference_run):
    losses = _losses(reference_run / "trainer_state.json")
    assert sorted(losses) == list(range(1, 31))
    first, last = [losses[s] for s in (1, 2, 3)], [losses[s] for s in (28, 29, 30)]
    assert max(first) > math.log(NUM_UNITS) - 0.5  # starts near chance
    assert sum(last) / 3 < sum(first) / 3 - 0.5, losses
    results = json.loads((reference_run / "all_results.json").read_text())
    assert results["eval_loss"] < sum(first) / 3 - 0.5
    assert results["global_step"] == 30 and results["first_step_of_this_run"] == 1 and results["resumed_from"] is None
    assert 0.8 < results["packing_efficiency"] <= 1.0
    # the final model and the fitted speech tokenizer load back
    model = SpeechLMForCausalLM.from_pretrained(reference_run)
    assert model.config.num_units == NUM_UNITS and model.config.text_config.hidden_size == 32
    assert (reference_run / "speech_tokenizer" / "config.json").is_file()
    assert sorted(p.name for p in reference_run.glob("checkpoint-*")) == ["checkpoint-20", "checkpoint-30"]


def test_the_input_dataset_folder_is_left_alone(reference_run, speech_dataset):
    """Unit, split and shuffle caches go to units_cache_dir, not into the user's dataset folder (cache-*.arrow)."""
    assert sorted(p.name for p in speech_dataset.iterdir()) == [
        "data-00000-of-00001.arrow", "dataset_info.json", "state.json"
    ]
    assert list((speech_dataset.parent / "units_cache").glob("units-*.arrow"))


def test_finished_run_reruns_as_a_no_op(script, reference_run, speech_dataset, capsys):
    """Rerunning a run whose last checkpoint is at max_steps trains nothing and keeps its results byte for byte."""
    before = {name: (reference_run / name).read_bytes() for name in ("all_results.json", "trainer_state.json")}
    results = script.main(_script_args(speech_dataset, reference_run))
    assert "already complete" in capsys.readouterr().out
    assert {name: (reference_run / name).read_bytes() for name in before} == before
    assert results["global_step"] == 30
    assert json.loads((reference_run / "checkpoint-30" / "trainer_state.json").read_text())["global_step"] == 30
    assert not (reference_run / "checkpoint-31").exists()


def test_files_get_a_plain_writes_permissions(reference_run):
    """Run under umask 022: the final model, the checkpoints' weights and the fitted tokenizer are 644 / 755
    (safetensors writes through a private temporary file)."""
    entries = [p for p in reference_run.rglob("*") if p.suffix != ".lock"]
    assert reference_run / "checkpoint-30" / "model.safetensors" in entries
    modes = {str(p.relative_to(reference_run)): stat.S_IMODE(p.stat().st_mode) for p in entries}
    assert modes == {name: 0o755 if (reference_run / name).is_dir() else 0o644 for name in modes}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_accelerate_launch_is_data_parallel(reference_run, speech_dataset, tmp_path):
    """The documented `accelerate launch --config_file accelerate_ddp.yaml --num_processes 2` on a CPU machine: one
    gloo DDP group of two ranks, each reading its own half of the batches, and only rank 0 writing and talking."""
    out = tmp_path / "ddp"
    accelerate = Path(sys.executable).with_name("accelerate")
    launcher = (str(accelerate), "launch", "--config_file", str(ROOT / "examples/pretraining/accelerate_ddp.yaml"),
                "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(_free_port()))
    args = _script_args(speech_dataset, out, max_steps=2, speech_tokenizer_path=reference_run / "speech_tokenizer")
    log = tmp_path / "ddp.log"
    text = _finish(_run_script(args, log, launcher, CUDA_VISIBLE_DEVICES=""), log)  # the CPU path, even on a GPU host
    results = json.loads((out / "all_results.json").read_text())
    assert results["world_size"] == 2 and results["global_step"] == 2
    batch = 2  # per_device_train_batch_size
    assert results["train_batches_per_rank"] == math.ceil(results["train_rows"] / (2 * batch))  # a sharded sampler
    assert text.count("starting from step 0") == 1 and text.count('"global_step": 2') == 1  # rank 0 only
    assert "world_size 2" in text
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]


def test_accelerate_cpu_launch_of_two_processes_is_refused(speech_dataset, tmp_path):
    """`accelerate launch --cpu --num_processes 2` starts ONE process (accelerate's multi-CPU needs mpirun): the
    script must say so instead of training alone as if it were distributed."""
    out = tmp_path / "cpu"
    accelerate = Path(sys.executable).with_name("accelerate")
    launcher = (str(accelerate), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()))
    log = tmp_path / "cpu.log"
    process = _run_script(_script_args(speech_dataset, out, max_steps=2), log, launcher)
    process.wait(timeout=120)
    text = log.read_text()
    assert process.returncode != 0, text[-3000:]
    assert "not be data-parallel" in text and "torchrun --nproc_per_node" in text
    assert not out.exists()


def test_ctrl_c_names_the_last_checkpoint(reference_run, speech_dataset, tmp_path):
    out = tmp_path / "run"
    args = _script_args(speech_dataset, out, speech_tokenizer_path=reference_run / "speech_tokenizer", save_steps=1,
                        max_steps=1000)  # fmt: skip
    log = tmp_path / "interrupted.log"
    process = _run_script(args, log)
    deadline = time.time() + 200
    while not any(is_complete_checkpoint(p) for p in out.glob("checkpoint-*")):
        assert process.poll() is None, f"the run ended before its first checkpoint:\n{log.read_text()[-3000:]}"
        assert time.time() < deadline, "no checkpoint within 200 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    text = log.read_text()
    assert process.returncode == 130, text[-3000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    (line,) = [line for line in text.splitlines() if line.startswith("interrupted:")]
    last = Path(line.split("the last checkpoint is ")[1].split(";")[0])
    assert last.parent == out and is_complete_checkpoint(last) and "rerun the same command to resume from it" in line


# Put first on a run's PYTHONPATH (as sitecustomize.py), this SIGKILLs the run right after the checkpoint of step
# {step} is written: a kill at a known point, not a race between the test's polling and the run.
KILL_AFTER_SAVE = """
import os, signal, transformers

class _KillAfterSave(transformers.TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == {step}:
            os.kill(os.getpid(), signal.SIGKILL)

_init = transformers.Trainer.__init__

def _init_then_kill_after_save(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.add_callback(_KillAfterSave())  # after the script's own callbacks: the checkpoint is complete

transformers.Trainer.__init__ = _init_then_kill_after_save
"""


def _cache_files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_killed_run_resumes_from_its_last_checkpoint(reference_run, speech_dataset, tmp_path):
    out = tmp_path / "run"
    # the reference's tokenizer: the same units, so the datasets cache of the reference run must be hit
    args = _script_args(speech_dataset, out, speech_tokenizer_path=reference_run / "speech_tokenizer")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_AFTER_SAVE.format(step=20))
    cache = speech_dataset.parent / "units_cache"
    cached = _cache_files(cache)
    log = tmp_path / "first.log"
    path = os.pathsep.join([str(hook), str(ROOT), os.environ.get("PYTHONPATH", "")])
    process = _run_script(args, log, PYTHONPATH=path)
    process.wait(timeout=240)
    assert process.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert _cache_files(cache) == cached  # units loaded from the cache: nothing recomputed or added
    assert not (out / "all_results.json").exists()
    assert sorted(p.name for p in out.glob("checkpoint-*") if is_complete_checkpoint(p)) == [
        "checkpoint-10", "checkpoint-20"
    ]

    log = tmp_path / "second.log"
    _finish(_run_script(args, log), log)
    results = json.loads((out / "all_results.json").read_text())
    assert Path(results["resumed_from"]) == out / "checkpoint-20"
    assert results["first_step_of_this_run"] == 21 and results["global_step"] == 30
    # every step logged once, and the resumed steps reproduce the uninterrupted run (optimizer, scheduler, data order)
    losses, reference = _losses(out / "trainer_state.json"), _losses(reference_run / "trainer_state.json")
    assert sorted(losses) == list(range(1, 31))
    for step in range(1, 31):
        assert losses[step] == pytest.approx(reference[step], rel=1e-4, abs=1e-5), step


@pytest.fixture(scope="module")
def script():
    """The example script as a module (for in-process runs)."""
    from example_loader import load_script

    return load_script(SCRIPT)


def test_script_arguments(script, tmp_path):
    data_args, model_args, training_args = script.parse_arguments([str(CONFIG_TINY), "--max_steps", "7"])
    assert training_args.max_steps == 7 and model_args.hidden_size == 64 and data_args.seq_length == 256  # flag, JSON
    assert training_args.remove_unused_columns is False
    help_text = HfArgumentParser((script.SpeechDataArguments, script.SpeechModelArguments,
                                  script.TrainingArguments)).format_help()  # fmt: skip
    assert "--init_from_text_lm" in help_text and "--packing" in help_text
    (tmp_path / "bad.json").write_text(json.dumps({"hidden_size": 8, "hiden_layers": 2}))
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['hiden_layers'\]"):
        script.parse_arguments([str(tmp_path / "bad.json")])
    with pytest.raises(ValueError, match="packing must be one of"):
        script.parse_arguments([str(CONFIG_TINY), "--packing", "greedy"])
    # the configuration file is named in every error about it
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "binary.json").write_bytes(b"\x9b\x00\xff")
    (tmp_path / "config.yaml").write_text("hidden_size: 8\n")
    for name, error, message in (("list.json", ValueError, "list.json: expected a JSON object"),
                                 ("binary.json", ValueError, "binary.json is not a JSON configuration"),
                                 ("config.yaml", ValueError, "config.yaml: the configuration must be a .json file"),
                                 ("missing.json", FileNotFoundError, "missing.json does not exist")):  # fmt: skip
        with pytest.raises(error, match=message):
            script.parse_arguments([str(tmp_path / name)])


def test_twist_warm_start_with_wrapped_packing(script, reference_run, speech_dataset, tmp_path):
    """In process: `--init_from_text_lm` keeps the text LM's rows and appends units after them."""
    torch.manual_seed(0)
    text_lm = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=2, tie_word_embeddings=False))  # fmt: skip
    text_lm.save_pretrained(tmp_path / "text_lm")
    args = _script_args(
        speech_dataset, tmp_path / "twist", init_from_text_lm=tmp_path / "text_lm", packing="wrapped", max_steps=2,
        speech_tokenizer_path=reference_run / "speech_tokenizer", save_steps=100,
    )
    results = script.main(args)
    assert results["global_step"] == 2 and math.isfinite(results["eval_loss"])
    model = SpeechLMForCausalLM.from_pretrained(tmp_path / "twist")
    assert model.config.text_vocab_size == 50 and model.config.unit_token_offset == 50
    assert model.get_input_embeddings().weight.shape[0] == 50 + NUM_UNITS + 5


def test_flattened_batches_train_exactly_like_padded_ones(script, reference_run, speech_dataset, tmp_path):
    """Through the script: one utterance per row padded (`none`, attention mask) and the same batches flattened into
    one row (`flatten`, position ids only) must give the same losses: nothing leaks between utterances."""
    results = {}
    for mode in ("none", "flatten"):
        args = _script_args(
            speech_dataset, tmp_path / mode, packing=mode, max_steps=3, save_steps=100, deduplicate_units=True,
            seq_length=256,  # longer than any utterance: `none` truncates at seq_length, `flatten` does not
            speech_tokenizer_path=reference_run / "speech_tokenizer",
        )
        results[mode] = (script.main(args)["eval_loss"], _losses(tmp_path / mode / "trainer_state.json"))
    (eval_none, none), (eval_flat, flat) = results["none"], results["flatten"]
    assert sorted(none) == sorted(flat) == [1, 2, 3]
    # equal up to float summation order (measured ~1e-7); a leak (no use_cache=False) moved the first loss by 1e-4
    assert flat[1] == pytest.approx(none[1], rel=1e-5)
    assert [flat[2], flat[3], eval_flat] == pytest.approx([none[2], none[3], eval_none], rel=1e-4)


def test_a_lora_run_killed_after_its_last_checkpoint_ends_on_that_checkpoint(tmp_path):
    """The same for a PEFT model (instruction tuning): the checkpoint's adapter is loaded, not trained a step past."""
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    from hf_slm.training import train_resuming

    config = LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, tie_word_embeddings=True)  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    rows = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, 16, (12, 6), generator=generator)]

    def stage(rank: int = 4) -> Trainer:
        torch.manual_seed(0)
        model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=rank, target_modules=["q_proj", "v_proj"]))
        args = TrainingArguments(str(tmp_path), max_steps=4, per_device_train_batch_size=2, save_steps=2,
                                 learning_rate=0.05, report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
                                 logging_steps=1)  # fmt: skip
        return Trainer(model=model, args=args, train_dataset=rows)

    uninterrupted = stage()
    uninterrupted.train()
    killed = stage()
    before = {n: p.clone() for n, p in killed.model.named_parameters() if "lora_B" in n}
    assert train_resuming(killed, last_complete_checkpoint(tmp_path)).global_step == killed.state.global_step == 4
    expected = uninterrupted.model.state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in killed.model.state_dict().items())
    assert not all(torch.equal(killed.model.get_parameter(n), p) for n, p in before.items())  # the adapter moved
    with pytest.raises(RuntimeError, match=r"checkpoint-4 does not hold the adapter 'default' of this LlamaForCausalLM"):
        train_resuming(stage(rank=2), last_complete_checkpoint(tmp_path))
