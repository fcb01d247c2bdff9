"""Text sources for synthetic speech: a built-in English grammar of our own, user files, Debian corpora.

The built-in grammar (`GRAMMAR`, `TEMPLATES`) and its word lists are written for hf_slm and are
released with it under the Apache-2.0 licence. They are small on purpose: simple, fully grammatical
present-tense sentences with subject-verb agreement, deterministic for a seed, so that later tools
can build spoken minimal pairs from the same parts (a word vs a pronounceable non-word; an agreeing
vs a non-agreeing verb, by flipping one slot's number with `SentencePlan.with_number`).

Optional Debian sources (read only if installed; they are not ours, see docs/data.md):

- ``"fortunes"``: packages ``fortunes-min`` / ``fortunes`` (BSD licence, fortune-mod).
- ``"wordnet"``: package ``wordnet-base``, the example sentences of WordNet 3.0 glosses
  (WordNet 3.0 licence, Princeton University; permissive, keep its notice).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

# ------------------------------------------------------------------------------------------------
# The grammar. Nouns are (singular, plural); verbs are (third person singular, plural) present tense.
# Words are chosen so that "a"/"an" follows the spelling (no "hour", "unicorn") and espeak-ng
# pronounces them plainly.
GRAMMAR = MappingProxyType(
    {
        "determiners": {
            "singular": ("the", "a", "this", "that", "every", "one", "my", "our", "her", "his"),
            "plural": ("the", "these", "those", "some", "many", "two", "three", "my", "our", "her"),
        },
        "animate_nouns": (
            ("cat", "cats"), ("dog", "dogs"), ("bird", "birds"), ("horse", "horses"), ("fox", "foxes"),
            ("mouse", "mice"), ("child", "children"), ("man", "men"), ("woman", "women"),
            ("teacher", "teachers"), ("farmer", "farmers"), ("doctor", "doctors"), ("baker", "bakers"),
            ("singer", "singers"), ("student", "students"), ("sister", "sisters"), ("brother", "brothers"),
            ("friend", "friends"), ("baby", "babies"), ("king", "kings"), ("queen", "queens"),
            ("rabbit", "rabbits"), ("monkey", "monkeys"), ("duck", "ducks"), ("sheep", "sheep"),
            ("pilot", "pilots"), ("painter", "painters"), ("sailor", "sailors"), ("neighbor", "neighbors"),
            ("girl", "girls"), ("boy", "boys"), ("lion", "lions"), ("tiger", "tigers"), ("goat", "goats"),
        ),  # fmt: skip
        "things": (
            ("ball", "balls"), ("book", "books"), ("box", "boxes"), ("cup", "cups"), ("chair", "chairs"),
            ("table", "tables"), ("window", "windows"), ("door", "doors"), ("apple", "apples"),
            ("letter", "letters"), ("bottle", "bottles"), ("garden", "gardens"), ("house", "houses"),
            ("car", "cars"), ("boat", "boats"), ("tree", "trees"), ("flower", "flowers"), ("coat", "coats"),
            ("hat", "hats"), ("key", "keys"), ("lamp", "lamps"), ("basket", "baskets"), ("picture", "pictures"),
            ("stone", "stones"), ("river", "rivers"), ("bridge", "bridges"), ("wall", "walls"), ("bag", "bags"),
            ("shoe", "shoes"), ("cake", "cakes"), ("clock", "clocks"), ("bench", "benches"), ("shelf", "shelves"),
        ),  # fmt: skip
        "adjectives": (  # for people and animals (noun phrases and the copula)
            "small", "big", "old", "young", "happy", "quiet", "tall", "clever", "lazy", "friendly", "tired",
            "hungry", "busy", "brave", "gentle", "little", "angry", "kind", "strong", "calm", "funny", "proud",
            "shy", "wise", "noisy", "sleepy", "careful", "polite", "lucky", "cheerful",
        ),  # fmt: skip
        "thing_adjectives": (  # for objects
            "small", "big", "old", "new", "red", "green", "brown", "yellow", "blue", "heavy", "empty",
            "wooden", "broken", "clean", "round", "shiny", "little", "dusty", "tiny", "orange",
        ),  # fmt: skip
        "intransitive_verbs": (
            ("sleeps", "sleep"), ("runs", "run"), ("sings", "sing"), ("laughs", "laugh"), ("waits", "wait"),
            ("smiles", "smile"), ("jumps", "jump"), ("swims", "swim"), ("dances", "dance"), ("cries", "cry"),
            ("works", "work"), ("plays", "play"), ("walks", "walk"), ("sits", "sit"), ("listens", "listen"),
            ("rests", "rest"), ("falls", "fall"), ("hides", "hide"), ("wins", "win"), ("arrives", "arrive"),
        ),  # fmt: skip
        "transitive_verbs": (
            ("sees", "see"), ("likes", "like"), ("finds", "find"), ("wants", "want"), ("holds", "hold"),
            ("carries", "carry"), ("watches", "watch"), ("paints", "paint"), ("cleans", "clean"),
            ("follows", "follow"), ("opens", "open"), ("pushes", "push"), ("needs", "need"), ("loves", "love"),
            ("takes", "take"), ("brings", "bring"), ("moves", "move"), ("draws", "draw"), ("fixes", "fix"),
        ),  # fmt: skip
        "adverbs": (
            "quickly", "slowly", "loudly", "quietly", "again", "today", "often", "sometimes", "happily",
            "early", "together", "outside", "now", "always", "rarely", "gladly",
        ),  # fmt: skip
        "prepositions": ("near", "behind", "beside", "with", "under", "above", "next to", "without"),
        "auxiliaries": ("does", "do"),
        "copulas": ("is", "are"),
    }
)

#: Sentence templates. Slots: ``{NP:x}`` noun phrase (determiner, optional adjective, noun) whose
#: number is the variable ``x``; ``{THING:x}`` the same with an inanimate noun; ``{VI:x}`` / ``{VT:x}``
#: intransitive / transitive verb agreeing with ``x``; ``{VB}`` a verb's plural (bare) form after an
#: auxiliary; ``{AUX:x}`` does/do; ``{COP:x}`` is/are; ``{ADJ}`` (for people and animals), ``{TADJ}``
#: (for objects), ``{ADV}``, ``{PREP}``.
TEMPLATES = MappingProxyType(
    {
        "intransitive": "{NP:s} {VI:s}.",
        "transitive": "{NP:s} {VT:s} {THING:o}.",
        "transitive_animate": "{NP:s} {VT:s} {NP:o}.",
        "adverb": "{NP:s} {VI:s} {ADV}.",
        "attractor": "{NP:s} {PREP} {THING:o} {VI:s}.",
        "relative_clause": "{NP:s} that {VT:s} {THING:o} {VI:s}.",
        "coordination": "{NP:s} {VI:s} and {NP:t} {VI:t}.",
        "question": "{AUX:s} {NP:s} {VB}?",
        "copula": "{NP:s} {COP:s} {ADJ}.",
        "thing_copula": "{THING:s} {COP:s} {TADJ}.",
        "locative": "{NP:s} {VI:s} {PREP} {THING:o}.",
    }
)

_SLOT = re.compile(r"\{([A-Z]+)(?::([a-z]))?\}")
NUMBERS = ("singular", "plural")
_NOUN_LISTS = {"NP": ("animate_nouns", "adjectives"), "THING": ("things", "thing_adjectives")}
_WORD_LISTS = {"ADJ": "adjectives", "TADJ": "thing_adjectives", "ADV": "adverbs", "PREP": "prepositions"}


@dataclass(frozen=True)
class Slot:
    """One filled slot of a template: its kind, grammatical number and chosen word indices."""

    kind: str  # NP, THING, VI, VT, VB, AUX, COP, ADJ, TADJ, ADV, PREP
    number: str | None  # "singular" / "plural" for agreeing slots
    choice: tuple[int, ...]  # indices into GRAMMAR lists (NP/THING: determiner, adjective or -1, noun)


@dataclass(frozen=True)
class SentencePlan:
    """A template with every slot filled; `realize` turns it into text.

    A syntactic minimal pair is the same plan with one verb slot's number flipped:
    ``realize(plan)`` vs ``realize(plan.with_number(i, "plural"))``.
    """

    template: str
    slots: tuple[Slot, ...]

    def with_number(self, slot_index: int, number: str) -> SentencePlan:
        if number not in NUMBERS:
            raise ValueError(f"`number` must be one of {NUMBERS}, got {number!r}.")
        slots = list(self.slots)
        slots[slot_index] = replace(slots[slot_index], number=number)
        return SentencePlan(self.template, tuple(slots))


def _pick(rng: random.Random, kind: str, number: str | None) -> tuple[int, ...]:
    if kind in ("NP", "THING"):
        nouns, adjectives = _NOUN_LISTS[kind]
        determiner = rng.randrange(len(GRAMMAR["determiners"][number]))
        adjective = rng.randrange(len(GRAMMAR[adjectives])) if rng.random() < 0.5 else -1
        return (determiner, adjective, rng.randrange(len(nouns)))
    if kind in ("VI", "VT", "VB"):
        verbs = GRAMMAR["transitive_verbs"] if kind == "VT" else GRAMMAR["intransitive_verbs"]
        return (rng.randrange(len(verbs)),)
    return (rng.randrange(len(GRAMMAR[_WORD_LISTS[kind]])),) if kind in _WORD_LISTS else ()


def sample_plan(rng: random.Random, template: str | None = None) -> SentencePlan:
    """Fill a template (random if ``template`` is None) with words drawn from ``rng``."""
    name = template if template is not None else rng.choice(sorted(TEMPLATES))
    if name not in TEMPLATES:
        raise ValueError(f"Unknown template {name!r}; choose one of {sorted(TEMPLATES)}.")
    numbers: dict[str, str] = {}
    slots = []
    for kind, variable in _SLOT.findall(TEMPLATES[name]):
        number = None
        if variable:
            number = numbers.setdefault(variable, rng.choice(NUMBERS))
        slots.append(Slot(kind, number, _pick(rng, kind, number or "singular")))
    return SentencePlan(name, tuple(slots))


def _noun_phrase(slot: Slot) -> str:
    nouns, adjectives = _NOUN_LISTS[slot.kind]
    determiners = GRAMMAR["determiners"][slot.number]
    determiner_index, adjective_index, noun_index = slot.choice
    determiner = determiners[determiner_index % len(determiners)]
    noun = GRAMMAR[nouns][noun_index][NUMBERS.index(slot.number)]
    words = [GRAMMAR[adjectives][adjective_index], noun] if adjective_index >= 0 else [noun]
    if determiner == "a" and words[0][0] in "aeiou":
        determiner = "an"
    return " ".join([determiner, *words])


def realize(plan: SentencePlan) -> str:
    """The sentence of a plan, capitalised, with its final punctuation."""
    parts = iter(plan.slots)

    def fill(match):
        slot = next(parts)
        position = NUMBERS.index(slot.number) if slot.number else 0
        if slot.kind in ("NP", "THING"):
            return _noun_phrase(slot)
        if slot.kind == "VI":
            return GRAMMAR["intransitive_verbs"][slot.choice[0]][position]
        if slot.kind == "VT":
            return GRAMMAR["transitive_verbs"][slot.choice[0]][position]
        if slot.kind == "VB":
            return GRAMMAR["intransitive_verbs"][slot.choice[0]][1]
        if slot.kind == "AUX":
            return GRAMMAR["auxiliaries"][position]
        if slot.kind == "COP":
            return GRAMMAR["copulas"][position]
        return GRAMMAR[_WORD_LISTS[slot.kind]][slot.choice[0]]

    text = _SLOT.sub(fill, TEMPLATES[plan.template])
    return text[0].upper() + text[1:]


def generate_sentences(n: int, seed: int = 0, unique: bool = True) -> list[str]:
    """``n`` sentences from the built-in grammar, the same list for the same ``seed``.

    With ``unique=True`` (default) no sentence repeats; the grammar holds well over 10 million
    distinct sentences; 100k distinct ones take about two seconds.

    >>> from hf_slm.data import generate_sentences
    >>> generate_sentences(2, seed=0) == generate_sentences(2, seed=0)
    True
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"`n` must be a non-negative integer, got {n!r}.")
    rng = random.Random(seed)
    sentences, seen = [], set()
    attempts = 0
    while len(sentences) < n:
        attempts += 1
        if attempts > 20 * n + 1000:
            raise RuntimeError(f"Could not draw {n} distinct sentences (got {len(sentences)}); use unique=False.")
        sentence = realize(sample_plan(rng))
        if unique:
            if sentence in seen:
                continue
            seen.add(sentence)
        sentences.append(sentence)
    return sentences


