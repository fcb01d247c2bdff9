"""Vocoder throughput and codec real-time factor.

(1) Vocoders, same process, same sizes, random weights, interleaved rounds:
  (a) baseline - transformers' `SeamlessM4TCodeHifiGan` (the fairseq unit HiFi-GAN: unit embedding + duration
                 predictor + language / speaker embeddings + HiFi-GAN) on a padded batch of unit sequences;
  (b) ours     - `UnitHifiGanVocoder` with the same generator sizes and a duration predictor, on the same batch with
                 its attention mask (optionally bf16 / torch.compile on CUDA).
  Both predict durations from random weights, so their audio lengths differ: rates are audio-seconds produced per
  second. Last line `ratio: X` = ours / baseline.
(3) Streaming: first-chunk latency of `hf_slm.streaming.stream_vocode` (chunks of `--chunk-units`, context =
  the measured receptive field) vs the full synthesis of one `--stream-units`-unit utterance, for our HiFi-GAN
  (at `--size`) and the causal RVQ codec decoder (no look-ahead).
(2) Codecs: encode and decode real-time factor (compute seconds per audio second; < 1 is faster than real time) of
  our `RVQCodecModel` (default 4 kbps config) and of `CodecModel` around a random-init `encodec_24khz`.

docs/benchmarks.md figures: 2026-11-23, a 2-core Xeon shared with other jobs (load avg ~2.4); with `--threads 2` the
contended machine was slower than one thread. Parity is expected: our generator is transformers'
`SeamlessM4THifiGan` (composed, not copied); our duration expansion is a batched `searchsorted` where the baseline
loops over the batch with `repeat_interleave` and re-pads.

    python benchmarks/bench_vocoder.py --device cpu --size small --threads 1
    python benchmarks/bench_vocoder.py --device cuda --size base --dtype bfloat16 --compile
The H200 rows of docs/benchmarks.md come from `benchmarks/gpu_figures.sh` (its row for this script, one call).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch
from transformers import SeamlessM4TConfig
from transformers.models.seamless_m4t.modeling_seamless_m4t import SeamlessM4TCodeHifiGan

from hf_slm import CodecConfig, CodecModel, RVQCodecConfig, RVQCodecModel, UnitHifiGanVocoder, UnitHifiGanVocoderConfig

#: generator sizes (the same for both vocoders); "base" is the fairseq / speech-resynthesis code HiFi-GAN
SIZES = {
    "base": dict(upsample_initial_channel=512, resblock_kernel_sizes=(3, 7, 11), resblock_dilation_sizes=((1, 3, 5),) * 3),
    "small": dict(upsample_initial_channel=128, resblock_kernel_sizes=(3, 7, 11), resblock_dilation_sizes=((1, 3, 5),) * 3),
    "tiny": dict(upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),)),
}
NUM_UNITS, UNIT_DIM, LANG_DIM, SPEAKER_DIM = 100, 128, 8, 8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="ours only (CUDA)")
    parser.add_argument(
        "--baseline-dtype",
        default="float32",
        choices=["float32", "bfloat16", "both"],
        help="the baseline's; with 'both' each is timed and the ratio is against the one at our --dtype",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile our generator (CUDA)")
    parser.add_argument(
        "--compile-mode", default="default", choices=["default", "reduce-overhead"], help="reduce-overhead: CUDA graphs"
    )
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--units", type=int, default=150, help="deduplicated units per item (lengths vary from 60%%)")
    parser.add_argument("--codec-seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 = CPU-seconds are clean)")
    parser.add_argument("--skip-codecs", action="store_true")
    parser.add_argument("--chunk-units", type=int, default=25, help="streaming chunk (25 units = 0.5 s)")
    parser.add_argument("--stream-units", type=int, default=500, help="streamed utterance (500 units = 10 s)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fns: dict, device: str, warmup: int, repeats: int):
    """Median wall and CPU seconds per function over interleaved rounds, plus each one's last result."""
    results, wall, cpu = {}, {n: [] for n in fns}, {n: [] for n in fns}
    for index in range(warmup + repeats):
        for name, fn in fns.items():
            sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            results[name] = fn()
            sync(device)
            if index >= warmup:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    return {n: statistics.median(v) for n, v in wall.items()}, {n: statistics.median(v) for n, v in cpu.items()}, results


def build_vocoders(size: str, device: str):
    sizes = SIZES[size]
    torch.manual_seed(0)
    baseline_config = SeamlessM4TConfig(
        unit_hifi_gan_vocab_size=NUM_UNITS, unit_embed_dim=UNIT_DIM, lang_embed_dim=LANG_DIM, spkr_embed_dim=SPEAKER_DIM,
        vocoder_num_langs=1, vocoder_num_spkrs=1, upsample_rates=[5, 4, 4, 2, 2], upsample_kernel_sizes=[11, 8, 8, 4, 4],
        var_pred_dropout=0.5, variance_predictor_kernel_size=3, **sizes,
    )
    baseline = SeamlessM4TCodeHifiGan(baseline_config).eval().to(device)
    ours = UnitHifiGanVocoder(
        UnitHifiGanVocoderConfig(num_units=NUM_UNITS, embedding_dim=UNIT_DIM + LANG_DIM + SPEAKER_DIM,
                                 use_duration_predictor=True, **sizes)
    ).eval().to(device)
    return baseline, ours


