"""Turn-taking statistics (dGSLM's table) of generated two-speaker dialogues, for named timing settings.

For each setting, `--num` dialogues are made with `hf_slm.data.dialogue.generate_dialogues` (voices en-us and
en-us+f3, rate 175, seed 0) and measured from the audio with `hf_slm.evaluation.turn_taking.turn_taking_statistics`
(Silero VAD per channel, IPUs broken by 200 ms of silence, threshold 0.5). Prints the Markdown table of docs/duplex.md
(events per minute, N, and seconds of the event per minute, s), the machine and date, and the seconds it took.

    python benchmarks/bench_turn_taking.py --num 20

With ``--sessions N``, a second table compares a live system with the reference and the turn-only cascade:
N held-out dialogues of the default setting (seed 1; the duplex LMs trained on seed 0) have channel 0 (the speaker
who opens) replayed as the user, in 0.1 s chunks, through `SpokenChatPipeline.from_pretrained("default")`
(`hf_slm.evaluation.duplex_behaviour.session_dialogues`), once with ``barge_in=False`` (the cascade that only takes
turns: it replies after 0.8 s of user silence and speaks its 3 s reply to its end) and once with the default live
duplex options (falls silent at the user's onset, yields at 1 s of speech); the system's audio replaces channel 1.
The user channel is fixed, so it speaks on (its next turn, or the rest of a turn whose pause was >= 0.8 s) whatever
the system does. The three sets of stereo wavs are written to ``--output`` (reference/, cascade/, duplex/) and
measured the same way (and, per minute, how often channel 1 starts speaking more than 0.2 s into an IPU of
channel 0: `onsets_over`, which a system that only takes turns never does). `hf-slm evaluate turn-taking --audio
OUT/reference OUT/cascade OUT/duplex` gives close figures (the 16-bit wavs move a few VAD decisions: within
0.3 N / min on the run of docs/duplex.md).

    python benchmarks/bench_turn_taking.py --num 20 --sessions 10 --output /tmp/turn_taking_sessions
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import torch

from hf_slm.data.builder import write_wav
from hf_slm.data.dialogue import DialogueTiming, generate_dialogues
from hf_slm.evaluation.turn_taking import EVENTS, channel_ipus, onsets_over, turn_taking_statistics
from hf_slm.utils import atomic_save_directory

SETTINGS = {
    "calm (no overlap)": DialogueTiming(gap_mean=0.6, gap_std=0.2, overlap_probability=0.0,
                                        interruption_probability=0.0, backchannel_probability=0.0),  # fmt: skip
    "default": DialogueTiming(),
    "lively": DialogueTiming(gap_mean=0.3, gap_std=0.15, overlap_probability=0.4, interruption_probability=0.15,
                             backchannel_probability=0.6),  # fmt: skip
}


def header(first: str) -> None:
    names = {"ipu": "IPU", "pause": "pause", "gap": "gap", "overlap_within": "overlap within",
             "overlap_between": "overlap between"}  # fmt: skip
    print(f"| {first} | minutes | " + " | ".join(f"{names[e]} N / s" for e in EVENTS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in EVENTS) + " |")


def row(label: str, stats: dict) -> None:
    cells = [f"{stats[e]['per_minute']:.1f} / {stats[e]['duration_per_minute']:.1f}" for e in EVENTS]
    print(f"| {label} | {stats['minutes']:.1f} | " + " | ".join(cells) + " |")


def sessions(num: int, output: str) -> None:
    """The reference, turn-only cascade and live duplex rows of ``num`` held-out default dialogues."""
    from hf_slm.evaluation.duplex_behaviour import session_dialogues
    from hf_slm.pipelines import SpokenChatPipeline

    pipe = SpokenChatPipeline.from_pretrained("default")
    dialogues = generate_dialogues(num, SETTINGS["default"], seed=1)
    sets = {"reference": [(d.audio, d.sampling_rate) for d in dialogues],
            "cascade": session_dialogues(pipe, dialogues, barge_in=False),
            "duplex": session_dialogues(pipe, dialogues)}  # fmt: skip

    def write(tmp):
        for name, stereo in sets.items():
            for index, (audio, rate) in enumerate(stereo):
                write_wav(f"{tmp}/{name}/dialogue_{index:05d}.wav", audio.T, rate)

    atomic_save_directory(output, write)
    print()
    header(f"default, seed 1, {num} dialogues")
    labels = {"reference": "reference", "cascade": "turn-only cascade (`barge_in=False`)",
              "duplex": "live duplex session (defaults)"}  # fmt: skip
    starts = {}
    for name, stereo in sets.items():
        stats = turn_taking_statistics(stereo)
        row(labels[name], stats)
        over = [onsets_over(*(channel_ipus(audio[c], rate) for c in range(2)), slack=0.2) for audio, rate in stereo]
        starts[name] = sum(map(len, over)) / stats["minutes"]
    print("\nchannel 1 starts over channel 0 (onsets > 0.2 s into its IPU), per minute: "
          + ", ".join(f"{name} {value:.1f}" for name, value in starts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=20, help="dialogues per setting")
    parser.add_argument("--sessions", type=int, default=0, help="held-out dialogues replayed through live sessions")
    parser.add_argument("--output", default="/tmp/turn_taking_sessions", help="folder of the sessions' stereo wavs")
    args = parser.parse_args()
    if args.num < 0 or args.sessions < 0:
        parser.error(f"--num and --sessions must be >= 0, got {args.num} and {args.sessions}")
    torch.set_num_threads(1)
    start = time.perf_counter()
    if args.num:
        header("setting")
    for label, timing in SETTINGS.items() if args.num else ():
        dialogues = generate_dialogues(args.num, timing, seed=0)
        row(label, turn_taking_statistics([(d.audio, d.sampling_rate) for d in dialogues]))
    if args.sessions:
        sessions(args.sessions, args.output)
    print(f"\n{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread, "
          f"{datetime.date.today()}, {time.perf_counter() - start:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
