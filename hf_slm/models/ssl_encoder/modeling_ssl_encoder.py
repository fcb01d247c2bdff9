"""HuBERT masked prediction (Hsu et al. 2021) around transformers' `HubertModel`.

The encoder is `model.hubert`, a plain `HubertModel` with the same config fields and weight names, so a checkpoint
loads with `HubertModel.from_pretrained(folder)` (its head is ignored) and `save_encoder` writes a folder without the
head. Masking goes through `HubertModel(mask_time_indices=...)`: the encoder's own `masked_spec_embed` replaces the
projected conv features of masked frames, as in fairseq's HuBERT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import HubertModel, HubertPreTrainedModel
from transformers.utils import ModelOutput

from .configuration_ssl_encoder import SSLEncoderConfig


@dataclass
class SSLEncoderForPreTrainingOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*):
        `masked_loss_weight` x cross-entropy on masked frames + `unmasked_loss_weight` x cross-entropy on the other
        non-padded frames, when `labels` are given.
    logits (`torch.FloatTensor` of shape `(batch_size, num_frames, num_label_classes)`):
        Cosine similarity of each frame's projection with each label embedding, divided by `logit_temperature`.
    mask_time_indices (`torch.BoolTensor` of shape `(batch_size, num_frames)`, *optional*):
        The frames that were masked (None when nothing was).
    masked_accuracy (`torch.FloatTensor` of shape `()`, *optional*):
        Fraction of masked frames whose arg-max logit is the label (fairseq's `correct_m / count_m`).
    hidden_states (`tuple(torch.FloatTensor)`, *optional*):
        The encoder's hidden states, when `output_hidden_states=True`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask_time_indices: torch.BoolTensor | None = None
    masked_accuracy: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


def compute_span_mask(
    lengths: torch.Tensor,
    num_frames: int,
    mask_prob: float,
    mask_length: int,
    min_masks: int = 2,
    generator: torch.Generator | None = None,
) -> torch.BoolTensor:
    """HuBERT / wav2vec 2.0 span masking: in item `b` (its first `lengths[b]` frames valid), `round(mask_prob *
    lengths[b] / mask_length)` (randomly rounded, at least `min_masks`) distinct start frames, each masking
    `mask_length` frames; spans may overlap, so about `1 - exp(-mask_prob)` of the frames end up masked.
    Padded frames are never masked. Returns `[B, num_frames]` booleans on `lengths.device`."""
    mask = torch.zeros(len(lengths), num_frames, dtype=torch.bool)
    for b, length in enumerate(lengths.tolist()):
        length = min(int(length), num_frames)
        if length < 1:
            continue
        span = min(mask_length, length)
        starts_available = length - span + 1
        wanted = int(mask_prob * length / span + torch.rand((), generator=generator).item())
        count = min(max(wanted, min_masks), starts_available)
        starts = torch.randperm(starts_available, generator=generator)[:count]
        mask[b, (starts[:, None] + torch.arange(span)).flatten()] = True
    return mask.to(lengths.device)


class SSLEncoderForPreTraining(HubertPreTrainedModel):
    r"""
    A `HubertModel` (`self.hubert`) with HuBERT's masked-prediction head: a linear projection to `final_dim`, cosine
    similarity with one learned embedding per target unit, divided by `logit_temperature`, and cross-entropy against
    frame-level `labels` (k-means units of MFCCs, or of an earlier iteration's encoder).

    Inputs are what [`SpeechFeatureExtractor`] returns: `input_values` [B, samples] (right-padded) and
    `attention_mask` [B, samples]. `labels` [B, frames] hold one unit per encoder frame (-100 at padding); with
    labels (or in training mode) the model draws span masks (`compute_span_mask`, HuBERT's `mask_time_prob` /
    `mask_time_length`) unless `mask_time_indices` is given. In eval mode without labels nothing is masked and the
    logits predict every frame's unit.

    Example:

    ```python
    >>> import torch
    >>> from hf_slm import SSLEncoderConfig, SSLEncoderForPreTraining
    >>> config = SSLEncoderConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    ...                           conv_dim=(16,) * 7, num_label_classes=10)
    >>> model = SSLEncoderForPreTraining(config)
    >>> waves = torch.randn(2, 16000)
    >>> labels = torch.randint(0, 10, (2, 49))
    >>> out = model(waves, labels=labels)
    >>> out.logits.shape, out.loss.ndim
    (torch.Size([2, 49, 10]), 0)

    ```
    """

    config_class = SSLEncoderConfig
    config: SSLEncoderConfig
    base_model_prefix = "hubert"

    def __init__(self, config: SSLEncoderConfig):
        super().__init__(config)
        self.hubert = HubertModel(config)
        self.final_proj = nn.Linear(config.hidden_size, config.final_dim)
        self.label_embeddings = nn.Embedding(config.num_label_classes, config.final_dim)
        self.post_init()

    def num_frames(self, attention_mask: torch.Tensor | None, input_values: torch.Tensor) -> torch.Tensor:
        """Valid encoder frames of each item ([B] long)."""
        samples = attention_mask.sum(-1) if attention_mask is not None else torch.full(
            (input_values.shape[0],), input_values.shape[-1], device=input_values.device
        )
        return self._get_feat_extract_output_lengths(samples).long().clamp_min(0)

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        mask_time_indices: torch.BoolTensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> SSLEncoderForPreTrainingOutput:
        total_frames = int(self._get_feat_extract_output_lengths(input_values.shape[-1]))
        lengths = self.num_frames(attention_mask, input_values)
        if labels is not None:
            if labels.dim() != 2 or labels.shape != (input_values.shape[0], total_frames):
                raise ValueError(
                    f"labels must be [batch, encoder frames] = [{input_values.shape[0]}, {total_frames}] for "
                    f"{input_values.shape[-1]} samples, got {tuple(labels.shape)}: targets must come at the "
                    f"encoder's frame rate (one per {self.config.hop_length} samples, receptive field as its conv stack)"
                )
            if labels.numel() and int(labels.max()) >= self.config.num_label_classes:
                raise ValueError(
                    f"label {int(labels.max())} is out of range for num_label_classes={self.config.num_label_classes}"
                )
        if mask_time_indices is None and (labels is not None or self.training):
            mask_time_indices = compute_span_mask(
                lengths, total_frames, self.config.mask_time_prob, self.config.mask_time_length,
                self.config.mask_time_min_masks,
            )
        outputs = self.hubert(
            input_values,
            attention_mask=attention_mask,
            mask_time_indices=mask_time_indices,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        projected = F.normalize(self.final_proj(outputs.last_hidden_state).float(), dim=-1)
        targets = F.normalize(self.label_embeddings.weight.float(), dim=-1)
        logits = projected @ targets.T / self.config.logit_temperature

        loss = accuracy = None
        if labels is not None:
            valid = (labels >= 0) & (torch.arange(total_frames, device=labels.device) < lengths[:, None])
            masked = valid & mask_time_indices if mask_time_indices is not None else torch.zeros_like(valid)
            loss = logits.new_zeros(())
            weights = ((self.config.masked_loss_weight, masked), (self.config.unmasked_loss_weight, valid & ~masked))
            for weight, frames in weights:
                if weight > 0 and frames.any():
                    loss = loss + weight * F.cross_entropy(logits[frames], labels[frames])
            if masked.any():
                accuracy = (logits[masked].argmax(-1) == labels[masked]).float().mean()
        return SSLEncoderForPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask_time_indices=mask_time_indices,
            masked_accuracy=accuracy,
            hidden_states=outputs.hidden_states,
        )

    def encoder(self) -> HubertModel:
        """A standalone `HubertModel` with this model's encoder weights and `config.encoder_config()`."""
        encoder = HubertModel(self.config.encoder_config())
        encoder.load_state_dict(self.hubert.state_dict())
        return encoder.to(self.device).eval()

    def save_encoder(self, save_directory, **kwargs) -> None:
        """Write the encoder as a plain `HubertModel` folder (`HubertModel.from_pretrained` / `AutoModel` load it,
        and `UnitEncoderModel.from_ssl_pretrained` / `hf-slm fit-tokenizer --frontend ssl` take it)."""
        self.encoder().save_pretrained(save_directory, **kwargs)


__all__ = ["SSLEncoderForPreTraining", "SSLEncoderForPreTrainingOutput", "compute_span_mask"]
