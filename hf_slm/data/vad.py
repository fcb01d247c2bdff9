"""Voice activity detection with Silero VAD (``pip install silero-vad``, MIT; its weights ship in the wheel).

`speech_segments` finds where a waveform holds speech; `split_utterances` cuts long recordings into utterances at
the pauses (for evaluating or tokenising long audio, and for trimming silence, e.g. the instruct data's silence
mode). Any sampling rate is accepted: the detector runs on a 16 kHz copy, and times are mapped back.
`StreamingVAD` gives the speech probability of audio that arrives in chunks (live duplex dialogue).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

VAD_SAMPLING_RATE = 16000


@lru_cache(maxsize=1)
def load_vad():
    """The Silero VAD model (TorchScript, from the silero-vad wheel), loaded once per process."""
    try:
        from silero_vad import load_silero_vad
    except ImportError as err:
        raise ImportError("voice activity detection needs silero-vad: `pip install silero-vad` "
                          "(or `pip install hf_slm[eval]`)") from err  # fmt: skip
    import warnings

    with warnings.catch_warnings():  # its TorchScript load and importlib.resources.path are flagged as deprecated
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad()


def _mono_16k(waveform, sampling_rate: int) -> torch.Tensor:
    from ..models.unit_encoder import load_audio

    wave = np.asarray(waveform, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"voice activity detection takes a mono waveform [T], got shape {wave.shape}")
    if not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be a positive integer, got {sampling_rate!r}")
    if wave.size == 0:
        return torch.zeros(0)
    return torch.from_numpy(load_audio({"array": wave, "sampling_rate": int(sampling_rate)}, VAD_SAMPLING_RATE))


@torch.no_grad()
def speech_segments(waveform, sampling_rate: int, threshold: float = 0.5, min_speech_ms: int = 250,
                    min_silence_ms: int = 100, pad_ms: int = 30,
                    max_segment_s: float = float("inf")) -> list[tuple[float, float]]:  # fmt: skip
    """``(start, end)`` times in seconds of the speech in one mono waveform.

    Args:
        threshold: speech probability above which a 32 ms frame is speech.
        min_speech_ms: shorter speech bursts are dropped.
        min_silence_ms: a pause must last this long to end a segment (raise it to keep sentences whole).
        pad_ms: each segment is widened by this much on both sides.
        max_segment_s: longer segments are cut, at the longest pause inside when there is one.
    """
    model = load_vad()
    from silero_vad import get_speech_timestamps

    wave = _mono_16k(waveform, sampling_rate)
    if wave.numel() < 512:  # shorter than one 32 ms frame
        return []
    segments = get_speech_timestamps(wave, model, threshold=threshold, sampling_rate=VAD_SAMPLING_RATE,
                                     min_speech_duration_ms=min_speech_ms, min_silence_duration_ms=min_silence_ms,
                                     speech_pad_ms=pad_ms, max_speech_duration_s=max_segment_s)  # fmt: skip
    return [(s["start"] / VAD_SAMPLING_RATE, s["end"] / VAD_SAMPLING_RATE) for s in segments]


VAD_WINDOW = 512  # samples at 16 kHz (32 ms): Silero's frame


class StreamingVAD:
    """Silero speech probabilities of a live stream: `feed(chunk)` -> ``[(end_time_s, probability), ...]``, one per
    32 ms window completed by the chunk. Chunks may have any length; each is resampled to 16 kHz on its own (cheap,
    and the detector does not mind the seams). Each instance loads its own copy of the model, whose recurrent state
    follows this stream only (two live streams must not share one).

    >>> vad = StreamingVAD(sampling_rate=16000)  # doctest: +SKIP
    >>> vad.feed(chunk)  # doctest: +SKIP
    [(0.032, 0.01), (0.064, 0.02), ...]
    """

    def __init__(self, sampling_rate: int):
        if not isinstance(sampling_rate, (int, np.integer)) or isinstance(sampling_rate, bool) or sampling_rate <= 0:
            raise ValueError(f"StreamingVAD: sampling_rate must be a positive integer (Hz), got {sampling_rate!r}")
        load_vad()  # the import check, with its clear error
        import warnings

        from silero_vad import load_silero_vad

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = load_silero_vad()
        self.sampling_rate = int(sampling_rate)
        self.reset()

    def reset(self) -> None:
        self.model.reset_states()
        self._pending = torch.zeros(0)
        self._windows = 0

    @torch.no_grad()
    def feed(self, chunk) -> list[tuple[float, float]]:
        wave = _mono_16k(chunk, self.sampling_rate)
        self._pending = torch.cat([self._pending, wave])
        probabilities = []
        while self._pending.numel() >= VAD_WINDOW:
            window, self._pending = self._pending[:VAD_WINDOW], self._pending[VAD_WINDOW:]
            self._windows += 1
            probability = float(self.model(window, VAD_SAMPLING_RATE))
            probabilities.append((self._windows * VAD_WINDOW / VAD_SAMPLING_RATE, probability))
        return probabilities


def split_utterances(waveform, sampling_rate: int, min_silence_ms: int = 300, max_utterance_s: float = 20.0,
                     **kwargs) -> list[dict]:  # fmt: skip
    """Cut a long recording into utterances at its pauses.

    Returns ``{"array", "sampling_rate", "start", "end"}`` dicts (times in seconds) whose arrays are slices of the
    input at its own sampling rate. `min_silence_ms` (300 ms: a pause between sentences or phrases) and
    `max_utterance_s` set where it cuts; other keyword arguments go to `speech_segments`.
    """
    array = np.asarray(waveform, dtype=np.float32)
    segments = speech_segments(array, sampling_rate, min_silence_ms=min_silence_ms, max_segment_s=max_utterance_s,
                               **kwargs)  # fmt: skip
    utterances = []
    for start, end in segments:
        first, last = int(round(start * sampling_rate)), min(len(array), int(round(end * sampling_rate)))
        utterances.append({"array": array[first:last], "sampling_rate": int(sampling_rate), "start": start, "end": end})
    return utterances


def split_audio_files(files, output_dir, **kwargs) -> list[dict]:
    """Split recordings into utterance wavs in `output_dir` (``<stem>_000.wav``, ...) with a ``metadata.jsonl`` of
    ``file_name``, ``source``, ``start``, ``end`` per utterance, so that the folder loads as a `datasets` audiofolder
    (``hf-slm fit-tokenizer --dataset DIR``, ``tokenize --dataset DIR``). Written atomically; returns the rows.
    Keyword arguments go to `split_utterances`."""
    import json

    import soundfile as sf

    from ..utils import atomic_save_directory
    from .builder import write_wav

    recordings = []
    for path in map(Path, files):
        if not path.is_file():
            raise FileNotFoundError(f"audio file {str(path)!r} does not exist")
        try:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise ValueError(f"{path}: cannot read it as audio ({err})") from err
        recordings.append((path, data.mean(1), int(rate)))
    if len({path.stem for path, _, _ in recordings}) != len(recordings):
        raise ValueError("recordings with the same file name would write the same utterance files; rename them")
    rows = []

    def write(tmp):
        tmp = Path(tmp)
        for path, waveform, rate in recordings:
            for index, utterance in enumerate(split_utterances(waveform, rate, **kwargs)):
                name = f"{path.stem}_{index:03d}.wav"
                write_wav(tmp / name, utterance["array"], rate)
                rows.append({"file_name": name, "source": str(path), "start": round(utterance["start"], 3),
                             "end": round(utterance["end"], 3)})  # fmt: skip
        (tmp / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")

    atomic_save_directory(output_dir, write)
    return rows


__all__ = ["VAD_SAMPLING_RATE", "VAD_WINDOW", "StreamingVAD", "load_vad", "speech_segments", "split_audio_files", "split_utterances"]
