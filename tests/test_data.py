"""hf_slm.data with the real espeak-ng: synthesis, word timestamps, text sources, cached dataset builder."""

import os
import random

import numpy as np
import pytest
import soundfile

from hf_slm.data import (
    GRAMMAR,
    TEMPLATES,
    EspeakSynthesizer,
    assign_voices,
    generate_sentences,
    list_variants,
    list_voices,
    load_text_corpus,
    read_fortunes,
    read_wordnet_examples,
    realize,
    sample_plan,
    synthesize_dataset,
    synthesize_to_wav,
)
from hf_slm.data import builder as builder_module
from hf_slm.data import espeak as espeak_module


@pytest.fixture(scope="module")
def synth():
    return EspeakSynthesizer("en-us", rate=175, pitch=50)


def frame_rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


# ---------------------------------------------------------------------------------------------- espeak
def test_deterministic_across_calls_and_history(synth):
    text = "The quick brown fox jumps over the lazy dog."
    first = synth.synthesize(text)
    synth.synthesize("Something else entirely, with a question?")
    EspeakSynthesizer("en-gb+f3", rate=300, pitch=80).synthesize("A different voice in between.")
    second = synth.synthesize(text)
    assert first.sampling_rate == 22050
    assert first.waveform.dtype == np.float32 and first.waveform.ndim == 1
    np.testing.assert_array_equal(first.waveform, second.waveform)
    assert first.word_start == second.word_start and first.word_end == second.word_end


@pytest.mark.parametrize(
    "text, words",
    [
        ("Hello world.", ["Hello", "world"]),
        ("The cats, who were 42 years old, don't sleep!", ["The", "cats", "who", "were", "42", "years", "old", "don't", "sleep"]),
        ("   A  —  b.", ["A", "b"]),  # leading spaces, an unspoken dash
        ("Café naïve résumé.", ["Café", "naïve", "résumé"]),  # character (not byte) positions
        ("The cat sleeps on the mat.", ["The", "cat", "sleeps", "on the", "mat"]),  # espeak-ng speaks "on the" as one word
    ],
)  # fmt: skip
def test_words_and_timestamps(synth, text, words):
    result = synth.synthesize(text)
    assert result.words == words
    starts, ends = np.array(result.word_start), np.array(result.word_end)
    assert len(starts) == len(ends) == len(words)
    assert np.all(np.diff(starts) > 0), "word starts must increase"
    assert np.all(starts <= ends) and np.all(ends[:-1] <= starts[1:] + 1e-9)
    assert starts[0] >= 0 and ends[-1] <= result.duration + 1e-9
    for start, end in zip(starts, ends):  # every word holds sound, and its last 5 ms frame is loud
        segment = result.waveform[int(start * 22050) : int(end * 22050)]
        assert frame_rms(segment) > 1e-3
        assert np.abs(segment[-110:]).max() > 1e-3


def test_word_segments_match_words_spoken_alone(synth):
    sentence = synth.synthesize("Yesterday, elephants, bicycles.")
    assert sentence.words == ["Yesterday", "elephants", "bicycles"]
    rate = sentence.sampling_rate
    for word, start, end in zip(sentence.words, sentence.word_start, sentence.word_end):
        alone = synth.synthesize(word)
        assert alone.words == [word]
        alone_length = alone.word_end[0] - alone.word_start[0]
        assert 0.6 < (end - start) / alone_length < 1.6, (word, end - start, alone_length)
        segment = sentence.waveform[int(start * rate) : int(end * rate)]
        alone_audio = alone.waveform[: int(alone.word_end[0] * rate)]
        assert abs(20 * np.log10(frame_rms(segment) / frame_rms(alone_audio))) < 6.0
    # the comma pauses lie between a word's end and the next start and are silent
    for end, next_start in zip(sentence.word_end[:-1], sentence.word_start[1:]):
        assert next_start - end > 0.05
        assert frame_rms(sentence.waveform[int(end * rate) : int(next_start * rate)]) < 1e-3


