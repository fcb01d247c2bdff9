"""Instruction tuning: instruction data builders, a speech-text chat template, LoRA (PEFT) tuning helpers."""

from .chat import ASSISTANT_TOKEN, CHAT_TOKENS, INSTRUCT_TOKENS, USER_TOKEN, SpeechChatTemplate
from .data import (
    ASR_TEMPLATES,
    TASK_TAGS,
    TTS_TEMPLATES,
    build_chain_of_modality,
    build_cross_modal,
    build_silence_mode,
    build_slu,
    espeak_speaker,
    instruction_words,
    noise_waveforms,
    synthetic_qa_pairs,
    synthetic_slu_commands,
    word_level_tokenizer,
)
from .preference import build_speech_preferences, layout_tokenizer, units_to_string
from .tuning import (
    LORA_TARGET_MODULES,
    adapter_holds_embeddings,
    add_task_tokens,
    attach_adapter,
    default_lora_config,
    merge_adapter,
    save_instruct_variant,
)

__all__ = [
    "ASR_TEMPLATES",
    "ASSISTANT_TOKEN",
    "CHAT_TOKENS",
    "INSTRUCT_TOKENS",
    "LORA_TARGET_MODULES",
    "TASK_TAGS",
    "TTS_TEMPLATES",
    "USER_TOKEN",
    "SpeechChatTemplate",
    "adapter_holds_embeddings",
    "add_task_tokens",
    "attach_adapter",
    "build_chain_of_modality",
    "build_cross_modal",
    "build_silence_mode",
    "build_slu",
    "build_speech_preferences",
    "default_lora_config",
    "espeak_speaker",
    "instruction_words",
    "layout_tokenizer",
    "merge_adapter",
    "noise_waveforms",
    "save_instruct_variant",
    "synthetic_qa_pairs",
    "synthetic_slu_commands",
    "units_to_string",
    "word_level_tokenizer",
]
