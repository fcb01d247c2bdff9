"""Two-speaker dialogues (hf_slm.data.dialogue) measured by the turn-taking statistics (hf_slm.evaluation.turn_taking).

The statistics are measured from the audio by Silero VAD, so these tests check the generator and the measurement
end to end: what the generator was told to do must be what the VAD finds.
"""

import json

import numpy as np
import pytest
import soundfile as sf

from evaluation_helpers import one_torch_thread  # noqa: F401

from hf_slm.cli.main import main
from hf_slm.data.dialogue import DialogueTiming, dialogues_to_dataset, generate_dialogues, write_dialogues
from hf_slm.evaluation.metrics.prosody.prosody import f0_from_audio
from hf_slm.evaluation.turn_taking import channel_ipus, turn_taking_events, turn_taking_statistics

# short dialogues (one sentence a turn, six turns) keep the VAD under a few seconds a set
SHORT = {"num_turns": (6, 6), "sentences_per_turn": (1, 1), "pause_probability": 0.0}
NO_OVERLAP = DialogueTiming(gap_mean=0.6, gap_std=0.2, overlap_probability=0.0, interruption_probability=0.0,
                            backchannel_probability=0.0, **SHORT)  # fmt: skip
MUCH_OVERLAP = DialogueTiming(overlap_probability=0.9, overlap_mean=0.5, interruption_probability=0.1,
                              backchannel_probability=1.0, **SHORT)  # fmt: skip


@pytest.fixture(scope="module")
def calm():
    return generate_dialogues(4, NO_OVERLAP, seed=1)


@pytest.fixture(scope="module")
def busy():
    return generate_dialogues(3, MUCH_OVERLAP, seed=2)


def measured_events(dialogue):
    return turn_taking_events(*(channel_ipus(dialogue.audio[c], dialogue.sampling_rate) for c in range(2)))


def test_events_follow_dgslm_definitions():
    # A speaks, pauses, speaks; B backchannels inside A's speech; B takes the turn with an overlap; A after a gap
    a = [(0.0, 1.0), (1.5, 3.0), (5.0, 6.0)]
    b = [(2.0, 2.3), (2.8, 4.5)]
    events = turn_taking_events(a, b)
    assert events["pause"] == [(1.0, 1.5)]
    assert events["overlap_within"] == [(2.0, 2.3)]
    assert events["overlap_between"] == [(2.8, 3.0)]
    assert events["gap"] == [(4.5, 5.0)]
    assert len(events["ipu"]) == 5


def test_no_overlap_probability_gives_no_measured_overlap_and_gaps_track_the_mean(calm):
    measured, drawn = [], []
    for dialogue in calm:
        events = measured_events(dialogue)
        assert events["overlap_within"] == [] and events["overlap_between"] == []
        measured += [end - start for start, end in events["gap"]]
        turns = [event for event in dialogue.events if event["kind"] == "turn"]
        drawn += [after["start"] - before["end"] for before, after in zip(turns, turns[1:])]
    assert len(measured) == len(drawn) == 20  # every turn change is measured as one gap
    # each gap edge is found by the VAD to a 32 ms frame, so the mean may be off by about two frames (64 ms), plus
    # where a soft word ending fades: 70 ms (measured: 11 ms on these, 70 ms at worst for one gap)
    assert abs(np.mean(measured) - np.mean(drawn)) < 0.07
    # the drawn gaps are a sample of the configured gamma(0.6, 0.2): 20 of them have a mean within 3 std / sqrt(20)
    assert abs(np.mean(drawn) - NO_OVERLAP.gap_mean) < 3 * NO_OVERLAP.gap_std / np.sqrt(len(drawn))


def test_high_overlap_probability_gives_overlaps(busy, calm):
    stats = turn_taking_statistics([(d.audio, d.sampling_rate) for d in busy])
    assert stats["overlap_between"]["count"] >= 10  # 15 turn changes, about 90 % with overlap
    assert stats["overlap_within"]["count"] >= 3  # a backchannel in most of 18 turns
    calm_stats = turn_taking_statistics([(d.audio, d.sampling_rate) for d in calm[:1]])
    assert stats["gap"]["per_minute"] < calm_stats["gap"]["per_minute"]


