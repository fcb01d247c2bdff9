"""Evaluation of speech language models: `evaluate` metric modules, benchmark builders and the evaluations.

- `metrics/`: self-contained `evaluate` modules (`load_metric(name)` or `evaluate.load(path)`, offline).
- `pairs`: spoken minimal pairs (sWUGGY / sBLIMP / StoryCloze style): build, read (JSONL, ZeroSpeech 2021 and
  StoryCloze folders), score with a pipeline's LM.
- `abx`: ABX items from synthesised speech; within/between-speaker ABX of features or units.
- `resynthesis`: audio -> units -> vocoder -> ASR: WER / CER / mel distance.
- `asr`: the recognisers behind one `transcribe(waveform, sampling_rate)`: pocketsphinx, any transformers ASR model,
  any pipeline that transcribes; `evaluate_asr` (WER / CER on espeak-ng speech, next to pocketsphinx).
- `speech_llm_tasks`: intent accuracy and spoken-answer intelligibility of a `SpeechLLMPipeline` variant.
- `generation`: continuations over temperatures: judge perplexity, VERT, their AUC, a plot.
- `prosody`: pGSLM's prosody of continuations (F0 min-MAE, consistency, expressiveness), an F0 contour plot.
- `unit_purity`: unit-to-phone purity and PNMI of a unit tokenizer on espeak-ng phone alignments.
- `stsp`: SpiRit-LM's speech-text sentiment preservation (STSP) of an expressive pipeline, with our classifiers.
- `turn_taking`: dGSLM's turn-taking statistics of stereo dialogues (IPUs, pauses, gaps, overlaps per minute).
- `report`: JSON + Markdown report writing (used by `hf-slm evaluate`).

Public names load on first use (`hf_slm.utils.lazy_exports`), so importing one submodule stays cheap.
"""

from __future__ import annotations

from ..utils import lazy_exports

_SUBMODULES = {
    "..data.real_speech": ["read_audio_dir"],
    ".abx": ["build_abx_items", "evaluate_abx"],
    ".asr": [
        "PipelineASR", "PocketSphinxASR", "SpeechRecognizer", "TransformersASR", "evaluate_asr", "load_asr",
        "load_asr_pipeline"
    ],
    ".generation": ["evaluate_generation", "plot_generation", "ppl_vert_auc"],
    ".metrics": ["METRICS", "load_metric", "metric_path"],
    ".pairs": [
        "PHENOMENA", "build_lexical_pairs", "build_storycloze_pairs", "build_syntactic_pairs", "format_pair_table",
        "read_pairs", "read_storycloze_pairs", "read_zerospeech_pairs", "score_pairs", "score_pairs_ngram",
        "write_pairs"
    ],
    ".prosody": ["evaluate_prosody", "plot_f0_contours"],
    ".unit_purity": ["build_phone_items", "evaluate_unit_purity", "unit_phone_statistics"],
    ".resynthesis": ["evaluate_resynthesis"],
    ".stsp": [
        "DIRECTIONS", "SpeechSentimentClassifier", "TextSentimentClassifier", "format_stsp_table", "preservation",
        "evaluate_stsp", "train_classifiers"
    ],
    ".speech_llm_tasks": ["evaluate_speech_llm_tasks"],
    ".turn_taking": ["channel_ipus", "format_turn_taking_table", "turn_taking_events", "turn_taking_statistics"],
}  # fmt: skip
__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULES)

__all__ = [
    "DIRECTIONS",
    "SpeechSentimentClassifier",
    "TextSentimentClassifier",
    "format_stsp_table",
    "preservation",
    "evaluate_stsp",
    "train_classifiers",
    "METRICS",
    "PHENOMENA",
    "PipelineASR",
    "PocketSphinxASR",
    "SpeechRecognizer",
    "TransformersASR",
    "build_abx_items",
    "build_lexical_pairs",
    "build_storycloze_pairs",
    "build_syntactic_pairs",
    "channel_ipus",
    "evaluate_abx",
    "evaluate_asr",
    "evaluate_generation",
    "evaluate_prosody",
    "evaluate_resynthesis",
    "evaluate_speech_llm_tasks",
    "format_pair_table",
    "format_turn_taking_table",
    "load_asr",
    "load_asr_pipeline",
    "load_metric",
    "metric_path",
    "plot_f0_contours",
    "plot_generation",
    "ppl_vert_auc",
    "read_audio_dir",
    "read_pairs",
    "read_storycloze_pairs",
    "read_zerospeech_pairs",
    "score_pairs",
    "score_pairs_ngram",
    "turn_taking_events",
    "turn_taking_statistics",
    "write_pairs",
]
