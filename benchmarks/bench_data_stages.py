"""The default recipe's data stages in one process vs in `num_proc` workers: augmentation and tokenisation.

Runs `augment_dataset` and `add_units` of `examples/default_pipeline/train_default.py` on the same multi-voice
open-vocabulary espeak-ng speech (`--sentences` held-out-free train sentences, synthesised once and cached), first
with `num_proc=1` (the recipe before: the map in the main process) and then with `--num-proc` forked workers, each
with one torch thread (`hf_slm.utils.OneThreadInWorkers`). The main process runs one torch thread in both, as
`config_open_vocab_cpu.json` sets (`torch_threads: 1`). The MFCC k-means tokenizer is fitted once on the clean speech
(`utterance_normalization` as the recipe). Datasets' cache is off for the timed maps. Prints utterances per second of
each stage for both and `ratio: X` = workers / one process (augmentation and tokenisation together).

    python benchmarks/bench_data_stages.py --sentences 200 --num-proc 2
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import tempfile
import time
from pathlib import Path

import datasets
import torch

from hf_slm.data import load_text_split, synthesize_corpus

ROOT = Path(__file__).resolve().parents[1]


def load_recipe():
    path = ROOT / "examples" / "default_pipeline" / "train_default.py"
    spec = importlib.util.spec_from_file_location("train_default", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_default"] = module
    spec.loader.exec_module(module)
    return module


def open_vocabulary_units_setup(recipe, sentences: int, num_proc: int):
    """`sentences` open-train sentences spoken as `config_open_vocab_cpu.json` speaks them (many voices, 4 rates x 4
    pitches), and the recipe's MFCC k-means tokenizer (100 units, CMVN) fitted on them: `(speech, fe, tokenizer)`."""
    texts = load_text_split("train", limit=sentences, seed=0)
    speech = synthesize_corpus(texts, rates=(130, 155, 180, 205), pitches=(30, 45, 60, 75), num_proc=num_proc,
                               show_progress=False)  # fmt: skip
    speech = speech.cast_column("audio", datasets.Audio(sampling_rate=16000))
    fit_args = argparse.Namespace(num_units=100, kmeans_max_frames=100_000, utterance_normalization=True, seed=0)
    feature_extractor, tokenizer = recipe.fit_speech_tokenizer(fit_args, speech.select_columns(["audio"]))
    return speech, feature_extractor, tokenizer


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--num-proc", type=int, default=2)
    args = parser.parse_args(argv)
    if args.sentences < 2 * args.num_proc or args.num_proc < 2:
        parser.error(f"--num-proc must be >= 2 and --sentences >= 2 x --num-proc, got {args.num_proc}, {args.sentences}")
    torch.set_num_threads(1)
    recipe = load_recipe()
    train, feature_extractor, tokenizer = open_vocabulary_units_setup(recipe, args.sentences, args.num_proc)
    augmentation = str(ROOT / "examples" / "default_pipeline" / "augmentation.json")
    datasets.disable_caching()
    rates = {}
    with tempfile.TemporaryDirectory() as scratch:
        for num_proc in (1, args.num_proc):
            stage_args = argparse.Namespace(augmentation=augmentation, augment_copies=1, num_proc=num_proc)
            started = time.perf_counter()
            augmented = recipe.augment_dataset(stage_args, train, Path(scratch) / f"augment{num_proc}")
            augment_seconds = time.perf_counter() - started
            started = time.perf_counter()
            recipe.add_units(augmented, feature_extractor, tokenizer, target_column="target", num_proc=num_proc,
                             cache_file_name=str(Path(scratch) / f"units{num_proc}.arrow"))  # fmt: skip
            units_seconds = time.perf_counter() - started
            rates[num_proc] = (len(train) / augment_seconds, len(train) / units_seconds, augment_seconds + units_seconds)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {len(train)} utterances "
          f"({sum(train['duration']) / 60:.1f} min of speech)")  # fmt: skip
    for num_proc, (augment_rate, units_rate, seconds) in rates.items():
        print(f"num_proc={num_proc}: augmentation {augment_rate:.1f} utt/s, tokenisation {units_rate:.1f} utt/s, "
              f"both {seconds:.1f} s")  # fmt: skip
    ratio = rates[1][2] / rates[args.num_proc][2]
    print(f"ratio: {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main()
