"""Semantic unit tokenizers: speech -> frame features (MFCC or a self-supervised encoder) -> k-means unit ids.

Inference only; fitting the k-means centroids is `hf_slm.training.kmeans`."""

from .batching import TokenizationPlan, default_plan, length_buckets
from .configuration_unit_tokenizer import KMeansUnitTokenizerConfig
from .feature_extraction_unit_tokenizer import AudioInputError, SpeechFeatureExtractor, decode_audio, load_audio
from .modeling_unit_tokenizer import KMeansUnitTokenizer, KMeansUnitTokenizerOutput

__all__ = [
    "AudioInputError",
    "KMeansUnitTokenizer",
    "KMeansUnitTokenizerConfig",
    "KMeansUnitTokenizerOutput",
    "SpeechFeatureExtractor",
    "TokenizationPlan",
    "decode_audio",
    "default_plan",
    "length_buckets",
    "load_audio",
]
