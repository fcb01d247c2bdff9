"""Task rows for continuous-feature speech LLMs: raw audio (not units) plus a chat conversation.

Every builder returns a ``datasets.Dataset`` with the same columns, so that task sets concatenate
(`datasets.concatenate_datasets`):

- ``task`` (str): ``"asr"``, ``"spoken_qa"``, ``"intent"`` or ``"spoken_answer"``;
- ``audio`` (``Audio``): the user's speech, espeak-ng in many voices, rates and pitches (`synthesize_dataset`,
  cached on disk); ``voice``, ``rate``, ``pitch`` say which;
- ``transcript`` (str): what ``audio`` says;
- ``messages``: ``[{"role": "user", "content": [{"type": "text", "text": instruction}, {"type": "audio",
  "text": None}]}, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]``; the ``{"type": "audio"}``
  item stands for the row's ``audio`` (a processor puts the audio placeholder tokens there);
- ``reference`` (str): the assistant's answer, for evaluation;
- ``answer_audio`` (``Audio`` or None): the spoken answer, in one fixed voice (``"spoken_answer"`` rows: the target
  of the speech decoder), None elsewhere; `add_answer_units` adds ``units``, its unit ids under a unit encoder
  (stage 3's target).

Text keeps its case and punctuation (a pretrained text LM expects them); ASR scoring normalises both sides.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .data import ASR_TEMPLATES, INTENT_TEMPLATES

#: Voices, rates and pitches the user's speech is drawn from (uniformly, per utterance).
SPEECH_VOICES = ("en-us", "en-us+f3", "en-us+m3", "en-gb", "en-gb+f2", "en-us+m7")
SPEECH_RATES = (140, 160, 175, 195, 215)
SPEECH_PITCHES = (35, 50, 65)
QA_TEMPLATES = ("answer the question", "please answer this", "reply to what is asked")
SPOKEN_ANSWER_TEMPLATES = ("answer out loud", "reply in speech", "say the answer")
SPEECH_LLM_TASKS = ("asr", "spoken_qa", "intent", "spoken_answer")


def speech_llm_features(sampling_rate: int = 16000):
    """The columns of every builder's output."""
    from datasets import Audio, Features, List, Value

    item = {"type": Value("string"), "text": Value("string")}
    return Features({
        "task": Value("string"),
        "audio": Audio(sampling_rate=sampling_rate),
        "voice": Value("string"),
        "rate": Value("int32"),
        "pitch": Value("int32"),
        "transcript": Value("string"),
        "messages": List({"role": Value("string"), "content": List(item)}),
        "reference": Value("string"),
        "answer_audio": Audio(sampling_rate=sampling_rate),
    })  # fmt: skip


