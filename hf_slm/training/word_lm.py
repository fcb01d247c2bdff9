"""Fit a word n-gram LM (interpolated Kneser-Ney) on text and write it as ARPA, for look-ahead word LM fusion in
`SpeechLLMPipeline.transcribe` (`NgramLanguageModel`), and the same over phonemes: the phone-LM topline of the
spoken minimal pairs. KenLM's `lmplz` writes the same format from a C++ build that pip does not give; this one
needs nothing and fits our ~0.5M-word corpora in seconds."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable

from ..data import text_words
from ..models.speech_llm import NgramLanguageModel

def _discount(counts: Iterable[int]) -> float:
    """Kneser-Ney's one discount per order, `n1 / (n1 + 2 n2)` from the counts of counts (0.5 when undefined)."""
    histogram = Counter(c for c in counts if c <= 2)
    n1, n2 = histogram[1], histogram[2]
    return n1 / (n1 + 2 * n2) if n1 and n2 else 0.5


def fit_word_lm(texts: Iterable[str], order: int = 3, vocabulary: Iterable[str] = (),
                min_count: int = 2) -> NgramLanguageModel:  # fmt: skip
    """Interpolated Kneser-Ney over the words of `texts` (`hf_slm.data.text_words`), in backoff form (`to_arpa` writes it).

    `vocabulary` adds words that the texts lack (a lexicon's dictionary words): they get the unigram floor that
    Kneser-Ney interpolates with the uniform distribution. N-grams of order >= 2 seen fewer than `min_count` times
    are pruned, and each history's backoff weight renormalises what is left (pruning shrinks the file ~4x and
    costs little on our held-out text). Lower orders use continuation counts, except n-grams that start a
    sentence (`<s>`), as in KenLM.
    """
    sequences = [text_words(text) for text in texts]
    if not any(sequences):
        raise ValueError("no text to fit a word LM on: every text is empty of words")
    words = [word for word in vocabulary if text_words(word) == [word]]
    return fit_ngram_lm(sequences, order=order, vocabulary=words, min_count=min_count)


def fit_phone_lm(texts: Iterable[str], order: int = 5, voice: str = "en-us", min_count: int = 1,
                 show_progress: bool = False) -> NgramLanguageModel:  # fmt: skip
    """Interpolated Kneser-Ney over the espeak-ng phonemes of `texts` (`hf_slm.data.phoneme_stream`: no stress, no
    word boundaries): the phone-LM topline of a unit LM trained on speech of the same texts (ZeroSpeech 2021's
    toplines are phone LMs). Texts without a phoneme are skipped; unpruned by default (`min_count` 1)."""
    from tqdm.auto import tqdm

    from ..data import phoneme_stream

    def sequences():
        for text in tqdm(texts, desc="phonemes", unit="text", disable=not show_progress):
            try:
                yield phoneme_stream(text, voice)
            except ValueError:  # nothing to say (punctuation only)
                continue

    return fit_ngram_lm(sequences(), order=order, min_count=min_count)


def fit_ngram_lm(sequences: Iterable[list[str]], order: int = 3, vocabulary: Iterable[str] = (),
                 min_count: int = 2) -> NgramLanguageModel:  # fmt: skip
    """`fit_word_lm` over token sequences of any kind (words, phonemes): each token a non-empty string without
    white space, other than `<s>`, `</s>` and `<unk>`; `vocabulary` tokens get the unigram floor."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be a positive integer, got {min_count!r}")
    raw: list[Counter] = [Counter() for _ in range(order + 1)]  # raw[k][ngram of k tokens]
    sentences = 0
    for index, tokens in enumerate(sequences):
        tokens = list(tokens)
        if not tokens:
            continue
        _check_tokens(tokens, f"sequence {index}")
        sentences += 1
        padded = ["<s>", *tokens, "</s>"]
        for k in range(1, order + 1):
            for i in range(len(padded) - k + 1):
                raw[k][tuple(padded[i : i + k])] += 1
    if not sentences:
        raise ValueError("no sequence to fit an n-gram LM on: every sequence is empty")
    # adjusted counts: the highest order (and n-grams starting a sentence) raw, the others continuation counts
    adjusted: list[Counter] = [Counter() for _ in range(order + 1)]
    adjusted[order] = Counter(raw[order])
    for k in range(order, 1, -1):
        for gram in raw[k]:
            adjusted[k - 1][gram[1:]] += 1
    for k in range(1, order):
        for gram, count in raw[k].items():
            if gram[0] == "<s>":
                adjusted[k][gram] = count
    adjusted[1].pop(("<s>",), None)
    vocabulary = list(vocabulary)
    _check_tokens(vocabulary, "vocabulary")
    for word in vocabulary:
        adjusted[1].setdefault((word,), 0)
    adjusted[1].setdefault(("<unk>",), 0)

    probs: dict[tuple, float] = {}
    # unigrams: discounted continuation counts, interpolated with the uniform distribution
    discount = _discount(adjusted[1].values())
    total = sum(adjusted[1].values())
    seen = sum(1 for c in adjusted[1].values() if c > 0)
    floor = discount * seen / total / len(adjusted[1])
    for gram, count in adjusted[1].items():
        probs[gram] = max(count - discount, 0) / total + floor
    for k in range(2, order + 1):
        discount = _discount(adjusted[k].values())
        totals, types = defaultdict(int), defaultdict(int)
        for gram, count in adjusted[k].items():
            totals[gram[:-1]] += count
            types[gram[:-1]] += 1
        for gram, count in adjusted[k].items():
            if raw[k][gram] < min_count:  # its history, seen at least as often, is kept too
                continue
            history = gram[:-1]
            gamma = discount * types[history] / totals[history]
            probs[gram] = max(count - discount, 0) / totals[history] + gamma * _interpolated(probs, gram[1:])
    # backoff weights: the mass a history's pruned and unseen followers share, over what the shorter history gives them
    followers: dict[tuple, list] = defaultdict(list)
    for gram in probs:
        if len(gram) > 1:
            followers[gram[:-1]].append(gram)

    def backoff(history: tuple) -> float:
        listed = sum(probs[g] for g in followers.get(history, ()))
        lower = sum(_interpolated(probs, g[1:]) for g in followers.get(history, ()))
        return max(1.0 - listed, 1e-12) / max(1.0 - lower, 1e-12)

    arpa = {gram: (math.log(p), math.log(backoff(gram))) for gram, p in probs.items()}
    arpa[("<s>",)] = (-99.0 * math.log(10), math.log(backoff(("<s>",))))  # a context, never predicted
    return NgramLanguageModel(arpa)


def _check_tokens(tokens: list, where: str) -> None:
    for token in tokens:
        if not isinstance(token, str) or not token or token.split() != [token] or token in ("<s>", "</s>", "<unk>"):
            raise ValueError(f"{where}: token {token!r} is not a non-empty string without white space other than "
                             "<s>, </s> and <unk>")


def _interpolated(probs: dict, gram: tuple) -> float:
    """P(gram[-1] | gram[:-1]) from the probabilities fitted so far (lower orders are complete when asked)."""
    if gram in probs:
        return probs[gram]
    return _interpolated(probs, gram[1:]) if len(gram) > 1 else probs[("<unk>",)]


__all__ = ["fit_ngram_lm", "fit_phone_lm", "fit_word_lm"]
