#!/usr/bin/env python
"""Speaker dependence of MFCC + CMVN units with and without vocal tract length normalisation, over k-means draws.

Synthesises `--utterances` open-vocabulary training sentences (`open-train`) with espeak-ng, each in a random
English voice (`english_voices()`: 8 accents x 101 variants), rate (130 / 175 / 220 wpm) and pitch (30 / 50 / 70),
and fits, for every seed, two 100-unit tokenizers on the same `--max-frames` frames (`fit_unit_tokenizer_on_dataset`,
as `hf-slm fit-tokenizer`): MFCC + per-utterance CMVN (the open-vocabulary default recipe's units), and the same with
`vtln_warps=DEFAULT_VTLN_WARPS` (`--vtln`: unwarped fit, then 2 rounds of per-utterance warp search and refit),
scored twice: tokenising each item at its searched warp, and unwarped (`vtln_tokenization="unwarped"`).
The seed moves the frame sample and the k-means initialisation.

Each tokenizer is scored with `evaluate_abx` (what `hf-slm evaluate abx` runs) on three item sets, units, hamming
DTW: `default` (the command's defaults: 8 words x en-us, en-us+m3, en-us+f2 x 150 / 200 wpm: 48 items), `wide`
(the same words x 6 voices x 130 / 170 / 210 wpm: 144 items) and `dev` (8 other words x en-gb, en-us+m2, en-us+f4,
en-us+m6, en-us+f5 x 140 / 190 wpm: 80 items; the set the prior weight was chosen on), each with items tokenised
alone (as a pipeline does) and, for VTLN, with one warp per voice (`--speaker-adaptation`); and with
`evaluate_unit_purity` (`hf-slm evaluate purity` defaults: 20 builtin sentences x 3 voices x 2 rates). Prints the
per-draw rows and the means, and writes them to `--output` (JSON).

    python examples/ssl_encoder/vtln_draws.py --utterances 4000 --seeds 0,1,2,3,4,5,6,7 --output runs/vtln_draws.json
    python examples/ssl_encoder/vtln_draws.py --utterances 4000 --seeds 0,1,2,3,4,5,6,7 --num-units 50 --output ...

How the docs/ssl_encoder.md figures were obtained (2026-12-05, 2-core AMD EPYC VM, 2 torch threads, nothing else
running): the two commands above, about 70 s a seed (synthesis once, cached by `synthesize_dataset`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from types import SimpleNamespace

from hf_slm.data import english_voices, load_text_corpus, synthesize_dataset
from hf_slm.evaluation.abx import build_abx_items, evaluate_abx
from hf_slm.evaluation.unit_purity import build_phone_items, evaluate_unit_purity
from hf_slm.models.unit_encoder import DEFAULT_VTLN_WARPS, SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel
from hf_slm.training.kmeans import fit_unit_tokenizer_on_dataset
from hf_slm.utils import atomic_open

WIDE_VOICES = ("en-us", "en-us+m1", "en-us+m3", "en-us+f1", "en-us+f2", "en-us+f3")
DEV_WORDS = ("pit", "kit", "fit", "sit", "lit", "pet", "pot", "put")
DEV_VOICES = ("en-gb", "en-us+m2", "en-us+f4", "en-us+m6", "en-us+f5")


def item_sets() -> dict:
    return {
        "default": build_abx_items(),
        "wide": build_abx_items(voices=WIDE_VOICES, rates=(130, 170, 210)),
        "dev": build_abx_items(words=DEV_WORDS, voices=DEV_VOICES, rates=(140, 190)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=4000)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated k-means seeds")
    parser.add_argument("--max-frames", type=int, default=300_000)
    parser.add_argument("--num-units", type=int, default=100)
    parser.add_argument("--prior-weight", type=float, default=UnitEncoderConfig().vtln_prior_weight)
    parser.add_argument("--num-proc", type=int, default=2, help="espeak-ng processes")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()

    start = time.time()
    texts = load_text_corpus("open-train", limit=args.utterances, seed=0)
    train = synthesize_dataset(texts, voices=english_voices(), rates=(130, 175, 220), pitches=(30, 50, 70),
                               assignment="random", num_proc=args.num_proc)  # fmt: skip
    feature_extractor = SpeechFeatureExtractor(sampling_rate=16000)
    sets = item_sets()
    phone_items = build_phone_items(load_text_corpus("builtin", limit=20, seed=1))
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name, warps in (("cmvn", None), ("cmvn+vtln", list(DEFAULT_VTLN_WARPS))):
            config = UnitEncoderConfig(num_units=args.num_units, utterance_normalization=True, vtln_warps=warps,
                                       vtln_prior_weight=args.prior_weight)  # fmt: skip
            tokenizer = UnitEncoderModel(config).eval()
            fit_unit_tokenizer_on_dataset(tokenizer, train, feature_extractor, max_frames=args.max_frames, seed=seed,
                                          show_progress=False)  # fmt: skip
            # the VTLN codebook read both ways: each item at its searched warp, and unwarped (one fit)
            for tokenization in ("search", "unwarped") if warps else ("search",):
                tokenizer.config.vtln_tokenization = tokenization
                pipe = SimpleNamespace(feature_extractor=feature_extractor, speech_tokenizer=tokenizer)
                row = {"units": name + (" unwarped" if tokenization == "unwarped" else ""), "seed": seed}
                for set_name, items in sets.items():
                    for adapt in (False, True) if warps and tokenization == "search" else (False,):
                        result = evaluate_abx(pipe, items, "units", speaker_adaptation=adapt)
                        key = f"{set_name}{' speaker-adapted' if adapt else ''}"
                        row[key] = [round(100 * result["within_speaker_error"], 2),
                                    round(100 * result["between_speaker_error"], 2)]  # fmt: skip
                purity = evaluate_unit_purity(feature_extractor, tokenizer, phone_items)
                row.update({k: round(purity[k], 3) for k in ("phone_purity", "cluster_purity", "pnmi")})
                rows.append(row)
                print(json.dumps(row), f"({time.time() - start:.0f} s)", flush=True)

    means = {}
    for name in ("cmvn", "cmvn+vtln", "cmvn+vtln unwarped"):
        mine = [r for r in rows if r["units"] == name]
        means[name] = {key: ([round(statistics.mean(r[key][i] for r in mine), 2) for i in (0, 1)]
                             if isinstance(mine[0][key], list) else round(statistics.mean(r[key] for r in mine), 3))
                       for key in mine[0] if key not in ("units", "seed")}  # fmt: skip
    print("\nmeans over draws (ABX units within / between speaker, %):")
    for name, values in means.items():
        print(f"  {name}: {json.dumps(values)}")
    summary = {"utterances": len(train), "max_frames": args.max_frames, "num_units": args.num_units,
               "prior_weight": args.prior_weight, "rows": rows, "means": means}  # fmt: skip
    with atomic_open(args.output, "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
