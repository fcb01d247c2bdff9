"""Joint CTC / LM decoding for `ctc_posterior` speech LLMs: CTC prefix scores as a `generate` logits processor."""

from __future__ import annotations

import math

import torch
from transformers import LogitsProcessor

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
    """

    def __init__(self, words, token_of: dict, boundary_token_id: int, eos_token_id, prompt_length: int,
                 punctuation_token_ids=(), word_penalty: float = 0.0, unigram_weight: float = 0.0):  # fmt: skip
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
        for row, ids in enumerate(input_ids[:, self.prompt_length :].tolist()):
            if self.eos.intersection(ids):
                keep[row] = True  # a finished row (greedy pads it): leave it alone
                continue
            allowed, word = self._allowed(ids)
            keep[row, allowed] = True
            if self.unigram_weight and word in self.words:
                bonus[row] = self.unigram_weight * self.log_probs[word]
        out = scores.masked_fill(~keep, NEG)
        if self.unigram_weight:
            out[:, self.after_word] += bonus[:, None]
        if self.word_penalty:
            out[:, self.boundary] -= self.word_penalty
        return out


def lexicon_logits_processor(words, tokenizer, eos_token_id, prompt_length: int, word_penalty: float = 0.0,
                             unigram_weight: float = 0.0) -> LexiconLogitsProcessor:  # fmt: skip
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
                                  unigram_weight)  # fmt: skip


__all__ = ["CTCPrefixScoreLogitsProcessor", "LexiconLogitsProcessor", "ctc_token_symbols", "lexicon_logits_processor"]
