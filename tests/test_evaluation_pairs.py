"""Spoken minimal pairs: the builder, the JSONL reader, and scoring with a tiny pipeline's LM."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from evaluation_helpers import one_torch_thread, synthesize, tiny_pipeline, train_lm  # noqa: F401
from hf_slm.data.corpus import GRAMMAR
from hf_slm.evaluation import build_lexical_pairs, build_syntactic_pairs, read_pairs, score_pairs, write_pairs
from hf_slm.evaluation.pairs import PHENOMENA, english_dictionary, format_pair_table, make_nonword


# ---------------------------------------------------------------------------------------------------- builder
def test_lexical_pairs_are_one_letter_from_a_word_and_not_words():
    pairs = build_lexical_pairs(n=40, seed=3)
    dictionary = english_dictionary()
    assert len(pairs) == 40 and pairs == build_lexical_pairs(n=40, seed=3)
    assert len({p["bad"] for p in pairs}) == 40
    for pair in pairs:
        good, bad = pair["good"], pair["bad"]
        assert len(good) == len(bad) and sum(a != b for a, b in zip(good, bad)) == 1
        assert bad not in dictionary and good in dictionary
        assert pair["type"] == "lexical"


def test_lexical_pairs_for_another_language_use_its_word_list_and_lexicon():
    rng = __import__("random").Random(0)
    assert make_nonword("haus", rng, known={"haus", "maus", "laus"}, vowels="aeiouäöü", consonants="lm") is not None
    # every one-letter neighbour is known -> no non-word
    assert make_nonword("ab", rng, known={"eb", "ib", "ob", "ub", "ab"}, vowels="aeiou", consonants="") is None
    pairs = build_lexical_pairs(["katze", "hund", "haus"], known_words={"maus", "hand"}, seed=0)
    assert {p["good"] for p in pairs} == {"katze", "hund", "haus"}
    assert not {p["bad"] for p in pairs} & {"maus", "hand", "katze", "hund", "haus"}
    with pytest.raises(ValueError, match="word list is empty"):
        build_lexical_pairs([" "])


def test_syntactic_pairs_flip_the_agreement_of_one_verb():
    singular_plural = {form: i for key in ("intransitive_verbs", "transitive_verbs", "copulas", "auxiliaries")
                       for pair in ([GRAMMAR[key]] if key in ("copulas", "auxiliaries") else GRAMMAR[key])
                       for i, form in enumerate(pair)}  # fmt: skip
    pairs = build_syntactic_pairs(5, seed=1)
    assert len(pairs) == 5 * len(PHENOMENA)
    for pair in pairs:
        good, bad = pair["good"].split(), pair["bad"].split()
        diff = [i for i, (g, b) in enumerate(zip(good, bad)) if g != b]
        assert len(good) == len(bad) and len(diff) == 1, pair
        g, b = good[diff[0]].strip("?.").lower(), bad[diff[0]].strip("?.").lower()
        assert {singular_plural[g], singular_plural[b]} == {0, 1}, pair
    attractor = [p for p in pairs if p["phenomenon"] == "agreement_attractor"]
    assert len(attractor) == 5
    with pytest.raises(ValueError, match="unknown phenomena"):
        build_syntactic_pairs(1, phenomena=["island"])


# ---------------------------------------------------------------------------------------------------- reading
def test_read_pairs_round_trip_and_errors(tmp_path):
    pairs = build_lexical_pairs(n=3)
    assert read_pairs(write_pairs(pairs, tmp_path / "p.jsonl")) == pairs
    bad_file = tmp_path / "bad.jsonl"
    bad_file.write_text('{"good": "a", "bad": "b"}\n{"good": "a"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: text pairs need"):
        read_pairs(bad_file)
    bad_file.write_text("not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not valid JSON"):
        read_pairs(bad_file)
    bad_file.write_text('{"good_audio": "missing.wav", "bad_audio": "missing.wav"}\n')
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        read_pairs(bad_file)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_pairs(tmp_path / "none.jsonl")


# ---------------------------------------------------------------------------------------------------- scoring
@pytest.fixture(scope="module")
def pairs():
    return build_lexical_pairs(n=6) + build_syntactic_pairs(
        1, phenomena=["agreement_simple", "agreement_attractor", "agreement_copula"]
    )


@pytest.fixture(scope="module")
def pipeline(pairs):
    """Tokenizer fitted on both sides; the LM is trained on the good sides only."""
    pipe = tiny_pipeline([p[side] for p in pairs for side in ("good", "bad")], with_vocoder=False)
    loss = train_lm(pipe.language_model, pipe.encode(synthesize([p["good"] for p in pairs])), steps=150)
    assert loss < 0.5, loss
    return pipe


def test_an_lm_trained_on_the_good_sides_only_scores_100_percent(pipeline, pairs):
    result = score_pairs(pipeline, pairs)
    assert result["accuracy"] == 1.0 and result["accuracy_normalized"] == 1.0 and result["n"] == len(pairs)
    assert set(result["per_phenomenon"]) == {"word_vs_nonword", "agreement_simple", "agreement_attractor",
                                             "agreement_copula"}  # fmt: skip
    for item in result["items"]:
        assert item["good_nll"] < item["bad_nll"] and item["correct"] == 1.0
        assert item["good_tokens"] > 2 and item["bad_tokens"] > 2
    # swapping the sides of every pair turns 100% into 0%
    swapped = [{**p, "good": p["bad"], "bad": p["good"]} for p in pairs]
    assert score_pairs(pipeline, swapped, normalize=True)["accuracy"] == 0.0
    table = format_pair_table(result)
    assert "word_vs_nonword" in table and "1.000" in table


def test_audio_pairs_score_like_the_same_text_pairs(pipeline, pairs, tmp_path):
    few = pairs[:2]
    lines = []
    for i, pair in enumerate(few):
        entry = {"id": pair["id"], "phenomenon": pair["phenomenon"]}
        for side, audio in zip(("good", "bad"), synthesize([pair["good"], pair["bad"]])):
            sf.write(tmp_path / f"{i}_{side}.wav", audio["array"], audio["sampling_rate"], subtype="FLOAT")
            entry[f"{side}_audio"] = f"{i}_{side}.wav"
        lines.append(json.dumps(entry))
    (tmp_path / "audio.jsonl").write_text("\n".join(lines) + "\n")
    from_audio = score_pairs(pipeline, read_pairs(tmp_path / "audio.jsonl"))
    from_text = score_pairs(pipeline, few)
    np.testing.assert_allclose([i["good_nll"] for i in from_audio["items"]], [i["good_nll"] for i in from_text["items"]],
                               rtol=1e-5)  # fmt: skip
    assert from_audio["accuracy"] == 1.0


def test_scoring_needs_a_language_model(pairs):
    pipe = tiny_pipeline(["the cat sleeps"], with_vocoder=False)
    pipe.register_modules(language_model=None)
    with pytest.raises(ValueError, match="needs a language model"):
        score_pairs(pipe, pairs[:1])
