"""Instruction data builders: rows of ``datasets.Dataset`` holding a ``messages`` conversation (chat format).

Every builder returns rows with the same schema, so that sets can be concatenated:

- ``task`` (str): ``"asr"``, ``"tts"``, ``"chain_of_modality"``, ``"intent"``, ``"slots"``, ``"keyword"``,
  ``"silence"`` or ``"query"``;
- ``tag`` (str): the task tag written after ``<s>`` (e.g. ``"[ASR]"``; ``""`` for none);
- ``messages``: a list of turns ``{"role": "user" | "assistant", "content": [item, ...]}`` where each item is
  ``{"type": "text" | "speech", "text": str | None, "units": list[int] | None}``;
- ``reference`` (str): the text the row is about (transcript, answer, label), for evaluation.

Speech is given as units (the speech tokenizer's output). Builders that need speech for a text (chain of modality,
SLU, silence mode) take ``speak``: a callable ``list[str] -> list[units]``; `espeak_speaker` builds one from a
pipeline (espeak-ng synthesis, then ``pipeline.encode``). All randomness comes from ``seed``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np

# Instruction templates (SpeechGPT / VoxtLM style: several phrasings so the model learns the task, not the string).
ASR_TEMPLATES = (
    "transcribe this speech",
    "write down what is said",
    "what does the speaker say",
    "turn this audio into text",
    "please transcribe the recording",
)
TTS_TEMPLATES = (
    "say this text",
    "read this aloud",
    "speak the following sentence",
    "turn this text into speech",
    "please say it out loud",
)
INTENT_TEMPLATES = ("what does the user want", "classify the intent of this request")
SLOT_TEMPLATES = ("fill the slots of this request", "extract the slots from this request")
KEYWORD_TEMPLATES = ("is the word {keyword} spoken here", "does this speech contain the word {keyword}")

TASK_TAGS = {
    "asr": "[ASR]",
    "tts": "[TTS]",
    "chain_of_modality": "[CoM]",
    "intent": "[SLU]",
    "slots": "[SLU]",
    "keyword": "[KWS]",
    "silence": "",
    "query": "",
}
#: The chat role tags plus the task tags above: what `add_task_tokens` adds to a model before instruction tuning.
INSTRUCT_TOKENS = ("[User]", "[Assistant]", "[ASR]", "[TTS]", "[CoM]", "[SLU]", "[KWS]")

_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_OPPOSITES = (
    ("big", "small"), ("hot", "cold"), ("old", "new"), ("fast", "slow"), ("happy", "sad"), ("up", "down"),
    ("day", "night"), ("open", "closed"), ("light", "dark"), ("early", "late"),
)  # fmt: skip

# Survey Table 4 SLU tasks on a small built-in command set: intent, slots (name: value), keywords.
SLU_INTENTS = {
    "set_alarm": ("set an alarm for {time}", "wake me up at {time}", "please set an alarm at {time}"),
    "play_music": ("play some {genre} music", "put on {genre} music", "i want to hear {genre}"),
    "weather": ("what is the weather in {city}", "will it rain in {city}", "how cold is it in {city}"),
    "lights_on": ("turn on the lights in the {room}", "switch on the {room} lights"),
    "lights_off": ("turn off the lights in the {room}", "switch off the {room} lights"),
}
SLU_SLOTS = {
    "time": ("seven am", "six thirty", "nine pm", "noon", "eight am"),
    "genre": ("jazz", "rock", "classical", "folk", "pop"),
    "city": ("paris", "london", "boston", "tokyo", "berlin"),
    "room": ("kitchen", "bedroom", "garden", "office", "hall"),
}


def _item(kind: str, value) -> dict:
    if kind == "text":
        return {"type": "text", "text": str(value), "units": None}
    return {"type": "speech", "text": None, "units": [int(u) for u in np.asarray(value).reshape(-1)]}


def _turn(role: str, *items: dict) -> dict:
    return {"role": role, "content": list(items)}


def _row(task: str, messages: list[dict], reference: str) -> dict:
    return {"task": task, "tag": TASK_TAGS[task], "messages": messages, "reference": reference}


def _dataset(rows: list[dict]):
    from datasets import Dataset

    if not rows:
        raise ValueError("the builder produced no rows (empty input?)")
    return Dataset.from_list(rows)


def _check_speech(name: str, units: Sequence, texts: Sequence[str]) -> None:
    if len(units) != len(texts):
        raise ValueError(f"{name}: got {len(units)} unit sequences for {len(texts)} texts")
    empty = [i for i, u in enumerate(units) if len(u) == 0]
    if empty:
        raise ValueError(f"{name}: utterance {empty[0]} has no units (too short or silent audio?)")


# ---------------------------------------------------------------------- (a) cross-modal: ASR and TTS
def build_cross_modal(
    units: Sequence,
    texts: Sequence[str],
    tasks: Sequence[str] = ("asr", "tts"),
    asr_templates: Sequence[str] = ASR_TEMPLATES,
    tts_templates: Sequence[str] = TTS_TEMPLATES,
    seed: int = 0,
):
    """ASR ("transcribe this speech" + speech -> text) and TTS ("say this text" + text -> speech) instructions.

    Args:
        units, texts: paired speech (one unit sequence per utterance) and its transcript, e.g. the ``units`` of
            ``pipeline.encode(dataset["audio"])`` and ``dataset["text"]`` of `hf_slm.data.synthesize_dataset`.
        tasks: which instructions to build per pair, ``"asr"`` and / or ``"tts"``.
        asr_templates, tts_templates: instruction phrasings; one is drawn per row.
        seed: seed of the template draws.
    """
    unknown = set(tasks) - {"asr", "tts"}
    if unknown or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of ('asr', 'tts'), got {tasks!r}")
    _check_speech("build_cross_modal", units, texts)
    rng = random.Random(seed)
    rows = []
    for u, text in zip(units, texts):
        text = normalise_words(text)
        if "asr" in tasks:
            user = _turn("user", _item("text", rng.choice(asr_templates)), _item("speech", u))
            rows.append(_row("asr", [user, _turn("assistant", _item("text", text))], text))
        if "tts" in tasks:
            user = _turn("user", _item("text", rng.choice(tts_templates)), _item("text", text))
            rows.append(_row("tts", [user, _turn("assistant", _item("speech", u))], text))
    return _dataset(rows)


# ---------------------------------------------------------------------- (b) chain of modality
def synthetic_qa_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` spoken-style question / answer pairs (small sums, opposites, successors), deterministic for a seed."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        kind = rng.randrange(3)
        if kind == 0:
            a, b = rng.randrange(6), rng.randrange(5)
            pairs.append((f"what is {_NUMBERS[a]} plus {_NUMBERS[b]}", f"{_NUMBERS[a]} plus {_NUMBERS[b]} is {_NUMBERS[a + b]}"))
        elif kind == 1:
            word, opposite = rng.choice(_OPPOSITES)
            if rng.random() < 0.5:
                word, opposite = opposite, word
            pairs.append((f"what is the opposite of {word}", f"the opposite of {word} is {opposite}"))
        else:
            a = rng.randrange(10)
            pairs.append((f"what comes after {_NUMBERS[a]}", f"{_NUMBERS[a + 1]} comes after {_NUMBERS[a]}"))
    return pairs


def build_chain_of_modality(qa_pairs: Sequence[tuple[str, str]], speak: Callable[[list[str]], list]):
    """SpeechGPT's chain of modality: speech question -> text question -> text answer -> speech answer.

    A text instruction set (``qa_pairs``, e.g. `synthetic_qa_pairs`) is spoken with ``speak`` (e.g.
    `espeak_speaker`); the assistant turn holds the transcript of the question, the text answer and the spoken
    answer, so the model learns to think in text before it speaks.
    """
    if not qa_pairs:
        raise ValueError("qa_pairs is empty")
    questions = [normalise_words(q) for q, _ in qa_pairs]
    answers = [normalise_words(a) for _, a in qa_pairs]
    speech = speak(questions + answers)
    _check_speech("build_chain_of_modality", speech, questions + answers)
    q_units, a_units = speech[: len(questions)], speech[len(questions) :]
    rows = []
    for question, answer, qu, au in zip(questions, answers, q_units, a_units):
        user = _turn("user", _item("speech", qu))
        assistant = _turn("assistant", _item("text", question), _item("text", answer), _item("speech", au))
        rows.append(_row("chain_of_modality", [user, assistant], answer))
    return _dataset(rows)


# ---------------------------------------------------------------------- (c) spoken language understanding
def synthetic_slu_commands(n: int, seed: int = 0) -> list[dict]:
    """``n`` voice commands of the built-in SLU set: ``{"text", "intent", "slots": {name: value}}``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        intent = rng.choice(sorted(SLU_INTENTS))
        template = rng.choice(SLU_INTENTS[intent])
        slots = {}
        for name in SLU_SLOTS:
            if "{" + name + "}" in template:
                slots[name] = rng.choice(SLU_SLOTS[name])
        out.append({"text": template.format(**slots), "intent": intent, "slots": slots})
    return out


