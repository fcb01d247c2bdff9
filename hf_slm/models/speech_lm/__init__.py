"""Speech language models: a causal LM over units (GSLM) or text + units (TWIST, SpiRit-LM), and its processor."""

from .configuration_speech_lm import SpeechLMConfig, SpeechLMVocabularyLayout
from .modeling_speech_lm import (
    AllowedTokensLogitsProcessor,
    LogLikelihoodOutput,
    SpeechLMForCausalLM,
    SpeechLMPreTrainedModel,
)
from .processing_speech_lm import SpeechLMProcessor, SpeechLMProcessorKwargs

__all__ = [
    "AllowedTokensLogitsProcessor",
    "LogLikelihoodOutput",
    "SpeechLMConfig",
    "SpeechLMForCausalLM",
    "SpeechLMPreTrainedModel",
    "SpeechLMProcessor",
    "SpeechLMProcessorKwargs",
    "SpeechLMVocabularyLayout",
]