def bench_vocoders(args):
    baseline, ours = build_vocoders(args.size, args.device)
    generator = torch.Generator().manual_seed(args.seed)
    lengths = torch.linspace(0.6 * args.units, args.units, args.batch_size).long()
    ids = torch.randint(0, NUM_UNITS, (args.batch_size, args.units), generator=generator)
    mask = (torch.arange(args.units)[None] < lengths[:, None]).long()
    # the baseline has no attention mask: its padding is its pad token (t2u_pad_token_id), as in SeamlessM4T
    baseline_ids = torch.where(mask.bool(), ids, baseline.pad_token_id).to(args.device)
    ids, mask = ids.to(args.device), mask.to(args.device)
    zeros = torch.zeros(args.batch_size, 1, dtype=torch.long, device=args.device)
    if args.dtype == "bfloat16":
        ours = ours.to(torch.bfloat16)
    if args.compile:
        # CUDA graphs need fixed shapes; the durations of fixed inputs are fixed, so one graph serves every call
        dynamic = args.compile_mode == "default"
        ours.hifi_gan = torch.compile(ours.hifi_gan, dynamic=dynamic, mode=args.compile_mode)
    dtypes = ["float32", "bfloat16"] if args.baseline_dtype == "both" else [args.baseline_dtype]
    baselines = {f"baseline-{d}": copy.deepcopy(baseline).to(getattr(torch, d)) for d in dtypes}

    def run_baseline(model):
        @torch.no_grad()
        def run():
            _, lengths_out = model(baseline_ids, spkr_id=zeros, lang_id=zeros)
            return int(lengths_out.sum())

        return run

    @torch.no_grad()
    def run_ours():
        if args.compile and args.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        return int(ours(input_ids=ids, attention_mask=mask).waveform_lengths.sum())

    fns = {name: run_baseline(model) for name, model in baselines.items()} | {"ours": run_ours}
    wall, cpu, samples = timed(fns, args.device, args.warmup, args.repeats)
    rates = {}
    models = baselines | {"ours": ours}
    for name, model in models.items():
        seconds = samples[name] / 16000
        rates[name] = seconds / wall[name]
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{name:17s} {params:6.2f}M params  {seconds:6.1f} s audio  wall {wall[name]:.4f} s  "
              f"cpu {cpu[name]:.4f} s  {rates[name]:9.1f} audio-s/s  {seconds / cpu[name]:9.1f} audio-s/CPU-s")
    against = f"baseline-{args.dtype}" if args.baseline_dtype == "both" else f"baseline-{args.baseline_dtype}"
    print(f"ratio against {against}")
    return rates["ours"] / rates[against]


def bench_codecs(args):
    torch.manual_seed(0)
    codecs = {
        "RVQCodecModel (defaults, 4 kbps)": RVQCodecModel(RVQCodecConfig()),
        "CodecModel(encodec_24khz, random init, 1.5 kbps)": CodecModel(CodecConfig()),
    }
    for name, codec in codecs.items():
        codec = codec.eval().to(args.device)
        samples = int(args.codec_seconds * codec.sampling_rate)
        audio = (torch.randn(1, samples, generator=torch.Generator().manual_seed(args.seed)) * 0.1).to(args.device)
        with torch.no_grad():
            codes = codec.encode(audio).codes
        fns = {"encode": lambda: codec.encode(audio).codes, "decode": lambda: codec.decode(codes).waveform}
        with torch.no_grad():
            wall, cpu, _ = timed(fns, args.device, args.warmup, args.repeats)
        params = sum(p.numel() for p in codec.parameters()) / 1e6
        print(f"{name}: {params:.2f}M params, {args.codec_seconds:.0f} s audio: "
              + ", ".join(f"{k} RTF {wall[k] / args.codec_seconds:.3f} (CPU-s/s {cpu[k] / args.codec_seconds:.3f})" for k in fns))


def bench_streaming(args):
    from hf_slm.streaming import receptive_field, stream_vocode

    _, vocoder = build_vocoders(args.size, args.device)
    vocoder.config.use_duration_predictor = False
    vocoder.duration_predictor = None  # one frame per unit: chunk sizes in units are chunk sizes in frames
    torch.manual_seed(0)
    codec = RVQCodecModel(RVQCodecConfig()).eval().to(args.device)
    generator = torch.Generator().manual_seed(args.seed)
    cases = {
        f"UnitHifiGanVocoder ({args.size})": (vocoder, torch.randint(0, NUM_UNITS, (args.stream_units,), generator=generator)),
        "RVQCodecModel decoder (causal, defaults)": (codec, torch.randint(0, 1024, (8, args.stream_units), generator=generator)),
    }
    for name, (model, units) in cases.items():
        context, lookahead = receptive_field(model)
        with torch.no_grad():
            model(input_ids=units[None].to(args.device))  # warm-up
            sync(args.device)
            start = time.perf_counter()
            model(input_ids=units[None].to(args.device))
            sync(args.device)
            full = time.perf_counter() - start
        start = time.perf_counter()
        chunks = stream_vocode(model, units, chunk_units=args.chunk_units, overlap_units=context, lookahead_units=lookahead)
        next(chunks)
        first = time.perf_counter() - start
        for _ in chunks:
            pass
        total = time.perf_counter() - start
        seconds = units.shape[-1] * model.config.hop_length / model.config.sampling_rate
        print(f"streaming {name}: receptive field {context} units back / {lookahead} ahead, chunk {args.chunk_units} "
              f"units: first chunk after {first * 1000:.0f} ms, all chunks {total:.2f} s, one-shot {full:.2f} s "
              f"({seconds:.0f} s audio)")


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"device {args.device}, size {args.size}, batch {args.batch_size} x <= {args.units} units, dtype {args.dtype} "
          f"(baseline {args.baseline_dtype}), "
          f"compile {args.compile}")
    if not args.skip_codecs:
        bench_codecs(args)
        bench_streaming(args)
    ratio = bench_vocoders(args)
    print(f"ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
