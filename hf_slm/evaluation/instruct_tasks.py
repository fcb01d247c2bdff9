"""Measured spoken tasks of an instruct variant (issue 6, item 5): ASR, TTS intelligibility, intent, silence mode.

Every task runs the variant through `SpokenChatPipeline.chat` (greedy decoding, the prompts of the training sets:
same templates and task tags) on held-out speech synthesised here with espeak-ng:

- **ASR**: ``[ASR]`` + an ASR phrasing + speech -> text; WER against the reference transcript.
- **TTS**: ``[TTS]`` + a TTS phrasing + text -> units -> the variant's vocoder -> pocketsphinx (closed vocabulary of
  the evaluated texts) WER, next to the WER of espeak-ng's own audio of the same texts (the recogniser's floor).
- **intent**: ``[SLU]`` + an intent phrasing + a spoken command -> text; accuracy against the intent name, next to
  chance (1 / number of intents) and the majority-class rate of the evaluated commands.
- **silence**: no tag, speech only (as in training): non-query audio (noise, side talk) should get an immediate
  ``</s>`` (``ChatOutput.silent``), spoken queries an answer; both rates and their mean (balanced accuracy; a
  constant policy scores 0.5).

With ``recordings`` (real speech, e.g. ``hf-slm evaluate instruct-tasks --real-speech librivox``), ASR transcribes
the recordings and silence mode hears them as side talk (the queries and the noise stay as above); TTS and intent
need texts chosen for the task and do not run on recordings.

"Held out" means: sentences drawn with their own seed with the tuning's sentences removed (``exclude_texts``), noise
with its own seed, and by default voices the tuning did not use (``voices``). The QA and SLU sets are small
combinatorial sets (60 questions, 65 commands), so their texts can repeat tuning texts: each task reports
``text_overlap`` (the fraction of its texts seen in tuning) so the figure can be read accordingly; it is ``None``
when the tuning's texts were not given, since the overlap is then unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..data import generate_sentences, read_text_file, synthesize_dataset
from ..instruct.data import (
    ASR_TEMPLATES,
    INTENT_TEMPLATES,
    SLU_INTENTS,
    TASK_TAGS,
    TTS_TEMPLATES,
    decode_audio_value,
    normalise_words,
    noise_waveforms,
    synthetic_qa_pairs,
    synthetic_slu_commands,
)
from .metrics.error_rate.error_rate import error_rate, normalize_transcript
from .resynthesis import PocketSphinxASR

logger = logging.getLogger(__name__)

TASKS = ("asr", "tts", "intent", "silence")
#: The tasks that can run on recordings the user brings (transcribed speech): the others need task-chosen texts.
RECORDING_TASKS = ("asr", "silence")
#: Voices of the built-in espeak-ng set that the shipped instruct variant was not tuned on.
HELD_OUT_VOICES = ("en-us+m7", "en-gb")


def held_out_sentences(n: int, seed: int, exclude: Sequence[str] = ()) -> list[str]:
    """``n`` grammar sentences (normalised) drawn with ``seed``, none of them in ``exclude``."""
    excluded = {normalise_words(t) for t in exclude}
    out, draw = [], n
    while len(out) < n:
        candidates = [normalise_words(s) for s in generate_sentences(draw + len(excluded), seed=seed)]
        out = [s for s in dict.fromkeys(candidates) if s not in excluded][:n]
        draw *= 2
    return out


class _Speaker:
    """espeak-ng speech for texts (cached datasets) with its units under ``pipeline``: both are needed (units for
    the model's input, audio for the TTS floor)."""

    def __init__(self, pipeline, voices, rates, cache_dir, show_progress: bool = False):
        self.pipeline, self.voices, self.rates, self.cache_dir = pipeline, tuple(voices), tuple(rates), cache_dir
        self.show_progress = show_progress

    def __call__(self, texts: list[str]) -> tuple[list[np.ndarray], list[list[int]]]:
        dataset = synthesize_dataset(texts, voices=self.voices, rates=self.rates, cache_dir=self.cache_dir,
                                     show_progress=self.show_progress)  # fmt: skip
        audio = [decode_audio_value(a) for a in dataset["audio"]]
        rate = self.pipeline.feature_extractor.sampling_rate
        units = []
        for start in range(0, len(audio), 16):
            units += [u.tolist() for u in self.pipeline.encode(audio[start : start + 16], sampling_rate=rate)]
        return audio, units


def _recorded(pipeline, audio, texts) -> tuple[list[list[int]], list[str]]:
    """Units and word-normalised transcripts of recordings (loaded and resampled to the pipeline's rate)."""
    from ..models.unit_encoder import load_audio

    if len(audio) != len(texts) or not texts:
        raise ValueError(f"recordings: got {len(audio)} audio clips for {len(texts)} transcripts (need at least one)")
    rate = pipeline.feature_extractor.sampling_rate
    units = [pipeline.encode([load_audio(clip, rate)], sampling_rate=rate)[0].tolist() for clip in audio]
    return units, [normalise_words(t) for t in texts]


def _speech(units) -> dict:
    return {"type": "speech", "units": list(units)}


def _text(text: str) -> dict:
    return {"type": "text", "text": text}


#: The file of a tuning run and of the variant it saves that lists every text of its data, one a line: the texts an
#: evaluation holds out (``exclude_texts``).
TUNING_TEXTS_FILE = "tuning_texts.txt"


def read_tuning_texts(pipeline, path=None) -> tuple[Path | None, list[str] | None]:
    """The tuning's texts to hold out: from ``path`` (a `TUNING_TEXTS_FILE` that tune.py wrote), else from the
    variant's own copy in the folder ``pipeline`` was loaded from; ``(None, None)`` when neither exists (then the
    overlap is unknown). Returns the file used and its non-empty lines."""
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"tuning texts {path} do not exist (tune.py writes {TUNING_TEXTS_FILE} into the run and "
                                "the variant)")  # fmt: skip
    if path is None and getattr(pipeline, "local_path", None):
        own = Path(pipeline.local_path) / TUNING_TEXTS_FILE
        path = own if own.is_file() else None
    if path is None:
        return None, None
    return Path(path), read_text_file(path)  # its non-empty lines, stripped; not UTF-8 text: refused by name


