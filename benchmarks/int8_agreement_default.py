"""How closely int8 decoding (`FastUnitGenerator(weights_dtype="int8")`) follows the fp32 model on a *trained* LM.

bench_generation.py measures agreement on random weights (small logit margins); this runs the embedded default's LM
on held-out espeak-ng sentences (grammar sentences 9200-9229, voices the default was not tuned on first):
teacher-forced top-1 agreement on the real units after a 20-unit prompt, and greedy 50-unit continuations of fp32
`generate_units`, the fp32 fast path and the int8 fast path. Prints `agreement: X` last.

    python benchmarks/int8_agreement_default.py [--pipeline default] [--num-sentences 30]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generation import teacher_forced_agreement  # noqa: E402

from hf_slm import SpeechLMPipeline  # noqa: E402
from hf_slm.data import EspeakSynthesizer, load_text_corpus  # noqa: E402
from hf_slm.models.speech_lm.generation_speech_lm import FastUnitGenerator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", default="default")
    parser.add_argument("--num-sentences", type=int, default=30)
    parser.add_argument("--prompt-units", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipe = SpeechLMPipeline.from_pretrained(args.pipeline)
    model = pipe.language_model.eval()
    texts = load_text_corpus("builtin", limit=9200 + args.num_sentences, seed=0)[9200:]
    voices = ["en-us+m7", "en-gb", "en-us"]
    paths = {"fp32 fast path": FastUnitGenerator(model), "int8 fast path": FastUnitGenerator(model, weights_dtype="int8")}
    forced, positions = 0.0, 0
    prefix = {name: [0, 0, 0] for name in paths}  # identical prefix, compared positions, fully identical runs
    for i, text in enumerate(texts):
        speech = EspeakSynthesizer(voices[i % len(voices)]).synthesize(text)
        units = pipe.encode({"array": speech.waveform, "sampling_rate": speech.sampling_rate})[0]
        prompt, rest = units[: args.prompt_units], units[args.prompt_units :]
        if len(rest):
            forced += teacher_forced_agreement(model, paths["int8 fast path"], prompt, rest) * len(rest)
            positions += len(rest)
        reference = model.generate_units([prompt], max_new_tokens=args.new_tokens, do_sample=False)
        reference = (reference[0] if isinstance(reference, (list, tuple)) else reference).reshape(-1)
        for name, fast in paths.items():
            got = fast.generate(prompt, max_new_tokens=args.new_tokens, do_sample=False).reshape(-1)
            m = min(len(reference), len(got))
            differ = (reference[:m] != got[:m]).nonzero()
            same = int(differ[0]) if len(differ) else m
            prefix[name][0] += same
            prefix[name][1] += m
            prefix[name][2] += int(same == m and len(reference) == len(got))
    for name, (same, compared, full) in prefix.items():
        print(f"{name}: greedy continuations identical to fp32 generate_units: {full} of {len(texts)} fully, "
              f"{same} of {compared} positions before the first difference")  # fmt: skip
    print(f"int8 teacher-forced top-1 agreement on {positions} real-unit positions of {len(texts)} utterances")
    print(f"agreement: {forced / max(positions, 1):.4f}")


if __name__ == "__main__":
    main()
