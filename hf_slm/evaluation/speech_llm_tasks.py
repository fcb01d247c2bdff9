"""Spoken tasks of a continuous-feature speech LLM variant (`SpeechLLMPipeline`, issue 16): intent accuracy and
the intelligibility of its spoken answers. ASR is `hf_slm.evaluation.asr.evaluate_asr` (`hf-slm evaluate asr`).

Both run `SpeechLLMPipeline.chat(audio=..., text=instruction)` greedily on espeak-ng speech in one voice and rate:

- **intent**: a spoken command (`synthetic_slu_commands`, drawn with its own seed; the set is combinatorial, so a
  command's text can also occur in training) + an intent phrasing -> text; accuracy against the intent name with
  spaces (``"set alarm"``), next to chance and the majority-class rate.
- **spoken_answer**: a spoken question about a held-out WordNet word (``wordnet_qa_pairs(split="eval")``) + a
  spoken-answer phrasing -> text + units -> the variant's vocoder -> pocketsphinx (closed vocabulary: the words of
  the text answers) -> WER against the variant's own text answer (how well its speech says what it wrote), next to
  the WER of espeak-ng's audio of the same texts (the recogniser's floor). A reply with no waveform counts as an
  empty transcript. The text answers' exact-match rate against the reference answers is reported too.
"""

from __future__ import annotations

import logging

import numpy as np
from tqdm.auto import tqdm

from ..data import synthesize_dataset
from ..instruct.data import INTENT_TEMPLATES, SLU_INTENTS, decode_audio_value, synthetic_slu_commands
from ..instruct.speech_llm_data import SPOKEN_ANSWER_TEMPLATES, wordnet_qa_pairs
from .asr import PocketSphinxASR
from .metrics.error_rate.error_rate import error_rate, normalize_transcript

logger = logging.getLogger(__name__)

TASKS = ("intent", "spoken_answer")


def _speak(texts, voice: str, rate: int, sampling_rate: int, cache_dir) -> list[np.ndarray]:
    dataset = synthesize_dataset(list(texts), voices=[voice], rates=[rate], sampling_rate=sampling_rate,
                                 cache_dir=cache_dir, show_progress=False)  # fmt: skip
    return [decode_audio_value(a) for a in dataset["audio"]]


def evaluate_intent(pipeline, commands, audio, sampling_rate: int, show_progress: bool = False) -> dict:
    """Intent accuracy of ``pipeline.chat(audio=command, text=intent phrasing)`` (greedy, text only)."""
    labels = [c["intent"].replace("_", " ") for c in commands]
    items = []
    rows = tqdm(list(zip(commands, labels, audio, strict=True)), desc="intent", unit="command",
                disable=not show_progress)  # fmt: skip
    for i, (command, label, wave) in enumerate(rows):
        out = pipeline.chat(audio=wave, text=INTENT_TEMPLATES[i % len(INTENT_TEMPLATES)], sampling_rate=sampling_rate,
                            max_new_tokens=12, speak=False)  # fmt: skip
        items.append({"text": command["text"], "intent": label, "prediction": normalize_transcript(out.text)})
    counts = {label: labels.count(label) for label in set(labels)}
    return {
        "accuracy": float(np.mean([it["prediction"] == it["intent"] for it in items])),
        "chance": 1.0 / len(SLU_INTENTS),
        "majority_rate": max(counts.values()) / len(labels),
        "n": len(labels),
        "items": items,
    }