def test_rate_changes_duration():
    slow = EspeakSynthesizer(rate=100).synthesize("Speaking slowly or quickly.")
    fast = EspeakSynthesizer(rate=350).synthesize("Speaking slowly or quickly.")
    assert slow.duration > 2 * fast.duration
    assert slow.words == fast.words


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"voice": "xx-not-a-voice"}, "list_voices"),
        ({"voice": "en-us+not-a-variant"}, "list_variants"),
        ({"voice": ""}, "voice"),
        ({"rate": 79}, "rate"),
        ({"rate": 451}, "rate"),
        ({"pitch": 100}, "pitch"),
        ({"pitch": -1}, "pitch"),
        ({"rate": 175.0}, "rate"),
        ({"word_gap": -1}, "word_gap"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EspeakSynthesizer(**kwargs)


@pytest.mark.parametrize("text, message", [("", "empty"), ("   \n\t ", "empty"), ("...", "no words"), ("a\x00b", "NUL")])
def test_empty_text(synth, text, message):
    with pytest.raises(ValueError, match=message):
        synth.synthesize(text)


def test_threads_share_espeak_safely(synth):
    from concurrent.futures import ThreadPoolExecutor

    texts = ["First thread text.", "Second one, a bit longer.", "Third.", "Fourth and last."] * 2
    expected = [synth.synthesize(text).waveform for text in texts]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(synth.synthesize, texts))
    for result, reference in zip(results, expected):
        np.testing.assert_array_equal(result.waveform, reference)


def test_voice_listing_and_language_names():
    voices = list_voices()
    assert len(voices) > 50
    assert any("en-gb" in voice.languages for voice in list_voices("en"))
    assert "f3" in list_variants()
    # "en-gb" is a language, not a voice name: it must still select British English, with a variant
    assert EspeakSynthesizer("en-gb+f3").synthesize("Hello.").words == ["Hello"]


def test_missing_library_and_data_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_SLM_ESPEAK_LIBRARY", str(tmp_path / "libespeak-ng.so.1"))
    with pytest.raises(espeak_module.EspeakError, match="apt-get install espeak-ng"):
        espeak_module._library_path()
    monkeypatch.setenv("ESPEAK_DATA_PATH", str(tmp_path))
    with pytest.raises(espeak_module.EspeakError, match="ESPEAK_DATA_PATH"):
        espeak_module._data_path()


_STANDALONE = """
import hashlib
import hf_slm.data.espeak as module
result = module.EspeakSynthesizer("en-gb+f3", rate=200).synthesize("Carried espeak works.")
print(hashlib.sha1(result.waveform.tobytes()).hexdigest(), module._library_info()[1])
"""


