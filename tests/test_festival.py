"""Festival voices (speech made from human recordings) as a second synthesis backend, with the real `festival`."""

import os
import subprocess
import sys

import numpy as np
import pytest

from hf_slm.data import (
    FestivalError,
    FestivalSynthesizer,
    corpus_voices,
    english_voices,
    festival_voices,
    synthesize_dataset,
    synthesize_to_wav,
)
from hf_slm.data.builder import cache_key

VOICES = ["festival:cmu_us_slt_arctic_hts", "festival:kal_diphone", "festival:ked_diphone"]
TEXT = "Hello world, it's 42 degrees and the cat sat on the mat."


def _f0(waveform, sampling_rate):
    """Median autocorrelation F0 (60-400 Hz) over loud 40 ms frames: enough to tell a shift of a few semitones."""
    frame, found = int(0.04 * sampling_rate), []
    for start in range(0, len(waveform) - frame, frame // 2):
        segment = waveform[start : start + frame]
        if np.sqrt(np.mean(segment**2)) < 0.02:
            continue
        correlation = np.correlate(segment, segment, "full")[frame - 1 :]
        low, high = sampling_rate // 400, sampling_rate // 60
        found.append(sampling_rate / (low + np.argmax(correlation[low:high])))
    return float(np.median(found))


def test_voices_are_listed_and_mix_with_espeak_keywords():
    assert festival_voices() == VOICES
    assert corpus_voices("festival") == VOICES
    mixed = corpus_voices("en-us, festival,festival:kal_diphone,english")
    assert mixed[:4] == ["en-us", *VOICES] and len(mixed) == len(set(mixed)) == 3 + len(english_voices())


@pytest.mark.parametrize("voice", VOICES)
def test_each_voice_speaks_the_tokens_with_ordered_times(voice):
    result = FestivalSynthesizer(voice).synthesize(TEXT, phonemes=True)
    assert result.words == ["Hello", "world", "it's", "42", "degrees", "and", "the", "cat", "sat", "on", "the", "mat"]
    starts, ends = np.array(result.word_start), np.array(result.word_end)
    assert (np.diff(starts) >= 0).all() and (starts <= ends).all() and (ends[:-1] <= starts[1:] + 1e-9).all()
    assert 0 < starts[0] and ends[-1] <= result.duration and 2.0 < result.duration < 6.0
    assert result.sampling_rate == (32000 if "hts" in voice else 16000)
    assert np.abs(result.waveform).max() > 0.05 and result.phones[0] == "pau" and "hh" in result.phones


def test_same_text_same_audio_in_any_batch():
    alone = FestivalSynthesizer(VOICES[0], pitch=65).synthesize("Same text.").waveform
    batched = FestivalSynthesizer(VOICES[0], pitch=65).synthesize_many(["Other first.", "Same text."])[1].waveform
    np.testing.assert_array_equal(alone, batched)


@pytest.mark.parametrize("voice", [VOICES[0], VOICES[1]])  # HTS (shifted after synthesis) and diphone (intonation)
def test_rate_scales_duration_and_pitch_moves_f0(voice):
    base, fast, low, high = (FestivalSynthesizer(voice, rate=rate, pitch=pitch).synthesize(TEXT)
                             for rate, pitch in ((175, 50), (260, 50), (175, 20), (175, 80)))  # fmt: skip
    assert 0.55 < fast.duration / base.duration < 0.8  # 175 / 260 = 0.67 of the durations, pauses included
    f0 = [_f0(r.waveform, r.sampling_rate) for r in (low, base, high)]
    assert f0[0] < 0.9 * f0[1] and f0[2] > 1.1 * f0[1], f0  # about -/+ 3.6 semitones (x 0.81 / 1.23)
    assert abs(high.duration - base.duration) < 0.05 * base.duration


def test_mixed_dataset_and_its_cache(tmp_path):
    texts = ["Hello there.", "The dog ran home.", "It is 42 degrees."]
    args = dict(voices=("en-us", "festival:ked_diphone"), rates=(175,), pitches=(40,), sampling_rate=16000)
    dataset = synthesize_dataset(texts, **args, cache_dir=tmp_path, num_proc=2, show_progress=False)
    assert dataset["voice"] == ["en-us", "festival:ked_diphone", "en-us"]
    assert dataset["words"][1] == ["The", "dog", "ran", "home"]
    festival = FestivalSynthesizer("festival:ked_diphone", pitch=40).synthesize("The dog ran home.")
    assert abs(dataset["duration"][1] - festival.duration) < 1e-3
    espeak_only = cache_key(texts, ("en-us",), (175,), (40,), 16000, "cycle", 0)
    assert cache_key(texts, ("en-us", "festival:ked_diphone"), (175,), (40,), 16000, "cycle", 0) != espeak_only
    path = tmp_path / "one.wav"
    assert synthesize_to_wav("Hello.", path, sampling_rate=16000, voice="festival:kal_diphone").words == ["Hello"]
    assert path.stat().st_size > 1000


def test_bad_input_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="Unknown Festival voice 'festival:nope'; installed: .*kal_diphone"):
        FestivalSynthesizer("festival:nope")
    with pytest.raises(ValueError, match=r"`rate` must be an integer in \[80, 450\], got 20"):
        FestivalSynthesizer(VOICES[1], rate=20)
    with pytest.raises(ValueError, match=r"Festival speaks no word in `texts\[1\]` '\.\.\.'"):
        FestivalSynthesizer(VOICES[1]).synthesize_many(["Fine.", "..."])
    with pytest.raises(ValueError, match=r"no ASCII letter or digit"):  # Festival itself segfaults on these
        FestivalSynthesizer(VOICES[1]).synthesize("Привет мир")
    assert FestivalSynthesizer(VOICES[1]).synthesize("café 日本 ok").words[-1] == "ok"  # a Latin word is enough
    with pytest.raises(ValueError, match=r"texts\[2\]"):  # named by the dataset's own index
        synthesize_dataset(["One.", "Two.", " - "], voices=("festival:kal_diphone",), cache_dir=tmp_path,
                           show_progress=False)  # fmt: skip
    code = ("import hf_slm.data as d\ntry:\n    d.FestivalSynthesizer('festival:kal_diphone')\n"
            "except d.FestivalError as e:\n    print(e)")  # fmt: skip
    env = dict(os.environ, HF_SLM_FESTIVAL="no-such-festival")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "'no-such-festival' is not on PATH" in out and "apt-get install festival" in out
    assert issubclass(FestivalError, RuntimeError)


