"""Speech language models: a causal LM over units (GSLM) or text + units (TWIST, SpiRit-LM), and its processor."""

from .configuration_speech_lm import SpeechLMConfig, SpeechLMVocabularyLayout
from .modeling_speech_lm import (
    AllowedTokensLogitsProcessor,
    LogLikelihoodOutput,
    SpeechLMForCausalLM,
    SpeechLMPreTrainedModel,
)
from .processing_speech_lm import SpeechLMProcessor, SpeechLMProcessorKwargs
from .chat_template_speech_lm import ASSISTANT_TOKEN, CHAT_TOKENS, USER_TOKEN, SpeechChatTemplate
from .prosody_multistream_speech_lm import ProsodyQuantizer, estimate_f0
from .configuration_expressive_encoder import ExpressiveEncoderConfig
from .modeling_expressive_encoder import ExpressiveEncoderModel, ExpressiveEncoderOutput
from .configuration_multistream_speech_lm import MultiStreamSpeechLMConfig
from .generation_speech_lm import FastUnitGenerator, RepetitionAwareSamplingLogitsProcessor
from .modeling_multistream_speech_lm import (
    MultiStreamCausalLMOutput,
    MultiStreamSpeechLMForCausalLM,
    MultiStreamSpeechLMPreTrainedModel,
    apply_delay_pattern,
    undo_delay_pattern,
)

__all__ = [
    "ASSISTANT_TOKEN",
    "AllowedTokensLogitsProcessor",
    "CHAT_TOKENS",
    "ExpressiveEncoderConfig",
    "ExpressiveEncoderModel",
    "ExpressiveEncoderOutput",
    "FastUnitGenerator",
    "LogLikelihoodOutput",
    "MultiStreamCausalLMOutput",
    "MultiStreamSpeechLMConfig",
    "MultiStreamSpeechLMForCausalLM",
    "MultiStreamSpeechLMPreTrainedModel",
    "ProsodyQuantizer",
    "RepetitionAwareSamplingLogitsProcessor",
    "SpeechLMConfig",
    "SpeechLMForCausalLM",
    "SpeechLMPreTrainedModel",
    "SpeechLMProcessor",
    "SpeechLMProcessorKwargs",
    "SpeechChatTemplate",
    "SpeechLMVocabularyLayout",
    "USER_TOKEN",
    "apply_delay_pattern",
    "estimate_f0",
    "undo_delay_pattern",
]