def _conversation(instruction: str, answer: str) -> list[dict]:
    user = {"role": "user", "content": [{"type": "text", "text": instruction}, {"type": "audio", "text": None}]}
    return [user, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def _speech(texts, voices, rates, pitches, sampling_rate, seed, cache_dir, num_proc):
    from ..data import synthesize_dataset

    return synthesize_dataset(list(texts), voices=voices, rates=rates, pitches=pitches, sampling_rate=sampling_rate,
                              assignment="random", seed=seed, cache_dir=cache_dir, num_proc=num_proc,
                              show_progress=False)  # fmt: skip


def _assemble(task, spoken, instructions, answers, speech_kwargs, answer_speech=None):
    """Rows of one task: the spoken texts' audio beside the conversations (audio stays encoded, nothing decodes)."""
    from datasets import Dataset, Features, concatenate_datasets

    spoken, answers = list(spoken), list(answers)
    if not spoken:
        raise ValueError(f"{task}: there is nothing to speak (empty input)")
    for index, answer in enumerate(answers):
        if not isinstance(answer, str) or not answer.strip():
            raise ValueError(f"{task}: answer {index} must be a non-empty string, got {answer!r}")
    sampling_rate = speech_kwargs["sampling_rate"]
    features = speech_llm_features(sampling_rate)
    speech = _speech(spoken, **speech_kwargs).select_columns(["audio", "voice", "rate", "pitch"])
    rows = [{"task": task, "transcript": text, "messages": _conversation(instruction, answer), "reference": answer}
            for text, instruction, answer in zip(spoken, instructions, answers, strict=True)]  # fmt: skip
    meta = Dataset.from_list(rows, features=Features({k: features[k] for k in rows[0]}))
    if answer_speech is None:
        answer_column = Dataset.from_dict({"answer_audio": [None] * len(rows)},
                                          features=Features({"answer_audio": features["answer_audio"]}))
    else:
        answer_column = answer_speech.select_columns(["audio"]).rename_column("audio", "answer_audio")
    merged = concatenate_datasets([speech, meta, answer_column], axis=1)
    return merged.select_columns(list(features))


def _speech_kwargs(voices, rates, pitches, sampling_rate, seed, cache_dir, num_proc) -> dict:
    return {"voices": voices, "rates": rates, "pitches": pitches, "sampling_rate": sampling_rate, "seed": seed,
            "cache_dir": cache_dir, "num_proc": num_proc}  # fmt: skip


def build_speech_asr(texts: Sequence[str], templates: Sequence[str] = ASR_TEMPLATES, voices=SPEECH_VOICES,
                     rates=SPEECH_RATES, pitches=SPEECH_PITCHES, sampling_rate: int = 16000, seed: int = 0,
                     cache_dir=None, num_proc: int = 1):  # fmt: skip
    """ASR rows: "transcribe this speech" + the spoken text -> the text (e.g. ``load_text_split("train")``)."""
    texts = list(texts)
    rng = random.Random(seed)
    instructions = [rng.choice(templates) for _ in texts]
    kwargs = _speech_kwargs(voices, rates, pitches, sampling_rate, seed, cache_dir, num_proc)
    return _assemble("asr", texts, instructions, texts, kwargs)


def wordnet_qa_pairs(n: int, seed: int = 0, split: str = "train", eval_fraction: float = 0.05) -> list[tuple[str, str]]:
    """``n`` open-vocabulary question / answer pairs from WordNet glosses (Debian's ``wordnet-base``).

    Half ask for a word from its definition ("Which word means a domesticated carnivorous mammal?" -> "dog."), half
    for a definition ("What does the word dog mean?" -> "Dog means ..."). ``split`` takes the words on one side of
    `split_texts` over the headwords (``eval_fraction`` of them are ``"eval"``), so no eval word is trained on.
    """
    from ..data import read_wordnet_glosses, split_texts

    if split not in ("train", "eval"):
        raise ValueError(f"`split` must be 'train' or 'eval', got {split!r}.")
    glosses = read_wordnet_glosses()
    side = set(getattr(split_texts([word for word, _ in glosses], eval_fraction=eval_fraction,
                                   heldout_word_fraction=0.0), split))  # fmt: skip
    glosses = [(word, definition) for word, definition in glosses if word in side]
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= len(glosses):
        raise ValueError(f"`n` must be a positive integer up to {len(glosses)} ({split} words), got {n!r}.")
    rng = random.Random(seed)
    pairs = []
    for word, definition in rng.sample(glosses, n):
        if rng.random() < 0.5:
            pairs.append((f"Which word means {definition}?", f"{word[0].upper() + word[1:]}."))
        else:
            pairs.append((f"What does the word {word} mean?", f"{word[0].upper() + word[1:]} means {definition}."))
    return pairs


def build_spoken_qa(qa_pairs: Sequence[tuple[str, str]], templates: Sequence[str] = QA_TEMPLATES,
                    voices=SPEECH_VOICES, rates=SPEECH_RATES, pitches=SPEECH_PITCHES, sampling_rate: int = 16000,
                    seed: int = 0, cache_dir=None, num_proc: int = 1):  # fmt: skip
    """Spoken QA rows: the question is spoken, the answer is text (`wordnet_qa_pairs`, `synthetic_qa_pairs`)."""
    qa_pairs = list(qa_pairs)
    rng = random.Random(seed)
    kwargs = _speech_kwargs(voices, rates, pitches, sampling_rate, seed, cache_dir, num_proc)
    return _assemble("spoken_qa", [q for q, _ in qa_pairs], [rng.choice(templates) for _ in qa_pairs],
                     [a for _, a in qa_pairs], kwargs)  # fmt: skip


def build_spoken_intent(commands: Sequence[dict], templates: Sequence[str] = INTENT_TEMPLATES, voices=SPEECH_VOICES,
                        rates=SPEECH_RATES, pitches=SPEECH_PITCHES, sampling_rate: int = 16000, seed: int = 0,
                        cache_dir=None, num_proc: int = 1):  # fmt: skip
    """SLU intent rows: a spoken command -> its intent with spaces (``"set alarm"``); `synthetic_slu_commands`."""
    commands = list(commands)
    for index, command in enumerate(commands):
        if not isinstance(command, dict) or not {"text", "intent"} <= set(command):
            raise ValueError(f"commands[{index}] must be a dict with 'text' and 'intent', got {command!r}")
    rng = random.Random(seed)
    kwargs = _speech_kwargs(voices, rates, pitches, sampling_rate, seed, cache_dir, num_proc)
    return _assemble("intent", [c["text"] for c in commands], [rng.choice(templates) for _ in commands],
                     [c["intent"].replace("_", " ") for c in commands], kwargs)  # fmt: skip


def build_spoken_answers(qa_pairs: Sequence[tuple[str, str]], templates: Sequence[str] = SPOKEN_ANSWER_TEMPLATES,
                         answer_voice: str = "en-us", answer_rate: int = 175, voices=SPEECH_VOICES,
                         rates=SPEECH_RATES, pitches=SPEECH_PITCHES, sampling_rate: int = 16000, seed: int = 0,
                         cache_dir=None, num_proc: int = 1):  # fmt: skip
    """Spoken instruction -> spoken answer rows (LLaMA-Omni style): the question in a random voice, the answer as
    text and as ``answer_audio`` in one fixed voice (``answer_voice``, ``answer_rate``), the speech decoder's target."""
    qa_pairs = list(qa_pairs)
    rng = random.Random(seed)
    answers = [a for _, a in qa_pairs]
    kwargs = _speech_kwargs(voices, rates, pitches, sampling_rate, seed, cache_dir, num_proc)
    answer_speech = _speech(answers, **(kwargs | {"voices": (answer_voice,), "rates": (answer_rate,), "pitches": (50,)}))
    return _assemble("spoken_answer", [q for q, _ in qa_pairs], [rng.choice(templates) for _ in qa_pairs], answers,
                     kwargs, answer_speech=answer_speech)  # fmt: skip


def add_answer_units(dataset, pipeline="default", batch_size: int = 16):
    """``dataset`` with a ``units`` column: the unit ids of each row's ``answer_audio`` under the unit encoder of
    ``pipeline`` (a `SpeechLMPipeline` or the name / folder of a variant with a unit encoder; default: the embedded
    ``default``, whose vocoder then speaks the speech decoder's units). Rows without answer audio get ``None``."""
    from ..pipelines import SpeechLMPipeline
    from .data import decode_audio_value

    if "answer_audio" not in dataset.column_names:
        raise ValueError(f"add_answer_units needs an `answer_audio` column, the dataset has {dataset.column_names}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(pipeline, SpeechLMPipeline):
        pipeline = SpeechLMPipeline.from_pretrained(pipeline)
    rate = pipeline.feature_extractor.sampling_rate
    audio = dataset.cast_column("answer_audio", _audio_feature(rate))["answer_audio"]
    present = [i for i, value in enumerate(audio) if value is not None]
    units: list[list[int] | None] = [None] * len(dataset)
    for start in range(0, len(present), batch_size):
        rows = present[start : start + batch_size]
        encoded = pipeline.encode([decode_audio_value(audio[i]) for i in rows], sampling_rate=rate)
        for i, row_units in zip(rows, encoded, strict=True):
            units[i] = [int(u) for u in row_units]
    return dataset.add_column("units", units)


def _audio_feature(sampling_rate: int):
    from datasets import Audio

    return Audio(sampling_rate=sampling_rate)


__all__ = [
    "QA_TEMPLATES",
    "add_answer_units",
    "SPEECH_LLM_TASKS",
    "SPEECH_PITCHES",
    "SPEECH_RATES",
    "SPEECH_VOICES",
    "SPOKEN_ANSWER_TEMPLATES",
    "build_speech_asr",
    "build_spoken_answers",
    "build_spoken_intent",
    "build_spoken_qa",
    "speech_llm_features",
    "wordnet_qa_pairs",
]
