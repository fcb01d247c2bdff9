"""Spoken minimal-pair benchmarks (sWUGGY / sBLIMP / spoken StoryCloze style): build them, read them, score them.

A benchmark is a JSONL file, one pair per line: ``{"good": "...", "bad": "..."}`` (text, synthesised with espeak-ng
at scoring time) or ``{"good_audio": "a.wav", "bad_audio": "b.wav"}`` (real recordings such as the ZeroSpeech 2021
sWUGGY / sBLIMP or spoken StoryCloze files; relative paths are relative to the JSONL file). Optional fields: ``id``,
``type`` (``"lexical"`` / ``"syntactic"`` / ...), ``phenomenon`` (accuracy is also reported per phenomenon).

The builder makes such files from our own grammar (`hf_slm.data.corpus`) or from any word list, so a user can make a
benchmark for their language: lexical pairs (a word vs a pronounceable non-word one letter away) and syntactic
pairs (a sentence vs the same sentence with one verb's agreement flipped).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from .metrics.pair_accuracy.pair_accuracy import pair_accuracy, pair_scores

#: Phenomena of the syntactic builder: template of `hf_slm.data.corpus.TEMPLATES`, the kind of the verb slot whose
#: number is flipped, which occurrence of it (0 first, -1 last), and the slot whose number is set opposite to the
#: subject's (an attractor noun between subject and verb), if any.
PHENOMENA = {
    "agreement_simple": ("intransitive", "VI", 0, None),
    "agreement_object": ("transitive", "VT", 0, None),
    "agreement_adverb": ("adverb", "VI", 0, None),
    "agreement_attractor": ("attractor", "VI", -1, "THING"),
    "agreement_relative_clause": ("relative_clause", "VI", -1, "THING"),
    "agreement_copula": ("copula", "COP", 0, None),
    "agreement_question": ("question", "AUX", 0, None),
}
DICTIONARY = Path("/usr/share/dict/words")
_VOWELS = "aeiou"
_CONSONANTS = "bdfgklmnprstvz"


# ---------------------------------------------------------------------------------------------------- building
def grammar_words() -> list[str]:
    """Every word of the built-in grammar's open word lists (nouns in both numbers, verbs, adjectives, adverbs)."""
    from ..data.corpus import GRAMMAR

    words = []
    for key in ("animate_nouns", "things", "intransitive_verbs", "transitive_verbs"):
        words += [form for pair in GRAMMAR[key] for form in pair]
    for key in ("adjectives", "thing_adjectives", "adverbs"):
        words += list(GRAMMAR[key])
    return sorted({w for w in words if w.isalpha()})


def english_dictionary() -> set[str]:
    """Known English words, so that no "non-word" is a real word: CMUdict from the pocketsphinx wheel (134k words)
    and the system word list (Debian `wamerican`), whichever are installed."""
    known = set()
    try:
        import pocketsphinx

        cmudict = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
        if cmudict.is_file():
            lines = cmudict.read_text(encoding="utf-8", errors="ignore").splitlines()
            known |= {line.split(" ", 1)[0].split("(", 1)[0].lower() for line in lines if line}
    except ImportError:
        pass
    if DICTIONARY.is_file():
        known |= {w.strip().lower() for w in DICTIONARY.read_text(encoding="utf-8", errors="ignore").splitlines()}
    return known


def make_nonword(word: str, rng: random.Random, known: set[str], vowels: str = _VOWELS,
                 consonants: str = _CONSONANTS) -> str | None:  # fmt: skip
    """A pronounceable non-word one letter away from `word`: a vowel swapped for a vowel, or a single consonant
    (between vowels or the word's edges, never inside a cluster such as "dr") for a consonant, so the syllable
    structure (and so the phonotactics, roughly) stays that of a real word. `None` when every candidate is a known
    word."""
    lower = word.lower()
    candidates = []
    for i, char in enumerate(lower):
        single = all(j < 0 or j >= len(lower) or lower[j] in vowels for j in (i - 1, i + 1))
        pool = vowels if char in vowels else consonants if char in consonants and single else ""
        candidates += [lower[:i] + other + lower[i + 1 :] for other in pool if other != char]
    candidates = [c for c in candidates if c not in known]
    return rng.choice(candidates) if candidates else None


