"""Live full-duplex dialogue over a `SpokenChatPipeline`: the user's audio streams in, the system's speech streams
out, and a voice activity detector on the user's channel decides who holds the turn.

One clock: the user's audio. Each `DuplexSession.feed(chunk)` returns the system's audio for the same stretch of time
(as many seconds as the chunk, at the vocoder's rate; silence when it is not speaking), so the two channels line up
sample for sample. That system audio was committed before the chunk was heard (a live system plays it while the
chunk is being recorded), so a decision taken on a chunk acts from the chunk's end on. Hence the barge-in latency
(user speech onset -> last system sample) is the VAD's onset confirmation plus at most one chunk.

Rules (`DuplexOptions`), on Silero probabilities of 32 ms windows (`hf_slm.data.vad.StreamingVAD`):
- **barge-in**: user speech during system speech. With ``hold_on_onset`` (default) the system falls silent as soon
  as the onset is confirmed (``min_speech_s`` of speech); once the user has spoken ``backchannel_s`` it yields: the
  rest of its reply is dropped and a ``"barge_in"`` event says when and why. Without ``hold_on_onset`` it keeps
  speaking until then.
- **backchannel**: user speech that ends before ``backchannel_s`` ("mm-hm", "yeah") is not a turn: a held system
  resumes where it stopped (nothing dropped) and a ``"backchannel"`` event is logged.
- **turn taking**: when the system is silent and the user has spoken, a pause of ``turn_pause_s`` hands the turn to
  the system, which replies to the user's turn (the audio from its first onset to its last speech).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..data.vad import VAD_SAMPLING_RATE, VAD_WINDOW, StreamingVAD

EVENT_KINDS = ("user_start", "user_end", "turn", "system_start", "hold", "resume", "backchannel", "barge_in",
               "system_end")  # fmt: skip
_WINDOW_S = VAD_WINDOW / VAD_SAMPLING_RATE  # one Silero window (32 ms)
MAX_CHUNK_S = 5.0  # a live chunk is a fraction of a second; longer ones delay every decision by as much


@dataclass(frozen=True)
class DuplexOptions:
    """How a `DuplexSession` takes and yields the turn (seconds unless said otherwise).

    Args:
        turn_pause_s (`float`, defaults to 0.8): user silence after which the system takes the turn.
        backchannel_s (`float`, defaults to 1.0): user speech shorter than this during system speech is a
            backchannel (espeak-ng's "mm-hm" lasts 0.8 s, "yeah" 0.4 s); longer speech makes the system yield.
        hold_on_onset (`bool`, defaults to True): fall silent at the user's speech onset (and resume after a
            backchannel) rather than speak on until ``backchannel_s``.
        min_speech_s (`float`, defaults to 0.064): speech needed to confirm an onset (two 32 ms windows).
        min_silence_s (`float`, defaults to 0.2): silence that ends a stretch of user speech.
        overlap_silence_s (`float`, defaults to 0.4): silence that ends user speech while the system holds the turn
            (longer, so that the phrases of a barge-in, "No, wait, ...", stay one stretch of speech).
        threshold (`float`, defaults to 0.5): Silero speech probability of a voiced window (a window of a speech
            stretch stays voiced down to ``threshold - 0.15``, as in Silero's own segmentation).
        barge_in (`bool`, defaults to True): False never yields (the system speaks every turn to its end: the
            baseline of a system that only takes turns).
        reply_units (`int`, defaults to 150): units of a spoken reply (3 s at 50 Hz).
        chunk_units (`int`, defaults to 25): units vocoded per system audio chunk.
        context_units (`int`, defaults to 10): left context of each vocoded chunk.
        max_prompt_s (`float`, defaults to 8.0): the reply is conditioned on at most the last this-many seconds of
            the user's turn.
        temperature (`float`, defaults to 0.8), seed (`int | None`, defaults to 0): sampling of the reply.
    """

    turn_pause_s: float = 0.8
    backchannel_s: float = 1.0
    hold_on_onset: bool = True
    min_speech_s: float = 0.064
    min_silence_s: float = 0.2
    overlap_silence_s: float = 0.4
    threshold: float = 0.5
    barge_in: bool = True
    reply_units: int = 150
    chunk_units: int = 25
    context_units: int = 10
    max_prompt_s: float = 8.0
    temperature: float = 0.8
    seed: int | None = 0

    def __post_init__(self):
        for name in ("turn_pause_s", "backchannel_s", "min_speech_s", "min_silence_s", "overlap_silence_s", "max_prompt_s",
                     "temperature"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"DuplexOptions.{name} must be a positive number of seconds, got {value!r}")
        for name, minimum in (("reply_units", 1), ("chunk_units", 1), ("context_units", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"DuplexOptions.{name} must be an int >= {minimum}, got {value!r}")
        if not 0.15 < self.threshold < 1:
            raise ValueError(f"DuplexOptions.threshold must be a speech probability in (0.15, 1), got {self.threshold!r}")
        if self.min_silence_s >= self.turn_pause_s:
            raise ValueError(f"DuplexOptions.min_silence_s ({self.min_silence_s}) must be shorter than turn_pause_s "
                             f"({self.turn_pause_s}): a pause that hands over the turn first ends the user's speech")
        if self.min_speech_s >= self.backchannel_s:
            raise ValueError(f"DuplexOptions.min_speech_s ({self.min_speech_s}) must be shorter than backchannel_s "
                             f"({self.backchannel_s})")  # fmt: skip


@dataclass
class DuplexEvent:
    """What happened, at ``time`` seconds of the user's audio (when it takes effect on the system's channel).

    ``kind`` is one of `EVENT_KINDS`. ``onset``: the user speech onset it answers (barge-in, backchannel, hold);
    ``detected``: when the VAD window that decided it ended; ``duration``: the user's speech (backchannel, user_end)
    or the pause (turn); ``dropped_s``: reply audio dropped at a barge-in (already synthesised; the rest of the reply
    is not generated); ``reason``: a sentence.
    """

    kind: str
    time: float
    onset: float | None = None
    detected: float | None = None
    duration: float | None = None
    dropped_s: float | None = None
    reason: str = ""

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}


@dataclass
class DuplexStep:
    """The system's audio for the stretch of time of one user chunk (``sampling_rate``), and the events decided."""

    audio: np.ndarray
    sampling_rate: int
    events: list[DuplexEvent] = field(default_factory=list)


