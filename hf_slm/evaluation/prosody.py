"""Prosody of speech continuations (pGSLM): sample continuations of prompts, vocode them, track their F0 and score
them against the true continuation with the `prosody` metric (min-MAE, consistency, expressiveness).

Each utterance is cut in two at a unit boundary: the prompt (its first `prompt_fraction`) and the reference (the
rest, the true continuation). The LM samples N continuations of the prompt's units; each is vocoded together with
the prompt (so the vocoder has the prompt as context) and the prompt's part is cut off again. F0 is tracked on the
original prompt audio, the original rest, and each vocoded continuation, all at 50 frames/s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .metrics.prosody.prosody import F0_METHODS, f0_from_audio, log_f0_mae, prosody

#: A continuation needs this many voiced frames (40 ms at 50 frames/s) to count: log-F0 std needs a few.
MIN_VOICED_FRAMES = 2


def _waveform(item) -> tuple[np.ndarray, int]:
    if isinstance(item, dict) and "array" in item and "sampling_rate" in item:
        return np.asarray(item["array"], dtype=np.float32), int(item["sampling_rate"])
    raise ValueError("prosody evaluation takes audio as {'array': waveform, 'sampling_rate': int} dicts")


def _usable(contour: list[float]) -> bool:
    return int(np.sum(np.asarray(contour) > 0)) >= MIN_VOICED_FRAMES


@torch.no_grad()
def evaluate_prosody(pipeline, audio, num_samples: int = 5, prompt_fraction: float = 0.5, temperature: float = 1.0,
                     max_new_tokens: int | None = None, f0_method: str = "autocorrelation",
                     speaker_similarity: bool = False, seed: int = 0) -> dict:  # fmt: skip
    """pGSLM's prosody metrics of a pipeline's continuations.

    Args:
        pipeline: a `SpeechLMPipeline` with a language model and a vocoder (or a codec-LM variant: codes `[Q, T]`
            are cut and continued along time, and the codec speaks them).
        audio: utterances as ``{"array", "sampling_rate"}`` dicts (vary their pitch, or consistency means little).
        num_samples: continuations sampled per prompt (min-MAE takes the best of them).
        max_new_tokens: continuation length in units; default the reference's length. At least half of it is
            forced (`min_new_tokens`), since LMs trained on short sentences like to stop at once.
        f0_method: one of `F0_METHODS`.
        speaker_similarity: also compare the voice of the prompt with that of the reference, the resynthesis and
            the samples (Resemblyzer speaker embeddings, the `speaker_similarity` metric; needs resemblyzer).

    Returns a JSON-able dict: ``min_mae``, ``consistency``, ``expressiveness``; ``reference_consistency`` (that of
    the true continuations) and ``resynthesis_mae`` (log-F0 MAE of the vocoded true units: what the units and
    vocoder keep of F0, a floor for min-MAE); ``voiced_fraction`` of the references, resyntheses and samples; ``n``
    (items scored), ``skipped`` (items whose prompt, reference or every sample had too few voiced frames), the
    settings, and ``items`` (per item: every F0 contour, ``min_mae``, ``expressiveness``, mean F0s). With
    `speaker_similarity`, ``speaker_similarity`` holds the mean cosine of the prompt's speaker embedding with the
    reference's (same voice: the ceiling), the resynthesis' and the samples' (NaN where no speech is found).
    """
    lm = pipeline._require("language_model", "prosody evaluation")
    pipeline.require_decoder("prosody evaluation")
    if f0_method not in F0_METHODS:
        raise ValueError(f"unknown F0 method {f0_method!r}; choose from {F0_METHODS}")
    if not 0 < prompt_fraction < 1:
        raise ValueError(f"prompt_fraction must be in (0, 1), got {prompt_fraction!r}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    waves = [_waveform(item) for item in audio]
    if not waves:
        raise ValueError("no utterances to evaluate")
    units = pipeline.encode([{"array": w, "sampling_rate": sr} for w, sr in waves])
    items, skipped = [], []
    for index, ((wave, sr), utterance) in enumerate(zip(waves, units)):
        frames = utterance.shape[-1]  # units [T], or codes [Q, T] of a codec-LM variant: time is the last axis
        cut = max(1, int(frames * prompt_fraction))
        if cut >= frames:
            skipped.append({"index": index, "reason": f"too short ({frames} units)"})
            continue
        cut_sample = round(len(wave) * cut / frames)
        prompt_f0 = f0_from_audio(wave[:cut_sample], sr, method=f0_method)
        reference_f0 = f0_from_audio(wave[cut_sample:], sr, method=f0_method)
        length = max_new_tokens or frames - cut
        torch.manual_seed(seed + index)
        samples = lm.generate_units([utterance[..., :cut]] * num_samples, max_new_tokens=length, do_sample=True,
                                    temperature=temperature, min_new_tokens=max(1, length // 2))  # fmt: skip
        samples = [s.cpu() for s in samples if s.shape[-1]]
        # the true units are vocoded too: the F0 the vocoder keeps is the ceiling for the LM's samples
        continuations = [utterance[..., cut:]] + samples
        vocoded = pipeline.decode([torch.cat([utterance[..., :cut], c], dim=-1) for c in continuations])
        parts = [w[round(len(w) * cut / (cut + c.shape[-1])) :] for c, w in zip(continuations, vocoded)]
        contours = [f0_from_audio(w, pipeline.sampling_rate, method=f0_method) for w in parts]
        resynthesis_f0, sample_f0 = contours[0], contours[1:]
        usable = [c for c in sample_f0 if _usable(c)]
        if not (_usable(prompt_f0) and _usable(reference_f0) and usable):
            skipped.append({"index": index, "reason": "too few voiced frames in the prompt, reference or samples"})
            continue
        items.append({"index": index, "prompt_f0": prompt_f0, "reference_f0": reference_f0, "sample_f0": usable,
                      "resynthesis_f0": resynthesis_f0, "unvoiced_samples": len(sample_f0) - len(usable),
                      "prompt_units": cut, "reference_units": frames - cut,
                      "reference_voiced": _voiced_fraction(reference_f0),
                      "resynthesis_voiced": _voiced_fraction(resynthesis_f0),
                      "samples_voiced": float(np.mean([_voiced_fraction(c) for c in sample_f0]))})  # fmt: skip
        if speaker_similarity:
            items[-1]["speaker_similarity"] = _speaker_similarities((wave[:cut_sample], sr), (wave[cut_sample:], sr),
                                                                    parts, pipeline.sampling_rate)  # fmt: skip
    if not items:
        raise ValueError(f"no utterance could be scored: {skipped}")
    try:
        scores = prosody([i["prompt_f0"] for i in items], [i["sample_f0"] for i in items],
                         [i["reference_f0"] for i in items])  # fmt: skip
    except ValueError as err:  # e.g. a reference with a constant F0, or no sample sharing a voiced frame with it
        raise ValueError(f"prosody metrics undefined on these utterances: {err}") from None
    for item, mae, ratio in zip(items, scores["min_mae_per_item"], scores["expressiveness_per_item"]):
        item.update(min_mae=mae, expressiveness=ratio, prompt_mean_f0=_mean_f0(item["prompt_f0"]),
                    reference_mean_f0=_mean_f0(item["reference_f0"]),
                    sample_mean_f0=float(np.mean([_mean_f0(c) for c in item["sample_f0"]])))  # fmt: skip
    return {
        "min_mae": scores["min_mae"],
        "consistency": scores["consistency"],
        "expressiveness": scores["expressiveness"],
        "reference_consistency": _reference_consistency(items),
        "resynthesis_mae": _nanmean([log_f0_mae(i["resynthesis_f0"], i["reference_f0"]) for i in items]),
        "voiced_fraction": {key: float(np.mean([i[f"{key}_voiced"] for i in items]))
                            for key in ("reference", "resynthesis", "samples")},  # fmt: skip
        **({"speaker_similarity": {key: _nanmean([i["speaker_similarity"][key] for i in items])
                                   for key in ("reference", "resynthesis", "samples")}}
           if speaker_similarity else {}),  # fmt: skip
        "n": len(items),
        "skipped": skipped,
        "num_samples": num_samples,
        "prompt_fraction": prompt_fraction,
        "temperature": temperature,
        "f0_method": f0_method,
        "frame_rate": 50.0,
        "items": items,
    }


def _speaker_similarities(prompt, reference, vocoded, vocoder_rate: int) -> dict:
    """Cosine of the prompt's speaker embedding with the reference's, the resynthesis' (`vocoded[0]`) and the
    samples' (mean over `vocoded[1:]`); NaN where Resemblyzer's voice activity detection finds no speech."""
    from .metrics.speaker_similarity.speaker_similarity import speaker_embedding

    anchor = speaker_embedding(*prompt)

    def cosine(waveform, sampling_rate) -> float:
        try:
            embedding = speaker_embedding(waveform, sampling_rate)
        except ValueError:  # "no speech found": too short or silent after VAD
            return float("nan")
        return float(embedding @ anchor / (np.linalg.norm(embedding) * np.linalg.norm(anchor)))

    samples = _nanmean([cosine(w, vocoder_rate) for w in vocoded[1:]])
    return {"reference": cosine(*reference), "resynthesis": cosine(vocoded[0], vocoder_rate), "samples": samples}


def _voiced_fraction(contour) -> float:
    return float(np.mean(np.asarray(contour) > 0)) if len(contour) else 0.0


def _nanmean(values) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def _mean_f0(contour) -> float:
    """Geometric mean of the voiced frames' F0 (Hz)."""
    contour = np.asarray(contour)
    return float(np.exp(np.mean(np.log(contour[contour > 0]))))


