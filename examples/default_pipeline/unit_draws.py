#!/usr/bin/env python
"""Speaker dependence of a default-recipe run's units over k-means draws (issue 17's measure, at the recipe's scale).

Refits the run's speech tokenizer (`fit_speech_tokenizer`, the recipe's own function and settings) with other seeds
on the run's own cached training audio (corpus + augmented copy), and scores each with the ABX that
`hf-slm evaluate abx` runs at its defaults (8 one-phoneme-apart words x en-us, en-us+m3, en-us+f2 x rates 150 / 200:
48 items). The seed moves both the shuffled `kmeans_max_frames` sample and the k-means initialisation; seed 0 with
the run's config refits the run's own tokenizer. Prints within / between-speaker unit ABX per draw and the mean, and
writes them to `--output` (JSON).

    python examples/default_pipeline/unit_draws.py examples/default_pipeline/config_open_vocab_cpu.json \
        --seeds 0,1,2 --output runs/unit_draws.json
    python examples/default_pipeline/unit_draws.py examples/default_pipeline/config_cpu.json --synthesise \
        --seeds 0,1,2,3,4,5,6,7 --output runs/draws_vtln.json --utterance_normalization true --vtln true

Needs a finished run of that config (its `work_dir` holds the corpus and augment stages), or `--synthesise`, which
runs the recipe's corpus stage alone (resumable; not the augment stage). Recipe flags after the config override it
for the refits (`--vtln true [--vtln_tokenization unwarped]`: the units of `train_default.py` with those flags).
Nothing is trained beyond the k-means fits (about 1.5 minutes each on one core for 300k frames; with VTLN, three
fits and two warp searches).
`--voices` / `--rates` widen the ABX set (the default set is small: one draw moves a cell by several points).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default import (  # noqa: E402
    DefaultPipelineArguments,
    Stages,
    corpus_stage,
    fit_speech_tokenizer,
    parse_arguments,
    stage_key,
    synthesise,
)

from hf_slm.evaluation.abx import build_abx_items, evaluate_abx  # noqa: E402
from hf_slm.utils import atomic_open  # noqa: E402


def training_audio(args: DefaultPipelineArguments, synthesise_missing: bool = False):
    """The audio the run's tokenizer was fitted on: the cached corpus's train side (+ its augmented copy)."""
    work = Path(args.work_dir)
    corpus_key = stage_key(args, "corpus")
    corpus = work / f"corpus-{corpus_key}"
    if synthesise_missing:
        train, _ = corpus_stage(args, Stages(work))
    elif not (corpus / "done.json").is_file():
        raise SystemExit(
            f"no finished corpus stage at {corpus}: run the recipe with this config first, or --synthesise"
        )
    else:
        train, _ = synthesise(args, corpus)
    audio = train.select_columns(["audio"])
    if args.augmentation:
        augmented = work / f"augment-{stage_key(args, 'augment', corpus_key)}" / "data"
        if not augmented.is_dir():
            raise SystemExit(f"no finished augment stage at {augmented}: run the recipe with this config first")
        audio = datasets.concatenate_datasets([audio, datasets.load_from_disk(str(augmented)).select_columns(["audio"])])
    return audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the recipe's JSON config of the finished run")
    parser.add_argument("--synthesise", action="store_true", help="run the corpus stage first where it is missing")
    parser.add_argument("--speaker-adaptation", action="store_true",
                        help="VTLN units: one warp per ABX voice over its items (`evaluate_abx(speaker_adaptation=)`)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated k-means seeds")
    parser.add_argument("--output", required=True, help="results JSON")
    parser.add_argument("--voices", default=None, help="comma-separated espeak-ng voices of the ABX items (default: its 3)")
    parser.add_argument("--rates", default=None, help="comma-separated speaking rates of the ABX items (default: 150,200)")
    options, recipe_flags = parser.parse_known_args()
    seeds = [int(s) for s in options.seeds.split(",")]
    args = parse_arguments(DefaultPipelineArguments, [options.config, *recipe_flags])
    if args.augmentation and options.synthesise:
        raise SystemExit("--synthesise runs the corpus stage only; a config with augmentation needs its finished run")
    audio = training_audio(args, synthesise_missing=options.synthesise)
    abx_options = {}
    if options.voices:
        abx_options["voices"] = options.voices.split(",")
    if options.rates:
        abx_options["rates"] = [int(r) for r in options.rates.split(",")]
    items = build_abx_items(**abx_options)
    print(f"{len(audio)} training utterances; ABX: {len(items)} items", flush=True)
    draws = []
    for seed in seeds:
        fe, tokenizer = fit_speech_tokenizer(dataclasses.replace(args, seed=seed), audio)
        result = evaluate_abx(SimpleNamespace(feature_extractor=fe, speech_tokenizer=tokenizer), items, "units",
                              speaker_adaptation=options.speaker_adaptation)
        draw = {"seed": seed, "within": 100 * result["within_speaker_error"],
                "between": 100 * result["between_speaker_error"]}  # fmt: skip
        draws.append(draw)
        print(f"seed {seed}: units ABX within {draw['within']:.2f} %, between {draw['between']:.2f} %", flush=True)
    mean = {key: statistics.mean(d[key] for d in draws) for key in ("within", "between")}
    print(f"mean of {len(draws)} draws: within {mean['within']:.2f} %, between {mean['between']:.2f} %")
    summary = {"config": options.config, "num_units": args.num_units, "kmeans_max_frames": args.kmeans_max_frames,
               "utterance_normalization": args.utterance_normalization, "vtln": args.vtln,
               "vtln_tokenization": args.vtln_tokenization if args.vtln else None,
               "speaker_adaptation": options.speaker_adaptation,
               "recipe_flags": recipe_flags, "training_utterances": len(audio),
               "abx_items": len(items), "abx_options": abx_options, "draws": draws, "mean": mean}  # fmt: skip
    with atomic_open(options.output, "w") as f:
        f.write(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
