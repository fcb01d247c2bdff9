"""Two-speaker spoken dialogues that we make ourselves: one speaker per channel, timing drawn from distributions.

A dialogue is an exchange of turns written from the sentence grammar (`generate_sentences`) with conversational
openers and questions. Each speaker is rendered by espeak-ng with its own voice on its own channel, and the timing of
the conversation comes from `DialogueTiming`: gaps between turns, pauses within a turn, overlaps (the next turn starts
before the other ends), interruptions (the next turn starts mid-sentence and the other speaker stops shortly after)
and backchannels ("mm-hm", "yeah") on the listener's channel. The timing is a parameter, so that a measurement
(`hf_slm.evaluation.turn_taking`) or a model trained on the data can be checked against it.

>>> from hf_slm.data.dialogue import DialogueTiming, generate_dialogue
>>> dialogue = generate_dialogue(DialogueTiming(num_turns=(2, 2)), seed=0)
>>> dialogue.audio.shape[0], len(dialogue.words)
(2, 2)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .corpus import generate_sentences
from .espeak import EspeakSynthesizer, SynthesisResult

#: Backchannel words the listener says while the other speaker holds the turn.
BACKCHANNELS = ("mm-hm", "yeah", "right", "okay", "uh-huh", "I see")
#: Turn openers and turn-final questions that make the sentence grammar sound like an exchange.
OPENERS = ("Well,", "Oh,", "Really?", "I think so.", "You know,", "Sure.", "Hmm,")
QUESTIONS = ("What do you think?", "Do you agree?", "Is that right?", "Have you seen it?", "Why is that?")
DEFAULT_VOICES = ("en-us", "en-us+f3")
_FADE_S = 0.01  # fade-out where an interrupted speaker is cut off


@dataclass(frozen=True)
class DialogueTiming:
    """Timing of a generated dialogue. Durations are in seconds; a duration with mean ``m`` and standard deviation
    ``s`` is drawn from a gamma distribution with that mean and deviation (always positive; ``s = 0``: always ``m``).

    Args:
        gap_mean (`float`, defaults to 0.5): silence between the end of a turn and the start of the next one.
        gap_std (`float`, defaults to 0.2)
        pause_probability (`float`, defaults to 0.3): chance of a pause between two sentences of one turn.
        pause_mean (`float`, defaults to 0.5): within-turn pause.
        pause_std (`float`, defaults to 0.15)
        sentence_gap (`float`, defaults to 0.08): silence between two sentences of a turn when there is no pause
            (shorter than a turn-taking IPU break, so the sentences stay one IPU).
        overlap_probability (`float`, defaults to 0.15): chance that a turn starts before the other one ends.
        overlap_mean (`float`, defaults to 0.4): how long before (at most half the other's last sentence).
        overlap_std (`float`, defaults to 0.15)
        interruption_probability (`float`, defaults to 0.05): chance that a turn starts in the middle of the other
            speaker's last sentence, who then stops `interruption_overrun_mean` seconds later.
        interruption_overrun_mean (`float`, defaults to 0.3)
        backchannel_probability (`float`, defaults to 0.3): chance per turn that the listener says a backchannel.
        num_turns (`tuple[int, int]`, defaults to (4, 8)): inclusive range of turns per dialogue.
        sentences_per_turn (`tuple[int, int]`, defaults to (1, 3)): inclusive range of grammar sentences per turn.
        lead_silence (`float`, defaults to 0.5): silence before the first turn and after the last.

    Overlap, interruption and backchannel probabilities are separate: a dialogue has no overlapping speech only when
    all three are 0.
    """

    gap_mean: float = 0.5
    gap_std: float = 0.2
    pause_probability: float = 0.3
    pause_mean: float = 0.5
    pause_std: float = 0.15
    sentence_gap: float = 0.08
    overlap_probability: float = 0.15
    overlap_mean: float = 0.4
    overlap_std: float = 0.15
    interruption_probability: float = 0.05
    interruption_overrun_mean: float = 0.3
    backchannel_probability: float = 0.3
    num_turns: tuple[int, int] = (4, 8)
    sentences_per_turn: tuple[int, int] = (1, 3)
    lead_silence: float = 0.5

    def __post_init__(self):
        for name, value in asdict(self).items():
            if name.endswith("_probability"):
                if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                    raise ValueError(f"DialogueTiming.{name} must be a probability in [0, 1], got {value!r}")
            elif name in ("num_turns", "sentences_per_turn"):
                if not (len(value) == 2 and all(isinstance(v, int) for v in value) and 1 <= value[0] <= value[1]):
                    raise ValueError(f"DialogueTiming.{name} must be a range (low, high) of ints, 1 <= low <= high, "
                                     f"got {value!r}")  # fmt: skip
            elif not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"DialogueTiming.{name} must be a finite duration >= 0 (seconds), got {value!r}")
        for name in ("gap_mean", "pause_mean", "overlap_mean", "interruption_overrun_mean"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DialogueTiming.{name} must be positive (seconds), got {getattr(self, name)!r}")


@dataclass
class Dialogue:
    """One generated dialogue.

    Attributes:
        audio (`np.ndarray` of float32, shape `(2, num_samples)`): channel ``c`` holds speaker ``c`` only.
        sampling_rate (`int`)
        voices (`tuple[str, str]`): the espeak-ng voice of each channel.
        words, word_start, word_end (`list[list]`): per channel, the spoken words and their times in seconds.
        events (`list[dict]`): ``{"channel", "kind", "start", "end", "text"}`` in time order; kind is ``"turn"`` or
            ``"backchannel"``; a turn also records how it began (``"onset"``: ``"first"``, ``"gap"``, ``"overlap"``,
            ``"interruption"``) and whether it was cut off (``"interrupted"``).
    """

    audio: np.ndarray
    sampling_rate: int
    voices: tuple[str, str]
    words: list[list[str]] = field(default_factory=lambda: [[], []])
    word_start: list[list[float]] = field(default_factory=lambda: [[], []])
    word_end: list[list[float]] = field(default_factory=lambda: [[], []])
    events: list[dict] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.audio.shape[1] / self.sampling_rate


class _Span:
    """A trimmed utterance placed on a channel at ``start`` seconds."""

    def __init__(self, result: SynthesisResult, start: float):
        first = int(result.word_start[0] * result.sampling_rate)
        last = max(first + 1, int(math.ceil(result.word_end[-1] * result.sampling_rate)))
        self.waveform = result.waveform[first:last].copy()
        self.rate = result.sampling_rate
        offset = first / result.sampling_rate
        self.words = list(result.words)
        self.starts = [s - offset for s in result.word_start]
        self.ends = [min(e - offset, len(self.waveform) / self.rate) for e in result.word_end]
        self.start = start

    @property
    def duration(self) -> float:
        return len(self.waveform) / self.rate

    @property
    def end(self) -> float:
        return self.start + self.duration

    def cut(self, at: float) -> None:
        """Stop speaking at ``at`` seconds (absolute), with a short fade; words starting after it are dropped."""
        keep = max(1, int((at - self.start) * self.rate))
        fade = min(keep, int(_FADE_S * self.rate))
        self.waveform = self.waveform[:keep]
        self.waveform[keep - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        limit = keep / self.rate
        kept = [i for i, s in enumerate(self.starts) if s < limit] or [0]
        self.words = [self.words[i] for i in kept]
        self.starts = [self.starts[i] for i in kept]
        self.ends = [min(self.ends[i], limit) for i in kept]


def _duration(rng: np.random.Generator, mean: float, std: float) -> float:
    if std <= 0:
        return float(mean)
    return float(rng.gamma((mean / std) ** 2, std**2 / mean))


def _turn_texts(rng: np.random.Generator, timing: DialogueTiming, num_turns: int) -> list[list[str]]:
    """The sentences of each turn: an optional opener, grammar sentences, sometimes a closing question."""
    low, high = timing.sentences_per_turn
    counts = rng.integers(low, high + 1, size=num_turns)
    sentences = iter(generate_sentences(int(counts.sum()), seed=int(rng.integers(2**31)), unique=False))
    turns = []
    for index, count in enumerate(counts):
        turn = [next(sentences) for _ in range(count)]
        if index > 0 and rng.random() < 0.4:
            opener = str(OPENERS[rng.integers(len(OPENERS))])
            turn[0] = f"{opener} {turn[0][0].lower()}{turn[0][1:]}" if opener.endswith(",") else f"{opener} {turn[0]}"
        if index < num_turns - 1 and rng.random() < 0.3:
            turn.append(str(QUESTIONS[rng.integers(len(QUESTIONS))]))
        turns.append(turn)
    return turns


def generate_dialogue(timing: DialogueTiming | None = None, voices=DEFAULT_VOICES, seed: int = 0,
                      rate: int = 175) -> Dialogue:  # fmt: skip
    """One two-speaker dialogue with the timing of ``timing`` (drawn with ``seed``): speaker 0 starts, speakers
    alternate turns. ``voices`` are the two espeak-ng voices (different, e.g. ``("en-us", "en-us+f3")``)."""
    timing = timing or DialogueTiming()
    voices = tuple(voices)
    if len(voices) != 2 or voices[0] == voices[1]:
        raise ValueError(f"`voices` must be two different espeak-ng voices, got {voices!r}")
    synthesizers = [EspeakSynthesizer(voice=voice, rate=rate) for voice in voices]
    rng = np.random.default_rng(seed)
    texts = _turn_texts(rng, timing, int(rng.integers(timing.num_turns[0], timing.num_turns[1] + 1)))
    spans: list[list[_Span]] = [[], []]
    events: list[dict] = []
    turns: list[list[_Span]] = []
    clock = timing.lead_silence
    for index, sentences in enumerate(texts):
        channel = index % 2
        rendered = [_Span(synthesizers[channel].synthesize(text), 0.0) for text in sentences]
        onset = "first"
        if turns:
            previous = turns[-1][-1]  # the other speaker's last sentence
            turn_length = sum(span.duration for span in rendered)
            draw = rng.random()
            if draw < timing.interruption_probability and previous.duration > 0.6:
                onset = "interruption"
                clock = previous.start + previous.duration * rng.uniform(0.3, 0.7)
                overrun = _duration(rng, timing.interruption_overrun_mean, timing.interruption_overrun_mean / 3)
                previous.cut(min(clock + overrun, previous.end))
                events[-1]["interrupted"] = True
                events[-1]["end"] = round(previous.end, 4)
            elif draw < timing.interruption_probability + timing.overlap_probability:
                onset = "overlap"
                overlap = _duration(rng, timing.overlap_mean, timing.overlap_std)
                clock = previous.end - min(overlap, 0.5 * previous.duration, 0.5 * turn_length)
            else:
                onset = "gap"
                clock = previous.end + _duration(rng, timing.gap_mean, timing.gap_std)
            if spans[channel]:  # never before this speaker's own previous turn has ended
                clock = max(clock, spans[channel][-1].end + 0.3)
        for position, span in enumerate(rendered):
            if position:
                pause = rng.random() < timing.pause_probability
                clock += _duration(rng, timing.pause_mean, timing.pause_std) if pause else timing.sentence_gap
            span.start = clock
            clock = span.end
        turns.append(rendered)
        spans[channel] += rendered
        events.append({"channel": channel, "kind": "turn", "start": round(rendered[0].start, 4),
                       "end": round(rendered[-1].end, 4), "text": " ".join(sentences), "onset": onset,
                       "interrupted": False})  # fmt: skip
    _add_backchannels(rng, timing, synthesizers, turns, spans, events)
    return _render(spans, events, voices, synthesizers[0].sampling_rate, timing.lead_silence)


def _add_backchannels(rng, timing, synthesizers, turns, spans, events) -> None:
    """Backchannels on the listener's channel inside a turn, clear of the listener's own speech by 0.3 s."""
    margin = 0.3
    for index, turn in enumerate(turns):
        if rng.random() >= timing.backchannel_probability:
            continue
        listener = 1 - index % 2
        text = str(BACKCHANNELS[rng.integers(len(BACKCHANNELS))])
        span = _Span(synthesizers[listener].synthesize(text), 0.0)
        low, high = turn[0].start + margin, turn[-1].end - margin - span.duration
        busy = [(s.start - margin, s.end + margin) for s in spans[listener]]
        free = [t for t in np.linspace(low, high, 50) if not any(a < t + span.duration and t < b for a, b in busy)]
        if high <= low or not free:
            continue
        span.start = float(free[rng.integers(len(free))])
        spans[listener].append(span)
        events.append({"channel": listener, "kind": "backchannel", "start": round(span.start, 4),
                       "end": round(span.end, 4), "text": text})  # fmt: skip
    events.sort(key=lambda event: event["start"])


def _render(spans, events, voices, sampling_rate, lead_silence) -> Dialogue:
    end = max(span.end for channel in spans for span in channel) + lead_silence
    audio = np.zeros((2, int(math.ceil(end * sampling_rate))), dtype=np.float32)
    dialogue = Dialogue(audio, sampling_rate, tuple(voices), events=events)
    for channel, placed in enumerate(spans):
        for span in sorted(placed, key=lambda span: span.start):
            first = int(round(span.start * sampling_rate))
            audio[channel, first : first + len(span.waveform)] += span.waveform
            begin = first / sampling_rate
            dialogue.words[channel] += span.words
            dialogue.word_start[channel] += [round(begin + s, 4) for s in span.starts]
            dialogue.word_end[channel] += [round(begin + e, 4) for e in span.ends]
    np.clip(audio, -1.0, 1.0, out=audio)
    return dialogue


def generate_dialogues(n: int, timing: DialogueTiming | None = None, voices=DEFAULT_VOICES, seed: int = 0,
                       rate: int = 175) -> list[Dialogue]:  # fmt: skip
    """``n`` dialogues; dialogue ``i`` is ``generate_dialogue(timing, voices, seed=seed * 100003 + i)``, so any one
    of them can be made again alone."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be a positive number of dialogues, got {n!r}")
    return [generate_dialogue(timing, voices, seed=seed * 100003 + i, rate=rate) for i in range(n)]