def text_overlap(texts: Sequence[str], tuning_texts: Sequence[str] | None) -> float | None:
    """The fraction of ``texts`` (word-normalised) that are in ``tuning_texts``; ``None`` when the tuning's texts are
    unknown (``tuning_texts`` is ``None``), rather than a 0.0 that would read as "all held out"."""
    if tuning_texts is None:
        return None
    if not texts:
        raise ValueError("text_overlap needs at least one text")
    seen = {normalise_words(t) for t in tuning_texts}
    return float(np.mean([normalise_words(t) in seen for t in texts]))


def evaluate_asr(pipeline, texts, units, max_new_tokens: int | None = None, show_progress: bool = False) -> dict:
    """ASR WER: ``[ASR]`` + phrasing + speech -> text (greedy, text only)."""
    hypotheses, items = [], []
    rows = tqdm(list(zip(texts, units)), desc="ASR", unit="utterance", disable=not show_progress)
    for i, (text, u) in enumerate(rows):
        budget = max_new_tokens or 2 * len(pipeline.tokenizer(text, add_special_tokens=False)["input_ids"]) + 8
        out = pipeline.chat([_text(ASR_TEMPLATES[i % len(ASR_TEMPLATES)]), _speech(u)], task=TASK_TAGS["asr"],
                            response_modality="text", strict_modality=True, max_new_tokens=budget,
                            vocode=False)  # fmt: skip
        hypotheses.append(out.text)
        items.append({"reference": text, "hypothesis": out.text})
    scores = error_rate(hypotheses, texts, unit="word")
    exact = np.mean([normalize_transcript(h) == normalize_transcript(t) for h, t in zip(hypotheses, texts)])
    return {"wer": scores["wer"], "exact_match": float(exact), "n": len(texts), "items": items}


def evaluate_tts(pipeline, texts, espeak_audio, espeak_units, max_new_tokens: int | None = None,
                 asr: PocketSphinxASR | None = None, show_progress: bool = False) -> dict:  # fmt: skip
    """TTS intelligibility: ``[TTS]`` + phrasing + text -> units (greedy, speech only) -> vocoder -> pocketsphinx WER,
    next to the WER of espeak-ng's own audio. A reply with no unit counts as an empty transcript."""
    if asr is None:
        asr = PocketSphinxASR(vocabulary=sorted({w for t in texts for w in normalize_transcript(t).split()}))
    rate = pipeline.feature_extractor.sampling_rate
    hyp_model, hyp_espeak, items = [], [], []
    rows = tqdm(list(zip(texts, espeak_audio, espeak_units)), desc="TTS", unit="utterance", disable=not show_progress)
    for i, (text, wave, ref_units) in enumerate(rows):
        budget = max_new_tokens or 2 * len(ref_units) + 10  # twice espeak's length (units of its audio)
        out = pipeline.chat([_text(TTS_TEMPLATES[i % len(TTS_TEMPLATES)]), _text(text)], task=TASK_TAGS["tts"],
                            response_modality="speech", strict_modality=True, max_new_tokens=budget,
                            vocode=False)  # fmt: skip
        if len(out.units):
            hyp_model.append(asr.transcribe(pipeline.decode([out.units])[0], pipeline.sampling_rate))
        else:
            hyp_model.append("")
        hyp_espeak.append(asr.transcribe(wave, rate))
        items.append({"text": text, "asr_model": hyp_model[-1], "asr_espeak": hyp_espeak[-1],
                      "num_units": int(len(out.units)), "espeak_units": len(ref_units)})  # fmt: skip
    return {
        "wer": error_rate(hyp_model, texts, unit="word")["wer"],
        "wer_espeak": error_rate(hyp_espeak, texts, unit="word")["wer"],
        "length_ratio": float(np.mean([it["num_units"] / max(1, it["espeak_units"]) for it in items])),
        "n": len(texts),
        "asr": f"pocketsphinx en-us (closed vocabulary, {len(asr.vocabulary)} words)",
        "items": items,
    }


