"""Pre-training throughput: our path (SpeechLMForCausalLM + packing + Trainer) vs plain LlamaForCausalLM + Trainer.

Same Llama size, same random unit "utterances" (lengths uniform in [--min-len, --max-len] tokens), same
`TrainingArguments` (bf16 and fused AdamW on CUDA), timed over `--steps` optimiser steps after `--warmup` steps:
  (a) ours          - `SpeechLMForCausalLM` over best-fit-decreasing packed rows of `--seq-len` with per-document
                      position ids (no attention across utterances), `PackedSequenceCollator`, optional
                      `torch_compile` (`--compile`) and attention implementation (`--attn`);
  (b) plain-concat  - `LlamaForCausalLM`, the run_clm.py recipe: all utterances concatenated and cut into full rows
                      (every token trained, but utterances attend to their neighbours);
  (c) plain-padded  - `LlamaForCausalLM`, one utterance per row, padded to the longest in the batch (what a Trainer
                      does without packing; padding is computed and thrown away).
Tokens/s counts real (non-padding) tokens. MFU = model FLOPs per token x tokens/s / peak, with FLOPs per token
= 6 N + 12 L d s (N = parameters without the input embedding, L layers, d width, s = --seq-len: the PaLM formula with
attention, which reproduces the 26 % MFU anchor for 279k tok/s of a 115M Llama at s = 2048 on an H100) and also 6 N
alone. Peak: --peak-tflops (default 989 for an H100's dense bf16 on CUDA; not reported on CPU).
Last line: `ratio: X` = ours / plain-concat tokens/s. On `--device cpu` the figures are tokens per CPU-second of the
process (use `--threads 1`): on a shared machine wall-clock time mostly measures the other jobs.

How the docs/benchmarks.md CPU figures were obtained (2026-11-23, 2-core Xeon shared with other jobs, load avg
~6.6): `--threads 1` and CPU time, because one untuned wall-time run gave ours 1,003 / 800 / 14,306 tok/s in three
rounds, while a single-threaded process's CPU time stays within ~10-20 %. `--size tiny` is hidden 64, 2 layers,
4 heads, MLP 256 (0.2M parameters without the input embedding); a step is per-op overhead, not matrix work. The
block-diagonal mask sends sdpa down its masked path: ~10 % per step in a direct 1-thread timing (66 vs 60 ms); against
padding, packing saves ~40 % of a padded batch of 16-128-token utterances. GPU (H200, torch 2.11, `--profile`):
sdpa with the block-diagonal mask ran cuDNN's flash kernels (41 % of GPU time, forward + backward), over the full
causal row; `--attn flex_attention` (a block-sparse `BlockMask` from the same position ids) would skip the masked
blocks but did not finish compiling in 80 s; `flash_attention_2` with the example's `--packing flatten` (varlen, no
mask) needs the flash-attn package. `--compile` fuses norms / rotary / SwiGLU. Fused or chunked
cross-entropy matters little at a 505-token vocabulary (the head is < 0.5 % of the 115M model's FLOPs); it does for a
TWIST warm start with a 32k-150k text vocabulary (`--use_liger_kernel` of `TrainingArguments`).

    python benchmarks/bench_pretraining.py --device cpu --size tiny --seq-len 256 --threads 1 --repeats 3
    python benchmarks/bench_pretraining.py --device cuda --size 115m --seq-len 2048 --batch-size 16 --compile
The H200 rows of docs/benchmarks.md come from `benchmarks/gpu_figures.sh` (its row for this script, one call).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import sys
import statistics
import tempfile
import time

import datasets
import torch
from datasets import Dataset
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

from hf_slm.models.speech_lm import SpeechLMConfig, SpeechLMForCausalLM
from hf_slm.training import CausalLMCollator, PackedSequenceCollator, pack_dataset

SIZES = {
    # hidden, layers, heads, intermediate
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "115m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", default="tiny", choices=sorted(SIZES))
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=8, help="rows per optimiser step")
    parser.add_argument("--num-units", type=int, default=500)
    parser.add_argument("--min-len", type=int, default=None, help="shortest utterance (default seq-len/16)")
    parser.add_argument("--max-len", type=int, default=None, help="longest utterance (default seq-len/2)")
    parser.add_argument("--steps", type=int, default=10, help="timed optimiser steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, allocator)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of (a, b, c); the median is reported")
    parser.add_argument("--compile", action="store_true", help="torch_compile=True for ours")
    parser.add_argument("--attn", default="sdpa", help="attention implementation of ours (baselines: sdpa)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="accelerator peak (H100 SXM dense bf16)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants", default="ours,plain-concat,plain-padded", help="comma-separated subset (ratio needs the first two)"
    )
    parser.add_argument("--profile", action="store_true", help="torch.profiler's top ops over 3 steps of ours")
    return parser.parse_args()


class _StepClock(TrainerCallback):
    def __init__(self, device: str):
        self.device, self.times, self.cpu_times = device, [], []

    def on_step_end(self, args, state, control, **kwargs):
        if self.device == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())
        self.cpu_times.append(time.process_time())


class _ProfileSteps(TrainerCallback):
    """`torch.profiler` over `steps` optimiser steps after `start` (CPU ops, and CUDA kernels on CUDA)."""

    def __init__(self, device: str, start: int, steps: int = 3):
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        self.device, self.start, self.stop, self.profiler = device, start, start + steps, profile(activities=activities)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.start:
            self.profiler.__enter__()
        elif state.global_step == self.stop:
            if self.device == "cuda":
                torch.cuda.synchronize()
            self.profiler.__exit__(None, None, None)
            sort_by = "self_cuda_time_total" if self.device == "cuda" else "self_cpu_time_total"
            print(self.profiler.key_averages().table(sort_by=sort_by, row_limit=25), file=sys.stderr)


class _Counting:
    """Wrap a collator; record the real (non-padding) tokens of each batch, in order."""

    def __init__(self, collator, count):
        self.collator, self.count, self.tokens = collator, count, []

    def __call__(self, features):
        batch = self.collator(features)
        self.tokens.append(self.count(features, batch))
        return batch


def _concat_rows(documents: list[list[int]], seq_len: int) -> Dataset:
    """run_clm.py's group_texts: one stream, cut into full rows, labels = inputs (positions 0..seq_len-1)."""
    stream = [t for d in documents for t in d]
    rows = [stream[i : i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)]
    return Dataset.from_dict({"input_ids": rows})


