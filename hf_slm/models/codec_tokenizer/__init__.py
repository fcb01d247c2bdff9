"""Codec tokenizers: audio <-> residual-VQ codes [B, Q, T] behind one interface.

- `CodecTokenizer`: transformers' EnCodec / DAC / Mimi / X-codec (random tiny configs, or real checkpoints via
  `from_codec_pretrained`).
- `RVQCodec`: our own trainable SEANet + EMA residual VQ codec, optionally with level 1 distilled toward semantic
  (SSL or MFCC) features: the mixed tokenizer of SpeechTokenizer / Mimi.
"""

from .configuration_codec_tokenizer import SUPPORTED_CODECS, CodecTokenizerConfig, RVQCodecConfig
from .modeling_codec_tokenizer import CodecDecoderOutput, CodecModelOutput, CodecOutput, CodecTokenizer
from .audio_rvq_codec import CodecLogMel
from .losses_rvq_codec import semantic_distillation_loss
from .modeling_rvq_codec import RVQCodec
from .quantizer_rvq_codec import EMACodebook, ResidualVectorQuantizer

__all__ = [
    "SUPPORTED_CODECS",
    "CodecDecoderOutput",
    "CodecLogMel",
    "CodecModelOutput",
    "CodecOutput",
    "CodecTokenizer",
    "CodecTokenizerConfig",
    "EMACodebook",
    "RVQCodec",
    "RVQCodecConfig",
    "ResidualVectorQuantizer",
    "semantic_distillation_loss",
]