def _reference_consistency(items) -> float:
    """The consistency of the true continuations: the ceiling a model's `consistency` can be read against."""
    prompts = [np.log(i["prompt_mean_f0"]) for i in items]
    references = [np.log(i["reference_mean_f0"]) for i in items]
    if len(items) < 2 or np.std(prompts) == 0 or np.std(references) == 0:
        return float("nan")
    return float(np.corrcoef(prompts, references)[0, 1])


def plot_f0_contours(result: dict, path, max_items: int = 4) -> Path:
    """PNG of F0 contours, one panel per item: the prompt, then the reference continuation, its resynthesis (the
    vocoded true units) and the samples."""
    from .report import save_figure, subplots

    items = result["items"][:max_items]
    frame = 1.0 / result["frame_rate"]
    fig, axes = subplots(len(items), 1, figsize=(7, 2.2 * len(items)), squeeze=False, sharex=True)

    def curve(ax, contour, start, **style):
        contour = np.asarray(contour, dtype=float)
        ax.plot(start + frame * (np.arange(len(contour)) + 0.5), np.where(contour > 0, contour, np.nan), **style)

    for ax, item in zip(axes[:, 0], items):
        boundary = frame * len(item["prompt_f0"])
        curve(ax, item["prompt_f0"], 0.0, color="black", label="prompt")
        curve(ax, item["reference_f0"], boundary, color="tab:green", lw=2, label="reference")
        curve(ax, item["resynthesis_f0"], boundary, color="tab:blue", ls="--", lw=1, label="resynthesis")
        for k, contour in enumerate(item["sample_f0"]):
            curve(ax, contour, boundary, color="tab:orange", alpha=0.6, lw=1, label="samples" if k == 0 else None)
        ax.axvline(boundary, color="grey", ls=":")
        ax.set_ylabel("F0 (Hz)")
        scores = f"min-MAE {item['min_mae']:.3f}, expressiveness {item['expressiveness']:.2f}"
        ax.set_title(f"item {item['index']}: {scores}", fontsize=9)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel(f"time (s); F0 by {result['f0_method']}")
    return save_figure(fig, path)


__all__ = ["evaluate_prosody", "plot_f0_contours"]