def evaluate_spoken_answers(pipeline, qa_pairs, audio, sampling_rate: int, voice: str = "en-us", rate: int = 175,
                            cache_dir=None, max_new_tokens: int = 32, show_progress: bool = False) -> dict:  # fmt: skip
    """pocketsphinx WER of the vocoded spoken answers against the variant's text answers (+ espeak-ng's floor)."""
    if pipeline.components.get("vocoder") is None or getattr(pipeline.language_model, "speech_decoder", None) is None:
        raise ValueError("spoken answers need a variant with a speech decoder and a vocoder")
    outputs = [
        pipeline.chat(audio=wave, text=SPOKEN_ANSWER_TEMPLATES[i % len(SPOKEN_ANSWER_TEMPLATES)],
                      sampling_rate=sampling_rate, max_new_tokens=max_new_tokens)  # fmt: skip
        for i, wave in enumerate(tqdm(audio, desc="spoken answers", unit="question", disable=not show_progress))
    ]
    texts = [normalize_transcript(o.text) for o in outputs]
    spoken = [i for i, t in enumerate(texts) if t]  # an empty text answer has nothing to say
    words = sorted({w for t in texts for w in t.split()})
    asr = PocketSphinxASR(vocabulary=words) if words else None
    floor_audio = _speak([texts[i] for i in spoken], voice, rate, sampling_rate, cache_dir) if spoken else []
    items = []
    for i, (pair, out, text) in enumerate(zip(qa_pairs, outputs, texts, strict=True)):
        heard = ""
        if text and out.waveform is not None and len(out.waveform):
            heard = asr.transcribe(out.waveform, out.sampling_rate)
        items.append({"question": pair[0], "reference": pair[1], "answer": out.text, "asr_answer": heard,
                      "num_units": len(out.units)})  # fmt: skip
    for i, wave in zip(spoken, floor_audio, strict=True):
        items[i]["asr_espeak"] = asr.transcribe(wave, sampling_rate)
    scored = [items[i] for i in spoken]
    return {
        "wer": error_rate([it["asr_answer"] for it in scored], [texts[i] for i in spoken])["wer"] if spoken else None,
        "wer_espeak": error_rate([it["asr_espeak"] for it in scored], [texts[i] for i in spoken])["wer"]
        if spoken else None,  # fmt: skip
        "answered": len(spoken) / len(items),
        "exact_match": float(np.mean([normalize_transcript(it["answer"]) == normalize_transcript(it["reference"])
                                      for it in items])),  # fmt: skip
        "n": len(items),
        "asr": f"pocketsphinx en-us (closed vocabulary, {len(words)} words)",
        "items": items,
    }


def evaluate_speech_llm_tasks(pipeline, tasks=TASKS, num_examples: int = 30, voice: str = "en-us", rate: int = 175,
                              seed: int = 1000, max_answer_words: int = 8, cache_dir=None,
                              show_progress: bool = False) -> dict:  # fmt: skip
    """Run ``tasks`` (out of `TASKS`) on ``num_examples`` held-out utterances each; a JSON-able dict per task
    (``show_progress``: a progress bar per task on stderr)."""
    unknown = set(tasks) - set(TASKS)
    if unknown or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {list(tasks)!r}")
    if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 1:
        raise ValueError(f"num_examples must be a positive int, got {num_examples!r}")
    sampling_rate = pipeline.input_sampling_rate
    result = {"voice": voice, "rate": rate, "seed": seed, "num_examples": num_examples}
    if "intent" in tasks:
        commands = synthetic_slu_commands(num_examples, seed=seed + 1)
        logger.info("intent on %d spoken commands", len(commands))
        audio = _speak([c["text"] for c in commands], voice, rate, sampling_rate, cache_dir)
        result["intent"] = evaluate_intent(pipeline, commands, audio, sampling_rate, show_progress=show_progress)
    if "spoken_answer" in tasks:
        pairs = [p for p in wordnet_qa_pairs(min(20 * num_examples, 2000), seed=seed + 2, split="eval")
                 if len(p[1].split()) <= max_answer_words][:num_examples]  # fmt: skip
        logger.info("spoken answers to %d held-out questions", len(pairs))
        audio = _speak([q for q, _ in pairs], voice, rate, sampling_rate, cache_dir)
        result["spoken_answer"] = evaluate_spoken_answers(pipeline, pairs, audio, sampling_rate, voice, rate, cache_dir,
                                                          show_progress=show_progress)  # fmt: skip
    return result


def summarize(result: dict) -> dict:
    """The headline figures as a flat ``{name: value}``."""
    keys = {"intent": ("accuracy", "chance", "majority_rate"),
            "spoken_answer": ("wer", "wer_espeak", "answered", "exact_match")}  # fmt: skip
    return {f"{task}_{key}": result[task][key] for task, names in keys.items() if task in result for key in names}


__all__ = ["TASKS", "evaluate_intent", "evaluate_speech_llm_tasks", "evaluate_spoken_answers", "summarize"]