# ------------------------------------------------------------------------------------------------
# Loading text corpora
FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
BUILTIN_DEFAULT_SIZE = 1000
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
_SPEAKABLE = re.compile(r"^[A-Za-z0-9 ,.;:!?'\"()-]+$")


def read_text_file(path: str | Path, limit: int | None = None) -> list[str]:
    """One sentence per line of a UTF-8 file; blank lines are skipped; the first ``limit`` lines."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Text file {str(path)!r} does not exist.")
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file (expected a text file with one sentence per line).")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"Text file {str(path)!r} is not valid UTF-8 (byte {error.start}: {data[error.start:error.start + 1]!r}); "
            "convert it, e.g. `iconv -f latin1 -t utf-8`."
        ) from error
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"Text file {str(path)!r} holds no text (empty or blank lines only).")
    return lines[:limit] if limit is not None else lines


def _clean(sentence: str, min_words: int = 3, max_words: int = 30) -> str | None:
    sentence = " ".join(sentence.split())
    if not _SPEAKABLE.match(sentence) or not min_words <= len(sentence.split()) <= max_words:
        return None
    if not any(char.isalpha() for char in sentence) or sentence.isupper():
        return None
    return sentence


def read_fortunes(directory: str | Path = FORTUNES_DIR) -> list[str]:
    """Sentences of the fortune files (``%``-separated entries) in ``directory``, cleaned and deduplicated."""
    directory = Path(directory)
    files = sorted(p for p in directory.glob("*") if p.is_file() and not p.suffix and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(
            f"No fortune files in {str(directory)!r}: install them with `apt-get install fortunes-min` "
            "(or `fortunes` for the full set)."
        )
    sentences, seen = [], set()
    for file in files:
        text = file.read_bytes().decode("utf-8", errors="replace")
        for entry in re.split(r"^%\s*$", text, flags=re.MULTILINE):
            lines = [line for line in entry.splitlines() if not line.strip().startswith("--")]  # attributions
            for sentence in _SENTENCE_END.split(" ".join(lines)):
                cleaned = _clean(sentence)
                if cleaned and cleaned not in seen:
                    seen.add(cleaned)
                    sentences.append(cleaned)
    return sentences


def _wordnet_files(directory) -> list[Path]:
    directory = Path(directory)
    files = [directory / f"data.{pos}" for pos in ("noun", "verb", "adj", "adv")]
    files = [file for file in files if file.is_file()]
    if not files:
        raise FileNotFoundError(
            f"No WordNet data files (data.noun, ...) in {str(directory)!r}: install them with `apt-get install wordnet-base`."
        )
    return files


def _wordnet_synset_lines(files):
    """The synset lines (``offset ... | gloss``) of WordNet data files; licence header lines start with two spaces."""
    for file in files:
        for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.startswith("  ") and "|" in line:
                yield line


def read_wordnet_examples(directory: str | Path = WORDNET_DIR) -> list[str]:
    """The quoted example sentences of WordNet glosses (``data.noun`` etc.), cleaned and deduplicated."""
    sentences, seen = [], set()
    for line in _wordnet_synset_lines(_wordnet_files(directory)):
        for example in re.findall(r'"([^"]+)"', line.split("|", 1)[1]):
            cleaned = _clean(example)
            if cleaned:
                cleaned = cleaned[0].upper() + cleaned[1:]
                if cleaned[-1] not in ".!?":
                    cleaned += "."
                if cleaned not in seen:
                    seen.add(cleaned)
                    sentences.append(cleaned)
    return sentences


def read_wordnet_definitions(directory: str | Path = WORDNET_DIR) -> list[str]:
    """The definitions of every WordNet synset (``data.noun`` etc.): each gloss without its quoted examples (which
    `read_wordnet_examples` gives), in file order, duplicates kept (a definition shared by two synsets is text seen
    twice). About 1.2M words of dictionary English: text for a word LM that knows the dictionary's words."""
    definitions = []
    for line in _wordnet_synset_lines(_wordnet_files(directory)):
        # a gloss is `definition; "example"; ...`; a part holding a quote is an example (20 lack their opening one)
        parts = [part for part in line.split("|", 1)[1].split(";") if '"' not in part]
        definition = " ".join(" ".join(parts).split()).strip(" :,")
        if any(char.isalpha() for char in definition):
            definitions.append(definition)
    return definitions


