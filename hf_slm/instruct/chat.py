"""Deprecated alias, removed in 0.3: the chat template is processing and lives in
`hf_slm.models.speech_lm.chat_template_speech_lm` (`from hf_slm.models.speech_lm import SpeechChatTemplate`);
`INSTRUCT_TOKENS` is in `hf_slm.instruct.data`."""

from ..models.speech_lm.chat_template_speech_lm import ASSISTANT_TOKEN, CHAT_TOKENS, USER_TOKEN, SpeechChatTemplate
from .data import INSTRUCT_TOKENS

__all__ = ["ASSISTANT_TOKEN", "CHAT_TOKENS", "INSTRUCT_TOKENS", "USER_TOKEN", "SpeechChatTemplate"]
