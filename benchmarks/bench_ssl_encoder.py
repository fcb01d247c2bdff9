"""ABX of HuBERT-style iterations: MFCC k-means vs k-means on the encoder of iteration 1 and of iteration 2.

Reads a finished `hf-slm pretrain-encoder` run (`--run`, default the output_dir of
examples/ssl_encoder/config_cpu.json) and compares four unit tokenizers of the same size:
  mfcc         - iteration 1's targets (MFCC + deltas k-means, HuBERT's "iteration 0");
  iteration 1  - iteration 2's targets (k-means on the middle layer of iteration 1's encoder);
  random       - the same k-means on the same layer of a randomly initialised encoder of the same config (what the
                 iterations must beat; saved under RUN/random_encoder and RUN/random_units);
  iteration 2  - k-means fitted here on the same layer of iteration 2's encoder, on the same training speech
                 (`fit_targets`, the schedule's own fitting; saved under RUN/iteration_2_units).
Each is scored with `hf_slm.evaluation.abx.evaluate_abx` (what `hf-slm evaluate abx` runs) on its standardised
features (angular distance) and its units (one-hot, hamming), within and between speakers, on the default ABX items:
8 one-phoneme-apart words x the espeak-ng voices en-us, en-us+m3, en-us+f2 (none of them in the training voices of
config_cpu.json) x rates 150 and 200; and with `hf_slm.evaluation.unit_purity.evaluate_unit_purity` (phone purity,
cluster purity, PNMI against espeak-ng's phone alignment) on 20 wordnet sentences (not the builtin training texts) in
the same three voices x 2 rates.

Each encoder's every layer is also scored on continuous features (standardised over the ABX items).

How the docs/ssl_encoder.md figures were obtained (2026-12-03, 2-core Xeon shared with other jobs, load 8-16):
`hf-slm pretrain-encoder examples/ssl_encoder/config_cpu.json --output_dir RUN` as it stands (1000 builtin sentences,
8 voices x 3 rates x 3 pitches at random, a 0.45M-parameter encoder: 96 wide, 4 layers; 700 steps of batch 8 x 2 s
crops per iteration, lr 1e-3, loss on masked + 0.5 x unmasked frames; 100 units; layer 2 for the next targets),
OMP_NUM_THREADS=1, then this script twice (the first while iteration 2 trained):

    python benchmarks/bench_ssl_encoder.py --run RUN --config examples/ssl_encoder/config_cpu.json --only "mfcc,iteration 1,random"
    python benchmarks/bench_ssl_encoder.py --run RUN --config examples/ssl_encoder/config_cpu.json --only "iteration 2"

Speaker-invariance figures (2026-12-03, fourth session, 2-core CPU, one thread, load ~2-4): the same RUN with
`--only "mfcc,iteration 1,iteration 2" --utterance-normalization --layer 4` (the '+ CMVN' rows); a second run RUN_SP
made by copying RUN's iteration_1/ and iteration_2/targets/ and running
`hf-slm pretrain-encoder examples/ssl_encoder/config_cpu.json --output_dir RUN_SP --speaker_augmentation
examples/ssl_encoder/speaker_perturbation.json` (iteration 2 retrained on the same targets, input perturbed; then
`--iterations 3` for iteration 3; `--max_steps 1400 --warmup_steps 112` in a third copy for the longer run), scored
with `--only "iteration 2" --utterance-normalization --layer 4` and `--encoder "iteration 3 + SP=3"`.
VTLN-target figures (2026-12-05, eleventh session, 2-core AMD EPYC, 2 threads, idle): RUN_VTLN from
`hf-slm pretrain-encoder examples/ssl_encoder/config_cpu.json --output_dir RUN_VTLN --vtln true
--utterance_normalization true`, scored with `--only "mfcc,iteration 1,iteration 2" --utterance-normalization
--layer 4 --threads 2`; its 8-draw table refits `UnitEncoderConfig(num_units=100, utterance_normalization=True,
vtln_warps=DEFAULT_VTLN_WARPS or None)` with `fit_unit_tokenizer_on_dataset(train.shuffle(seed=s), ..., max_frames=
150000, max_steps=200, kmeans_batch_size=5000, seed=s, shuffle=False)` on the recipe's training split for s = 0..7
and scores the default and the 144-item ABX sets with `evaluate_abx` (seed 0 reproduces this script's rows).
The layer sweep and the k-means-draw table of docs/ssl_encoder.md are the same computation done by hand on cached
features: `hidden_states[layer]` of the encoder (or the MFCC front end) for every training utterance (300 shuffled
ones for the sweep, all 960 for the draws), CMVN per utterance where named, `fit_unit_tokenizer(..., batch_size=5000,
max_steps=200, seed=s)` with 100 units, then `abx` (hamming on one-hot units) and `unit_phone_statistics` on the same
items as here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/ssl_encoder_cpu")
    parser.add_argument("--config", default="examples/ssl_encoder/config_cpu.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="mfcc,iteration 1,random,iteration 2",
                        help="comma-separated tokenizers to score (iteration 2 needs the finished schedule)")
    parser.add_argument("--tokenizer", action="append", default=[], metavar="NAME=FOLDER",
                        help="also score this fitted unit tokenizer (repeatable)")
    parser.add_argument("--encoder", action="append", default=[], metavar="NAME=ITERATION",
                        help="also fit (RUN/iteration_<n>_units) and score k-means on the target layer of "
                             "RUN/iteration_<n>/encoder, e.g. 'iteration 3=3' (repeatable)")
    parser.add_argument("--utterance-normalization", action="store_true",
                        help="also fit and score 'NAME + CMVN' for each of mfcc / iteration 1 / iteration 2 in --only: "
                             "the same k-means on per-utterance normalised features (RUN/<folder>_cmvn_L<layer>)")
    parser.add_argument("--layer", type=int, default=None,
                        help="encoder layer of the '+ CMVN' tokenizers (default: the config's target layer)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from types import SimpleNamespace

    from transformers import TrainingArguments

    from hf_slm import UnitEncoderModel, SpeechFeatureExtractor
    from hf_slm.data import load_text_corpus
    from hf_slm.evaluation.abx import build_abx_items, evaluate_abx
    from hf_slm.evaluation.unit_purity import build_phone_items, evaluate_unit_purity
    from hf_slm.training.arguments import SpeechDataArguments, load_speech_splits, parse_json_and_flags
    from hf_slm.training.ssl_pretraining import EncoderPretrainingArguments, fit_targets

    run = Path(args.run)
    data_args, schedule, training_args = parse_json_and_flags(
        (SpeechDataArguments, EncoderPretrainingArguments, TrainingArguments), [args.config, "--output_dir", str(run)]
    )
    fe = SpeechFeatureExtractor(sampling_rate=16000)
    only = [name.strip() for name in args.only.split(",")]
    tokenizers = {name: UnitEncoderModel.from_pretrained(run / folder / "targets")
                  for name, folder in (("mfcc", "iteration_1"), ("iteration 1", "iteration_2")) if name in only}
    from hf_slm.models.ssl_encoder import SSLEncoderForPreTraining

    if not (run / "random_encoder" / "config.json").is_file():
        torch.manual_seed(training_args.seed)
        SSLEncoderForPreTraining(schedule.encoder_config(schedule.units_of(1))).save_encoder(run / "random_encoder")
    train = None
    for name, encoder, folder in (("random", "random_encoder", "random_units"),
                                  ("iteration 2", "iteration_2/encoder", "iteration_2_units")):  # fmt: skip
        if name not in only:
            continue
        if not (run / folder / "config.json").is_file():
            if train is None:
                train, _ = load_speech_splits(data_args, training_args.seed, sampling_rate=16000)
            save_tokenizer(fit_targets(2, run / encoder, train, fe, schedule, "cpu", training_args.seed), fe, run / folder)
        tokenizers[name] = UnitEncoderModel.from_pretrained(run / folder)
    if args.utterance_normalization:
        normalised = dataclasses.replace(schedule, utterance_normalization=True,
                                         target_layer=args.layer or schedule.layer())  # fmt: skip
        layer = normalised.layer()
        for name, iteration, encoder, folder in (("mfcc", 1, None, "mfcc_cmvn"),
                                                 ("iteration 1", 2, "iteration_1/encoder", f"iteration_1_cmvn_L{layer}"),
                                                 ("iteration 2", 2, "iteration_2/encoder", f"iteration_2_cmvn_L{layer}")):  # fmt: skip
            if name not in only:
                continue
            if not (run / folder / "config.json").is_file():
                if train is None:
                    train, _ = load_speech_splits(data_args, training_args.seed, sampling_rate=16000)
                tokenizer = fit_targets(iteration, encoder and run / encoder, train, fe, normalised, "cpu",
                                        training_args.seed)  # fmt: skip
                save_tokenizer(tokenizer, fe, run / folder)
            label = f"{name} + CMVN" if name == "mfcc" else f"{name} L{layer} + CMVN"
            tokenizers[label] = UnitEncoderModel.from_pretrained(run / folder)
    for spec in args.encoder:
        name, _, iteration = spec.partition("=")
        folder = run / f"iteration_{iteration}_units"
        if not (folder / "config.json").is_file():
            if train is None:
                train, _ = load_speech_splits(data_args, training_args.seed, sampling_rate=16000)
            tokenizer = fit_targets(2, run / f"iteration_{iteration}" / "encoder", train, fe, schedule, "cpu",
                                    training_args.seed)  # fmt: skip
            save_tokenizer(tokenizer, fe, folder)
        tokenizers[name] = UnitEncoderModel.from_pretrained(folder)
    for spec in args.tokenizer:
        name, _, folder = spec.partition("=")
        tokenizers[name] = UnitEncoderModel.from_pretrained(folder)

    items = build_abx_items()
    phone_items = build_phone_items(load_text_corpus("wordnet", limit=20, seed=1))
    results = {"layers": layer_abx(run, items, fe, schedule.num_hidden_layers, only)}
    for name, tokenizer in tokenizers.items():
        pipe = SimpleNamespace(feature_extractor=fe, speech_tokenizer=tokenizer.eval())
        results[name] = {rep: evaluate_abx(pipe, items, rep) for rep in ("features", "units")}
        results[name]["purity"] = evaluate_unit_purity(fe, tokenizer, phone_items)
    print(f"{'tokenizer':<14}{'feat within':>12}{'feat between':>14}{'units within':>14}{'units between':>15}  (ABX error %)")
    for name, res in tokenizer_results(results):
        row = [100 * res[r][k] for r in ("features", "units") for k in ("within_speaker_error", "between_speaker_error")]
        print(f"{name:<14}" + "".join(f"{v:>13.2f}" for v in row))
    print(f"{'tokenizer':<14}{'phone purity':>14}{'cluster purity':>16}{'PNMI':>8}{'units used':>12}")
    for name, res in tokenizer_results(results):
        p = res["purity"]
        print(f"{name:<14}{p['phone_purity']:>14.3f}{p['cluster_purity']:>16.3f}{p['pnmi']:>8.3f}{p['num_units_used']:>12}")
    print("continuous features of every layer, ABX within / between (%):")
    for name, rows in results["layers"].items():
        print(f"{name:<14}" + "  ".join(f"L{layer} {100 * w:.2f}/{100 * b:.2f}" for layer, (w, b) in rows.items()))
    suffix = "_".join(n.replace(" ", "") for n in [*only, *(["cmvn"] if args.utterance_normalization else [])])
    (run / f"abx_{suffix}.json").write_text(json.dumps(results, indent=2, default=str))


def save_tokenizer(tokenizer, feature_extractor, folder: Path) -> None:
    from hf_slm.utils import atomic_save_directory

    def write(tmp):
        tokenizer.save_pretrained(tmp)
        feature_extractor.save_pretrained(tmp)

    atomic_save_directory(folder, write)


def tokenizer_results(results):
    return [(name, res) for name, res in results.items() if name != "layers"]


@torch.no_grad()
def layer_abx(run: Path, items, fe, num_layers: int, only) -> dict:
    """ABX (angular distance, features standardised over the items) of `hidden_states[l]` of each encoder, l = 1..L:
    which layer a unit encoder should cluster."""
    from transformers import HubertModel

    from hf_slm.evaluation.metrics.abx.abx import abx

    labels, speakers = [i["label"] for i in items], [i["speaker"] for i in items]
    out = {}
    for name, folder in (("random", "random_encoder"), ("iteration 1", "iteration_1/encoder"),
                         ("iteration 2", "iteration_2/encoder")):  # fmt: skip
        if name not in only:
            continue
        encoder = HubertModel.from_pretrained(run / folder).eval()
        states = [encoder(fe(i["audio"]["array"], sampling_rate=16000, return_tensors="pt")["input_values"],
                          output_hidden_states=True).hidden_states for i in items]  # fmt: skip
        out[name] = {}
        for layer in range(1, num_layers + 1):
            feats = [s[layer][0] for s in states]
            cat = torch.cat(feats)
            mean, std = cat.mean(0), cat.std(0).clamp_min(1e-5)
            res = abx([((f - mean) / std).numpy() for f in feats], labels, speakers, distance="cosine")
            out[name][layer] = (res["within_speaker_error"], res["between_speaker_error"])
    return out


if __name__ == "__main__":
    main()
