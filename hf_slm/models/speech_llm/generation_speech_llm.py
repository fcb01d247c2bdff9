"""Joint CTC / LM decoding for `ctc_posterior` speech LLMs: CTC prefix scores as a `generate` logits processor."""

from __future__ import annotations

import bisect
import contextlib
import gzip
import io
import math
import os
import tempfile

import torch
from transformers import LogitsProcessor

LN10 = math.log(10)
NEG = -1e10  # a finite "log 0": differences of impossible prefixes stay finite (no nan in beam scores)


class CTCPrefixScoreLogitsProcessor(LogitsProcessor):
    r"""
    Joint CTC / attention decoding (Watanabe et al. 2017, the CTC prefix score of ESPnet) for transcription: each
    candidate token's score becomes `(1 - ctc_weight) * log p_LM(token) + ctc_weight * (log p_CTC(prefix + token...) -
    log p_CTC(prefix...))`, where `log p_CTC(g...)` is the probability that the clip's CTC posteriors spell a
    transcript starting with `g`; for an end-of-answer token it is the probability of exactly `g`. Summed over the
    steps of a beam this is `(1 - w) * LM + w * CTC` of the whole answer, so an LM that runs on past the audio,
    repeats a stretch or drops a word loses to the CTC evidence.

    A token is scored when it stands for exactly one CTC symbol (`token_symbols`: a character vocabulary, as
    `speech-llm-default`'s); other tokens, except the end-of-answer ones, are excluded while scoring. Meant for
    the ASR task only: the CTC posteriors say what the audio says, not what an answer to it is.

    Args:
        log_probs (`torch.FloatTensor` of shape `(batch, frames, symbols)`): CTC log posteriors of each clip.
        lengths (`torch.LongTensor` of shape `(batch,)`): valid frames per clip.
        token_symbols (`torch.LongTensor` of shape `(vocab,)`): the CTC symbol of each LM token, -1 for none.
        blank_id (`int`): the CTC blank.
        eos_token_id (`int` or `list[int]`): the tokens that end an answer.
        prompt_length (`int`): columns of `input_ids` before the first generated token (left-padded prompts).
        ctc_weight (`float`): `w` in (0, 1].
    """

    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor, token_symbols: torch.Tensor, blank_id: int,
                 eos_token_id, prompt_length: int, ctc_weight: float):  # fmt: skip
        if not 0 < ctc_weight <= 1:
            raise ValueError(f"ctc_weight must be in (0, 1], got {ctc_weight!r}")
        if log_probs.ndim != 3 or lengths.shape != log_probs.shape[:1]:
            raise ValueError(f"log_probs must be [batch, frames, symbols] with one length per clip, got "
                             f"{tuple(log_probs.shape)} and {tuple(lengths.shape)}")  # fmt: skip
        frames = torch.arange(log_probs.shape[1], device=log_probs.device)
        padded = frames[None, :] >= lengths[:, None]  # past a clip's end: blank with probability 1, nothing else
        x = log_probs.float().masked_fill(padded[..., None], NEG)
        x[..., blank_id] = x[..., blank_id].masked_fill(padded, 0.0)
        self.x = x
        self.blank_id = blank_id
        self.token_symbols = token_symbols.to(log_probs.device)
        eos = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or [])
        self.eos = torch.tensor(sorted(set(eos)), dtype=torch.long, device=log_probs.device)
        self.prompt_length = prompt_length
        self.ctc_weight = float(ctc_weight)
        self._states: dict = {}  # (clip, prefix) -> (r [T, S, 2], psi [S]) of every one-symbol extension

    def _initial(self, clip: int) -> tuple[torch.Tensor, torch.Tensor]:
        """State of the empty prefix: every frame blank so far."""
        r = torch.full((self.x.shape[1], 2), NEG, device=self.x.device)
        r[:, 1] = self.x[clip, :, self.blank_id].cumsum(0)
        return r, torch.zeros((), device=self.x.device)

    def _extend(self, clips: torch.Tensor, r: torch.Tensor, last: torch.Tensor, empty: torch.Tensor):
        """For prefixes with states `r` [N, T, 2] (last symbol `last`, -1 if `empty`), the states [N, T, S, 2] and
        prefix scores [N, S] of every one-symbol extension, and the scores [N] of the prefix ending there."""
        x = self.x[clips]  # [N, T, S]
        n, frames, symbols = x.shape
        r_sum = torch.logaddexp(r[..., 0], r[..., 1])  # [N, T]
        phi = r_sum[:, :, None].expand(n, frames, symbols).clone()
        same = torch.arange(symbols, device=x.device)[None, :] == last[:, None]  # [N, S]: repeating needs a blank
        phi = torch.where(same[:, None, :], r[..., 1][:, :, None], phi)
        new = torch.full((n, frames, symbols, 2), NEG, device=x.device)
        new[:, 0, :, 0] = torch.where(empty[:, None], x[:, 0, :], torch.full_like(x[:, 0, :], NEG))
        for t in range(1, frames):
            new[:, t, :, 0] = torch.logaddexp(new[:, t - 1, :, 0], phi[:, t - 1, :]) + x[:, t, :]
            new[:, t, :, 1] = torch.logaddexp(new[:, t - 1, :, 0], new[:, t - 1, :, 1]) + x[:, t, self.blank_id, None]
        psi = torch.logsumexp(torch.cat([new[:, :1, :, 0], phi[:, :-1, :] + x[:, 1:, :]], dim=1), dim=1)  # [N, S]
        psi[:, self.blank_id] = NEG
        return new, psi, r_sum[:, -1]

    def _state(self, clip: int, prefix: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        if not prefix:
            return self._initial(clip)
        cached = self._states.get((clip, prefix[:-1]))
        if cached is None:  # not an extension scored at the last step (a fresh processor): walk the prefix
            r, psi = self._initial(clip)
            for i, symbol in enumerate(prefix):
                last = torch.tensor([prefix[i - 1] if i else -1], device=self.x.device)
                new, all_psi, _ = self._extend(torch.tensor([clip]), r[None], last, torch.tensor([i == 0]))
                r, psi = new[0, :, symbol], all_psi[0, symbol]
            return r, psi
        return cached[0][:, prefix[-1]], cached[1][prefix[-1]]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows_per_clip = input_ids.shape[0] // self.x.shape[0]
        generated = input_ids[:, self.prompt_length :]
        symbols = self.token_symbols[generated]  # [N, L]
        ended = torch.isin(generated, self.eos).any(-1) | (symbols < 0).any(-1)  # done rows keep their scores
        active = (~ended).nonzero().flatten().tolist()
        if not active:
            return scores
        clips = [row // rows_per_clip for row in active]
        prefixes = [tuple(symbols[row].tolist()) for row in active]
        states = [self._state(clip, prefix) for clip, prefix in zip(clips, prefixes)]
        r = torch.stack([s[0] for s in states])
        psi = torch.stack([s[1] for s in states])
        last = torch.tensor([p[-1] if p else -1 for p in prefixes], device=scores.device)
        empty = torch.tensor([not p for p in prefixes], device=scores.device)
        new, new_psi, end = self._extend(torch.tensor(clips, device=scores.device), r, last, empty)
        self._states = {(clip, prefix): (new[i], new_psi[i]) for i, (clip, prefix) in enumerate(zip(clips, prefixes))}

        ctc = torch.full((len(active), scores.shape[-1]), NEG, device=scores.device)
        mapped = (self.token_symbols >= 0).nonzero().flatten()
        ctc[:, mapped] = new_psi[:, self.token_symbols[mapped]] - psi[:, None]
        ctc[:, self.eos] = (end - psi)[:, None]
        lm = scores[active].float().log_softmax(-1)
        out = scores.clone()
        out[active] = ((1 - self.ctc_weight) * lm + self.ctc_weight * ctc).to(scores.dtype)
        return out


def ctc_token_symbols(symbol_token_ids: list[list[int]], blank_id: int, vocab_size: int) -> torch.LongTensor:
    """`[vocab]`: the CTC symbol each LM token spells (a symbol whose LM encoding is that one token), -1 for none
    (the blank and specials are never spelled)."""
    table = torch.full((vocab_size,), -1, dtype=torch.long)
    for symbol, ids in enumerate(symbol_token_ids):
        if symbol != blank_id and len(ids) == 1 and 0 <= ids[0] < vocab_size:
            table[ids[0]] = symbol
    return table


@contextlib.contextmanager
def replace_atomically(path):
    """A binary file to write in place of `path`: a temporary file beside it, renamed over `path` once written (so a
    kill never leaves half a file), removed if writing fails. (Model files are also remote code, which cannot import
    `hf_slm.utils`.)"""
    path = os.fspath(path)
    with tempfile.NamedTemporaryFile("wb", dir=os.path.dirname(path) or ".", delete=False) as raw:
        try:
            yield raw
        except BaseException:
            raw.close()
            os.unlink(raw.name)
            raise
    os.replace(raw.name, path)


class NgramLanguageModel:
    r"""
    A backoff word n-gram LM read from ARPA text (what KenLM's `lmplz`, SRILM and `hf_slm.training.fit_word_lm`
    write): `P(w | h) = p(h w)` where the n-gram is listed, else `backoff(h) * P(w | h minus its first word)`.

    Besides `log_prob`, it gives `prefix_mass(prefix, history)`: `P` summed over every word that starts with
    `prefix`. A character-level decoder adds the change of that mass at each letter (the look-ahead word
    LM of Hori et al. 2018), so a word's whole `log P(w | h)` is spread over its letters and a beam holding the
    right word is not pruned before the word is complete. Masses are sums over contiguous ranges of sorted words.

    Args:
        ngrams (`dict[tuple[str, ...], tuple[float, float]]`): each n-gram's natural-log probability and backoff.
        unk (`str`): the word that unlisted words score as (ARPA's `<unk>`); without it, the lowest unigram.
    """

    def __init__(self, ngrams: dict, unk: str = "<unk>"):
        if not any(len(g) == 1 for g in ngrams):
            raise ValueError("an n-gram LM needs unigrams")
        self.order = max(len(g) for g in ngrams)
        self.ngrams = dict(ngrams)  # the one store: log_prob reads it, to_arpa writes it
        unigrams = sorted((g[0], math.exp(p)) for g, (p, _) in self.ngrams.items() if len(g) == 1 and p > -90)
        self.unk_log_prob = self.ngrams[(unk,)][0] if (unk,) in self.ngrams else min(math.log(p) for _, p in unigrams)
        self._words, self._cumulative = [w for w, _ in unigrams], self._cumsum(p for _, p in unigrams)
        followers: dict[tuple, list] = {}
        for gram in self.ngrams:
            if len(gram) > 1:
                followers.setdefault(gram[:-1], []).append(gram[-1])
        self._followers = {}  # history -> (sorted words, cumulative P(w | h), cumulative P(w | shorter history))
        for history, words in followers.items():
            words.sort()
            listed = [math.exp(self.ngrams[history + (w,)][0]) for w in words]
            lower = [math.exp(self.log_prob(w, history[1:])) for w in words]
            self._followers[history] = (words, self._cumsum(listed), self._cumsum(lower))
        self._mass_cache: dict = {}

    @staticmethod
    def _cumsum(values) -> list[float]:
        out = [0.0]
        for v in values:
            out.append(out[-1] + v)
        return out

    @classmethod
    def from_arpa(cls, path) -> NgramLanguageModel:
        """Read an ARPA file (`\\data\\`, `\\N-grams:` sections of `log10 p  words  [log10 backoff]`), plain or
        gzip-compressed; a bad line is named with its number."""
        ngrams, order = {}, 0
        with open(path, "rb") as probe:
            compressed = probe.read(2) == b"\x1f\x8b"
        number, line = 0, ""
        try:
            with (gzip.open(path, "rt", encoding="utf-8") if compressed else open(path, encoding="utf-8")) as f:
                for number, line in enumerate(f, 1):
                    line = line.strip()
                    if not line or line.startswith("ngram ") or line in ("\\data\\", "\\end\\"):
                        continue
                    if line.startswith("\\") and line.endswith("-grams:"):
                        order = int(line[1:-7])
                        continue
                    fields = line.split()
                    if not order or len(fields) not in (order + 1, order + 2):
                        raise ValueError
                    backoff = float(fields[order + 1]) if len(fields) == order + 2 else 0.0
                    ngrams[tuple(fields[1 : order + 1])] = (float(fields[0]) * LN10, backoff * LN10)
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not ARPA text (a KenLM binary? give the .arpa or .arpa.gz)") from None
        except ValueError:
            message = f"{path}, line {number}: not an ARPA n-gram line of order {order}: {line!r}"
            raise ValueError(message) from None
        if not ngrams:
            raise ValueError(f"{path}: no n-grams (not an ARPA file?)")
        return cls(ngrams)

    def to_arpa(self, path) -> None:
        """Write the LM as an ARPA file, gzip-compressed when `path` ends in `.gz` (as KenLM reads it); atomically: a
        temporary file beside `path`, then renamed."""
        by_order: dict[int, list] = {}
        for gram in sorted(self.ngrams):
            by_order.setdefault(len(gram), []).append(gram)
        compress = os.fspath(path).endswith(".gz")
        with replace_atomically(path) as raw, \
                (gzip.GzipFile("", "wb", fileobj=raw, mtime=0) if compress else contextlib.nullcontext(raw)) as binary, \
                io.TextIOWrapper(binary, encoding="utf-8") as f:  # fmt: skip
            f.write("\n\\data\\\n")
            f.writelines(f"ngram {k}={len(by_order.get(k, ()))}\n" for k in range(1, self.order + 1))
            for k in range(1, self.order + 1):
                f.write(f"\n\\{k}-grams:\n")
                for gram in by_order.get(k, ()):
                    p, backoff = self.ngrams[gram]
                    tail = f"\t{backoff / LN10:.4f}" if backoff and k < self.order else ""
                    f.write(f"{p / LN10:.5f}\t{' '.join(gram)}{tail}\n")
            f.write("\n\\end\\\n")

    def log_prob(self, word: str, history=()) -> float:
        """Natural-log `P(word | history)`; `history` is the words before it (`<s>` first at a sentence start)."""
        history = tuple(history)[len(history) - self.order + 1 :] if self.order > 1 else ()
        backoff = 0.0
        while True:
            listed = self.ngrams.get(history + (word,))
            if listed is not None:
                return backoff + listed[0]
            if not history:
                return backoff + self.unk_log_prob
            backoff += self.ngrams.get(history, (0.0, 0.0))[1]
            history = history[1:]

    def sequence_log_prob(self, words) -> float:
        """Natural-log probability of a whole sentence: every word after `<s>` and the words before it, then `</s>`."""
        history, total = ["<s>"], 0.0
        for word in [*words, "</s>"]:
            total += self.log_prob(word, history[-self.order + 1 :] if self.order > 1 else ())
            history.append(word)
        return total

    def _range_sum(self, words: list[str], cumulative: list[float], prefix: str) -> float:
        lo = bisect.bisect_left(words, prefix)
        hi = bisect.bisect_left(words, prefix + "\U0010ffff")
        return cumulative[hi] - cumulative[lo]

    def prefix_mass(self, prefix: str, history=()) -> float:
        """`P` summed over the words that start with `prefix`, after `history`."""
        history = tuple(history)[len(history) - self.order + 1 :] if self.order > 1 else ()
        key = (history, prefix)
        mass = self._mass_cache.get(key)
        if mass is None:
            if not history:
                mass = self._range_sum(self._words, self._cumulative, prefix)
            else:
                lower = self.prefix_mass(prefix, history[1:])
                backoff = math.exp(self.ngrams.get(history, (0.0, 0.0))[1])
                followers = self._followers.get(history)
                if followers is None:
                    mass = backoff * lower
                else:
                    words, listed, listed_lower = followers
                    mass = self._range_sum(words, listed, prefix) + backoff * max(
                        lower - self._range_sum(words, listed_lower, prefix), 0.0)  # fmt: skip
            if len(self._mass_cache) > 1_000_000:
                self._mass_cache.clear()
            self._mass_cache[key] = mass
        return mass


class LexiconLogitsProcessor(LogitsProcessor):
    r"""
    Lexicon-constrained spelling for a character-vocabulary LM (the lexicon of a CTC beam decoder, as flashlight's
    or pyctcdecode's): within a word the LM may only spell a prefix of a listed word, and it may end a word (a word
    boundary, punctuation or the end of the answer) only where a listed word ends. Ending word `w` adds
    `unigram_weight * log p(w)` (`p`: from the counts in `words`, add-half smoothed, so listed words never seen in text
    are possible but rare) and takes `word_penalty` off a boundary: a lexicon otherwise lets a misheard word become an
    obscure one, or several short ones.

    Args:
        words (iterable of `str`, or `dict[str, int]` of word counts): the lexicon (lower case).
        token_of (`dict[str, int]`): the LM token of each character that words may hold.
        boundary_token_id (`int`): the LM's word boundary (its encoding of a space).
        eos_token_id (`int` or `list[int]`): the tokens that end an answer.
        prompt_length (`int`): columns of `input_ids` before the first generated token.
        punctuation_token_ids (`list[int]`): tokens allowed right after a word (then a boundary or the end).
        word_penalty (`float`): subtracted from the boundary token's score.
        unigram_weight (`float`): weight of the word's log unigram probability (needs counts).
        word_lm ([`NgramLanguageModel`], *optional*): a word n-gram LM, fused with look-ahead: each letter adds
            `word_lm_weight` times the change of `log P(words starting with the prefix | earlier words)`, a word's
            end the rest of its `log P(w | earlier words)`, and the end of the answer `log P(</s> | words)`.
        word_lm_weight (`float`): its weight.
    """

    def __init__(self, words, token_of: dict, boundary_token_id: int, eos_token_id, prompt_length: int,
                 punctuation_token_ids=(), word_penalty: float = 0.0, unigram_weight: float = 0.0, word_lm=None,
                 word_lm_weight: float = 0.0):  # fmt: skip
        counts = dict(words) if isinstance(words, dict) else dict.fromkeys(words, 0)
        self.token_of = dict(token_of)
        self.char_of = {t: c for c, t in self.token_of.items()}
        self.words, self.prefixes = {}, {""}
        for word, count in counts.items():
            if word and all(c in self.token_of for c in word):
                self.words[word] = count
                self.prefixes.update(word[:i] for i in range(1, len(word)))
        if not self.words:
            raise ValueError("the lexicon holds no word spelled with the LM's character tokens")
        total = sum(self.words.values()) + 0.5 * len(self.words)
        self.log_probs = {w: math.log((c + 0.5) / total) for w, c in self.words.items()} if unigram_weight else {}
        eos = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or [])
        self.eos = set(eos)
        self.boundary = boundary_token_id
        self.after_word = [boundary_token_id, *eos, *punctuation_token_ids]
        self.after_punctuation = [boundary_token_id, *eos]
        self.prompt_length = prompt_length
        self.word_penalty = float(word_penalty)
        self.unigram_weight = float(unigram_weight)
        self.word_lm = word_lm if word_lm_weight else None
        self.word_lm_weight = float(word_lm_weight)
        self.end_of_word = [boundary_token_id, *punctuation_token_ids]

    def _allowed(self, ids: list[int]) -> tuple[list[int], str]:
        """The tokens that may follow `ids`, and the word they end in (`""` after a boundary or punctuation)."""
        word = ""
        for token in reversed(ids):
            if token not in self.char_of:
                break
            word = self.char_of[token] + word
        if not word and ids and ids[-1] != self.boundary:  # right after punctuation
            return self.after_punctuation, word
        allowed = [t for c, t in self.token_of.items() if word + c in self.prefixes or word + c in self.words]
        if word:
            return (allowed + self.after_word if word in self.words else allowed), word
        return allowed + list(self.eos), word

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        keep = torch.zeros_like(scores, dtype=torch.bool)
        bonus = torch.zeros(scores.shape[0], dtype=scores.dtype, device=scores.device)
        fused = []
        for row, ids in enumerate(input_ids[:, self.prompt_length :].tolist()):
            if self.eos.intersection(ids):
                keep[row] = True  # a finished row (greedy pads it): leave it alone
                continue
            allowed, word = self._allowed(ids)
            keep[row, allowed] = True
            if self.unigram_weight and word in self.words:
                bonus[row] = self.unigram_weight * self.log_probs[word]
            if self.word_lm is not None:
                fused.append((row, allowed, word, ids))
        out = scores.masked_fill(~keep, NEG)
        for row, allowed, word, ids in fused:
            self._fuse_word_lm(out, row, allowed, word, ids)
        if self.unigram_weight:
            out[:, self.after_word] += bonus[:, None]
        if self.word_penalty:
            out[:, self.boundary] -= self.word_penalty
        return out


    def _fuse_word_lm(self, out: torch.Tensor, row: int, allowed: list[int], word: str, ids: list[int]) -> None:
        """Add the look-ahead word LM's change of score to each allowed token of `row` (see the class doc)."""
        lm, weight = self.word_lm, self.word_lm_weight
        text = "".join(self.char_of.get(t, " ") for t in ids)
        history = ("<s>", *text.split()[: -1 if word else None])
        floor = math.exp(lm.unk_log_prob)  # a lexicon word the LM lacks scores as its <unk>
        before = math.log(max(lm.prefix_mass(word, history), floor))
        add = {}
        for token in allowed:
            char = self.char_of.get(token)
            if char is not None:
                add[token] = math.log(max(lm.prefix_mass(word + char, history), floor)) - before
        if word in self.words:
            ending = lm.log_prob(word, history) - before
            for token in self.end_of_word:
                add[token] = ending
            end_of_answer = ending + lm.log_prob("</s>", (*history, word))
        else:
            end_of_answer = lm.log_prob("</s>", history) if not word else None
        if end_of_answer is not None:
            for token in self.eos:
                add[token] = end_of_answer
        if add:
            tokens = torch.tensor(list(add), device=out.device)
            out[row, tokens] += weight * torch.tensor(list(add.values()), dtype=out.dtype, device=out.device)


def lexicon_logits_processor(words, tokenizer, eos_token_id, prompt_length: int, word_penalty: float = 0.0,
                             unigram_weight: float = 0.0, word_lm=None, word_lm_weight: float = 0.0
                             ) -> LexiconLogitsProcessor:  # fmt: skip
    """A [`LexiconLogitsProcessor`] for `tokenizer`'s character tokens: each letter of the lexicon that the
    tokenizer holds as one token, its word boundary (the encoding of a space, one token) and its one-character
    punctuation tokens. `words`: a list, or a dict of word counts."""
    unk = tokenizer.unk_token_id

    def single(character: str) -> int | None:
        token = tokenizer.convert_tokens_to_ids(character)
        return None if token is None or token == unk else token

    letters = sorted({c for word in words for c in word})
    token_of = {c: single(c) for c in letters if single(c) is not None}
    boundary = [t for t in tokenizer(" ", add_special_tokens=False)["input_ids"] if t != unk]
    if len(boundary) != 1:
        raise ValueError(f"lexicon decoding needs an LM whose word boundary is one token; its encoding of a space is "
                         f"{boundary}")  # fmt: skip
    punctuation = [single(c) for c in ".,;:?!" if single(c) is not None]
    return LexiconLogitsProcessor(words, token_of, boundary[0], eos_token_id, prompt_length, punctuation, word_penalty,
                                  unigram_weight, word_lm, word_lm_weight)  # fmt: skip


__all__ = ["CTCPrefixScoreLogitsProcessor", "LexiconLogitsProcessor", "NgramLanguageModel", "ctc_token_symbols",
           "lexicon_logits_processor"]
