"""Turn-taking statistics of two-channel dialogues, as dGSLM's table (Nguyen et al., 2022, "Generative Spoken
Dialogue Language Modeling"): per-channel voice activity (Silero VAD) gives each speaker's IPUs, and the two
timelines give the events between them.

- **IPU** (inter-pausal unit): a stretch of one speaker's speech without a silence of ``min_silence`` (200 ms) or more.
- **pause**: silence of both speakers between two IPUs of the same speaker.
- **gap**: silence of both speakers between IPUs of different speakers (a turn change).
- **overlap**: both speak. *Within* a turn when the same speaker speaks alone before and after it (a backchannel);
  *between* turns when the speaker alone before differs from the one after (a turn change with overlap).

Each event is reported as a count per minute and a cumulative duration per minute (seconds of the event per minute
of dialogue), summed over the dialogues of a set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

EVENTS = ("ipu", "pause", "gap", "overlap_within", "overlap_between")
_LABELS = {"ipu": "IPU", "pause": "Pause", "gap": "Gap", "overlap_within": "Overlap (within)",
           "overlap_between": "Overlap (between)"}  # fmt: skip


def channel_ipus(waveform, sampling_rate: int, min_silence: float = 0.2, threshold: float = 0.5,
                 min_speech: float = 0.1) -> list[tuple[float, float]]:  # fmt: skip
    """IPUs ``(start, end)`` in seconds of one mono channel: Silero VAD segments (no padding) separated by at least
    ``min_silence`` seconds; speech shorter than ``min_speech`` is dropped."""
    from ..data.vad import speech_segments

    wave = np.asarray(waveform, dtype=np.float32)
    segments = []
    for first, last in _sounding_regions(wave, sampling_rate):  # the VAD runs only where there is sound (faster)
        found = speech_segments(wave[first:last], sampling_rate, threshold=threshold,
                                min_speech_ms=int(round(min_speech * 1000)),
                                min_silence_ms=int(round(min_silence * 1000)), pad_ms=0)  # fmt: skip
        segments += [(first / sampling_rate + start, first / sampling_rate + end) for start, end in found]
    return segments


def _sounding_regions(wave: np.ndarray, sampling_rate: int, floor: float = 1e-4, context: float = 0.5):
    """Sample ranges around every stretch above ``floor`` (digital silence in between), ``context`` s of silence
    kept on each side; stretches closer than twice that stay one region, so no IPU is split."""
    loud = np.flatnonzero(np.abs(wave) > floor)
    if loud.size == 0:
        return []
    pad = int(context * sampling_rate)
    breaks = np.flatnonzero(np.diff(loud) > 2 * pad)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]])
    return [(max(0, int(s) - pad), min(len(wave), int(e) + 1 + pad)) for s, e in zip(starts, ends)]


def _runs(ipus_a, ipus_b) -> list[tuple[int, float, float]]:
    """The timeline as runs ``(state, start, end)``; state bit 0: channel 0 speaks, bit 1: channel 1 speaks."""
    changes = []
    for bit, ipus in ((1, ipus_a), (2, ipus_b)):
        for start, end in ipus:
            changes += [(start, bit), (end, -bit)]
    changes.sort(key=lambda change: (change[0], change[1] > 0))  # ends before starts at a tie
    runs, state, time = [], 0, None
    for moment, delta in changes:
        if time is not None and moment > time:
            if runs and runs[-1][0] == state:
                runs[-1] = (state, runs[-1][1], moment)
            else:
                runs.append((state, time, moment))
        state += delta
        time = moment
    return runs


def turn_taking_events(ipus_a, ipus_b) -> dict[str, list[tuple[float, float]]]:
    """Every event ``(start, end)`` of two channels' IPUs, by kind (`EVENTS`)."""
    events = {name: [] for name in EVENTS}
    events["ipu"] = sorted(list(ipus_a) + list(ipus_b))
    runs = _runs(ipus_a, ipus_b)
    solo = [(index, state) for index, (state, _, _) in enumerate(runs) if state in (1, 2)]
    for index, (state, start, end) in enumerate(runs):
        if state in (1, 2):
            continue
        before = next((s for i, s in reversed(solo) if i < index), None)
        after = next((s for i, s in solo if i > index), None)
        if state == 0:
            if index == 0 or index == len(runs) - 1:
                continue  # silence before the first or after the last speech is not an event
            events["pause" if before is not None and before == after else "gap"].append((start, end))
        else:
            events["overlap_within" if before is not None and before == after else "overlap_between"].append((start, end))
    return events


def onsets_over(ipus_a, ipus_b, slack: float = 0.0) -> list[float]:
    """Onsets of ``ipus_b`` that start while ``ipus_a`` speaks, more than ``slack`` seconds into an IPU of ``a``:
    where speaker b starts over speaker a (a turn-only system never does; a backchannel or an interruption does)."""
    return [start for start, _ in ipus_b if any(s + slack < start < e for s, e in ipus_a)]


