"""Word timestamps of synthesised speech: written tokens aligned to the synthesiser's word events, and each word's
end found where its sound stops (`EspeakSynthesizer` calls `align_words`)."""

from __future__ import annotations

import bisect
import re

import numpy as np

_TOKEN = re.compile(r"\S+")
_EDGE_PUNCTUATION = "\"'`.,;:!?()[]{}<>«»“”‘’„‚…—–-¡¿*_/\\|~"


def align_words(text, events, waveform, sampling_rate, threshold_db):
    """Map espeak-ng's WORD events ``(text_position, sample)`` (1-based character positions) to the written tokens of
    ``text``; return words, start and end times in seconds.

    Each token with a WORD event starts an entry; a spoken token without one (espeak-ng speaks
    frequent pairs such as "on the" as one word) joins the entry before it; tokens without letters
    or digits and without an event (a lone dash) are unspoken and dropped.
    """
    tokens = [(match.start(), match.end()) for match in _TOKEN.finditer(text)]
    token_starts = [start for start, _ in tokens]
    first_sample: dict[int, int] = {}  # token index -> earliest WORD-event sample
    num_samples = len(waveform)
    for text_position, sample in events:
        char = text_position - 1  # espeak counts characters from 1
        index = bisect.bisect_right(token_starts, char) - 1
        if index < 0 or char >= tokens[index][1]:
            continue  # the event points at whitespace (espeak-ng emits these around abbreviations)
        sample = min(max(int(sample), 0), num_samples)
        first_sample[index] = min(sample, first_sample.get(index, sample))
    groups: list[list[str]] = []
    start_samples: list[int] = []
    prefix: list[str] = []  # spoken tokens before the first event (attached to the first entry)
    for index, (begin, end) in enumerate(tokens):
        token = text[begin:end]
        if index in first_sample:
            groups.append(prefix + [token])
            start_samples.append(first_sample[index])
            prefix = []
        elif any(char.isalnum() for char in token):
            (groups[-1] if groups else prefix).append(token)
    start_samples = np.maximum.accumulate(start_samples).tolist() if start_samples else []  # guard: never decreasing
    end_samples = _trim_trailing_silence(waveform, start_samples, sampling_rate, threshold_db)
    words = [" ".join(token.strip(_EDGE_PUNCTUATION) or token for token in group) for group in groups]
    to_seconds = 1.0 / sampling_rate
    return words, [s * to_seconds for s in start_samples], [e * to_seconds for e in end_samples]


def _frame_rms(waveform: np.ndarray, frame: int) -> np.ndarray:
    """RMS of consecutive ``frame``-sample frames from the first sample (the last one may be short)."""
    if len(waveform) == 0:
        return np.zeros(0)
    num_frames = -(-len(waveform) // frame)
    padded = np.zeros(num_frames * frame, dtype=np.float64)
    padded[: len(waveform)] = waveform
    sizes = np.full(num_frames, frame, dtype=np.float64)
    sizes[-1] = len(waveform) - (num_frames - 1) * frame
    return np.sqrt(np.sum(padded.reshape(num_frames, frame) ** 2, axis=1) / sizes)


def _trim_trailing_silence(waveform, start_samples, sampling_rate, threshold_db):
    """End of each word: the end of its last loud 5 ms frame before the next start (frames anchored at its start)."""
    frame = max(1, int(round(0.005 * sampling_rate)))
    loudest = _frame_rms(waveform, frame).max(initial=0.0)
    threshold = max(loudest * 10 ** (threshold_db / 20.0), 1e-9)
    ends = []
    for start, stop in zip(start_samples, start_samples[1:] + [len(waveform)]):
        loud = np.flatnonzero(_frame_rms(waveform[start:stop], frame) >= threshold)
        # no loud frame: the word produced no audible sound, it ends where it starts
        ends.append(start if len(loud) == 0 else int(min(start + (int(loud[-1]) + 1) * frame, stop)))
    return ends


__all__ = ["align_words"]
