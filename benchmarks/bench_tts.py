"""Zero-shot TTS speed of the embedded `tts-default` on this CPU, next to espeak-ng saying the same text.

For each of `--texts` sentences of the built-in grammar (what the variant was trained on), in one process: espeak-ng
(`EspeakSynthesizer`, the same text; the plain tool a user would otherwise call) and `VallEPipeline.text_to_speech`
after a 2.7 s espeak-ng prompt in an unseen voice, seeds 0.. . The TTS time is split by re-running its stages on the
same inputs: espeak-ng's phonemizer, the prompt's encoding, the AR model (codebook 1, KV-cached, one group of 2 codes
per step, repetition-aware sampling, held to the same number of frames), the NAR model (3 passes) and the codec's
decoding (Griffin-Lim). Prints medians over texts and repeats (first run of each
setting dropped as warm-up) and the real-time factors (seconds of compute per second of speech) and their ratio.

    python benchmarks/bench_tts.py --threads 1,2 --texts 8 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from hf_slm import VallEPipeline
from hf_slm.data import EspeakSynthesizer, generate_sentences
from hf_slm.models.speech_lm import RepetitionAwareSamplingLogitsProcessor
from hf_slm.pipelines.valle_pipeline import text_to_phoneme_ids

PROMPT_TEXT = "the old man walks to the river and the children laugh"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def run(pipe, prompt, texts, seed0: int) -> dict[str, list[float]]:
    keys = ("espeak", "tts", "phonemize", "encode", "ar", "nar", "decode", "speech_s", "espeak_speech_s")
    rows: dict[str, list[float]] = {k: [] for k in keys}
    for i, text in enumerate(texts):
        spoken, seconds = timed(EspeakSynthesizer(voice="en-us").synthesize, text)
        rows["espeak"].append(seconds)
        rows["espeak_speech_s"].append(spoken.duration)
        out, seconds = timed(pipe.text_to_speech, text, prompt, prompt_text=PROMPT_TEXT, seed=seed0 + i)
        rows["tts"].append(seconds)
        rows["speech_s"].append(len(out.waveform) / out.sampling_rate)
        codes, seconds = timed(pipe.encode, prompt)
        rows["encode"].append(seconds)
        phonemes, seconds = timed(text_to_phoneme_ids, pipe.tokenizer, f"{PROMPT_TEXT} {text}", "en-us")
        rows["phonemize"].append(seconds)
        frames = out.codes.shape[-1]  # as many frames as text_to_speech made: the same work
        ras = RepetitionAwareSamplingLogitsProcessor(top_p=0.8, generator=torch.Generator().manual_seed(seed0 + i))
        _, seconds = timed(pipe.ar_model.generate, phonemes, codes[0], max_new_frames=frames, min_new_frames=frames,
                           logits_processor=[ras])  # fmt: skip
        rows["ar"].append(seconds)
        _, seconds = timed(pipe.nar_model.generate, phonemes, codes, out.codes[0])
        rows["nar"].append(seconds)
        _, seconds = timed(pipe.decode, out.codes)
        rows["decode"].append(seconds)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2", help="torch CPU thread counts, comma-separated")
    parser.add_argument("--texts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    pipe = VallEPipeline.from_pretrained("tts-default")
    speech = EspeakSynthesizer(voice="en-gb+f2", pitch=70).synthesize(PROMPT_TEXT)
    prompt = {"array": speech.waveform, "sampling_rate": speech.sampling_rate}
    texts = generate_sentences(args.texts, seed=123)
    print(f"tts-default, {len(texts)} grammar sentences, prompt {speech.duration:.1f} s, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    for threads in map(int, args.threads.split(",")):
        torch.set_num_threads(threads)
        run(pipe, prompt, texts[:1], 0)  # warm-up
        rows: dict[str, list[float]] = {}
        for repeat in range(args.repeats):
            for key, values in run(pipe, prompt, texts, 1000 * repeat).items():
                rows.setdefault(key, []).extend(values)
        med = {key: statistics.median(values) for key, values in rows.items()}
        rtf_tts = sum(rows["tts"]) / sum(rows["speech_s"])
        rtf_espeak = sum(rows["espeak"]) / sum(rows["espeak_speech_s"])
        stages = " + ".join(f"{key} {med[key]:.3f}" for key in ("phonemize", "encode", "ar", "nar", "decode"))
        print(f"threads {threads}: per sentence (median) text_to_speech {med['tts']:.3f} s for {med['speech_s']:.2f} s "
              f"of speech [{stages}]; espeak-ng {med['espeak']:.3f} s for {med['espeak_speech_s']:.2f} s")  # fmt: skip
        print(f"  real-time factor: tts-default {rtf_tts:.3f}, espeak-ng {rtf_espeak:.3f}, ratio "
              f"{rtf_tts / rtf_espeak:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
