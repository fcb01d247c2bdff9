"""Codecs: audio <-> residual-VQ codes [B, Q, T] behind one interface.

- `CodecModel`: transformers' EnCodec / DAC / Mimi / X-codec (random tiny configs, or real checkpoints via
  `from_codec_pretrained`).
- `RVQCodecModel`: our own trainable SEANet + EMA residual VQ codec, optionally with level 1 distilled toward semantic
  (SSL or MFCC) features: the mixed tokenizer of SpeechTokenizer / Mimi.
- `MelRVQCodecModel`: residual VQ of log-mel frames with k-means codebooks and a Griffin-Lim decoder; no network, so
  it is fitted in minutes on a CPU (`hf_slm.training.kmeans.fit_mel_rvq_codec`).
"""

from .configuration_codec import SUPPORTED_CODECS, CodecConfig, MelRVQCodecConfig, RVQCodecConfig
from .modeling_codec import CodecDecoderOutput, CodecEncoderOutput, CodecModel, CodecOutput
from .audio_rvq_codec import CodecLogMel
from .losses_rvq_codec import semantic_distillation_loss
from .modeling_mel_rvq_codec import MelRVQCodecModel
from .modeling_rvq_codec import RVQCodecModel
from .quantizer_rvq_codec import EMACodebook, ResidualVectorQuantizer

__all__ = [
    "SUPPORTED_CODECS",
    "CodecConfig",
    "CodecDecoderOutput",
    "CodecEncoderOutput",
    "CodecLogMel",
    "CodecModel",
    "CodecOutput",
    "EMACodebook",
    "MelRVQCodecConfig",
    "MelRVQCodecModel",
    "RVQCodecConfig",
    "RVQCodecModel",
    "ResidualVectorQuantizer",
    "semantic_distillation_loss",
]
