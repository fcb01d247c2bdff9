"""The one place where hf_slm components meet the transformers Auto classes.

`register_all` runs when `hf_slm.models` is imported (`import hf_slm` imports it on the first Auto-class lookup, see
`hf_slm._registration`). Every component is registered twice:
- with ``AutoConfig`` / ``AutoModel...`` / ``AutoFeatureExtractor`` / ``AutoProcessor``, so that
  ``AutoModel.from_pretrained(folder)`` works in any process that imported ``hf_slm``;
- through ``register_for_auto_class``, so that ``save_pretrained`` copies the component's own source
  files next to its weights and writes ``auto_map``; the folder then loads with
  ``trust_remote_code=True`` where hf_slm is not installed. That is why every model family folder
  imports only its own siblings and third-party packages (transformers copies same-folder relative
  imports only).
"""

from __future__ import annotations

import transformers
from transformers import CONFIG_MAPPING, AutoConfig, AutoFeatureExtractor, AutoProcessor

from .legacy_names import read_legacy_names

REGISTERED: dict[str, dict[str, type]] = {}


def register_component(
    config_class,
    model_class=None,
    auto_model_classes: tuple[str, ...] = ("AutoModel",),
    feature_extractor_class=None,
    processor_class=None,
) -> None:
    """Register one component family with the Auto classes and for remote code.

    ``auto_model_classes[0]`` is the Auto class recorded in the saved ``auto_map`` (transformers records one
    per model class); every class listed is registered locally.
    """
    model_type = config_class.model_type
    if not model_type.startswith("hf_slm_"):
        raise ValueError(f"model_type {model_type!r} of {config_class.__name__} must start with 'hf_slm_'")
    AutoConfig.register(model_type, config_class, exist_ok=True)
    for legacy_type in getattr(config_class, "legacy_model_types", ()):  # checkpoints saved under a former name:
        CONFIG_MAPPING.register(legacy_type, config_class, exist_ok=True)  # the config renames it, with a warning
    read_legacy_names(config_class)
    config_class.register_for_auto_class()
    entry: dict[str, type] = {"config": config_class}
    if model_class is not None:
        for name in auto_model_classes:
            getattr(transformers, name).register(config_class, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_model_classes[0])
        entry["model"] = model_class
        entry["auto_classes"] = auto_model_classes  # all of them go into a pushed auto_map (pipelines.remote_code)
    if feature_extractor_class is not None:
        AutoFeatureExtractor.register(config_class, feature_extractor_class, exist_ok=True)
        feature_extractor_class.register_for_auto_class("AutoFeatureExtractor")
        entry["feature_extractor"] = feature_extractor_class
    if processor_class is not None:
        AutoProcessor.register(config_class, processor_class, exist_ok=True)
        if processor_class is not feature_extractor_class:  # one auto_map entry per class: AutoFeatureExtractor's
            processor_class.register_for_auto_class("AutoProcessor")
        entry["processor"] = processor_class
    REGISTERED[model_type] = entry


def register_all() -> None:
    # Each family adds its block here, and only here.
    # --- unit_encoder ---
    from .unit_encoder import SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel

    register_component(
        UnitEncoderConfig,
        UnitEncoderModel,
        ("AutoModel",),
        feature_extractor_class=SpeechFeatureExtractor,
        processor_class=SpeechFeatureExtractor,  # audio in, no text: its processor is the feature extractor
    )
    # --- speech_lm ---
    from .speech_lm import SpeechLMConfig, SpeechLMForCausalLM, SpeechLMProcessor

    register_component(
        SpeechLMConfig, SpeechLMForCausalLM, ("AutoModelForCausalLM", "AutoModel"), processor_class=SpeechLMProcessor
    )
    from .speech_lm import MultiStreamSpeechLMConfig, MultiStreamSpeechLMForCausalLM

    register_component(MultiStreamSpeechLMConfig, MultiStreamSpeechLMForCausalLM, ("AutoModel",))
    # --- acoustic_lm ---
    from .acoustic_lm import AcousticLMConfig, AcousticLMForCausalLM

    register_component(AcousticLMConfig, AcousticLMForCausalLM, ("AutoModel",))
    from .speech_lm import ExpressiveEncoderConfig, ExpressiveEncoderModel

    register_component(ExpressiveEncoderConfig, ExpressiveEncoderModel)
    # --- unit_vocoder ---
    from .unit_vocoder import UnitHifiGanVocoder, UnitHifiGanVocoderConfig, UnitMelVocoder, UnitMelVocoderConfig

    register_component(UnitHifiGanVocoderConfig, UnitHifiGanVocoder)
    register_component(UnitMelVocoderConfig, UnitMelVocoder)
    # --- codec ---
    from .codec import CodecConfig, CodecModel, MelRVQCodecConfig, MelRVQCodecModel, RVQCodecConfig, RVQCodecModel

    register_component(CodecConfig, CodecModel)
    register_component(RVQCodecConfig, RVQCodecModel)
    register_component(MelRVQCodecConfig, MelRVQCodecModel)
    # --- speech_llm ---
    from .speech_llm import SpeechLLMConfig, SpeechLLMForConditionalGeneration, SpeechLLMProcessor

    register_component(  # the Auto classes transformers files Qwen2AudioForConditionalGeneration under
        SpeechLLMConfig,
        SpeechLLMForConditionalGeneration,
        ("AutoModelForMultimodalLM", "AutoModelForSeq2SeqLM", "AutoModel"),
        processor_class=SpeechLLMProcessor,
    )
    # --- ssl_encoder ---
    from .ssl_encoder import SSLEncoderConfig, SSLEncoderForPreTraining

    register_component(SSLEncoderConfig, SSLEncoderForPreTraining, ("AutoModelForPreTraining", "AutoModel"))
    # --- valle ---
    from .valle import VallEARConfig, VallEARModel, VallENARConfig, VallENARModel

    register_component(VallEARConfig, VallEARModel)
    register_component(VallENARConfig, VallENARModel)
    # --- dialogue_lm ---
    from .dialogue_lm import DialogueLMConfig, DialogueLMForCausalLM

    register_component(DialogueLMConfig, DialogueLMForCausalLM, ("AutoModel",))