def dialogue_features(sampling_rate: int):
    """Columns of `dialogues_to_dataset`: one 2-channel ``audio`` column (``datasets.Audio(num_channels=2)``
    decodes it as ``[2, T]``), per-channel word lists, the voices and the turn events as JSON."""
    from datasets import Audio, Features, List, Value

    return Features({
        "audio": Audio(sampling_rate=sampling_rate, num_channels=2),
        "voices": List(Value("string")),
        "words": List(List(Value("string"))),
        "word_start": List(List(Value("float32"))),
        "word_end": List(List(Value("float32"))),
        "events": Value("string"),
        "duration": Value("float32"),
    })  # fmt: skip


def _row(dialogue: Dialogue, path: str | None = None) -> dict:
    from .builder import wav_bytes  # the package's one in-memory wav encoder; [T, 2] makes it stereo

    return {"audio": {"bytes": wav_bytes(dialogue.audio.T, dialogue.sampling_rate), "path": path},
            "voices": list(dialogue.voices), "words": dialogue.words, "word_start": dialogue.word_start,
            "word_end": dialogue.word_end, "events": json.dumps(dialogue.events),
            "duration": dialogue.duration}  # fmt: skip


def dialogues_to_dataset(dialogues: list[Dialogue]):
    """A `datasets.Dataset` of the dialogues (stereo wav bytes embedded; see `dialogue_features`)."""
    from datasets import Dataset

    if not dialogues:
        raise ValueError("no dialogues to put in a dataset")
    rates = {dialogue.sampling_rate for dialogue in dialogues}
    if len(rates) != 1:
        raise ValueError(f"dialogues have different sampling rates {sorted(rates)}")
    rows = [_row(dialogue, f"dialogue_{i:05d}.wav") for i, dialogue in enumerate(dialogues)]
    return Dataset.from_list(rows, features=dialogue_features(rates.pop()))


