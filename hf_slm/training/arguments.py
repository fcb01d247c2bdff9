"""What the training scripts in `examples/` share: a JSON-then-flags argument parser and the speech they train on.

Every script reads dataclasses with `HfArgumentParser`, takes a `.json` file as its first argument for defaults (flags
after it override one value), and trains on either a saved `datasets` folder or espeak-ng speech synthesised from a
text source, split into train / held-out utterances. Keeping that here means one behaviour (and one set of errors)
for the pre-training, codec and vocoder scripts.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import HfArgumentParser, TrainingArguments

from .launch import data_parallel_defaults


def csv_list(text: str, kind=str) -> list:
    """`"a,b, c"` -> `["a", "b", "c"]` (each item converted with `kind`; empty items dropped)."""
    return [kind(x.strip()) for x in text.split(",") if x.strip()]


def read_json_config(spec) -> dict:
    """The JSON object of a ``script.py config.json [--flags]`` configuration; each problem (not ``.json``, missing,
    not UTF-8 JSON, not an object) is a ValueError / FileNotFoundError that names the file."""
    path = Path(spec)
    if path.suffix != ".json":
        raise ValueError(f"{spec}: the configuration must be a .json file (its --flags may follow it)")
    if not path.is_file():
        raise FileNotFoundError(f"configuration {spec} does not exist")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{spec} is not a JSON configuration: {err}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{spec}: expected a JSON object of argument names and values, got {type(config).__name__}")
    return config


def parse_json_and_flags(dataclass_types, argv: list[str]) -> tuple:
    """One instance per dataclass in `dataclass_types`, from `argv` = `[config.json] [--flag value ...]`.

    The JSON file gives defaults (a key no dataclass knows raises, naming it) and flags after it override them. A
    `TrainingArguments` among the types comes back with `remove_unused_columns=False` (collators read raw columns),
    without CUDA `dataloader_pin_memory=False`, and defaults fitted to a multi-process launch
    (`hf_slm.training.launch.data_parallel_defaults`: gloo DDP on a CPU machine, or a `LaunchError`).
    """
    parser = HfArgumentParser(dataclass_types)
    if any(issubclass(t, TrainingArguments) for t in parser.dataclass_types):
        parser.set_defaults(**data_parallel_defaults())
    if argv and not argv[0].startswith("-"):  # the configuration file: named in every error about it
        config = read_json_config(argv[0])
        known = {f.name for cls in parser.dataclass_types for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"{argv[0]}: unknown argument(s) {unknown}")
        parser.set_defaults(**config)
        for action in parser._actions:
            if action.dest in config:
                action.required = False
        argv = argv[1:]
    parsed = list(parser.parse_args_into_dataclasses(args=argv))
    for i, value in enumerate(parsed):
        if isinstance(value, TrainingArguments):
            updates = {"remove_unused_columns": False}
            if not torch.cuda.is_available():
                updates["dataloader_pin_memory"] = False
            parsed[i] = dataclasses.replace(value, **updates)
    return tuple(parsed)


@dataclass
class SpeechDataArguments:
    """Where the training speech comes from: a saved dataset, or espeak-ng speech of a text source."""

    dataset_path: str | None = field(
        default=None,
        metadata={"help": "A `datasets` folder with an audio column (`hf-slm synth`, `save_to_disk`; a DatasetDict "
                  "uses its train / validation|test|eval splits). Unset: synthesise speech from `text_source`."},
    )
    audio_column: str = field(default="audio", metadata={"help": "Column with the audio (datasets' Audio feature)."})
    text_source: str = field(default="builtin", metadata={"help": "'builtin', 'fortunes', 'wordnet' or a text file."})
    num_sentences: int = field(default=200, metadata={"help": "Sentences to synthesise (train + eval)."})
    voices: str = field(default="en-us,en-us+f3,en-gb+m3", metadata={"help": "Comma-separated espeak-ng voices."})
    rates: str = field(default="150,175,200", metadata={"help": "Comma-separated speaking rates (words/min)."})
    pitches: str = field(default="50", metadata={"help": "Comma-separated base pitches (0-99)."})
    synthesis_num_proc: int = field(default=1, metadata={"help": "espeak-ng worker processes."})
    num_eval_utterances: int = field(
        default=10, metadata={"help": "Held-out utterances when the dataset has no eval split (at most a tenth)."}
    )
    units_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Where the units and the maps after them are cached (datasets' .arrow files). Unset: "
                  "$HF_DATASETS_CACHE/hf_slm_units. The input dataset's folder is never written to."},
    )


def load_speech_splits(data_args: SpeechDataArguments, seed: int, sampling_rate: int | None = None):
    """`(train, eval)` datasets with `data_args.audio_column`, decoded at `sampling_rate` when given.

    A saved DatasetDict with a validation / test / eval split keeps it; otherwise `num_eval_utterances` (at most a
    tenth, at least one) are held out at random with `seed`.
    """
    if data_args.dataset_path:
        ds = datasets.load_from_disk(data_args.dataset_path)
        eval_split = None
        if isinstance(ds, datasets.DatasetDict):
            if "train" not in ds:
                raise ValueError(f"{data_args.dataset_path} has splits {list(ds)}; a 'train' split is needed")
            eval_split = next((ds[s] for s in ("validation", "test", "eval") if s in ds), None)
            ds = ds["train"]
        splits = [ds] if eval_split is None else [ds, eval_split]
    else:
        from ..data import load_text_corpus, synthesize_dataset

        texts = load_text_corpus(data_args.text_source, limit=data_args.num_sentences, seed=seed)
        ds = synthesize_dataset(
            texts,
            voices=csv_list(data_args.voices),
            rates=csv_list(data_args.rates, int),
            pitches=csv_list(data_args.pitches, int),
            sampling_rate=sampling_rate or 16000,
            assignment="random",
            seed=seed,
            num_proc=data_args.synthesis_num_proc,
            show_progress=False,
        )
        splits = [ds]
    for split in splits:
        if data_args.audio_column not in split.column_names:
            raise ValueError(f"the dataset has no column {data_args.audio_column!r}; columns: {split.column_names}")
    if sampling_rate is not None:
        splits = [s.cast_column(data_args.audio_column, datasets.Audio(sampling_rate=sampling_rate)) for s in splits]
    if len(splits) == 2:
        return splits[0], splits[1]
    ds = splits[0]
    if len(ds) < 2:
        raise ValueError(f"the speech dataset has {len(ds)} utterance(s); need at least 2 (train + eval)")
    n_eval = max(1, min(data_args.num_eval_utterances, len(ds) // 10))
    # `train_test_split(seed=seed)`'s partition, with the index mappings kept in memory: its own would write index
    # cache files into the user's dataset folder (and it refuses keep_in_memory for a dataset on disk)
    permutation = np.random.default_rng(seed).permutation(len(ds))
    return ds.select(permutation[n_eval:], keep_in_memory=True), ds.select(permutation[:n_eval], keep_in_memory=True)


__all__ = ["SpeechDataArguments", "csv_list", "load_speech_splits", "parse_json_and_flags", "read_json_config"]


def load_codec(spec: str, num_codebooks: int | None = None):
    """The codec an example trains over: `"random"` (a tiny seeded RVQ codec: 4 x 64 codes at 50 Hz, for smoke runs),
    a saved codec folder (`AutoModel`), or a transformers codec checkpoint (`CodecModel.from_codec_pretrained`:
    EnCodec, DAC, Mimi, X-codec; `num_codebooks` keeps that many levels)."""
    from transformers import AutoModel

    from ..models.codec import CodecModel, RVQCodecConfig, RVQCodecModel

    if spec == "random":
        torch.manual_seed(0)
        return RVQCodecModel(RVQCodecConfig(upsampling_ratios=(8, 5, 4, 2), num_filters=8, hidden_size=32,
                                            num_codebooks=4, codebook_size=64)).eval()  # fmt: skip
    if Path(spec).is_dir():
        return AutoModel.from_pretrained(spec).eval()
    return CodecModel.from_codec_pretrained(spec, num_codebooks=num_codebooks)
