"""Word n-gram LMs for transcription (issue 16): Kneser-Ney fitting, ARPA reading and writing, prefix masses, and
look-ahead fusion in the lexicon processor."""

from __future__ import annotations

import math

import pytest
import torch

from hf_slm.models.speech_llm import LexiconLogitsProcessor, NgramLanguageModel
from hf_slm.data import text_words
from hf_slm.training import fit_word_lm

TEXTS = [
    "The cat sat on the mat.",
    "The cat ate the rat!",
    "A dog sat on the cat; the dog ran.",
    "The rat ran to the mat, and the cat ran too.",
    "Don't let the dog eat 3 rats.",
]
VOCABULARY = ["zebra", "catalogue"]  # dictionary words that no text holds


def vocabulary(lm: NgramLanguageModel) -> list[str]:
    return [g[0] for g in lm.ngrams if len(g) == 1 and g[0] != "<s>"]


def test_text_words_keep_what_a_character_decoder_spells():
    assert text_words("Don't let the dog eat 3 rats -- 'twas O'Neil's.") == [
        "don't", "let", "the", "dog", "eat", "rats", "o'neil's"]  # fmt: skip


@pytest.mark.parametrize("order, min_count", [(1, 1), (2, 1), (3, 1), (3, 2)])
def test_kneser_ney_is_a_distribution_after_every_history(order, min_count):
    lm = fit_word_lm(TEXTS, order=order, vocabulary=VOCABULARY, min_count=min_count)
    words = vocabulary(lm)
    assert {"zebra", "catalogue", "</s>", "<unk>", "don't"} <= set(words) and "3" not in words
    for history in [(), ("<s>",), ("<s>", "the"), ("the", "cat"), ("sat", "on"), ("zebra",), ("the", "zebra")]:
        total = sum(math.exp(lm.log_prob(w, history)) for w in words)
        assert total == pytest.approx(1.0, abs=1e-6), history
    if order > 1:  # what the texts say beats what they do not
        assert lm.log_prob("cat", ("<s>", "the")) > lm.log_prob("mat", ("<s>", "the"))
        assert lm.log_prob("sat", ("the", "cat")) > lm.log_prob("zebra", ("the", "cat"))
    # a dictionary-only word gets Kneser-Ney's floor, as <unk> does; an unlisted word scores as <unk>
    assert lm.log_prob("zebra") == pytest.approx(lm.log_prob("<unk>")) and math.isfinite(lm.log_prob("zebra"))
    assert lm.log_prob("never-listed", ("<s>",)) == lm.log_prob("<unk>", ("<s>",))


def test_pruning_drops_rare_ngrams_and_keeps_a_distribution():
    full, pruned = fit_word_lm(TEXTS, order=3, min_count=1), fit_word_lm(TEXTS, order=3, min_count=2)
    assert len(pruned.ngrams) < len(full.ngrams)
    assert pruned.ngrams.keys() <= full.ngrams.keys()
    assert ("the", "cat") in pruned.ngrams and ("a", "dog") not in pruned.ngrams


def test_prefix_mass_is_the_sum_over_words_with_that_prefix():
    lm = fit_word_lm(TEXTS, order=3, vocabulary=VOCABULARY, min_count=1)
    words = vocabulary(lm)
    for history in [(), ("<s>",), ("<s>", "the"), ("the", "cat"), ("on", "the"), ("zebra", "zebra")]:
        for prefix in ["", "c", "ca", "cat", "cata", "r", "ra", "zz", "d", "don'"]:
            expected = sum(math.exp(lm.log_prob(w, history)) for w in words if w.startswith(prefix))
            assert lm.prefix_mass(prefix, history) == pytest.approx(expected, abs=1e-9), (prefix, history)


def test_arpa_round_trip_and_bad_lines_are_named(tmp_path):
    lm = fit_word_lm(TEXTS, order=3, vocabulary=VOCABULARY, min_count=1)
    lm.to_arpa(tmp_path / "lm.arpa")
    text = (tmp_path / "lm.arpa").read_text()
    assert text.startswith("\n\\data\\\nngram 1=") and "\\3-grams:" in text and text.endswith("\\end\\\n")
    again = NgramLanguageModel.from_arpa(tmp_path / "lm.arpa")
    assert again.order == 3 and again.ngrams.keys() == lm.ngrams.keys()
    for history in [("<s>",), ("the", "cat"), ("zebra",)]:
        for word in ["cat", "sat", "zebra", "</s>", "unlisted"]:
            expected = lm.log_prob(word, history)
            assert again.log_prob(word, history) == pytest.approx(expected, abs=1e-3)  # 5 decimals of log10
    (tmp_path / "bad.arpa").write_text(text.replace("\\2-grams:\n", "\\2-grams:\n-0.5\tone\n", 1))
    with pytest.raises(ValueError, match=r"bad\.arpa, line \d+: not an ARPA n-gram line of order 2"):
        NgramLanguageModel.from_arpa(tmp_path / "bad.arpa")
    (tmp_path / "lm.bin").write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\x00\xff\xfe\x80")
    with pytest.raises(ValueError, match=r"lm\.bin: not ARPA text \(a KenLM binary"):
        NgramLanguageModel.from_arpa(tmp_path / "lm.bin")
    (tmp_path / "empty.arpa").write_text("\\data\\\n\\end\\\n")
    with pytest.raises(ValueError, match="no n-grams"):
        NgramLanguageModel.from_arpa(tmp_path / "empty.arpa")


def test_fitting_refuses_bad_arguments():
    with pytest.raises(ValueError, match="order must be a positive integer"):
        fit_word_lm(TEXTS, order=0)
    with pytest.raises(ValueError, match="min_count must be a positive integer"):
        fit_word_lm(TEXTS, min_count=0)
    with pytest.raises(ValueError, match="no text to fit"):
        fit_word_lm(["3 4", "!"])


