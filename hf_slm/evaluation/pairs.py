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


#: Story scenes of the StoryCloze-style builder: (first sentence, second sentence, the coherent ending). `{name}` /
#: `{pron}` / `{Pron}` are filled in; the incoherent ending is another scene's ending (topic StoryCloze's rule).
STORY_SCENES = [
    ("{name} was hungry after a long walk.", "{Pron} went into the kitchen.", "{Pron} made a sandwich and ate it."),
    ("{name} went to the beach on a hot day.", "The water was calm and warm.", "{Pron} swam in the sea for an hour."),
    ("It started to rain on the way home.", "{name} did not want to get wet.", "{Pron} opened a big umbrella."),
    ("{name} was very tired after work.", "{Pron} could barely keep {poss} eyes open.", "{Pron} went to bed early."),
    ("{name} could not find the house keys.", "{Pron} was late for the bus.", "{Pron} searched every pocket."),
    ("{name} planted seeds in the garden.", "{Pron} watered them every day.", "Soon small green shoots came up."),
    ("The phone rang late at night.", "{name} was worried.", "{Pron} answered it and heard {poss} mother."),
    ("{name} wanted to learn the piano.", "{Pron} found a teacher in town.", "{Pron} practised every evening."),
    ("{name}'s car would not start.", "The battery was dead.", "{Pron} called a mechanic for help."),
    ("{name} baked a cake for a friend.", "{Pron} added candles on top.", "They sang happy birthday together."),
    ("The dog barked at the door.", "{name} went to see why.", "A delivery man held a parcel."),
    ("{name} felt cold in the house.", "The windows were open.", "{Pron} closed them and made some tea."),
]
STORY_NAMES = [("Anna", "she", "her"), ("Tom", "he", "his"), ("Maria", "she", "her"), ("Peter", "he", "his"),
               ("Lucy", "she", "her"), ("David", "he", "his")]  # fmt: skip


def build_storycloze_pairs(n: int | None = None, seed: int = 0, scenes=None, names=None) -> list[dict]:
    """Topic-StoryCloze-style text pairs: a two-sentence story plus its own ending (good) or another story's (bad).

    The LM must prefer the ending that fits the story: a long-range coherence test, harder for speech LMs than
    agreement. `scenes` are ``(sentence, sentence, ending)`` templates with ``{name}``, ``{pron}``, ``{Pron}`` and
    ``{poss}`` slots (default `STORY_SCENES`); `names` are ``(name, pronoun, possessive)`` (default `STORY_NAMES`).
    Every scene is paired with every name (72 pairs by default; `n` keeps the first `n` after shuffling).
    """
    scenes = list(STORY_SCENES if scenes is None else scenes)
    names = list(STORY_NAMES if names is None else names)
    if len(scenes) < 2 or not names:
        raise ValueError("the StoryCloze builder needs at least two scenes (the wrong ending is another's) and a name")
    rng = random.Random(seed)
    pairs = []
    for index, (first, second, ending) in enumerate(scenes):
        for name, pron, poss in names:
            other = rng.choice([s for j, s in enumerate(scenes) if j != index])[2]
            slots = {"name": name, "pron": pron, "Pron": pron.capitalize(), "poss": poss}
            story = f"{first} {second}".format(**slots)
            pairs.append({"good": f"{story} {ending.format(**slots)}", "bad": f"{story} {other.format(**slots)}",
                          "type": "storycloze", "phenomenon": "topic_storycloze"})  # fmt: skip
    rng.shuffle(pairs)
    pairs = pairs[:n] if n is not None else pairs
    for i, pair in enumerate(pairs):
        pair["id"] = f"storycloze-{i}"
    return pairs


