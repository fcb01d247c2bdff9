"""Input-enhanced synthesis: units -> log-mel (a small conv network) -> waveform (Griffin-Lim, or a learned
inverse-STFT head).

A unit-to-mel model is a plain regression (L1 on log-mel), so it trains with the stock HF `Trainer` in minutes on
a CPU; Griffin-Lim then needs no training at all, but it leaves the phase to chance and most frames unvoiced. The
inverse-STFT head (`waveform_head="istft"`, Vocos-style) predicts magnitude and phase per 10 ms frame from the same
states: it runs at the mel frame rate, not the sample rate, so unlike HiFi-GAN's upsampling stack it trains as a GAN
on a CPU in minutes per thousand steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import initialization as init

from .audio_unit_vocoder import LOG_MEL_FLOOR, LogMelSpectrogram, griffin_lim_from_mel, least_squares_magnitude
from .configuration_unit_vocoder import UnitMelVocoderConfig
from .discriminators_unit_vocoder import HifiGanDiscriminator
from .losses_unit_vocoder import mel_l1_loss
from .modeling_unit_vocoder import (
    GanGeneratorMixin,
    UnitVocoderOutput,
    UnitVocoderPreTrainedModel,
    expand_by_durations,
    is_tracing,
    label_lengths,
    prepare_durations,
    prepare_units,
    sample_mask,
)


class UnitMelConvBlock(nn.Module):
    """Pre-norm residual block: LayerNorm -> Conv1d -> GELU -> dropout, padding zeroed before the conv so that a
    padded batch gives each item the same result as running it alone."""

    def __init__(self, hidden_size, kernel_size, dropout):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        self.conv = nn.Conv1d(hidden_size, hidden_size, kernel_size, padding=kernel_size // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden, mask):
        keep = mask[..., None].to(hidden.dtype)
        residual = (self.norm(hidden) * keep).transpose(1, 2)
        residual = self.dropout(nn.functional.gelu(self.conv(residual).transpose(1, 2)))
        return (hidden + residual) * keep


class UnitMelVocoder(GanGeneratorMixin, UnitVocoderPreTrainedModel):
    r"""
    Units [B, T] -> log-mel [B, T * mel_frames_per_unit, num_mel_bins] -> waveform [B, T * hop_length] (Griffin-Lim,
    or the inverse-STFT head with `config.waveform_head="istft"`).

    Same call signature and output as [`UnitHifiGanVocoder`]. With `labels` (target waveforms [B, S] at
    `sampling_rate`, or target log-mels [B, frames, num_mel_bins] in [`LogMelSpectrogram`]'s convention) it returns
    the masked L1 log-mel loss, so the plain `Trainer` trains it. Griffin-Lim is not differentiable and is skipped in
    training mode (`waveform=None`) unless `return_waveform=True`. The inverse-STFT head always returns its
    (differentiable) waveform, and with target waveforms adds `lambda_mel` x the log-mel L1 of that waveform to the
    loss: the non-adversarial part, to which [`VocoderGanTrainer`] adds HiFi-GAN's adversarial and feature-matching
    terms (`setup_discriminators()`; `save_pretrained` writes the generator only).

    Example:

    ```python
    >>> import torch
    >>> from hf_slm import UnitMelVocoder, UnitMelVocoderConfig
    >>> vocoder = UnitMelVocoder(UnitMelVocoderConfig(hidden_size=32, griffin_lim_iters=4)).eval()
    >>> out = vocoder(torch.tensor([[3, 3, 7, 9]]))
    >>> out.mel.shape, out.waveform.shape
    (torch.Size([1, 8, 80]), torch.Size([1, 1280]))
    ```
    """

    config_class = UnitMelVocoderConfig
    base_model_prefix = "unit_mel_vocoder"

    def __init__(self, config: UnitMelVocoderConfig):
        super().__init__(config)
        self.unit_embedding = nn.Embedding(config.num_units, config.hidden_size)
        self.unit_layers = nn.ModuleList(
            UnitMelConvBlock(config.hidden_size, config.kernel_size, config.dropout)
            for _ in range(config.num_unit_layers)
        )
        # Which of the `mel_frames_per_unit` frames of a unit a mel frame is: lets the frames of one unit differ.
        self.frame_position_embedding = nn.Embedding(config.mel_frames_per_unit, config.hidden_size)
        self.mel_layers = nn.ModuleList(
            UnitMelConvBlock(config.hidden_size, config.kernel_size, config.dropout)
            for _ in range(config.num_mel_layers)
        )
        self.final_norm = nn.LayerNorm(config.hidden_size)
        self.mel_head = nn.Linear(config.hidden_size, config.num_mel_bins)
        istft = getattr(config, "waveform_head", "griffin_lim") == "istft"
        if istft:
            self.istft_layers = nn.ModuleList(
                UnitMelConvBlock(config.hidden_size, config.kernel_size, config.dropout)
                for _ in range(config.istft_num_layers)
            )
            self.istft_norm = nn.LayerNorm(config.hidden_size)
            # per frame: log-magnitude correction and phase of the n_fft // 2 + 1 bins
            self.istft_head = nn.Linear(config.hidden_size, 2 * (config.n_fft // 2 + 1))
        keep = istft and getattr(config, "keep_discriminators", False)
        self.discriminator = HifiGanDiscriminator.from_config(config) if keep else None
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, UnitMelVocoder):
            init.normal_(module.frame_position_embedding.weight, mean=0.0, std=0.1)
            if getattr(module, "istft_head", None) is not None:  # start from the least-squares magnitude
                init.zeros_(module.istft_head.weight[: module.istft_head.out_features // 2])

    def mel_transform(self, device=None) -> LogMelSpectrogram:
        """The analysis log-mel that targets are computed with and that Griffin-Lim inverts."""
        config = self.config
        return self._mel_transform(
            device or self.unit_embedding.weight.device,
            sampling_rate=config.sampling_rate,
            n_fft=config.n_fft,
            hop_length=config.mel_hop_length,
            win_length=config.win_length,
            n_mels=config.num_mel_bins,
            f_min=config.mel_fmin,
            f_max=config.mel_fmax,
        )

    # ------------------------------------------------------------------ units -> mel
    def units_to_mel(self, input_ids, attention_mask=None, durations=None):
        """Predict log-mels: returns `(log_mel [B, frames, num_mel_bins], mel_lengths [B], durations or None)`.

        Frames past `mel_lengths` hold log(1e-5) (silence). `durations` [B, T] repeat units first (deduplicated
        units with their run lengths).
        """
        log_mel, _, mask, durations = self._mel_states(input_ids, attention_mask, durations)
        return log_mel, mask.long().sum(1), durations

    def _mel_states(self, input_ids, attention_mask=None, durations=None):
        """`(log_mel, mel-rate states [B, F, hidden], frame mask [B, F], durations)`: `units_to_mel` plus the states
        the inverse-STFT head reads."""
        config = self.config
        if not is_tracing():
            self.validate_inputs(input_ids, attention_mask, durations)
        ids, mask = prepare_units(input_ids, attention_mask)
        hidden = self.unit_embedding(ids) * mask[..., None].to(self.unit_embedding.weight.dtype)
        if durations is not None:
            durations = prepare_durations(durations, ids.shape, mask)[1]
            hidden, mask = expand_by_durations(hidden, durations)
        for layer in self.unit_layers:
            hidden = layer(hidden, mask)
        factor = config.mel_frames_per_unit
        hidden = hidden.repeat_interleave(factor, dim=1)
        mask = mask.repeat_interleave(factor, dim=1)
        position = torch.arange(factor, device=hidden.device).repeat(hidden.shape[1] // factor)
        hidden = (hidden + self.frame_position_embedding(position)[None]) * mask[..., None].to(hidden.dtype)
        for layer in self.mel_layers:
            hidden = layer(hidden, mask)
        log_mel = self.mel_head(self.final_norm(hidden)) * config.log_mel_std + config.log_mel_mean
        silence = torch.full_like(log_mel, torch.log(torch.tensor(LOG_MEL_FLOOR)).item())
        log_mel = torch.where(mask[..., None], log_mel, silence)
        return log_mel, hidden, mask, durations

    # ------------------------------------------------------------------ learned inverse STFT
    def with_istft_head(self, **config_overrides) -> UnitMelVocoder:
        """A new vocoder with this one's units -> mel network and a fresh inverse-STFT head (`waveform_head="istft"`,
        whose magnitude starts as the least-squares inverse of the predicted mel): the warm start of GAN training
        from a mel vocoder already trained with the plain `Trainer`. `config_overrides` set other config fields
        (e.g. `istft_num_layers`, smaller discriminators)."""
        values = self.config.to_dict()
        values.update(waveform_head="istft", **config_overrides)
        values["keep_discriminators"] = False
        model = type(self)(type(self.config).from_dict(values))
        trunk = {k: v for k, v in self.state_dict().items() if not k.startswith(("istft_", "discriminator."))}
        target = model.state_dict()
        changed = sorted(k for k, v in trunk.items() if k not in target or target[k].shape != v.shape)
        missing = sorted(k for k in target if k not in trunk and not k.startswith(("istft_", "discriminator.")))
        if changed or missing:
            raise ValueError(
                f"config_overrides {sorted(config_overrides)} change the units -> mel network this head is added to "
                f"(e.g. {(changed + missing)[0]!r}); override only the head's and the GAN's fields"
            )
        model.load_state_dict(trunk, strict=False)
        reference = self.unit_embedding.weight
        return model.to(device=reference.device, dtype=reference.dtype).train(self.training)

    def _istft_waveform(self, hidden, log_mel, mask):
        """The inverse-STFT head: mel-rate states [B, F, H] and predicted log-mel -> waveform [B, F * mel_hop_length].

        Magnitude: the least-squares inverse of the predicted mel (what Griffin-Lim starts from) times exp(a learned
        correction); phase: learned, relative to a pulse at the frame's centre; `torch.istft` inverts them (each
        padded item over its own frames in eager mode, so a padded batch equals its items alone; a traced model runs
        the batch as one, exact for unpadded batches, as `mel_to_waveform`).
        """
        config = self.config
        n_freqs, hop = config.n_fft // 2 + 1, config.mel_hop_length
        for layer in self.istft_layers:
            hidden = layer(hidden, mask)
        correction, phase = self.istft_head(self.istft_norm(hidden)).float().split(n_freqs, dim=-1)
        prior = least_squares_magnitude(log_mel, config.sampling_rate, config.n_fft, config.mel_fmin,
                                        config.mel_fmax).transpose(1, 2)  # [B, F, n_freqs]  # fmt: skip
        log_magnitude = torch.log(torch.clamp(prior, min=LOG_MEL_FLOOR)) + correction
        magnitude = torch.exp(torch.clamp(log_magnitude, max=math.log(1e2)))
        # phase 0 = a pulse at the frame's centre, where the window is (not at sample 0, where it is zero): the head
        # starts as a 100 Hz pulse train through the mel's envelope instead of windowed-away energy. The centre
        # shift of n_fft / 2 samples is a factor (-1)^k on bin k.
        sign = torch.where(torch.arange(n_freqs, device=phase.device) % 2 == 0, 1.0, -1.0)
        spectrum = (torch.polar(magnitude, phase) * sign).transpose(1, 2)  # [B, n_freqs, F]
        num_frames, frame_lengths = mask.shape[1], mask.long().sum(1)
        window = torch.hann_window(config.win_length, device=spectrum.device)  # the analysis window of `mel_transform`
        if not is_tracing() and not bool(mask.all()):
            # torch.istft divides by the window envelope of all the frames it is given, padding included: a padded
            # item runs alone over its own frames, so a padded batch equals its items alone
            waveform = spectrum.new_zeros(spectrum.shape[0], num_frames * hop, dtype=magnitude.dtype)
            for i, length in enumerate(frame_lengths.tolist()):
                waveform[i, : length * hop] = torch.istft(
                    spectrum[i, :, :length], config.n_fft, hop, config.win_length, window, center=True,
                    length=length * hop,
                )  # fmt: skip
        else:
            waveform = torch.istft(spectrum, config.n_fft, hop, config.win_length, window, center=True,
                                   length=num_frames * hop)  # fmt: skip
        return waveform * sample_mask(frame_lengths * hop, waveform.shape[1]).to(waveform.dtype)

    # ------------------------------------------------------------------ mel -> waveform
    @torch.no_grad()
    def mel_to_waveform(self, log_mel, mel_lengths=None, n_iter=None):
        """Griffin-Lim: returns `(waveform [B, frames * mel_hop_length], waveform_lengths [B])`, silent past length.

        Griffin-Lim's STFT frames overlap the padding and its iterations spread it over the whole item, so in eager
        mode each padded item runs alone over its own `mel_lengths` frames (the waveform of a padded batch is each
        item's own). A traced model (`torch.export`, fullgraph compile) cannot read the lengths and runs the batch
        as one: exact for unpadded batches.
        """
        config = self.config
        if log_mel.dim() == 2:
            log_mel = log_mel[None]
        if log_mel.dim() != 3 or log_mel.shape[-1] != config.num_mel_bins:
            raise ValueError(f"log_mel must be [batch, frames, {config.num_mel_bins}], got {tuple(log_mel.shape)}")
        if mel_lengths is None:
            mel_lengths = torch.full((log_mel.shape[0],), log_mel.shape[1], dtype=torch.long, device=log_mel.device)
        if not is_tracing() and bool((mel_lengths < log_mel.shape[1]).any()):
            num_samples = log_mel.shape[1] * config.mel_hop_length
            waveforms = [
                self.mel_to_waveform(item[None, :length], n_iter=n_iter)[0]
                for item, length in zip(log_mel, mel_lengths.tolist())
            ]
            waveform = torch.cat([nn.functional.pad(w, (0, num_samples - w.shape[1])) for w in waveforms])
            return waveform, mel_lengths.to(waveform.device) * config.mel_hop_length
        # One extra (repeated) frame so that the centred frames cover all frames * hop samples.
        padded = torch.cat([log_mel, log_mel[:, -1:]], dim=1)
        waveform = griffin_lim_from_mel(
            padded,
            sampling_rate=config.sampling_rate,
            n_fft=config.n_fft,
            hop_length=config.mel_hop_length,
            win_length=config.win_length,
            f_min=config.mel_fmin,
            f_max=config.mel_fmax,
            n_iter=n_iter or config.griffin_lim_iters,
            momentum=config.griffin_lim_momentum,
            length=log_mel.shape[1] * config.mel_hop_length,
        )
        lengths = mel_lengths.to(waveform.device) * config.mel_hop_length
        return waveform * sample_mask(lengths, waveform.shape[1]), lengths

    # ------------------------------------------------------------------ targets
    def _target_log_mel(self, labels, labels_mask, batch, num_frames):
        """Labels (waveform [B, S] or log-mel [B, F, n_mels]) -> (log-mel [B, num_frames, n_mels], valid [B, frames])."""
        config = self.config
        if not torch.is_tensor(labels) or labels.shape[0] != batch:
            shape = tuple(labels.shape) if torch.is_tensor(labels) else type(labels).__name__
            raise ValueError(f"labels must have batch size {batch} (one target per unit sequence), got {shape}")
        if labels.dim() == 2:
            lengths = label_lengths(labels, labels_mask)
            transform = self.mel_transform(labels.device)
            waveform = labels.float() * sample_mask(lengths, labels.shape[1])
            target = transform(waveform)
            centres = torch.arange(target.shape[1], device=labels.device) * config.mel_hop_length
            valid = centres[None] < lengths[:, None]
        elif labels.dim() == 3 and labels.shape[-1] == config.num_mel_bins:
            target = labels.float()
            valid = sample_mask(label_lengths(labels, labels_mask), target.shape[1])
        else:
            raise ValueError(
                f"labels must be target waveforms [batch, samples] or log-mels [batch, frames, "
                f"{config.num_mel_bins}], got shape {tuple(labels.shape)}"
            )
        if target.shape[1] < num_frames:
            pad = num_frames - target.shape[1]
            target = nn.functional.pad(target, (0, 0, 0, pad), value=float(torch.log(torch.tensor(LOG_MEL_FLOOR))))
            valid = nn.functional.pad(valid, (0, pad), value=False)
        return target[:, :num_frames], valid[:, :num_frames]

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        durations: torch.LongTensor | None = None,
        speaker_id: torch.LongTensor | None = None,
        f0: torch.FloatTensor | None = None,
        labels: torch.FloatTensor | None = None,
        labels_mask: torch.Tensor | None = None,
        return_waveform: bool | None = None,
        return_dict: bool | None = None,
    ) -> UnitVocoderOutput | tuple:
        r"""
        Args:
            input_ids, attention_mask, durations: as [`UnitHifiGanVocoder.forward`].
            speaker_id, f0: accepted for a common signature; this model has no speaker/F0 conditioning and raises
                if they are given.
            labels (`torch.FloatTensor`, *optional*): target waveforms `(batch, samples)` aligned with the units, or
                target log-mels `(batch, frames, num_mel_bins)`.
            labels_mask (`torch.Tensor`, *optional*): valid samples (or frames) of `labels`.
            return_waveform (`bool`, *optional*): synthesise the waveform; defaults to always for the inverse-STFT
                head (cheap, and its loss needs it), else `not self.training and labels is None` (evaluation with
                labels only needs the mel loss, and Griffin-Lim is the slow part).
        """
        if speaker_id is not None or f0 is not None:
            raise ValueError("UnitMelVocoder has no speaker or F0 conditioning; use UnitHifiGanVocoder for that")
        return_dict = getattr(self.config, "return_dict", True) if return_dict is None else return_dict
        log_mel, hidden, mask, durations = self._mel_states(input_ids, attention_mask, durations)
        mel_lengths = mask.long().sum(1)
        istft = getattr(self.config, "waveform_head", "griffin_lim") == "istft"

        loss = None
        if labels is not None:
            target, valid = self._target_log_mel(labels, labels_mask, log_mel.shape[0], log_mel.shape[1])
            valid = valid & sample_mask(mel_lengths, log_mel.shape[1])
            if not valid.any():
                raise ValueError("labels and units share no valid frame: check labels_mask / attention_mask")
            diff = torch.abs(log_mel.float() - target) * valid[..., None]
            loss = diff.sum() / (valid.sum() * log_mel.shape[-1])
        loss_mel = None if loss is None else loss.detach()

        waveform_lengths = mel_lengths * self.config.mel_hop_length
        waveform = None
        if return_waveform is None:
            return_waveform = istft or (not self.training and labels is None)
        if return_waveform and istft:
            waveform = self._istft_waveform(hidden, log_mel, mask)
            if labels is not None and labels.dim() == 2:  # target waveforms: the mel L1 of the generated audio
                real, generated, lengths = self.align_with_labels(waveform, waveform_lengths, labels, labels_mask)
                loss_mel = mel_l1_loss(real, generated, self.mel_transform(waveform.device), lengths=lengths)
                loss = loss + self.config.lambda_mel * loss_mel
                loss_mel = loss_mel.detach()
        elif return_waveform:
            waveform, waveform_lengths = self.mel_to_waveform(log_mel.detach(), mel_lengths)

        output = UnitVocoderOutput(
            loss=loss,
            waveform=waveform,
            waveform_lengths=waveform_lengths,
            mel=log_mel,
            mel_lengths=mel_lengths,
            loss_mel=loss_mel,
            durations=durations,
        )
        return output if return_dict else output.to_tuple()


__all__ = ["UnitMelConvBlock", "UnitMelVocoder"]
