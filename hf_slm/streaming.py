"""Chunked (streaming) vocoding: units or codec codes -> a generator of audio chunks.

Every chunk of `chunk_units` units is synthesised together with `overlap_units` units of left context and
`lookahead_units` of right context, and only the samples of its own units are kept (optionally cross-faded with the
next chunk over `crossfade_samples` taken from the right context). For a vocoder whose receptive field fits in the
context (convolutional HiFi-GAN, `UnitMelVocoder` with its inverse-STFT head, SEANet codec decoders), the
concatenated chunks equal full-utterance synthesis up to float rounding; `receptive_field` measures how much context
that takes. Griffin-Lim (`UnitMelVocoder`'s default head) reconstructs phase iteratively over the whole input, so
its chunks agree with the full synthesis in magnitude only: use a cross-fade there (docs/codec.md has the measured
tolerance).

Works with any vocoder called as the pipelines call theirs: `vocoder(input_ids=[1, T] units or [1, Q, T] codes,
attention_mask=[1, T], durations=None | [1, T])` returning `.waveform` / `.waveform_lengths` (and `.durations` when
it expanded units), with `config.hop_length` samples per unit frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch


def _check_vocoder(vocoder) -> int:
    hop = getattr(getattr(vocoder, "config", None), "hop_length", None)
    if not isinstance(hop, int) or hop < 1:
        raise ValueError(
            f"{type(vocoder).__name__} has no config.hop_length (samples per unit frame): not a unit vocoder or codec"
        )
    return hop


def _check_units(units, durations):
    units = torch.as_tensor(units)
    if units.is_floating_point():
        raise ValueError(f"units must be integer ids, got {units.dtype}")
    if units.dim() not in (1, 2):
        raise ValueError(
            f"units must be one utterance: [frames] units or [num_codebooks, frames] codec codes, got shape "
            f"{tuple(units.shape)}"
        )
    if units.shape[-1] == 0:
        raise ValueError("cannot vocode an empty unit sequence")
    if durations is not None:
        durations = torch.as_tensor(durations).long().reshape(-1)
        if units.dim() != 1 or durations.shape[0] != units.shape[0]:
            raise ValueError(
                f"durations must be [frames] = [{units.shape[-1]}] for 1-D units, got {tuple(durations.shape)}"
            )
        if (durations < 0).any():
            raise ValueError("durations must be >= 0")
    return units.long(), durations


def stream_vocode(
    vocoder,
    units,
    chunk_units: int = 50,
    overlap_units: int = 8,
    lookahead_units: int | None = None,
    crossfade_samples: int = 0,
    durations=None,
    **vocoder_kwargs,
) -> Iterator[torch.Tensor]:
    """Yield the waveform of `units` chunk by chunk (1-D float CPU tensors at `vocoder.config.sampling_rate`).

    Args:
        vocoder: a unit vocoder (`UnitHifiGanVocoder`, `UnitMelVocoder`) or codec (`RVQCodecModel`,
            `MelRVQCodecModel`, `CodecModel`) in eval mode.
        units: one utterance: `[frames]` unit ids, or `[num_codebooks, frames]` codec codes.
        chunk_units: unit frames each chunk emits; the first chunk's latency is the synthesis of
            `chunk_units + lookahead_units` frames (plus its context).
        overlap_units: left context per chunk (how far back an output sample looks: see `receptive_field`).
        lookahead_units: right context per chunk; defaults to `overlap_units`. 0 suits causal codecs.
        crossfade_samples: linear cross-fade between consecutive chunks over this many samples of the right
            context (0 = plain trimming, exact for local vocoders; Griffin-Lim wants about one unit).
        durations: `[frames]` repeats of deduplicated units, sliced along with them.
        vocoder_kwargs: passed to every call (e.g. `speaker_id`); `f0` is refused, as its frame rate differs.
    The concatenation of the chunks is as long as the full-utterance waveform.
    """
    hop = _check_vocoder(vocoder)
    units, durations = _check_units(units, durations)
    lookahead_units = overlap_units if lookahead_units is None else lookahead_units
    for name, value, minimum in (
        ("chunk_units", chunk_units, 1),
        ("overlap_units", overlap_units, 0),
        ("lookahead_units", lookahead_units, 0),
        ("crossfade_samples", crossfade_samples, 0),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if crossfade_samples > lookahead_units * hop:
        raise ValueError(
            f"crossfade_samples={crossfade_samples} needs lookahead_units >= {math.ceil(crossfade_samples / hop)} "
            f"(the fade is taken from the right context of {lookahead_units} units x {hop} samples)"
        )
    if "f0" in vocoder_kwargs:
        raise ValueError("stream_vocode cannot slice f0 (its frame rate differs from the units'); vocode in one call")
    return _stream(vocoder, hop, units, durations, chunk_units, overlap_units, lookahead_units, crossfade_samples,
                   vocoder_kwargs)


@torch.no_grad()  # on a generator function, torch switches grad off around each step only
def _stream(vocoder, hop, units, durations, chunk_units, overlap_units, lookahead_units, crossfade_samples,
            vocoder_kwargs):
    """The generator behind `stream_vocode` (arguments already checked, so bad calls fail before the first chunk)."""
    device = next(vocoder.parameters()).device
    total = units.shape[-1]
    pending = None
    for start in range(0, total, chunk_units):
        end = min(start + chunk_units, total)
        lo, hi = max(0, start - overlap_units), min(total, end + lookahead_units)
        window = units[..., lo:hi][None].to(device)
        kwargs = dict(vocoder_kwargs)
        if durations is not None:
            kwargs["durations"] = durations[lo:hi][None].to(device)
        mask = torch.ones(1, hi - lo, dtype=torch.long, device=device)
        out = vocoder(input_ids=window, attention_mask=mask, **kwargs)
        if out.waveform is None:
            raise ValueError(f"{type(vocoder).__name__} returned no waveform (in training mode?): call .eval() first")
        wave = out.waveform[0, : int(out.waveform_lengths[0])].float().cpu()
        frames = getattr(out, "durations", None)
        frames = frames[0].cpu() if frames is not None else (durations[lo:hi] if durations is not None else None)
        frames = torch.ones(hi - lo, dtype=torch.long) if frames is None else frames.long()
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), frames.cumsum(0)]) * hop
        first, last = int(offsets[start - lo]), int(offsets[end - lo])
        keep_until = last if end == total else min(last + crossfade_samples, int(offsets[-1]))
        piece = wave[first:keep_until].clone()
        if pending is not None and pending.numel():
            fade = min(pending.numel(), piece.numel())
            ramp = (torch.arange(fade, dtype=piece.dtype) + 0.5) / fade
            piece[:fade] = pending[:fade] * (1 - ramp) + piece[:fade] * ramp
        if end == total:
            yield piece
        else:
            pending = piece[last - first :]
            yield piece[: last - first]


@torch.no_grad()
def receptive_field(vocoder, num_frames: int = 64, seed: int = 0, max_frames: int = 1024) -> tuple[int, int]:
    """Measure `(context, lookahead)` in unit frames: how many frames before / after a given frame its output
    samples depend on. Changes one input frame in the middle of random input and sees which output samples move.

    Use `overlap_units >= context` and `lookahead_units >= lookahead` in [`stream_vocode`] for exact chunks.
    Raises `ValueError` when the dependence still reaches both ends of `max_frames` frames (Griffin-Lim with many
    iterations: each one spreads a change by about one STFT window).
    """
    hop = _check_vocoder(vocoder)
    config = vocoder.config
    vocab = getattr(config, "num_units", None) or config.codebook_size
    levels = getattr(config, "num_codebooks", None)
    device = next(vocoder.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    while num_frames <= max_frames:
        shape = (1, num_frames) if levels is None else (1, levels, num_frames)
        ids = torch.randint(0, vocab, shape, generator=generator)
        centre = num_frames // 2
        changed_ids = ids.clone()
        changed_ids[..., centre] = (ids[..., centre] + 1) % vocab
        a = vocoder(input_ids=ids.to(device)).waveform[0].float()
        b = vocoder(input_ids=changed_ids.to(device)).waveform[0].float()
        moved = ((a - b).abs() > 1e-6 * a.abs().max().clamp(min=1e-12)).nonzero().flatten()
        if moved.numel() == 0:
            return 0, 0
        lo, hi = int(moved.min()), int(moved.max())
        if lo > 0 and hi < a.numel() - 1:
            # Output frames centre - before .. centre + after depend on the changed frame, i.e. every frame looks
            # `after` frames back (its context) and `before` frames ahead (its lookahead).
            before = math.ceil((centre * hop - lo) / hop)
            after = math.ceil((hi + 1 - (centre + 1) * hop) / hop)
            return max(0, after), max(0, before)
        num_frames *= 2
    raise ValueError(
        f"{type(vocoder).__name__}: one frame changes the output up to the ends of {max_frames} frames: the vocoder is "
        "local within that span (e.g. many Griffin-Lim iterations), so chunks can only approximate the full synthesis"
    )


__all__ = ["receptive_field", "stream_vocode"]
