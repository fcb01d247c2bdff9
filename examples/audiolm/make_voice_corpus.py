"""Multi-voice espeak-ng speech for the small acoustic runs, with voices and pitches that training never hears.

    python examples/audiolm/make_voice_corpus.py OUTPUT_DIR [--num_utterances 1000] [--num_unseen 32]

Writes two `datasets` folders (columns of `hf_slm.data.synthesize_dataset`: audio, text, voice, rate, pitch, ...):

- `OUTPUT_DIR/train_corpus`: a DatasetDict `train` / `validation`, `num_utterances` utterances of
  `sentences_per_utterance` built-in-grammar sentences (two: ~3.5 s, room for a 3 s prompt), each spoken once by a random (voice, rate, pitch) from the English voices (`hf_slm.data.english_voices`, 8 accents x
  the espeak-ng variants) *without* the held-out variants, at pitches 35 / 50 / 65 and rates 150 / 175 / 200.
- `OUTPUT_DIR/unseen_voices`: `num_unseen` utterances whose sentences are not in the training text, spoken by the held-out
  variants (every accent) at pitches 42 / 80: voice and pitch combinations that training never saw.

The held-out variants are every eighth of `list_variants()` (sorted), so the split is fixed by espeak-ng's list;
`OUTPUT_DIR/voice_split.json` records both sides. Synthesis is cached (`synthesize_corpus`), so a rerun is quick.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import datasets

from hf_slm.data import english_voices, list_variants, load_text_corpus, synthesize_corpus
from hf_slm.utils import atomic_open, atomic_save_directory

TRAIN_PITCHES, UNSEEN_PITCHES = (35, 50, 65), (42, 80)
RATES = (150, 175, 200)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir")
    parser.add_argument("--num_utterances", type=int, default=1000)
    parser.add_argument("--sentences_per_utterance", type=int, default=2)
    parser.add_argument("--num_validation", type=int, default=40)
    parser.add_argument("--num_unseen", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_validation >= args.num_utterances:
        raise ValueError(f"--num_validation {args.num_validation} must be below --num_utterances {args.num_utterances}")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"

    variants = sorted(list_variants())
    held_out = variants[::8]
    train_voices = english_voices(exclude_variants=held_out)
    unseen_voices = sorted(set(english_voices(variants=held_out)) - set(english_voices(variants=())))

    k = args.sentences_per_utterance
    pool = load_text_corpus("builtin", limit=k * (args.num_utterances + args.num_unseen), seed=args.seed)
    train_sentences, unseen_sentences = pool[: k * args.num_utterances], pool[k * args.num_utterances :]
    train_texts = [" ".join(train_sentences[i : i + k]) for i in range(0, len(train_sentences), k)]
    unseen_texts = [" ".join(unseen_sentences[i : i + k]) for i in range(0, len(unseen_sentences), k)]

    if not (out / "train_corpus").is_dir():
        speech = synthesize_corpus(train_texts, voices=train_voices, rates=RATES, pitches=TRAIN_PITCHES,
                                   seed=args.seed, cache_dir=cache, show_progress=False)  # fmt: skip
        split = speech.train_test_split(test_size=args.num_validation, seed=args.seed)
        corpus = datasets.DatasetDict({"train": split["train"], "validation": split["test"]})
        atomic_save_directory(out / "train_corpus", lambda tmp: corpus.save_to_disk(str(tmp)))
    if not (out / "unseen_voices").is_dir():
        unseen = synthesize_corpus(unseen_texts, voices=unseen_voices, rates=RATES, pitches=UNSEEN_PITCHES,
                                   seed=args.seed + 1, cache_dir=cache, show_progress=False)  # fmt: skip
        atomic_save_directory(out / "unseen_voices", lambda tmp: unseen.save_to_disk(str(tmp)))

    train = datasets.load_from_disk(str(out / "train_corpus"))
    unseen = datasets.load_from_disk(str(out / "unseen_voices"))
    summary = {
        "held_out_variants": held_out, "train_pitches": TRAIN_PITCHES, "unseen_pitches": UNSEEN_PITCHES,
        "train_voices": len(train_voices), "unseen_voices": len(unseen_voices),
        "train_utterances": len(train["train"]), "validation_utterances": len(train["validation"]),
        "train_hours": round(sum(train["train"]["duration"]) / 3600, 3),
        "mean_seconds": round(sum(train["train"]["duration"]) / len(train["train"]), 2),
        "unseen_utterances": len(unseen), "unseen_voices_used": sorted(set(unseen["voice"])),
    }  # fmt: skip
    overlap = set(unseen["voice"]) & set(train["train"]["voice"])
    if overlap:
        raise RuntimeError(f"held-out voices {sorted(overlap)} are in the training split")
    with atomic_open(out / "voice_split.json", "w") as handle:
        handle.write(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, list)}))


if __name__ == "__main__":
    main()
