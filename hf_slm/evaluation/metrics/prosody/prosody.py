"""pGSLM's prosody metrics of sampled continuations: min-MAE of log-F0, prompt/continuation consistency, expressiveness.

Self-contained `evaluate` module (numpy only): ``evaluate.load("hf_slm/evaluation/metrics/prosody")`` or
``hf_slm.evaluation.load_metric("prosody")``. Inputs are F0 contours, so the metric is checkable by hand;
`f0_from_audio` turns a waveform into a contour with hf_slm's autocorrelation tracker, WORLD's harvest / dio
(pyworld) or Praat's (parselmouth).
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Prosody of continuations (pGSLM, Kharitonov et al., 2022), on F0 contours in Hz with 0 = unvoiced, all at one frame
rate. Per item there is a prompt, N sampled continuations and the reference (true) continuation.
- min-MAE: for each sample, the mean |log F0(sample) - log F0(reference)| over the frames voiced in both (contours cut
  to the shorter); the minimum over the N samples; averaged over items. Lower is better; 0 = one sample matches.
- consistency: Pearson correlation, across items, between the prompt's mean log-F0 and the continuation's (the mean
  over samples of each sample's mean voiced log-F0). Does the model keep the prompt's register? NaN with fewer than
  two items or a constant side (undefined).
- expressiveness: std of the sample's voiced log-F0 / std of the reference's, averaged over samples and items. 1 =
  as lively as the reference; below 1 = flatter (monotonous), above = wilder.
"""

_KWARGS_DESCRIPTION = """
Args:
    prompts (`list[list[float]]`): F0 contour of each item's prompt (Hz, 0 = unvoiced).
    continuations (`list[list[list[float]]]`): the N sampled continuations' F0 contours of each item.
    references (`list[list[float]]`): F0 contour of each item's reference continuation.
Returns:
    min_mae (`float`), consistency (`float`), expressiveness (`float`), and per item
    min_mae_per_item / expressiveness_per_item (`list[float]`).
"""


def _log_f0(contour, name: str) -> np.ndarray:
    contour = np.asarray(contour, dtype=np.float64)
    if contour.ndim != 1:
        raise ValueError(f"{name} must be a 1-D F0 contour, got shape {contour.shape}")
    if np.any(contour < 0) or not np.all(np.isfinite(contour)):
        raise ValueError(f"{name} must hold finite F0 values >= 0 (Hz, 0 = unvoiced)")
    with np.errstate(divide="ignore"):
        return np.where(contour > 0, np.log(np.where(contour > 0, contour, 1.0)), np.nan)


def _voiced(log_f0: np.ndarray, name: str) -> np.ndarray:
    voiced = log_f0[~np.isnan(log_f0)]
    if voiced.size == 0:
        raise ValueError(f"{name} has no voiced frame (every F0 is 0)")
    return voiced


def log_f0_mae(prediction, reference) -> float:
    """Mean |log F0 difference| over the frames voiced in both contours (cut to the shorter); NaN if none is."""
    a, b = _log_f0(prediction, "prediction"), _log_f0(reference, "reference")
    n = min(len(a), len(b))
    both = ~np.isnan(a[:n]) & ~np.isnan(b[:n])
    return float(np.abs(a[:n][both] - b[:n][both]).mean()) if both.any() else float("nan")


def min_mae(samples, reference) -> float:
    """The smallest `log_f0_mae` of the samples against the reference (samples sharing no voiced frame are skipped)."""
    values = [log_f0_mae(sample, reference) for sample in samples]
    if not values or all(np.isnan(values)):
        raise ValueError("no sample shares a voiced frame with the reference; min-MAE is undefined")
    return float(np.nanmin(values))


def expressiveness(samples, reference) -> float:
    """Mean over samples of std(voiced log-F0 of the sample) / std(voiced log-F0 of the reference)."""
    reference_std = float(np.std(_voiced(_log_f0(reference, "reference"), "reference")))
    if reference_std == 0:
        raise ValueError("the reference's log-F0 is constant (std 0); expressiveness is undefined")
    return float(np.mean([np.std(_voiced(_log_f0(s, "sample"), "sample")) for s in samples]) / reference_std)


def consistency(prompts, continuations) -> float:
    """Pearson correlation across items of the prompt's mean log-F0 and the samples' mean log-F0 (NaN if undefined)."""
    x = [float(np.mean(_voiced(_log_f0(p, f"prompt {i}"), f"prompt {i}"))) for i, p in enumerate(prompts)]
    y = [float(np.mean([np.mean(_voiced(_log_f0(s, f"sample of item {i}"), f"sample of item {i}")) for s in samples]))
         for i, samples in enumerate(continuations)]  # fmt: skip
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def prosody(prompts, continuations, references) -> dict:
    """All three metrics over items; see the module's description."""
    if not (len(prompts) == len(continuations) == len(references)) or len(prompts) == 0:
        raise ValueError(
            f"need as many prompts ({len(prompts)}), continuation lists ({len(continuations)}) and references "
            f"({len(references)}), at least one"
        )
    for i, samples in enumerate(continuations):
        if len(samples) == 0:
            raise ValueError(f"item {i} has no sampled continuation")
    maes = [min_mae(s, r) for s, r in zip(continuations, references)]
    ratios = [expressiveness(s, r) for s, r in zip(continuations, references)]
    return {
        "min_mae": float(np.mean(maes)),
        "consistency": consistency(prompts, continuations),
        "expressiveness": float(np.mean(ratios)),
        "min_mae_per_item": maes,
        "expressiveness_per_item": ratios,
    }


