"""Two-channel dialogues as token streams for duplex LMs: each channel's units (any unit encoder, e.g. the embedded
default's), the unit that silence encodes to, and an optional character "inner monologue" text stream aligned with
the word timestamps of `hf_slm.data.dialogue` (Moshi's text stream, at the units' frame rate).

>>> from hf_slm.data.dialogue_units import TEXT_PAD, text_stream
>>> text_stream(["hi", "yo"], [0.0, 0.1], 10, frame_rate=50.0).tolist()
[2, 10, 11, 0, 0, 2, 27, 17, 0, 0]
"""

from __future__ import annotations

import numpy as np
import torch

#: Text-stream ids: 0 no text (Moshi's PAD), 1 an unknown character, 2 the start of a word, then the characters.
TEXT_PAD, TEXT_UNKNOWN, TEXT_WORD_START = 0, 1, 2
TEXT_CHARACTERS = "abcdefghijklmnopqrstuvwxyz'-"
TEXT_VOCAB_SIZE = 3 + len(TEXT_CHARACTERS)


@torch.no_grad()
def encode_dialogue_units(dialogues, feature_extractor, tokenizer, stride: int = 1) -> list[torch.LongTensor]:
    """Units `[2, T]` of each dialogue (`hf_slm.data.dialogue.Dialogue`, or `(audio [2, samples], rate)` pairs):
    both channels encoded by `tokenizer` (a unit encoder with its feature extractor), then every `stride`-th frame
    kept (frame rate `tokenizer rate / stride`; `stride_units` undoes it for a vocoder).

    Frames of digital silence (a hop of exact zeros) all get one unit, the one most of them encode to: a tokenizer
    with per-utterance normalisation maps each channel's silence to a unit that depends on that channel's speech
    (the embedded default's: 433 in one channel, 494 in another), and `silence_unit` needs one."""
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"`stride` must be an int >= 1 (keep every stride-th frame), got {stride!r}")
    sequences, silent = [], []
    for index, item in enumerate(dialogues):
        audio, rate = (item.audio, item.sampling_rate) if hasattr(item, "audio") else item
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 2 or audio.shape[0] != 2:
            raise ValueError(f"dialogue {index}: audio must be [2, samples] (one speaker per channel), got shape "
                             f"{audio.shape}")  # fmt: skip
        inputs = feature_extractor(list(audio), sampling_rate=rate, return_tensors="pt")
        units = tokenizer.encode(input_values=inputs["input_values"], attention_mask=inputs["attention_mask"]).unpadded()
        length = min(len(u) for u in units)
        hop = rate / tokenizer.config.frame_rate
        starts = (np.arange(0, length, stride) * hop).astype(int)  # the kept frames only
        silent.append(torch.tensor([[not channel[start:int(start + hop)].any() for start in starts] for channel in audio]))
        sequences.append(torch.stack([u[:length] for u in units])[:, ::stride].long().contiguous())
    silent_units = torch.cat([units[mask] for units, mask in zip(sequences, silent)]) if sequences else torch.tensor([])
    if silent_units.numel():
        silence = int(torch.bincount(silent_units).argmax())
        for units, mask in zip(sequences, silent):
            units[mask] = silence
    return sequences


def stride_units(units: torch.Tensor, stride: int) -> torch.LongTensor:
    """Back to the tokenizer's frame rate: each frame of `encode_dialogue_units(..., stride)` repeated `stride`
    times (for the vocoder)."""
    return torch.as_tensor(units).repeat_interleave(stride, dim=-1)


def silence_unit(units) -> int:
    """The unit of silence in dialogues' units (`encode_dialogue_units`): the most frequent one. Each speaker of a
    two-channel dialogue is silent most of the time, and the generator's silence is digital zeros, which
    `encode_dialogue_units` gives one unit (not the unit of a clip of zeros alone)."""
    flat = torch.cat([torch.as_tensor(u).reshape(-1).long() for u in units])
    if not flat.numel():
        raise ValueError("no units to find the silence unit in")
    return int(torch.bincount(flat).argmax())


def text_stream(words, starts, num_frames: int, frame_rate: float) -> torch.LongTensor:
    """A character text stream of `num_frames` frames: word `i` is written from the frame of `starts[i]` (s) on, a
    word-start id then one character a frame (cut where the next word begins), `TEXT_PAD` elsewhere."""
    stream = torch.full((num_frames,), TEXT_PAD, dtype=torch.long)
    frames = [int(round(s * frame_rate)) for s in starts]
    for i, (word, first) in enumerate(zip(words, frames)):
        limit = min(num_frames, frames[i + 1] if i + 1 < len(frames) else num_frames)
        ids = [TEXT_WORD_START] + [3 + TEXT_CHARACTERS.index(c) if c in TEXT_CHARACTERS else TEXT_UNKNOWN
                                   for c in word.lower()]  # fmt: skip
        ids = ids[: max(0, limit - first)]
        if first < num_frames and ids:
            stream[first : first + len(ids)] = torch.tensor(ids)
    return stream


def dialogue_streams(units: torch.Tensor, system_channel: int = 1, dialogue=None, frame_rate: float | None = None):
    """Moshi-style parallel streams `[S, T]` of a dialogue's units `[2, T]`: `[system, user]`, or with `dialogue`
    (its word timestamps) and `frame_rate` `[text, system, user]`, the text being the system speaker's words
    (`text_stream`, the inner monologue)."""
    units = torch.as_tensor(units).long()
    if units.dim() != 2 or units.shape[0] != 2:
        raise ValueError(f"units must be [2 channels, frames], got shape {tuple(units.shape)}")
    if system_channel not in (0, 1):
        raise ValueError(f"system_channel must be 0 or 1, got {system_channel!r}")
    streams = [units[system_channel], units[1 - system_channel]]
    if dialogue is not None:
        if not frame_rate:
            raise ValueError("a text stream needs the units' frame_rate (frames per second)")
        text = text_stream(dialogue.words[system_channel], dialogue.word_start[system_channel], units.shape[1],
                           frame_rate)  # fmt: skip
        streams.insert(0, text)
    return torch.stack(streams)


__all__ = [
    "TEXT_CHARACTERS",
    "TEXT_PAD",
    "TEXT_UNKNOWN",
    "TEXT_VOCAB_SIZE",
    "TEXT_WORD_START",
    "dialogue_streams",
    "encode_dialogue_units",
    "silence_unit",
    "stride_units",
    "text_stream",
]
