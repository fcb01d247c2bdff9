"""Time to the first audio sample, from process start: `hf-slm demo`'s path and the Space's first answer.

Each run is a fresh Python process (imports included, as a user pays them); the parent notes the wall-clock time
before starting it and the child reports when its first waveform exists:
  - demo: load the default pipeline, espeak-ng the demo sentence, resynthesise it (units -> Griffin-Lim): the first
    audio `hf-slm demo` writes; then the 150-unit continuation and its vocoding (the demo's last audio);
  - space: import the Space (`spaces/app.py`, Gradio), `build_demo("default")` (both pipelines, example prompts),
    then the `continue_speech` event on the first example until its first streamed audio (25 units), and to its
    final answer.
Settings compared in the same invocation, runs interleaved: `--threads` torch CPU threads (0 = torch's choice), and
`--generator generate|fast` (`continue_speech` through `generate_units` or `FastUnitGenerator`). Prints the median
of `--repeats` runs per setting; sections are wall seconds since process start.

What the docs/benchmarks.md figures (2026-12-03, 2-core CPU shared with other jobs, load avg 2.8-3.3) led to:
  - One torch thread by default: with torch's 2 threads on a shared CPU each op waits for its slower half; the first
    resynthesis took 3-4 s (Griffin-Lim's STFTs) vs 0.3 s on one thread, the continuation + vocoding 5.5 s vs < 1 s.
  - Continuation through `FastUnitGenerator`: ~0.2 s saved at 75-150 units of the 3.3M LM, within the noise.
  - Griffin-Lim iterations stay at 32 (bench_griffin_lim.py: knee 24, 0.8 % better mel distance at 32 for ~0.04 s).
  - The rest is imports (`python -X importtime`): `import torch` 2.4 s, the transformers modelling stack 4.5 s
    (`transformers.modeling_utils` -> `torch.distributed.tensor` 1.0 s, `torch._dynamo` 0.85 s, `scipy.optimize`
    0.43 s, ...), Gradio 4.8 s; loading the four components 0.6 s (0.4 s transformers compiling checkpoint-conversion
    regexes); hf_slm's own modules < 0.2 s, nothing loaded twice.

    python benchmarks/bench_first_audio.py --target demo --settings 0:generate,1:fast --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, time
start = float(os.environ["BENCH_START"])
marks = {"python started": time.time() - start}
def mark(name): marks[name] = time.time() - start
import torch
threads, generator, target = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if threads: torch.set_num_threads(threads)
if generator == "generate":
    import hf_slm.pipelines.speech_lm_pipeline as spl
    spl._fast_generator = lambda lm: None
mark("torch imported")
if target == "demo":
    from hf_slm.data import EspeakSynthesizer
    from hf_slm.pipelines import SpeechLMPipeline
    pipe = SpeechLMPipeline.from_pretrained("default"); mark("pipeline loaded")
    speech = EspeakSynthesizer(voice="en-us").synthesize("the small dog runs to the red house and the children laugh")
    audio = {"array": speech.waveform, "sampling_rate": speech.sampling_rate}
    pipe.resynthesize(audio); mark("first audio (resynthesis)")
    half = {"array": speech.waveform[: len(speech.waveform) // 2], "sampling_rate": speech.sampling_rate}
    pipe.continue_speech(half, max_new_tokens=150, min_new_tokens=75, temperature=0.8, seed=0)
    mark("last audio (continuation)")
else:
    sys.path.insert(0, os.path.join(os.environ["BENCH_ROOT"], "spaces"))
    import app; mark("Space imported")
    demo = app.build_demo("default"); mark("Space built")
    fn = next(f.fn for f in demo.fns.values() if f.api_name == "continue_speech")
    example = app.make_examples(app.Path(app.tempfile.mkdtemp()), app.EXAMPLE_TEXTS[:1])[0][0]
    for audio, units in fn(example, 0.8, 100, 0, 0):
        if isinstance(audio, tuple) and "first audio (25 units streamed)" not in marks:
            mark("first audio (25 units streamed)")
    mark("final answer")
print("MARKS " + json.dumps(marks))
"""


def run(threads: int, generator: str, target: str) -> dict:
    env = {**os.environ, "BENCH_START": repr(time.time()), "BENCH_ROOT": str(ROOT), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), generator, target], env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    line = next(line for line in out.stdout.splitlines() if line.startswith("MARKS "))
    return json.loads(line[6:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="demo", choices=["demo", "space"])
    parser.add_argument("--settings", default="0:generate,1:fast", help="threads:generator, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = [(int(s.split(":")[0]), s.split(":")[1]) for s in args.settings.split(",")]
    results = {s: [] for s in settings}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for _ in range(args.repeats):
        for setting in settings:
            results[setting].append(run(*setting, args.target))
    print(f"target {args.target}, {args.repeats} runs per setting (interleaved), load average before: {load}, "
          f"after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    for (threads, generator), runs in results.items():
        print(f"threads {threads or 'torch default'}, continuation via {generator}:")
        for name in runs[0]:
            print(f"  {name:34s} {statistics.median(r[name] for r in runs):6.2f} s")


if __name__ == "__main__":
    main()
