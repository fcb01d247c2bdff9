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
from .audiolm_pipeline import AudioLMPipeline, AudioLMPipelineOutput
from .expressive_pipeline import ExpressiveContinuation, ExpressiveSpeechLMPipeline
from .duplex import DuplexEvent, DuplexOptions, DuplexSession, DuplexStep
from .speech_llm_pipeline import ASR_PROMPT, SpeechLLMChatOutput, SpeechLLMPipeline
from .speech_lm_pipeline import EmptyContinuationWarning, SpeechLMPipeline, SpeechPipelineOutput
from .spoken_chat import ChatEvent, ChatOutput, SpokenChatPipeline
from .valle_pipeline import TextToSpeechOutput, VallEPipeline

__all__ = [
    "AudioLMPipeline",
    "AudioLMPipelineOutput",
    "ExpressiveContinuation",
    "ExpressiveSpeechLMPipeline",
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
    "TextToSpeechOutput",
    "VallEPipeline",
    "check_compatibility",
    "read_index",
    "resolve_pipeline_path",
]
