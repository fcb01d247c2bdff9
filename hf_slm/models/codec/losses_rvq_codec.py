"""The losses `RVQCodecModel.forward` returns when given `labels`: log-mel L1 on the valid frames and SpeechTokenizer's
semantic distillation (the adversarial terms are the unit vocoder's, added by `hf_slm.training.CodecGanTrainer`)."""

from __future__ import annotations

import torch
from torch import nn

from .modeling_codec import lengths_to_mask


def align_with_labels(waveform, waveform_lengths, labels, labels_mask=None):
    """Crop generated and target audio to a common length, zeroed past each item's valid length.

    Returns `(real [B, L], generated [B, L], lengths [B])`: what the mel loss and the discriminators compare.
    """
    if not torch.is_tensor(labels) or labels.dim() != 2 or labels.shape[0] != waveform.shape[0]:
        shape = tuple(labels.shape) if torch.is_tensor(labels) else type(labels).__name__
        raise ValueError(f"labels must be target waveforms [batch={waveform.shape[0]}, samples], got {shape}")
    if labels_mask is None:
        label_lengths = torch.full((labels.shape[0],), labels.shape[1], dtype=torch.long, device=labels.device)
    else:
        if labels_mask.shape != labels.shape:
            raise ValueError(f"labels_mask shape {tuple(labels_mask.shape)} != labels shape {tuple(labels.shape)}")
        label_lengths = labels_mask.long().sum(1)
    lengths = torch.minimum(label_lengths.to(waveform.device), waveform_lengths)
    common = min(labels.shape[1], waveform.shape[1])
    keep = lengths_to_mask(lengths, common).to(waveform.dtype)
    return labels[:, :common].to(waveform) * keep, waveform[:, :common] * keep, lengths


def mel_l1_loss(real, generated, mel_transform, lengths):
    """Mean |log-mel(real) - log-mel(generated)| over the frames centred inside each item."""
    diff = torch.abs(mel_transform(real) - mel_transform(generated))
    centres = torch.arange(diff.shape[1], device=diff.device) * mel_transform.hop_length
    frames = (centres[None] < lengths[:, None]).to(diff.dtype)
    return (diff * frames[..., None]).sum() / (frames.sum() * diff.shape[-1]).clamp(min=1)


def semantic_distillation_loss(student, teacher, mask):
    """SpeechTokenizer's "D-axis" distillation loss (the corrected form of its eq. 3, SpeechTokenizer issue #2).

    For every feature dimension d, the cosine similarity between the student's and the teacher's time series of
    that dimension (over the valid frames), then `-log sigmoid(cos)` averaged over dimensions and batch. Student
    and teacher are [B, T, D] on the same frames; `mask` [B, T] marks frames both have.
    """
    keep = mask[..., None].to(student.dtype)
    cosine = nn.functional.cosine_similarity(student * keep, teacher.to(student.dtype) * keep, dim=1, eps=1e-8)
    return -nn.functional.logsigmoid(cosine).mean()


__all__ = ["align_with_labels", "mel_l1_loss", "semantic_distillation_loss"]
