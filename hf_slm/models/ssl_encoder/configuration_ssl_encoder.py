"""Configuration of HuBERT-style masked-prediction pre-training: a `HubertConfig` plus the pre-training head."""

from __future__ import annotations

from transformers import HubertConfig


class SSLEncoderConfig(HubertConfig):
    r"""
    Configuration of [`SSLEncoderForPreTraining`]: every argument of transformers' [`HubertConfig`] (the encoder,
    `model.hubert`, is a plain `HubertModel` built from this config) plus HuBERT's masked-prediction head.

    The defaults are HuBERT-base pre-training (Hsu et al. 2021; fairseq `hubert_base_librispeech.yaml`): 12 layers of
    768, spans of `mask_time_length=10` frames starting at `mask_time_prob=0.8` of the frames (about half of all
    frames end up masked), a 256-dim projection compared by cosine similarity with one learned embedding per target
    unit, divided by a temperature of 0.1, and the loss on masked frames only.

    Args:
        num_label_classes (`int`, *optional*, defaults to 100):
            Number of target units (the k-means clusters of the current iteration).
        final_dim (`int`, *optional*, defaults to 256):
            Dimension of the projection and of the label embeddings.
        logit_temperature (`float`, *optional*, defaults to 0.1):
            Cosine similarities are divided by it before the softmax.
        masked_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the cross-entropy on masked frames (fairseq `pred_masked_weight`).
        unmasked_loss_weight (`float`, *optional*, defaults to 0.0):
            Weight of the cross-entropy on unmasked, non-padded frames (fairseq `pred_nomask_weight`); 0 trains on
            masked frames only, as HuBERT does.
        mask_time_prob (`float`, *optional*, defaults to 0.8):
            HuBERT's `mask_prob`: the expected fraction of frames that start a masked span. The encoder's
            `masked_spec_embed` replaces the features of masked frames.
        mask_time_length (`int`, *optional*, defaults to 10):
            HuBERT's `mask_length`: frames per span.
        kwargs:
            Passed to [`HubertConfig`] (hidden size, layers, conv stack, ...).

    Example:

    ```python
    >>> from hf_slm import SSLEncoderConfig
    >>> config = SSLEncoderConfig(num_label_classes=500)
    >>> config.num_hidden_layers, config.mask_time_prob, config.frame_rate
    (12, 0.8, 50.0)

    ```
    """

    model_type = "hf_slm_ssl_encoder"

    def __init__(
        self,
        num_label_classes: int = 100,
        final_dim: int = 256,
        logit_temperature: float = 0.1,
        masked_loss_weight: float = 1.0,
        unmasked_loss_weight: float = 0.0,
        mask_time_prob: float = 0.8,
        mask_time_length: int = 10,
        **kwargs,
    ):
        for name, value in (("num_label_classes", num_label_classes), ("final_dim", final_dim),
                            ("mask_time_length", mask_time_length)):  # fmt: skip
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not logit_temperature > 0:
            raise ValueError(f"logit_temperature must be > 0, got {logit_temperature!r}")
        if not 0.0 < mask_time_prob <= 1.0:
            raise ValueError(f"mask_time_prob must be in (0, 1] for masked prediction, got {mask_time_prob!r}")
        if masked_loss_weight < 0 or unmasked_loss_weight < 0 or masked_loss_weight + unmasked_loss_weight <= 0:
            raise ValueError(
                f"loss weights must be >= 0 and not both 0, got masked_loss_weight={masked_loss_weight!r}, "
                f"unmasked_loss_weight={unmasked_loss_weight!r}"
            )
        self.num_label_classes = num_label_classes
        self.final_dim = final_dim
        self.logit_temperature = logit_temperature
        self.masked_loss_weight = masked_loss_weight
        self.unmasked_loss_weight = unmasked_loss_weight
        super().__init__(mask_time_prob=mask_time_prob, mask_time_length=mask_time_length, **kwargs)

    @property
    def hop_length(self) -> int:
        """Samples per encoder frame (product of the conv strides; 320 = 20 ms at 16 kHz for HuBERT)."""
        hop = 1
        for stride in self.conv_stride:
            hop *= stride
        return hop

    @property
    def receptive_field(self) -> int:
        """Samples that give the first frame (400 = 25 ms for HuBERT's conv stack, as the MFCC window)."""
        field = 1
        for kernel, stride in reversed(list(zip(self.conv_kernel, self.conv_stride))):
            field = (field - 1) * stride + kernel
        return field

    @property
    def frame_rate(self) -> float:
        """Encoder frames (and target labels) per second at 16 kHz."""
        return 16000 / self.hop_length

    def encoder_config(self) -> HubertConfig:
        """The plain `HubertConfig` of the encoder (the pre-training fields dropped; `mask_time_prob` back to
        HubertConfig's SpecAugment default for fine-tuning, `masked_spec_embed` is kept)."""
        extra = {"num_label_classes", "final_dim", "logit_temperature", "masked_loss_weight", "unmasked_loss_weight"}
        values = {k: v for k, v in self.to_dict().items() if k not in extra | {"model_type", "auto_map", "architectures"}}
        values["mask_time_prob"] = HubertConfig().mask_time_prob
        return HubertConfig(**values)


__all__ = ["SSLEncoderConfig"]
