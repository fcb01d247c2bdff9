"""Deprecated alias, removed in 0.3: model cards live in `hf_slm.pipelines.model_card`.

`render_model_card` here still takes a variant folder / Hub id / ``"default"`` as well as a loaded pipeline; the new
one takes a loaded pipeline (``SpeechLMPipeline.from_pretrained(folder)``)."""

from __future__ import annotations

import os

from .pipelines.model_card import (
    EVAL_RESULTS_FILE,
    FAMILIES,
    TRAINING_SUMMARY_FILE,
    collect_eval_results,
    detect_family,
    write_eval_results,
)
from .pipelines.model_card import render_model_card as _render_loaded


def render_model_card(pipeline_or_folder, eval_results=None, training_summary: dict | None = None,
                      repo_id: str | None = None, family: str | None = None):  # fmt: skip
    """`hf_slm.pipelines.model_card.render_model_card`, loading ``pipeline_or_folder`` first when it is a path."""
    pipeline = pipeline_or_folder
    if isinstance(pipeline_or_folder, (str, os.PathLike)):
        from .pipelines import SpeechLMPipeline

        pipeline = SpeechLMPipeline.from_pretrained(pipeline_or_folder)
    return _render_loaded(pipeline, eval_results=eval_results, training_summary=training_summary, repo_id=repo_id,
                          family=family)  # fmt: skip


__all__ = ["EVAL_RESULTS_FILE", "FAMILIES", "TRAINING_SUMMARY_FILE", "collect_eval_results", "detect_family",
           "render_model_card", "write_eval_results"]