def build_lexical_pairs(words=None, n: int | None = None, seed: int = 0, known_words=None, vowels: str = _VOWELS,
                        consonants: str = _CONSONANTS) -> list[dict]:  # fmt: skip
    """sWUGGY-style pairs ``{"good": word, "bad": non-word}``; `words` defaults to the built-in grammar's words.

    `known_words` (any iterable of words) are never used as non-words; it defaults to `english_dictionary()`. For
    another language give its word list, a lexicon of it as `known_words`, and, if its letters differ, its `vowels`
    and `consonants`.
    """
    words = grammar_words() if words is None else [w.strip() for w in words if w.strip()]
    if not words:
        raise ValueError("the word list is empty")
    rng = random.Random(seed)
    known = {w.lower() for w in words} | {w.lower() for w in (english_dictionary() if known_words is None else known_words)}
    order = list(words)
    rng.shuffle(order)
    pairs = []
    for word in order:
        nonword = make_nonword(word, rng, known, vowels, consonants)
        if nonword is None:
            continue
        known.add(nonword)  # two words never share a non-word
        pairs.append({"id": f"lexical-{len(pairs)}", "good": word.lower(), "bad": nonword, "type": "lexical",
                      "phenomenon": "word_vs_nonword"})  # fmt: skip
        if n is not None and len(pairs) >= n:
            break
    return pairs


def build_syntactic_pairs(n_per_phenomenon: int = 20, phenomena=None, seed: int = 0) -> list[dict]:
    """sBLIMP-style agreement pairs from the built-in grammar: the grammatical sentence and the same plan with the
    verb's number flipped (`SentencePlan.with_number`); attractor nouns take the other number than the subject."""
    from ..data.corpus import NUMBERS, realize, sample_plan

    phenomena = list(PHENOMENA) if phenomena is None else list(phenomena)
    unknown = [p for p in phenomena if p not in PHENOMENA]
    if unknown:
        raise ValueError(f"unknown phenomena {unknown}; choose from {sorted(PHENOMENA)}")
    rng = random.Random(seed)
    pairs = []
    for phenomenon in phenomena:
        template, kind, occurrence, attractor = PHENOMENA[phenomenon]
        seen, attempts = set(), 0
        while len(seen) < n_per_phenomenon and attempts < 50 * n_per_phenomenon:
            attempts += 1
            plan = sample_plan(rng, template)
            subject = plan.slots[0].number
            other = NUMBERS[1 - NUMBERS.index(subject)]
            if attractor is not None:
                index = next(i for i, s in enumerate(plan.slots) if s.kind == attractor)
                plan = plan.with_number(index, other)
            verb = [i for i, s in enumerate(plan.slots) if s.kind == kind][occurrence]
            good, bad = realize(plan), realize(plan.with_number(verb, other))
            if good == bad or good in seen:
                continue
            seen.add(good)
            pairs.append({"id": f"{phenomenon}-{len(seen) - 1}", "good": good, "bad": bad, "type": "syntactic",
                          "phenomenon": phenomenon})  # fmt: skip
    return pairs