def evaluate_intent(pipeline, commands, units, show_progress: bool = False) -> dict:
    """Intent accuracy: ``[SLU]`` + intent phrasing + spoken command -> text == the intent name (``"set alarm"``)."""
    labels = [c["intent"].replace("_", " ") for c in commands]
    predictions, items = [], []
    rows = tqdm(list(zip(commands, labels, units)), desc="intent", unit="command", disable=not show_progress)
    for i, (command, label, u) in enumerate(rows):
        out = pipeline.chat([_text(INTENT_TEMPLATES[i % len(INTENT_TEMPLATES)]), _speech(u)], task=TASK_TAGS["intent"],
                            response_modality="text", strict_modality=True, max_new_tokens=8, vocode=False)  # fmt: skip
        predictions.append(normalize_transcript(out.text))
        items.append({"text": command["text"], "intent": label, "prediction": predictions[-1]})
    counts = {label: labels.count(label) for label in set(labels)}
    return {
        "accuracy": float(np.mean([p == label for p, label in zip(predictions, labels)])),
        "chance": 1.0 / len(SLU_INTENTS),
        "majority_rate": max(counts.values()) / len(labels),
        "n": len(labels),
        "items": items,
    }


def evaluate_silence(pipeline, query_units, non_query_units, non_query_kinds, show_progress: bool = False) -> dict:
    """Silence mode: the rate of immediate ``</s>`` on non-query audio and the rate of answers to spoken queries."""

    def silent(u) -> bool:
        return pipeline.chat([_speech(u)], max_new_tokens=2, vocode=False).silent

    bar = tqdm(total=len(query_units) + len(non_query_units), desc="silence", unit="clip", disable=not show_progress)
    answered, quiet = [], []
    for units, out, expect_silence in ((query_units, answered, False), (non_query_units, quiet, True)):
        for u in units:
            out.append(silent(u) == expect_silence)
            bar.update()
    bar.close()
    by_kind = {kind: float(np.mean([q for q, k in zip(quiet, non_query_kinds) if k == kind]))
               for kind in sorted(set(non_query_kinds))}  # fmt: skip
    silence_rate, answer_rate = float(np.mean(quiet)), float(np.mean(answered))
    return {
        "silence_rate": silence_rate,
        "answer_rate": answer_rate,
        "balanced_accuracy": (silence_rate + answer_rate) / 2,
        "silence_rate_by_kind": by_kind,
        "n_queries": len(query_units),
        "n_non_queries": len(non_query_units),
    }


