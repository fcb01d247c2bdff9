"""textlesslib / fairseq k-means quantisers -> a [`UnitEncoderModel`] folder (SSL front end + centroids).

textlesslib (`textless/data/quantizer_*`) and fairseq (`examples/textless_nlp/gslm/speech2unit`) store the k-means
quantiser of their HuBERT / mHuBERT units as a joblib pickle of a fitted scikit-learn `MiniBatchKMeans`; units are
`argmin_k ||x - c_k||^2` over `cluster_centers_` of the raw (not standardised) features of one encoder layer. Only
`cluster_centers_` is read here.

Unpickling a file can run arbitrary code, so it happens only with `trust_pickle=True`, and then through a
restricted unpickler: it resolves only an allow-list of numpy / joblib reconstructors and replaces every
scikit-learn k-means class by an inert record of its pickled attributes (no scikit-learn code runs, and pickles of
old scikit-learn versions load without that version installed). Anything else in the pickle is refused.
A `.npy` array of centroids (`[num_units, dim]`) needs no pickle and no flag.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from ..models.unit_encoder import SpeechFeatureExtractor, UnitEncoderModel

#: (module, name) pairs the restricted unpickler resolves; `numpy.core.*` is read as `numpy._core.*`.
_ALLOWED_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
    ("_codecs", "encode"),
}
#: scikit-learn classes whose pickled state is kept as a plain record.
_KMEANS_CLASSES = {"MiniBatchKMeans", "KMeans"}


class PickledEstimator:
    """Inert stand-in for a pickled scikit-learn estimator: it stores the pickled attributes and nothing else."""

    source_class = ""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"unexpected pickled state for {self.source_class}: {type(state).__name__}")
        self.__dict__.update(state)


def _restricted_find_class(module: str, name: str):
    if module.startswith("sklearn.cluster") and name in _KMEANS_CLASSES:
        return type(name, (PickledEstimator,), {"source_class": f"{module}.{name}"})
    if module.startswith("numpy.core"):
        module = "numpy._core" + module[len("numpy.core") :]
    if (module, name) not in _ALLOWED_GLOBALS:
        raise pickle.UnpicklingError(
            f"refusing to unpickle {module}.{name}: only scikit-learn k-means estimators and numpy arrays are "
            "allowed in a k-means file"
        )
    return _import(module, name)


def _import(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


def load_kmeans_centroids(path: str | os.PathLike, trust_pickle: bool = False) -> np.ndarray:
    """`cluster_centers_` `[num_units, dim]` (float32) of a joblib-pickled k-means, or the array of a `.npy` file.

    Args:
        path: the joblib file (textlesslib's `*.bin` / fairseq's `km.bin`, any joblib compression) or a `.npy`.
        trust_pickle: required for joblib / pickle files, which can run code when loaded (see the module docstring
            for what the restricted unpickler allows).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"k-means file {path} does not exist")
    if path.suffix == ".npy":
        centers = np.load(path, allow_pickle=False)
    else:
        if not trust_pickle:
            raise ValueError(
                f"{path} is a pickle (joblib), and unpickling can run arbitrary code: pass trust_pickle=True "
                "(CLI: --trust-pickle) if you trust its source, or convert its cluster_centers_ to a .npy file"
            )
        centers = getattr(_restricted_joblib_load(path), "cluster_centers_", None)
        if centers is None:
            raise ValueError(f"{path} holds no fitted k-means (no cluster_centers_)")
    centers = np.asarray(centers)
    if centers.ndim != 2 or centers.shape[0] < 1 or not np.issubdtype(centers.dtype, np.floating):
        raise ValueError(f"k-means centroids must be a float [num_units, dim] array, got {centers.dtype} {centers.shape}")
    return centers.astype(np.float32)


