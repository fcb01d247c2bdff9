"""Batch-1 unit generation throughput: `FastUnitGenerator` vs `model.generate` (HF), same model, same run.

Both decode greedily (units and `</s>` allowed: `model.generate_units`, which calls `model.generate`) from the same
20-unit prompt for exactly `--new-tokens` tokens (the `</s>` row of the output layer is zeroed so that a random model
does not stop early) and time prefill + decode. Reported: tokens/s of each
(median of `--repeats` interleaved runs, after one warm-up run each that also pays any compilation), the share of
identical tokens, the ratio of each interleaved pair (generate's time / fast's time) with their spread, and last
`ratio: X` = fast / generate from the medians. On `--device cpu --threads 1` the rates use the process's CPU time (on
a shared machine wall time mostly measures the other jobs); wall-time rates are printed next to them. The figures in
docs/benchmarks.md are several invocations at the default arguments (plus `--size`, `--threads 1`, `--repeats 5`):
the median of their `ratio:` lines and the spread of all their pairs.

`--profile` adds, after the timing, where the fast path's decode goes: the tensor calls per token made from Python,
counted with a `TorchFunctionMode` (torch functions and tensor methods, indexing and views included), and
`torch.profiler`'s top ops over one more `FastUnitGenerator.generate` (prefill included; the profiler's own cost per
op inflates small ops, so read its shares as a lower bound of the products'). The matrix share quoted in the docs is
the lean step's CPU time over 200 steps with and without its `mm` / `addmm` (each replaced by a zero tensor of its
result's shape, ad hoc), medians of 7 runs in one process.

`--dtype` sets the model's dtype, so both paths run the same numerics. `--weights-dtype bfloat16|int8` makes only
`FastUnitGenerator` decode with a lighter copy of the backbone (`weights_dtype`): its units then differ from
`generate`'s, and the agreement is reported three ways: identical tokens position by position, tokens before the
first difference, and teacher-forced top-1 agreement (both backbones read `generate`'s sequence; share of positions
where they pick the same next unit), which does not compound one early difference into all later positions. Add
`--same-weights` to run `generate` on that same copy too: equal numerics again, so the ratio is what the decode loop
alone adds at those weights.

How the docs/benchmarks.md figures were obtained and read (2-core shared CPU, load avg 1.9-11; 2026-11-23 rows on the
earlier eager loop, one backbone call per token: tiny 1.42x, small 1.45x, 115m 1.00-1.02x; 2026-12-03 rows on
`LeanLlamaStep` with ~25 calls per layer; the first lean step, ~50 calls per layer, gave tiny 2.70-3.51x, small
1.72x before fusing q/k/v and gate/up and 1.80x after, 115m 1.13x):
  - Eager step at 3.5M (2026-12-03, load avg 9-13, one thread, `LeanLlamaStep` alone, 200 steps, median of 7 runs
    in one process, CPU time): 1.9-2.1 ms per step, of which the 17 matrix products (4 layers x (qkv, o + residual,
    gate/up, down + residual) + head) ~1.47 ms, ~70 % (step without them: 0.64 ms). 140 tensor calls per step made
    from Python (`TorchFunctionMode`; was 199 with ~50 calls per layer, 2.24-2.36 ms per step): the other 123 cost
    ~5 us each in place, of which 9 RMSNorms of 6 calls ~11 us each and 4 sdpa ~15 us each. `generate` takes
    ~4.7 ms per token, so even with no op but the products a loop at equal numerics stays under ~3.2x here. Before:
    `torch.profiler` of the first lean step gave `aten::mm` 50 %, ~130 small ops ~40 %, 1.80x; `F.rms_norm` is
    bit-equal in fp32 but runs ~10 ops inside (15 us against 11 us for the 6-call form). Compiling is no longer
    needed for 2x (the compiled module step measured 1.94-2.25x with a 25-55 s warm-up per process, and its
    inductor reductions are not checked bit-equal); compiling the lean step itself re-traced at every position.
  - Roofline at 115M: 113M `nn.Linear` parameters = 453 MB per token in fp32. 2026-12-03: a 512 MB one-thread
    `copy_` moved 19.3 GB/s (read + write) and 36 distinct 768x3072 matrix-vector products (`mm`, as the step runs
    them) streamed 17.2 GB/s, i.e. at most ~38 tok/s for any fp32 loop; the lean step at 32.5 tok/CPU-s streams
    14.7 GB/s (~85 % of that), `generate` 27.1. 2x `generate` would need 24.5 GB/s, more than the copy. (2026-11-23:
    copy 15.9-17.1 GB/s, lean step 25.1 tok/CPU-s.) Both paths spend > 95 % of a 115M step in the products.
  - bf16 does not pay on this CPU without AMX: 36 distinct 768x3072 `nn.Linear` (340 MB fp32), one row, one thread:
    fp32 31 ms, bf16 21 ms, `torch._weight_int8pack_mm` 16.7 ms, `torch.ao` dynamic int8 (fbgemm, VNNI) 6.5 ms.
  - An int8 step (profiler, 115M, 32 tokens): 65 % `quantized::linear_dynamic`, 6 % `aten::cat` (DynamicCache
    growth), 4 % attention, the rest small elementwise ops: a zero-overhead loop would add at most ~1.5x.
  - Compiling the int8 step: 135 vs 270 tok/CPU-s eager at 3.5M (ad-hoc script, 140 s warm-up), hence the refusal.

    python benchmarks/bench_generation.py --device cpu --size tiny --new-tokens 200 --threads 1
    python benchmarks/bench_generation.py --device cpu --size 115m --weights-dtype int8 --threads 1
    python benchmarks/bench_generation.py --device cuda --size 115m --new-tokens 1000      # bf16, CUDA graphs
The H200 rows of docs/benchmarks.md come from `benchmarks/gpu_figures.sh` (its row for this script, one call).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import platform
import statistics
import time

import torch
from transformers import LlamaConfig

from hf_slm.models.speech_lm import FastUnitGenerator, SpeechLMConfig, SpeechLMForCausalLM

SIZES = {  # Llama backbones: (hidden, MLP, layers, heads, kv heads)
    "tiny": (64, 128, 2, 4, 2),
    "small": (256, 704, 4, 4, 4),  # SpeechLMConfig's default backbone
    "115m": (768, 3072, 12, 12, 12),  # the anchor's size (HF generate, bf16, batch 1: ~92 tokens/s on an H100)
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", default="tiny", choices=sorted(SIZES))
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument(
        "--dtype", default=None, choices=["float32", "bfloat16"], help="default: bf16 on cuda, fp32 on cpu"
    )
    parser.add_argument(
        "--weights-dtype",
        default=None,
        choices=["bfloat16", "int8"],
        help="FastUnitGenerator only: decode with a bf16 / int8 copy of the backbone (numerics differ from generate)",
    )
    parser.add_argument(
        "--same-weights", action="store_true", help="with --weights-dtype: generate runs on the same lighter copy"
    )
    parser.add_argument("--compile", default="auto", choices=["auto", "on", "off"], help="auto: on for cuda only")
    parser.add_argument("--num-units", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also profile one fast decode (ops per token, top ops)")
    return parser.parse_args()


def build_model(args, device, dtype) -> SpeechLMForCausalLM:
    torch.manual_seed(args.seed)
    hidden, mlp, layers, heads, kv_heads = SIZES[args.size]
    backbone = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
    )
    model = SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, num_units=args.num_units))
    with torch.no_grad():  # no early </s>: both paths then generate exactly --new-tokens tokens
        model.get_output_embeddings().weight[model.config.eos_token_id] = 0.0
    return model.eval().to(device, dtype)


def timed(fn, device: torch.device) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu, result


@torch.inference_mode()
def teacher_forced_agreement(model, fast, prompt, generated) -> float:
    """Share of `generated`'s positions where the model and the fast path's backbone copy choose the same unit."""
    input_ids, _ = model.units_to_input_ids([prompt])
    ids = torch.cat([input_ids[0].cpu(), generated + model.config.unit_token_offset])[None].to(model.device)
    positions = slice(input_ids.shape[1] - 1, ids.shape[1] - 1)
    choices = [
        (lm(input_ids=ids).logits[0, positions].float() + fast._allowed_bias).argmax(-1)
        for lm in (model.language_model, fast.language_model)
    ]
    return (choices[0] == choices[1]).float().mean().item()


def main() -> None:
    args = parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device == "cuda" else "float32"))
    model = build_model(args, device, dtype)
    compile_ = {"auto": "auto", "on": True, "off": False}[args.compile]
    fast = FastUnitGenerator(model, compile=compile_, weights_dtype=args.weights_dtype)
    if args.same_weights and not args.weights_dtype:
        raise SystemExit("--same-weights needs --weights-dtype")
    baseline_model = model
    if args.same_weights:  # a model object that holds the fast path's backbone copy (shared, not copied again)
        baseline_model = copy.copy(model)
        baseline_model._modules = {**model._modules, "language_model": fast.language_model}
    prompt = torch.randint(0, args.num_units, (20,), generator=torch.Generator().manual_seed(args.seed))
    n = args.new_tokens

    def baseline(tokens=n):  # model.generate with the allowed-tokens processor (units and </s> only): generate_units
        with torch.inference_mode():
            return baseline_model.generate_units(prompt, max_new_tokens=tokens, do_sample=False)[0].cpu()

    def ours():
        return fast.generate(prompt, max_new_tokens=n, do_sample=False)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"date: {datetime.date.today()}  device: {args.device} ({name}, {torch.get_num_threads()} CPU threads)")
    print(f"torch {torch.__version__}  model: Llama {args.size} ({params:.1f}M params, {dtype})  prompt 20 units")
    warm_base, _, _ = timed(baseline, device)
    warm_fast, _, _ = timed(ours, device)
    print(f"warm-up: generate {warm_base:.2f} s, fast {warm_fast:.2f} s (includes compilation: {fast.compile})")
    # On a CPU with one thread, the process's CPU time is the time the decode itself took, whatever else the
    # machine runs; wall time is printed too. Elsewhere wall time is the measure.
    use_cpu_time = device.type == "cpu" and torch.get_num_threads() == 1
    measure = "CPU time of this process" if use_cpu_time else "wall time"
    times = {"generate": ([], []), "fast": ([], [])}
    agreement = []
    for _ in range(args.repeats):  # interleaved, so that load changes hit both
        outputs = {}
        for name, fn in (("generate", baseline), ("fast", ours)):
            wall, cpu, outputs[name] = timed(fn, device)
            times[name][0].append(wall)
            times[name][1].append(cpu)
            if len(outputs[name]) != n:
                raise SystemExit(f"expected {n} tokens from {name}, got {len(outputs[name])}")
        agreement.append((outputs["generate"] == outputs["fast"]).float().mean().item())
        first_difference = (outputs["generate"] != outputs["fast"]).nonzero()
        prefix = first_difference[0, 0].item() if len(first_difference) else n
    rates = {}
    for name, (walls, cpus) in times.items():
        wall_rate, cpu_rate = n / statistics.median(walls), n / statistics.median(cpus)
        rates[name] = cpu_rate if use_cpu_time else wall_rate
        print(f"{name}: {rates[name]:.1f} tokens/s by {measure} (wall: {wall_rate:.1f} tokens/s)")
    on_copy = f" on the fast path's {args.weights_dtype} copy" if args.same_weights else ""
    print(f"  generate = model.generate via generate_units (dynamic cache){on_copy}, batch 1, {n} new tokens")
    weights = f", weights_dtype={args.weights_dtype}" if args.weights_dtype else ""
    print(f"  fast = FastUnitGenerator ({fast.cache_implementation} cache, compile={fast.compile}{weights})")
    print(f"identical greedy tokens: {100 * min(agreement):.1f}% (first {prefix} of {n} before any difference)")
    if args.weights_dtype and not args.same_weights:
        agreement = teacher_forced_agreement(model, fast, prompt, outputs["generate"])
        print(f"teacher-forced top-1 agreement with the {dtype} model: {100 * agreement:.1f}%")
    index = 1 if use_cpu_time else 0  # per interleaved pair: generate's time / fast's time
    pairs = [g / f for g, f in zip(times["generate"][index], times["fast"][index])]
    print(f"ratio per repeat: {', '.join(f'{r:.2f}' for r in pairs)} (spread {min(pairs):.2f}-{max(pairs):.2f})")
    if args.profile:
        profile(ours, n, device, compiled=fast.compile)
        profile(lambda: baseline(30), 30, device, compiled=False, label="generate (30 tokens)")
    print(f"ratio: {rates['fast'] / rates['generate']:.2f}")


def profile(ours, n: int, device: torch.device, compiled: bool, label: str = "fast") -> None:
    """Tensor calls per token of `ours` (eager only: a function mode would re-trace a compiled step) and
    `torch.profiler`'s top ops (on CUDA by GPU time, with the CUDA kernels, then by CPU time)."""
    from collections import Counter

    from torch.overrides import TorchFunctionMode
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    class CountCalls(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls = Counter()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls[getattr(func, "__name__", str(func))] += 1
            return func(*args, **(kwargs or {}))

    if not compiled:
        with CountCalls() as counter:
            ours()
        products = sum(counter.calls[name] for name in ("mm", "addmm", "linear", "bmm"))
        print(f"profile of {label}: {sum(counter.calls.values()) / n:.0f} tensor calls per token ({products / n:.0f} matrix products)")
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=activities) as prof:
        ours()
        if cuda:
            torch.cuda.synchronize()
    print(f"profile of {label}, {n} tokens:")
    for sort_by in ("self_cuda_time_total", "self_cpu_time_total") if cuda else ("self_cpu_time_total",):
        print(prof.key_averages().table(sort_by=sort_by, row_limit=15))


if __name__ == "__main__":
    main()