def read_wordnet_glosses(directory: str | Path = WORDNET_DIR, max_words: int = 20) -> list[tuple[str, str]]:
    """``(word, definition)`` pairs of WordNet synsets (``data.noun`` etc.): the synset's first word (``"_"`` read
    as a space) and its gloss without the quoted examples, both speakable by espeak-ng; one pair per word (its
    first sense), for open-vocabulary questions such as "which word means ...".
    """
    pairs, seen = [], set()
    for line in _wordnet_synset_lines(_wordnet_files(directory)):
        fields, gloss = line.split("|", 1)
        parts = fields.split()
        if len(parts) < 5:
            continue
        word = re.sub(r"\(.*\)$", "", parts[4]).replace("_", " ")
        definition = gloss.split('"', 1)[0].strip().rstrip(";:,").strip()
        definition = _clean(definition, min_words=2, max_words=max_words)
        if not definition or not _SPEAKABLE.match(word) or word.lower() in seen or word.isupper():
            continue
        seen.add(word.lower())
        pairs.append((word, definition))
    return pairs


def _inflections(lemma: str, pos: str, irregular: bool) -> set[str]:
    """Regular English inflections of a WordNet lemma: noun plurals and possessives, verb -s / -ed / -ing. A lemma
    with forms in WordNet's ``*.exc`` list (`irregular`: "fibbed", "ran") keeps only its -s form here, as morphy
    reads them: its other forms are those exceptions (no "fibed"). Comparatives come from ``adj.exc`` and texts only
    (-er on any short adjective makes words like "sowner")."""
    sibilant = lemma.endswith(("s", "x", "z", "ch", "sh"))
    consonant_y = len(lemma) > 1 and lemma[-1] == "y" and lemma[-2] not in "aeiou"
    plural = lemma[:-1] + "ies" if consonant_y else lemma + ("es" if sibilant else "s")
    if pos == "noun":
        return {plural, lemma + "'s"}
    if pos == "verb":
        if irregular:
            return {plural}
        stem = lemma[:-1] if lemma.endswith("e") and not lemma.endswith("ee") else lemma
        past = lemma + "d" if lemma.endswith("e") else lemma[:-1] + "ied" if consonant_y else lemma + "ed"
        return {plural, past, stem + "ing"}
    return set()