def write_dialogues(output_dir, dialogues: list[Dialogue], timing: DialogueTiming | None = None) -> Path:
    """Write ``dialogue_00000.wav`` (stereo, 16-bit), ``dialogue_00000.json`` (voices, word timestamps per channel,
    events) per dialogue, ``timing.json`` and the dataset (``dataset/``, `datasets.load_from_disk`) into
    ``output_dir``, atomically (a folder swapped into place when complete)."""
    from ..utils import atomic_save_directory
    from .builder import write_wav

    if not dialogues:
        raise ValueError("no dialogues to write")

    def write(tmp):
        tmp = Path(tmp)
        for index, dialogue in enumerate(dialogues):
            write_wav(tmp / f"dialogue_{index:05d}.wav", dialogue.audio.T, dialogue.sampling_rate)
            record = {k: getattr(dialogue, k) for k in ("voices", "words", "word_start", "word_end", "events")}
            record.update(sampling_rate=dialogue.sampling_rate, duration=round(dialogue.duration, 4))
            (tmp / f"dialogue_{index:05d}.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        if timing is not None:
            (tmp / "timing.json").write_text(json.dumps(asdict(timing), indent=1) + "\n", encoding="utf-8")
        dialogues_to_dataset(dialogues).save_to_disk(str(tmp / "dataset"))

    return atomic_save_directory(output_dir, write)


__all__ = [
    "BACKCHANNELS",
    "DEFAULT_VOICES",
    "Dialogue",
    "DialogueTiming",
    "dialogue_features",
    "dialogues_to_dataset",
    "generate_dialogue",
    "generate_dialogues",
    "write_dialogues",
]
