#!/usr/bin/env python
"""Train our RVQ codec (SEANet + EMA residual VQ) as a GAN, optionally as a mixed (semantically distilled) tokenizer.

    python examples/codec/train_codec.py examples/codec/config_tiny.json
    python examples/codec/train_codec.py examples/codec/config_tiny.json --output_dir runs/x --max_steps 50
    python examples/codec/train_codec.py examples/codec/config_base.json --semantic_teacher mfcc

Steps: speech (synthesised with espeak-ng, or a `hf-slm synth` / `save_to_disk` folder) -> optional semantic teacher
(a fitted MFCC k-means unit tokenizer, or a saved `UnitEncoderModel` e.g. HuBERT units) -> `CodecGanTrainer`
(mel L1 + commitment [+ level-1 distillation] + HiFi-GAN adversarial / feature-matching losses, EMA codebooks) ->
the codec (generator only) in `output_dir`, the teacher in `output_dir/semantic_teacher`, and `results.json` with
the held-out mel L1, codebook usage and (distilled runs) level-1 code / teacher unit normalised mutual information.
Rerunning the same command resumes from the last complete checkpoint in `output_dir`.

Arguments come from three dataclasses (`CodecDataArguments`, `CodecModelArguments`, `transformers.TrainingArguments`);
a `.json` first argument sets defaults for all of them and any `--flag` after it overrides one. See README.md.
The figures in docs/codec.md come from ``config_tiny.json`` as it stands, on one torch thread of a 2-core CPU.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import TrainingArguments, set_seed

from hf_slm.models.codec import RVQCodecConfig, RVQCodecModel
from hf_slm.models.unit_encoder import SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel
from hf_slm.training import (
    ReadableCheckpoints,
    finished_results,
    last_complete_checkpoint,
    require_single_process,
    resumable_interrupt,
    train_resuming,
    widen_to_umask,
)
from hf_slm.training.kmeans import fit_unit_tokenizer_on_dataset
from hf_slm.training.arguments import SpeechDataArguments, csv_list, load_speech_splits, parse_json_and_flags
from hf_slm.training.codec_trainer import CodecCollator, CodecGanTrainer, codes_used_per_level

logger = logging.getLogger("train_codec")
TEACHER_DIR = "semantic_teacher"


@dataclass
class CodecDataArguments(SpeechDataArguments):
    """The shared speech source (`hf_slm.training.arguments`) plus the training crop."""

    segment_seconds: float = field(default=1.0, metadata={"help": "Random training crops (EnCodec trains on 1 s)."})
    noise_floor: float = field(default=0.0, metadata={"help": "Std of noise added to each crop (synthetic speech's silence)."})


@dataclass
class CodecModelArguments:
    upsampling_ratios: str = field(default="8,5,4,2", metadata={"help": "Decoder strides; product = hop."})
    num_filters: int = field(default=32, metadata={"help": "Channels of the first conv, doubled at each stride."})
    hidden_size: int = field(default=128, metadata={"help": "Latent / codebook dimension."})
    num_codebooks: int = field(default=8, metadata={"help": "RVQ levels (sets the bitrate)."})
    codebook_size: int = field(default=1024, metadata={"help": "Codes per level."})
    causal: bool = field(default=True, metadata={"help": "Causal convolutions (stream without look-ahead)."})
    ema_decay: float = field(default=0.99, metadata={"help": "EMA decay of the codebooks."})
    dead_code_threshold: float = field(default=2.0, metadata={"help": "Restart codes used less (EMA frames/batch)."})
    quantizer_dropout: float = field(default=0.0, metadata={"help": "Probability of training a random level prefix."})
    quantizer_bypass: float = field(default=0.0, metadata={"help": "Probability a sequence skips the quantizer (Mimi)."})
    mel_n_fft: int = field(default=1024, metadata={"help": "FFT size of the loss mel."})
    mel_hop_length: int = field(default=256, metadata={"help": "Hop of the loss mel."})
    num_mel_bins: int = field(default=80, metadata={"help": "Bins of the loss mel."})
    mpd_channels: str = field(default="32,128,512,1024,1024", metadata={"help": "Period discriminator channels."})
    msd_channels: str = field(default="128,128,256,512,1024,1024,1024", metadata={"help": "Scale disc. channels."})
    semantic_teacher: str | None = field(
        default=None,
        metadata={"help": "Distil RVQ level 1: 'mfcc' (fit MFCC k-means on the training audio, saved to "
                  "output_dir/semantic_teacher) or a saved UnitEncoderModel folder (MFCC or SSL). Unset: no "
                  "distillation."},
    )
    teacher_num_units: int = field(default=50, metadata={"help": "k-means units of a fitted MFCC teacher."})
    lambda_distillation: float = field(default=120.0, metadata={"help": "Distillation weight (SpeechTokenizer)."})
    discriminator_warmup_steps: int = field(default=0, metadata={"help": "Steps before the discriminators join."})
    discriminator_learning_rate: float | None = field(default=None, metadata={"help": "Default: learning_rate."})
    resume: bool = field(default=True, metadata={"help": "Resume from the last complete checkpoint in output_dir."})


# ---------------------------------------------------------------------------------------------------- arguments
def parse_arguments(argv: list[str]):
    return parse_json_and_flags((CodecDataArguments, CodecModelArguments, TrainingArguments), argv)


# ---------------------------------------------------------------------------------------------------- data
def _waveform(value) -> torch.Tensor:
    if hasattr(value, "get_all_samples"):
        return value.get_all_samples().data.mean(0).float()
    return torch.as_tensor(np.asarray(value["array"]), dtype=torch.float32)


# ---------------------------------------------------------------------------------------------------- model
def build_codec(model_args: CodecModelArguments, teacher) -> RVQCodecModel:
    config = RVQCodecConfig(
        upsampling_ratios=csv_list(model_args.upsampling_ratios, int),
        num_filters=model_args.num_filters,
        hidden_size=model_args.hidden_size,
        num_codebooks=model_args.num_codebooks,
        codebook_size=model_args.codebook_size,
        causal=model_args.causal,
        ema_decay=model_args.ema_decay,
        dead_code_threshold=model_args.dead_code_threshold,
        quantizer_dropout=model_args.quantizer_dropout,
        quantizer_bypass=model_args.quantizer_bypass,
        semantic_distillation_dim=None if teacher is None else teacher.config.feature_dim,
        lambda_distillation=model_args.lambda_distillation,
        mel_n_fft=model_args.mel_n_fft,
        mel_hop_length=model_args.mel_hop_length,
        mel_win_length=model_args.mel_n_fft,
        num_mel_bins=model_args.num_mel_bins,
        mpd_channels=csv_list(model_args.mpd_channels, int),
        msd_channels=csv_list(model_args.msd_channels, int),
    )
    return RVQCodecModel(config)


def load_teacher(model_args: CodecModelArguments, train, data_args, output_dir: Path):
    """The semantic teacher: a saved tokenizer, the one a previous run of this output_dir fitted, or a new fit."""
    source = model_args.semantic_teacher
    if source is None:
        return None
    saved = output_dir / TEACHER_DIR
    if source != "mfcc":
        return UnitEncoderModel.from_pretrained(source).eval()
    if (saved / "config.json").is_file():
        return UnitEncoderModel.from_pretrained(saved).eval()
    teacher = UnitEncoderModel(UnitEncoderConfig(num_units=model_args.teacher_num_units)).eval()
    fit_unit_tokenizer_on_dataset(teacher, train, SpeechFeatureExtractor(), audio_column=data_args.audio_column,
                                  show_progress=False)  # fmt: skip
    teacher.save_pretrained(saved)
    return teacher


# ---------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_codec(codec: RVQCodecModel, teacher, test, audio_column: str) -> dict:
    """Held-out mel L1, codes used per level, and NMI(level-1 codes; teacher units) when there is a teacher."""
    codec.eval()
    mel_losses, codes, pairs = [], [], []
    device = next(codec.parameters()).device
    for value in test[audio_column]:
        wave = _waveform(value)[None].to(device)
        out = codec(input_values=wave, labels=wave)
        mel_losses.append(float(out.loss_mel))
        codes.append(out.codes.cpu())
        if teacher is not None:
            units = teacher(wave.to(teacher.device)).units[0].cpu()
            n = min(len(units), out.codes.shape[-1])
            pairs.append((out.codes[0, 0, :n].cpu(), units[:n]))
    result = {
        "eval_mel_l1": float(np.mean(mel_losses)),
        "codes_used_per_level": codes_used_per_level(torch.cat(codes, dim=-1)),
        "bitrate_bps": codec.bitrate,
    }
    if pairs:
        result["level1_unit_nmi"] = normalised_mutual_information(
            torch.cat([p[0] for p in pairs]).numpy(), torch.cat([p[1] for p in pairs]).numpy()
        )
    return result


def normalised_mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) / sqrt(H(a) H(b)) of two aligned discrete sequences (plug-in estimate)."""
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1)
    p = joint / joint.sum()
    pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum())
    ha = float(-(pa[pa > 0] * np.log(pa[pa > 0])).sum())
    hb = float(-(pb[pb > 0] * np.log(pb[pb > 0])).sum())
    return mi / math.sqrt(ha * hb) if ha > 0 and hb > 0 else 0.0


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    require_single_process("examples/codec/train_codec.py")  # the GAN trainer's discriminator step is not synchronised across ranks
    data_args, model_args, training_args = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    set_seed(training_args.seed)
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    sampling_rate = RVQCodecConfig().sampling_rate
    train, test = load_speech_splits(data_args, training_args.seed, sampling_rate)
    teacher = load_teacher(model_args, train, data_args, output_dir)
    codec = build_codec(model_args, teacher)
    logger.info("codec: %.2fM parameters, %.0f bps, teacher: %s", codec.num_parameters() / 1e6, codec.bitrate,
                model_args.semantic_teacher)

    trainer = CodecGanTrainer(
        model=codec,
        args=training_args,
        train_dataset=train,
        data_collator=CodecCollator(
            segment_samples=int(data_args.segment_seconds * sampling_rate),
            audio_column=data_args.audio_column,
            sampling_rate=sampling_rate,
            noise_floor=data_args.noise_floor,
        ),
        semantic_teacher=teacher,
        discriminator_warmup_steps=model_args.discriminator_warmup_steps,
        discriminator_learning_rate=model_args.discriminator_learning_rate,
        callbacks=[ReadableCheckpoints()],
    )
    checkpoint = last_complete_checkpoint(output_dir) if model_args.resume else None
    finished = finished_results(checkpoint, training_args, output_dir / "results.json")
    if finished is not None:
        return finished
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    with resumable_interrupt(output_dir):
        train_resuming(trainer, checkpoint)  # a checkpoint at max_steps: loaded, not stepped past
    trainer.save_model(str(output_dir))
    widen_to_umask(output_dir)  # safetensors writes the weights private

    results = evaluate_codec(codec, teacher, test, data_args.audio_column)
    results["steps"] = trainer.state.global_step
    results["resumed_from"] = None if checkpoint is None else Path(checkpoint).name
    (output_dir / "results.json").write_text(json.dumps(results, indent=2))
    logger.info("results: %s", results)
    return results


if __name__ == "__main__":
    main()
