"""`hf-slm`: the command line. Every command that takes a pipeline accepts a folder, a Hub repo id, or `default`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .arguments import (
    add_pipeline_argument,
    csv_list,
    existing_file,
    existing_folder_or_embedded,
    existing_path,
    merge_pipeline_argument,
    non_negative_int,
    number,
    positive_float,
    positive_int,
    probability,
    sampling_rate_type,
)


# ---------------------------------------------------------------------------------------------------- synth
def cmd_synth(args) -> int:
    from ..data import corpus_voices, load_text_corpus, synthesize_dataset
    from ..utils import atomic_save_directory

    texts = load_text_corpus(args.texts, limit=args.limit, seed=args.seed)
    ds = synthesize_dataset(
        texts,
        voices=corpus_voices(args.voices),
        rates=args.rates,
        pitches=args.pitches,
        sampling_rate=args.sampling_rate,
        assignment=args.assignment,
        seed=args.seed,
        cache_dir=args.cache_dir,
        num_proc=args.num_proc,
    )
    atomic_save_directory(args.output, lambda tmp: ds.save_to_disk(str(tmp)))
    hours = sum(ds["duration"]) / 3600
    print(f"wrote {len(ds)} utterances ({hours:.2f} h of speech) to {args.output}")
    return 0


# ---------------------------------------------------------------------------------------------------- fit-tokenizer
def _load_dataset_arg(spec: str, split: str | None = None):
    """A folder written by `hf-slm synth` / `save_to_disk`, a data file, or a folder of audio files (audiofolder)."""
    from ..data.real_speech import load_local_dataset

    return load_local_dataset(spec, split=split)


def cmd_fit_tokenizer(args) -> int:
    from ..models.unit_encoder import DEFAULT_VTLN_WARPS, SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel
    from ..utils import atomic_save_directory
    from ..training.kmeans import fit_unit_tokenizer_on_dataset

    ds = _load_dataset_arg(args.dataset)
    if args.audio_column not in ds.column_names:
        raise ValueError(f"dataset {args.dataset} has no column {args.audio_column!r} ({ds.column_names})")
    if args.speaker_column is not None:
        if not args.vtln:
            raise ValueError("--speaker-column is for --vtln (one vocal tract length warp per speaker)")
        if args.speaker_column not in ds.column_names:
            raise ValueError(f"dataset {args.dataset} has no column {args.speaker_column!r} ({ds.column_names})")
    if args.vtln_tokenization != "search" and not args.vtln:
        raise ValueError(f"--vtln-tokenization {args.vtln_tokenization} is for --vtln (the codebook of warp-normalised "
                         "speech)")  # fmt: skip
    if args.frontend == "ssl":
        if not args.ssl_model:
            raise ValueError("--frontend ssl needs --ssl-model (a local folder or Hub id of HuBERT/WavLM/...)")
        if args.vtln:
            raise ValueError("--vtln warps the MFCC front end's mel filterbank: it needs --frontend mfcc")
        tokenizer = UnitEncoderModel.from_ssl_pretrained(args.ssl_model, layer=args.layer, num_units=args.num_units,
                                                         utterance_normalization=args.utterance_normalization)  # fmt: skip
    else:
        tokenizer = UnitEncoderModel(UnitEncoderConfig(frontend="mfcc", num_units=args.num_units,
                                                       utterance_normalization=args.utterance_normalization,
                                                       vtln_warps=list(DEFAULT_VTLN_WARPS) if args.vtln else None,
                                                       vtln_tokenization=args.vtln_tokenization))  # fmt: skip
    # its rate, and at least one analysis window (a log-mel encoder's stacked frame is 560 samples, not 400)
    feature_extractor = SpeechFeatureExtractor(sampling_rate=tokenizer.config.sampling_rate,
                                               min_samples=tokenizer.config.receptive_field)  # fmt: skip
    tokenizer.to(args.device)
    fit_unit_tokenizer_on_dataset(
        tokenizer,
        ds.shuffle(seed=args.seed, keep_in_memory=True),  # the fit's own shuffle caches into the input folder
        feature_extractor,
        audio_column=args.audio_column,
        batch_size=args.batch_size,
        max_frames=args.max_frames,
        seed=args.seed,
        shuffle=False,
        vtln_iterations=args.vtln_iterations if args.vtln else 0,
        speaker_column=args.speaker_column,
    )

    def write(tmp: Path) -> None:
        tokenizer.save_pretrained(tmp)
        feature_extractor.save_pretrained(tmp)

    atomic_save_directory(args.output, write)
    print(f"fitted k-means with {args.num_units} units on {len(ds)} utterances -> {args.output}")
    return 0


# ---------------------------------------------------------------------------------------------------- pretrain-encoder
def cmd_pretrain_encoder(args) -> int:
    from transformers import TrainingArguments

    from ..training.arguments import SpeechDataArguments, parse_json_and_flags
    from ..training.launch import require_single_process, resumable_interrupt
    from ..training.ssl_pretraining import EncoderPretrainingArguments, run_encoder_pretraining

    require_single_process("hf-slm pretrain-encoder")
    data_args, schedule_args, training_args = parse_json_and_flags(
        (SpeechDataArguments, EncoderPretrainingArguments, TrainingArguments), [str(args.config), *args.overrides]
    )
    with resumable_interrupt(training_args.output_dir):
        summary = run_encoder_pretraining(data_args, schedule_args, training_args)
    for row in summary["iterations"]:
        print(f"iteration {row['iteration']}: {row['num_units']} targets, held-out masked loss {row['eval_loss']:.3f}, "
              f"masked accuracy {100 * row['eval_masked_accuracy']:.1f}%")
    print(f"encoder: {summary['encoder']} (a HubertModel folder)\nunit tokenizer: hf-slm fit-tokenizer --frontend ssl "
          f"--ssl-model {summary['encoder']} --layer {summary['target_layer']} --dataset DATA --output FOLDER")
    return 0


# ---------------------------------------------------------------------------------------------------- fit-word-lm
def cmd_fit_word_lm(args) -> int:
    from ..data import load_text_corpus
    from ..training import fit_word_lm

    texts = [text for source in args.texts for text in load_text_corpus(source)]
    vocabulary = []
    if args.vocabulary is not None:
        lines = args.vocabulary.read_text(encoding="utf-8", errors="replace").splitlines()
        vocabulary = [line.split()[0].lower() for line in lines if line.split()]
    output = str(args.output)
    if not (output.endswith(".arpa") or output.endswith(".arpa.gz")):
        raise ValueError(f"--output must end in .arpa or .arpa.gz (gzip-compressed), got {output!r}")
    lm = fit_word_lm(texts, order=args.order, vocabulary=vocabulary, min_count=args.min_count)
    lm.to_arpa(args.output)
    counts = [sum(1 for gram in lm.ngrams if len(gram) == k) for k in range(1, lm.order + 1)]
    print(f"{lm.order}-gram Kneser-Ney LM of {len(texts)} texts ({' / '.join(map(str, counts))} n-grams) -> {output}")
    return 0


# ---------------------------------------------------------------------------------------------------- tokenize
def cmd_tokenize(args) -> int:
    from tqdm.auto import tqdm

    from ..pipelines.loading import load_speech_tokenizer
    from ..training.speech_units import UnitTokenization

    feature_extractor, tokenizer = load_speech_tokenizer(args.tokenizer)
    tokenizer.to(args.device).eval()
    # audio -> units (+ durations with --deduplicate): the same map function the training scripts use
    units_of = UnitTokenization(feature_extractor, tokenizer, args.audio_column, deduplicate=args.deduplicate)

    if args.dataset:
        from ..utils import atomic_save_directory

        from ..training.speech_units import tokenize_speech

        # cached in $HF_DATASETS_CACHE/hf_slm_units, not in the input dataset's folder
        ds = tokenize_speech(_load_dataset_arg(args.dataset), feature_extractor, tokenizer, args.audio_column,
                             args.batch_size, "dataset", deduplicate=args.deduplicate, keep_audio=True,
                             num_proc=args.num_proc)  # fmt: skip
        atomic_save_directory(args.output, lambda tmp: ds.save_to_disk(str(tmp)))
        column = "codes" if "codes" in ds.column_names else "units"
        print(f"tokenised {len(ds)} utterances -> {args.output} (column '{column}')")
        return 0

    files = [str(p) for p in args.inputs]
    if not files:
        raise ValueError("give audio files or --dataset")
    from ..utils import atomic_open

    out_path = Path(args.output)
    with atomic_open(out_path) as handle:  # a failed or interrupted run leaves no partial or .tmp file
        for start in tqdm(range(0, len(files), args.batch_size), desc="tokenising", unit="batch"):
            chunk = files[start : start + args.batch_size]
            columns = units_of({args.audio_column: chunk})
            for i, path in enumerate(chunk):
                handle.write(json.dumps({"path": path, **{name: values[i] for name, values in columns.items()}}) + "\n")
    print(f"tokenised {len(files)} files -> {out_path}")
    return 0


# ---------------------------------------------------------------------------------------------------- split-audio
def cmd_split_audio(args) -> int:
    from ..data.vad import split_audio_files

    rows = split_audio_files(args.inputs, args.output, min_silence_ms=args.min_silence_ms,
                             max_utterance_s=args.max_utterance_s, threshold=args.threshold)  # fmt: skip
    seconds = sum(row["end"] - row["start"] for row in rows)
    print(f"wrote {len(rows)} utterances ({seconds:.1f} s of speech) of {len(args.inputs)} recordings to {args.output}")
    return 0


# ---------------------------------------------------------------------------------------------------- info
def describe_pipeline(spec: str) -> dict:
    """A JSON-able description of a pipeline variant or a single component folder."""
    from transformers import AutoConfig

    from ..pipelines import INDEX_FILE, read_index, resolve_pipeline_path
    from ..pipelines.pipeline_utils import embedded_pipeline_path

    path = resolve_pipeline_path(spec)
    info: dict = {"path": str(path)}
    sizes = {}
    for f in path.rglob("*"):
        if f.is_file():
            top = f.relative_to(path).parts[0] if len(f.relative_to(path).parts) > 1 else "."
            sizes[top] = sizes.get(top, 0) + f.stat().st_size
    info["size_mb"] = round(sum(sizes.values()) / 1e6, 2)
    if not (path / INDEX_FILE).exists():
        config = AutoConfig.from_pretrained(str(path))
        info["component"] = {"model_type": config.model_type, "architectures": config.architectures}
        return info
    index = read_index(path)
    info["class"] = index.get("_class_name")
    info["components"] = {}
    for name, spec_ in index.items():
        if name.startswith("_") or spec_ is None:
            continue
        folder = path / name
        if isinstance(spec_, dict):  # shared by reference: another repo / folder / embedded variant + subfolder
            entry = {"class": f"{spec_.get('library')}/{spec_.get('class')}",
                     "shared_from": f"{spec_.get('repo')}:{spec_.get('subfolder', name)}"}
            source = embedded_pipeline_path(spec_.get("repo")) or spec_.get("repo")
            folder = Path(source) / spec_.get("subfolder", name)  # read its config when it is local
        else:
            entry = {"class": "/".join(map(str, spec_))}
        cfg_file = folder / "config.json"
        if cfg_file.exists():
            cfg = json.loads(cfg_file.read_text())
            entry["model_type"] = cfg.get("model_type")
            for key in ("num_units", "frontend", "sampling_rate", "text_vocab_size", "hop_length"):
                if key in cfg:
                    entry[key] = cfg[key]
        entry["size_mb"] = round(sizes.get(name, 0) / 1e6, 2)
        info["components"][name] = entry
    return info


def cmd_info(args) -> int:
    info = describe_pipeline(args.pipeline)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"{info.get('class', 'component')} at {info['path']} ({info['size_mb']} MB)")
    for name, entry in info.get("components", {}).items():
        extras = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("class", "size_mb"))
        print(f"  {name:<18} {entry['class']:<45} {entry['size_mb']:>7} MB  {extras}")
    if "component" in info:
        print(f"  {info['component']}")
    return 0


# ---------------------------------------------------------------------------------------------------- demo
DEMO_TEXT = "the small dog runs to the red house and the children laugh"


def _first_stream(units):
    """`[frames]` units as they are; `[Q, frames]` codes -> their first codebook."""
    return units if units.dim() == 1 else units[0]


def cmd_demo(args) -> int:
    from ..data import make_synthesizer
    from ..data.builder import write_wav
    from ..pipelines import AudioLMPipeline, SpeechLMPipeline, read_index, resolve_pipeline_path
    from ..visualization import plot_speech_units

    if args.threads:
        __import__("torch").set_num_threads(args.threads)
    out = Path(args.output)
    path = resolve_pipeline_path(args.pipeline)
    audiolm = read_index(path).get("_class_name") == "AudioLMPipeline"  # units drawn: its semantic units
    pipe = (AudioLMPipeline if audiolm else SpeechLMPipeline).from_pretrained(path)
    pipe.name_or_path = args.pipeline
    print(pipe)
    speech = make_synthesizer(voice=args.voice).synthesize(args.text)
    write_wav(out / "input.wav", speech.waveform, speech.sampling_rate)
    audio = {"array": speech.waveform, "sampling_rate": speech.sampling_rate}
    frame_rate = (pipe.unit_encoder if audiolm else pipe.speech_tokenizer).config.frame_rate
    resynth = pipe.resynthesize(audio)
    write_wav(out / "resynthesized.wav", resynth.waveforms[0], resynth.sampling_rate)
    units = _first_stream(resynth.units[0])  # a codec-LM variant's [Q, T] codes: its first codebook is drawn
    panels = [
        ("input (espeak-ng)", speech.waveform, speech.sampling_rate, units.numpy(), frame_rate),
        ("resynthesised from units", resynth.waveforms[0], resynth.sampling_rate, units.numpy(), frame_rate),
    ]
    written = [out / "input.wav", out / "resynthesized.wav"]
    if audiolm or pipe.components.get("language_model") is not None:
        # the prompt is the first half of the utterance; the LM continues it
        half = {"array": speech.waveform[: len(speech.waveform) // 2], "sampling_rate": speech.sampling_rate}
        cont = pipe.continue_speech(
            half,
            max_new_tokens=args.max_new_tokens,
            min_new_tokens=args.max_new_tokens // 2,
            temperature=args.temperature,
            seed=args.seed,
        )
        write_wav(out / "continuation.wav", cont.waveforms[0], cont.sampling_rate)
        all_units = _first_stream(__import__("torch").cat([cont.prompt_units[0], cont.units[0]], dim=-1)).numpy()
        panels.append(("prompt + LM continuation", cont.waveforms[0], cont.sampling_rate, all_units, frame_rate))
        written.append(out / "continuation.wav")
        new, prompt = cont.units[0].shape[-1], cont.prompt_units[0].shape[-1]
        print(f"continuation: {new} new frames after a {prompt}-frame prompt")
    png = plot_speech_units(panels, out / "demo.png", title=f"hf_slm demo: {pipe.name_or_path}")
    units_line = " ".join(map(str, units[:40].tolist()))
    print(f"text: {args.text!r}\nunits ({len(units)} at {frame_rate:g} Hz): {units_line} ...")
    for path in written + [png]:
        print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------------------------------------------- chat
def load_chat_pipeline(spec: str):
    """The chat pipeline of a variant: `SpeechLLMPipeline` for a speech-LLM variant (its index says so), else
    `SpokenChatPipeline` (an instruct variant)."""
    from ..pipelines import read_index, resolve_pipeline_path

    path = resolve_pipeline_path(spec)
    if read_index(path).get("_class_name") == "SpeechLLMPipeline":
        from ..pipelines import SpeechLLMPipeline

        return SpeechLLMPipeline.from_pretrained(path)
    from ..pipelines import SpokenChatPipeline

    return SpokenChatPipeline.from_pretrained(path)


def cmd_chat(args) -> int:
    from ..data.builder import write_wav
    from ..pipelines import SpeechLLMPipeline

    if args.text is None and args.audio is None:
        raise ValueError("chat needs --text and / or --audio")
    if args.threads:
        __import__("torch").set_num_threads(args.threads)
    pipe = load_chat_pipeline(args.pipeline)
    if isinstance(pipe, SpeechLLMPipeline):
        out = pipe.chat(audio=None if args.audio is None else str(args.audio), text=args.text,
                        max_new_tokens=args.max_new_tokens, speak=args.output is not None)  # fmt: skip
    else:  # an instruct variant takes one user input: the audio (its speech) or the text
        if args.audio is not None and args.text is not None:
            raise ValueError(f"{args.pipeline} is a SpokenChatPipeline variant: pass --audio or --text, not both")
        # without --output the answer can only be read: keep it in text (the model may otherwise switch to speech,
        # chain of modality, and print an empty line)
        modality = "speech" if args.output is not None else "text"
        out = pipe.chat(str(args.audio) if args.audio is not None else args.text, max_new_tokens=args.max_new_tokens,
                        response_modality=modality, strict_modality=modality == "text")  # fmt: skip
    if getattr(out, "silent", False):
        print(f"{args.pipeline} stayed silent: it ended its turn at once, as instruct variants do for input they take "
              "for noise or side talk", file=sys.stderr)  # fmt: skip
    print(out.text)
    if args.output is not None:
        if out.waveform is None:
            raise ValueError(f"{args.pipeline} gave no spoken answer (it needs a speech decoder / speech LM and a vocoder)")
        print(f"wrote {write_wav(args.output, out.waveform, out.sampling_rate)}")
    return 0


# ---------------------------------------------------------------------------------------------------- tts
def cmd_tts(args) -> int:
    from ..data.builder import write_wav
    from ..pipelines import VallEPipeline, read_index, resolve_pipeline_path

    if not args.text.strip():
        raise ValueError("--text is empty: there is nothing to say")
    if args.output.suffix.lower() != ".wav":
        raise ValueError(f"--output must be a .wav file, got {str(args.output)!r}")
    if args.output.is_dir():
        raise ValueError(f"--output {str(args.output)!r} is a folder; give a .wav file path")
    path = resolve_pipeline_path(args.pipeline)
    kind = read_index(path).get("_class_name")
    if kind != "VallEPipeline":
        raise ValueError(f"--pipeline {args.pipeline} is a {kind} variant, not a zero-shot TTS (VallEPipeline) variant")
    if args.threads:
        __import__("torch").set_num_threads(args.threads)
    pipe = VallEPipeline.from_pretrained(path)
    out = pipe.text_to_speech(args.text, str(args.prompt_audio), prompt_text=args.prompt_text, language=args.language,
                              max_new_frames=args.max_new_frames, min_new_frames=args.min_new_frames,
                              temperature=args.temperature, top_p=args.top_p,
                              seed=args.seed)  # fmt: skip
    write_wav(args.output, out.waveform, out.sampling_rate)
    seconds = len(out.waveform) / out.sampling_rate
    print(f"wrote {args.output}: {out.codes.shape[-1]} frames, {seconds:.2f} s at {out.sampling_rate} Hz")
    return 0


# ---------------------------------------------------------------------------------------------------- push / pull
def cmd_push(args) -> int:
    from ..hub import push

    info = push(args.folder, args.repo_id, revision=args.revision, private=args.private,
                commit_message=args.commit_message, create_pr=args.create_pr)
    print(f"pushed {args.folder} -> {args.repo_id}@{args.revision or 'main'}: commit {info.oid}\n{info.commit_url}")
    return 0


def cmd_pull(args) -> int:
    from ..hub import pull

    path = pull(args.repo_id, revision=args.revision, local_dir=args.output)
    print(f"pulled {args.repo_id}@{args.revision or 'main'} -> {path}")
    return 0


# ---------------------------------------------------------------------------------------------------- card
def cmd_card(args) -> int:
    from .. import pipelines
    from ..pipelines.model_card import update_model_card

    class_name = str(pipelines.read_index(args.folder).get("_class_name", "SpeechLMPipeline"))
    cls = getattr(pipelines, class_name, None)
    if not (isinstance(cls, type) and class_name.endswith("Pipeline")):
        raise ValueError(f"{args.folder / pipelines.INDEX_FILE} names {class_name!r}, not an hf_slm pipeline class")
    card = update_model_card(cls.from_pretrained(args.folder), args.results, repo_id=args.repo_id)
    merged = f"merged {len(args.results)} result file(s) into {args.folder / 'eval_results.json'}, " if args.results else ""
    print(f"{merged}wrote {card}")
    return 0


# ---------------------------------------------------------------------------------------------------- env
#: The libraries a bug report needs the versions of (as `transformers env` and `diffusers-cli env` print theirs).
ENV_PACKAGES = ("torch", "torchaudio", "transformers", "datasets", "accelerate", "peft", "evaluate", "huggingface_hub",
                "safetensors", "tokenizers", "numpy", "soundfile", "pocketsphinx", "trl", "gradio")


def environment() -> dict:
    """What `hf-slm env` prints: platform, Python, hf_slm and its libraries' versions, espeak-ng, Festival, devices."""
    import platform
    from importlib import metadata

    import hf_slm

    info = {"hf_slm": hf_slm.__version__, "platform": platform.platform(), "python": platform.python_version()}
    for name in ENV_PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = "not installed"
    try:
        from ..data.espeak import espeak_version

        info["espeak-ng"] = espeak_version()
    except Exception as err:  # missing binary: say so, the report is still useful
        info["espeak-ng"] = f"unavailable ({' '.join(str(err).split())[:120]})"
    try:
        from ..data.festival import festival_version

        info["festival"] = festival_version()
    except Exception as err:  # optional backend: say so
        info["festival"] = f"unavailable ({' '.join(str(err).split())[:120]})"
    import torch

    info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"
    info["torch threads"] = torch.get_num_threads()
    return info