_SPELLED_WORD = re.compile(r"[a-z][a-z']*")


def text_words(text: str) -> list[str]:
    """The words of `text` as a character decoder spells them: lower case letters and apostrophes, starting with a
    letter; digits and other symbols are dropped. The one word rule of the lexicon (`read_wordnet_lexicon`) and of
    the word LM (`hf_slm.training.fit_word_lm`)."""
    return [w for w in re.findall(r"[a-z']+", text.lower()) if _SPELLED_WORD.fullmatch(w)]


def read_wordnet_lexicon(directory: str | Path = WORDNET_DIR, texts=()) -> list[str]:
    """A lower-case English word list, sorted: WordNet's one-word lemmas (``index.noun`` etc.), their regular
    inflections, its irregular forms (``*.exc``), and the words of ``texts`` (letters and apostrophes only).

    What lexicon-constrained transcription spells from (`SpeechLLMProcessor.lexicon`): a dictionary, as an ASR
    decoder's lexicon is, not text; it holds the words of held-out sentences as any dictionary would.
    """
    directory = Path(directory)
    _wordnet_files(directory)  # a clear error without wordnet-base
    words = set()
    for pos in ("noun", "verb", "adj", "adv"):
        index, exceptions = directory / f"index.{pos}", directory / f"{pos}.exc"
        irregular = set()
        if exceptions.is_file():
            for line in exceptions.read_text(encoding="utf-8", errors="replace").splitlines():
                forms = line.split()
                if len(forms) >= 2 and _SPELLED_WORD.fullmatch(forms[0]):
                    words.add(forms[0])
                    irregular.update(forms[1:])
        if index.is_file():
            for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
                lemma = line.split(" ", 1)[0]
                if not line.startswith(" ") and _SPELLED_WORD.fullmatch(lemma):
                    words.add(lemma)
                    words.update(_inflections(lemma, pos, lemma in irregular))
    for text in texts:
        words.update(text_words(text))
    return sorted(words)


