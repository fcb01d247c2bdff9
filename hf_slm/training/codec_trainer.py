"""GAN training of our RVQ codec (`RVQCodecModel`) inside the HF `Trainer`, reusing the vocoder's GAN machinery.

`CodecGanTrainer` is a `VocoderGanTrainer` (second optimiser / scheduler for the discriminators, discriminator step
at the generator's accumulation boundaries, checkpoints that carry both players) whose generator is a codec: its
loss is mel L1 + commitment (+ semantic distillation) from the codec's own `forward`, plus HiFi-GAN's least-squares
adversarial and feature-matching terms. The discriminators (`HifiGanDiscriminator`: MPD + MSD) come from the unit
vocoder family and are attached to the codec here, so the codec's folder stays free of training-only code.

For the mixed tokenizer, a fitted `UnitEncoderModel` is the teacher: its (standardised) MFCC or SSL features of
each batch become `semantic_features`, resampled to the codec's frame rate when the rates differ.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ..models.codec import RVQCodecModel
from ..models.unit_vocoder import HifiGanDiscriminator
from .gan_trainer import VocoderGanTrainer


# ---------------------------------------------------------------------------------------------------- collator
def _audio_array(value, index, sampling_rate):
    """1-D float32 tensor from an array, `{"array", "sampling_rate"}` dict or torchcodec decoder (datasets Audio)."""
    rate = None
    if hasattr(value, "get_all_samples"):
        samples = value.get_all_samples()
        value, rate = samples.data.mean(0), samples.sample_rate
    elif isinstance(value, dict) and "array" in value:
        value, rate = value["array"], value.get("sampling_rate")
    if value is None:
        raise ValueError(f"feature {index} has no audio")
    if rate is not None and sampling_rate is not None and int(rate) != int(sampling_rate):
        raise ValueError(
            f"feature {index}: audio at {rate} Hz, the codec runs at {sampling_rate} Hz (cast the column with "
            f"datasets.Audio(sampling_rate={sampling_rate}))"
        )
    wave = torch.as_tensor(np.asarray(value), dtype=torch.float32)
    if wave.dim() != 1 or wave.numel() == 0:
        raise ValueError(f"feature {index}: audio must be non-empty mono 1-D, got shape {tuple(wave.shape)}")
    return wave


@dataclass
class CodecCollator:
    """Batch audio for codec training: `input_values`, `attention_mask`, and the same audio as `labels` /
    `labels_mask` (a codec reconstructs its input).

    Each feature holds audio under `audio_column` (array, `{"array", "sampling_rate"}` dict or torchcodec decoder).
    `segment_samples` crops a random window from every longer item (EnCodec / HiFi-GAN train on ~1 s segments).
    `sampling_rate`, when given, is checked against the audio's own rate where the feature knows it.
    `noise_floor` adds Gaussian noise of that standard deviation to each crop (input and target alike): a
    recording's noise floor. Synthetic speech (espeak-ng) has digital silence, whose log-mel sits at the loss mel's
    1e-5 floor, so any decoder hiss there costs more mel L1 than the speech itself.
    """

    segment_samples: int | None = None
    audio_column: str = "audio"
    sampling_rate: int | None = None
    noise_floor: float = 0.0

    def __post_init__(self):
        if not (math.isfinite(self.noise_floor) and self.noise_floor >= 0):
            raise ValueError(f"noise_floor must be a finite standard deviation >= 0, got {self.noise_floor!r}")

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        waves = []
        for i, feature in enumerate(features):
            wave = _audio_array(feature.get(self.audio_column), i, self.sampling_rate)
            if self.segment_samples is not None and wave.numel() > self.segment_samples:
                start = random.randint(0, wave.numel() - self.segment_samples)
                wave = wave[start : start + self.segment_samples]
            if self.noise_floor > 0:
                wave = wave + self.noise_floor * torch.randn_like(wave)
            waves.append(wave)
        values = pad_sequence(waves, batch_first=True)
        mask = pad_sequence([torch.ones(w.numel(), dtype=torch.long) for w in waves], batch_first=True)
        return {"input_values": values, "attention_mask": mask, "labels": values.clone(), "labels_mask": mask.clone()}


def codes_used_per_level(codes, codes_mask=None) -> list[int]:
    """Distinct codes at each RVQ level over the real frames of `codes` [B, Q, T] (`codes_mask` [B, T]): a
    collapsing quantizer (few codes carry everything; the loss can stay flat while it happens) shows here first."""
    frames = codes.transpose(1, 2)  # [B, T, Q]
    frames = frames.reshape(-1, frames.shape[-1]) if codes_mask is None else frames[codes_mask.bool()]
    return [int(frames[:, level].unique().numel()) for level in range(frames.shape[-1])]


# ---------------------------------------------------------------------------------------------------- teacher
@torch.no_grad()
def teacher_features(teacher, input_values, attention_mask, frame_rate: float):
    """A unit tokenizer's features of a batch at `frame_rate`: `(features [B, T, D], mask [B, T])`.

    Standardised with the tokenizer's fitted mean / std (the space its k-means units live in), so every feature
    dimension is a zero-mean time series, which is what the D-axis cosine compares. Features at another frame rate
    are linearly resampled to `frame_rate`.
    """
    device = teacher.feature_mean.device if hasattr(teacher, "feature_mean") else input_values.device
    features, mask = teacher.extract_features(input_values.to(device), attention_mask.to(device))
    if bool(getattr(teacher, "is_fitted", torch.tensor(False))):
        features = (features - teacher.feature_mean.float()) / teacher.feature_std.float()
    source_rate = float(teacher.config.frame_rate)
    if not math.isclose(source_rate, frame_rate):
        frames = max(1, round(features.shape[1] * frame_rate / source_rate))
        features = torch.nn.functional.interpolate(
            features.transpose(1, 2), size=frames, mode="linear", align_corners=False
        ).transpose(1, 2)
        lengths = torch.floor(mask.long().sum(1).float() * frame_rate / source_rate).long()
        mask = torch.arange(frames, device=features.device)[None] < lengths[:, None]
    return features * mask[..., None], mask


# ---------------------------------------------------------------------------------------------------- trainer
class CodecGanTrainer(VocoderGanTrainer):
    """HF `Trainer` for [`RVQCodecModel`] with HiFi-GAN's adversarial objective (and optional semantic distillation).

    Per micro-batch: the codec autoencodes (`loss = lambda_mel L_mel + lambda_commitment L_commit
    [+ lambda_distillation L_distill]`, EMA codebooks updated in the forward); then, from
    `discriminator_warmup_steps` on, the discriminator step (eq. 7 on real vs detached reconstructed audio) and the
    generator's adversarial (eq. 6) and feature-matching (eq. 9) terms, exactly as `VocoderGanTrainer`.

    Args:
        semantic_teacher: a fitted `UnitEncoderModel` (MFCC or SSL front end) whose features level 1 is
            distilled toward; required when `model.config.semantic_distillation_dim` is set (and must match it).
        discriminator_warmup_steps (`int`, defaults to 0): optimiser steps trained on reconstruction only before the
            discriminators join (a common codec / VQGAN recipe; a value beyond `max_steps` trains without GAN).
        discriminator_learning_rate, keep_discriminators: as `VocoderGanTrainer`.
        Everything else as `transformers.Trainer`; batches need `labels` (e.g. from [`CodecCollator`]).

    Logged next to `loss`: `loss_mel`, `loss_commitment`, `loss_distillation`, `codes_restarted` (dead codes
    restarted per step), `codes_used` (distinct codes per level in the batch, mean over levels:
    `codes_used_per_level`) and, once adversarial, `loss_disc`, `loss_gen_adv`, `loss_fm`.
    """

    model_class = RVQCodecModel

    def __init__(
        self,
        model=None,
        args=None,
        *trainer_args,
        semantic_teacher=None,
        discriminator_warmup_steps: int = 0,
        **kwargs,
    ):
        if not isinstance(discriminator_warmup_steps, int) or discriminator_warmup_steps < 0:
            raise ValueError(f"discriminator_warmup_steps must be an int >= 0, got {discriminator_warmup_steps!r}")
        self.semantic_teacher = semantic_teacher  # read by check_model, which runs inside the base __init__
        super().__init__(model, args, *trainer_args, **kwargs)
        if self.args.world_size > 1:
            raise ValueError(
                "CodecGanTrainer runs on one process: the EMA codebook updates and dead-code restarts happen inside "
                "each rank's forward, and DDP would keep only rank 0's codebook buffers (its broadcast) instead of "
                "statistics over the global batch"
            )
        self.discriminator_warmup_steps = discriminator_warmup_steps
        if semantic_teacher is not None:
            self.semantic_teacher = semantic_teacher.eval().requires_grad_(False).to(self.args.device)

    def check_model(self, model) -> None:
        """The teacher and the codec's distillation head must agree (both present, same feature dim)."""
        distill_dim, teacher = model.config.semantic_distillation_dim, self.semantic_teacher
        if distill_dim and teacher is None:
            raise ValueError(
                f"the codec distils level 1 toward {distill_dim}-dim features: pass semantic_teacher (a fitted "
                "UnitEncoderModel)"
            )
        if teacher is not None:
            if not distill_dim:
                raise ValueError("semantic_teacher given but the codec has no semantic_distillation_dim")
            if teacher.config.feature_dim != distill_dim:
                raise ValueError(
                    f"semantic_teacher features have dim {teacher.config.feature_dim}, the codec's "
                    f"semantic_distillation_dim is {distill_dim}"
                )

    def attach_discriminators(self, model) -> None:
        """The codec folder holds no training code: the unit vocoder family's MPD + MSD are attached here."""
        if model.discriminator is None:
            model.discriminator = HifiGanDiscriminator.from_config(model.config)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if inputs.get("labels") is None:
            raise ValueError("CodecGanTrainer needs target audio under `labels` (see CodecCollator)")
        codec = self.accelerator.unwrap_model(model)
        if self.semantic_teacher is not None and inputs.get("semantic_features") is None:
            features, mask = teacher_features(
                self.semantic_teacher, inputs["input_values"], inputs.get("attention_mask"), codec.config.frame_rate
            )
            inputs = {**inputs, "semantic_features": features, "semantic_features_mask": mask}
        outputs = model(**inputs)
        loss = outputs.loss
        if not model.training:
            return (loss, outputs) if return_outputs else loss
        restarted = sum(codebook.last_restarts for codebook in codec.quantizer.codebooks)
        used = None if outputs.codes is None else np.mean(codes_used_per_level(outputs.codes, outputs.codes_mask))
        self._record(
            loss_mel=outputs.loss_mel,
            loss_commitment=outputs.loss_commitment,
            loss_distillation=outputs.loss_distillation,
            codes_restarted=restarted,
            codes_used=used,
        )
        if self.optimizer_discriminator is not None and self.state.global_step >= self.discriminator_warmup_steps:
            adversarial, loss_disc, loss_gen_adv, loss_fm = self._adversarial_loss(codec, outputs, inputs)
            loss = loss + adversarial
            self._record(loss_disc=loss_disc, loss_gen_adv=loss_gen_adv, loss_fm=loss_fm)
        return (loss, outputs) if return_outputs else loss


__all__ = ["CodecCollator", "CodecGanTrainer", "codes_used_per_level", "teacher_features"]