class DuplexSession:
    """One live conversation: `feed` user audio chunks, play back each returned `DuplexStep.audio`.

    Made by `SpokenChatPipeline.duplex_session`. ``respond(audio, sampling_rate)`` -> iterable of float32 chunks at
    ``output_rate``: the system's spoken reply to one user turn, consumed lazily (only as fast as it is played, and
    not at all once the user barges in).
    """

    def __init__(self, respond: Callable[[np.ndarray, int], Iterable[np.ndarray]], sampling_rate: int,
                 output_rate: int, options: DuplexOptions | None = None):  # fmt: skip
        for name, value in (("sampling_rate", sampling_rate), ("output_rate", output_rate)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"duplex session: {name} must be a positive integer (Hz), got {value!r}")
        self.options = options or DuplexOptions()
        self.respond = respond
        self.sampling_rate, self.output_rate = int(sampling_rate), int(output_rate)
        self.vad = StreamingVAD(self.sampling_rate)
        self.events: list[DuplexEvent] = []
        self._fed = 0  # user samples so far
        self._emitted = 0  # system samples so far
        self._user: list[np.ndarray] = []  # the user's audio since `_kept_from` (seconds)
        self._kept_from = 0.0
        self._voiced_run = 0  # consecutive voiced windows before a confirmed onset
        self._speaking = False  # the user, per the VAD
        self._onset = self._last_voiced = None
        self._turn_start = None  # first onset of the user's current turn (None: nothing said since the system spoke)
        self._turn_end = None
        self._state = "listening"  # or "speaking", "held"
        self._reply: Iterator[np.ndarray] | None = None
        self._buffer = np.zeros(0, dtype=np.float32)
        self._reply_started = False
        self.last_system_sample: float | None = None  # when the latest reply sample played (seconds)

    @property
    def time(self) -> float:
        """Seconds of user audio fed so far."""
        return self._fed / self.sampling_rate

    @property
    def system_speaking(self) -> bool:
        return self._state != "listening"

    # ------------------------------------------------------------------ feeding
    def feed(self, chunk) -> DuplexStep:
        """One chunk of the user's audio (mono float, at ``sampling_rate``; int16 PCM is scaled) -> the system's
        audio for the same stretch of time and the events decided on this chunk (they act from its end on)."""
        chunk = self._check_chunk(chunk)
        start, end = self.time, (self._fed + len(chunk)) / self.sampling_rate
        events: list[DuplexEvent] = []
        audio = self._play(round(end * self.output_rate) - self._emitted, start, events)
        self._fed += len(chunk)
        self._keep(chunk)
        for window_end, probability in self.vad.feed(chunk):
            self._on_window(window_end, probability, end, events)
        self.events += events
        return DuplexStep(audio=audio, sampling_rate=self.output_rate, events=events)

    def _check_chunk(self, chunk) -> np.ndarray:
        array = np.asarray(chunk)
        if array.ndim == 2 and 1 in array.shape:
            array = array.reshape(-1)
        if array.ndim != 1:
            raise ValueError(f"duplex feed: a chunk is mono audio [samples], got shape {array.shape}")
        if array.dtype == np.int16:
            array = array.astype(np.float32) / 32768.0
        elif not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"duplex feed: a chunk is float audio in [-1, 1] or int16 PCM, got dtype {array.dtype}")
        if array.size == 0:
            raise ValueError("duplex feed: empty chunk")
        if array.size > MAX_CHUNK_S * self.sampling_rate:
            raise ValueError(f"duplex feed: a chunk of {array.size / self.sampling_rate:.2f} s is longer than "
                             f"{MAX_CHUNK_S} s; stream shorter chunks (every decision waits for the chunk's end)")  # fmt: skip
        if not np.isfinite(array).all():
            raise ValueError("duplex feed: the chunk holds NaN or infinite samples")
        return array.astype(np.float32, copy=False)

    def _keep(self, chunk: np.ndarray) -> None:
        """Keep the user's audio of the current turn (bounded by ``max_prompt_s`` plus a little)."""
        self._user.append(chunk)
        limit = int((self.options.max_prompt_s + 2 * self.options.turn_pause_s) * self.sampling_rate)
        while sum(map(len, self._user)) - len(self._user[0]) > limit:
            self._kept_from += len(self._user.pop(0)) / self.sampling_rate

    def _play(self, count: int, start: float, events: list[DuplexEvent]) -> np.ndarray:
        """``count`` samples of the system's channel from ``start``: the reply while speaking, else silence."""
        out = np.zeros(max(0, count), dtype=np.float32)
        if self._state == "speaking":
            while len(self._buffer) < count and self._reply is not None:
                piece = next(self._reply, None)
                if piece is None:
                    self._reply = None
                    break
                self._buffer = np.concatenate([self._buffer, np.asarray(piece, dtype=np.float32).reshape(-1)])
            taken = min(count, len(self._buffer))
            out[:taken], self._buffer = self._buffer[:taken], self._buffer[taken:]
            if taken:
                self.last_system_sample = start + taken / self.output_rate
            if taken and not self._reply_started:
                self._reply_started = True
                events.append(DuplexEvent("system_start", start, reason="the reply's first sample"))
            if self._reply is None and not len(self._buffer):
                self._state = "listening"
                events.append(DuplexEvent("system_end", start + taken / self.output_rate,
                                          reason="the reply was spoken to its end"))  # fmt: skip
        self._emitted += len(out)
        return out

    # ------------------------------------------------------------------ decisions
    def _on_window(self, t: float, probability: float, effective: float, events: list[DuplexEvent]) -> None:
        o = self.options
        window = t - _WINDOW_S
        voiced = probability >= (o.threshold - 0.15 if self._speaking else o.threshold)
        if not self._speaking:
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if voiced and self._voiced_run * _WINDOW_S >= o.min_speech_s - 1e-9:
                self._speaking = True
                self._onset = window - (self._voiced_run - 1) * _WINDOW_S
                self._last_voiced = t
                events.append(DuplexEvent("user_start", effective, onset=self._onset, detected=t))
                if self._turn_start is None:
                    self._turn_start = self._onset
                if self._state == "speaking" and o.barge_in and o.hold_on_onset:
                    self._state = "held"
                    events.append(DuplexEvent("hold", effective, onset=self._onset, detected=t,
                                              reason="user speech onset: the system falls silent"))  # fmt: skip
        else:
            if voiced:
                self._last_voiced = t
            elif t - self._last_voiced >= (o.overlap_silence_s if self.system_speaking else o.min_silence_s) - 1e-9:
                self._end_of_speech(t, effective, events)
            speech = self._last_voiced - self._onset  # voiced so far (the silence that may end it does not count)
            if self._speaking and self.system_speaking and o.barge_in and speech >= o.backchannel_s - 1e-9:
                self._yield(t, effective, events)
        if (not self._speaking and self._state == "listening" and self._turn_end is not None
                and t - self._turn_end >= o.turn_pause_s - 1e-9):  # fmt: skip
            self._take_turn(t, effective, events)

    def _end_of_speech(self, t: float, effective: float, events: list[DuplexEvent]) -> None:
        duration = self._last_voiced - self._onset
        self._speaking, self._voiced_run = False, 0
        if self.system_speaking:  # speech during the system's turn that did not become a barge-in
            events.append(DuplexEvent("backchannel", effective, onset=self._onset, detected=t, duration=duration,
                                      reason=f"user speech of {duration:.2f} s < backchannel_s: the system keeps the turn"))
            if self._turn_start == self._onset:
                self._turn_start = None
            if self._state == "held":
                self._state = "speaking"
                events.append(DuplexEvent("resume", effective, onset=self._onset, reason="after a backchannel"))
            return
        self._turn_end = self._last_voiced
        events.append(DuplexEvent("user_end", effective, onset=self._onset, detected=t, duration=duration))

    def _yield(self, t: float, effective: float, events: list[DuplexEvent]) -> None:
        dropped = len(self._buffer) / self.output_rate
        if self._reply is not None and hasattr(self._reply, "close"):
            self._reply.close()  # a generator: stops its decoding loop
        self._reply, self._buffer, self._state = None, np.zeros(0, dtype=np.float32), "listening"
        self._turn_start, self._turn_end = self._onset, None
        events.append(DuplexEvent("barge_in", effective, onset=self._onset, detected=t, dropped_s=dropped,
                                  reason=f"user speech for {self._last_voiced - self._onset:.2f} s (>= backchannel_s) during the "
                                         "system's turn: the rest of the reply is dropped"))  # fmt: skip

    def _take_turn(self, t: float, effective: float, events: list[DuplexEvent]) -> None:
        pause = t - self._turn_end
        pad = 0.1
        first = max(self._turn_start - pad, self._turn_end + pad - self.options.max_prompt_s, self._kept_from)
        audio = np.concatenate(self._user)
        lo = int(round((first - self._kept_from) * self.sampling_rate))
        hi = int(round((self._turn_end + pad - self._kept_from) * self.sampling_rate))
        prompt = audio[lo:hi]
        self._turn_start = self._turn_end = None
        events.append(DuplexEvent("turn", effective, detected=t, duration=pause,
                                  reason=f"user pause of {pause:.2f} s >= turn_pause_s: the system replies"))  # fmt: skip
        self._reply = iter(self.respond(prompt, self.sampling_rate))
        self._buffer, self._state, self._reply_started = np.zeros(0, dtype=np.float32), "speaking", False

    def run(self, audio, chunk_s: float = 0.1) -> tuple[np.ndarray, list[DuplexEvent]]:
        """Feed a whole recording in chunks of ``chunk_s`` seconds; returns the system's channel (at
        ``output_rate``, as long as the recording) and the events."""
        if isinstance(chunk_s, bool) or not isinstance(chunk_s, (int, float)) or not 0 < chunk_s <= MAX_CHUNK_S:
            raise ValueError(f"chunk_s must be a duration in (0, {MAX_CHUNK_S}] seconds, got {chunk_s!r}")
        audio = np.asarray(audio, dtype=np.float32)
        size = max(1, int(round(chunk_s * self.sampling_rate)))
        outputs, first = [], len(self.events)
        for start in range(0, len(audio), size):
            outputs.append(self.feed(audio[start : start + size]).audio)
        return np.concatenate(outputs) if outputs else np.zeros(0, np.float32), self.events[first:]


