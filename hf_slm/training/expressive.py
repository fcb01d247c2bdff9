"""Fitting the expressive (pitch / style) tokenizer and building SpiRit-LM Expressive training sequences.

The codebooks are fitted with our `MiniBatchKMeans`; the LM is then trained by the ordinary pretraining path (the HF
`Trainer` with `CausalLMCollator`) on sequences the `SpeechLMProcessor` interleaves.
"""

from __future__ import annotations

import torch

from .kmeans import MiniBatchKMeans


def fit_expressive_encoder(
    tokenizer,
    waveforms,
    sampling_rate: int | None = None,
    seed: int = 0,
    max_steps: int = 100,
    batch_size: int = 4096,
):
    """
    Fit the pitch and style codebooks of an `ExpressiveEncoderModel` (in place) on a list of 1-D waveforms.

    Args:
        tokenizer (`ExpressiveEncoderModel`): its config gives the codebook sizes and rates.
        waveforms (`list`): 1-D float waveforms (tensors or arrays), at `sampling_rate`.
        sampling_rate (`int`, *optional*): their rate (default: the tokenizer's, 16 kHz); others are resampled.
        seed, max_steps, batch_size: mini-batch k-means settings.

    Returns:
        `dict` with the number of pitch / style windows fitted on and the final k-means inertias.
    """
    waves = tokenizer.prepare_waveforms(list(waveforms), sampling_rate=sampling_rate) if len(waveforms) else []
    config = tokenizer.config
    pitch_rows, style_rows = [], []
    with torch.no_grad():
        for waveform in waves:
            f0 = tokenizer.frame_f0(waveform)
            pitch_rows.append(tokenizer.pitch_features(waveform, f0))
            style_rows.append(tokenizer.style_features(waveform, f0))
    if not pitch_rows:
        raise ValueError("fit_expressive_encoder needs at least one waveform")
    pitch, style = torch.cat(pitch_rows), torch.cat(style_rows)
    for name, rows, size in (("pitch", pitch, config.num_pitch_tokens), ("style", style, config.num_style_tokens)):
        if len(rows) < size:
            raise ValueError(
                f"{len(rows)} {name} windows cannot fit num_{name}_tokens={size} centroids: give more audio or a "
                "smaller codebook"
            )
    mean, std = style.mean(0), style.std(0).clamp(min=1e-4)
    settings = {"batch_size": batch_size, "max_steps": max_steps, "seed": seed, "show_progress": False}
    pitch_km = MiniBatchKMeans(config.num_pitch_tokens, **settings).fit(pitch)
    style_km = MiniBatchKMeans(config.num_style_tokens, **settings).fit((style - mean) / std)
    with torch.no_grad():
        tokenizer.pitch_codebook.copy_(pitch_km.cluster_centers)
        tokenizer.style_codebook.copy_(style_km.cluster_centers)
        tokenizer.style_mean.copy_(mean)
        tokenizer.style_std.copy_(std)
        tokenizer.is_fitted.fill_(True)
    return {
        "pitch_windows": len(pitch),
        "style_windows": len(style),
        "pitch_inertia": float(pitch_km.inertia_),
        "style_inertia": float(style_km.inertia_),
    }


def expressive_sequences(processor, units, pitch=None, style=None, texts=None) -> list[list[int]]:
    """
    Training sequences of a SpiRit-LM Expressive LM: for each utterance `<s> [Speech] (interleaved units, pitch and
    style) </s>`; with `texts` (and a processor with a text tokenizer) also `<s> [Text] text </s>` and both
    orders of `[Text] text [Speech] ...` / `[Speech] ... [Text] text` (the cross-modal pairs STSP's text -> speech
    and speech -> text continuations rely on).
    """
    kwargs = {"pitch": pitch, "style": style, "return_tensors": None}
    batch = processor(units=units, mode="speech", **kwargs)
    sequences = [list(ids) for ids in batch["input_ids"]]
    if texts is not None:
        if len(texts) != len(sequences):
            raise ValueError(f"{len(texts)} texts for {len(sequences)} utterances")
        sequences += [list(ids) for ids in processor(text=list(texts), mode="text", return_tensors=None)["input_ids"]]
        for first in ("text", "speech"):
            pairs = processor(text=list(texts), units=units, mode="concat", first_modality=first, **kwargs)
            sequences += [list(ids) for ids in pairs["input_ids"]]
    return sequences


__all__ = ["expressive_sequences", "fit_expressive_encoder"]
