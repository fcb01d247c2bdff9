"""Assemble a pipeline variant from converted (or any) component folders, with the load-time compatibility checks."""

from __future__ import annotations

import os
from pathlib import Path

from transformers import AutoFeatureExtractor, AutoModel, AutoTokenizer

from ..models.unit_encoder import SpeechFeatureExtractor
from ..pipelines import SpeechLMPipeline, check_compatibility


def _load(component, loader):
    if component is None or not isinstance(component, (str, os.PathLike)):
        return component
    return loader(str(component))


def _feature_extractor(feature_extractor, tokenizer_source, speech_tokenizer):
    if feature_extractor is not None:
        return _load(feature_extractor, AutoFeatureExtractor.from_pretrained)
    # convert_kmeans writes the matching extractor next to the tokenizer; otherwise a plain one at its rate
    if isinstance(tokenizer_source, (str, os.PathLike)) and (Path(tokenizer_source) / "preprocessor_config.json").is_file():
        return SpeechFeatureExtractor.from_pretrained(str(tokenizer_source))
    return SpeechFeatureExtractor(sampling_rate=speech_tokenizer.config.sampling_rate)


def assemble_variant(
    speech_tokenizer,
    output_dir: str | os.PathLike,
    language_model=None,
    vocoder=None,
    feature_extractor=None,
    tokenizer=None,
) -> SpeechLMPipeline:
    """Build a [`SpeechLMPipeline`] from parts, check that they fit, save it and load it back.

    Each part is a folder / Hub id (loaded with the Auto classes, so any registered class works) or an object.

    Args:
        speech_tokenizer: the unit tokenizer (e.g. from [`convert_kmeans`]).
        output_dir: where the variant is written (`pipeline_index.json` + one subfolder per component).
        language_model: the unit LM (e.g. from [`convert_slamkit_lm`]), optional.
        vocoder: the vocoder (e.g. from [`convert_unit_hifigan`] / [`convert_seamless_vocoder`]), optional.
        feature_extractor: defaults to the `preprocessor_config.json` next to the speech tokenizer (written by
            `convert_kmeans`), else a `SpeechFeatureExtractor` at the tokenizer's sampling rate.
        tokenizer: a text tokenizer, for text-speech variants.

    Returns:
        The variant as `SpeechLMPipeline.from_pretrained(output_dir)` loads it: its index, component folders and
        compatibility checks (`units.num_units`, `units.frame_rate`, `audio.sampling_rate`) have all run.

    Raises:
        PipelineLoadError: when two components disagree (e.g. a 500-unit tokenizer with a 100-unit vocoder).
    """
    tokenizer_source = speech_tokenizer
    components = {
        "speech_tokenizer": _load(speech_tokenizer, AutoModel.from_pretrained),
        "language_model": _load(language_model, AutoModel.from_pretrained),
        "vocoder": _load(vocoder, AutoModel.from_pretrained),
        "tokenizer": _load(tokenizer, AutoTokenizer.from_pretrained),
    }
    components["feature_extractor"] = _feature_extractor(
        feature_extractor, tokenizer_source, components["speech_tokenizer"]
    )
    check_compatibility(components)  # before writing anything
    pipeline = SpeechLMPipeline(**components)
    pipeline.save_pretrained(output_dir)
    return SpeechLMPipeline.from_pretrained(output_dir)


__all__ = ["assemble_variant"]
