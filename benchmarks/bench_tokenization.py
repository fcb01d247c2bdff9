"""Tokenisation throughput: our batched, padding-aware UnitEncoderModel vs what plain transformers offers.

Times, in one process, on the same random-init HuBERT weights and the same k=500 centroids:
  (a) baseline  - a per-utterance loop of `HubertModel` + argmin over the centroids (padding-safe the naive way);
  (b) ours      - `UnitEncoderModel.tokenize` on the same utterances: length-sorted batches (padding <= 10 %),
                  batch size and workers picked for the device (`batching.default_plan`: on a CPU one worker per
                  torch thread, each with one intra-op thread; HuBERT-base-wide encoders one utterance per batch,
                  small ones batches of up to 16), masked GroupNorm where a batch is padded, k-means included;
  (c) bare      - one batched `HubertModel` forward on the same padded batch (no mask, no k-means): the ceiling.
Prints audio-seconds per second for each, ours/bare (goal >= 0.9), the unit agreement of (b) with (a), and last
`ratio: X` = ours / per-utterance loop.

How the docs/benchmarks.md figures were obtained (2026-11-23, a 2-core Xeon shared with other jobs, load avg 6-9):
the default `--size base --batch-size 16` did not finish in 15 minutes there, so the CPU rows use `--size tiny`
(hidden 96, 2 layers, 64 conv channels, standard kernels/strides; batch 16 of 6-10 s) and base size at batch 4.
Rounds are interleaved (a, b, c, a, ...) so load hits all three alike; still noisy (the tiny loop measured 16.6,
17.9, 35.6 and 16.8 audio-s/s in four runs). ours/bare was 0.68-0.75 at tiny size: the masked GroupNorm's
per-utterance reductions (`torch.var_mean` on 16 strided slices, ~0.35-0.45 s on [16, 64, 32000]) are several times
slower than the fused native GroupNorm (~0.1-0.15 s), visible only when the conv stack is as cheap as with 64
channels. Tried without a clear gain: one einsum over a mask, `bmm` sums with a mask, per-item native `group_norm`
(slower). On the CPU batching buys little at base size (compute-bound already); the GPU row is what it is for.

    python benchmarks/bench_tokenization.py --device cpu --size tiny
    python benchmarks/bench_tokenization.py --device cuda --dtype bfloat16
The H200 rows of docs/benchmarks.md come from `benchmarks/gpu_figures.sh` (its row for this script, one call).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from transformers import HubertConfig, HubertModel

from hf_slm.models.unit_encoder import (
    SpeechFeatureExtractor,
    TokenizationPlan,
    UnitEncoderConfig,
    UnitEncoderModel,
    default_plan,
    length_buckets,
)

SIZES = {
    "base": {},  # HubertConfig() defaults: HuBERT-base, 12 layers, hidden 768 (random init, no download)
    "tiny": {"hidden_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 384, "conv_dim": (64,) * 7},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="longest utterance; lengths vary from 60%% of it")
    parser.add_argument("--size", default="base", choices=sorted(SIZES))
    parser.add_argument("--layer", type=int, default=None, help="hidden state to quantise (default: last layer)")
    parser.add_argument("--num-units", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plan-batch-size", type=int, default=None, help="override (b)'s batch size")
    parser.add_argument("--workers", type=int, default=None, help="override (b)'s number of workers")
    parser.add_argument(
        "--loop-threads", type=int, default=None, help="torch threads of (a) only (default: torch's, as a user runs it)"
    )
    parser.add_argument("--max-padding", type=float, default=None, help="override (b)'s padding bound (0.1 = 10 %%)")
    parser.add_argument("--skip-bare", action="store_true", help="do not time (c) (saves a third of the run)")
    parser.add_argument("--profile", action="store_true", help="torch.profiler's top ops over one more call of (b)")
    return parser.parse_args()


def timed(fns: dict, device: str, warmup: int, repeats: int) -> tuple[dict, dict]:
    """Median seconds per function over `repeats` rounds after `warmup` rounds, plus each one's last result.

    Rounds interleave the functions (a, b, c, a, b, c, ...) so that load from other processes drifts over all of
    them alike instead of biasing whichever ran during a busy minute.
    """
    results, times = {}, {name: [] for name in fns}
    for round_index in range(warmup + repeats):
        for name, fn in fns.items():
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            results[name] = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, results


def main() -> None:
    args = parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    torch.manual_seed(args.seed)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    ssl_config = HubertConfig(**SIZES[args.size])
    layer = ssl_config.num_hidden_layers if args.layer is None else args.layer
    bare = HubertModel(ssl_config).eval().to(device, dtype)
    centroids = torch.randn(args.num_units, ssl_config.hidden_size, device=device)

    config = UnitEncoderConfig(frontend="ssl", ssl_config=ssl_config, ssl_layer=layer, num_units=args.num_units)
    ours = UnitEncoderModel(config).eval()
    ours.ssl_encoder.load_state_dict(bare.state_dict(), strict=False)  # same weights (only the needed layers)
    ours.cluster_centers.copy_(centroids)
    ours.is_fitted.fill_(True)
    ours.to(device)
    ours.ssl_encoder.to(dtype)  # the k-means state stays float32

    rate = 16000
    gen = torch.Generator().manual_seed(args.seed)
    low = 0.6 * args.seconds
    lengths = [int(rate * (low + (args.seconds - low) * i / max(args.batch_size - 1, 1))) for i in range(args.batch_size)]
    lengths = [lengths[i] for i in torch.randperm(len(lengths), generator=gen)]
    waves = [torch.randn(n, generator=gen) * 0.1 for n in lengths]
    inputs = SpeechFeatureExtractor(sampling_rate=rate)(waves, sampling_rate=rate)
    values, mask = inputs["input_values"].to(device), inputs["attention_mask"].to(device)
    singles = [values[i : i + 1, : lengths[i]] for i in range(len(lengths))]
    audio_seconds = sum(lengths) / rate

    def hidden(model_out):
        return model_out.hidden_states[layer]

    def baseline():
        threads = torch.get_num_threads()
        torch.set_num_threads(args.loop_threads or threads)
        units = []
        for wave in singles:
            feats = hidden(bare(wave.to(dtype), output_hidden_states=True))[0].float()
            units.append(torch.cdist(feats, centroids).argmin(-1))
        torch.set_num_threads(threads)
        return units

    plan = default_plan(config, device, max_batch_size=args.batch_size)
    if args.plan_batch_size or args.workers or args.max_padding is not None:
        workers = args.workers or plan.num_workers
        plan = TokenizationPlan(
            batch_size=args.plan_batch_size or plan.batch_size,
            max_padding=plan.max_padding if args.max_padding is None else args.max_padding,
            num_workers=workers,
            threads_per_worker=1 if workers > 1 and args.device == "cpu" else None,
        )

    def batched_ours():
        return ours.tokenize(values, attention_mask=mask, plan=plan)

    def batched_bare():
        return hidden(bare(values.to(dtype), output_hidden_states=True))

    fns = {"loop": baseline, "ours": batched_ours} | ({} if args.skip_bare else {"bare": batched_bare})
    with torch.inference_mode():
        medians, results = timed(fns, args.device, args.warmup, args.repeats)
    t_loop, t_ours, t_bare = medians["loop"], medians["ours"], medians.get("bare", float("nan"))
    loop_units, out = results["loop"], results["ours"]

    agree = sum(int((out[i] == u.cpu()).sum()) if len(out[i]) == len(u) else 0 for i, u in enumerate(loop_units))
    total = sum(len(u) for u in loop_units)
    threads = torch.get_num_threads()
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else f"{platform.processor() or 'cpu'}, {threads} threads"
    print(
        f"device: {args.device} ({where}), dtype {args.dtype}, size {args.size} (hidden {ssl_config.hidden_size}, "
        f"{ssl_config.num_hidden_layers} layers, quantised layer {layer}), batch {args.batch_size}, "
        f"lengths {min(lengths) / rate:.1f}-{max(lengths) / rate:.1f} s ({audio_seconds:.1f} s of audio), "
        f"k={args.num_units}, median of {args.repeats} interleaved rounds after {args.warmup} warm-up"
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"(a) runs with {args.loop_threads or threads} torch thread(s)")
    print(
        f"(b)'s plan: batch size {plan.batch_size}, padding <= {plan.max_padding:.0%} ({len(length_buckets(lengths, plan.batch_size, plan.max_padding))} batches), {plan.num_workers} worker(s) "
        f"x {plan.threads_per_worker or threads} thread(s); load average before the run: {load_before}, after: {load}"
    )
    print(f"(a) per-utterance loop, HubertModel + argmin  : {audio_seconds / t_loop:9.1f} audio-s/s  ({t_loop:.3f} s)")
    print(f"(b) ours, UnitEncoderModel.tokenize      : {audio_seconds / t_ours:9.1f} audio-s/s  ({t_ours:.3f} s)")
    print(f"(c) bare HubertModel batched forward          : {audio_seconds / t_bare:9.1f} audio-s/s  ({t_bare:.3f} s)")
    print(f"ours / bare: {t_bare / t_ours:.2f} (goal >= 0.90)")
    print(f"units of (b) equal to (a): {100 * agree / total:.2f}% of {total} frames")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        cuda = args.device == "cuda"
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
            batched_ours()
            if cuda:
                torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total", row_limit=15))
    print(f"ratio: {t_loop / t_ours:.2f}")


if __name__ == "__main__":
    main()
