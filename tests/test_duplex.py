"""Live duplex (`SpokenChatPipeline.duplex_session`) on the shipped `default` variant with real espeak-ng speech and
Silero VAD: it takes the turn after the user's pause, falls silent when the user barges in and drops its reply, keeps
speaking through a backchannel; the Full-Duplex-Bench-style checks (`hf_slm.evaluation.duplex_behaviour`) and
`hf-slm evaluate duplex-behaviour` measure exactly that. Latencies asserted here are in audio time (deterministic)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hf_slm.cli import main
from hf_slm.data.vad import StreamingVAD
from hf_slm.data.dialogue import generate_dialogues
from hf_slm.evaluation.duplex_behaviour import duplex_behaviour, make_scenarios, run_scenario, session_dialogues
from hf_slm.evaluation.turn_taking import channel_ipus, onsets_over, turn_taking_events
from hf_slm.pipelines import SpokenChatPipeline
from hf_slm.pipelines.duplex import DuplexOptions

RATE = 16000
CHUNK_S = 0.1


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(1)
    return SpokenChatPipeline.from_pretrained("default")


@pytest.fixture(scope="module")
def scenarios():
    return {s.kind: s for s in make_scenarios(num_per_kind=1, sampling_rate=RATE, seed=1)}


def _silent_between(audio, rate, start, end):
    return not np.abs(audio[int(start * rate) : int(end * rate)]).any()


def test_the_system_stops_when_the_user_barges_in(pipe, scenarios):
    scenario = scenarios["barge_in"]
    session = pipe.duplex_session(sampling_rate=RATE)
    system, events = session.run(scenario.audio, chunk_s=CHUNK_S)
    assert len(system) == round(len(scenario.audio) / RATE * pipe.sampling_rate), "one system sample per user sample"
    kinds = [e.kind for e in events]
    assert kinds[:4] == ["user_start", "user_end", "turn", "system_start"]
    onset = scenario.marks["onset"]
    start = next(e for e in events if e.kind == "system_start").time
    assert start < onset and np.abs(system[int(start * pipe.sampling_rate) : int(onset * pipe.sampling_rate)]).any()
    hold = next(e for e in events if e.kind == "hold")
    barge = next(e for e in events if e.kind == "barge_in")
    # the stated latency: the onset is confirmed after min_speech_s of speech, and acts at the end of its chunk
    bound = DuplexOptions().min_speech_s + CHUNK_S + 0.1  # + the VAD's lag on espeak-ng onsets (a window or three)
    assert onset <= hold.time <= onset + bound
    assert hold.time < barge.time <= onset + DuplexOptions().backchannel_s + bound
    assert "dropped" in barge.reason and barge.dropped_s >= 0
    # nothing of the reply is played from the hold to the end of the recording (no new turn: the user's tail is short)
    assert "turn" not in kinds[kinds.index("barge_in") :]
    assert _silent_between(system, pipe.sampling_rate, hold.time, len(scenario.audio) / RATE)
    assert session.last_system_sample == pytest.approx(hold.time, abs=1e-3)


def test_a_backchannel_does_not_make_it_yield(pipe, scenarios):
    scenario = scenarios["backchannel"]
    options = DuplexOptions()
    session = pipe.duplex_session(sampling_rate=RATE)
    system, events = session.run(scenario.audio, chunk_s=CHUNK_S)
    kinds = [e.kind for e in events]
    assert "barge_in" not in kinds and "backchannel" in kinds and "resume" in kinds
    backchannel = next(e for e in events if e.kind == "backchannel")
    assert backchannel.duration < options.backchannel_s
    assert kinds[-1] == "system_end" and events[-1].time > scenario.marks["end"]
    # the whole reply was played: nothing dropped, only paused while the user spoke
    hop = pipe.vocoder.config.hop_length
    assert np.count_nonzero(system) == pytest.approx(options.reply_units * hop, rel=0.01)


def test_a_barge_in_in_phrases_is_one_barge_in(pipe, scenarios):
    """A short phrase, a 0.32 s pause, then more, over the system's reply: one barge-in (one hold, no resume); with
    overlap_silence_s = 0.2 the first phrase ends at the pause and is taken for a backchannel."""
    from hf_slm.data.espeak import EspeakSynthesizer
    from hf_slm.models.unit_encoder import load_audio

    scenario = scenarios["barge_in"]
    def say(text):
        result = EspeakSynthesizer("en-us+f3").synthesize(text)
        return load_audio({"array": result.waveform, "sampling_rate": result.sampling_rate}, RATE)

    phrases = np.concatenate([say("Hey."), np.zeros(int(0.32 * RATE), np.float32), say("Stop it, not that one.")])
    onset = int(scenario.marks["onset"] * RATE)
    audio = np.concatenate([scenario.audio[:onset], phrases, np.zeros(RATE // 2, np.float32)])
    _, events = pipe.duplex_session(sampling_rate=RATE).run(audio, chunk_s=CHUNK_S)
    kinds = [e.kind for e in events]
    assert kinds.count("hold") == 1 and "resume" not in kinds and "barge_in" in kinds, kinds
    _, events = pipe.duplex_session(sampling_rate=RATE, overlap_silence_s=0.2).run(audio, chunk_s=CHUNK_S)
    assert "resume" in [e.kind for e in events], "with a short silence, the first phrase is taken for a backchannel"


def test_it_waits_through_a_short_pause_and_takes_the_turn_after_a_long_one(pipe, scenarios):
    scenario = scenarios["pause"]
    result = run_scenario(pipe, scenario, chunk_s=CHUNK_S)
    assert result["waited"] and result["took_turn"]
    turn_pause = DuplexOptions().turn_pause_s
    assert turn_pause <= result["take_latency"] <= turn_pause + CHUNK_S + 0.2
    # a shorter turn_pause_s than the user's pause: it takes the turn in the middle of the user's turn
    hasty = run_scenario(pipe, scenario, chunk_s=CHUNK_S, turn_pause_s=0.3, min_silence_s=0.1)
    assert not hasty["waited"]


def test_behaviour_rates_and_the_turn_only_baseline(pipe, scenarios):
    result = duplex_behaviour(pipe, [scenarios["barge_in"], scenarios["backchannel"]], chunk_s=CHUNK_S)
    summary = result["summary"]
    assert summary["barge_in"]["yield_rate"] == 1.0 and summary["backchannel"]["keep_rate"] == 1.0
    assert summary["barge_in"]["speaking_at_onset_rate"] == 1.0
    ours = summary["barge_in"]["stop_latency"]["median"]
    baseline = run_scenario(pipe, scenarios["barge_in"], chunk_s=CHUNK_S, barge_in=False)
    assert not baseline["yielded"]
    assert [e["kind"] for e in baseline["events"]].count("system_end") == 1  # it spoke its whole turn over the user
    no_hold = run_scenario(pipe, scenarios["barge_in"], chunk_s=CHUNK_S, hold_on_onset=False)
    assert no_hold["yielded"] and no_hold["stop_latency"] >= DuplexOptions().backchannel_s > ours


def test_replayed_dialogue_the_cascade_never_starts_over_the_user_and_live_duplex_overlaps_briefly(pipe):
    dialogue = generate_dialogues(2, seed=1)[1]  # held out; its speaker 1 starts over speaker 0 (a backchannel)
    sets = {"reference": (dialogue.audio, dialogue.sampling_rate)}
    (sets["cascade"],) = session_dialogues(pipe, [dialogue], chunk_s=CHUNK_S, barge_in=False)
    (sets["duplex"],) = session_dialogues(pipe, [dialogue], chunk_s=CHUNK_S)
    ipus = {name: [channel_ipus(audio[c], rate) for c in range(2)] for name, (audio, rate) in sets.items()}
    assert [len(i[0]) for i in ipus.values()] == [len(ipus["reference"][0])] * 3  # the same user channel in each
    slack = CHUNK_S + 0.1  # one chunk of committed audio + the streaming vs offline VAD's onset difference
    assert onsets_over(*ipus["reference"], slack=slack)
    assert ipus["cascade"][1] and not onsets_over(*ipus["cascade"], slack=slack)  # it only takes the turn...
    pause, user = DuplexOptions().turn_pause_s, ipus["cascade"][0]
    for start, _ in ipus["cascade"][1]:  # ... after the user's pause (or just as the user starts again)
        ends = [e for s, e in user if e <= start]
        assert not ends or start - max(ends) >= pause - slack or any(abs(start - s) < slack for s, _ in user)
    overlaps = {name: [e - s for kind in ("overlap_within", "overlap_between") for s, e in turn_taking_events(*i)[kind]]
                for name, i in ipus.items()}  # fmt: skip
    assert max(overlaps["cascade"]) > 1.0  # the user speaks on and the cascade talks over it
    assert ipus["duplex"][1] and max(overlaps["duplex"], default=0.0) < 0.3  # live duplex falls silent at once


def test_stream_duplex_takes_int16_chunks_of_any_size(pipe, scenarios):
    audio = scenarios["pause"].audio
    pcm = (audio * 32767).astype(np.int16)
    sizes = [1600, 800, 2400, 3200]
    chunks, start = [], 0
    while start < len(pcm):
        size = sizes[len(chunks) % len(sizes)]
        chunks.append(pcm[start : start + size])
        start += size
    steps = list(pipe.stream_duplex(chunks, sampling_rate=RATE))
    assert sum(len(s.audio) for s in steps) == round(len(pcm) / RATE * pipe.sampling_rate)
    assert "system_start" in [e.kind for s in steps for e in s.events]


def test_a_codec_lm_variant_replies_through_its_codec(scenarios):
    """A multi-stream codec LM (no FastUnitGenerator, no vocoder: the codec speaks): the reply is generated at the
    turn and streamed through the codec's decoder."""
    from transformers import LlamaConfig

    from hf_slm.models.speech_lm import MultiStreamSpeechLMConfig, MultiStreamSpeechLMForCausalLM
    from hf_slm.models.unit_encoder import SpeechFeatureExtractor
    from tiny_components import random_codebooks, tiny_rvq_codec

    torch.manual_seed(0)
    codec = random_codebooks(tiny_rvq_codec()).eval()
    backbone = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=4096)  # fmt: skip
    config = MultiStreamSpeechLMConfig(text_config=backbone, stream_vocab_sizes=[codec.codebook_size] * codec.num_codebooks,
                                       frame_rate=codec.frame_rate)  # fmt: skip
    codec_pipe = SpokenChatPipeline(feature_extractor=SpeechFeatureExtractor(sampling_rate=codec.sampling_rate),
                                    speech_tokenizer=codec, language_model=MultiStreamSpeechLMForCausalLM(config).eval())
    scenario = scenarios["pause"]
    session = codec_pipe.duplex_session(sampling_rate=RATE, reply_units=20, chunk_units=8)
    system, events = session.run(scenario.audio, chunk_s=CHUNK_S)
    kinds = [e.kind for e in events]
    assert "turn" in kinds and "system_start" in kinds and kinds[-1] == "system_end"
    hop = round(codec.sampling_rate / codec.frame_rate)
    assert np.count_nonzero(system) == pytest.approx(20 * hop, rel=0.05), "the whole 20-frame reply was played"