def test_evaluation_speech_can_be_a_festival_voice():
    from hf_slm.evaluation.abx import build_abx_items

    items = build_abx_items(words=("cat", "dog"), voices=("festival:kal_diphone", "en-us"), rates=(175,))
    assert [(item["label"], item["speaker"]) for item in items] == [
        ("cat", "festival:kal_diphone"), ("dog", "festival:kal_diphone"), ("cat", "en-us"), ("dog", "en-us")]
    assert items[0]["audio"]["sampling_rate"] == 16000 and items[2]["audio"]["sampling_rate"] == 22050


def test_voice_weights_give_each_group_its_share(tmp_path):
    from hf_slm.data import corpus_jobs, synthesize_corpus, voice_probabilities

    names, shares = voice_probabilities("english,festival", "english=3,festival=1")
    assert len(names) == len(english_voices()) + 3 and abs(sum(shares) - 1) < 1e-9
    assert abs(sum(p for v, p in zip(names, shares) if v.startswith("festival:")) - 0.25) < 1e-9
    jobs = corpus_jobs(4000, "english,festival", [150, 200], [40, 60], seed=0, voice_weights="english=3,festival=1")
    assert 0.22 < np.mean([voice.startswith("festival:") for _, voice, _, _ in jobs]) < 0.28
    assert {rate for *_, rate, _ in jobs} == {150, 200} and {pitch for *_, pitch in jobs} == {40, 60}
    for bad, message in (("nope=1", "not among the voices' groups"), ("festival", "'group=weight'"),
                         ("festival=-1", "finite, >= 0")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            voice_probabilities("en-us,festival", bad)
    texts = ["One cat.", "Two dogs.", "Three birds.", "Four fish."]
    weighted = synthesize_corpus(texts, voices="en-us,festival", voice_weights={"festival": 1, "en-us": 1}, rates=[175],
                                 pitches=[50], cache_dir=tmp_path, show_progress=False)  # fmt: skip
    expected = corpus_jobs(4, "en-us,festival", [175], [50], voice_weights={"festival": 1, "en-us": 1})
    assert weighted["voice"] == [voice for _, voice, _, _ in expected]
    assert len(list(tmp_path.glob("corpus-*"))) == 1
    synthesize_corpus(texts[:1], voices="en-us", rates=[175], pitches=[50], cache_dir=tmp_path, show_progress=False)
    assert len(list(tmp_path.glob("corpus-*"))) == 2