def test_channels_hold_different_voices_and_words_lie_in_their_channel_speech(calm):
    dialogue = calm[0]
    assert dialogue.voices[0] != dialogue.voices[1]
    medians = []
    for channel in range(2):
        f0 = np.asarray(f0_from_audio(dialogue.audio[channel], dialogue.sampling_rate))
        medians.append(np.median(f0[f0 > 0]))
    assert medians[1] > 1.3 * medians[0]  # en-us+f3 is a female voice, en-us a male one
    for channel in range(2):
        ipus = channel_ipus(dialogue.audio[channel], dialogue.sampling_rate)
        other = channel_ipus(dialogue.audio[1 - channel], dialogue.sampling_rate)
        assert dialogue.words[channel]
        for start, end in zip(dialogue.word_start[channel], dialogue.word_end[channel]):
            middle = (start + end) / 2
            assert any(a - 0.05 <= middle <= b + 0.05 for a, b in ipus), (channel, start, end)
            assert not any(a + 0.05 <= middle <= b - 0.05 for a, b in other)  # calm dialogues never overlap


def test_dataset_keeps_both_channels(calm):
    dataset = dialogues_to_dataset(calm[:2])
    decoded = dataset[0]["audio"].get_all_samples()
    assert tuple(decoded.data.shape) == calm[0].audio.shape
    assert np.abs(decoded.data.numpy() - calm[0].audio).max() < 1e-3  # 16-bit PCM
    assert dataset[0]["words"] == calm[0].words


def test_timing_is_validated():
    with pytest.raises(ValueError, match="gap_mean"):
        DialogueTiming(gap_mean=-1.0)
    with pytest.raises(ValueError, match="overlap_probability"):
        DialogueTiming(overlap_probability=1.5)
    with pytest.raises(ValueError, match="voices"):
        generate_dialogues(1, voices=("en-us", "en-us"))


def test_cli_compares_two_sets(tmp_path, calm, busy, capsys):
    write_dialogues(tmp_path / "calm", calm[:1], NO_OVERLAP)
    write_dialogues(tmp_path / "busy", busy[:1], MUCH_OVERLAP)
    assert sorted(p.name for p in (tmp_path / "calm").iterdir()) == [
        "dataset", "dialogue_00000.json", "dialogue_00000.wav", "timing.json"]  # fmt: skip
    out = tmp_path / "tt.json"
    assert main(["evaluate", "turn-taking", "--audio", str(tmp_path / "calm"), str(tmp_path / "busy" / "dialogue_00000.wav"),
                 "--names", "calm,busy", "--output", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())["sets"]
    assert result["calm"]["overlap_between"]["count"] == 0 < result["busy"]["overlap_between"]["count"]
    assert "Overlap (between)" in capsys.readouterr().out
    assert out.with_suffix(".md").is_file()
    mono = tmp_path / "mono.wav"
    sf.write(mono, np.zeros(16000, dtype=np.float32), 16000)
    assert main(["evaluate", "turn-taking", "--audio", str(mono), "--output", str(tmp_path / "m.json")]) == 1


def test_interrupted_speaker_stops_after_the_interruption():
    timing = DialogueTiming(interruption_probability=1.0, backchannel_probability=0.0, **SHORT)
    dialogue = generate_dialogues(1, timing, seed=3)[0]
    turns = [event for event in dialogue.events if event["kind"] == "turn"]
    cut = [(before, after) for before, after in zip(turns, turns[1:]) if before["interrupted"]]
    assert len(cut) >= 3  # sentences shorter than 0.6 s are not interrupted
    rate = dialogue.sampling_rate
    for before, after in cut:
        assert after["onset"] == "interruption" and after["start"] < before["end"]  # the turns overlap
        silent_until = min([t["start"] for t in turns if t["channel"] == before["channel"] and t["start"] > before["end"]]
                           + [dialogue.duration])  # fmt: skip
        stopped = dialogue.audio[before["channel"], int(before["end"] * rate) + 1 : int(silent_until * rate)]
        assert np.abs(stopped).max(initial=0.0) == 0.0  # nothing of the cut sentence is left
        words = list(zip(dialogue.word_start[before["channel"]], dialogue.word_end[before["channel"]]))
        assert not any(before["end"] < start < silent_until for start, _ in words)  # cut words are not listed
        assert max(end for start, end in words if before["start"] <= start <= before["end"]) <= before["end"] + 1e-3
