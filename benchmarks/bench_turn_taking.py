"""Turn-taking statistics (dGSLM's table) of generated two-speaker dialogues, for named timing settings.

For each setting, `--num` dialogues are made with `hf_slm.data.dialogue.generate_dialogues` (voices en-us and
en-us+f3, rate 175, seed 0) and measured from the audio with `hf_slm.evaluation.turn_taking.turn_taking_statistics`
(Silero VAD per channel, IPUs broken by 200 ms of silence, threshold 0.5). Prints the Markdown table of docs/duplex.md
(events per minute, N, and seconds of the event per minute, s), the machine and date, and the seconds it took.

    python benchmarks/bench_turn_taking.py --num 20
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import torch

from hf_slm.data.dialogue import DialogueTiming, generate_dialogues
from hf_slm.evaluation.turn_taking import EVENTS, turn_taking_statistics

SETTINGS = {
    "calm (no overlap)": DialogueTiming(gap_mean=0.6, gap_std=0.2, overlap_probability=0.0,
                                        interruption_probability=0.0, backchannel_probability=0.0),  # fmt: skip
    "default": DialogueTiming(),
    "lively": DialogueTiming(gap_mean=0.3, gap_std=0.15, overlap_probability=0.4, interruption_probability=0.15,
                             backchannel_probability=0.6),  # fmt: skip
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=20, help="dialogues per setting")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = {"ipu": "IPU", "pause": "pause", "gap": "gap", "overlap_within": "overlap within",
             "overlap_between": "overlap between"}  # fmt: skip
    print("| setting | minutes | " + " | ".join(f"{names[e]} N / s" for e in EVENTS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in EVENTS) + " |")
    start = time.perf_counter()
    for label, timing in SETTINGS.items():
        dialogues = generate_dialogues(args.num, timing, seed=0)
        stats = turn_taking_statistics([(d.audio, d.sampling_rate) for d in dialogues])
        cells = [f"{stats[e]['per_minute']:.1f} / {stats[e]['duration_per_minute']:.1f}" for e in EVENTS]
        print(f"| {label} | {stats['minutes']:.1f} | " + " | ".join(cells) + " |")
    print(f"\n{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread, "
          f"{datetime.date.today()}, {time.perf_counter() - start:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