def test_bad_arguments_are_refused_with_the_value(pipe):
    with pytest.raises(ValueError, match="sampling_rate must be a positive integer.*0"):
        pipe.duplex_session(sampling_rate=0)
    with pytest.raises(ValueError, match="backchannel_s must be a positive number.*-1"):
        pipe.duplex_session(backchannel_s=-1)
    with pytest.raises(ValueError, match="min_silence_s .* must be shorter than turn_pause_s"):
        pipe.duplex_session(turn_pause_s=0.2, min_silence_s=0.3)
    with pytest.raises(ValueError, match="chunk_units must be an int >= 1, got 0"):
        pipe.duplex_session(chunk_units=0)
    with pytest.raises(TypeError):
        pipe.duplex_session(no_such_option=1)
    with pytest.raises(ValueError, match="respond must be a callable"):
        pipe.duplex_session(respond="hello")
    session = pipe.duplex_session(sampling_rate=RATE)
    with pytest.raises(ValueError, match=r"mono audio \[samples\], got shape \(2, 1600\)"):
        session.feed(np.zeros((2, 1600), np.float32))
    with pytest.raises(ValueError, match="empty chunk"):
        session.feed(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="6.00 s is longer than 5.0 s"):
        session.feed(np.zeros(6 * RATE, np.float32))
    with pytest.raises(ValueError, match="float audio .* or int16 PCM, got dtype int64"):
        session.feed(np.zeros(1600, np.int64))
    with pytest.raises(ValueError, match="NaN"):
        session.feed(np.full(1600, np.nan, np.float32))
    with pytest.raises(ValueError, match=r"chunk_s must be a duration in \(0, 5.0\] seconds, got 0"):
        session.run(np.zeros(RATE, np.float32), chunk_s=0)
    assert session.time == 0.0, "refused chunks are not counted"


