"""Spoken minimal pairs: the builder, the JSONL reader, and scoring with a tiny pipeline's LM."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from evaluation_helpers import (  # noqa: F401
    LEXICAL_COLUMNS,
    one_torch_thread,
    synthesize,
    tiny_pipeline,
    train_lm,
    write_zerospeech_tree,
)
from hf_slm.data.corpus import GRAMMAR
from hf_slm.evaluation import build_lexical_pairs, build_syntactic_pairs, read_pairs, score_pairs, write_pairs
from hf_slm.evaluation.pairs import (
    PHENOMENA,
    build_storycloze_pairs,
    english_dictionary,
    format_pair_table,
    make_nonword,
    read_storycloze_pairs,
    read_zerospeech_pairs,
)


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
def test_storycloze_pairs_end_a_story_with_its_own_or_another_ending():
    pairs = build_storycloze_pairs(seed=0)
    assert len(pairs) == 72 and len({p["id"] for p in pairs}) == 72
    for pair in pairs:
        good, bad = pair["good"].split(". "), pair["bad"].split(". ")
        assert good[:2] == bad[:2] and good[-1] != bad[-1]  # same two-sentence story, different ending
        assert "{" not in pair["good"] + pair["bad"] and pair["phenomenon"] == "topic_storycloze"
    assert pairs[0]["good"] in {p["good"] for p in build_storycloze_pairs(n=72, seed=1)}
    assert len(build_storycloze_pairs(n=5)) == 5
    with pytest.raises(ValueError, match="at least two scenes"):
        build_storycloze_pairs(scenes=[("a.", "b.", "c.")])


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
    header, rule = table.splitlines()[:2]
    assert set(rule) == {"-"} and len(rule) == len(header)


def test_scoring_shows_progress_when_asked(pipeline, pairs, capsys):
    score_pairs(pipeline, pairs[:2], batch_size=1)
    assert "scoring" not in capsys.readouterr().err
    score_pairs(pipeline, pairs[:2], batch_size=1, show_progress=True)
    err = capsys.readouterr().err
    assert "speech of the pairs" in err and "scoring" in err and "4/4" in err  # 2 pairs = 4 utterances, 1 per batch


def test_markdown_report_rules_span_their_headers_and_the_plot_draws_chance(tmp_path):
    from hf_slm.evaluation.report import bar_figure, write_report

    summary = {"accuracy": 0.75, "a_long_metric_name": 3, "pipeline": "default"}
    lines = write_report(tmp_path / "r.md", "T", summary).read_text().splitlines()
    header, rule, *rows = [line for line in lines if line.startswith("|")]
    assert all(set(cell.strip()) == {"-"} for cell in rule.strip("|").split("|"))
    assert [len(c) for c in rule.split("|")] == [len(c) for c in header.split("|")]  # each rule as wide as its header
    assert all(len(row) == len(header) for row in rows)
    assert [c.strip() for c in rows[1].strip("|").split("|")] == ["a_long_metric_name", "3"]
    fig, ax = bar_figure({"a": 0.8, "b": 0.6}, "accuracy", "accuracy", chance=0.5)
    (line,) = ax.get_lines()
    assert list(line.get_ydata()) == [0.5, 0.5] and "0.5" in ax.get_legend().get_texts()[0].get_text()


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


# ------------------------------------------------------------------------------------- ZeroSpeech / StoryCloze layouts
def test_zerospeech_layout_scores_like_the_text_pairs(pipeline, pairs, tmp_path):
    lexical = [p for p in pairs if p["type"] == "lexical"][:3]
    syntactic = [p for p in pairs if p["type"] == "syntactic"]
    write_zerospeech_tree(tmp_path, "lexical", lexical)
    write_zerospeech_tree(tmp_path, "syntactic", syntactic)
    read = read_zerospeech_pairs(tmp_path, "lexical")
    assert sorted((p["good"], p["bad"]) for p in read) == sorted((p["good"], p["bad"]) for p in lexical)
    assert score_pairs(pipeline, read)["accuracy"] == 1.0
    result = score_pairs(pipeline, read_zerospeech_pairs(tmp_path, "syntactic"))
    assert result["accuracy"] == 1.0 and set(result["per_phenomenon"]) == {p["phenomenon"] for p in syntactic}
    # the gold file decides which side is good: marking the other side correct gives 0%
    write_zerospeech_tree(tmp_path / "flipped", "lexical", lexical, flip=True)
    assert score_pairs(pipeline, read_zerospeech_pairs(tmp_path / "flipped", "lexical"))["accuracy"] == 0.0


def test_zerospeech_layout_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="gold.csv"):
        read_zerospeech_pairs(tmp_path, "lexical")
    with pytest.raises(ValueError, match="unknown ZeroSpeech task"):
        read_zerospeech_pairs(tmp_path, "semantic")
    folder = tmp_path / "lexical" / "dev"
    folder.mkdir(parents=True)
    (folder / "gold.csv").write_text("filename,id,word,correct\n")
    with pytest.raises(ValueError, match=r"missing columns \['voice'\]"):
        read_zerospeech_pairs(tmp_path, "lexical")
    (folder / "gold.csv").write_text(",".join(LEXICAL_COLUMNS) + "\nabc,1,Alex,3,cat,k a t,3,1\n")
    with pytest.raises(FileNotFoundError, match="abc.wav"):
        read_zerospeech_pairs(tmp_path, "lexical")
    sf.write(folder / "abc.wav", np.zeros(1600), 16000)
    with pytest.raises(ValueError, match="has no bad side"):
        read_zerospeech_pairs(tmp_path, "lexical")


def test_storycloze_folder_pairs_by_index(pipeline, pairs, tmp_path):
    for index, pair in enumerate(pairs[:3]):  # slamkit's layout: <index>_<name>.wav, the first name is the good side
        for name, text in (("a_correct", pair["good"]), ("b_wrong", pair["bad"])):
            audio = synthesize([text])[0]
            sf.write(tmp_path / f"{index}_{name}.wav", audio["array"], audio["sampling_rate"], subtype="PCM_16")
    read = read_storycloze_pairs(tmp_path)
    assert [p["id"] for p in read] == ["storycloze-0", "storycloze-1", "storycloze-2"]
    assert all(p["good_audio"].endswith("a_correct.wav") for p in read)
    assert score_pairs(pipeline, read)["accuracy"] == 1.0
    # the same stories as a dataset with positive / negative audio columns (the Hub copies' layout)
    import datasets

    wavs = sorted(tmp_path.glob("*.wav"))
    ds = datasets.Dataset.from_dict({"positive": list(map(str, wavs[0::2])), "negative": list(map(str, wavs[1::2]))})
    ds.cast_column("positive", datasets.Audio()).cast_column("negative", datasets.Audio()).save_to_disk(tmp_path / "ds")
    from_dataset = score_pairs(pipeline, read_storycloze_pairs(tmp_path / "ds"))
    assert from_dataset["accuracy"] == 1.0 and "good_audio" not in from_dataset["items"][0]
    np.testing.assert_allclose([i["good_nll"] for i in from_dataset["items"]],
                               [i["good_nll"] for i in score_pairs(pipeline, read)["items"]], rtol=1e-5)  # fmt: skip
    with pytest.raises(ValueError, match="no audio column"):
        read_storycloze_pairs(tmp_path / "ds", good_column="correct")
    (tmp_path / "2_b_wrong.wav").unlink()
    with pytest.raises(ValueError, match="exactly two files"):
        read_storycloze_pairs(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .wav files"):
        read_storycloze_pairs(tmp_path / "empty")


# ---------------------------------------------------------------------------------------------------- phone topline
def test_a_phone_lm_topline_tells_words_of_its_text_from_non_words():
    """`fit_phone_lm` + `score_pairs_ngram`: an n-gram over the phonemes of the grammar's sentences prefers the
    grammar's words to their non-words; fitted on the non-words instead, it prefers those."""
    from hf_slm.data import generate_sentences
    from hf_slm.evaluation import score_pairs_ngram
    from hf_slm.training import fit_phone_lm

    pairs = build_lexical_pairs(n=40, seed=0)
    result = score_pairs_ngram(fit_phone_lm(generate_sentences(1000, seed=0), order=4), pairs)
    assert result["n"] == 40 and result["order"] == 4 and result["accuracy"] >= 0.75
    assert {"good_logprob", "bad_logprob", "correct"} <= set(result["items"][0])
    reversed_lm = fit_phone_lm([p["bad"] for p in pairs] * 3, order=4)
    assert score_pairs_ngram(reversed_lm, pairs)["accuracy"] <= 0.25
    with pytest.raises(ValueError, match=r"pair 1 \(no id\) has no good text; an n-gram topline scores text pairs"):
        score_pairs_ngram(reversed_lm, [pairs[0], {"good_audio": "a.wav", "bad": "zat"}])
