#!/usr/bin/env python
"""Pair accuracy of a LM trained on each kind of unit: the same LM size, steps and speech, only the units differ.

    python examples/ssl_encoder/compare_units_lm.py --run runs/ssl_encoder_cpu --output runs/unit_lm_compare
    python examples/ssl_encoder/compare_units_lm.py --run RUN --output OUT --tokenizer "normalised=PATH" --max_steps 200

Reads a finished `hf-slm pretrain-encoder` run (`--run`) and compares the unit tokenizers it holds:
  mfcc         - RUN/iteration_1/targets (MFCC + deltas k-means, HuBERT's "iteration 0");
  iteration 1  - RUN/iteration_2/targets (k-means on the middle layer of iteration 1's encoder);
  iteration 2  - RUN/iteration_2_units (k-means on iteration 2's encoder, written by benchmarks/bench_ssl_encoder.py),
plus any `--tokenizer NAME=FOLDER` (a `fit-tokenizer` folder). For each one, examples/pretraining/pretrain_speech_lm.py
trains a Llama of `--lm-config` (default unit_lm_cpu.json: 0.45M parameters, 600 steps of 8 x 256 tokens, the SSL
run's speech: 1000 builtin sentences x 8 voices, seed 0) into OUT/<name>/ (resumable: a finished one is reused), and
`hf_slm.evaluation.pairs.score_pairs` (what `hf-slm evaluate pairs` runs) scores one fixed set of minimal pairs
(OUT/pairs.jsonl: `build_lexical_pairs` over the grammar's words and `build_syntactic_pairs`, seed 0), spoken by the
held-out voice `--voice` (default en-us, none of the training voices). Accuracy is by summed NLL (sWUGGY / sBLIMP);
per-token-normalised accuracy is reported too. OUT/results.json holds everything; a Markdown table is printed.

Any flag this script does not know goes to pretrain_speech_lm.py (e.g. `--max_steps 200 --hidden_size 96`).

How the docs/ssl_encoder.md figures were obtained (2026-12-03, 2-core CPU, one thread, ~3-4 min per unit set):
RUN = the `config_cpu.json` run, with iteration_2_units from benchmarks/bench_ssl_encoder.py; then

    python examples/ssl_encoder/compare_units_lm.py --run RUN --output OUT
    python examples/ssl_encoder/compare_units_lm.py --run RUN --output OUT --only "mfcc + CMVN,..." \
        --tokenizer "mfcc + CMVN=RUN/mfcc_cmvn" --tokenizer "iteration 1 L4 + CMVN=RUN/iteration_1_cmvn_L4" \
        --tokenizer "iteration 2 + SP=RUN_SP/iteration_2_units"

(the '+ CMVN' and '+ SP' folders as written by bench_ssl_encoder.py; see its docstring).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch

from hf_slm.utils import atomic_open

HERE = Path(__file__).resolve().parent
PRETRAIN = HERE.parent / "pretraining" / "pretrain_speech_lm.py"
RUN_TOKENIZERS = (("mfcc", "iteration_1/targets"), ("iteration 1", "iteration_2/targets"),
                  ("iteration 2", "iteration_2_units"))  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a finished `hf-slm pretrain-encoder` output_dir")
    parser.add_argument("--output", required=True, help="folder for the LMs, the pairs and results.json")
    parser.add_argument("--lm-config", default=str(HERE / "unit_lm_cpu.json"))
    parser.add_argument("--tokenizer", action="append", default=[], metavar="NAME=FOLDER",
                        help="another unit tokenizer to compare (repeatable)")  # fmt: skip
    parser.add_argument("--only", default=None, help="comma-separated names to run (default: all found)")
    parser.add_argument("--voice", default="en-us")
    parser.add_argument("--num-lexical", type=int, default=200)
    parser.add_argument("--num-per-phenomenon", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args, lm_flags = parser.parse_known_args(argv)
    torch.set_num_threads(args.threads)

    from hf_slm.evaluation.pairs import build_lexical_pairs, build_syntactic_pairs, read_pairs, score_pairs, write_pairs
    from hf_slm.models.speech_lm import SpeechLMForCausalLM
    from hf_slm.pipelines import SpeechLMPipeline
    from hf_slm.pipelines.loading import load_speech_tokenizer

    run, out = Path(args.run), Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    tokenizers = {name: run / folder for name, folder in RUN_TOKENIZERS if (run / folder / "config.json").is_file()}
    for spec in args.tokenizer:
        name, sep, folder = spec.partition("=")
        if not sep or not (Path(folder) / "config.json").is_file():
            raise ValueError(f"--tokenizer {spec!r}: expected NAME=FOLDER with a unit tokenizer's config.json")
        tokenizers[name] = Path(folder)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",")]
        missing = [n for n in wanted if n not in tokenizers]
        if missing:
            raise ValueError(f"--only {missing}: not found (have {sorted(tokenizers)})")
        tokenizers = {n: tokenizers[n] for n in wanted}
    if not tokenizers:
        raise ValueError(f"{run} holds no unit tokenizer (looked for {[f for _, f in RUN_TOKENIZERS]})")

    pairs_file = out / "pairs.jsonl"
    if not pairs_file.is_file():
        pairs = build_lexical_pairs(n=args.num_lexical, seed=0) + build_syntactic_pairs(args.num_per_phenomenon, seed=0)
        write_pairs(pairs, pairs_file)
    pairs = read_pairs(pairs_file)

    spec = importlib.util.spec_from_file_location("pretrain_speech_lm", PRETRAIN)
    pretrain = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = pretrain  # dataclasses look their module up there
    spec.loader.exec_module(pretrain)

    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for name, folder in tokenizers.items():
        lm_dir = out / name.replace(" ", "_")
        source = _with_feature_extractor(folder, out / "tokenizers" / name.replace(" ", "_"))
        trained = pretrain.main([args.lm_config, "--output_dir", str(lm_dir), "--speech_tokenizer_path", str(source),
                                 *lm_flags])  # fmt: skip
        feature_extractor, speech_tokenizer = load_speech_tokenizer(str(lm_dir / "speech_tokenizer"))
        lm = SpeechLMForCausalLM.from_pretrained(lm_dir).eval()
        pipe = SpeechLMPipeline(feature_extractor, speech_tokenizer.eval(), language_model=lm)
        scored = score_pairs(pipe, pairs, voice=args.voice)
        by_type = {}
        for item in scored["items"]:
            by_type.setdefault(item.get("type", "all"), []).append(item["correct"])
        results[name] = {
            "tokenizer": str(folder),
            "eval_loss": trained["eval_loss"],
            "global_step": trained["global_step"],
            "parameters": sum(p.numel() for p in lm.parameters()),
            "accuracy": scored["accuracy"],
            "accuracy_normalized": scored["accuracy_normalized"],
            "by_type": {t: sum(v) / len(v) for t, v in by_type.items()},
            "n_by_type": {t: len(v) for t, v in by_type.items()},
            "per_phenomenon": scored["per_phenomenon"],
        }
        with atomic_open(results_file, "w") as handle:  # a kill mid-write keeps the previous results
            handle.write(json.dumps(results, indent=2))
    print("| units | LM eval loss (nats/unit) | lexical | syntactic | all | all (per-token NLL) |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        t = r["by_type"]
        print(f"| {name} | {r['eval_loss']:.3f} | {t.get('lexical', float('nan')):.3f} | "
              f"{t.get('syntactic', float('nan')):.3f} | {r['accuracy']:.3f} | {r['accuracy_normalized']:.3f} |")  # fmt: skip
    return results


def _with_feature_extractor(folder: Path, target: Path) -> Path:
    """`folder` itself when it holds its feature extractor's preprocessor_config.json, else a copy (`target`) that
    does (a tokenizer saved without one, e.g. by an older benchmark run)."""
    if (folder / "preprocessor_config.json").is_file():
        return folder
    if not (target / "preprocessor_config.json").is_file():
        from hf_slm import SpeechFeatureExtractor, UnitEncoderModel
        from hf_slm.utils import atomic_save_directory

        tokenizer = UnitEncoderModel.from_pretrained(folder)

        def write(tmp):
            tokenizer.save_pretrained(tmp)
            SpeechFeatureExtractor(sampling_rate=tokenizer.config.sampling_rate).save_pretrained(tmp)

        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_directory(target, write)
    return target


if __name__ == "__main__":
    main()
