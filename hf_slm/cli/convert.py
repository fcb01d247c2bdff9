"""`hf-slm convert KIND SRC --output DIR`: the CLI of `hf_slm.converters` (kmeans, unit-hifigan, seamless, slamkit, variant).

Mounted by `hf_slm.cli.main.build_parser`; `run_convert` prints where it wrote each folder.
"""

from __future__ import annotations

import argparse

from .arguments import folder_or_hub_id


def _layer(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"layer must be >= 0, got {value}")
    return value


def add_convert_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `convert` command and its five kinds to an argparse `subparsers` object; returns the `convert` parser."""
    convert = subparsers.add_parser(
        "convert",
        help="convert a published checkpoint (k-means, unit HiFi-GAN, SeamlessM4T vocoder, slamkit LM) or "
        "assemble a variant",
        description="Convert published speech-LM checkpoints into hf_slm component folders (safetensors), "
        "loadable with from_pretrained. See docs/converters.md.",
    )
    kinds = convert.add_subparsers(dest="convert_kind", metavar="KIND", required=True)

    p = kinds.add_parser("kmeans", help="textlesslib / fairseq joblib k-means + SSL encoder -> speech tokenizer")
    p.add_argument("src", help="joblib k-means file (e.g. km.bin) or a .npy of centroids")
    p.add_argument("--ssl-model", required=True, help="transformers encoder id or folder (facebook/hubert-base-ls960)")
    p.add_argument("--layer", required=True, type=_layer, help="encoder layer the k-means was fitted on (1-based)")
    p.add_argument("--trust-pickle", action="store_true", help="allow unpickling SRC (it can run code)")
    p.add_argument("--do-normalize", choices=("auto", "yes", "no"), default="auto",
                   help="waveform normalisation before the encoder (auto: the encoder's own setting)")  # fmt: skip

    p = kinds.add_parser("unit-hifigan", help="speech-resynthesis / fairseq unit HiFi-GAN -> vocoder")
    p.add_argument("src", help="generator checkpoint ({'generator': state_dict}, e.g. g_00500000)")
    p.add_argument("--config", required=True, help="the vocoder's JSON config")

    p = kinds.add_parser("seamless", help="SeamlessM4T (v1 / v2) vocoder -> vocoder")
    p.add_argument("src", type=folder_or_hub_id, help="Hub id or folder, e.g. facebook/seamless-m4t-v2-large")

    p = kinds.add_parser("slamkit", help="slamkit UnitLM / TWIST unit LM -> language model")
    p.add_argument("src", type=folder_or_hub_id, help="Hub id or folder of the slamkit model")
    p.add_argument("--num-units", type=int, default=None, help="default: vocab_size - 2")

    p = kinds.add_parser("variant", help="assemble and check a pipeline variant from component folders")
    p.add_argument("src", type=folder_or_hub_id, help="the speech tokenizer folder (or Hub id)")
    p.add_argument("--lm", type=folder_or_hub_id, default=None, help="language model folder (or Hub id)")
    p.add_argument("--vocoder", type=folder_or_hub_id, default=None, help="vocoder folder (or Hub id)")
    p.add_argument("--feature-extractor", type=folder_or_hub_id, default=None,
                   help="default: the one next to the speech tokenizer")  # fmt: skip

    for parser in kinds.choices.values():
        parser.add_argument("--output", "-o", required=True, help="folder to write")
    convert.set_defaults(func=cmd_convert)
    return convert


def cmd_convert(args: argparse.Namespace) -> int:
    run_convert(args)
    return 0


def run_convert(args: argparse.Namespace):
    """Run the converter `args.convert_kind` names; returns what it built and prints where it wrote it."""
    from ..converters import (
        assemble_variant,
        convert_kmeans,
        convert_seamless_vocoder,
        convert_slamkit_lm,
        convert_unit_hifigan,
    )

    kind = args.convert_kind
    if kind == "kmeans":
        normalize = {"auto": None, "yes": True, "no": False}[args.do_normalize]
        result = convert_kmeans(args.src, args.ssl_model, args.layer, args.output, trust_pickle=args.trust_pickle,
                                do_normalize=normalize)  # fmt: skip
    elif kind == "unit-hifigan":
        result = convert_unit_hifigan(args.src, args.config, args.output)
    elif kind == "seamless":
        result = convert_seamless_vocoder(args.src, args.output)
    elif kind == "slamkit":
        result = convert_slamkit_lm(args.src, args.output, num_units=args.num_units)
    elif kind == "variant":
        result = assemble_variant(args.src, args.output, language_model=args.lm, vocoder=args.vocoder,
                                  feature_extractor=args.feature_extractor)  # fmt: skip
    else:  # argparse restricts the choices; this guards direct callers
        raise ValueError(f"unknown convert kind {kind!r}")
    print(f"wrote {args.output} ({type(result).__name__})")
    return result


__all__ = ["add_convert_parser", "cmd_convert", "run_convert"]
