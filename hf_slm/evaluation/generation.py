"""Generation quality and diversity (GSLM): continuations sampled at several temperatures, their perplexity under a
judge LM (quality) and their VERT (repetitiveness), and the area under the perplexity-VERT curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .metrics.unit_perplexity.unit_perplexity import perplexity
from .metrics.vert.vert import vert

DEFAULT_TEMPERATURES = (0.5, 0.7, 0.9, 1.1, 1.3)


@torch.no_grad()
def judge_nll(judge_lm, prompts, continuations) -> tuple[torch.Tensor, torch.Tensor]:
    """`(sum_nll, num_tokens)` of each continuation given its prompt under `judge_lm` (only continuation units scored)."""
    layout = judge_lm.config.vocab_layout
    max_unit = max(int(u.max()) for u in list(prompts) + list(continuations) if len(u))
    if max_unit >= layout.num_units:
        raise ValueError(f"the judge LM knows {layout.num_units} units but the continuations use unit {max_unit}")
    full = [torch.cat([p, c]) for p, c in zip(prompts, continuations)]
    input_ids, attention_mask = judge_lm.units_to_input_ids(full, padding_side="right")
    prefix = len(layout.speech_prefix_ids())
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
    starts = torch.tensor([prefix + len(p) for p in prompts], device=input_ids.device)[:, None]
    score_mask = (positions >= starts) & attention_mask.bool()
    out = judge_lm.log_likelihood(input_ids, attention_mask=attention_mask, score_mask=score_mask)
    return out.sum_nll.cpu(), out.num_tokens.cpu()


def ppl_vert_auc(verts, perplexities, vert_range=None) -> float:
    """Area under perplexity as a function of VERT (trapezoids between the points sorted by VERT).

    With `vert_range=(low, high)` the curve is linearly interpolated (and held constant beyond its ends) on that
    range, so that models are compared over the same span. Lower is better: low perplexity across diversities.
    """
    verts, perplexities = np.asarray(verts, dtype=float), np.asarray(perplexities, dtype=float)
    keep = np.isfinite(verts) & np.isfinite(perplexities)
    if keep.sum() < 2:
        raise ValueError("the AUC needs at least 2 temperatures with a finite VERT and perplexity")
    order = np.argsort(verts[keep], kind="stable")
    x, y = verts[keep][order], perplexities[keep][order]
    if vert_range is not None:
        low, high = vert_range
        if not low < high:
            raise ValueError(f"vert_range must be (low, high) with low < high, got {vert_range!r}")
        inside = (x > low) & (x < high)
        x_new = np.concatenate([[low], x[inside], [high]])
        y = np.interp(x_new, x, y)
        x = x_new
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def evaluate_generation(pipeline, prompts, temperatures=DEFAULT_TEMPERATURES, num_samples: int = 1,
                        max_new_tokens: int = 100, judge=None, prompt_fraction: float = 0.5, max_k: int = 2,
                        deduplicate: bool = True, seed: int = 0, show_progress: bool = False) -> dict:  # fmt: skip
    """Continue each prompt at each temperature; measure judge perplexity and VERT of the continuations.

    Args:
        pipeline: a `SpeechLMPipeline` with a language model over one unit stream (the generator); a codec-LM
            variant (a multi-stream LM over codes) is refused with a `ValueError`.
        prompts: audio items (paths, ``{"array", "sampling_rate"}`` dicts); the first `prompt_fraction` of each is
            the prompt.
        judge: the LM that scores continuations (`SpeechLMForCausalLM`, or a pipeline with one); default the
            generator's own LM. It must use the same units.
        deduplicate: collapse repeated units before VERT (50 Hz units repeat within a phone; GSLM's units were
            deduplicated too).
        show_progress: a tqdm bar over the temperatures (each one generates every prompt's samples).

    Returns a JSON-able dict: ``per_temperature`` (``temperature``, ``perplexity``, ``vert``, ``auto_bleu``,
    ``self_bleu``, ``mean_length``, ``empty``), ``auc`` (perplexity over VERT) and the settings.
    """
    lm = pipeline._require("language_model", "generation evaluation")
    judge_lm = lm if judge is None else judge._require("language_model", "judging") if hasattr(judge, "_require") else judge
    for role, model in (("generator", lm), ("judge", judge_lm)):
        if getattr(model.config, "vocab_layout", None) is None:
            raise ValueError(
                f"generation evaluation needs one stream of units, but the {role} is a {type(model).__name__} over "
                "several code streams (a codec-LM variant): its judge perplexity of the continuation alone and VERT "
                "are defined on unit sequences only; evaluate such a variant with `hf-slm evaluate prosody` (with "
                "--speaker-similarity)"
            )
    if not 0 < prompt_fraction <= 1:
        raise ValueError(f"prompt_fraction must be in (0, 1], got {prompt_fraction!r}")
    if not temperatures or any(t <= 0 for t in temperatures):
        raise ValueError(f"temperatures must be positive, got {list(temperatures)!r}")
    full_units = pipeline.encode(list(prompts))
    prompt_units = [u[: max(1, int(len(u) * prompt_fraction))] for u in full_units] * num_samples
    from tqdm.auto import tqdm

    rows = []
    bar = tqdm(temperatures, desc="continuing at each temperature", unit="temperature", disable=not show_progress)
    for index, temperature in enumerate(bar):
        torch.manual_seed(seed + index)
        continuations = [c.cpu() for c in lm.generate_units(
            prompt_units, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature)]  # fmt: skip
        kept = [(p, c) for p, c in zip(prompt_units, continuations) if len(c) > 0]
        row = {"temperature": float(temperature), "empty": len(continuations) - len(kept),
               "mean_length": float(np.mean([len(c) for c in continuations]))}  # fmt: skip
        if kept:
            sums, counts = judge_nll(judge_lm, [p for p, _ in kept], [c for _, c in kept])
            row.update(perplexity(sums.tolist(), counts.tolist()))
        else:
            row.update(perplexity=float("nan"), mean_perplexity=float("nan"))
        sequences = [torch.unique_consecutive(c).tolist() if deduplicate else c.tolist() for _, c in kept]
        sequences = [s for s in sequences if len(s) >= max_k]
        if len(sequences) >= 2:
            row.update({k: v for k, v in vert(sequences, max_k=max_k).items() if k != "auto_bleu_k"})
        else:
            row.update(vert=float("nan"), auto_bleu=float("nan"), self_bleu=float("nan"))
        rows.append(row)
    try:
        auc = ppl_vert_auc([r["vert"] for r in rows], [r["perplexity"] for r in rows])
    except ValueError:
        auc = float("nan")
    return {"per_temperature": rows, "auc": auc, "num_prompts": len(full_units), "num_samples": num_samples,
            "max_new_tokens": max_new_tokens, "max_k": max_k, "deduplicate": deduplicate,
            "prompt_fraction": prompt_fraction, "seed": seed,
            "judge": "generator" if judge is None else type(judge_lm).__name__}  # fmt: skip


def plot_generation(result: dict, path) -> Path:
    """PNG of perplexity against VERT, one point per temperature (GSLM's quality-diversity plot)."""
    from .report import save_figure, subplots

    rows = [r for r in result["per_temperature"] if np.isfinite(r["vert"]) and np.isfinite(r["perplexity"])]
    fig, ax = subplots(figsize=(5, 4))
    ax.plot([r["vert"] for r in rows], [r["perplexity"] for r in rows], "o-")
    for r in rows:
        ax.annotate(f"T={r['temperature']:g}", (r["vert"], r["perplexity"]), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("VERT (repetition, lower = more diverse)")
    ax.set_ylabel("judge perplexity (lower = better)")
    ax.set_title(f"generation quality vs diversity (AUC {result['auc']:.3g})")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


__all__ = ["DEFAULT_TEMPERATURES", "evaluate_generation", "judge_nll", "plot_generation", "ppl_vert_auc"]
