"""The held-out text split: no evaluation sentence and no held-out word reaches training (synthetic and Debian text)."""

import random

import pytest

from hf_slm.data import (
    load_text_corpus,
    load_text_split,
    normalize_sentence,
    read_wordnet_glosses,
    split_texts,
)
from hf_slm.data.corpus import FORTUNES_DIR, WORDNET_DIR

needs_debian_text = pytest.mark.skipif(
    not (WORDNET_DIR / "data.noun").is_file() or not FORTUNES_DIR.is_dir(),
    reason="apt packages wordnet-base and fortunes missing (`make system-deps` installs them)",
)


def words_of(sentences):
    return {word for sentence in sentences for word in normalize_sentence(sentence).split()}


def assert_disjoint(split):
    train_keys = {normalize_sentence(s) for s in split.train}
    eval_keys = {normalize_sentence(s) for s in split.eval}
    assert not train_keys & eval_keys
    assert not words_of(split.train) & split.heldout_words
    for sentence in split.eval:  # an eval sentence is there by its hash or because it holds a held-out word
        assert sentence not in split.train


def test_split_is_disjoint_deterministic_and_order_free():
    rng = random.Random(0)
    vocabulary = [f"w{i}" for i in range(300)]
    sentences = [" ".join(rng.choice(vocabulary) for _ in range(6)).capitalize() + "." for _ in range(2000)]
    split = split_texts(sentences, eval_fraction=0.1, heldout_word_fraction=0.2, max_heldout_word_sentences=40)
    assert_disjoint(split)
    assert split.heldout_words and 0 < len(split.eval) < len(split.train)
    shuffled = sentences[::-1]
    again = split_texts(shuffled, eval_fraction=0.1, heldout_word_fraction=0.2, max_heldout_word_sentences=40)
    assert set(again.train) == set(split.train) and again.heldout_words == split.heldout_words
    # another salt is another split
    other = split_texts(sentences, eval_fraction=0.1, heldout_word_fraction=0.2, max_heldout_word_sentences=40,
                        salt="other")  # fmt: skip
    assert set(other.eval) != set(split.eval)


def test_spelling_variants_are_one_item_and_named_words_are_held_out():
    sentences = ["The dog barked.", "the DOG barked!", "A cat slept.", "A zebra ran.", "The zebra slept."]
    split = split_texts(sentences, eval_fraction=0.0, heldout_word_fraction=0.0, heldout_words=["Zebra"])
    assert split.train == ["The dog barked.", "A cat slept."]
    assert split.eval == ["A zebra ran.", "The zebra slept."]
    assert split.heldout_words == {"zebra"}
    everything = split_texts(sentences, eval_fraction=1.0, heldout_word_fraction=0.0)
    assert everything.train == [] and len(everything.eval) == 4


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"eval_fraction": 1.5}, "eval_fraction"),
        ({"heldout_word_fraction": -0.1}, "heldout_word_fraction"),
        ({"max_heldout_word_sentences": 0}, "max_heldout_word_sentences"),
        ({"heldout_words": "zebra"}, "single str"),
    ],
)
def test_bad_split_arguments(kwargs, error):
    with pytest.raises((ValueError, TypeError), match=error):
        split_texts(["A cat slept."], **kwargs)
    with pytest.raises(TypeError, match=r"sentences\[1\]"):
        split_texts(["A cat slept.", None])
    with pytest.raises(ValueError, match="'train' or 'eval'"):
        load_text_split("test")


@needs_debian_text
def test_open_vocabulary_split_of_the_debian_corpora():
    train, evaluation = load_text_split("train"), load_text_split("eval")
    assert len(train) > 50_000 and len(evaluation) > 1000
    split = split_texts(load_text_corpus("wordnet") + load_text_corpus("fortunes"))
    assert split.train == train and split.eval == evaluation
    assert_disjoint(split)
    unseen = words_of(evaluation) - words_of(train)
    assert len(unseen) > 100 and unseen >= split.heldout_words
    assert load_text_corpus("open-eval", limit=5, seed=1) == load_text_split("eval", limit=5, seed=1)
    assert set(load_text_corpus("open-train", limit=50)) <= set(train)


@needs_debian_text
def test_heldout_word_pairs_are_never_in_training_text(tmp_path):
    """`build-pairs --words open-heldout`: every good word is a held-out word, absent from every open-train sentence."""
    import json

    from hf_slm.cli import main
    from hf_slm.data import load_heldout_words

    words = load_heldout_words()
    assert len(words) > 200 and all(word.isalpha() for word in words)
    out = tmp_path / "pairs.jsonl"
    assert main(["evaluate", "build-pairs", "--kinds", "lexical", "--words", "open-heldout", "--output", str(out)]) == 0
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(pairs) > 200
    trained = words_of(load_text_split("train"))
    assert {pair["good"] for pair in pairs} <= set(words) and not {pair["good"] for pair in pairs} & trained
    assert all(pair["bad"] != pair["good"] and pair["bad"] not in trained for pair in pairs)


@needs_debian_text
def test_wordnet_glosses():
    pairs = read_wordnet_glosses()
    assert len(pairs) > 50_000
    words = [word.lower() for word, _ in pairs]
    assert len(words) == len(set(words))
    lookup = dict(pairs)
    assert "distinct existence" in lookup["entity"]
    assert not any('"' in definition or definition.endswith(";") for _, definition in pairs)


@needs_debian_text
def test_wordnet_lexicon_holds_lemmas_inflections_irregular_forms_and_text_words(tmp_path):
    from hf_slm.data import read_wordnet_lexicon

    lexicon = read_wordnet_lexicon(texts=["The Zyzzogeton's frobnicated."])
    assert lexicon == sorted(set(lexicon)) and len(lexicon) > 150_000
    words = set(lexicon)
    assert {"correspondent", "correspondents", "sweat", "sweated", "sweating", "worsened", "anxieties"} <= words
    assert {"ran", "geese", "better"} <= words  # irregular forms (verb.exc, noun.exc, adj.exc)
    assert {"zyzzogeton's", "frobnicated", "the"} <= words
    assert not [w for w in lexicon if not w.replace("'", "").isalpha() or w != w.lower()]
    assert "worsend" not in words and "sweatted" not in words  # regular rules, not every suffix
    assert "fibbing" in words and "fibing" not in words and "sowner" not in words  # irregular forms win (morphy)
    with pytest.raises(FileNotFoundError, match="wordnet-base"):
        read_wordnet_lexicon(tmp_path)


@needs_debian_text
def test_wordnet_definitions_are_the_glosses_without_their_examples(tmp_path):
    from hf_slm.data import load_text_corpus, read_wordnet_definitions

    definitions = read_wordnet_definitions()
    assert len(definitions) > 100_000 and sum(len(d.split()) for d in definitions) > 1_000_000
    assert set(load_text_corpus("wordnet-definitions", limit=5)) <= set(definitions)
    assert not any('"' in d or ";" in d for d in definitions)  # quoted examples and the separators are gone
    # marriage: two people who are married to each other; "his second marriage was happier than the first"; ...
    assert "two people who are married to each other" in definitions
    assert not any("second marriage was happier" in d for d in definitions)
    with pytest.raises(FileNotFoundError, match="wordnet-base"):
        read_wordnet_definitions(tmp_path)
