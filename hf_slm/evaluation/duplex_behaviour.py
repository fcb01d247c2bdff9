"""Full-Duplex-Bench-style behaviour checks of a live duplex system (Lin et al., 2025, "Full-Duplex-Bench"): does
it yield when the user barges in, keep the turn through a backchannel, and take the turn after the user's pause?

Each scenario is a user-channel recording made with espeak-ng: the user says a sentence of the grammar and pauses,
so that the system takes the turn and replies; then, while the system speaks, the user

- **barge_in**: says another sentence (in another voice): the system should stop (yield);
- **backchannel**: says "mm-hm", "yeah", ... (`hf_slm.data.dialogue.BACKCHANNELS`): it should keep speaking;
- **pause**: (no system speech needed) the user's turn holds a short pause (``short_pause_s``, below the session's
  ``turn_pause_s``) between two sentences, then a long one (``long_pause_s``): the system should wait through the
  short pause and take the turn after the long one.

The recording is fed to `SpokenChatPipeline.duplex_session` in chunks (``chunk_s``), and the system's events and
emitted audio are read back. Latencies are in seconds of the audio clock: **stop latency** = user onset -> the last
system sample played; **yield latency** = onset -> the reply dropped; **take-turn latency** = the end of the user's
speech -> the system's first reply sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("barge_in", "backchannel", "pause")


@dataclass
class DuplexScenario:
    """One user-channel recording. ``marks``: planned times in seconds (``prompt_end``; ``onset`` / ``end`` of the
    barge-in or backchannel; for ``pause``: ``pause_start``, ``resume`` and ``speech_end``)."""

    kind: str
    audio: np.ndarray
    sampling_rate: int
    texts: list[str]
    marks: dict


def make_scenarios(kinds=KINDS, num_per_kind: int = 3, sampling_rate: int = 16000, seed: int = 0,
                   turn_pause_s: float = 0.8, system_lead_s: float = 1.0, short_pause_s: float = 0.4,
                   long_pause_s: float = 2.0, min_barge_in_s: float = 1.6, voices=None) -> list[DuplexScenario]:  # fmt: skip
    """``num_per_kind`` scenarios of each kind (`KINDS`). The barge-in or backchannel starts ``system_lead_s`` after
    the system is expected to start speaking (``turn_pause_s`` after the prompt ends, the session's setting); a
    barge-in is the next grammar sentence of at least ``min_barge_in_s``."""
    from ..data.corpus import generate_sentences
    from ..data.dialogue import BACKCHANNELS, DEFAULT_VOICES
    from ..data.builder import make_synthesizer
    from ..models.unit_encoder import load_audio

    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"duplex scenario kinds must be among {KINDS}, got {list(kinds)}")
    if isinstance(num_per_kind, bool) or not isinstance(num_per_kind, int) or num_per_kind < 1:
        raise ValueError(f"num_per_kind must be a positive int, got {num_per_kind!r}")
    if not short_pause_s < turn_pause_s < long_pause_s:
        raise ValueError(f"the pauses must satisfy short_pause_s < turn_pause_s < long_pause_s, got {short_pause_s}, "
                         f"{turn_pause_s}, {long_pause_s}")  # fmt: skip
    voices = tuple(voices or DEFAULT_VOICES)
    synthesizers = {voice: make_synthesizer(voice) for voice in voices}
    sentences = iter(generate_sentences(40 * len(kinds) * num_per_kind, seed=seed))

    def say(text: str, voice: str) -> np.ndarray:
        result = synthesizers[voice].synthesize(text)
        return load_audio({"array": result.waveform, "sampling_rate": result.sampling_rate}, sampling_rate)

    def silence(seconds: float) -> np.ndarray:
        return np.zeros(int(round(seconds * sampling_rate)), dtype=np.float32)

    scenarios = []
    for index in range(num_per_kind):
        user, other = voices[index % len(voices)], voices[(index + 1) % len(voices)]
        for kind in kinds:
            lead = silence(0.5)
            prompt_text = next(sentences)
            prompt = say(prompt_text, user)
            parts, texts = [lead, prompt], [prompt_text]
            prompt_end = (len(lead) + len(prompt)) / sampling_rate
            if kind == "pause":
                second_text = next(sentences)
                second = say(second_text, user)
                parts += [silence(short_pause_s), second, silence(long_pause_s)]
                texts.append(second_text)
                resume = prompt_end + short_pause_s
                marks = {"prompt_end": prompt_end, "pause_start": prompt_end, "resume": resume,
                         "speech_end": resume + len(second) / sampling_rate}  # fmt: skip
            else:
                text = next(sentences) if kind == "barge_in" else BACKCHANNELS[index % len(BACKCHANNELS)]
                speech = say(text, other)
                while kind == "barge_in" and len(speech) < min_barge_in_s * sampling_rate:
                    # one sentence, longer than a backchannel: two joined ones would pause in between, and a first
                    # sentence under backchannel_s followed by that pause is a backchannel
                    text = next(sentences)
                    speech = say(text, other)
                onset = prompt_end + turn_pause_s + system_lead_s
                tail = 0.5 if kind == "barge_in" else 3.0  # a backchannel: wait for the reply to end
                parts += [silence(turn_pause_s + system_lead_s), speech, silence(tail)]
                texts.append(text)
                marks = {"prompt_end": prompt_end, "onset": onset, "end": onset + len(speech) / sampling_rate}
            scenarios.append(DuplexScenario(kind, np.concatenate(parts), sampling_rate, texts, marks))
    return scenarios


def run_scenario(pipe, scenario: DuplexScenario, chunk_s: float = 0.1, **options) -> dict:
    """Feed one scenario to a fresh `duplex_session` of ``pipe`` (``options``: `DuplexOptions` fields); returns what
    the system did: ``events`` (dicts) and the behaviour measured for the scenario's kind."""
    session = pipe.duplex_session(sampling_rate=scenario.sampling_rate, **options)
    size = max(1, int(round(chunk_s * scenario.sampling_rate)))
    marks, last_before_turn = scenario.marks, None
    for start in range(0, len(scenario.audio), size):
        step = session.feed(scenario.audio[start : start + size])
        turns = [e for e in step.events if e.kind == "turn" and e.time > marks.get("onset", np.inf)]
        if turns and last_before_turn is None:
            last_before_turn = session.last_system_sample  # the interrupted reply's last sample
    events = session.events
    result = {"kind": scenario.kind, "texts": scenario.texts, "marks": marks, "events": [e.as_dict() for e in events]}
    if scenario.kind == "pause":
        turns = [e for e in events if e.kind == "turn"]
        early = [e for e in turns if marks["pause_start"] < e.time <= marks["speech_end"]]
        late = [e for e in turns if e.time > marks["speech_end"]]
        starts = [e for e in events if e.kind == "system_start" and e.time > marks["speech_end"]]
        result.update(waited=not early, took_turn=bool(late) and bool(starts),
                      take_latency=starts[0].time - marks["speech_end"] if starts and late else None)  # fmt: skip
        return result
    onset = marks["onset"]
    started = [e for e in events if e.kind == "system_start" and e.time <= onset]
    speaking_at_onset = bool(started) and not any(e.kind == "system_end" and e.time <= onset for e in events)
    barge = [e for e in events if e.kind == "barge_in" and e.time >= onset]
    last = last_before_turn if last_before_turn is not None else session.last_system_sample
    result["speaking_at_onset"] = speaking_at_onset
    if scenario.kind == "barge_in":
        result.update(yielded=bool(barge), yield_latency=barge[0].time - onset if barge else None,
                      stop_latency=(last - onset) if barge and last is not None else None)  # fmt: skip
    else:
        ended = any(e.kind == "system_end" and e.time > marks["end"] for e in events)
        result.update(kept_turn=not barge and ended, yielded=bool(barge))
    return result


def duplex_behaviour(pipe, scenarios: list[DuplexScenario], chunk_s: float = 0.1, **options) -> dict:
    """Run every scenario and summarise: rates per behaviour and latencies (median / p90 / mean, seconds)."""
    runs = [run_scenario(pipe, scenario, chunk_s=chunk_s, **options) for scenario in scenarios]
    by_kind = {kind: [r for r in runs if r["kind"] == kind] for kind in KINDS}
    summary = {}
    if by_kind["barge_in"]:
        rs = by_kind["barge_in"]
        summary["barge_in"] = {"n": len(rs), "yield_rate": _rate(r["yielded"] for r in rs),
                               "stop_latency": _spread(r["stop_latency"] for r in rs),
                               "yield_latency": _spread(r["yield_latency"] for r in rs),
                               "speaking_at_onset_rate": _rate(r["speaking_at_onset"] for r in rs)}  # fmt: skip
    if by_kind["backchannel"]:
        rs = by_kind["backchannel"]
        summary["backchannel"] = {"n": len(rs), "keep_rate": _rate(r["kept_turn"] for r in rs),
                                  "yield_rate": _rate(r["yielded"] for r in rs),
                                  "speaking_at_onset_rate": _rate(r["speaking_at_onset"] for r in rs)}  # fmt: skip
    if by_kind["pause"]:
        rs = by_kind["pause"]
        summary["pause"] = {"n": len(rs), "wait_rate": _rate(r["waited"] for r in rs),
                            "take_turn_rate": _rate(r["took_turn"] for r in rs),
                            "take_latency": _spread(r["take_latency"] for r in rs)}  # fmt: skip
    return {"summary": summary, "runs": runs, "chunk_s": chunk_s, "options": options}


def session_dialogues(pipe, dialogues, user_channel: int = 0, chunk_s: float = 0.1,
                      **options) -> list[tuple[np.ndarray, int]]:  # fmt: skip
    """Replay one side of each reference dialogue as the user of a live duplex session and record the system.

    ``dialogues``: stereo ``([2, T], sampling_rate)`` pairs (or `hf_slm.data.dialogue.Dialogue`s). Channel
    ``user_channel`` is fed, at the feature extractor's rate, in chunks of ``chunk_s`` seconds to a fresh
    ``pipe.duplex_session(**options)`` (``barge_in=False``: the turn-only cascade); the other speaker is replaced by
    the system's audio. Returns stereo ``([2, T], rate)`` dialogues at the pipeline's output rate, the user on
    ``user_channel`` and the system on the other, ready for `hf_slm.evaluation.turn_taking.turn_taking_statistics`.
    """
    from ..models.unit_encoder import load_audio

    if user_channel not in (0, 1):
        raise ValueError(f"user_channel must be 0 or 1 (a stereo dialogue's channel), got {user_channel!r}")
    rate_in = int(pipe.feature_extractor.sampling_rate)
    out = []
    for item in dialogues:
        audio, rate = (item.audio, item.sampling_rate) if hasattr(item, "audio") else item
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 2 or audio.shape[0] != 2:
            raise ValueError(f"a dialogue must be a [2, T] array (one speaker per channel), got shape {audio.shape}")
        session = pipe.duplex_session(sampling_rate=rate_in, **options)
        system, _ = session.run(load_audio({"array": audio[user_channel], "sampling_rate": rate}, rate_in), chunk_s)
        user = load_audio({"array": audio[user_channel], "sampling_rate": rate}, session.output_rate)
        user = np.pad(user, (0, max(0, len(system) - len(user))))[: len(system)]
        stereo = np.zeros((2, len(system)), dtype=np.float32)
        stereo[user_channel], stereo[1 - user_channel] = user, system
        out.append((stereo, session.output_rate))
    return out


def _rate(values) -> float:
    values = list(values)
    return sum(map(bool, values)) / len(values) if values else float("nan")


def _spread(values) -> dict:
    values = np.array([v for v in values if v is not None], dtype=float)
    if not values.size:
        return {"n": 0}
    return {"n": int(values.size), "median": float(np.median(values)), "p90": float(np.percentile(values, 90)),
            "mean": float(values.mean()), "max": float(values.max())}  # fmt: skip


def format_duplex_table(summary: dict) -> str:
    """One row per behaviour: its rate and latency (median / p90 seconds)."""
    rows = [("behaviour", "n", "rate", "latency median / p90 (s)")]

    def lat(spread):
        return f"{spread['median']:.3f} / {spread['p90']:.3f}" if spread.get("n") else "-"

    if "barge_in" in summary:
        s = summary["barge_in"]
        rows.append(("yields to barge-in (stop)", str(s["n"]), f"{s['yield_rate']:.2f}", lat(s["stop_latency"])))
        rows.append(("  reply dropped", str(s["n"]), f"{s['yield_rate']:.2f}", lat(s["yield_latency"])))
    if "backchannel" in summary:
        s = summary["backchannel"]
        rows.append(("keeps turn on backchannel", str(s["n"]), f"{s['keep_rate']:.2f}", "-"))
    if "pause" in summary:
        s = summary["pause"]
        rows.append(("waits through short pause", str(s["n"]), f"{s['wait_rate']:.2f}", "-"))
        rows.append(("takes turn after pause", str(s["n"]), f"{s['take_turn_rate']:.2f}", lat(s["take_latency"])))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


__all__ = ["DuplexScenario", "KINDS", "duplex_behaviour", "format_duplex_table", "make_scenarios", "run_scenario",
           "session_dialogues"]
