"""Instruction tuning: instruction data builders, LoRA (PEFT) tuning helpers; the speech-text chat template
(`SpeechChatTemplate`, from `hf_slm.models.speech_lm`) is re-exported here."""

from ..models.speech_lm.chat_template_speech_lm import ASSISTANT_TOKEN, CHAT_TOKENS, USER_TOKEN, SpeechChatTemplate
from .data import (
    ASR_TEMPLATES,
    INSTRUCT_TOKENS,
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
from .speech_llm_data import (
    SPEECH_LLM_TASKS,
    add_answer_units,
    build_speech_asr,
    build_spoken_answers,
    build_spoken_intent,
    build_spoken_qa,
    speech_llm_features,
    wordnet_qa_pairs,
)
from .preference import build_speech_preferences, layout_tokenizer, units_to_string
from ..pipelines.adapters import adapter_holds_embeddings, add_task_tokens
from .tuning import (
    LORA_TARGET_MODULES,
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
    "SPEECH_LLM_TASKS",
    "TASK_TAGS",
    "TTS_TEMPLATES",
    "USER_TOKEN",
    "SpeechChatTemplate",
    "adapter_holds_embeddings",
    "add_answer_units",
    "add_task_tokens",
    "attach_adapter",
    "build_chain_of_modality",
    "build_cross_modal",
    "build_silence_mode",
    "build_slu",
    "build_speech_asr",
    "build_speech_preferences",
    "build_spoken_answers",
    "build_spoken_intent",
    "build_spoken_qa",
    "default_lora_config",
    "espeak_speaker",
    "instruction_words",
    "layout_tokenizer",
    "merge_adapter",
    "noise_waveforms",
    "save_instruct_variant",
    "speech_llm_features",
    "synthetic_qa_pairs",
    "synthetic_slu_commands",
    "units_to_string",
    "word_level_tokenizer",
    "wordnet_qa_pairs",
]