def test_look_ahead_fusion_spreads_each_word_over_its_letters():
    """Summed over the steps that spell "the cat" and end the answer, the fused bonus is
    `weight * (log P(the | <s>) + log P(cat | <s> the) + log P(</s> | the cat))`, whichever letters it went through."""
    lm = fit_word_lm(TEXTS, order=3, min_count=1)
    letters = sorted({c for w in vocabulary(lm) if w[0] != "<" for c in w})
    token_of = {c: i + 3 for i, c in enumerate(letters)}
    boundary, eos, vocab = 1, 2, len(letters) + 3
    words = [w for w in vocabulary(lm) if w[0] != "<"]
    processor = LexiconLogitsProcessor(words, token_of, boundary, eos, prompt_length=1, word_lm=lm,
                                       word_lm_weight=0.5)  # fmt: skip
    spelled = [token_of[c] if c != " " else boundary for c in "the cat"] + [eos]
    total = 0.0
    for step, token in enumerate(spelled):
        out = processor(torch.tensor([[0, *spelled[:step]]]), torch.zeros(1, vocab))
        assert out[0, token] > -1e9
        total += out[0, token].item()
    expected = 0.5 * (lm.log_prob("the", ("<s>",)) + lm.log_prob("cat", ("<s>", "the"))
                      + lm.log_prob("</s>", ("<s>", "the", "cat")))  # fmt: skip
    assert total == pytest.approx(expected, abs=1e-5)
    # a letter towards a likelier continuation scores higher: after "the ", "c" (cat) beats "z" (no word)
    out = processor(torch.tensor([[0, *spelled[:4]]]), torch.zeros(1, vocab))
    assert out[0, token_of["c"]] > out[0, token_of["o"]]


def test_gzip_arpa_reads_like_plain(tmp_path):
    """`.arpa.gz` is written compressed (reproducibly: no time stamp) and read back like the plain file."""
    import gzip

    lm = fit_word_lm(TEXTS, order=2, min_count=1)
    lm.to_arpa(tmp_path / "lm.arpa")
    lm.to_arpa(tmp_path / "lm.arpa.gz")
    first = (tmp_path / "lm.arpa.gz").read_bytes()
    assert first[:2] == b"\x1f\x8b" and gzip.decompress(first).decode() == (tmp_path / "lm.arpa").read_text()
    lm.to_arpa(tmp_path / "lm.arpa.gz")
    assert (tmp_path / "lm.arpa.gz").read_bytes() == first
    assert NgramLanguageModel.from_arpa(tmp_path / "lm.arpa.gz").ngrams.keys() == lm.ngrams.keys()


def test_cli_fits_a_word_lm_from_files_and_corpora(tmp_path, capsys):
    from hf_slm.cli.main import main

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    vocabulary = tmp_path / "lexicon.txt"
    vocabulary.write_text("zebra 0\ncatalogue\n\n")
    out = tmp_path / "lm.arpa.gz"
    argv = ["fit-word-lm", "--texts", str(texts), "--order", "2", "--min-count", "1", "--vocabulary", str(vocabulary),
            "--output", str(out)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    lm = NgramLanguageModel.from_arpa(out)
    assert lm.order == 2 and ("zebra",) in lm.ngrams and ("catalogue",) in lm.ngrams and ("the", "cat") in lm.ngrams
    assert lm.ngrams.keys() == fit_word_lm(TEXTS, order=2, vocabulary=["zebra", "catalogue"], min_count=1).ngrams.keys()
    assert main([*argv[:-1], str(tmp_path / "lm.txt")]) != 0
    assert "--output must end in .arpa or .arpa.gz" in capsys.readouterr().err
    assert main(["fit-word-lm", "--texts", str(tmp_path / "missing.txt"), "--output", str(out)]) != 0
    assert "missing.txt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit-word-lm", "--texts", str(texts), "--order", "0", "--output", str(out)])


def test_an_ngram_lm_over_tokens_is_the_word_lm_over_the_same_words():
    """`fit_word_lm` is `fit_ngram_lm` over `text_words`; tokens with white space or the LM's own symbols are
    refused, naming the sequence."""
    from hf_slm.training import fit_ngram_lm

    words = fit_word_lm(TEXTS, order=3, vocabulary=VOCABULARY, min_count=1)
    tokens = fit_ngram_lm([text_words(t) for t in TEXTS], order=3, vocabulary=VOCABULARY, min_count=1)
    assert tokens.ngrams == words.ngrams
    with pytest.raises(ValueError, match=r"sequence 1: token 'a b' is not a non-empty string without white space"):
        fit_ngram_lm([["a"], ["a b"]])
    with pytest.raises(ValueError, match="sequence 0: token '</s>'"):
        fit_ngram_lm([["a", "</s>"]])
    with pytest.raises(ValueError, match="no sequence to fit"):
        fit_ngram_lm([[], []])


def test_a_sentence_log_prob_sums_its_words_after_their_histories():
    lm = fit_word_lm(TEXTS, order=3, min_count=1)
    words = ["the", "cat", "sat"]
    expected = (lm.log_prob("the", ["<s>"]) + lm.log_prob("cat", ["<s>", "the"]) + lm.log_prob("sat", ["the", "cat"])
                + lm.log_prob("</s>", ["cat", "sat"]))  # fmt: skip
    assert lm.sequence_log_prob(words) == pytest.approx(expected)
    assert lm.sequence_log_prob(["the", "cat", "sat", "on", "the", "mat"]) > lm.sequence_log_prob(
        ["mat", "the", "on", "sat", "cat", "the"])