def _slot_string(slots: dict) -> str:
    return " ".join(f"{name} is {value}" for name, value in sorted(slots.items())) or "none"


def build_slu(
    commands: Sequence[dict],
    speak: Callable[[list[str]], list],
    tasks: Sequence[str] = ("intent", "slots", "keyword"),
    seed: int = 0,
):
    """Intent classification, slot filling and keyword spotting on spoken commands (survey Table 4).

    ``commands`` come from `synthetic_slu_commands` (or any rows with ``text`` / ``intent`` / ``slots``). Intent
    answers are the intent name with spaces (``"set alarm"``), slot answers ``"time is seven am"``, keyword answers
    ``"yes"`` / ``"no"`` (half of the asked keywords occur in the command).
    """
    unknown = set(tasks) - {"intent", "slots", "keyword"}
    if unknown or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of ('intent', 'slots', 'keyword'), got {tasks!r}")
    if not commands:
        raise ValueError("commands is empty")
    texts = [normalise_words(c["text"]) for c in commands]
    speech = speak(texts)
    _check_speech("build_slu", speech, texts)
    rng = random.Random(seed)
    vocabulary = sorted({w for t in texts for w in t.split()})
    rows = []
    for command, text, units in zip(commands, texts, speech):
        answers = {
            "intent": (rng.choice(INTENT_TEMPLATES), command["intent"].replace("_", " ")),
            "slots": (rng.choice(SLOT_TEMPLATES), _slot_string(command["slots"])),
        }
        if "keyword" in tasks:
            present = rng.random() < 0.5
            words = text.split() if present else [w for w in vocabulary if w not in text.split()] or text.split()
            keyword = rng.choice(words)
            answers["keyword"] = (rng.choice(KEYWORD_TEMPLATES).format(keyword=keyword), "yes" if present else "no")
        for task in tasks:
            instruction, answer = answers[task]
            user = _turn("user", _item("text", instruction), _item("speech", units))
            rows.append(_row(task, [user, _turn("assistant", _item("text", answer))], answer))
    return _dataset(rows)