def test_carried_library_and_data_folder_give_the_same_audio(tmp_path):
    """A GPU machine may get espeak-ng as an unpacked folder: HF_SLM_ESPEAK_LIBRARY + ESPEAK_DATA_PATH.

    Runs the binding in a fresh process, and checks that it reproduces this process's waveform even though this
    process has synthesised other texts before.
    """
    import hashlib
    import shutil
    import subprocess
    import sys

    source_data = espeak_module._library_info()[1]  # loads the library (and keeps the shared one open)
    library = espeak_module._loaded_path() or ""
    if not os.path.isfile(library):
        pytest.skip("cannot locate the loaded libespeak-ng file (no /proc/self/maps)")
    shutil.copy(library, tmp_path / "libespeak-ng.so.1")
    shutil.copytree(source_data, tmp_path / "share" / "espeak-ng-data")
    env = dict(os.environ, HF_SLM_ESPEAK_LIBRARY=str(tmp_path / "libespeak-ng.so.1"), ESPEAK_DATA_PATH=str(tmp_path / "share"))
    output = subprocess.run([sys.executable, "-c", _STANDALONE], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert output.returncode == 0, output.stderr
    digest, data_path = output.stdout.split()
    assert data_path == str(tmp_path / "share" / "espeak-ng-data")
    here = EspeakSynthesizer("en-gb+f3", rate=200).synthesize("Carried espeak works.")
    assert digest == hashlib.sha1(here.waveform.tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------- corpus
def test_builtin_grammar_deterministic_distinct_and_agreeing():
    sentences = generate_sentences(2000, seed=7)
    assert sentences == generate_sentences(2000, seed=7)
    assert sentences != generate_sentences(2000, seed=8)
    assert len(set(sentences)) == 2000
    assert all(s[0].isupper() and s[-1] in ".?" for s in sentences)
    singular_verbs = {verb for verb, _ in GRAMMAR["intransitive_verbs"]}
    plural_verbs = {verb for _, verb in GRAMMAR["intransitive_verbs"]}
    rng = random.Random(0)
    for _ in range(50):
        plan = sample_plan(rng, "intransitive")
        noun_phrase, verb = plan.slots
        flipped = plan.with_number(1, "plural" if verb.number == "singular" else "singular")
        good, bad = realize(plan).rstrip(".").split()[-1], realize(flipped).rstrip(".").split()[-1]
        assert (good in singular_verbs) == (noun_phrase.number == "singular")
        assert (bad in plural_verbs) == (noun_phrase.number == "singular") and good != bad
    assert set(TEMPLATES) >= {"intransitive", "attractor", "question"}


def test_builtin_grammar_is_spoken_word_for_word(synth):
    for sentence in generate_sentences(5, seed=1):
        words = synth.synthesize(sentence).words
        assert " ".join(words).replace(" ", "") == "".join(sentence.rstrip(".?").split())


def test_text_file_loading_and_errors(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("First sentence.\n\n   \nSecond one here.\nThird.\n", encoding="utf-8")
    assert load_text_corpus(path) == ["First sentence.", "Second one here.", "Third."]
    assert load_text_corpus(str(path), limit=2) == ["First sentence.", "Second one here."]
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_text_corpus(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt"):
        load_text_corpus(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt.*UTF-8"):
        load_text_corpus(tmp_path / "latin1.txt")
    assert load_text_corpus("builtin", limit=3, seed=5) == generate_sentences(3, seed=5)


def test_debian_corpus_readers(tmp_path):
    fortunes = tmp_path / "fortunes"
    fortunes.mkdir()
    (fortunes / "tiny").write_text(
        "You will meet a tall stranger.  Do not trust him.\n%\nBe careful with that axe.\n\t\t-- A. Nonymous\n%\n$$$ 42\n%\n"
    )
    (fortunes / "tiny.dat").write_bytes(b"\x00\x01binary index")
    assert read_fortunes(fortunes) == ["You will meet a tall stranger.", "Do not trust him.", "Be careful with that axe."]
    with pytest.raises(FileNotFoundError, match="apt-get install fortunes-min"):
        read_fortunes(tmp_path / "nowhere")
    wordnet = tmp_path / "wordnet"
    wordnet.mkdir()
    (wordnet / "data.noun").write_text(
        "  1 This software and database is provided\n"
        '00001 03 n 01 dog 0 000 | a member of the genus Canis; "the dog barked all night"; "dogs run fast"\n'
    )
    assert read_wordnet_examples(wordnet) == ["The dog barked all night.", "Dogs run fast."]
    with pytest.raises(FileNotFoundError, match="apt-get install wordnet-base"):
        read_wordnet_examples(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------- builder
TEXTS = ["Hello world.", "The cat sleeps.", "Two dogs run quickly, then stop.", "Is it raining?"]


@pytest.fixture(scope="module")
def dataset_and_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("speech_cache")
    dataset = synthesize_dataset(TEXTS, voices=("en-us", "en-gb"), rates=(150, 220), sampling_rate=8000,
                                 cache_dir=cache, show_progress=False)  # fmt: skip
    return dataset, cache


def test_dataset_columns_audio_and_alignment(dataset_and_cache, synth):
    dataset, _ = dataset_and_cache
    assert dataset.column_names == ["audio", "text", "voice", "rate", "pitch", "words", "word_start", "word_end", "duration"]
    assert dataset.features["audio"].sampling_rate == 8000
    assert dataset["voice"] == ["en-us", "en-us", "en-gb", "en-gb"] and dataset["rate"] == [150, 220, 150, 220]
    for row in dataset:
        samples = row["audio"].get_all_samples()
        assert samples.sample_rate == 8000 and samples.data.shape[0] == 1
        assert abs(samples.data.shape[1] / 8000 - row["duration"]) < 1e-3
        assert row["word_end"][-1] <= row["duration"] + 1e-3
        assert len(row["words"]) == len(row["word_start"]) == len(row["word_end"])
    # row 0 is en-us at rate 150: the same audio as synthesising directly, resampled
    direct = EspeakSynthesizer("en-us", rate=150).synthesize(TEXTS[0])
    assert dataset[0]["words"] == direct.words
    np.testing.assert_allclose(dataset[0]["word_start"], direct.word_start, atol=1e-6)
    assert abs(dataset[0]["duration"] - direct.duration) < 1e-3


def test_cache_hit_is_identical_and_does_no_work(dataset_and_cache, monkeypatch):
    dataset, cache = dataset_and_cache
    monkeypatch.setattr(builder_module, "_results", lambda *a, **k: pytest.fail("cache miss: synthesised again"))
    again = synthesize_dataset(TEXTS, voices=("en-us", "en-gb"), rates=(150, 220), sampling_rate=8000,
                               cache_dir=cache, show_progress=False)  # fmt: skip
    assert again.with_format("arrow")[:].equals(dataset.with_format("arrow")[:])
    assert [p.name for p in cache.iterdir()] == [again.cache_files[0]["filename"].split(os.sep)[-2]]


def test_failed_build_leaves_no_cache(tmp_path, monkeypatch):
    real_wav_bytes = builder_module.wav_bytes
    calls = []

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated interruption")
        return real_wav_bytes(*args)

    monkeypatch.setattr(builder_module, "wav_bytes", failing)
    with pytest.raises(KeyboardInterrupt):
        synthesize_dataset(TEXTS, cache_dir=tmp_path, show_progress=False)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(builder_module, "wav_bytes", real_wav_bytes)
    assert len(synthesize_dataset(TEXTS, cache_dir=tmp_path, show_progress=False)) == len(TEXTS)


def test_stale_temporary_folder_of_a_dead_process_is_removed(tmp_path):
    import socket
    import subprocess

    child = subprocess.Popen(["true"])  # once reaped, its pid belongs to no process
    child.wait()
    stale = tmp_path / f".abc.tmp-{socket.gethostname()}-{child.pid}-deadbeef"
    (stale / "dataset").mkdir(parents=True)
    alive = tmp_path / f".abc.tmp-{socket.gethostname()}-{os.getpid()}-cafecafe"
    alive.mkdir()
    builder_module._remove_stale_temporaries(tmp_path)
    assert not stale.exists() and alive.exists()


def test_num_proc_2_equals_num_proc_1(dataset_and_cache, tmp_path):
    dataset, _ = dataset_and_cache
    parallel = synthesize_dataset(TEXTS, voices=("en-us", "en-gb"), rates=(150, 220), sampling_rate=8000,
                                  cache_dir=tmp_path, num_proc=2, show_progress=False)  # fmt: skip
    assert parallel.with_format("arrow")[:].equals(dataset.with_format("arrow")[:])


@pytest.mark.parametrize("assignment, rows", [("cycle", 5), ("random", 5), ("product", 20)])
def test_assignments(assignment, rows):
    jobs = assign_voices(5, ("a", "b"), (150, 200), (50,), assignment, seed=0)
    assert len(jobs) == rows
    assert jobs == assign_voices(5, ("a", "b"), (150, 200), (50,), assignment, seed=0)
    if assignment == "cycle":
        assert [job[1:3] for job in jobs] == [("a", 150), ("a", 200), ("b", 150), ("b", 200), ("a", 150)]
    if assignment == "product":
        assert {job[1:] for job in jobs} == {(v, r, 50) for v in "ab" for r in (150, 200)}


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"texts": []}, ValueError),
        ({"texts": ["fine", "  "]}, ValueError),
        ({"texts": "a single string"}, TypeError),
        ({"voices": ("nope-voice",)}, ValueError),
        ({"assignment": "zip"}, ValueError),
        ({"sampling_rate": 0}, ValueError),
        ({"num_proc": 0}, ValueError),
        ({"texts": ["Fine text.", "..."]}, ValueError),  # nothing speakable: named by its index
    ],
)
def test_builder_bad_arguments(tmp_path, kwargs, error):
    arguments = {"texts": TEXTS, "cache_dir": tmp_path, "show_progress": False, **kwargs}
    with pytest.raises(error):
        synthesize_dataset(**arguments)
    assert not any(tmp_path.iterdir())


def test_synthesize_to_wav(tmp_path):
    path = tmp_path / "out" / "hello.wav"
    result = synthesize_to_wav("Hello there.", path, sampling_rate=16000, voice="en-us", rate=200)
    audio, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000 and result.sampling_rate == 16000
    assert len(audio) == len(result.waveform) and result.words == ["Hello", "there"]
    assert [p.name for p in path.parent.iterdir()] == ["hello.wav"]