#: F0 trackers of `f0_from_audio`: hf_slm's own (no dependency), WORLD's two (`pip install pyworld`) and Praat's
#: autocorrelation method (`pip install praat-parselmouth`); the last three are in the ``hf_slm[eval]`` extra.
F0_METHODS = ("autocorrelation", "harvest", "dio", "parselmouth")


def f0_from_audio(waveform, sampling_rate: int, frame_rate: float = 50.0, method: str = "autocorrelation",
                  f0_min: float = 60.0, f0_max: float = 400.0) -> list[float]:  # fmt: skip
    """F0 contour (Hz, 0 = unvoiced) of a mono waveform, `frame_rate` frames per second.

    Every `method` (see `F0_METHODS`) returns the same frames: frame `t` is centred on `(t + 0.5) / frame_rate`
    seconds and there are `ceil(duration * frame_rate)` of them (the unit tokenizers' frames), so contours from
    different trackers compare frame by frame. `autocorrelation` is hf_slm's tracker (`estimate_f0`); `harvest` and
    `dio` are WORLD's (pyworld; harvest is slower and more robust); `parselmouth` is Praat's "To Pitch (ac)".
    """
    waveform = np.ascontiguousarray(waveform, dtype=np.float64)  # pyworld needs C-contiguous float64
    if waveform.ndim != 1 or waveform.size == 0:
        raise ValueError(f"f0_from_audio takes one non-empty mono waveform [T], got shape {waveform.shape}")
    if method not in F0_METHODS:
        raise ValueError(f"unknown F0 method {method!r}; choose from {F0_METHODS}")
    if method == "autocorrelation":
        from hf_slm.models.speech_lm.prosody_multistream_speech_lm import estimate_f0  # lazy: the module loads without

        return estimate_f0(waveform.astype(np.float32), sampling_rate, frame_rate=frame_rate, f0_min=f0_min,
                           f0_max=f0_max).tolist()  # fmt: skip
    num_frames = int(np.ceil(len(waveform) * frame_rate / sampling_rate))
    centres = (np.arange(num_frames) + 0.5) / frame_rate
    if method == "parselmouth":
        parselmouth = _import("parselmouth", "praat-parselmouth")
        pitch = parselmouth.Sound(waveform, sampling_frequency=sampling_rate).to_pitch_ac(
            time_step=1.0 / frame_rate, pitch_floor=f0_min, pitch_ceiling=f0_max)  # fmt: skip
        times, f0 = pitch.xs(), pitch.selected_array["frequency"]
    else:
        tracker = getattr(_pyworld(), method)
        f0, times = tracker(waveform, sampling_rate, f0_floor=f0_min, f0_ceil=f0_max, frame_period=1000.0 / frame_rate)
    return _nearest_frames(np.asarray(times), np.asarray(f0), centres, 0.5 / frame_rate).tolist()


def _nearest_frames(times: np.ndarray, f0: np.ndarray, centres: np.ndarray, tolerance: float) -> np.ndarray:
    """`f0` (at sorted `times`) read at `centres`: the nearest tracker frame within `tolerance` seconds, else 0."""
    if len(times) == 0:
        return np.zeros(len(centres))
    right = np.clip(np.searchsorted(times, centres), 0, len(times) - 1)
    left = np.clip(right - 1, 0, len(times) - 1)
    index = np.where(np.abs(times[left] - centres) <= np.abs(times[right] - centres), left, right)
    near = np.abs(times[index] - centres) <= tolerance + 1e-9
    return np.where(near, np.nan_to_num(f0[index]), 0.0)


def _import(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"this F0 method needs {package}: pip install {package} (or hf_slm[eval])") from None


def _pyworld():
    """pyworld's compiled module. pyworld 0.3.5 (the latest) imports `pkg_resources` in its `__init__`, which
    setuptools >= 81 removed; the extension itself does not need it, so it is loaded directly when that fails."""
    try:
        import pyworld

        return pyworld
    except ModuleNotFoundError as err:
        if err.name != "pkg_resources":
            raise ImportError("this F0 method needs pyworld: pip install pyworld (or hf_slm[eval])") from None
    import glob
    import importlib.util
    import sys

    if "pyworld.pyworld" in sys.modules:
        return sys.modules["pyworld.pyworld"]
    location = importlib.util.find_spec("pyworld").submodule_search_locations[0]
    spec = importlib.util.spec_from_file_location("pyworld.pyworld", glob.glob(f"{location}/pyworld*.so")[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["pyworld.pyworld"] = module
    return module


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Prosody(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Kharitonov et al., 2022, Text-Free Prosody-Aware Generative Spoken Language Modeling",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"prompts": datasets.Sequence(datasets.Value("float32")),
                 "continuations": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
                 "references": datasets.Sequence(datasets.Value("float32"))}
            ),  # fmt: skip
        )

    def _compute(self, prompts, continuations, references):
        return prosody(prompts, continuations, references)


__all__ = [
    "F0_METHODS",
    "Prosody",
    "consistency",
    "expressiveness",
    "f0_from_audio",
    "log_f0_mae",
    "min_mae",
    "prosody",
]
