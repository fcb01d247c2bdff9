"""The multi-voice corpus: cached per chunk, resumable, parallel, same rows as synthesize_dataset, no eval leak."""

from __future__ import annotations

import numpy as np
import pytest

from hf_slm.data import normalize_sentence, split_texts, synthesize_dataset
from hf_slm.data import corpus_jobs, english_voices, open_vocabulary_speech, synthesize_corpus

TEXTS = ["The cat sat on the mat.", "Hello there, my friend.", "A third short sentence."]


def test_english_voices_cover_accents_and_variants():
    voices = english_voices()
    assert {"en-us", "en-gb", "en-gb-scotland", "en-us+f3", "en-gb+m3", "en-029+whisper"} <= set(voices)
    assert len(voices) == len(set(voices)) > 500
    assert "en-us+whisper" not in english_voices(exclude_variants=["whisper"])
    assert set(english_voices(variants=())) == {v for v in voices if "+" not in v}
    with pytest.raises(ValueError, match=r"unknown espeak-ng variant\(s\) \['nope'\]"):
        english_voices(variants=["f3", "nope"])


def test_corpus_jobs_speak_each_text_n_times_reproducibly():
    jobs = corpus_jobs(4, ["en-us", "en-gb"], [150, 200], [40, 60], renditions=3, seed=1)
    assert [j[0] for j in jobs] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert jobs == corpus_jobs(4, ["en-us", "en-gb"], [150, 200], [40, 60], renditions=3, seed=1)
    assert len({j[1:] for j in jobs}) > 1


def test_corpus_is_parallel_cached_per_chunk_and_resumes(tmp_path):
    import torch

    # The parent's OpenMP pool has run (as after any training): a forked worker running a multi-threaded torch op
    # would deadlock in libgomp.
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    (torch.ones(1 << 20) + 1).sum()
    torch.set_num_threads(threads)
    kwargs = dict(voices=["en-us", "en-gb+f3", "en-us+m3"], rates=[160, 190], pitches=[40, 60], renditions=2,
                  cache_dir=tmp_path, num_proc=2, chunk_size=4, show_progress=False)  # fmt: skip
    ds = synthesize_corpus(TEXTS, **kwargs)
    assert len(ds) == 6 and ds["text"] == [t for t in TEXTS for _ in range(2)]
    jobs = corpus_jobs(3, kwargs["voices"], [160, 190], [40, 60], renditions=2)
    assert list(zip(ds["voice"], ds["rate"], ds["pitch"])) == [j[1:] for j in jobs]
    # the same audio as synthesize_dataset for the same text, voice, rate and pitch
    row = ds[3]
    ref = synthesize_dataset([row["text"]], voices=row["voice"], rates=row["rate"], pitches=row["pitch"],
                             cache_dir=tmp_path / "ref", show_progress=False)[0]  # fmt: skip
    np.testing.assert_array_equal(row["audio"]["array"], ref["audio"]["array"])
    assert row["words"] == ref["words"]

    (folder,) = tmp_path.glob("corpus-*")
    files = sorted(folder.glob("chunk-*.arrow"))
    assert len(files) == 4  # 2 chunks x 2 processes
    stamps = {f: f.stat().st_mtime_ns for f in files}
    files[-1].unlink()  # a kill while the last shard was being written
    again = synthesize_corpus(TEXTS, **kwargs)
    assert again["text"] == ds["text"] and again["duration"] == ds["duration"]
    for f in files[:-1]:
        assert f.stat().st_mtime_ns == stamps[f], f"{f.name} was synthesised again"
    assert files[-1].exists()


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="`renditions` must be a positive integer, got 0"):
        synthesize_corpus(TEXTS, voices=["en-us"], renditions=0, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="Unknown espeak-ng voice 'xx-nowhere'"):
        synthesize_corpus(TEXTS, voices=["en-us", "xx-nowhere"], cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"`pitch` must be an integer in \[0, 99\], got 120"):
        synthesize_corpus(TEXTS, voices=["en-us"], pitches=[50, 120], cache_dir=tmp_path)


def test_open_vocabulary_training_speech_holds_no_evaluation_item(tmp_path):
    """Eval sentences (also spelling variants) and held-out words never reach the training speech."""
    rng = np.random.default_rng(0)
    words = ["river", "stone", "garden", "yellow", "quiet", "table", "window", "dog", "bird", "lamp", "road"]
    sentences = [" ".join(rng.choice(words, 4)).capitalize() + "." for _ in range(60)]
    sentences += ["The zyzzyva sleeps.", "THE ZYZZYVA SLEEPS!", "A quokka runs home."]
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("\n".join(sentences) + "\n")
    options = dict(eval_fraction=0.2, heldout_word_fraction=1.0, max_heldout_word_sentences=1)
    split = split_texts(sentences, **options)
    assert {"zyzzyva", "quokka"} <= split.heldout_words and split.eval
    train = open_vocabulary_speech("train", sources=[str(corpus_file)], voices=["en-us", "en-gb"], rates=[175],
                                   pitches=[50], cache_dir=tmp_path / "c", show_progress=False, split_options=options)  # fmt: skip
    trained = {normalize_sentence(t) for t in train["text"]}
    assert trained and trained.isdisjoint(normalize_sentence(t) for t in split.eval)
    spoken = {w.lower() for row in train["words"] for w in row}
    assert spoken.isdisjoint(split.heldout_words)
