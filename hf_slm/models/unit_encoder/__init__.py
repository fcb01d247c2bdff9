"""Unit encoders (semantic speech tokenizers): speech -> frame features (MFCC or an SSL encoder) -> k-means unit ids.

Inference only; fitting the k-means centroids is `hf_slm.training.kmeans`."""

from .batching import TokenizationPlan, default_plan, length_buckets
from .configuration_unit_encoder import DEFAULT_VTLN_WARPS, VTLN_TOKENIZATIONS, UnitEncoderConfig
from .feature_extraction_unit_encoder import AudioInputError, SpeechFeatureExtractor, decode_audio, load_audio
from .modeling_unit_encoder import UnitEncoderModel, UnitEncoderOutput

__all__ = [
    "AudioInputError",
    "DEFAULT_VTLN_WARPS",
    "SpeechFeatureExtractor",
    "TokenizationPlan",
    "UnitEncoderConfig",
    "UnitEncoderModel",
    "UnitEncoderOutput",
    "VTLN_TOKENIZATIONS",
    "decode_audio",
    "default_plan",
    "length_buckets",
    "load_audio",
]
