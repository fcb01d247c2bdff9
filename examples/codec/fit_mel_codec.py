#!/usr/bin/env python
"""Fit a log-mel RVQ codec (`MelRVQCodecModel`): residual k-means over log-mel frames, decoded by Griffin-Lim.

    python examples/codec/fit_mel_codec.py examples/codec/config_mel.json --dataset_path runs/x/data/train_corpus \
        --output_dir runs/mel_codec
    python examples/codec/fit_mel_codec.py examples/codec/config_mel.json --num_sentences 40 --output_dir runs/m

Steps: speech (a saved `datasets` folder, or espeak-ng speech of a text source) -> log-mel frames of the training
utterances (at most `max_frames`) -> k-means level by level on the residuals -> the codec in `output_dir` (loadable
with `AutoModel`, and as `--codec` of `examples/codec_lm`, `examples/audiolm` and `examples/valle`) and
`results.json`: the log-mel RMS error left after each level on the training frames and on the held-out utterances,
and the codes each level uses on the held-out utterances. No gradient step: on one CPU thread, 1 h of speech fits in
about a minute. A codec folder that already has `results.json` is left as it is (delete it to refit).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hf_slm.models.codec import MelRVQCodecConfig, MelRVQCodecModel
from hf_slm.models.unit_encoder import SpeechFeatureExtractor
from hf_slm.training.arguments import SpeechDataArguments, load_speech_splits, parse_json_and_flags
from hf_slm.training.codec_trainer import codes_used_per_level
from hf_slm.training.kmeans import fit_mel_rvq_codec_on_dataset
from hf_slm.utils import atomic_save_directory

logger = logging.getLogger("fit_mel_codec")


@dataclass
class MelCodecArguments:
    """The codec's shape (`MelRVQCodecConfig`) and the fit."""

    output_dir: str = field(default="runs/mel_codec", metadata={"help": "Where the codec and results.json go."})
    num_codebooks: int = field(default=4, metadata={"help": "Residual levels."})
    codebook_size: int = field(default=256, metadata={"help": "Codes per level."})
    hop_length: int = field(default=320, metadata={"help": "Samples per frame (320 = 50 Hz at 16 kHz)."})
    n_fft: int = field(default=1024, metadata={"help": "FFT size of the mel and of Griffin-Lim."})
    num_mel_bins: int = field(default=80, metadata={"help": "Mel bins."})
    griffin_lim_iters: int = field(default=32, metadata={"help": "Griffin-Lim iterations when decoding."})
    sampling_rate: int = field(default=16000, metadata={"help": "Audio rate of the codec (the data is resampled)."})
    max_frames: int = field(default=500_000, metadata={"help": "Training frames kept for k-means (a shuffled prefix)."})
    kmeans_steps: int = field(default=150, metadata={"help": "Mini-batch k-means steps per level."})
    seed: int = field(default=0, metadata={"help": "Seeds the shuffle, the held-out split and k-means."})


@torch.no_grad()
def held_out_figures(codec: MelRVQCodecModel, test, feature_extractor, audio_column: str) -> dict:
    """Log-mel RMS error after each level and the codes used per level, over the held-out utterances."""
    squared = torch.zeros(codec.config.num_codebooks)
    frames, codes = 0, []
    for row in test.select_columns([audio_column]):
        inputs = feature_extractor([row[audio_column]], return_tensors="pt")
        log_mel, _ = codec.log_mel(inputs["input_values"], inputs["attention_mask"])
        level_codes = codec.quantize(log_mel[0])  # [Q, T]
        codes.append(level_codes)
        for level in range(codec.config.num_codebooks):
            squared[level] += (log_mel[0] - codec.dequantize(level_codes[: level + 1])).pow(2).mean(-1).sum()
        frames += log_mel.shape[1]
    return {"eval_log_mel_rmse_per_level": (squared / frames).sqrt().tolist(),
            "eval_codes_used_per_level": codes_used_per_level(torch.cat(codes, dim=-1)[None]),
            "eval_frames": frames}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    data_args, args = parse_json_and_flags((SpeechDataArguments, MelCodecArguments), argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    output_dir = Path(args.output_dir)
    if (output_dir / "results.json").is_file():
        logger.info("%s is fitted already (results.json); delete it to refit", output_dir)
        return json.loads((output_dir / "results.json").read_text())
    torch.manual_seed(args.seed)
    codec = MelRVQCodecModel(MelRVQCodecConfig(
        sampling_rate=args.sampling_rate, hop_length=args.hop_length, n_fft=args.n_fft, num_mel_bins=args.num_mel_bins,
        num_codebooks=args.num_codebooks, codebook_size=args.codebook_size, griffin_lim_iters=args.griffin_lim_iters,
    )).eval()  # fmt: skip
    train, test = load_speech_splits(data_args, args.seed, sampling_rate=args.sampling_rate)
    feature_extractor = SpeechFeatureExtractor(sampling_rate=args.sampling_rate, do_normalize=False)
    train_errors = fit_mel_rvq_codec_on_dataset(codec, train, feature_extractor, data_args.audio_column,
                                                max_frames=args.max_frames, seed=args.seed,
                                                max_steps=args.kmeans_steps)  # fmt: skip
    results = {"train_log_mel_rmse_per_level": train_errors, "bitrate_bps": codec.bitrate,
               **held_out_figures(codec, test, feature_extractor, data_args.audio_column)}  # fmt: skip

    def write(folder: Path) -> None:
        codec.save_pretrained(folder)
        (folder / "results.json").write_text(json.dumps(results, indent=2))

    atomic_save_directory(output_dir, write)  # the folder appears complete, with results.json, or not at all
    logger.info("results: %s", results)
    return results


if __name__ == "__main__":
    main()
