"""hf_slm: Speech Language Models (speech tokenizer -> unit language model -> vocoder) for the Hugging Face stack.

`import hf_slm` is as cheap as `import transformers`: the public names below load on first use (PEP 562), and the
Auto classes learn every hf_slm family on their first lookup (`hf_slm._registration`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from . import _registration
from .utils import lazy_exports

__version__ = "0.1.0"

_HERE = Path(__file__).resolve().parent
#: Local path of the embedded default pipeline variant shipped inside the package (no network needed).
DEFAULT_PIPELINE = str(_HERE / "default_pipeline")
#: The embedded TWIST-style variant (`"twist-default"`): its own text tokenizer and warm-started LM; the feature
#: extractor, speech tokenizer and vocoder are references to `DEFAULT_PIPELINE`.
DEFAULT_TWIST_PIPELINE = str(_HERE / "default_twist_pipeline")
#: The embedded instruct variant (`"instruct-default"`): only a LoRA adapter (`adapter/`) over `DEFAULT_TWIST_PIPELINE`,
#: whose components it references (`SpokenChatPipeline.from_pretrained("instruct-default")`).
DEFAULT_INSTRUCT_PIPELINE = str(_HERE / "default_instruct_pipeline")
#: The embedded continuous-feature speech LLM (`"speech-llm-default"`, `SpeechLLMPipeline`): CTC-pre-trained encoder,
#: projector, small text LM and speech decoder; its vocoder is a reference to `DEFAULT_PIPELINE`'s.
DEFAULT_SPEECH_LLM_PIPELINE = str(_HERE / "default_speech_llm_pipeline")
#: The embedded codec-LM variant (`"codec-default"`): a log-mel RVQ codec (`MelRVQCodecModel`) and a multi-stream LM
#: over its 4 codebooks; continuations keep the prompt's voice (the codec's decoder speaks them).
DEFAULT_CODEC_PIPELINE = str(_HERE / "default_codec_pipeline")
#: The embedded zero-shot TTS variant (`"tts-default"`, `VallEPipeline`): phoneme tokenizer, AR and NAR models; its
#: feature extractor and codec are references to `DEFAULT_CODEC_PIPELINE`'s.
DEFAULT_TTS_PIPELINE = str(_HERE / "default_tts_pipeline")

#: submodule -> the public names it provides (each family's `__all__`; tests/test_registration.py keeps them equal)
_LAZY_NAMES = {
    "models.unit_encoder": [
        "AudioInputError", "DEFAULT_VTLN_WARPS", "SpeechFeatureExtractor", "TokenizationPlan", "UnitEncoderConfig",
        "UnitEncoderModel", "UnitEncoderOutput", "VTLN_TOKENIZATIONS", "decode_audio", "default_plan", "length_buckets",
        "load_audio",
    ],
    "training.kmeans": ["MiniBatchKMeans"],  # fitting, not a model: `hf_slm.MiniBatchKMeans` keeps working
    "models.speech_lm": [
        "ASSISTANT_TOKEN", "AllowedTokensLogitsProcessor", "CHAT_TOKENS", "ExpressiveEncoderConfig",
        "ExpressiveEncoderModel", "ExpressiveEncoderOutput", "FastUnitGenerator", "LogLikelihoodOutput",
        "MultiStreamCausalLMOutput", "MultiStreamSpeechLMConfig", "MultiStreamSpeechLMForCausalLM",
        "MultiStreamSpeechLMPreTrainedModel", "ProsodyQuantizer", "RepetitionAwareSamplingLogitsProcessor",
        "SpeechChatTemplate", "SpeechLMConfig", "SpeechLMForCausalLM", "SpeechLMPreTrainedModel", "SpeechLMProcessor",
        "SpeechLMProcessorKwargs", "SpeechLMVocabularyLayout", "USER_TOKEN", "apply_delay_pattern", "estimate_f0",
        "undo_delay_pattern",
    ],
    "models.acoustic_lm": ["AcousticLMConfig", "AcousticLMForCausalLM", "AcousticLMPreTrainedModel"],
    "models.unit_vocoder": [
        "HifiGanDiscriminator", "LogMelSpectrogram", "MultiPeriodDiscriminator", "MultiScaleDiscriminator",
        "PeriodDiscriminator", "ScaleDiscriminator", "UnitHifiGanVocoder", "UnitHifiGanVocoderConfig", "UnitMelVocoder",
        "UnitMelVocoderConfig", "UnitVocoderOutput", "discriminator_loss", "feature_matching_loss",
        "generator_adversarial_loss", "griffin_lim_from_mel", "mel_l1_loss",
    ],
    "models.codec": [
        "SUPPORTED_CODECS", "CodecConfig", "CodecDecoderOutput", "CodecEncoderOutput", "CodecLogMel", "CodecModel",
        "CodecOutput", "EMACodebook", "MelRVQCodecConfig", "MelRVQCodecModel", "RVQCodecConfig", "RVQCodecModel",
        "ResidualVectorQuantizer", "semantic_distillation_loss",
    ],
    "models.speech_llm": [
        "AUDIO_TOKEN", "CTCPrefixScoreLogitsProcessor", "DEFAULT_CHAT_TEMPLATE", "LEXICON_FILE",
        "LexiconLogitsProcessor", "NgramLanguageModel", "PROJECTOR_TYPES", "SpeechAudioError", "SpeechLLMConfig",
        "SpeechLLMCTCPosteriorProjector", "SpeechLLMForConditionalGeneration", "SpeechLLMOutput",
        "SpeechLLMPoolLinearProjector",
        "SpeechLLMPreTrainedModel", "SpeechLLMProcessor", "SpeechLLMProjectorConfig", "SpeechLLMQFormerProjector",
        "SpeechLLMSpeechDecoder", "SpeechLLMSpeechDecoderConfig", "SpeechLLMStackMLPProjector", "add_speech_llm_tokens",
        "WORD_LM_FILE", "ctc_token_symbols", "lexicon_logits_processor", "symbol_token_ids",
    ],
    "models.ssl_encoder": [
        "SSLEncoderConfig", "SSLEncoderForPreTraining", "SSLEncoderForPreTrainingOutput", "compute_span_mask",
    ],
    "models.valle": [
        "VallEARConfig", "VallEARModel", "VallENARConfig", "VallENARModel", "VallEOutput", "VallEPreTrainedModel",
        "group_codes", "ungroup_codes",
    ],
    "models.dialogue_lm": [
        "DialogueLMConfig", "DialogueLMForCausalLM", "DialogueLMOutput", "DialogueLMPreTrainedModel", "edge_targets",
    ],
    "pipelines": [
        "AudioLMPipeline", "AudioLMPipelineOutput", "ExpressiveSpeechLMPipeline",
        "PipelineLoadError", "SpeechLLMChatOutput", "SpeechLLMPipeline", "SpeechLMPipeline", "SpeechPipelineOutput",
        "SpokenChatPipeline", "TextToSpeechOutput", "VallEPipeline",
    ],
}  # fmt: skip
__all__ = [
    "DEFAULT_CODEC_PIPELINE", "DEFAULT_INSTRUCT_PIPELINE", "DEFAULT_PIPELINE", "DEFAULT_SPEECH_LLM_PIPELINE",
    "DEFAULT_TTS_PIPELINE", "DEFAULT_TWIST_PIPELINE", *(name for names in _LAZY_NAMES.values() for name in names),
]  # fmt: skip
_lazy_getattr, __dir__ = lazy_exports(__name__, {f".{module}": names for module, names in _LAZY_NAMES.items()})
#: names before hf_slm 0.2 -> the deprecated alias module that gives them, with a FutureWarning, until hf_slm 0.3
_OLD_UNIT_NAMES = ("KMeansUnitTokenizer", "KMeansUnitTokenizerConfig", "KMeansUnitTokenizerOutput")  # rename: keep
_OLD_CODEC_NAMES = ("CodecTokenizer", "CodecTokenizerConfig", "CodecModelOutput", "RVQCodec")  # rename: keep
_RENAMED = dict.fromkeys(_OLD_UNIT_NAMES, "unit_tokenizer")  # rename: keep
_RENAMED.update(dict.fromkeys(_OLD_CODEC_NAMES, "codec_tokenizer"))  # rename: keep


def __getattr__(name: str):
    if name in _RENAMED:
        import importlib

        return getattr(importlib.import_module(f".models.{_RENAMED[name]}", __name__), name)
    return _lazy_getattr(name)


if TYPE_CHECKING:  # static tools see the real names
    from .models import *  # noqa: F401,F403
    from .pipelines import (  # noqa: F401
        AudioLMPipeline,
        AudioLMPipelineOutput,
        ExpressiveSpeechLMPipeline,
        PipelineLoadError,
        SpeechLLMChatOutput,
        SpeechLLMPipeline,
        SpeechLMPipeline,
        SpeechPipelineOutput,
        SpokenChatPipeline,
        TextToSpeechOutput,
        VallEPipeline,
    )
    from .training.kmeans import MiniBatchKMeans  # noqa: F401

_registration.install()