def _default_collator(features):
    ids = torch.tensor([f["input_ids"] for f in features])
    return {"input_ids": ids, "labels": ids.clone()}


def run_variant(name, args, documents, backbone: LlamaConfig, layout) -> tuple[float, float]:
    """(tokens per wall-clock second, tokens per CPU-second of this process) over the timed steps of one run."""
    torch.manual_seed(args.seed)
    seq = args.seq_len
    if name == "ours":
        config = SpeechLMConfig(text_config=LlamaConfig(**backbone.to_dict(), attn_implementation=args.attn),
                                num_units=args.num_units)  # fmt: skip
        model = SpeechLMForCausalLM(config)
        data = pack_dataset(Dataset.from_dict({"input_ids": documents}), seq)
        collator = _Counting(
            PackedSequenceCollator(pad_token_id=layout.pad_token_id),
            lambda f, b: sum(len(x["input_ids"]) for x in f),  # rows hold no padding until the collator adds it
        )
    else:
        model = LlamaForCausalLM(LlamaConfig(**backbone.to_dict(), attn_implementation="sdpa"))
        if name == "plain-concat":
            data, collator = _concat_rows(documents, seq), _Counting(_default_collator, lambda f, b: b["input_ids"].numel())
        else:
            data = Dataset.from_dict({"input_ids": documents})
            collator = _Counting(CausalLMCollator(pad_token_id=layout.pad_token_id, max_length=seq),
                                 lambda f, b: int(b["attention_mask"].sum()))  # fmt: skip
    clock = _StepClock(args.device)
    callbacks = [clock]
    if args.profile and name == "ours":  # after the timed window, so that it does not slow the figures
        callbacks.append(_ProfileSteps(args.device, start=args.warmup + args.steps))
    with tempfile.TemporaryDirectory() as out:
        training_args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=args.batch_size,
            max_steps=args.warmup + args.steps + (3 if args.profile and name == "ours" else 0),
            learning_rate=3e-4,
            warmup_steps=0,
            lr_scheduler_type="constant",
            logging_steps=10_000,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            bf16=args.device == "cuda",
            use_cpu=args.device == "cpu",
            optim="adamw_torch_fused" if args.device == "cuda" else "adamw_torch",
            torch_compile=args.compile and name == "ours",
            dataloader_num_workers=0,
            dataloader_pin_memory=args.device == "cuda",
            remove_unused_columns=False,
            seed=args.seed,
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=data, data_collator=collator, callbacks=callbacks)
        with contextlib.redirect_stdout(io.StringIO()):
            trainer.train()
    end = args.warmup + args.steps
    tokens = sum(collator.tokens[args.warmup : end])
    wall = clock.times[end - 1] - clock.times[args.warmup - 1]
    cpu = clock.cpu_times[end - 1] - clock.cpu_times[args.warmup - 1]
    return tokens / wall, tokens / cpu


