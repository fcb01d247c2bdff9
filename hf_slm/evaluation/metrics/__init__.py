"""The metrics of hf_slm, each a self-contained `evaluate` module in its own folder (``<name>/<name>.py``).

They load offline, by name through `load_metric` or by path through `evaluate.load`::

    >>> from hf_slm.evaluation import load_metric
    >>> load_metric("vert").compute(predictions=[[1, 2, 1, 2], [3, 4, 5, 6]], max_k=1)["auto_bleu"]
    0.5
"""

from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent

#: name -> (folder, configuration) of every shipped metric.
METRICS = {
    "pair_accuracy": ("pair_accuracy", None),
    "wer": ("error_rate", "wer"),
    "cer": ("error_rate", "cer"),
    "vert": ("vert", None),
    "abx": ("abx", None),
    "mel_distance": ("mel_distance", None),
    "si_snr": ("si_snr", None),
    "unit_perplexity": ("unit_perplexity", None),
    "prosody": ("prosody", None),
    "stoi": ("stoi", None),
    "pesq": ("pesq", None),  # needs the optional `pesq` package (hf_slm[eval])
    "speaker_similarity": ("speaker_similarity", None),  # needs resemblyzer (see its module)
    "dnsmos": ("dnsmos", None),  # needs speechmos + onnxruntime + librosa (hf_slm[eval]); a quality score
}


def metric_path(name: str) -> str:
    """Path of a shipped metric's script, for `evaluate.load(path)`."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; hf_slm ships {sorted(METRICS)}")
    folder = METRICS[name][0]
    return str(METRICS_DIR / folder / f"{folder}.py")


def load_metric(name: str, **kwargs):
    """`evaluate.load` of a shipped metric by name, without network (`wer`/`cer` pick `error_rate`'s configuration)."""
    import evaluate

    config = METRICS.get(name, (None, None))[1]
    return evaluate.load(metric_path(name), config, **kwargs)


__all__ = ["METRICS", "load_metric", "metric_path"]