def _read_stereo(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise ValueError(f"{path}: cannot read it as audio ({err})") from err
    if data.shape[1] != 2:
        raise ValueError(f"{path}: turn-taking needs a two-channel (stereo) dialogue, one speaker per channel; "
                         f"it has {data.shape[1]} channel(s)")  # fmt: skip
    return data.T, int(rate)


def dialogue_files(spec) -> list[Path]:
    """The stereo wavs of ``spec``: one file, or every ``*.wav`` of a folder (sorted)."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(path.glob("*.wav"))
        if not files:
            raise ValueError(f"{str(path)!r} holds no .wav file")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"dialogue audio {str(path)!r} is neither a file nor a folder")
    return [path]


def turn_taking_statistics(dialogues, **vad) -> dict:
    """Turn-taking statistics of a set of dialogues: ``dialogues`` are stereo arrays ``([2, T], sampling_rate)``
    pairs or paths of stereo wavs. Keyword arguments go to `channel_ipus`.

    Returns ``{"num_dialogues", "minutes", "<event>": {"count", "per_minute", "duration_per_minute", "mean_duration"}}``.
    """

    def measured():
        for item in dialogues:
            audio, rate = _read_stereo(Path(item)) if isinstance(item, (str, Path)) else item
            audio = np.asarray(audio, dtype=np.float32)
            if audio.ndim != 2 or audio.shape[0] != 2:
                raise ValueError(f"a dialogue must be a [2, T] array (one speaker per channel), got shape {audio.shape}")
            yield audio.shape[1] / rate, turn_taking_events(*(channel_ipus(audio[c], rate, **vad) for c in range(2)))

    return _summarise(measured())


def unit_ipus(units, silence_unit: int, frame_rate: float, min_silence: float = 0.2,
              min_speech: float = 0.1) -> list[tuple[float, float]]:  # fmt: skip
    """IPUs ``(start, end)`` in seconds of one channel's units (frame ``t`` covers ``[t, t + 1) / frame_rate``):
    frames other than ``silence_unit`` are speech; silences shorter than ``min_silence`` are bridged and speech
    shorter than ``min_speech`` dropped, as `channel_ipus` does with the VAD's segments. No VAD: fast enough for
    the units a duplex LM generates."""
    speech = np.asarray(units).reshape(-1) != silence_unit
    edges = np.flatnonzero(np.diff(np.concatenate([[0], speech.astype(np.int8), [0]])))
    segments = [[start / frame_rate, end / frame_rate] for start, end in zip(edges[::2], edges[1::2])]
    merged = []
    for start, end in segments:
        if merged and start - merged[-1][1] < min_silence:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged if end - start >= min_speech]


def unit_turn_taking_statistics(dialogues, silence_unit: int, frame_rate: float, **ipu) -> dict:
    """`turn_taking_statistics` of dialogues given as units ``[2, T]`` (one channel per speaker, ``frame_rate``
    frames per second); a channel speaks where its unit is not ``silence_unit`` (`unit_ipus`, which takes the
    keyword arguments)."""

    def measured():
        for units in dialogues:
            units = np.asarray(units)
            if units.ndim != 2 or units.shape[0] != 2:
                raise ValueError(f"a dialogue's units must be [2, T] (one speaker per channel), got shape {units.shape}")
            ipus = [unit_ipus(units[c], silence_unit, frame_rate, **ipu) for c in range(2)]
            yield units.shape[1] / frame_rate, turn_taking_events(*ipus)

    return _summarise(measured())


def _summarise(measured) -> dict:
    """Counts and durations per minute of ``(seconds, events)`` per dialogue."""
    counts = {name: 0 for name in EVENTS}
    durations = {name: 0.0 for name in EVENTS}
    seconds, number = 0.0, 0
    for number, (length, events) in enumerate(measured, 1):
        seconds += length
        for name, spans in events.items():
            counts[name] += len(spans)
            durations[name] += sum(end - start for start, end in spans)
    minutes = seconds / 60.0
    if minutes <= 0:
        raise ValueError("no dialogue audio to measure")
    result = {"num_dialogues": number, "minutes": round(minutes, 4)}
    for name in EVENTS:
        result[name] = {"count": counts[name], "per_minute": counts[name] / minutes,
                        "duration_per_minute": durations[name] / minutes,
                        "mean_duration": durations[name] / counts[name] if counts[name] else float("nan")}  # fmt: skip
    return result


def format_turn_taking_table(results: dict[str, dict]) -> str:
    """dGSLM's table: one row per set, for each event its count per minute (N/min) and seconds per minute (s/min)."""
    head = f"{'set':<24}" + "".join(f"{_LABELS[name]:>22}" for name in EVENTS)
    sub = f"{'':<24}" + "".join(f"{'N/min':>11}{'s/min':>11}" for _ in EVENTS)
    lines = [head, sub]
    for label, stats in results.items():
        lines.append(f"{label[-24:]:<24}" + "".join(f"{stats[n]['per_minute']:>11.2f}{stats[n]['duration_per_minute']:>11.2f}"
                                                    for n in EVENTS))  # fmt: skip
    return "\n".join(lines)


__all__ = [
    "EVENTS",
    "channel_ipus",
    "dialogue_files",
    "format_turn_taking_table",
    "onsets_over",
    "turn_taking_events",
    "turn_taking_statistics",
    "unit_ipus",
    "unit_turn_taking_statistics",
]
