"""Inference-only compositions of components, hosted as one repo (index file + component subfolders)."""

from .pipeline_utils import COMPONENT_NAMES, INDEX_FILE, PipelineLoadError, read_index, resolve_pipeline_path
from .speech_lm_pipeline import SpeechLMPipeline, SpeechPipelineOutput

__all__ = [
    "COMPONENT_NAMES",
    "INDEX_FILE",
    "PipelineLoadError",
    "SpeechLMPipeline",
    "SpeechPipelineOutput",
    "read_index",
    "resolve_pipeline_path",
]
