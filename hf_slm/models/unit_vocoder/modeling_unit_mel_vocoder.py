"""Input-enhanced synthesis: units -> log-mel (a small conv network) -> waveform (Griffin-Lim, no trained vocoder).

A unit-to-mel model is a plain regression (L1 on log-mel), so it trains with the stock HF `Trainer` in minutes on
a CPU; Griffin-Lim then needs no training at all. The sound is buzzier than a GAN vocoder's, which is the price of
a vocoder that ships without GPU training.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init

from .audio_unit_vocoder import LOG_MEL_FLOOR, LogMelSpectrogram, griffin_lim_from_mel
from .configuration_unit_vocoder import UnitMelVocoderConfig
from .modeling_unit_vocoder import (
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


class UnitMelVocoder(UnitVocoderPreTrainedModel):
    r"""
    Units [B, T] -> log-mel [B, T * mel_frames_per_unit, num_mel_bins] -> waveform [B, T * hop_length] (Griffin-Lim).

    Same call signature and output as [`UnitHifiGanVocoder`]. With `labels` (target waveforms [B, S] at
    `sampling_rate`, or target log-mels [B, frames, num_mel_bins] in [`LogMelSpectrogram`]'s convention) it returns
    the masked L1 log-mel loss, so the plain `Trainer` trains it. Griffin-Lim is not differentiable and is skipped in
    training mode (`waveform=None`) unless `return_waveform=True`.

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
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, UnitMelVocoder):
            init.normal_(module.frame_position_embedding.weight, mean=0.0, std=0.1)

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
        return log_mel, mask.long().sum(1), durations

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
            return_waveform (`bool`, *optional*): run Griffin-Lim; defaults to `not self.training and labels is None`
                (evaluation with labels only needs the mel loss, and Griffin-Lim is the slow part).
        """
        if speaker_id is not None or f0 is not None:
            raise ValueError("UnitMelVocoder has no speaker or F0 conditioning; use UnitHifiGanVocoder for that")
        return_dict = getattr(self.config, "return_dict", True) if return_dict is None else return_dict
        log_mel, mel_lengths, durations = self.units_to_mel(input_ids, attention_mask, durations)

        loss = None
        if labels is not None:
            target, valid = self._target_log_mel(labels, labels_mask, log_mel.shape[0], log_mel.shape[1])
            valid = valid & sample_mask(mel_lengths, log_mel.shape[1])
            if not valid.any():
                raise ValueError("labels and units share no valid frame: check labels_mask / attention_mask")
            diff = torch.abs(log_mel.float() - target) * valid[..., None]
            loss = diff.sum() / (valid.sum() * log_mel.shape[-1])

        waveform_lengths = mel_lengths * self.config.mel_hop_length
        waveform = None
        if return_waveform is None:
            return_waveform = not self.training and labels is None
        if return_waveform:
            waveform, waveform_lengths = self.mel_to_waveform(log_mel.detach(), mel_lengths)

        output = UnitVocoderOutput(
            loss=loss,
            waveform=waveform,
            waveform_lengths=waveform_lengths,
            mel=log_mel,
            mel_lengths=mel_lengths,
            loss_mel=None if loss is None else loss.detach(),
            durations=durations,
        )
        return output if return_dict else output.to_tuple()


__all__ = ["UnitMelConvBlock", "UnitMelVocoder"]
