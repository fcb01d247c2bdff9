"""HuBERT-style masked-prediction pre-training of a transformers `HubertModel` (the encoder of an SSL unit encoder).

Inference and loss only; the iteration schedule (targets, k-means, Trainer) is `hf_slm.training.ssl_pretraining`."""

from .configuration_ssl_encoder import SSLEncoderConfig
from .modeling_ssl_encoder import SSLEncoderForPreTraining, SSLEncoderForPreTrainingOutput, compute_span_mask

__all__ = ["SSLEncoderConfig", "SSLEncoderForPreTraining", "SSLEncoderForPreTrainingOutput", "compute_span_mask"]