def write_pairs(pairs: list[dict], path) -> Path:
    """Write pairs as JSONL (one object per line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------- reading
def read_pairs(path) -> list[dict]:
    """Read and check a JSONL pair file; audio paths become absolute (relative to the file's folder)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pair file {str(path)!r} does not exist")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            pair = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(pair, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object, got {type(pair).__name__}")
        if "good_audio" in pair or "bad_audio" in pair:
            for key in ("good_audio", "bad_audio"):
                if not isinstance(pair.get(key), str):
                    raise ValueError(f"{path}:{number}: audio pairs need string fields 'good_audio' and 'bad_audio'")
                audio = Path(pair[key]) if Path(pair[key]).is_absolute() else path.parent / pair[key]
                if not audio.is_file():
                    raise FileNotFoundError(f"{path}:{number}: audio file {str(audio)!r} does not exist")
                pair[key] = str(audio)
        else:
            for key in ("good", "bad"):
                if not isinstance(pair.get(key), str) or not pair[key].strip():
                    raise ValueError(f"{path}:{number}: text pairs need non-empty string fields 'good' and 'bad'")
        pair.setdefault("id", f"{path.stem}-{number}")
        pairs.append(pair)
    if not pairs:
        raise ValueError(f"pair file {str(path)!r} holds no pairs")
    return pairs


# ---------------------------------------------------------------------------------------------------- scoring
def _pair_audio(pairs, voice: str, rate: int, pitch: int) -> list:
    """Audio of every side in order good_0, bad_0, good_1, ...; text is synthesised once per distinct string."""
    synthesizer, cache, audio = None, {}, []
    for pair in pairs:
        for side in ("good", "bad"):
            if f"{side}_audio" in pair:
                audio.append(pair[f"{side}_audio"])
                continue
            text = pair[side]
            if text not in cache:
                if synthesizer is None:
                    from ..data import EspeakSynthesizer

                    synthesizer = EspeakSynthesizer(voice=voice, rate=rate, pitch=pitch)
                speech = synthesizer.synthesize(text)
                cache[text] = {"array": speech.waveform, "sampling_rate": speech.sampling_rate}
            audio.append(cache[text])
    return audio


@torch.no_grad()
def unit_log_likelihoods(pipeline, audio, batch_size: int = 16, add_eos: bool = True):
    """`(sum_nll, num_tokens)` tensors of each audio item's units under the pipeline's LM (`</s>` scored too)."""
    lm = pipeline._require("language_model", "minimal-pair scoring")
    device = next(lm.parameters()).device
    sums, counts = [], []
    for start in range(0, len(audio), batch_size):
        units = pipeline.encode(audio[start : start + batch_size])
        input_ids, attention_mask = lm.units_to_input_ids(units, add_eos=add_eos)
        out = lm.log_likelihood(input_ids.to(device), attention_mask=attention_mask.to(device))
        sums.append(out.sum_nll.cpu())
        counts.append(out.num_tokens.cpu())
    return torch.cat(sums), torch.cat(counts)


def score_pairs(pipeline, pairs: list[dict], voice: str = "en-us", rate: int = 175, pitch: int = 50,
                normalize: bool = False, batch_size: int = 16) -> dict:  # fmt: skip
    """Score minimal pairs with a pipeline's LM.

    Returns a JSON-able dict: ``accuracy`` (by the chosen scoring), ``accuracy_summed``, ``accuracy_normalized``
    (per-token NLL), ``n``, ``normalize``, ``per_phenomenon`` (``{name: {"accuracy", "n"}}``) and ``items`` (per pair:
    the texts, ``good_nll`` / ``bad_nll`` summed, ``good_tokens`` / ``bad_tokens``, ``correct``).
    """
    if not pairs:
        raise ValueError("no pairs to score")
    audio = _pair_audio(pairs, voice, rate, pitch)
    sum_nll, num_tokens = unit_log_likelihoods(pipeline, audio, batch_size=batch_size)
    good, bad = sum_nll[0::2].double(), sum_nll[1::2].double()
    good_n, bad_n = num_tokens[0::2].double(), num_tokens[1::2].double()
    categories = [str(p.get("phenomenon", p.get("type", "all"))) for p in pairs]
    summed = pair_accuracy(good.tolist(), bad.tolist(), categories)
    normalized = pair_accuracy((good / good_n).tolist(), (bad / bad_n).tolist(), categories)
    chosen = normalized if normalize else summed
    correct = pair_scores(*(((good / good_n), (bad / bad_n)) if normalize else (good, bad)))
    items = []
    for i, pair in enumerate(pairs):
        item = {k: pair[k] for k in ("id", "type", "phenomenon", "good", "bad", "good_audio", "bad_audio") if k in pair}
        item.update(good_nll=float(good[i]), bad_nll=float(bad[i]), good_tokens=int(good_n[i]),
                    bad_tokens=int(bad_n[i]), correct=float(correct[i]))  # fmt: skip
        items.append(item)
    return {
        "accuracy": chosen["accuracy"],
        "accuracy_summed": summed["accuracy"],
        "accuracy_normalized": normalized["accuracy"],
        "n": chosen["n"],
        "normalize": normalize,
        "voice": voice,
        "rate": rate,
        "per_phenomenon": chosen["per_category"],
        "items": items,
    }


def format_pair_table(result: dict) -> str:
    """A plain-text table of a `score_pairs` result: one row per phenomenon and the total."""
    rows = [(name, v["n"], v["accuracy"]) for name, v in result["per_phenomenon"].items()]
    rows.append(("all", result["n"], result["accuracy"]))
    width = max(len(r[0]) for r in rows) + 2
    scoring = "per-token NLL" if result["normalize"] else "summed NLL"
    lines = [f"{'phenomenon':<{width}}{'n':>6}  {'accuracy':>8}   ({scoring})", "-" * (width + 18)]
    lines += [f"{name:<{width}}{n:>6}  {acc:>8.3f}" for name, n, acc in rows]
    return "\n".join(lines)


__all__ = [
    "PHENOMENA",
    "build_lexical_pairs",
    "build_syntactic_pairs",
    "english_dictionary",
    "format_pair_table",
    "grammar_words",
    "make_nonword",
    "read_pairs",
    "score_pairs",
    "unit_log_likelihoods",
    "write_pairs",
]