def evaluate_instruct_tasks(
    pipeline,
    tasks: Sequence[str] = TASKS,
    num_examples: int = 30,
    voices: Sequence[str] = HELD_OUT_VOICES,
    rates: Sequence[int] = (175,),
    seed: int = 1000,
    exclude_texts: Sequence[str] | None = None,
    cache_dir=None,
    show_progress: bool = False,
    recordings: tuple[Sequence, Sequence[str]] | None = None,
) -> dict:
    """Run the measured tasks on held-out synthesised data and return a JSON-able dict (one entry per task).

    Args:
        pipeline: a `SpokenChatPipeline` of an instruct variant (text tokenizer, chat tags; a vocoder for TTS).
        tasks: out of `TASKS`.
        num_examples: utterances per task (silence: that many queries and that many non-queries, half noise and
            half side talk).
        voices, rates: espeak-ng voices / rates of the evaluation speech (cycled over the utterances); keep them
            apart from the tuning's voices to measure generalisation to unseen speakers.
        seed: seed of the held-out draws (sentences, QA pairs, commands, noise).
        exclude_texts: the tuning's texts; held-out sentences avoid them and ``text_overlap`` counts them. ``None``
            (not known): each task's ``text_overlap`` is ``None``.
        cache_dir: cache of the synthesised speech (`hf_slm.data.synthesize_dataset`).
        show_progress: progress bars (stderr) over synthesis and each task's chats.
        recordings: ``(audio, transcripts)`` of real speech (paths or ``{"array", "sampling_rate"}``, as
            `hf_slm.data.real_speech` gives them): ASR is scored on them, and silence mode takes them as its side
            talk. Only `RECORDING_TASKS` run with recordings.
    """
    unknown = set(tasks) - set(TASKS)
    if unknown or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {list(tasks)!r}")
    if recordings is not None:
        other = [task for task in tasks if task not in RECORDING_TASKS]
        if other:
            raise ValueError(f"task(s) {other} need texts chosen for the task and do not run on recordings; with "
                             f"recordings choose from {list(RECORDING_TASKS)}")  # fmt: skip
    if num_examples < 2:
        raise ValueError(f"num_examples must be >= 2, got {num_examples}")
    for name in ("tokenizer", "language_model") + (("vocoder",) if "tts" in tasks else ()):
        pipeline._require(name, "the instruct task evaluation")
    if recordings is not None:
        recorded_units, recorded_texts = _recorded(pipeline, *recordings)
    speaker = _Speaker(pipeline, voices, rates, cache_dir, show_progress)
    progress = {"show_progress": show_progress}
    result = {"voices": list(voices), "rates": list(rates), "seed": seed, "num_examples": num_examples}
    if recordings is not None and "asr" in tasks:
        logger.info("ASR on %d recordings", len(recorded_texts))
        result["asr"] = {**evaluate_asr(pipeline, recorded_texts, recorded_units, **progress), "text_overlap":
                         text_overlap(recorded_texts, exclude_texts), "recordings": True}  # fmt: skip
    elif "asr" in tasks or "tts" in tasks:
        sentences = held_out_sentences(num_examples, seed=seed, exclude=exclude_texts or ())
        audio, units = speaker(sentences)
        overlap = text_overlap(sentences, exclude_texts)
        if "asr" in tasks:
            logger.info("ASR on %d held-out sentences", len(sentences))
            result["asr"] = {**evaluate_asr(pipeline, sentences, units, **progress), "text_overlap": overlap}
        if "tts" in tasks:
            logger.info("TTS on %d held-out sentences", len(sentences))
            result["tts"] = {**evaluate_tts(pipeline, sentences, audio, units, **progress), "text_overlap": overlap}
    if "intent" in tasks:
        commands = synthetic_slu_commands(num_examples, seed=seed + 1)
        _, units = speaker([normalise_words(c["text"]) for c in commands])
        logger.info("intent on %d commands", len(commands))
        result["intent"] = {**evaluate_intent(pipeline, commands, units, **progress),
                            "text_overlap": text_overlap([c["text"] for c in commands], exclude_texts)}  # fmt: skip
    if "silence" in tasks:
        questions = [q for q, _ in synthetic_qa_pairs(num_examples, seed=seed + 2)]
        if recordings is None:
            side_talk = held_out_sentences(num_examples - num_examples // 2, seed=seed + 3, exclude=exclude_texts or ())
            _, speech_units = speaker(questions + side_talk)
            talk_units, talk_kind = speech_units[len(questions) :], "side_talk"
        else:  # every recording is side talk: read speech, no question to the assistant
            _, speech_units = speaker(questions)
            talk_units, talk_kind = recorded_units, "recording"
        noise = noise_waveforms(num_examples // 2, seed=seed + 4)
        rate = pipeline.feature_extractor.sampling_rate
        noise_units = [u.tolist() for u in pipeline.encode(noise, sampling_rate=rate)]
        non_query = noise_units + talk_units
        kinds = ["noise"] * len(noise_units) + [talk_kind] * len(talk_units)
        logger.info("silence mode on %d queries and %d non-queries", len(questions), len(non_query))
        result["silence"] = {**evaluate_silence(pipeline, speech_units[: len(questions)], non_query, kinds, **progress),
                             "text_overlap": text_overlap(questions, exclude_texts)}  # fmt: skip
    return result


def summarize(result: dict) -> dict:
    """The headline figures of `evaluate_instruct_tasks` as a flat ``{name: value}`` (for the Markdown report)."""
    keys = {"asr": ("wer", "exact_match"), "tts": ("wer", "wer_espeak", "length_ratio"),
            "intent": ("accuracy", "chance", "majority_rate"),
            "silence": ("silence_rate", "answer_rate", "balanced_accuracy")}  # fmt: skip
    return {f"{task}_{key}": result[task][key] for task, names in keys.items() if task in result for key in names}


__all__ = [
    "HELD_OUT_VOICES",
    "RECORDING_TASKS",
    "TASKS",
    "TUNING_TEXTS_FILE",
    "evaluate_asr",
    "evaluate_instruct_tasks",
    "read_tuning_texts",
    "evaluate_intent",
    "evaluate_silence",
    "evaluate_tts",
    "held_out_sentences",
    "summarize",
    "text_overlap",
]