def speech_reply(pipe, options: DuplexOptions) -> Callable[[np.ndarray, int], Iterator[np.ndarray]]:
    """The default ``respond`` of a pipeline: an instruct variant answers in speech (`stream_chat`); a plain speech
    LM continues the user's speech (`FastUnitGenerator.stream`), vocoded ``chunk_units`` at a time."""
    lm = pipe.components.get("language_model")
    layout = getattr(getattr(lm, "config", None), "vocab_layout", None)  # a multi-stream LM has none
    tags = layout.task_tokens if layout is not None else ()
    can_chat = pipe.components.get("tokenizer") is not None and {"[User]", "[Assistant]"} <= set(tags)
    pipe.require_decoder("a spoken reply")
    pipe._require("language_model", "a spoken reply")

    def chat(audio: np.ndarray, rate: int) -> Iterator[np.ndarray]:
        for event in pipe.stream_chat({"array": audio, "sampling_rate": rate}, response_modality="speech",
                                      strict_modality=True, max_new_tokens=options.reply_units,
                                      min_new_tokens=options.reply_units, do_sample=True,
                                      temperature=options.temperature, seed=options.seed,
                                      chunk_units=options.chunk_units, context_units=options.context_units):  # fmt: skip
            if event.kind == "audio":
                yield event.audio

    @torch.no_grad()
    def continuation(audio: np.ndarray, rate: int) -> Iterator[np.ndarray]:
        from transformers import MinNewTokensLengthLogitsProcessor

        from ..models.speech_lm import FastUnitGenerator

        prompt = pipe.encode({"array": audio, "sampling_rate": rate})[0]
        if options.seed is not None:
            torch.manual_seed(options.seed)
        try:
            fast = FastUnitGenerator(lm, compile=False)
        except ValueError:  # a multi-stream / codec LM: generate the reply at once, then vocode it chunk by chunk
            out = pipe.continue_speech({"array": audio, "sampling_rate": rate}, max_new_tokens=options.reply_units,
                                       min_new_tokens=options.reply_units, temperature=options.temperature,
                                       seed=options.seed, vocode=False)  # fmt: skip
            yield from pipe.stream_decode(out.units[0], chunk_units=options.chunk_units,
                                          overlap_units=options.context_units, lookahead_units=0)  # fmt: skip
            return
        length = lm.units_to_input_ids([prompt])[0].shape[1]
        keep_going = [MinNewTokensLengthLogitsProcessor(length, options.reply_units, lm.config.vocab_layout.eos_token_id)]
        units, sent = [], 0
        for unit in fast.stream(prompt, max_new_tokens=options.reply_units, do_sample=True,
                                temperature=options.temperature, logits_processor=keep_going):  # fmt: skip
            units.append(unit)
            if len(units) - sent >= options.chunk_units:
                yield pipe._vocode_chunk(torch.tensor(units), sent, options.context_units)
                sent = len(units)
        if len(units) > sent:
            yield pipe._vocode_chunk(torch.tensor(units), sent, options.context_units)

    return chat if can_chat else continuation


__all__ = ["DuplexEvent", "DuplexOptions", "DuplexSession", "DuplexStep", "EVENT_KINDS", "speech_reply"]