# ---------------------------------------------------------------------- (d) silence mode (VITA)
def build_silence_mode(
    query_units: Sequence,
    query_answers: Sequence[str],
    non_query_units: Sequence,
    answer_modality: str = "text",
):
    """VITA's non-awakening interaction: audio that is not a query gets an empty reply (an immediate ``</s>``).

    Args:
        query_units, query_answers: real spoken queries and the text answers they should get.
        non_query_units: audio not addressed to the model (background noise, side talk) as units; its assistant
            turn is empty, so the only learned token is ``</s>`` right after ``[Assistant]``.
        answer_modality: ``"text"`` (answers as text) is the only one built-in.
    """
    if answer_modality != "text":
        raise ValueError(f"answer_modality must be 'text', got {answer_modality!r}")
    _check_speech("build_silence_mode (queries)", query_units, query_answers)
    if any(len(u) == 0 for u in non_query_units):
        raise ValueError("build_silence_mode: a non-query utterance has no units")
    rows = []
    for units, answer in zip(query_units, query_answers):
        rows.append(_row("query", [_turn("user", _item("speech", units)), _turn("assistant", _item("text", answer))], answer))
    for units in non_query_units:
        rows.append(_row("silence", [_turn("user", _item("speech", units)), _turn("assistant")], ""))
    return _dataset(rows)


