"""HiFi-GAN training objectives, as written in the SpeechLM survey (eq. 6-9) and HiFi-GAN (Kong et al., 2020).

Notation: x real audio, G(s) generated audio, D_k the k-th sub-discriminator (5 period + 3 scale ones), D_k^i its
i-th feature map with N_i elements. Every sub-discriminator contributes one term; expectations are batch means.

- eq. 6, generator adversarial (least squares):  L_adv(G; D) = sum_k E[(D_k(G(s)) - 1)^2]
- eq. 7, discriminator (least squares):          L_adv(D; G) = sum_k E[(D_k(x) - 1)^2 + D_k(G(s))^2]
- eq. 8, mel:                                    L_mel(G)    = E[ || phi(x) - phi(G(s)) ||_1 ]  (phi = log-mel)
- eq. 9, feature matching:                       L_fm(G; D)  = sum_k E[ sum_i 1/N_i || D_k^i(x) - D_k^i(G(s)) ||_1 ]

The weights (lambda_fm = 2, lambda_mel = 45) are applied by the caller: L_G = L_adv(G; D) + 2 L_fm + 45 L_mel.
"""

from __future__ import annotations

import torch

from .audio_unit_vocoder import LogMelSpectrogram


def _check_scores(name, scores):
    if not isinstance(scores, (list, tuple)) or not scores:
        raise ValueError(f"{name} must be a non-empty list of score tensors (one per sub-discriminator)")


def discriminator_loss(real_scores, generated_scores) -> torch.Tensor:
    """Eq. 7: sum over sub-discriminators of mean((D(x) - 1)^2) + mean(D(G(s))^2)."""
    _check_scores("real_scores", real_scores)
    _check_scores("generated_scores", generated_scores)
    if len(real_scores) != len(generated_scores):
        raise ValueError(f"got {len(real_scores)} real and {len(generated_scores)} generated score tensors")
    loss = 0.0
    for real, fake in zip(real_scores, generated_scores):
        loss = loss + torch.mean((real.float() - 1) ** 2) + torch.mean(fake.float() ** 2)
    return loss


def generator_adversarial_loss(generated_scores) -> torch.Tensor:
    """Eq. 6: sum over sub-discriminators of mean((D(G(s)) - 1)^2)."""
    _check_scores("generated_scores", generated_scores)
    loss = 0.0
    for fake in generated_scores:
        loss = loss + torch.mean((fake.float() - 1) ** 2)
    return loss


def feature_matching_loss(real_features, generated_features) -> torch.Tensor:
    """Eq. 9: sum over sub-discriminators and layers of mean |D^i(x) - D^i(G(s))| (the mean is the 1/N_i L1 norm).

    The real features are detached: feature matching trains the generator only.
    """
    _check_scores("real_features", real_features)
    if len(real_features) != len(generated_features):
        raise ValueError(f"got {len(real_features)} real and {len(generated_features)} generated feature lists")
    loss = 0.0
    for real_maps, fake_maps in zip(real_features, generated_features):
        if len(real_maps) != len(fake_maps):
            raise ValueError(f"feature lists differ in depth: {len(real_maps)} vs {len(fake_maps)}")
        for real, fake in zip(real_maps, fake_maps):
            if real.shape != fake.shape:
                raise ValueError(f"feature maps differ in shape: {tuple(real.shape)} vs {tuple(fake.shape)}")
            loss = loss + torch.mean(torch.abs(real.detach().float() - fake.float()))
    return loss


def mel_l1_loss(
    real_waveform: torch.Tensor,
    generated_waveform: torch.Tensor,
    mel_transform: LogMelSpectrogram | None = None,
    lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 8: mean absolute difference of the log-mel spectrograms of real and generated audio ([B, S] each).

    `mel_transform` defaults to HiFi-GAN's loss mel (16 kHz, n_fft 1024, hop 256, 80 bins). With `lengths` [B]
    (valid samples per item), only frames centred inside each item count, so padding does not dilute the loss.
    """
    if real_waveform.shape != generated_waveform.shape:
        raise ValueError(
            f"real and generated waveforms differ in shape: {tuple(real_waveform.shape)} vs "
            f"{tuple(generated_waveform.shape)}"
        )
    if mel_transform is None:
        mel_transform = LogMelSpectrogram().to(real_waveform.device)
    real_mel = mel_transform(real_waveform)
    fake_mel = mel_transform(generated_waveform)
    diff = torch.abs(real_mel - fake_mel)  # [B, frames, n_mels]
    if lengths is None:
        return diff.mean()
    lengths = torch.as_tensor(lengths, device=diff.device)
    if lengths.shape != (diff.shape[0],):
        raise ValueError(f"lengths must be [batch]={diff.shape[0]}, got shape {tuple(lengths.shape)}")
    centres = torch.arange(diff.shape[1], device=diff.device) * mel_transform.hop_length
    frame_mask = (centres[None] < lengths[:, None]).to(diff.dtype)  # [B, frames]
    denominator = frame_mask.sum() * diff.shape[-1]
    if denominator == 0:
        raise ValueError("mel_l1_loss got only empty items (all lengths are 0)")
    return (diff * frame_mask[..., None]).sum() / denominator


__all__ = ["discriminator_loss", "feature_matching_loss", "generator_adversarial_loss", "mel_l1_loss"]
