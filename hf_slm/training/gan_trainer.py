"""`VocoderGanTrainer`: HiFi-GAN training (two optimisers, alternating D and G steps) inside the HF `Trainer`.

Why a `Trainer` subclass rather than a hand-written loop or accelerate alone: the generator is an ordinary
`PreTrainedModel` whose `forward(labels=...)` already returns the non-adversarial loss, so the `Trainer` keeps doing
everything it does for any model (dataloading, device placement, bf16 autocast, gradient accumulation and clipping,
logging and report_to, evaluation, checkpoint rotation, `resume_from_checkpoint`, `push_to_hub`). Only three hooks
change: `create_optimizer` / `create_scheduler` build a second optimiser and scheduler for the discriminators,
`compute_loss` runs the discriminator update and adds the adversarial + feature-matching terms, and checkpoint
save/load also writes/reads the discriminator weights and optimiser state. See docs/vocoder.md for the limits.

Data parallel (DDP, `accelerate launch` / `torchrun`): the `Trainer` wraps the vocoder in DDP with the
discriminators' parameters and buffers on DDP's ignore list, so that wrapper synchronises the generator's gradients
only; the discriminator update runs through a DDP wrapper of its own (`_RealVsGenerated`: both discriminator
passes in one DDP forward, one backward), which averages the discriminators' gradients across ranks before they are
clipped and stepped. Both optimisers thus take the steps a single process takes on the global batch.
"""

from __future__ import annotations

import os
from collections import defaultdict
from contextlib import nullcontext

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from transformers import Trainer
from transformers.optimization import get_scheduler

from ..models.unit_vocoder import (
    UnitHifiGanVocoder,
    UnitMelVocoder,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)

DISCRIMINATOR_OPTIMIZER_NAME = "optimizer_discriminator.pt"
DISCRIMINATOR_SCHEDULER_NAME = "scheduler_discriminator.pt"


class _RealVsGenerated(nn.Module):
    """Both discriminator passes of the discriminator update as one forward, so that a DDP wrapper sees one
    forward per backward (two forwards before one backward confuse its reducer)."""

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.discriminator = discriminator

    def forward(self, real, generated):
        return self.discriminator(real)[0], self.discriminator(generated)[0]


