#!/usr/bin/env python
"""Train the unit HiFi-GAN vocoder (`UnitHifiGanVocoder`) as a GAN on the units of a speech tokenizer.

    python examples/vocoder/train_vocoder.py examples/vocoder/config_tiny.json
    python examples/vocoder/train_vocoder.py examples/vocoder/config_tiny.json --output_dir runs/x --max_steps 50
    python examples/vocoder/train_vocoder.py examples/vocoder/config_base.json --bf16 true --speech_tokenizer path/to/km
    python examples/vocoder/train_vocoder.py examples/vocoder/config_istft_cpu.json   # default's vocoder + iSTFT GAN

Steps: speech (synthesised with espeak-ng in several voices, or a `hf-slm synth` / `save_to_disk` folder) -> units
from a speech tokenizer (`--speech_tokenizer default`: the embedded pipeline's MFCC k-means-100; a tokenizer or
pipeline folder; empty: fit MFCC k-means on the training audio), cached with `datasets.map`, optionally deduplicated
(then the vocoder learns a duration predictor) -> `VocoderGanTrainer` (HiFi-GAN: LSGAN + 45 x mel L1 + 2 x feature
matching, MPD + MSD) -> the generator in `output_dir` (plus the discriminators with `--keep_discriminators`), the
speech tokenizer in `output_dir/speech_tokenizer`, and `results.json`: steps, the training mel L1 curve, and a
resynthesis evaluation of held-out sentences (`hf_slm.evaluation.evaluate_resynthesis`: log-mel distance and
pocketsphinx WER of the resynthesised next to the original audio), optionally next to a baseline pipeline's vocoder
on the same sentences. Rerunning the same command resumes from the last complete checkpoint in `output_dir`.

`--init_vocoder default` (or a pipeline / vocoder folder) trains a `UnitMelVocoder` instead: the given one's units ->
mel network with a fresh inverse-STFT head (`UnitMelVocoder.with_istft_head`), on the same GAN objective with its own
analysis mel (n_fft 1024, hop 160) as the loss mel; the HiFi-GAN generator arguments are then unused.

Arguments come from three dataclasses (`VocoderDataArguments`, `VocoderModelArguments`,
`transformers.TrainingArguments`); a `.json` first argument sets defaults for all of them and any `--flag` after it
overrides one. See README.md.

Data parallel: `accelerate launch --config_file examples/pretraining/accelerate_ddp.yaml --num_processes N` (or
`torchrun --nproc_per_node N`); gloo on a CPU machine. `per_device_train_batch_size` is per rank; rank 0 alone
writes `output_dir` and runs the resynthesis evaluation.

The CPU figures of docs/vocoder.md: ``config_base.json --num_sentences 1000 --max_train_minutes 20`` on one torch
thread of a 2-core CPU; the CPU-sized row adds ``--upsample_initial_channel 128 --mpd_channels 16,32,64,128,128
--msd_channels 16,32,64,128,256,256,256 --learning_rate 1e-3 --lr_scheduler_type constant`` and batch 8.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from transformers import TrainingArguments, set_seed

from hf_slm import SpeechLMPipeline
from hf_slm.evaluation.report import write_json
from hf_slm.evaluation.resynthesis import evaluate_resynthesis
from hf_slm.models.unit_encoder import decode_audio
from hf_slm.models.unit_vocoder import UnitHifiGanVocoder, UnitHifiGanVocoderConfig, UnitMelVocoder
from hf_slm.training import (
    ReadableCheckpoints,
    UnitVocoderCollator,
    VocoderGanTrainer,
    finished_results,
    last_complete_checkpoint,
    resumable_interrupt,
    train_resuming,
    widen_to_umask,
)
from hf_slm.training.arguments import SpeechDataArguments, csv_list, load_speech_splits, parse_json_and_flags
from hf_slm.training.callbacks import WallClockLimit
from hf_slm.training.launch import LaunchError, end_distributed, log_launch
from hf_slm.training.speech_units import load_or_fit_speech_tokenizer, tokenize_speech

logger = logging.getLogger("train_vocoder")


@dataclass
class VocoderDataArguments(SpeechDataArguments):
    """The shared speech source (`hf_slm.training.arguments`) plus units and training segments."""

    voices: str = field(
        default="en-us,en-us+f3,en-gb+m3,en-us+m3,en-gb+f2", metadata={"help": "Comma-separated espeak-ng voices."}
    )
    pitches: str = field(default="35,50,65", metadata={"help": "Comma-separated base pitches (0-99)."})
    text_column: str = field(default="text", metadata={"help": "Transcripts of the held-out audio (for the WER)."})
    tokenize_batch_size: int = field(default=16, metadata={"help": "Utterances per unit-tokenisation batch."})
    deduplicate_units: bool = field(
        default=False,
        metadata={"help": "Train on deduplicated units (runs collapsed) with a duration predictor (GSLM / speech "
                  "resynthesis). Whole utterances then make each batch (no random crops)."},
    )
    segment_units: int = field(
        default=28, metadata={"help": "Random aligned crops of this many units (HiFi-GAN: 28 x 320 = 8960 samples)."}
    )


@dataclass
class VocoderModelArguments:
    speech_tokenizer: str | None = field(
        default="default",
        metadata={"help": "Unit tokenizer: 'default' (the embedded pipeline's MFCC k-means-100), a tokenizer or "
                  "pipeline folder / Hub id, or empty to fit MFCC k-means on the training audio."},
    )
    num_units: int = field(default=100, metadata={"help": "k-means units when fitting a tokenizer."})
    embedding_dim: int = field(default=128, metadata={"help": "Unit embedding size."})
    upsample_rates: str = field(default="5,4,4,2,2", metadata={"help": "Generator strides; product = unit hop."})
    upsample_kernel_sizes: str = field(default="11,8,8,4,4", metadata={"help": "Transposed-conv kernels."})
    upsample_initial_channel: int = field(default=512, metadata={"help": "Channels after the first conv."})
    resblock_kernel_sizes: str = field(default="3,7,11", metadata={"help": "Kernels of the parallel resblocks."})
    resblock_dilations: str = field(default="1,3,5", metadata={"help": "Dilations inside every resblock."})
    mpd_channels: str = field(default="32,128,512,1024,1024", metadata={"help": "Period discriminator channels."})
    msd_channels: str = field(default="128,128,256,512,1024,1024,1024", metadata={"help": "Scale disc. channels."})
    mel_n_fft: int = field(default=1024, metadata={"help": "FFT size of the loss mel."})
    mel_hop_length: int = field(default=256, metadata={"help": "Hop of the loss mel."})
    num_mel_bins: int = field(default=80, metadata={"help": "Bins of the loss mel."})
    init_vocoder: str | None = field(
        default=None,
        metadata={"help": "Warm start: a pipeline ('default' or a folder) or vocoder folder whose UnitMelVocoder "
                  "gets a fresh inverse-STFT head and is trained as a GAN (instead of a new HiFi-GAN). Unset: "
                  "HiFi-GAN."},
    )
    istft_num_layers: int = field(
        default=2, metadata={"help": "Conv blocks of the inverse-STFT head (--init_vocoder)."}
    )
    discriminator_learning_rate: float | None = field(default=None, metadata={"help": "Default: learning_rate."})
    keep_discriminators: bool = field(default=False, metadata={"help": "Also write the discriminators."})
    baseline_pipeline: str | None = field(
        default=None,
        metadata={"help": "A pipeline ('default' or a folder) whose own tokenizer + vocoder resynthesise the same "
                  "held-out audio, for comparison in results.json. Unset: no baseline."},
    )
    resume: bool = field(default=True, metadata={"help": "Resume from the last complete checkpoint in output_dir."})
    max_train_minutes: float | None = field(
        default=None,
        metadata={"help": "Stop (checkpoint, save, evaluate) after this many minutes of training in this process, "
                  "whatever max_steps says. Unset: no limit."},
    )


def parse_arguments(argv: list[str]):
    return parse_json_and_flags((VocoderDataArguments, VocoderModelArguments, TrainingArguments), argv)


# ---------------------------------------------------------------------------------------------------- data
def vocoder_rows(ds, data_args: VocoderDataArguments):
    """Rows the `UnitVocoderCollator` reads: `input_ids` (units), `audio` (target) [, `durations`]."""
    keep = {"units", data_args.audio_column, "durations"}
    ds = ds.remove_columns([c for c in ds.column_names if c not in keep]).rename_column("units", "input_ids")
    ds = ds.filter(lambda units: len(units) > 0, input_columns="input_ids")
    return ds if data_args.audio_column == "audio" else ds.rename_column(data_args.audio_column, "audio")


# ---------------------------------------------------------------------------------------------------- model
def load_mel_vocoder(name: str) -> UnitMelVocoder:
    """The `UnitMelVocoder` of a pipeline ('default', a pipeline folder or Hub id) or of a vocoder folder."""
    if (Path(name) / "config.json").is_file():
        vocoder = UnitMelVocoder.from_pretrained(name)
    else:
        vocoder = SpeechLMPipeline.from_pretrained(name).vocoder
    if not isinstance(vocoder, UnitMelVocoder):
        raise ValueError(f"--init_vocoder {name!r} holds a {type(vocoder).__name__}, not a UnitMelVocoder")
    return vocoder


def build_vocoder(model_args: VocoderModelArguments, num_units: int, hop_length: int, sampling_rate: int,
                  use_duration_predictor: bool) -> UnitHifiGanVocoder | UnitMelVocoder:  # fmt: skip
    if model_args.init_vocoder:
        if use_duration_predictor:
            raise ValueError("--init_vocoder (a UnitMelVocoder) has no duration predictor: drop --deduplicate_units")
        base = load_mel_vocoder(model_args.init_vocoder)
        expected = {"num_units": num_units, "hop_length": hop_length, "sampling_rate": sampling_rate}
        found = {"num_units": base.config.num_units, "hop_length": base.config.hop_length,
                 "sampling_rate": base.config.sampling_rate}  # fmt: skip
        if found != expected:
            raise ValueError(f"--init_vocoder {model_args.init_vocoder!r} has {found}, the speech tokenizer {expected}")
        return base.with_istft_head(
            istft_num_layers=model_args.istft_num_layers,
            mpd_channels=csv_list(model_args.mpd_channels, int),
            msd_channels=csv_list(model_args.msd_channels, int),
        )
    kernels = csv_list(model_args.resblock_kernel_sizes, int)
    config = UnitHifiGanVocoderConfig(
        num_units=num_units,
        embedding_dim=model_args.embedding_dim,
        sampling_rate=sampling_rate,
        upsample_rates=csv_list(model_args.upsample_rates, int),
        upsample_kernel_sizes=csv_list(model_args.upsample_kernel_sizes, int),
        upsample_initial_channel=model_args.upsample_initial_channel,
        resblock_kernel_sizes=kernels,
        resblock_dilation_sizes=[csv_list(model_args.resblock_dilations, int)] * len(kernels),
        use_duration_predictor=use_duration_predictor,
        mpd_channels=csv_list(model_args.mpd_channels, int),
        msd_channels=csv_list(model_args.msd_channels, int),
        mel_n_fft=model_args.mel_n_fft,
        mel_hop_length=model_args.mel_hop_length,
        mel_win_length=model_args.mel_n_fft,
        num_mel_bins=model_args.num_mel_bins,
    )
    if config.hop_length != hop_length:
        raise ValueError(
            f"upsample_rates {config.upsample_rates} give a hop of {config.hop_length} samples, but the speech "
            f"tokenizer emits one unit every {hop_length} samples"
        )
    return UnitHifiGanVocoder(config)


# ---------------------------------------------------------------------------------------------------- evaluation
def resynthesis_results(pipeline, test, data_args: VocoderDataArguments, output_dir: Path | None) -> dict:
    """`evaluate_resynthesis` on the held-out audio (WER needs their transcripts in `text_column`)."""
    if data_args.text_column not in test.column_names:
        raise ValueError(f"the held-out split has no {data_args.text_column!r} column: resynthesis WER needs it")
    audio = [dict(zip(("array", "sampling_rate"), decode_audio(a))) for a in test[data_args.audio_column]]
    result = evaluate_resynthesis(pipeline, texts=test[data_args.text_column], audio=audio, output_dir=output_dir)
    return {key: value for key, value in result.items() if key != "items"}


def mel_curve(log_history: list[dict]) -> list[dict]:
    """`{step, loss_mel}` of every logged window (unweighted training mel L1, averaged since the previous log)."""
    return [{"step": entry["step"], "loss_mel": entry["loss_mel"]} for entry in log_history if "loss_mel" in entry]


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    data_args, model_args, training_args = parse_arguments(sys.argv[1:] if argv is None else argv)
    log_launch(training_args, "train_vocoder")
    set_seed(training_args.seed)
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    main_process = training_args.process_index == 0
    started = time.time()

    with training_args.main_process_first(desc="speech data, unit tokenizer and units"):  # the others read caches
        train, test = load_speech_splits(data_args, training_args.seed, sampling_rate=16000)
        feature_extractor, speech_tokenizer = load_or_fit_speech_tokenizer(
            model_args.speech_tokenizer, train, output_dir, audio_column=data_args.audio_column,
            num_units=model_args.num_units, seed=training_args.seed,
        )
        rate = feature_extractor.sampling_rate
        if rate != 16000:  # the vocoder's targets at the tokenizer's rate, so unit t starts at sample t * hop
            train, test = (s.cast_column(data_args.audio_column, datasets.Audio(sampling_rate=rate)) for s in (train, test))
        units = tokenize_speech(train, feature_extractor, speech_tokenizer, data_args.audio_column,
                                data_args.tokenize_batch_size, "train", deduplicate=data_args.deduplicate_units,
                                keep_audio=True, cache_dir=data_args.units_cache_dir)  # fmt: skip
        rows = vocoder_rows(units, data_args)
    hop = speech_tokenizer.config.hop_length
    vocoder = build_vocoder(model_args, speech_tokenizer.config.num_units, hop, rate, data_args.deduplicate_units)
    generator_parameters = vocoder.num_parameters()  # before the trainer attaches the discriminators
    logger.info("generator %.2fM parameters, %d training utterances", generator_parameters / 1e6, len(rows))

    trainer = VocoderGanTrainer(
        model=vocoder,
        args=training_args,
        train_dataset=rows,
        data_collator=UnitVocoderCollator(  # crops drawn for the global batch: any number of ranks, same crops
            hop_length=hop, segment_units=None if data_args.deduplicate_units else data_args.segment_units,
            num_shards=training_args.world_size, shard_index=training_args.process_index,
        ),
        discriminator_learning_rate=model_args.discriminator_learning_rate,
        keep_discriminators=model_args.keep_discriminators,
        callbacks=[ReadableCheckpoints()] + [WallClockLimit(m) for m in [model_args.max_train_minutes] if m],
    )
    checkpoint = None
    if model_args.resume:
        checkpoint = last_complete_checkpoint(output_dir, remove_incomplete=training_args.should_save)
    finished = finished_results(checkpoint, training_args, output_dir / "results.json")
    if finished is not None:
        return finished
    if main_process:
        print(f"resuming from {checkpoint}" if checkpoint else "starting from step 0", flush=True)
    train_started = time.time()
    with resumable_interrupt(output_dir, is_main=main_process):
        train_resuming(trainer, checkpoint)  # a checkpoint at max_steps: loaded, not stepped past
    train_seconds = time.time() - train_started
    trainer.save_model(str(output_dir))  # rank 0 writes
    if not main_process:  # the evaluation and results.json are rank 0's
        return {"steps": trainer.state.global_step, "world_size": training_args.world_size}
    widen_to_umask(output_dir)  # safetensors writes the weights private

    vocoder.eval()
    pipeline = SpeechLMPipeline(feature_extractor=feature_extractor, speech_tokenizer=speech_tokenizer, vocoder=vocoder)
    results = {
        "steps": trainer.state.global_step,
        "resumed_from": None if checkpoint is None else Path(checkpoint).name,
        "train_seconds_this_run": round(train_seconds, 1),
        "data_seconds_this_run": round(train_started - started, 1),
        "stopped_by_time_limit": any(getattr(c, "stopped_at_step", None) for c in trainer.callback_handler.callbacks),
        "train_utterances": len(rows),
        "world_size": training_args.world_size,
        "generator_parameters": generator_parameters,
        "loss_mel": mel_curve(trainer.state.log_history),
        "resynthesis": resynthesis_results(pipeline, test, data_args, output_dir / "resynthesis"),
    }
    if model_args.baseline_pipeline:
        baseline = SpeechLMPipeline.from_pretrained(model_args.baseline_pipeline)
        results["baseline"] = {
            "pipeline": model_args.baseline_pipeline,
            "vocoder": type(baseline.vocoder).__name__,
            **resynthesis_results(baseline, test, data_args, None),
        }
    write_json(results, output_dir / "results.json")
    logger.info("results: %s", json.dumps({k: v for k, v in results.items() if k != "loss_mel"}))
    return results


if __name__ == "__main__":
    try:
        main()
        end_distributed()
    except LaunchError as error:  # a launch that would not be data-parallel: say so, no traceback
        sys.exit(f"error: {error}")