def cmd_env(args) -> int:
    info = environment()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print("Copy-and-paste the text below in your issue.\n")
        print("\n".join(f"- {key}: {value}" for key, value in info.items()))
    return 0


# ---------------------------------------------------------------------------------------------------- main
def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("hf_slm")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-slm", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="text file -> speech dataset (espeak-ng or Festival, word timestamps)")
    p.add_argument("--texts", default="builtin", help="'builtin', 'fortunes', 'wordnet', 'open-train', 'open-eval' (the held-out split of the last two) or a text file (one sentence a line)")
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many sentences")
    p.add_argument("--voices", type=csv_list(str), default=["en-us"], help="comma-separated voices: espeak-ng ones "
                   "('en-us', 'en-gb+f3'), Festival ones ('festival:kal_diphone'), or 'english' (every espeak-ng English "
                   "voice and variant) and 'festival' (every Festival English voice)")
    p.add_argument("--rates", type=csv_list(positive_int), default=[175], help="comma-separated speaking rates (words/min)")
    p.add_argument("--pitches", type=csv_list(number(int, 0, 99, what="a pitch in [0, 99]")), default=[50], help="comma-separated pitches (0-99)")
    p.add_argument("--assignment", default="cycle", choices=["cycle", "random", "product"])
    p.add_argument("--sampling-rate", type=sampling_rate_type, default=16000)
    p.add_argument("--num-proc", type=positive_int, default=1)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--output", required=True, help="dataset folder (datasets.save_to_disk)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("fit-tokenizer", help="dataset -> fitted k-means unit tokenizer")
    p.add_argument("--dataset", required=True, type=existing_path, help="folder from `hf-slm synth` / save_to_disk, or a folder of audio files")
    p.add_argument("--audio-column", default="audio")
    p.add_argument("--frontend", choices=["mfcc", "ssl"], default="mfcc")
    p.add_argument("--ssl-model", default=None, help="HuBERT / WavLM / wav2vec 2.0 folder or Hub id (--frontend ssl)")
    p.add_argument("--layer", type=non_negative_int, default=6, help="SSL hidden layer to quantise")
    p.add_argument("--num-units", type=number(int, 2, what="an int >= 2"), default=100)
    p.add_argument("--utterance-normalization", action="store_true",
                   help="normalise each utterance's features to zero mean / unit variance (CMVN) before k-means, "
                   "when fitting and when tokenising (less speaker-dependent units)")  # fmt: skip
    p.add_argument("--vtln", action="store_true",
                   help="vocal tract length normalisation (MFCC front end): tokenise each utterance at the mel warp "
                   "(0.80-1.20) that best fits the centroids; the fit alternates warp search and k-means")  # fmt: skip
    p.add_argument("--vtln-iterations", type=non_negative_int, default=2, help="warp-search-and-refit rounds (--vtln)")
    p.add_argument("--speaker-column", default=None,
                   help="with --vtln: fit on one warp per value of this column (a speaker id) instead of per utterance")
    p.add_argument("--vtln-tokenization", choices=["search", "unwarped"], default="search",
                   help="with --vtln: how the fitted tokenizer reads speech, at each utterance's searched warp or "
                   "unwarped with the warp-normalised codebook (kept within-speaker ABX on the default's "
                   "recipe)")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--max-frames", type=positive_int, default=500_000, help="subsample at most this many frames for k-means")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--output", required=True)
    p.set_defaults(func=cmd_fit_tokenizer)

    p = sub.add_parser("fit-word-lm", help="texts -> a word n-gram LM (Kneser-Ney, ARPA) for speech-LLM transcription",
                       description="Fit an interpolated Kneser-Ney word n-gram LM and write it as ARPA (gzipped for "
                       ".arpa.gz). Put it in a speech-LLM variant's processor/ folder as word_lm.arpa.gz, or load it "
                       "with SpeechLLMProcessor.set_word_lm. See docs/speech_llm.md.")  # fmt: skip
    p.add_argument("--texts", type=csv_list(str), required=True,
                   help="comma-separated sources: text files (one text a line), 'open-train', 'fortunes', 'wordnet', "
                   "'wordnet-definitions'")  # fmt: skip
    p.add_argument("--order", type=positive_int, default=3)
    p.add_argument("--min-count", type=positive_int, default=2, help="prune n-grams (order >= 2) seen fewer times")
    p.add_argument("--vocabulary", type=existing_file, default=None,
                   help="words to give a probability though no text holds them: one a line, first field (a "
                   "processor's lexicon.txt)")  # fmt: skip
    p.add_argument("--output", type=Path, required=True, help="FILE.arpa or FILE.arpa.gz")
    p.set_defaults(func=cmd_fit_word_lm)

    p = sub.add_parser("pretrain-encoder", help="HuBERT-style iterations: MFCC k-means -> encoder -> k-means -> ...",
                       description="Run (or resume) HuBERT's pre-training schedule. CONFIG.json sets the fields of "
                       "SpeechDataArguments, EncoderPretrainingArguments and transformers.TrainingArguments; flags "
                       "after it override one (e.g. --max_steps 50). See docs/ssl_encoder.md.")  # fmt: skip
    p.add_argument("config", type=existing_file, help="JSON file (examples/ssl_encoder/config_tiny.json)")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="--field value pairs overriding the JSON")
    p.set_defaults(func=cmd_pretrain_encoder)

    p = sub.add_parser("tokenize", help="audio files or a dataset -> units, or codes [Q, T] for a codec (JSONL or dataset)")
    p.add_argument("inputs", nargs="*", type=existing_file, help="audio files")
    p.add_argument("--tokenizer", "--pipeline", dest="tokenizer", default="default",
                   help="tokenizer folder, pipeline folder / Hub id, or an embedded name ('default')")  # fmt: skip
    p.add_argument("--dataset", default=None, type=existing_path, help="dataset folder instead of files")
    p.add_argument("--audio-column", default="audio")
    p.add_argument("--deduplicate", action="store_true", help="collapse repeated units and write their durations")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--num-proc", type=positive_int, default=1, help="datasets.map processes (--dataset); they share the CPU's threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--output", required=True, help="JSONL file (files) or dataset folder (--dataset)")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("split-audio", help="long recordings -> utterance wavs cut at pauses (Silero VAD)")
    p.add_argument("inputs", nargs="+", type=existing_file, help="audio files (wav, flac, ogg)")
    p.add_argument("--min-silence-ms", type=positive_int, default=300, help="a pause at least this long ends an utterance")
    p.add_argument("--max-utterance-s", type=positive_float, default=20.0, help="longer speech is cut at its longest pause")
    p.add_argument("--threshold", type=probability, default=0.5, help="speech probability threshold")
    p.add_argument("--output", required=True, help="folder: <name>_000.wav ... + metadata.jsonl (an audiofolder)")
    p.set_defaults(func=cmd_split_audio)

    p = sub.add_parser("info", help="describe a pipeline folder, Hub id, or component folder")
    add_pipeline_argument(p, "default", "a variant folder, Hub id, embedded name or component folder (default: default)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="run a pipeline end to end on espeak-ng speech; writes wav + PNG")
    p.add_argument("--pipeline", default="default")
    p.add_argument("--threads", type=non_negative_int, default=1,
                   help="torch CPU threads (0: torch's choice); the default's small models run fastest on one, "
                        "see docs/benchmarks.md")  # fmt: skip
    p.add_argument("--text", default=DEMO_TEXT)
    p.add_argument("--voice", default="en-us", help="voice of the input speech: espeak-ng, or festival:<name> (human-derived)")
    p.add_argument("--max-new-tokens", type=positive_int, default=150)
    p.add_argument("--temperature", type=positive_float, default=0.8)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--output", default="demo_out")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("chat", help="one answer of an instruct or speech-LLM variant: text / audio in, text (+ wav) out")
    add_pipeline_argument(p, None, "variant folder, Hub id or embedded name (SpokenChatPipeline or SpeechLLMPipeline)")
    p.add_argument("--text", default=None, help="the user's text")
    p.add_argument("--audio", type=existing_file, default=None, help="the user's speech (wav, flac, ogg, mp3)")
    p.add_argument("--output", default=None, help="write the spoken answer to this wav file")
    p.add_argument("--max-new-tokens", type=positive_int, default=128)
    p.add_argument("--threads", type=non_negative_int, default=1, help="torch CPU threads (0: torch's choice)")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("tts", help="zero-shot TTS: text in the voice of a prompt clip (a VallEPipeline variant) -> wav")
    p.add_argument("--pipeline", default="tts-default",
                   help="VallEPipeline variant folder or Hub id (default: the embedded tts-default)")
    p.add_argument("--text", required=True, help="what to say")
    p.add_argument("--prompt-audio", required=True, type=existing_file, help="a ~3 s clip of the voice (wav, flac, ...)")
    p.add_argument("--prompt-text", required=True, help="the prompt clip's transcript (VALL-E reads its phonemes first)")
    p.add_argument("--language", default="en-us", help="espeak-ng voice / language of the phonemizer")
    p.add_argument("--max-new-frames", type=positive_int, default=None, help="most codec frames to generate")
    p.add_argument("--min-new-frames", type=positive_int, default=None,
                   help="fewest codec frames before the end may be chosen (default: half the text at the prompt's pace)")
    p.add_argument("--temperature", type=positive_float, default=1.0)
    p.add_argument("--top-p", type=number(float, 0.0, 1.0, exclusive_minimum=True, what="a number in (0, 1]"), default=0.8)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--threads", type=non_negative_int, default=1, help="torch CPU threads (0: torch's choice)")
    p.add_argument("--output", required=True, type=Path, help="wav file to write (atomically)")
    p.set_defaults(func=cmd_tts)

    p = sub.add_parser("env", help="versions of hf_slm, Python, torch, transformers, ... espeak-ng and Festival, for a bug report")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("card", help="merge `hf-slm evaluate` results into a local variant's eval_results.json and "
                       "re-render its model card (README.md)")  # fmt: skip
    p.add_argument("folder", type=existing_folder_or_embedded, help="a variant folder, or an embedded variant's name")
    p.add_argument("--results", nargs="*", type=existing_file, default=[],
                   help="JSON files written by `hf-slm evaluate ... --output` (none: re-render the card only)")  # fmt: skip
    p.add_argument("--repo-id", default=None,
                   help="the name the card's loading code uses (default: the embedded name, else the folder's)")  # fmt: skip
    p.set_defaults(func=cmd_card)

    p = sub.add_parser("push", help="upload a pipeline variant or component folder to the Hub (honours HF_ENDPOINT)")
    p.add_argument("folder", type=existing_folder_or_embedded,
                   help="folder written by save_pretrained (safetensors weights only), or an embedded variant's name")
    p.add_argument("repo_id", help="namespace/name; the repo is created when missing")
    p.add_argument("--revision", default=None, help="branch to commit to (created from main when missing)")
    p.add_argument("--private", action="store_true", default=None, help="create the repo private")
    p.add_argument("--commit-message", default=None)
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("pull", help="download a variant or component from the Hub into a folder")
    p.add_argument("repo_id")
    p.add_argument("--revision", default=None, help="branch, tag or commit id (default: main)")
    p.add_argument("--output", required=True, help="folder to write the files into")
    p.set_defaults(func=cmd_pull)

    from .convert import add_convert_parser  # convert kmeans / unit-hifigan / seamless / slamkit / variant
    from .evaluate import add_evaluate_parser  # evaluate pairs / build-pairs / abx / resynthesis / generation

    add_convert_parser(sub)
    add_evaluate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Any failure is one line on stderr (``hf-slm: error: ...``) and exit status 1; ``--debug``
    shows the traceback instead; Ctrl-C stops with status 130. Argument errors are argparse's (status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    merge_pipeline_argument(args)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{parser.prog}: error: {message} (--debug shows the traceback)", file=sys.stderr)
        return 1

