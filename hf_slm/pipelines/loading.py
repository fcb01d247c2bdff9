"""Loading one component of a variant on its own, from either a component folder or a whole pipeline variant."""

from __future__ import annotations

from .pipeline_utils import INDEX_FILE, resolve_pipeline_path
from .speech_lm_pipeline import SpeechLMPipeline


def load_speech_tokenizer(spec: str):
    """`(feature_extractor, speech_tokenizer)` from a tokenizer folder, a pipeline folder / Hub id, or `default`."""
    from transformers import AutoFeatureExtractor, AutoModel

    path = resolve_pipeline_path(spec)
    if (path / INDEX_FILE).exists():
        pipe = SpeechLMPipeline.from_pretrained(str(path))
        return pipe.feature_extractor, pipe.speech_tokenizer
    return AutoFeatureExtractor.from_pretrained(str(path)), AutoModel.from_pretrained(str(path))


__all__ = ["load_speech_tokenizer"]