def noise_waveforms(n: int, sampling_rate: int = 16000, seconds: tuple[float, float] = (0.5, 1.5), seed: int = 0):
    """``n`` background-noise clips (white, brown and hum mixtures) for silence-mode non-queries."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        length = int(rng.uniform(*seconds) * sampling_rate)
        white = rng.standard_normal(length)
        kind = i % 3
        if kind == 1:  # brown noise: integrated white noise
            white = np.cumsum(white)
            white -= np.linspace(white[0], white[-1], length)
        elif kind == 2:  # mains hum plus a little hiss
            t = np.arange(length) / sampling_rate
            white = np.sin(2 * np.pi * rng.choice([50.0, 60.0]) * t) + 0.1 * white
        clips.append((0.1 * white / (np.abs(white).max() + 1e-8)).astype(np.float32))
    return clips


# ---------------------------------------------------------------------- speech for text
def espeak_speaker(pipeline, voices: Sequence[str] = ("en-us",), rates: Sequence[int] = (175,), **synth_kwargs):
    """A ``speak(texts) -> list[units]`` callable: espeak-ng synthesis (cached datasets) + ``pipeline.encode``.

    ``synth_kwargs`` go to `hf_slm.data.synthesize_dataset` (``cache_dir``, ``num_proc``, ...).
    """
    from ..data import synthesize_dataset

    synth_kwargs.setdefault("show_progress", False)

    def speak(texts: list[str]) -> list:
        dataset = synthesize_dataset(list(texts), voices=voices, rates=rates, **synth_kwargs)
        sampling_rate = pipeline.feature_extractor.sampling_rate
        units = []
        for start in range(0, len(dataset), 16):
            batch = dataset[start : start + 16]["audio"]
            arrays = [decode_audio_value(a) for a in batch]
            units.extend(u.tolist() for u in pipeline.encode(arrays, sampling_rate=sampling_rate))
        return units

    return speak


def decode_audio_value(audio) -> np.ndarray:
    """A datasets ``Audio`` value (torchcodec decoder or dict) as a mono float32 array."""
    if isinstance(audio, dict) and "array" in audio:
        return np.asarray(audio["array"], dtype=np.float32)
    samples = audio.get_all_samples()
    return samples.data.mean(0).numpy().astype(np.float32)


def normalise_words(text: str) -> str:
    """Lower-case words without punctuation: what a word-level instruction vocabulary expects."""
    kept = "".join(ch if ch.isalnum() or ch in " '" else " " for ch in text.lower())
    return " ".join(kept.split())


def instruction_words() -> list[str]:
    """Every word the built-in templates and synthetic sets can produce (to build a tiny word-level tokenizer)."""
    texts = [*ASR_TEMPLATES, *TTS_TEMPLATES, *INTENT_TEMPLATES, *SLOT_TEMPLATES]
    texts += [t.format(keyword="") for t in KEYWORD_TEMPLATES] + ["yes no none is plus opposite of the comes after"]
    texts += list(_NUMBERS) + [w for pair in _OPPOSITES for w in pair]
    texts += [t for ts in SLU_INTENTS.values() for t in ts] + [i.replace("_", " ") for i in SLU_INTENTS]
    texts += [v for vs in SLU_SLOTS.values() for v in vs] + list(SLU_SLOTS)
    words = {w for t in texts for w in normalise_words(t.replace("{", " ").replace("}", " ")).split()}
    return sorted(words)


def word_level_tokenizer(texts: Sequence[str] = (), extra_words: Sequence[str] = ()):
    """A tiny offline word-level ``PreTrainedTokenizerFast`` over the words of ``texts`` (lower-cased)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for t in texts for w in normalise_words(t).split()} | set(extra_words))
    vocab = {"<unk>": 0, **{w: i + 1 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


__all__ = [
    "ASR_TEMPLATES",
    "INTENT_TEMPLATES",
    "KEYWORD_TEMPLATES",
    "SLOT_TEMPLATES",
    "SLU_INTENTS",
    "SLU_SLOTS",
    "INSTRUCT_TOKENS",
    "TASK_TAGS",
    "TTS_TEMPLATES",
    "build_chain_of_modality",
    "build_cross_modal",
    "build_silence_mode",
    "build_slu",
    "decode_audio_value",
    "espeak_speaker",
    "instruction_words",
    "noise_waveforms",
    "normalise_words",
    "synthetic_qa_pairs",
    "synthetic_slu_commands",
    "word_level_tokenizer",
]
