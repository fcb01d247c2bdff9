"""Speech we make ourselves: espeak-ng synthesis with word timestamps, text sources, dataset builder."""

from .builder import (
    assign_voices,
    cache_key,
    dataset_features,
    default_cache_dir,
    synthesize_dataset,
    synthesize_to_wav,
)
from .corpus import (
    GRAMMAR,
    TEMPLATES,
    SentencePlan,
    Slot,
    generate_sentences,
    load_text_corpus,
    read_fortunes,
    read_text_file,
    read_wordnet_examples,
    realize,
    sample_plan,
)
from .espeak import (
    EspeakError,
    EspeakSynthesizer,
    SynthesisResult,
    VoiceInfo,
    espeak_version,
    list_variants,
    list_voices,
)

__all__ = [
    "GRAMMAR",
    "TEMPLATES",
    "EspeakError",
    "EspeakSynthesizer",
    "SentencePlan",
    "Slot",
    "SynthesisResult",
    "VoiceInfo",
    "assign_voices",
    "cache_key",
    "dataset_features",
    "default_cache_dir",
    "espeak_version",
    "generate_sentences",
    "list_variants",
    "list_voices",
    "load_text_corpus",
    "read_fortunes",
    "read_text_file",
    "read_wordnet_examples",
    "realize",
    "sample_plan",
    "synthesize_dataset",
    "synthesize_to_wav",
]