class VocoderGanTrainer(Trainer):
    """HF `Trainer` for [`UnitHifiGanVocoder`] (or [`UnitMelVocoder`] with `waveform_head="istft"`) with HiFi-GAN's
    adversarial objective.

    Every micro-batch: (1) the generator runs (`model(**inputs)`: waveform and lambda_mel * L_mel [+ duration loss]);
    (2) discriminator step: L_D (eq. 7) on real vs detached generated audio, backpropagated into the discriminators
    only and applied by the discriminator optimiser at the same accumulation boundary as the generator's;
    (3) generator loss = lambda_adv * L_adv (eq. 6) + lambda_fm * L_fm (eq. 9) + lambda_mel * L_mel (eq. 8), with the
    discriminators frozen, returned to the `Trainer`, which backpropagates and steps the generator optimiser.

    Logged next to `loss` (the generator total): `loss_disc`, `loss_gen_adv`, `loss_fm`, `loss_mel` (unweighted,
    averaged since the last log) and `loss_duration` when the model predicts durations.

    Args:
        discriminator_learning_rate (`float`, *optional*): defaults to `args.learning_rate`.
        keep_discriminators (`bool`, defaults to `False`): whether `trainer.save_model()` also writes the
            discriminators. Checkpoints (`checkpoint-*`) always hold them, so that `resume_from_checkpoint` continues
            the same game; the exported model is the generator only unless asked.
        Everything else as `transformers.Trainer` (`model`: a `UnitHifiGanVocoder`, or a `UnitMelVocoder` with the
            inverse-STFT head; batches need `labels`,
        e.g. from `hf_slm.training.UnitVocoderCollator`). HiFi-GAN's optimiser: `learning_rate=2e-4,
        adam_beta1=0.8, adam_beta2=0.99`.
    """

    #: The generator class(es) this trainer accepts; a subclass for another generator only changes this (and
    #: `check_model` / `attach_discriminators` when it needs more).
    model_class = (UnitHifiGanVocoder, UnitMelVocoder)

    def __init__(
        self,
        model=None,
        args=None,
        *trainer_args,
        discriminator_learning_rate: float | None = None,
        keep_discriminators: bool = False,
        **kwargs,
    ):
        name = type(self).__name__
        classes = self.model_class if isinstance(self.model_class, tuple) else (self.model_class,)
        if not isinstance(model, classes):
            wanted = " or ".join(c.__name__ for c in classes)
            raise ValueError(f"{name} trains a {wanted}, got {type(model).__name__}")
        self.check_model(model)
        self.attach_discriminators(model)  # before Trainer.__init__, so they move to the device with the generator
        # the Trainer's DDP wrapper of the vocoder synchronises the generator only; the discriminators get their own
        discriminator_names = [f"discriminator.{n}" for n, _ in model.discriminator.named_parameters()]
        discriminator_names += [f"discriminator.{n}" for n, _ in model.discriminator.named_buffers()]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, discriminator_names)
        super().__init__(model, args, *trainer_args, **kwargs)
        if self.args.fp16:
            raise ValueError(
                f"{name} does not support fp16 (one GradScaler would serve two optimisers); use bf16 or fp32"
            )
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            raise ValueError(
                f"{name} runs on one device or data-parallel (DDP) only: DeepSpeed / FSDP would shard the generator "
                "and discriminators with one engine for two optimisers (see docs/vocoder.md)"
            )
        self.discriminator_learning_rate = discriminator_learning_rate
        self.keep_discriminators = keep_discriminators
        self.optimizer_discriminator = None
        self.lr_scheduler_discriminator = None
        self._gan_sums: dict[str, float] = defaultdict(float)
        self._gan_counts: dict[str, int] = defaultdict(int)
        self._saving_checkpoint = False
        self._discriminator_pair = None

    def check_model(self, model) -> None:
        """Model-specific checks before the `Trainer` is built (raise `ValueError`): a `UnitMelVocoder` needs its
        differentiable inverse-STFT head (Griffin-Lim has no gradient for the discriminators to train)."""
        if isinstance(model, UnitMelVocoder) and model.config.waveform_head != "istft":
            raise ValueError(
                f"{type(self).__name__} trains a UnitMelVocoder only with waveform_head='istft' (this one has "
                f"{model.config.waveform_head!r}, not differentiable); train it with the plain Trainer, or convert "
                "it with UnitMelVocoder.with_istft_head()"
            )

    def attach_discriminators(self, model) -> None:
        """Give the generator its MPD + MSD discriminators (training only; checkpoints keep them)."""
        model.setup_discriminators()

    @property
    def discriminator(self):
        return self.accelerator.unwrap_model(self.model).discriminator

    def _real_vs_generated(self):
        """The discriminator update's forward: plain on one process, a DDP wrapper of its own on several (built
        once; DDP broadcasts rank 0's discriminator weights into every rank when it is built)."""
        if self._discriminator_pair is None:
            pair = _RealVsGenerated(self.discriminator)
            self._discriminator_pair = self.accelerator.prepare_model(pair) if self.args.world_size > 1 else pair
        return self._discriminator_pair

    # ------------------------------------------------------------------ optimisers
    def create_optimizer(self, model=None):
        discriminator = self.discriminator
        if self.optimizer is None:
            # Trainer's own optimiser (param groups, weight decay, optim choice) over the generator only:
            # it keeps only parameters that require grad, so hide the discriminators while it is built.
            discriminator.requires_grad_(False)
            try:
                super().create_optimizer(model)
            finally:
                discriminator.requires_grad_(True)
        if self.optimizer_discriminator is None:
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
            optimizer_kwargs = dict(optimizer_kwargs)
            if self.discriminator_learning_rate is not None:
                optimizer_kwargs["lr"] = self.discriminator_learning_rate
            optimizer = optimizer_cls(
                [{"params": list(discriminator.parameters()), "weight_decay": self.args.weight_decay}],
                **optimizer_kwargs,
            )
            # An AcceleratedOptimizer steps/zeroes only at gradient-accumulation boundaries, like the generator's.
            self.optimizer_discriminator = self.accelerator.prepare_optimizer(optimizer)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler_discriminator is None:
            self.lr_scheduler_discriminator = get_scheduler(
                self.args.lr_scheduler_type,
                optimizer=self.optimizer_discriminator.optimizer,
                num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                num_training_steps=num_training_steps,
                scheduler_specific_kwargs=self.args.lr_scheduler_kwargs,
            )
        return scheduler

    # ------------------------------------------------------------------ losses
    def _record(self, **values):
        for name, value in values.items():
            if value is not None:
                self._gan_sums[name] += float(value.detach() if torch.is_tensor(value) else value)
                self._gan_counts[name] += 1

    def _discriminator_step(self, real, generated):
        """Eq. 7 on real vs detached generated audio; steps the discriminators at accumulation boundaries."""
        discriminator = self.discriminator
        pair = self._real_vs_generated()
        between_boundaries = isinstance(pair, DistributedDataParallel) and not self.accelerator.sync_gradients
        with pair.no_sync() if between_boundaries else nullcontext():  # DDP averages at accumulation boundaries
            real_scores, generated_scores = pair(real, generated.detach())
            loss = discriminator_loss(real_scores, generated_scores)
            self.accelerator.backward(loss / getattr(self, "current_gradient_accumulation_steps", 1))
        if self.accelerator.sync_gradients:
            if self.args.max_grad_norm and self.args.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(discriminator.parameters(), self.args.max_grad_norm)
            self.optimizer_discriminator.step()
            self.lr_scheduler_discriminator.step()
            self.optimizer_discriminator.zero_grad(set_to_none=True)
        return loss.detach()

    def _adversarial_loss(self, generator, outputs, inputs):
        """One discriminator step (eq. 7), then the generator's weighted adversarial + feature-matching terms
        (eq. 6, 9) as `(weighted sum, loss_disc, loss_gen_adv, loss_fm)`. Shared by every GAN-trained generator."""
        config = generator.config
        real, generated, _ = generator.align_with_labels(
            outputs.waveform, outputs.waveform_lengths, inputs["labels"], inputs.get("labels_mask")
        )
        loss_disc = self._discriminator_step(real, generated)
        discriminator = self.discriminator
        discriminator.requires_grad_(False)  # gradients reach the generator only (and not its clip norm)
        try:
            generated_scores, generated_features = discriminator(generated)
            with torch.no_grad():
                _, real_features = discriminator(real)
        finally:
            discriminator.requires_grad_(True)
        loss_gen_adv = generator_adversarial_loss(generated_scores)
        loss_fm = feature_matching_loss(real_features, generated_features)
        weighted = config.lambda_adv * loss_gen_adv + config.lambda_fm * loss_fm
        return weighted, loss_disc, loss_gen_adv.detach(), loss_fm.detach()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if inputs.get("labels") is None:
            raise ValueError("VocoderGanTrainer needs target waveforms under `labels` (see UnitVocoderCollator)")
        outputs = model(**inputs)
        loss = outputs.loss
        if model.training and self.optimizer_discriminator is not None:
            adversarial, loss_disc, loss_gen_adv, loss_fm = self._adversarial_loss(
                self.accelerator.unwrap_model(model), outputs, inputs
            )
            loss = loss + adversarial
            self._record(
                loss_disc=loss_disc,
                loss_gen_adv=loss_gen_adv,
                loss_fm=loss_fm,
                loss_mel=outputs.loss_mel,
                loss_duration=outputs.loss_duration,
            )
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._gan_counts:  # every rank logs here (the Trainer gathers `loss` just before)
            names = sorted(self._gan_sums)
            means = torch.tensor([self._gan_sums[n] / self._gan_counts[n] for n in names], device=self.args.device)
            if self.args.world_size > 1:  # the mean over ranks, like the Trainer's `loss`
                means = self.accelerator.reduce(means, reduction="mean")
            for name, value in zip(names, means.tolist()):
                logs[name] = round(value, 6)
            self._gan_sums.clear()
            self._gan_counts.clear()
        super().log(logs, start_time)

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, model, trial):
        self._saving_checkpoint = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._saving_checkpoint = False

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        vocoder = self.accelerator.unwrap_model(self.model)
        previous = vocoder.config.keep_discriminators
        vocoder.config.keep_discriminators = self._saving_checkpoint or self.keep_discriminators
        try:
            super()._save(output_dir, state_dict)
        finally:
            vocoder.config.keep_discriminators = previous

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.args.should_save and self.optimizer_discriminator is not None:
            torch.save(self.optimizer_discriminator.state_dict(), os.path.join(output_dir, DISCRIMINATOR_OPTIMIZER_NAME))
            torch.save(
                self.lr_scheduler_discriminator.state_dict(), os.path.join(output_dir, DISCRIMINATOR_SCHEDULER_NAME)
            )

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        path = os.path.join(checkpoint, DISCRIMINATOR_OPTIMIZER_NAME)
        if not os.path.isfile(path):
            raise ValueError(
                f"{checkpoint} has no {DISCRIMINATOR_OPTIMIZER_NAME}: it was not written by VocoderGanTrainer, so the "
                "discriminator state cannot be resumed"
            )
        self.optimizer_discriminator.load_state_dict(torch.load(path, map_location=self.args.device, weights_only=True))
        scheduler_path = os.path.join(checkpoint, DISCRIMINATOR_SCHEDULER_NAME)
        if os.path.isfile(scheduler_path):
            self.lr_scheduler_discriminator.load_state_dict(torch.load(scheduler_path, weights_only=True))


__all__ = ["DISCRIMINATOR_OPTIMIZER_NAME", "DISCRIMINATOR_SCHEDULER_NAME", "VocoderGanTrainer"]