def write_pairs(pairs: list[dict], path) -> Path:
    """Write pairs as JSONL (one object per line)."""
    from ..utils import atomic_open

    path = Path(path)
    with atomic_open(path) as handle:
        handle.write("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
    return path


# ---------------------------------------------------------------------------------------------------- reading
def read_pairs(path) -> list[dict]:
    """Read and check a JSONL pair file; audio paths become absolute (relative to the file's folder)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pair file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:  # an audio or other binary file given as the pairs
        raise ValueError(f"pair file {path} is not UTF-8 text (JSONL): {err.reason} at byte {err.start}") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
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


ZEROSPEECH_TASKS = ("lexical", "syntactic")


def read_zerospeech_pairs(root, task: str = "lexical", split: str = "dev") -> list[dict]:
    """Audio pairs of the ZeroSpeech 2021 sWUGGY (``lexical``) or sBLIMP (``syntactic``) set under `root`.

    The layout is the challenge's: ``<root>/<task>/<split>/<filename>.wav`` plus ``gold.csv`` in the same folder, one
    row per file. Lexical columns: ``filename, id, voice, frequency, word, phones, length, correct``; syntactic:
    ``filename, type, subtype, id, voice, transcription, correct`` (``correct`` is 1 for the word / grammatical
    sentence, 0 for the other side). Files sharing ``id`` and ``voice`` (and ``type`` / ``subtype``) form a pair,
    as in the challenge's evaluation; the phenomenon is ``type`` for syntactic pairs.
    """
    import csv

    if task not in ZEROSPEECH_TASKS:
        raise ValueError(f"unknown ZeroSpeech task {task!r}; choose from {ZEROSPEECH_TASKS}")
    folder = Path(root) / task / split
    gold = folder / "gold.csv"
    if not gold.is_file():
        raise FileNotFoundError(f"no {gold} (the ZeroSpeech 2021 layout is <root>/{task}/{split}/gold.csv + wavs)")
    lexical = task == "lexical"
    text, keys = ("word", ("id", "voice")) if lexical else ("transcription", ("type", "subtype", "id", "voice"))
    groups: dict[tuple, dict[str, list[dict]]] = {}
    with gold.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        missing = [c for c in ("filename", "correct", text, *keys) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{gold}: missing columns {missing} (has {reader.fieldnames})")
        for number, row in enumerate(reader, start=2):
            if row["correct"] not in ("0", "1"):
                raise ValueError(f"{gold}:{number}: 'correct' must be 0 or 1, got {row['correct']!r}")
            audio = folder / f"{row['filename']}.wav"
            if not audio.is_file():
                raise FileNotFoundError(f"{gold}:{number}: audio file {str(audio)!r} does not exist")
            side = "good" if row["correct"] == "1" else "bad"
            groups.setdefault(tuple(row[k] for k in keys), {"good": [], "bad": []})[side].append(row | {"audio": audio})
    pairs = []
    for key, sides in groups.items():
        if not sides["good"] or not sides["bad"]:
            raise ValueError(f"{gold}: {dict(zip(keys, key))} has no {'good' if not sides['good'] else 'bad'} side")
        combinations = [(good, bad) for good in sides["good"] for bad in sides["bad"]]
        for k, (good, bad) in enumerate(combinations):
            suffix = f"-{k}" if len(combinations) > 1 else ""
            pairs.append({"id": f"{task}-{'-'.join(key)}{suffix}",
                          "good_audio": str(good["audio"]), "bad_audio": str(bad["audio"]), "good": good[text],
                          "bad": bad[text], "type": task, "voice": good["voice"],
                          "phenomenon": good["type"] if task == "syntactic" else "word_vs_nonword"})  # fmt: skip
    if not pairs:
        raise ValueError(f"{gold} holds no pairs")
    return pairs


def read_storycloze_pairs(path, good_column: str = "positive", bad_column: str = "negative") -> list[dict]:
    """Audio pairs of spoken / topic StoryCloze (sSC / tSC, Hassid et al. 2023), from either layout:

    - a folder of wavs in slamkit's layout: ``<index>_<name>.wav``, two files per story index; the file first in
      name order is the coherent ending;
    - a dataset (`save_to_disk` folder or a parquet / jsonl file) with an audio column per side, `good_column` /
      `bad_column` (``positive`` / ``negative``, as in the Hub copies that Llama-Mimi's evaluation reads). Its audio
      stays lazily decoded (torchcodec decoders) until scoring.
    """
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"StoryCloze folder or dataset {str(folder)!r} does not exist")
    if folder.is_file() or any((folder / name).exists() for name in ("dataset_info.json", "dataset_dict.json")):
        return _storycloze_dataset_pairs(folder, good_column, bad_column)
    stories: dict[int, list[Path]] = {}
    for wav in folder.glob("*.wav"):
        index = wav.name.split("_", 1)[0]
        if not index.isdigit():
            raise ValueError(f"{wav}: StoryCloze files are named <index>_<name>.wav")
        stories.setdefault(int(index), []).append(wav)
    if not stories:
        raise ValueError(f"{folder} holds no .wav files and is not a saved dataset")
    odd = {i: [p.name for p in paths] for i, paths in stories.items() if len(paths) != 2}
    if odd:
        shown = dict(list(odd.items())[:5])
        raise ValueError(f"{folder}: every story index needs exactly two files; these do not: {shown}")
    pairs = []
    for index in sorted(stories):
        good, bad = sorted(stories[index])
        pairs.append({"id": f"storycloze-{index}", "good_audio": str(good), "bad_audio": str(bad), "type": "storycloze",
                      "phenomenon": "storycloze"})  # fmt: skip
    return pairs


def _storycloze_dataset_pairs(path: Path, good_column: str, bad_column: str) -> list[dict]:
    from ..data.real_speech import load_local_dataset

    ds = load_local_dataset(path)
    missing = [c for c in (good_column, bad_column) if c not in ds.column_names]
    if missing:
        raise ValueError(f"StoryCloze dataset {path}: no audio column {missing} (columns: {ds.column_names}); "
                         "a folder of <index>_<name>.wav files is read too")  # fmt: skip
    return [{"id": f"storycloze-{i}", "good_audio": row[good_column], "bad_audio": row[bad_column],
             "type": "storycloze", "phenomenon": "storycloze"} for i, row in enumerate(ds)]  # fmt: skip


# ---------------------------------------------------------------------------------------------------- scoring
def _pair_audio(pairs, voice: str, rate: int, pitch: int, show_progress: bool = False) -> list:
    """Audio of every side in order good_0, bad_0, good_1, ...; text is synthesised once per distinct string."""
    from tqdm.auto import tqdm

    synthesizer, cache, audio = None, {}, []
    for pair in tqdm(pairs, desc="speech of the pairs", unit="pair", disable=not show_progress):
        for side in ("good", "bad"):
            if f"{side}_audio" in pair:
                audio.append(pair[f"{side}_audio"])
                continue
            text = pair[side]
            if text not in cache:
                if synthesizer is None:
                    from ..data import make_synthesizer

                    synthesizer = make_synthesizer(voice=voice, rate=rate, pitch=pitch)
                speech = synthesizer.synthesize(text)
                cache[text] = {"array": speech.waveform, "sampling_rate": speech.sampling_rate}
            audio.append(cache[text])
    return audio


@torch.no_grad()
def unit_log_likelihoods(pipeline, audio, batch_size: int = 16, add_eos: bool = True, show_progress: bool = False):
    """`(sum_nll, num_tokens)` tensors of each audio item's units under the pipeline's LM (`</s>` scored too)."""
    from tqdm.auto import tqdm

    lm = pipeline._require("language_model", "minimal-pair scoring")
    device = next(lm.parameters()).device
    sums, counts = [], []
    starts = range(0, len(audio), batch_size)
    for start in tqdm(starts, desc="scoring", unit="batch", disable=not show_progress):
        units = pipeline.encode(audio[start : start + batch_size])
        input_ids, attention_mask = lm.units_to_input_ids(units, add_eos=add_eos)
        out = lm.log_likelihood(input_ids.to(device), attention_mask=attention_mask.to(device))
        sums.append(out.sum_nll.cpu())
        counts.append(out.num_tokens.cpu())
    return torch.cat(sums), torch.cat(counts)


def score_pairs(pipeline, pairs: list[dict], voice: str = "en-us", rate: int = 175, pitch: int = 50,
                normalize: bool = False, batch_size: int = 16, show_progress: bool = False) -> dict:  # fmt: skip
    """Score minimal pairs with a pipeline's LM (`show_progress`: tqdm bars for synthesis and scoring).

    Returns a JSON-able dict: ``accuracy`` (by the chosen scoring), ``accuracy_summed``, ``accuracy_normalized``
    (per-token NLL), ``n``, ``normalize``, ``per_phenomenon`` (``{name: {"accuracy", "n"}}``) and ``items`` (per pair:
    the texts, ``good_nll`` / ``bad_nll`` summed, ``good_tokens`` / ``bad_tokens``, ``correct``).
    """
    if not pairs:
        raise ValueError("no pairs to score")
    audio = _pair_audio(pairs, voice, rate, pitch, show_progress)
    sum_nll, num_tokens = unit_log_likelihoods(pipeline, audio, batch_size=batch_size, show_progress=show_progress)
    good, bad = sum_nll[0::2].double(), sum_nll[1::2].double()
    good_n, bad_n = num_tokens[0::2].double(), num_tokens[1::2].double()
    categories = [str(p.get("phenomenon", p.get("type", "all"))) for p in pairs]
    summed = pair_accuracy(good.tolist(), bad.tolist(), categories)
    normalized = pair_accuracy((good / good_n).tolist(), (bad / bad_n).tolist(), categories)
    chosen = normalized if normalize else summed
    correct = pair_scores(*(((good / good_n), (bad / bad_n)) if normalize else (good, bad)))
    items = []
    for i, pair in enumerate(pairs):
        item = {k: pair[k] for k in ("id", "type", "phenomenon", "good", "bad", "good_audio", "bad_audio")
                if isinstance(pair.get(k), str)}  # decoded audio (a dataset's) stays out of the JSON
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


def score_pairs_ngram(lm, pairs: list[dict], voice: str = "en-us", tokenize=None) -> dict:
    """Score text minimal pairs with an n-gram LM (`NgramLanguageModel`, e.g. `hf_slm.training.fit_phone_lm`): the
    phone-LM topline of `score_pairs`, what a unit LM trained on speech of the same text could reach with units as
    clean as phonemes. `tokenize` maps a text to the LM's tokens (default: `hf_slm.data.phoneme_stream` in
    `voice`). Returns `score_pairs`' keys, with ``good_logprob`` / ``bad_logprob`` (natural log) per item."""
    from ..data import phoneme_stream

    if not pairs:
        raise ValueError("no pairs to score")
    tokenize = tokenize or (lambda text: phoneme_stream(text, voice))
    good_nll, bad_nll, items = [], [], []  # NLLs, as score_pairs compares them: lower is better
    for i, pair in enumerate(pairs):
        missing = [side for side in ("good", "bad") if not isinstance(pair.get(side), str)]
        if missing:
            raise ValueError(f"pair {i} ({pair.get('id', 'no id')}) has no {' / '.join(missing)} text; an n-gram "
                             "topline scores text pairs, not audio ones")  # fmt: skip
        sides = [lm.sequence_log_prob(tokenize(pair[side])) for side in ("good", "bad")]
        good_nll.append(-sides[0])
        bad_nll.append(-sides[1])
        item = {k: pair[k] for k in ("id", "type", "phenomenon", "good", "bad") if isinstance(pair.get(k), str)}
        items.append(item | {"good_logprob": sides[0], "bad_logprob": sides[1]})
    categories = [str(p.get("phenomenon", p.get("type", "all"))) for p in pairs]
    result = pair_accuracy(good_nll, bad_nll, categories)
    for item, correct in zip(items, pair_scores(good_nll, bad_nll)):
        item["correct"] = float(correct)
    return {"accuracy": result["accuracy"], "accuracy_summed": result["accuracy"], "n": result["n"],
            "normalize": False, "voice": voice, "order": lm.order, "per_phenomenon": result["per_category"],
            "items": items}  # fmt: skip


def format_pair_table(result: dict) -> str:
    """A plain-text table of a `score_pairs` result: one row per phenomenon and the total."""
    rows = [(name, v["n"], v["accuracy"]) for name, v in result["per_phenomenon"].items()]
    rows.append(("all", result["n"], result["accuracy"]))
    width = max(len(r[0]) for r in rows) + 2
    scoring = "per-token NLL" if result["normalize"] else "summed NLL"
    header = f"{'phenomenon':<{width}}{'n':>6}  {'accuracy':>8}   ({scoring})"
    lines = [header, "-" * len(header)]
    lines += [f"{name:<{width}}{n:>6}  {acc:>8.3f}" for name, n, acc in rows]
    return "\n".join(lines)


__all__ = [
    "PHENOMENA",
    "STORY_SCENES",
    "ZEROSPEECH_TASKS",
    "build_lexical_pairs",
    "build_storycloze_pairs",
    "build_syntactic_pairs",
    "english_dictionary",
    "format_pair_table",
    "grammar_words",
    "make_nonword",
    "read_pairs",
    "read_storycloze_pairs",
    "read_zerospeech_pairs",
    "score_pairs",
    "score_pairs_ngram",
    "unit_log_likelihoods",
    "write_pairs",
]