def main() -> None:
    args = parse_args()
    datasets.disable_progress_bars()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no CUDA device")
    if args.warmup < 1:
        raise SystemExit("--warmup must be >= 1 (the first step's clock starts the timed window)")
    size = SIZES[args.size]
    layout = SpeechLMConfig(num_units=args.num_units).vocab_layout
    backbone = LlamaConfig(
        vocab_size=layout.vocab_size,
        num_key_value_heads=size["num_attention_heads"],
        max_position_embeddings=max(4096, args.seq_len),
        tie_word_embeddings=False,
        pad_token_id=layout.pad_token_id,
        bos_token_id=layout.bos_token_id,
        eos_token_id=layout.eos_token_id,
        **size,
    )
    lo, hi = args.min_len or max(2, args.seq_len // 16), args.max_len or max(4, args.seq_len // 2)
    g = torch.Generator().manual_seed(args.seed)
    needed = (args.warmup + args.steps + 2) * args.batch_size * args.seq_len * 1.2
    documents, total = [], 0
    while total < needed:
        n = int(torch.randint(lo, hi + 1, (1,), generator=g))
        units = torch.randint(0, args.num_units, (n - 3,), generator=g)
        documents.append(layout.speech_prefix_ids() + (units + layout.unit_token_offset).tolist() + [layout.eos_token_id])
        total += n

    n_params = sum(p.numel() for p in LlamaForCausalLM(backbone).parameters()) - layout.vocab_size * size["hidden_size"]
    flops_6n = 6 * n_params
    flops = flops_6n + 12 * size["num_hidden_layers"] * size["hidden_size"] * args.seq_len
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    print(f"device: {args.device} ({device_name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"model: Llama {args.size} ({n_params / 1e6:.1f}M parameters without the input embedding), vocab "
          f"{layout.vocab_size}, seq {args.seq_len}, batch {args.batch_size}, utterances {lo}-{hi} tokens, "
          f"{args.steps} timed steps after {args.warmup}, compile={args.compile}, attn(ours)={args.attn}")  # fmt: skip
    variants = args.variants.split(",")
    unknown = set(variants) - {"ours", "plain-concat", "plain-padded"}
    if unknown or not variants:
        raise SystemExit(f"--variants: unknown {sorted(unknown)}; choose from ours, plain-concat, plain-padded")
    results = {name: [] for name in variants}
    for _ in range(args.repeats):  # rounds interleave the variants, so drifting load from other jobs hits all alike
        for name in results:
            results[name].append(run_variant(name, args, documents, backbone, layout))
    # On a CPU the primary figure is tokens per CPU-second of this process: on a machine shared with other jobs,
    # wall time mostly measures the neighbours (with --threads 1 there is no OpenMP spinning to inflate CPU time).
    primary = 1 if args.device == "cpu" else 0
    unit = "tok per CPU-second" if primary else "tok/s"
    speed = {name: statistics.median(v[primary] for v in values) for name, values in results.items()}
    wall = {name: statistics.median(v[0] for v in values) for name, values in results.items()}
    for name, value in speed.items():
        line = f"{name:>13}: {value:12,.0f} {unit}"
        if primary:
            line += f"  (wall clock: {wall[name]:,.0f} tok/s)"
        else:
            line += (f"  MFU {100 * flops * value / (args.peak_tflops * 1e12):5.1f} % "
                     f"(6N only: {100 * flops_6n * value / (args.peak_tflops * 1e12):5.1f} %)")  # fmt: skip
        runs = ", ".join(f"{v[primary]:,.0f}" for v in results[name])
        print(line + ("" if args.repeats == 1 else f"  (runs: {runs})"))
    if {"ours", "plain-padded"} <= speed.keys():
        print(f"ours / plain-padded: {speed['ours'] / speed['plain-padded']:.2f}")
    if {"ours", "plain-concat"} <= speed.keys():
        print(f"ratio: {speed['ours'] / speed['plain-concat']:.2f}")


if __name__ == "__main__":
    main()