def load_text_corpus(source: str | Path, limit: int | None = None, seed: int = 0) -> list[str]:
    """Sentences to synthesise.

    Args:
        source: ``"builtin"`` (our grammar, `generate_sentences`; ``limit`` defaults to 1000),
            ``"fortunes"`` or ``"wordnet"`` (Debian packages, if installed; ``"wordnet-definitions"``: the glosses'
            defining text, `read_wordnet_definitions`, not sentences to speak), or a path to a UTF-8
            text file with one sentence per line (blank lines skipped). ``"open-train"`` / ``"open-eval"``: the
            two sides of `split_texts` over fortunes + wordnet (`load_text_split`); no eval sentence, and no
            held-out word, is in the train side.
        limit: keep at most this many sentences. A file gives its first ``limit`` lines; fortunes
            and wordnet give a random subset drawn with ``seed`` (in corpus order).
        seed: seed of the built-in grammar and of the fortunes/wordnet subset.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"`limit` must be a positive integer or None, got {limit!r}.")
    if source == "builtin":
        return generate_sentences(limit if limit is not None else BUILTIN_DEFAULT_SIZE, seed=seed)
    if source in OPEN_VOCABULARY_SPLITS:
        return load_text_split(source.split("-", 1)[1], limit=limit, seed=seed)
    if source in ("fortunes", "wordnet", "wordnet-definitions"):
        reader = {"fortunes": read_fortunes, "wordnet": read_wordnet_examples,
                  "wordnet-definitions": read_wordnet_definitions}[source]  # fmt: skip
        sentences = reader()
        if limit is not None and limit < len(sentences):
            keep = sorted(random.Random(seed).sample(range(len(sentences)), limit))
            sentences = [sentences[i] for i in keep]
        return sentences
    if isinstance(source, (str, Path)):
        return read_text_file(source, limit)
    raise TypeError(f"`source` must be 'builtin', 'fortunes', 'wordnet', 'wordnet-definitions', 'open-train', 'open-eval' "
                    f"or a file path, got {source!r}.")  # fmt: skip


# ------------------------------------------------------------------------------------------------
# A held-out split that no training text can leak into
OPEN_VOCABULARY_SOURCES = ("wordnet", "fortunes")
OPEN_VOCABULARY_SPLITS = ("open-train", "open-eval")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def normalize_sentence(sentence: str) -> str:
    """Lower-case words (letters, digits, inner apostrophes) joined by single spaces: what the split compares."""
    return " ".join(_WORD.findall(sentence.lower()))


def _unit_hash(text: str, salt: str) -> float:
    """A number in [0, 1) fixed by ``text`` and ``salt`` (sha256: the same in every process and Python)."""
    digest = hashlib.sha256(f"{salt}\x00{text}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class TextSplit:
    """Train and evaluation sentences that share no sentence and no held-out word (see `split_texts`)."""

    train: list[str]
    eval: list[str]
    heldout_words: frozenset[str]


def split_texts(
    sentences,
    eval_fraction: float = 0.02,
    heldout_word_fraction: float = 0.02,
    max_heldout_word_sentences: int = 3,
    heldout_words=(),
    salt: str = "hf_slm-split-v1",
) -> TextSplit:
    """Split sentences into train / eval so that no evaluation item, and no held-out word, is ever trained on.

    A sentence goes to eval when the hash of its normalised form (`normalize_sentence`) falls below
    ``eval_fraction``, or when it holds a held-out word. Held-out words are ``heldout_words`` plus the rare words
    (found in at most ``max_heldout_word_sentences`` sentences) whose own hash falls below ``heldout_word_fraction``:
    evaluation then holds words the training text never shows, and common words stay in training.
    Sentences whose normalised forms are equal are one item (the first spelling is kept), so that no spelling
    variant of an eval sentence is trained on. The split depends only on the set of sentences and the arguments,
    not on their order or on any seed.

    >>> split = split_texts(["The dog barked.", "A cat slept.", "The dog barked!"], eval_fraction=0.5,
    ...                     heldout_word_fraction=0.0)
    >>> sorted(split.train + split.eval)
    ['A cat slept.', 'The dog barked.']
    """
    for name, value in (("eval_fraction", eval_fraction), ("heldout_word_fraction", heldout_word_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}.")
    if isinstance(max_heldout_word_sentences, bool) or not isinstance(max_heldout_word_sentences, int) \
            or max_heldout_word_sentences < 1:  # fmt: skip
        raise ValueError(f"`max_heldout_word_sentences` must be a positive integer, got {max_heldout_word_sentences!r}.")
    if isinstance(heldout_words, str):
        raise TypeError("`heldout_words` must be a collection of words, got a single str (wrap it in a list).")
    items: dict[str, str] = {}  # normalised form -> first spelling
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise TypeError(f"`sentences[{index}]` must be a str, got {type(sentence).__name__}.")
        key = normalize_sentence(sentence)
        if key and key not in items:
            items[key] = sentence
    counts: dict[str, int] = {}
    for key in items:
        for word in set(key.split()):
            counts[word] = counts.get(word, 0) + 1
    held = {normalize_sentence(word) for word in heldout_words} - {""}
    held |= {word for word, count in counts.items()
             if count <= max_heldout_word_sentences and _unit_hash(word, salt) < heldout_word_fraction}  # fmt: skip
    train, evaluation = [], []
    for key, sentence in items.items():
        goes_to_eval = _unit_hash(key, salt) < eval_fraction or not held.isdisjoint(key.split())
        (evaluation if goes_to_eval else train).append(sentence)
    return TextSplit(train, evaluation, frozenset(held))


def load_text_split(
    split: str,
    sources=OPEN_VOCABULARY_SOURCES,
    limit: int | None = None,
    seed: int = 0,
    **split_kwargs,
) -> list[str]:
    """The ``"train"`` or ``"eval"`` side of `split_texts` over open-vocabulary English corpora.

    ``sources`` are `load_text_corpus` sources (default: Debian's WordNet examples and fortunes, about 65k
    sentences); the split is made over all of them together, so a sentence found in two sources is on one side.
    ``limit`` keeps a random subset drawn with ``seed`` (in split order); ``split_kwargs`` go to `split_texts`.
    """
    if split not in ("train", "eval"):
        raise ValueError(f"`split` must be 'train' or 'eval', got {split!r}.")
    sentences = load_sentences(sources)
    chosen = getattr(split_texts(sentences, **split_kwargs), split)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"`limit` must be a positive integer or None, got {limit!r}.")
        if limit < len(chosen):
            chosen = [chosen[i] for i in sorted(random.Random(seed).sample(range(len(chosen)), limit))]
    return chosen


def load_sentences(sources=OPEN_VOCABULARY_SOURCES) -> list[str]:
    """Every sentence of one `load_text_corpus` source or of several, in order: what the open-vocabulary split is
    made over."""
    if isinstance(sources, (str, Path)):
        sources = (sources,)
    return [sentence for source in sources for sentence in load_text_corpus(source)]


def load_heldout_words(sources=OPEN_VOCABULARY_SOURCES, sentences=None, **split_kwargs) -> list[str]:
    """The held-out words of `split_texts` over ``sources``, sorted: no ``"open-train"`` sentence holds any of them,
    so pairs built from them test words a model trained on that side never saw (``build-pairs --words
    open-heldout``). Only purely alphabetic words are kept (no digits or apostrophes). ``sentences``: those of
    `load_sentences(sources)` when the caller has them already (they are not read again)."""
    sentences = load_sentences(sources) if sentences is None else sentences
    return sorted(word for word in split_texts(sentences, **split_kwargs).heldout_words if word.isalpha())


__all__ = [
    "GRAMMAR",
    "OPEN_VOCABULARY_SOURCES",
    "OPEN_VOCABULARY_SPLITS",
    "TextSplit",
    "load_text_split",
    "load_heldout_words",
    "load_sentences",
    "normalize_sentence",
    "split_texts",
    "TEMPLATES",
    "NUMBERS",
    "Slot",
    "SentencePlan",
    "generate_sentences",
    "load_text_corpus",
    "read_fortunes",
    "read_text_file",
    "read_wordnet_examples",
    "read_wordnet_glosses",
    "read_wordnet_lexicon",
    "realize",
    "sample_plan",
]
