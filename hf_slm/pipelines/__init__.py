"""Inference-only compositions of components, hosted as one repo (index file + component subfolders)."""

from .pipeline_utils import (
    COMPONENT_NAMES,
    INDEX_FILE,
    LOADABLE_CLASSES,
    RENAMED_CLASSES,
    PipelineLoadError,
    check_compatibility,
    read_index,
    resolve_pipeline_path,
)
from .duplex import DuplexEvent, DuplexOptions, DuplexSession, DuplexStep
from .speech_llm_pipeline import ASR_PROMPT, SpeechLLMChatOutput, SpeechLLMPipeline
from .speech_lm_pipeline import EmptyContinuationWarning, SpeechLMPipeline, SpeechPipelineOutput
from .spoken_chat import ChatEvent, ChatOutput, SpokenChatPipeline

__all__ = [
    "ASR_PROMPT",
    "SpeechLLMChatOutput",
    "SpeechLLMPipeline",
    "ChatEvent",
    "ChatOutput",
    "SpokenChatPipeline",
    "COMPONENT_NAMES",
    "DuplexEvent",
    "DuplexOptions",
    "DuplexSession",
    "DuplexStep",
    "EmptyContinuationWarning",
    "INDEX_FILE",
    "LOADABLE_CLASSES",
    "PipelineLoadError",
    "RENAMED_CLASSES",
    "SpeechLMPipeline",
    "SpeechPipelineOutput",
    "check_compatibility",
    "read_index",
    "resolve_pipeline_path",
]
