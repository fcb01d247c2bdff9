"""Speech we make ourselves: espeak-ng synthesis with word timestamps, text sources, dataset builder."""

from .builder import (
    assign_voices,
    cache_key,
    dataset_features,
    default_cache_dir,
    synthesize_dataset,
    synthesize_to_wav,
)
from .espeak import EspeakError, EspeakSynthesizer, SynthesisResult, VoiceInfo, espeak_version, list_variants, list_voices

__all__ = [
    "EspeakError",
    "EspeakSynthesizer",
    "SynthesisResult",
    "VoiceInfo",
    "assign_voices",
    "cache_key",
    "dataset_features",
    "default_cache_dir",
    "espeak_version",
    "list_variants",
    "list_voices",
    "synthesize_dataset",
    "synthesize_to_wav",
]
