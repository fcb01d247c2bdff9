"""Semantic unit tokenizers: speech -> frame features (MFCC or a self-supervised encoder) -> k-means unit ids."""

from .configuration_unit_tokenizer import KMeansUnitTokenizerConfig
from .feature_extraction_unit_tokenizer import AudioInputError, SpeechFeatureExtractor, decode_audio, load_audio
from .kmeans import MiniBatchKMeans
from .modeling_unit_tokenizer import KMeansUnitTokenizer, KMeansUnitTokenizerOutput

__all__ = [
    "AudioInputError",
    "KMeansUnitTokenizer",
    "KMeansUnitTokenizerConfig",
    "KMeansUnitTokenizerOutput",
    "MiniBatchKMeans",
    "SpeechFeatureExtractor",
    "decode_audio",
    "load_audio",
]