def test_streaming_vad_instances_are_independent(scenarios):
    speech = scenarios["barge_in"].audio
    one, two = StreamingVAD(RATE), StreamingVAD(RATE)
    alone = [p for chunk in np.array_split(speech, 40) for _, p in one.feed(chunk)]
    one.reset()
    interleaved = []
    for chunk in np.array_split(speech, 40):  # another stream in between must not disturb this one's state
        two.feed(np.random.default_rng(0).standard_normal(len(chunk)).astype(np.float32) * 0.3)
        interleaved += [p for _, p in one.feed(chunk)]
    np.testing.assert_allclose(alone, interleaved, atol=1e-6)
    assert max(alone) > 0.9 and min(alone) < 0.1
    with pytest.raises(ValueError, match="sampling_rate must be a positive integer"):
        StreamingVAD(-16000)


def test_cli_duplex_behaviour(tmp_path, capsys):
    out = tmp_path / "duplex.json"
    assert main(["evaluate", "duplex-behaviour", "--kinds", "pause", "--num", "1", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["summary"]["pause"]["take_turn_rate"] == 1.0
    assert out.with_suffix(".md").is_file() and "takes turn after pause" in capsys.readouterr().out
    assert main(["evaluate", "duplex-behaviour", "--kinds", "barge", "--output", str(tmp_path / "x.json")]) == 1
    assert "unknown scenario kind(s) ['barge']" in capsys.readouterr().err
