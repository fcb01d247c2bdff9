"""HuBERT's iterations: targets -> masked-prediction pre-training (the Trainer) -> the next iteration's targets.

Iteration 1 learns to predict k-means units of MFCCs (the MFCC unit encoder, HuBERT's "iteration 0"); iteration
n + 1 learns k-means units of a middle layer of iteration n's encoder, and starts from scratch as HuBERT does. Each
stage writes one folder atomically under ``output_dir/iteration_<n>/`` and a rerun skips what exists, so a killed run
resumes where it stopped (training from its last complete Trainer checkpoint):

    targets/   the fitted unit encoder whose units are the labels (feature extractor included)
    trainer/   Trainer checkpoints
    encoder/   the trained encoder as a plain `HubertModel` (+ its feature extractor): the next iteration's front end,
               and the input of `hf-slm fit-tokenizer --frontend ssl`
    results.json  held-out masked-prediction loss and accuracy

Targets come at the encoder's frame rate: the MFCC front end's 20 ms hop and 25 ms window equal HuBERT's conv stack
(stride product 320, receptive field 400 samples), so both give `floor((samples - 400) / 320) + 1` frames; the run
checks this before fitting anything.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments, set_seed

from ..models.ssl_encoder import SSLEncoderConfig, SSLEncoderForPreTraining
from ..models.unit_encoder import DEFAULT_VTLN_WARPS, SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel
from ..utils import atomic_open, atomic_save_directory
from .arguments import SpeechDataArguments, csv_list, load_speech_splits
from .augmentation import SpeechAugmentation
from .callbacks import ReadableCheckpoints
from .checkpoints import last_complete_checkpoint
from .kmeans import fit_unit_tokenizer_on_dataset
from .launch import train_resuming
from .speech_units import tokenize_speech

logger = logging.getLogger(__name__)
RESULTS_FILE = "results.json"


@dataclass
class EncoderPretrainingArguments:
    """The schedule and the encoder; defaults are HuBERT-base (Hsu et al. 2021) at a scale a CPU can try."""

    iterations: int = field(default=2, metadata={"help": "Iterations (1: MFCC targets; n+1: targets from n)."})
    num_units: str = field(
        default="100,500",
        metadata={"help": "k-means units per iteration, comma-separated (the last value repeats): HuBERT uses 100 "
                  "on MFCCs, then 500."},
    )
    target_layer: int | None = field(
        default=None,
        metadata={"help": "Hidden layer of iteration n's encoder clustered for iteration n+1 (transformers numbering: "
                  "L = output of layer L). Unset: the middle layer, num_hidden_layers // 2 (HuBERT-base: 6)."},
    )
    kmeans_max_frames: int = field(default=200_000, metadata={"help": "Frames sampled for k-means (shuffled)."})
    kmeans_max_steps: int = field(default=300, metadata={"help": "Mini-batch k-means update steps."})
    kmeans_batch_size: int = field(default=10_000, metadata={"help": "Frames per mini-batch k-means step."})
    crop_seconds: float | None = field(
        default=15.0, metadata={"help": "Random crop of longer utterances (HuBERT: 250k samples = 15.6 s)."}
    )
    hidden_size: int = field(default=768, metadata={"help": "Encoder width."})
    num_hidden_layers: int = field(default=12, metadata={"help": "Transformer layers."})
    num_attention_heads: int = field(default=12, metadata={"help": "Attention heads."})
    intermediate_size: int = field(default=3072, metadata={"help": "Feed-forward width."})
    conv_dim: str = field(default="512", metadata={"help": "Channels of the 7 conv layers (one value, or seven)."})
    num_conv_pos_embeddings: int = field(default=128, metadata={"help": "Kernel of the positional conv."})
    num_conv_pos_embedding_groups: int = field(default=16, metadata={"help": "Groups of the positional conv."})
    final_dim: int = field(default=256, metadata={"help": "Projection / label embedding dimension."})
    mask_time_prob: float = field(default=0.8, metadata={"help": "HuBERT's mask_prob (span starts)."})
    mask_time_length: int = field(default=10, metadata={"help": "HuBERT's mask_length (frames per span)."})
    logit_temperature: float = field(default=0.1, metadata={"help": "Cosine-similarity temperature."})
    unmasked_loss_weight: float = field(default=0.0, metadata={"help": "Weight of the loss on unmasked frames."})
    speaker_augmentation: str | None = field(
        default=None,
        metadata={"help": "ContentVec-style speaker perturbation: a `SpeechAugmentation` config (JSON text or file) "
                  "applied to the training input only, while the targets stay those of the clean audio; steps must "
                  "keep the length (pitch, vtlp; no speed). Unset: none."},
    )
    utterance_normalization: bool = field(
        default=False,
        metadata={"help": "Fit the targets' k-means (and so the final tokenizer) on per-utterance mean/variance "
                  "normalised features (`UnitEncoderConfig.utterance_normalization`)."},
    )
    vtln: bool = field(
        default=False,
        metadata={"help": "Iteration 1's MFCC targets with vocal tract length normalisation "
                  "(`UnitEncoderConfig.vtln_warps`): the encoder learns to predict speaker-normalised units."},
    )

    def __post_init__(self):
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        units = csv_list(self.num_units, int)
        if not units or min(units) < 2:
            raise ValueError(f"num_units must be comma-separated ints >= 2, got {self.num_units!r}")
        conv = csv_list(self.conv_dim, int)
        if len(conv) not in (1, 7) or min(conv) < 1:
            raise ValueError(f"conv_dim must be one positive int or seven, got {self.conv_dim!r}")
        if self.crop_seconds is not None and self.crop_seconds <= 0:
            raise ValueError(f"crop_seconds must be > 0 (or unset), got {self.crop_seconds}")
        self.augmentation()  # a bad config fails here, before any data is loaded

    def augmentation(self) -> SpeechAugmentation | None:
        """The speaker perturbation of the training input (`speaker_augmentation`), or `None`."""
        if not self.speaker_augmentation:
            return None
        augmentation = SpeechAugmentation.from_config(self.speaker_augmentation)
        check_length_preserving(augmentation)
        return augmentation

    def units_of(self, iteration: int) -> int:
        units = csv_list(self.num_units, int)
        return units[min(iteration, len(units)) - 1]

    def encoder_config(self, num_label_classes: int) -> SSLEncoderConfig:
        conv = csv_list(self.conv_dim, int)
        return SSLEncoderConfig(
            num_label_classes=num_label_classes,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            conv_dim=tuple(conv * 7 if len(conv) == 1 else conv),
            num_conv_pos_embeddings=self.num_conv_pos_embeddings,
            num_conv_pos_embedding_groups=self.num_conv_pos_embedding_groups,
            final_dim=self.final_dim,
            mask_time_prob=self.mask_time_prob,
            mask_time_length=self.mask_time_length,
            logit_temperature=self.logit_temperature,
            unmasked_loss_weight=self.unmasked_loss_weight,
        )

    def layer(self) -> int:
        layer = self.num_hidden_layers // 2 if self.target_layer is None else self.target_layer
        if not 1 <= layer <= self.num_hidden_layers:
            raise ValueError(f"target_layer must be in [1, num_hidden_layers={self.num_hidden_layers}], got {layer}")
        return layer


# ---------------------------------------------------------------------------------------------------- collator
def check_length_preserving(augmentation: SpeechAugmentation) -> None:
    """Labels are one per frame of the clean audio, so the perturbation must keep the duration: no `speed`."""
    changing = [step.name for step in augmentation.steps if step.name == "speed"]
    if changing:
        raise ValueError(
            f"speaker_augmentation: step(s) {changing} change the duration, so the clean audio's frame labels would no "
            "longer line up; use pitch / vtlp (or other length-keeping steps)"
        )


@dataclass
class MaskedPredictionCollator:
    """Audio + frame labels -> `input_values`, `attention_mask`, `labels` (-100 at padding) for
    `SSLEncoderForPreTraining` (which draws the span masks itself).

    Each feature holds audio under `audio_column` and one label per encoder frame under `label_column` (the
    `units` column of `tokenize_speech`). An utterance longer than `max_frames` frames is cropped at a random frame
    boundary, audio and labels together (frame f covers samples `[f * hop, f * hop + receptive_field)`).

    With `augmentation` (ContentVec, Qian et al. 2022), every (cropped) input is speaker-perturbed, e.g. by pitch
    shift and VTLP, with fresh random draws per call, while the labels stay those of the clean audio: the encoder
    must predict the same units for another voice. Steps must keep the length (`check_length_preserving`).
    """

    feature_extractor: SpeechFeatureExtractor
    hop_length: int = 320
    receptive_field: int = 400
    audio_column: str = "audio"
    label_column: str = "units"
    max_frames: int | None = None
    augmentation: SpeechAugmentation | None = None

    def __post_init__(self):
        if self.augmentation is not None:
            check_length_preserving(self.augmentation)

    def frames(self, samples: int) -> int:
        return max(0, (samples - self.receptive_field) // self.hop_length + 1)

    def __call__(self, features: list[dict]) -> dict:
        inputs = self.feature_extractor([f[self.audio_column] for f in features], return_tensors="pt")
        lengths = inputs["attention_mask"].sum(-1).tolist()
        waves, labels = [], []
        for i, (feature, length) in enumerate(zip(features, lengths)):
            units = torch.as_tensor(feature[self.label_column], dtype=torch.long)
            expected = self.frames(int(length))
            if units.numel() != expected:
                raise ValueError(
                    f"feature {i}: {units.numel()} labels for {int(length)} samples, the encoder gives {expected} "
                    f"frames (hop {self.hop_length}, receptive field {self.receptive_field}): the targets were made "
                    "at another frame rate"
                )
            wave = inputs["input_values"][i, : int(length)]
            if self.max_frames is not None and expected > self.max_frames:
                start = random.randrange(expected - self.max_frames + 1)
                end_sample = start * self.hop_length + (self.max_frames - 1) * self.hop_length + self.receptive_field
                wave, units = wave[start * self.hop_length : end_sample], units[start : start + self.max_frames]
            if self.augmentation is not None:
                wave = self._perturb(wave)
            waves.append(wave)
            labels.append(units)
        longest = max(w.numel() for w in waves)
        input_values = torch.zeros(len(waves), longest)
        attention_mask = torch.zeros(len(waves), longest, dtype=torch.long)
        label_tensor = torch.full((len(waves), self.frames(longest)), -100, dtype=torch.long)
        for i, (wave, units) in enumerate(zip(waves, labels)):
            input_values[i, : wave.numel()] = wave
            attention_mask[i, : wave.numel()] = 1
            label_tensor[i, : units.numel()] = units
        return {"input_values": input_values, "attention_mask": attention_mask, "labels": label_tensor}

    def _perturb(self, wave: torch.Tensor) -> torch.Tensor:
        # a fresh draw per call from `random` (seeded by the Trainer's set_seed, like the crops)
        out = self.augmentation(wave, self.feature_extractor.sampling_rate, key=random.getrandbits(62))
        if out.shape != wave.shape:  # a custom step that changes the length
            raise ValueError(f"speaker augmentation changed an input from {wave.numel()} to {out.numel()} samples")
        if self.feature_extractor.do_normalize:  # as the clean input: zero mean, unit variance
            out = (out - out.mean()) / out.std().clamp_min(1e-7)
        return out


# ---------------------------------------------------------------------------------------------------- stages
def _save_tokenizer(folder: Path, tokenizer, feature_extractor) -> None:
    def write(tmp):
        tokenizer.save_pretrained(tmp)
        feature_extractor.save_pretrained(tmp)

    atomic_save_directory(folder, write)


def fit_targets(iteration: int, previous_encoder: Path | None, train, feature_extractor, args, device, seed: int,
                audio_column: str = "audio"):  # fmt: skip
    """The unit encoder whose units are iteration `iteration`'s labels: MFCC k-means for the first, k-means on
    `args.layer()` of `previous_encoder` after it."""
    num_units = args.units_of(iteration)
    norm = args.utterance_normalization
    if previous_encoder is None:
        warps = list(DEFAULT_VTLN_WARPS) if args.vtln else None
        tokenizer = UnitEncoderModel(UnitEncoderConfig(frontend="mfcc", num_units=num_units, utterance_normalization=norm,
                                                       vtln_warps=warps))  # fmt: skip
    else:
        tokenizer = UnitEncoderModel.from_ssl_pretrained(str(previous_encoder), layer=args.layer(), num_units=num_units,
                                                         utterance_normalization=norm)  # fmt: skip
    tokenizer.to(device).eval()
    fit_unit_tokenizer_on_dataset(
        tokenizer, train.shuffle(seed=seed, keep_in_memory=True), feature_extractor, audio_column=audio_column,
        max_frames=args.kmeans_max_frames, max_steps=args.kmeans_max_steps, kmeans_batch_size=args.kmeans_batch_size,
        seed=seed, shuffle=False,
    )  # fmt: skip
    return tokenizer


def check_frame_rates(tokenizer_config, encoder_config) -> None:
    """Labels must come one per encoder frame: same hop and the same first-frame window."""
    ours = (tokenizer_config.hop_length, tokenizer_config.receptive_field)
    theirs = (encoder_config.hop_length, encoder_config.receptive_field)
    if ours != theirs:
        raise ValueError(
            f"the targets' front end has hop/window {ours} samples but the encoder's conv stack has {theirs}: labels "
            "would not line up with encoder frames (keep HuBERT's conv_stride/conv_kernel, or MFCC hop 320/window 400)"
        )


@torch.no_grad()
def evaluate_masked_prediction(model, dataset, collator, batch_size: int = 8, seed: int = 0) -> dict:
    """Held-out loss and masked-frame accuracy with seeded masks (the same masks for every iteration)."""
    model.eval()
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    losses, correct, total = [], 0.0, 0
    for start in range(0, len(dataset), batch_size):
        batch = collator([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        batch = {k: v.to(model.device) for k, v in batch.items()}
        out = model(**batch)
        masked = out.mask_time_indices & (batch["labels"] >= 0)
        losses.append(float(out.loss))
        correct += float((out.logits[masked].argmax(-1) == batch["labels"][masked]).sum())
        total += int(masked.sum())
    torch.random.set_rng_state(generator_state)
    return {"eval_loss": sum(losses) / max(1, len(losses)), "eval_masked_accuracy": correct / max(1, total)}


def training_collator(args: EncoderPretrainingArguments, config: SSLEncoderConfig,
                      feature_extractor) -> MaskedPredictionCollator:  # fmt: skip
    """The training batches of one iteration: crops of `args.crop_seconds`, speaker-perturbed when
    `args.speaker_augmentation` is set (the held-out evaluation always reads clean, uncropped audio)."""
    return MaskedPredictionCollator(
        feature_extractor, config.hop_length, config.receptive_field,
        max_frames=None if args.crop_seconds is None else int(args.crop_seconds * config.frame_rate),
        augmentation=args.augmentation(),
    )  # fmt: skip


def train_iteration(iteration: int, labelled_train, labelled_eval, feature_extractor, num_units: int, args,
                    training_args: TrainingArguments, folder: Path) -> dict:  # fmt: skip
    """Trainer pre-training of one iteration from scratch; the encoder is saved to `folder/encoder`."""
    trainer_dir = folder / "trainer"
    targs = dataclasses.replace(training_args, output_dir=str(trainer_dir), remove_unused_columns=False)
    set_seed(targs.seed + iteration)
    config = args.encoder_config(num_units)
    collator = training_collator(args, config, feature_extractor)
    trainer = Trainer(model=SSLEncoderForPreTraining(config), args=targs, train_dataset=labelled_train,
                      data_collator=collator, callbacks=[ReadableCheckpoints()])  # fmt: skip
    train_resuming(trainer, last_complete_checkpoint(trainer_dir, remove_incomplete=True))  # a finished one: loaded
    model = trainer.model
    results = {"iteration": iteration, "num_units": num_units, **evaluate_masked_prediction(
        model, labelled_eval, MaskedPredictionCollator(feature_extractor, collator.hop_length, collator.receptive_field),
        seed=targs.seed)}  # fmt: skip

    def write(tmp):
        model.save_encoder(tmp)
        feature_extractor.save_pretrained(tmp)

    atomic_save_directory(folder / "encoder", write)
    with atomic_open(folder / RESULTS_FILE) as handle:
        handle.write(json.dumps(results, indent=2))
    return results


def run_encoder_pretraining(data_args: SpeechDataArguments, args: EncoderPretrainingArguments,
                            training_args: TrainingArguments) -> dict:  # fmt: skip
    """Run (or resume) the whole schedule; returns `{"iterations": [...], "encoder": last encoder folder}` and
    writes it to `output_dir/results.json`. A finished schedule returns its saved results without loading data."""
    output_dir = Path(training_args.output_dir)
    summary_file = output_dir / RESULTS_FILE
    folders = [output_dir / f"iteration_{n}" for n in range(1, args.iterations + 1)]
    if summary_file.is_file() and all((f / "encoder" / "config.json").is_file() for f in folders):
        summary = json.loads(summary_file.read_text())
        if len(summary.get("iterations", [])) == args.iterations:
            print(f"the schedule is already complete: {summary['encoder']} (results in {summary_file})", flush=True)
            return summary
    device = training_args.device
    train, held_out = load_speech_splits(data_args, training_args.seed, sampling_rate=16000)
    feature_extractor = SpeechFeatureExtractor(sampling_rate=16000)
    cache_dir = data_args.units_cache_dir or str(output_dir / "units_cache")
    summaries, previous = [], None
    for iteration, folder in enumerate(folders, start=1):
        encoder_dir = folder / "encoder"
        if (encoder_dir / "config.json").is_file() and (folder / RESULTS_FILE).is_file():
            logger.info("iteration %d: done (%s)", iteration, encoder_dir)
            summaries.append(json.loads((folder / RESULTS_FILE).read_text()))
            previous = encoder_dir
            continue
        targets_dir = folder / "targets"
        if (targets_dir / "config.json").is_file():
            tokenizer = UnitEncoderModel.from_pretrained(targets_dir).to(device).eval()
            logger.info("iteration %d: reusing targets %s", iteration, targets_dir)
        else:
            tokenizer = fit_targets(iteration, previous, train, feature_extractor, args, device,
                                    training_args.seed, data_args.audio_column)  # fmt: skip
            _save_tokenizer(targets_dir, tokenizer, feature_extractor)
        check_frame_rates(tokenizer.config, args.encoder_config(tokenizer.config.num_units))
        labelled = [
            tokenize_speech(split, feature_extractor, tokenizer, data_args.audio_column, split=name, keep_audio=True,
                            cache_dir=cache_dir)  # fmt: skip
            for split, name in ((train, f"train, iteration {iteration}"), (held_out, f"eval, iteration {iteration}"))
        ]
        results = train_iteration(iteration, *labelled, feature_extractor, tokenizer.config.num_units, args,
                                  training_args, folder)  # fmt: skip
        logger.info("iteration %d: %s", iteration, results)
        summaries.append(results)
        previous = encoder_dir
    summary = {"iterations": summaries, "encoder": str(previous), "target_layer": args.layer()}
    with atomic_open(summary_file) as handle:
        handle.write(json.dumps(summary, indent=2))
    return summary


__all__ = [
    "EncoderPretrainingArguments",
    "MaskedPredictionCollator",
    "check_frame_rates",
    "check_length_preserving",
    "evaluate_masked_prediction",
    "fit_targets",
    "run_encoder_pretraining",
    "train_iteration",
    "training_collator",
]