def _restricted_joblib_load(path: Path):
    try:
        from joblib.numpy_pickle import NumpyUnpickler, _validate_fileobject_and_memmap
    except ImportError as err:
        raise ImportError("reading a joblib k-means file needs joblib: pip install joblib") from err

    class RestrictedNumpyUnpickler(NumpyUnpickler):
        def find_class(self, module, name):
            return _restricted_find_class(module, name)

    with open(path, "rb") as file, _validate_fileobject_and_memmap(file, str(path), None) as (fobj, _):
        if isinstance(fobj, str):
            raise ValueError(f"{path} was written by joblib < 0.10 (companion files), which is not supported")
        try:
            unpickler = RestrictedNumpyUnpickler(str(path), fobj, ensure_native_byte_order=True)
        except TypeError:  # joblib < 1.5 has no ensure_native_byte_order
            unpickler = RestrictedNumpyUnpickler(str(path), fobj)
        return unpickler.load()


def convert_kmeans(
    kmeans_path: str | os.PathLike,
    ssl_model: str | os.PathLike,
    layer: int,
    output_dir: str | os.PathLike,
    trust_pickle: bool = False,
    do_normalize: bool | None = None,
    **load_kwargs,
) -> UnitEncoderModel:
    """Convert a textlesslib / fairseq k-means quantiser plus its SSL encoder into a tokenizer folder.

    Args:
        kmeans_path: joblib-pickled `MiniBatchKMeans` / `KMeans` (needs `trust_pickle=True`) or a `.npy` of centroids.
        ssl_model: the encoder the k-means was fitted on, as a transformers checkpoint (Hub id or folder), e.g.
            `facebook/hubert-base-ls960` or `utter-project/mHuBERT-147`.
        layer: the encoder layer whose output was clustered (textlesslib's `layer`, fairseq's `--layer`; 1-based,
            which is `hidden_states[layer]` in transformers).
        output_dir: where the tokenizer folder is written (`config.json`, `model.safetensors`, and the
            `preprocessor_config.json` of a matching [`SpeechFeatureExtractor`]).
        trust_pickle: allow unpickling (see [`load_kmeans_centroids`]).
        do_normalize: whether the waveform is zero-mean / unit-variance normalised before the encoder. `None` reads
            the encoder's own feature-extractor config (HuBERT base: no; HuBERT large: yes), else `False`.
        load_kwargs: `revision`, `token`, `cache_dir`, `local_files_only` for the encoder download.

    Returns:
        The converted (fitted) [`UnitEncoderModel`], in eval mode.
    """
    centers = load_kmeans_centroids(kmeans_path, trust_pickle=trust_pickle)
    tokenizer = UnitEncoderModel.from_ssl_pretrained(str(ssl_model), layer, num_units=centers.shape[0], **load_kwargs)
    if centers.shape[1] != tokenizer.config.feature_dim:
        raise ValueError(
            f"the k-means centroids have dim {centers.shape[1]} but layer {layer} of {ssl_model} has "
            f"{tokenizer.config.feature_dim} features: wrong encoder or layer"
        )
    with torch.no_grad():
        tokenizer.cluster_centers.copy_(torch.from_numpy(centers))
        tokenizer.feature_mean.zero_()  # textlesslib clusters raw features: no standardisation
        tokenizer.feature_std.fill_(1.0)
        tokenizer.is_fitted.fill_(True)
    if do_normalize is None:
        do_normalize = _encoder_normalizes(str(ssl_model), load_kwargs)
    tokenizer.save_pretrained(output_dir, safe_serialization=True)
    SpeechFeatureExtractor(sampling_rate=tokenizer.config.sampling_rate, do_normalize=do_normalize).save_pretrained(
        output_dir
    )
    return tokenizer


def _encoder_normalizes(ssl_model: str, load_kwargs: dict) -> bool:
    from transformers import AutoFeatureExtractor

    try:
        extractor = AutoFeatureExtractor.from_pretrained(ssl_model, **load_kwargs)
    except (OSError, ValueError):
        return False
    return bool(getattr(extractor, "do_normalize", False))


__all__ = ["PickledEstimator", "convert_kmeans", "load_kmeans_centroids"]
