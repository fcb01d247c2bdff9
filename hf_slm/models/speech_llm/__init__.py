"""Continuous-feature speech LLMs: any audio encoder -> projector -> any causal LM (SLAM-LLM, Qwen2-Audio, SALMONN),
with an optional CTC speech-out head (LLaMA-Omni)."""

from .configuration_speech_llm import (
    AUDIO_TOKEN,
    PROJECTOR_TYPES,
    SpeechLLMConfig,
    SpeechLLMProjectorConfig,
    SpeechLLMSpeechDecoderConfig,
)
from .generation_speech_llm import (
    CTCPrefixScoreLogitsProcessor,
    LexiconLogitsProcessor,
    NgramLanguageModel,
    ctc_token_symbols,
    lexicon_logits_processor,
)
from .modeling_speech_llm import (
    SpeechLLMCTCPosteriorProjector,
    SpeechLLMForConditionalGeneration,
    SpeechLLMOutput,
    SpeechLLMPoolLinearProjector,
    SpeechLLMPreTrainedModel,
    SpeechLLMQFormerProjector,
    SpeechLLMSpeechDecoder,
    SpeechLLMStackMLPProjector,
    symbol_token_ids,
)
from .processing_speech_llm import (
    DEFAULT_CHAT_TEMPLATE,
    LEXICON_FILE,
    WORD_LM_FILE,
    SpeechAudioError,
    SpeechLLMProcessor,
    add_speech_llm_tokens,
)

__all__ = [
    "AUDIO_TOKEN",
    "CTCPrefixScoreLogitsProcessor",
    "LexiconLogitsProcessor",
    "NgramLanguageModel",
    "ctc_token_symbols",
    "lexicon_logits_processor",
    "DEFAULT_CHAT_TEMPLATE",
    "LEXICON_FILE",
    "WORD_LM_FILE",
    "PROJECTOR_TYPES",
    "SpeechAudioError",
    "SpeechLLMCTCPosteriorProjector",
    "SpeechLLMConfig",
    "SpeechLLMForConditionalGeneration",
    "SpeechLLMOutput",
    "SpeechLLMPoolLinearProjector",
    "SpeechLLMPreTrainedModel",
    "SpeechLLMProcessor",
    "SpeechLLMProjectorConfig",
    "SpeechLLMQFormerProjector",
    "SpeechLLMSpeechDecoder",
    "SpeechLLMSpeechDecoderConfig",
    "SpeechLLMStackMLPProjector",
    "add_speech_llm_tokens",
    "symbol_token_ids",
]
