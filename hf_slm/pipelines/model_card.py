"""Model cards for pipeline variants, rendered from the components' configs and the evaluation JSON.

The templates live in `model_cards/` at the repository top (one per variant family: ``gslm``, ``twist``,
``instruct``, ``codec_lm``, ``speech_llm``, ``valle``, ``audiolm``, all extending ``_base.md``). The package reaches them through
``hf_slm/model_card_templates``, a symlink to ``../model_cards`` that setuptools copies into the wheel as package
data, so an editable install and a wheel read the same single source. The card describes a loaded pipeline: the
caller hands it in (`SpeechLMPipeline.model_card` does).

A variant folder may hold ``eval_results.json`` (the summary numbers of ``hf-slm evaluate ...``, merged by
`collect_eval_results`) and ``training_summary.json`` (written by the trainer); both feed the card.

>>> from hf_slm.pipelines import SpeechLMPipeline
>>> from hf_slm.pipelines.model_card import render_model_card
>>> card = render_model_card(SpeechLMPipeline.from_pretrained("default"))  # doctest: +SKIP
>>> card.data.library_name  # doctest: +SKIP
'hf_slm'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .embedded import embedded_pipeline_name

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "model_card_templates"
EVAL_RESULTS_FILE = "eval_results.json"
TRAINING_SUMMARY_FILE = "training_summary.json"
FAMILIES = ("gslm", "twist", "instruct", "codec_lm", "speech_llm", "valle", "audiolm")
LICENSE = "apache-2.0"
DATASET = "synthetic-espeak-ng-speech"
INSTRUCT_TASKS = ("asr", "tts", "intent", "silence")  # the measured tasks of `hf_slm.evaluation.instruct_tasks`
RECORDING_SOURCES = ("real_speech", "audio_dir", "dataset")  # what a result of recorded speech names as its input
SPEECH_LLM_TASKS = ("intent", "spoken_answer")  # those of `hf_slm.evaluation.speech_llm_tasks`
#: Keys of a merged ``eval_results.json``: one result each (a newer one replaces it), or a dict of named results
#: (pair benchmarks, ABX representations, codec systems: a newer one updates it).
SINGLE_RESULT_KEYS = ("resynthesis", "resynthesis_real_speech", "asr", "asr_real_speech", "speech_llm_tasks",
                      "instruct_tasks", "instruct_tasks_real_speech", "voice", "voice_real_speech", "tts",
                      "tts_real_speech", "generation")
NAMED_RESULT_KEYS = ("pairs", "abx", "codec", "codec_real_speech")
FAMILY_TAGS = {"gslm": ["gslm"], "twist": ["twist", "text-speech"], "instruct": ["instruct", "peft", "lora"],
               "codec_lm": ["codec", "neural-codec"], "speech_llm": ["speech-llm", "asr", "spoken-dialogue"],
               "valle": ["valle", "zero-shot-tts", "neural-codec"], "audiolm": ["audiolm", "neural-codec"]}
#: The Hub task of a family (default ``audio-to-audio``).
PIPELINE_TAGS = {"speech_llm": "audio-text-to-text", "valle": "text-to-speech"}
#: The component the card's "without hf_slm" line loads (default ``language_model``).
MAIN_COMPONENTS = {"valle": "ar_model", "audiolm": "semantic_lm"}


# ---------------------------------------------------------------------------------------------- evaluation results
def _kind_of(data: dict) -> str | None:
    if "per_phenomenon" in data and "accuracy" in data:
        return "pairs"
    if any(isinstance(v, dict) and "within_speaker_error" in v for v in data.values()):
        return "abx"
    if "wer_resynthesized" in data:
        return "resynthesis"
    if "voices" in data and set(data) & set(INSTRUCT_TASKS):
        return "instruct_tasks"
    if "num_examples" in data and set(data) & set(SPEECH_LLM_TASKS) and all(
        isinstance(data[task], dict) for task in SPEECH_LLM_TASKS if task in data
    ):
        return "speech_llm_tasks"
    if isinstance(data.get("pocketsphinx"), dict) and "wer" in data and "cer" in data:
        return "asr"
    if isinstance(data.get("tts"), dict) and isinstance(data.get("espeak"), dict) and "wer_ratio" in data:
        return "tts"
    systems = data.get("systems")
    if isinstance(systems, dict) and "references" in data and "prompt_seconds" in data:
        return "voice"
    if isinstance(systems, dict) and systems and all(isinstance(v, dict) and "bitrate_bps" in v for v in systems.values()):
        return "codec"
    if isinstance(data.get("per_temperature"), list) and "auc" in data:
        return "generation"
    if data and set(data) <= set(SINGLE_RESULT_KEYS + NAMED_RESULT_KEYS):
        return "merged"
    return None


def _scalars(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None}


def collect_eval_results(paths, into: dict | None = None) -> dict:
    """Merge the JSON written by ``hf-slm evaluate {pairs,abx,resynthesis,asr,speech-llm-tasks,instruct-tasks,voice,
    codec,tts,generation} --output X.json`` into one summary (what ``hf-slm card`` writes into a variant).

    Per-item data is dropped; only the summary numbers stay. Pair benchmarks are keyed by file stem (``pairs.json``
    -> ``"pairs"``), ABX by representation (``features`` / ``units``). A file of another kind raises ValueError.

    Returns:
        ``{"pairs": {bench: {accuracy, accuracy_normalized, n, per_phenomenon}}, "abx": {repr: {...}},
        "resynthesis": {wer_original, wer_resynthesized, ...}, "resynthesis_real_speech" (the same, of
        ``--real-speech`` clips), "asr": {wer, cer, n, pocketsphinx_open_wer, ...}, "asr_real_speech" (the same, of
        recordings: ``--real-speech``, ``--audio-dir``, ``--dataset``), "speech_llm_tasks": {intent_accuracy, spoken_answer_wer, ..., num_examples},
        "instruct_tasks": {asr: {wer, ...}, tts, intent,
        silence}, "instruct_tasks_real_speech" ({asr, silence: {..., recording_silence_rate}, source}: of recordings), "voice": {systems: {name: {speaker_similarity, std, n}}, references, prompt_seconds, ...},
        "codec": {name: {bitrate_bps, mel_distance, stoi, speaker_similarity, n}}, "tts": {tts: {wer, cer,
        speaker_similarity, n}, espeak: {...}, wer_ratio, asr, ...}, "generation": {auc, num_prompts, texts, ...,
        per_temperature: [{temperature, perplexity, vert, ...}]}}`` (keys present only when
        evaluated; voice and codec results keep every system they compared, the variant and its baselines).
    """
    out: dict[str, Any] = json.loads(json.dumps(into)) if into else {}
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:  # a wav or a binary file: not JSON text
            raise ValueError(f"cannot read evaluation results {path}: {err}") from err
        kind = _kind_of(data) if isinstance(data, dict) else None
        if kind is None:
            raise ValueError(
                f"{path} is not the output of `hf-slm evaluate pairs|abx|resynthesis|asr|speech-llm-tasks|"
                "instruct-tasks|voice|codec|tts|generation` nor eval_results"
            )
        if kind == "merged":
            for key, value in data.items():
                if key in SINGLE_RESULT_KEYS:
                    out[key] = value
                else:
                    out.setdefault(key, {}).update(value)
        elif kind == "pairs":
            summary = _scalars(data)
            summary.pop("pairs", None)
            summary["per_phenomenon"] = {k: _scalars(v) for k, v in data.get("per_phenomenon", {}).items()}
            out.setdefault("pairs", {})[path.stem] = summary
        elif kind == "abx":
            for rep, value in data.items():
                if isinstance(value, dict) and "within_speaker_error" in value:
                    out.setdefault("abx", {})[rep] = _scalars(value)
        elif kind == "voice":  # recorded prompts (`--real-speech`) apart, as below
            out["voice_real_speech" if data.get("real_speech") else "voice"] = {"systems": {k: _scalars(v) for k, v in data["systems"].items()},
                            "references": {k: _scalars(v) for k, v in data["references"].items()},
                            **_scalars(data)}  # fmt: skip
        elif kind == "tts":  # recorded prompts (`--real-speech`) apart from espeak-ng ones
            out["tts_real_speech" if data.get("real_speech") else "tts"] = {
                "tts": _scalars(data["tts"]), "espeak": _scalars(data["espeak"]), **_scalars(data)}  # fmt: skip
        elif kind == "generation":
            out["generation"] = {**_scalars(data), "per_temperature": [_scalars(r) for r in data["per_temperature"]]}
        elif kind == "codec":
            key = "codec_real_speech" if data.get("real_speech") else "codec"
            out.setdefault(key, {}).update({k: _scalars(v) for k, v in data["systems"].items()})
        elif kind == "instruct_tasks":  # recordings (`--real-speech`, `--audio-dir`, `--dataset`) kept apart
            entry = {task: _scalars(data[task]) for task in INSTRUCT_TASKS if task in data}
            source = next((data[k] for k in RECORDING_SOURCES if data.get(k)), None)
            if source is None:
                out["instruct_tasks"] = entry
            else:
                if "silence" in entry:
                    entry["silence"]["recording_silence_rate"] = data["silence"]["silence_rate_by_kind"]["recording"]
                out["instruct_tasks_real_speech"] = entry | {"source": str(source)}
        elif kind == "speech_llm_tasks":  # flat, as the card reads it: intent_accuracy, spoken_answer_wer, ...
            out["speech_llm_tasks"] = {f"{task}_{key}": value for task in SPEECH_LLM_TASKS if task in data
                                       for key, value in _scalars(data[task]).items()} | {
                k: data[k] for k in ("voice", "rate", "seed", "num_examples") if k in data}  # fmt: skip
        elif kind == "asr":  # recordings (no espeak-ng voice) apart from espeak-ng speech
            out["asr" if data.get("voice") else "asr_real_speech"] = _scalars(data) | {
                f"pocketsphinx_{vocabulary}_{metric}": scores[metric]
                for vocabulary, scores in data["pocketsphinx"].items() for metric in ("wer", "cer")}  # fmt: skip
        else:  # real speech (`--real-speech`) is kept apart from the espeak-ng / recorded-audio result
            out["resynthesis_real_speech" if data.get("real_speech") else "resynthesis"] = _scalars(data)
    return out


def _merged_eval_results(folder, paths) -> dict:
    """``folder/eval_results.json`` (when there is one) with ``paths`` merged in; nothing is written."""
    target = Path(folder) / EVAL_RESULTS_FILE
    return collect_eval_results(paths, into=collect_eval_results([target] if target.exists() else []))


def _save_eval_results(folder, merged: dict) -> Path:
    from ..utils import atomic_open

    target = Path(folder) / EVAL_RESULTS_FILE
    with atomic_open(target) as f:  # the results already there survive a kill mid-write
        f.write(json.dumps(merged, indent=2) + "\n")
    return target


def write_eval_results(folder, paths) -> Path:
    """Merge ``paths`` into ``folder/eval_results.json`` (created when missing) and return its path."""
    return _save_eval_results(folder, _merged_eval_results(folder, paths))


def _eval_results_list(results: dict, model_name: str):
    from huggingface_hub import EvalResult

    rows = []
    for bench, r in sorted(results.get("pairs", {}).items()):
        rows.append(EvalResult(task_type="spoken-language-modeling", task_name="Spoken minimal pairs",
                               dataset_type=f"hf_slm/{bench}", dataset_name=f"{bench} (synthetic speech)",
                               metric_type="accuracy", metric_name="pair accuracy", metric_value=round(r["accuracy"], 4)))
    for rep, r in sorted(results.get("abx", {}).items()):
        for side in ("within", "between"):
            rows.append(EvalResult(task_type="acoustic-unit-discovery", task_name="ABX discriminability",
                                   dataset_type="hf_slm/abx", dataset_name="ABX (synthetic minimal words)",
                                   metric_type="abx_error", metric_name=f"ABX {side}-speaker error ({rep})",
                                   metric_value=round(r[f"{side}_speaker_error"], 4)))
    if "resynthesis" in results:
        r = results["resynthesis"]
        rows.append(EvalResult(task_type="audio-to-audio", task_name="Resynthesis",
                               dataset_type="hf_slm/resynthesis", dataset_name="Resynthesis (synthetic speech)",
                               metric_type="wer", metric_name="WER of resynthesised speech",
                               metric_value=round(r["wer_resynthesized"], 4)))
    if "resynthesis_real_speech" in results:
        r = results["resynthesis_real_speech"]
        for metric, name in (("wer", "WER"), ("cer", "CER")):
            rows.append(EvalResult(task_type="audio-to-audio", task_name="Resynthesis of real speech",
                                   dataset_type=f"hf_slm/real_speech_{r['real_speech']}",
                                   dataset_name=f"Resynthesis (real speech: {r['real_speech']})", metric_type=metric,
                                   metric_name=f"{name} of resynthesised real speech",
                                   metric_value=round(r[f"{metric}_resynthesized"], 4)))  # fmt: skip
    for key, dataset in (("asr", "held-out synthetic speech"), ("asr_real_speech", "real speech")):
        if key in results:
            r = results[key]
            source = r.get("real_speech") or r.get("texts") or r.get("audio_dir") or r.get("dataset") or "?"
            for metric, name in (("wer", "WER"), ("cer", "CER")):
                rows.append(EvalResult(task_type="automatic-speech-recognition", task_name="Speech recognition",
                                       dataset_type=f"hf_slm/{key}_{source}", dataset_name=f"{source} ({dataset})",
                                       metric_type=metric, metric_name=name, metric_value=round(r[metric], 4)))  # fmt: skip
    if "tts" in results:
        r = results["tts"]
        for metric, name in (("wer", "WER"), ("cer", "CER")):
            rows.append(EvalResult(task_type="text-to-speech", task_name="Zero-shot TTS intelligibility",
                                   dataset_type="hf_slm/tts_unseen_voices", dataset_name="unseen espeak-ng voices",
                                   metric_type=metric, metric_name=f"ASR {name} of the speech",
                                   metric_value=round(r["tts"][metric], 4)))  # fmt: skip
        rows.append(EvalResult(task_type="text-to-speech", task_name="Zero-shot TTS voice",
                               dataset_type="hf_slm/tts_unseen_voices", dataset_name="unseen espeak-ng voices",
                               metric_type="speaker_similarity", metric_name="speaker similarity to the prompt",
                               metric_value=round(r["tts"]["speaker_similarity"], 4)))  # fmt: skip
    tasks = results.get("instruct_tasks", {})
    for task, key, task_type, title, metric_type, metric in (
        ("asr", "wer", "automatic-speech-recognition", "ASR (held-out synthetic speech)", "wer", "WER"),
        ("tts", "wer", "text-to-speech", "TTS intelligibility", "wer", "ASR WER of the spoken reply"),
        ("intent", "accuracy", "audio-classification", "Spoken intent classification", "accuracy", "accuracy"),
        ("silence", "balanced_accuracy", "audio-classification", "Silence mode (query vs non-query)", "accuracy",
         "balanced accuracy"),
    ):  # fmt: skip
        if task in tasks:
            rows.append(EvalResult(task_type=task_type, task_name=title, dataset_type=f"hf_slm/instruct_{task}",
                                   dataset_name=f"{title} (synthetic speech)", metric_type=metric_type,
                                   metric_name=metric, metric_value=round(tasks[task][key], 4)))  # fmt: skip
    recorded = results.get("instruct_tasks_real_speech", {})
    for task, key, task_type, title, metric_type, metric in (
        ("asr", "wer", "automatic-speech-recognition", "ASR", "wer", "WER"),
        ("silence", "recording_silence_rate", "audio-classification", "Silence mode", "accuracy",
         "silent on recordings (non-queries)"),
    ):  # fmt: skip
        if task in recorded:
            rows.append(EvalResult(task_type=task_type, task_name=f"{title} (real speech)",
                                   dataset_type=f"hf_slm/instruct_{task}_real_speech_{recorded['source']}",
                                   dataset_name=f"{title} (real speech: {recorded['source']})", metric_type=metric_type,
                                   metric_name=metric, metric_value=round(recorded[task][key], 4)))  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------- components
def _num_weights(component, lora: bool | None = None) -> int | None:
    """Parameters plus persistent buffers (k-means centroids are buffers); ``lora`` picks adapter / base weights."""
    state_dict = getattr(component, "state_dict", None)
    if not callable(state_dict):
        return None
    seen = {}  # tied weights (embedding = head) appear twice in a state dict: count storage once
    for name, t in state_dict().items():
        if lora is None or ("lora_" in name) == lora:
            seen[(t.data_ptr(), t.shape)] = t.numel()
    return sum(seen.values())


def _size(n: int | None) -> str:
    return "" if not n else f"{n / 1e6:.2f}M" if n >= 10_000 else f"{n / 1e3:.1f}k"


def _details(config) -> str:
    if config is None:
        return ""
    parts = []
    backbone = getattr(config, "text_config", None)
    for attr, label, unit in (("num_units", "units", ""), ("num_phonemes", "phonemes", ""),
                              ("num_codebooks", "codebooks", ""), ("group_size", "group size", ""),
                              ("codebook_size", "codebook size", ""), ("text_vocab_size", "text vocab", ""),
                              ("frame_rate", "frame rate", " Hz"), ("sampling_rate", "sampling rate", " Hz"),
                              ("hidden_size", "hidden", ""), ("num_hidden_layers", "layers", "")):
        if backbone is not None and attr in ("hidden_size", "num_hidden_layers"):
            continue  # read through to the backbone: the backbone part says them
        value = getattr(config, attr, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{label} {value:g}{unit}")
    if backbone is not None:
        parts.append(f"backbone {backbone.model_type} ({backbone.num_hidden_layers} layers x {backbone.hidden_size})")
    head = getattr(config, "waveform_head", None)
    if isinstance(head, str):  # a mel vocoder: how its mel becomes audio
        parts.append("waveform: inverse-STFT head (GAN-trained)" if head == "istft" else "waveform: Griffin-Lim")
    return ", ".join(parts)


def _components(pipeline) -> list[dict]:
    rows = []
    for name, component in pipeline.components.items():
        adapter, peft_model = None, None
        if hasattr(component, "peft_config"):  # an instruct variant: LoRA over the base LM
            adapter, peft_model = component.peft_config.get("default"), component
            component = component.get_base_model()
        config = getattr(component, "config", None)
        rows.append({
            "name": name, "class": type(component).__name__,
            "model_type": getattr(config, "model_type", "") or "",
            "weights": _size(_num_weights(component, lora=False if adapter is not None else None)),
            "details": _details(config) if config is not None else _details(component),
        })
        if adapter is not None:
            targets = ", ".join(sorted(getattr(adapter, "target_modules", None) or []))
            rows.append({"name": "adapter", "class": f"peft {type(adapter).__name__}",
                         "model_type": str(getattr(adapter, "peft_type", "")).split(".")[-1].lower(),
                         "weights": _size(_num_weights(peft_model, lora=True)),
                         "details": f"r {getattr(adapter, 'r', '?')}, targets {targets}"})
    return rows


def detect_family(pipeline) -> str:
    """``valle`` (AR + NAR models), ``audiolm`` (coarse + fine acoustic LMs), ``speech_llm`` (a processor),
    ``codec_lm`` (codec speech tokenizer), ``instruct`` (PEFT adapter), ``twist`` (text vocab) or ``gslm``."""
    if pipeline.components.get("ar_model") is not None:
        return "valle"
    if pipeline.components.get("coarse_lm") is not None:
        return "audiolm"
    if pipeline.components.get("processor") is not None:
        return "speech_llm"
    tokenizer = pipeline.components.get("speech_tokenizer")
    if "codec" in (getattr(getattr(tokenizer, "config", None), "model_type", "") or ""):
        return "codec_lm"
    lm = pipeline.components.get("language_model")
    if lm is not None and hasattr(lm, "peft_config"):
        return "instruct"
    if lm is not None and (getattr(lm.config, "text_vocab_size", 0) or 0) > 0:
        return "twist"
    return "gslm"


# ---------------------------------------------------------------------------------------------- rendering
def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def render_model_card(pipeline, eval_results=None, training_summary: dict | None = None,
                      repo_id: str | None = None, family: str | None = None, embedded: bool | None = None):
    """Render the card of a pipeline variant as a `huggingface_hub.ModelCard`.

    Args:
        pipeline: a loaded `SpeechLMPipeline` (``SpeechLMPipeline.from_pretrained(folder)`` for a saved variant).
        eval_results: a summary dict (as `collect_eval_results` returns), JSON path(s) to merge, or None to read
            ``eval_results.json`` from the folder the pipeline was loaded from (its ``local_path``).
        training_summary: the trainer's summary; defaults to the folder's ``training_summary.json``.
        repo_id: the Hub repo the card describes (used in "how to load"); defaults to the embedded name of the folder
            the pipeline was loaded from, else the pipeline's name.
        family: force one of `FAMILIES` instead of detecting it.
        embedded: the card of a variant embedded in the package: ``repo_id`` is then a name only an installed hf_slm
            resolves, and the folder has no modelling code, which the card says. ``None``: whether the pipeline was
            loaded from an embedded folder.
    """
    from huggingface_hub import ModelCard, ModelCardData
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    if isinstance(pipeline, (str, os.PathLike)):
        raise TypeError(
            f"render_model_card takes a loaded pipeline, got the path {str(pipeline)!r}: pass "
            "SpeechLMPipeline.from_pretrained(path)"
        )
    folder = Path(pipeline.local_path) if getattr(pipeline, "local_path", None) else None
    if eval_results is None:
        eval_results = _read_json(folder / EVAL_RESULTS_FILE) if folder else None
    elif not isinstance(eval_results, dict):
        eval_results = collect_eval_results(eval_results)
    if training_summary is None and folder is not None:
        training_summary = _read_json(folder / TRAINING_SUMMARY_FILE)
    family = family or detect_family(pipeline)
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is not one of {FAMILIES}")
    embedded_name = embedded_pipeline_name(folder)
    embedded = embedded_name is not None if embedded is None else embedded
    repo_id = repo_id or embedded_name or getattr(pipeline, "name_or_path", None) or "<your-namespace>/<variant>"
    model_name = repo_id.split("/")[-1]
    card_data = ModelCardData(
        library_name="hf_slm", license=LICENSE, datasets=[DATASET],
        pipeline_tag=PIPELINE_TAGS.get(family, "audio-to-audio"),
        tags=["hf_slm", "speech-language-model", "audio", *FAMILY_TAGS[family]], model_name=model_name,
        eval_results=_eval_results_list(eval_results or {}, model_name) or None,
    )
    env = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    content = env.get_template(f"{family}.md").render(
        card_data=card_data.to_yaml(), family=family, repo_id=repo_id, model_name=model_name,
        components=_components(pipeline), eval=eval_results or {}, training=training_summary or {},
        license=LICENSE, dataset=DATASET, main_component=MAIN_COMPONENTS.get(family, "language_model"),
        embedded=embedded,
    )
    return ModelCard(content)


def local_variant_folder(spec) -> Path:
    """The folder of a variant whose files may be written: a local folder or an embedded name, never a Hub id (its
    download is a read-only cache). Raises ValueError naming ``spec`` otherwise."""
    from .embedded import embedded_pipeline_path

    folder = Path(embedded_pipeline_path(spec) or spec).expanduser()
    if not folder.is_dir():
        raise ValueError(f"{str(spec)!r} is not a local variant folder (a Hub download is a read-only cache): pull it "
                         "into a folder first (hf-slm pull), then update that folder's card")  # fmt: skip
    return folder


def update_model_card(pipeline, result_paths=(), repo_id: str | None = None) -> Path:
    """Merge ``result_paths`` (``hf-slm evaluate ... --output X.json``) into ``eval_results.json`` of the folder that
    ``pipeline`` was loaded from, and re-render its ``README.md`` (both written atomically); returns the card's path.

    ``repo_id``: the name the card's "how to load" uses (default: the embedded name, else the folder's name, as
    ``save_pretrained`` writes it; give the Hub id the folder is pushed to). Every result
    is read before anything is written, so a wrong file changes nothing; a pipeline loaded from the Hub cache is
    refused (`local_variant_folder`).
    """
    from huggingface_hub import constants

    from ..utils import atomic_open

    folder = Path(pipeline.local_path).resolve() if getattr(pipeline, "local_path", None) else None
    if folder is None or folder.is_relative_to(Path(constants.HF_HUB_CACHE).resolve()):
        raise ValueError(f"{getattr(pipeline, 'name_or_path', None) or folder!r} was not loaded from a local variant "
                         "folder (a Hub download is a read-only cache): pull it into a folder first (hf-slm pull)")  # fmt: skip
    paths = [Path(p) for p in ([result_paths] if isinstance(result_paths, (str, os.PathLike)) else result_paths)]
    results = _merged_eval_results(folder, paths)  # read and checked once, before anything is written
    card = render_model_card(pipeline, eval_results=results or None,
                             repo_id=repo_id or embedded_pipeline_name(folder) or folder.name)  # fmt: skip
    if paths:
        _save_eval_results(folder, results)
    with atomic_open(folder / "README.md") as f:
        f.write(str(card))
    return folder / "README.md"


def save_embedded_variant(pipeline, folder, repo_id: str, float16=(), training_summary: dict | None = None,
                          eval_paths=()) -> Path:
    """Save ``pipeline`` as a variant embedded in the package: the ``float16`` components stored in half the bytes but
    computing in float32 (their configs keep ``dtype: float32``, so `from_pretrained` upcasts), the training summary,
    the merged ``eval_paths`` and the card named ``repo_id``, and no model code (the package serves it; a push writes
    it again). The folder is replaced atomically; the pipeline's ``float16`` components are left in float16."""
    import torch

    from ..utils import atomic_save_directory

    def write(tmp: Path) -> None:
        for name in float16:
            getattr(pipeline, name).to(torch.float16)
        pipeline.save_pretrained(tmp)
        for name in float16:
            config_path = tmp / name / "config.json"
            config = json.loads(config_path.read_text(encoding="utf-8"))
            for section in (config, *(v for v in config.values() if isinstance(v, dict) and "dtype" in v)):
                section["dtype"] = "float32"  # sub-configs (a backbone's text_config) too
            config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if training_summary is not None:
            (tmp / TRAINING_SUMMARY_FILE).write_text(json.dumps(training_summary, indent=2) + "\n", encoding="utf-8")
        if eval_paths:
            write_eval_results(tmp, eval_paths)
        loaded = type(pipeline).from_pretrained(tmp)
        wrong = [name for name in float16 if getattr(loaded, name).dtype != torch.float32]
        if wrong:
            raise RuntimeError(f"{wrong} would not load in float32 from {tmp}")
        # a folder of the package (or a test's stand-in for one), or a run's folder stored the same way
        embedded = embedded_pipeline_name(folder) is not None
        render_model_card(loaded, repo_id=repo_id, embedded=embedded).save(tmp / "README.md")
        for code in tmp.rglob("*.py"):
            code.unlink()

    return atomic_save_directory(Path(folder), write)


__all__ = ["EVAL_RESULTS_FILE", "FAMILIES", "MAIN_COMPONENTS", "PIPELINE_TAGS", "TRAINING_SUMMARY_FILE", "collect_eval_results", "detect_family",
           "local_variant_folder", "render_model_card", "save_embedded_variant", "update_model_card",
           "write_eval_results"]
