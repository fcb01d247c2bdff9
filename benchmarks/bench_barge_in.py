"""Barge-in latency of live duplex (`SpokenChatPipeline.duplex_session`) vs a system that only takes turns.

`--num` barge-in scenarios (`hf_slm.evaluation.duplex_behaviour.make_scenarios`, seed 0: the user says a grammar
sentence in one espeak-ng voice, pauses, the system replies with `reply_units` = 150 units = 3 s; 1 s into the reply
the user barges in with a sentence of >= 1.6 s in the other voice) are streamed at 16 kHz, in chunks of `--chunks`
seconds, through the shipped `default` variant in one process, 1 thread, runs interleaved per scenario:
  (a) ours, hold     - falls silent at the confirmed onset (default `DuplexOptions`), drops the reply at 1 s of speech;
  (b) ours, no hold  - `hold_on_onset=False`: speaks on until the barge-in is confirmed (1 s of speech);
  (c) turn-only      - `barge_in=False`: stops only at the end of its turn (the cascaded baseline).
Latency = user speech onset (where the barge-in audio starts) -> the last system sample played (audio time: the
session emits exactly one chunk of system audio per user chunk, committed before the chunk is heard). `wall` adds
the wall time of the feed call that decided the stop (a player fed per chunk learns of the stop when it returns);
`RTF p90` = the 90th percentile of feed wall time / chunk duration (< 1: keeps up live). Prints median / p90 per
configuration and `ratio: X` = turn-only median / ours (hold, 0.1 s chunks) median (> 1: ours stops sooner).

    python benchmarks/bench_barge_in.py --num 10 --chunks 0.05,0.1,0.2
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import numpy as np
import torch

from hf_slm.evaluation.duplex_behaviour import make_scenarios
from hf_slm.pipelines import SpokenChatPipeline


def stop_latency(pipe, scenario, chunk_s: float, **options) -> tuple[float, float, list[float]]:
    """(audio latency, wall latency, per-feed real-time factors) of one barge-in scenario."""
    session = pipe.duplex_session(sampling_rate=scenario.sampling_rate, **options)
    onset = scenario.marks["onset"]
    size = int(round(chunk_s * scenario.sampling_rate))
    decided_wall, last, factors = None, None, []
    for start in range(0, len(scenario.audio), size):
        chunk = scenario.audio[start : start + size]
        began = time.perf_counter()
        step = session.feed(chunk)
        spent = time.perf_counter() - began
        factors.append(spent / (len(chunk) / scenario.sampling_rate))
        stops = [e for e in step.events if e.kind in ("hold", "barge_in") and e.time >= onset]
        if stops and decided_wall is None:
            decided_wall = spent
        if last is None and any(e.kind == "turn" and e.time > onset for e in step.events):
            last = session.last_system_sample
    last = session.last_system_sample if last is None else last
    audio = last - onset
    return audio, audio + (decided_wall or 0.0), factors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=10, help="barge-in scenarios")
    parser.add_argument("--chunks", default="0.05,0.1,0.2", help="comma-separated chunk durations (s) for ours")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipe = SpokenChatPipeline.from_pretrained("default")
    chunks = [float(c) for c in args.chunks.split(",")]
    scenarios = make_scenarios(kinds=("barge_in",), num_per_kind=args.num, seed=0)
    configs = {f"ours, hold, {c:g} s chunks": (c, {}) for c in chunks}
    configs["ours, no hold, 0.1 s chunks"] = (0.1, {"hold_on_onset": False})
    configs["turn-only baseline, 0.1 s chunks"] = (0.1, {"barge_in": False})
    results = {name: ([], [], []) for name in configs}
    start = time.perf_counter()
    for scenario in scenarios:
        for name, (chunk_s, options) in configs.items():
            audio, wall, factors = stop_latency(pipe, scenario, chunk_s, **options)
            results[name][0].append(audio)
            results[name][1].append(wall)
            results[name][2].extend(factors)
    print("| configuration | latency median / p90 (s) | wall median / p90 (s) | RTF p90 |")
    print("| --- | --- | --- | --- |")
    for name, (audio, wall, factors) in results.items():
        print(f"| {name} | {np.median(audio):.3f} / {np.percentile(audio, 90):.3f} | {np.median(wall):.3f} / "
              f"{np.percentile(wall, 90):.3f} | {np.percentile(factors, 90):.2f} |")  # fmt: skip
    ours = np.median(results["ours, hold, 0.1 s chunks"][0]) if 0.1 in chunks else np.median(next(iter(results.values()))[0])
    baseline = np.median(results["turn-only baseline, 0.1 s chunks"][0])
    print(f"\n{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread, {datetime.date.today()}, "
          f"{len(scenarios)} scenarios, {time.perf_counter() - start:.0f} s")  # fmt: skip
    print(f"ratio: {baseline / ours:.1f}")


if __name__ == "__main__":
    main()
