"""Speech -> units for training scripts: get a unit tokenizer (given, resumed or fitted) and add a `units` column.

The unit LM (`examples/pretraining`) and the unit vocoder (`examples/vocoder`) both train on the units of a speech
dataset; the tokenizer a run fits is saved atomically under its output folder, so a resumed run reuses the same one,
and the `units` column is a `datasets.map` cached under a fingerprint of (dataset, tokenizer weights, options).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch

from ..models.unit_encoder import SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel, default_plan
from .kmeans import fit_unit_tokenizer_on_dataset

logger = logging.getLogger(__name__)
SPEECH_TOKENIZER_DIR = "speech_tokenizer"


def load_or_fit_speech_tokenizer(
    source: str | None,
    train,
    output_dir,
    audio_column: str = "audio",
    num_units: int = 100,
    kmeans_max_frames: int = 200_000,
    seed: int = 0,
    device="cpu",
):
    """`(feature_extractor, tokenizer)` in eval mode on `device`, and saved to `output_dir/speech_tokenizer`.

    `source` is a tokenizer folder, a pipeline folder / Hub id, or `"default"` (the embedded pipeline's); `None`
    reuses the tokenizer an earlier run of this `output_dir` saved, or fits MFCC k-means with `num_units` on `train`.
    """
    saved = Path(output_dir) / SPEECH_TOKENIZER_DIR
    if source:
        from ..pipelines.loading import load_speech_tokenizer

        feature_extractor, tokenizer = load_speech_tokenizer(source)
        logger.info("speech tokenizer: loaded %s", source)
    elif (saved / "config.json").is_file():
        feature_extractor = SpeechFeatureExtractor.from_pretrained(saved)
        tokenizer = UnitEncoderModel.from_pretrained(saved)
        logger.info("speech tokenizer: reusing %s (fitted by an earlier run)", saved)
    else:
        tokenizer = UnitEncoderModel(UnitEncoderConfig(frontend="mfcc", num_units=num_units))
        feature_extractor = SpeechFeatureExtractor(sampling_rate=tokenizer.config.sampling_rate)
        tokenizer.to(device)
        # shuffled here with the index mapping in memory (the fit's own shuffle writes an index cache file
        # into the user's dataset folder)
        fit_unit_tokenizer_on_dataset(
            tokenizer, train.shuffle(seed=seed, keep_in_memory=True), feature_extractor, audio_column=audio_column,
            max_frames=kmeans_max_frames, seed=seed, shuffle=False, show_progress=False,
        )
        logger.info("speech tokenizer: fitted MFCC k-means with %d units", num_units)
    if not (saved / "config.json").is_file():
        from ..utils import atomic_save_directory

        def write(tmp):
            tokenizer.save_pretrained(tmp)
            feature_extractor.save_pretrained(tmp)

        saved.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_directory(saved, write)
    return feature_extractor, tokenizer.to(device).eval()


def tokenizer_fingerprint(tokenizer, *options) -> str:
    """A short hash of a tokenizer's config, weights and `options`: the `datasets` cache key of its units."""
    digest = hashlib.sha256(tokenizer.config.to_json_string().encode() + repr(options).encode())
    for name, tensor in sorted(tokenizer.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class UnitTokenization:
    """`datasets.map(batched=True)` function: audio -> `units` (one list of ints per utterance, padding removed);
    with `deduplicate`, runs of a unit collapse to one and `durations` holds their lengths (GSLM's dedup units).
    A codec tokenizer (`CodecModel`, `RVQCodecModel`) gives `codes` instead: per utterance `[Q, T]`, a list of Q lists.

    Units come from `UnitEncoderModel.tokenize`: each map batch is cut into length-sorted batches and spread
    over workers as `default_plan` picks for the tokenizer's device; `num_workers` caps the CPU workers (give each of
    `num_proc` processes its share of the cores). In a process forked by `datasets.map(num_proc=N)` torch runs one
    intra-op thread: OpenMP thread pools do not survive a fork (a multi-threaded op in the child hangs)."""

    def __init__(self, feature_extractor, tokenizer, audio_column: str, deduplicate: bool = False,
                 num_workers: int | None = None):  # fmt: skip
        if deduplicate and not hasattr(tokenizer, "deduplicate"):
            raise ValueError(
                f"deduplicate=True needs a unit tokenizer; {type(tokenizer).__name__} gives codec codes [Q, T], "
                "whose frames are not collapsed"
            )
        self.feature_extractor, self.tokenizer, self.audio_column = feature_extractor, tokenizer, audio_column
        self.deduplicate = deduplicate
        self.num_workers = num_workers
        self.batches = 0
        self._parent_pid = os.getpid()

    def __getstate__(self):
        """`datasets.map(num_proc=N)` pickles this function: the tokenizer travels as config + state dict (an SSL
        encoder's weight-norm parametrisation cannot be pickled as a module)."""
        state = self.__dict__.copy()
        tokenizer = state.pop("tokenizer")
        encoder = getattr(tokenizer, "ssl_encoder", None)
        dtype = next(encoder.parameters()).dtype if encoder is not None else None
        weights = {name: tensor.cpu() for name, tensor in tokenizer.state_dict().items()}
        state["_tokenizer"] = (type(tokenizer), tokenizer.config, weights, str(tokenizer.device), dtype)
        return state

    def __setstate__(self, state):
        if os.getpid() != state["_parent_pid"]:
            torch.set_num_threads(1)  # a forked process: before any op (see the class docstring)
        cls, config, weights, device, dtype = state.pop("_tokenizer")
        tokenizer = cls(config)
        tokenizer.load_state_dict(weights)
        if dtype is not None:
            tokenizer.ssl_encoder.to(dtype)
        state["tokenizer"] = tokenizer.to(device).eval()
        self.__dict__.update(state)

    @torch.no_grad()
    def __call__(self, batch):
        self.batches += 1
        if os.getpid() != self._parent_pid and torch.get_num_threads() > 1:
            torch.set_num_threads(1)
        inputs = self.feature_extractor(batch[self.audio_column], return_tensors="pt")
        values, mask = inputs["input_values"], inputs["attention_mask"]
        if not hasattr(self.tokenizer, "tokenize"):  # any other speech tokenizer: the shared `encode` interface
            device = self.tokenizer.device
            items = self.tokenizer.encode(values.to(device), attention_mask=mask.to(device)).unpadded()
            column = "codes" if items and items[0].dim() == 2 else "units"  # a codec's [Q, T] or [T] units
            return {column: [item.tolist() for item in items]}
        plan = default_plan(self.tokenizer.config, self.tokenizer.device, len(values), num_workers=self.num_workers)
        units = self.tokenizer.tokenize(values, attention_mask=mask, plan=plan)
        if not self.deduplicate:
            return {"units": [u.tolist() for u in units]}
        pairs = [self.tokenizer.deduplicate(u)[0] for u in units]
        return {"units": [u.tolist() for u, _ in pairs], "durations": [d.tolist() for _, d in pairs]}


def units_cache_dir(cache_dir=None) -> Path:
    """Where `tokenize_speech` caches units: `cache_dir`, else ``$HF_DATASETS_CACHE/hf_slm_units`` (never the input
    dataset's own folder, which `datasets.map` would otherwise fill with ``cache-*.arrow`` files)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE) / "hf_slm_units"


def tokenize_speech(ds, feature_extractor, tokenizer, audio_column: str = "audio", batch_size: int = 16,
                    split: str = "train", deduplicate: bool = False, keep_audio: bool = False,
                    cache_dir=None, num_proc: int | None = None):  # fmt: skip
    """`ds` with a `units` column (and `durations` when deduplicating; `codes` [Q, T] for a codec tokenizer), computed once by `datasets.map` and cached
    under a fingerprint of (dataset, tokenizer weights, options) in `units_cache_dir(cache_dir)`; the maps that
    follow on the result cache there too. The audio column is dropped unless `keep_audio` (a vocoder trains on both).
    `num_proc` processes share the CPU's torch threads as tokenisation workers (`UnitTokenization.num_workers`)."""
    key = tokenizer_fingerprint(tokenizer, audio_column, deduplicate, keep_audio)
    fingerprint = hashlib.sha256(f"{ds._fingerprint}-{key}".encode()).hexdigest()[:16]
    workers = max(1, torch.get_num_threads() // num_proc) if num_proc and num_proc > 1 else None
    function = UnitTokenization(feature_extractor, tokenizer, audio_column, deduplicate=deduplicate,
                                num_workers=workers)  # fmt: skip
    cache_file = None
    if ds.cache_files:  # a dataset on disk: cache beside our other caches, not in the user's folder
        folder = units_cache_dir(cache_dir)
        folder.mkdir(parents=True, exist_ok=True)
        cache_file = str(folder / f"units-{fingerprint}.arrow")
    out = ds.map(
        function,
        batched=True,
        batch_size=batch_size,
        remove_columns=[] if keep_audio else [audio_column],
        new_fingerprint=f"hf_slm-units-{fingerprint}",
        cache_file_name=cache_file,
        num_proc=num_proc if num_proc and num_proc > 1 else None,
        desc=f"speech -> units ({split})",
    )
    source = "computed" if function.batches else "loaded from the datasets cache"
    files = ", ".join(f["filename"] for f in out.cache_files) or "in memory"
    logger.info("units (%s): %s [%s]", split, source, files)
    return out


__all__ = [
    "SPEECH_TOKENIZER_DIR",
    "UnitTokenization",
    "load_or_fit_speech_tokenizer",
    "tokenize_speech",
    "tokenizer_fingerprint",
    "units_cache_dir",
]
