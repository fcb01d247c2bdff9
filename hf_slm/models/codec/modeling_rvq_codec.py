"""Our own trainable neural codec: SEANet-style conv encoder / decoder around an EMA residual vector quantizer.

SoundStream / EnCodec without the LSTM (a finite receptive field, so chunked decoding is exact), causal by default.
Optional semantic distillation of the first RVQ level toward a teacher's features (SpeechTokenizer, Mimi) makes the
level-1 codes a semantic token stream and the other levels the acoustic detail: the "mixed" tokenizer.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init

from .configuration_codec import RVQCodecConfig
from .modeling_codec import (
    CodecEncoderOutput,
    CodecModelMixin,
    CodecOutput,
    check_audio,
    check_codes,
    lengths_to_mask,
)
from .audio_rvq_codec import CodecLogMel
from .losses_rvq_codec import align_with_labels, mel_l1_loss, semantic_distillation_loss
from .quantizer_rvq_codec import EMACodebook, ResidualVectorQuantizer

# ---------------------------------------------------------------------------------------------------- SEANet layers
class CodecConv1d(nn.Module):
    """Conv1d whose padding keeps `length / stride` frames exactly: all on the left when causal, else centred."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1, causal=True):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation)
        total = (kernel_size - 1) * dilation - (stride - 1)
        self.padding = (total, 0) if causal else (total - total // 2, total // 2)

    def forward(self, hidden):
        return self.conv(nn.functional.pad(hidden, self.padding))


class CodecConvTranspose1d(nn.Module):
    """ConvTranspose1d trimmed to exactly `length * stride` samples: the overhang is cut on the right when causal."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, causal=True):
        super().__init__()
        self.conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride)
        total = kernel_size - stride
        self.trim = (0, total) if causal else (total // 2, total - total // 2)

    def forward(self, hidden):
        hidden = self.conv(hidden)
        return hidden[..., self.trim[0] : hidden.shape[-1] - self.trim[1]]


class SEANetResidualUnit(nn.Module):
    """ELU -> dilated conv (channels / compress) -> ELU -> 1x1 conv, plus the identity."""

    def __init__(self, channels, kernel_size, dilation, compress, causal):
        super().__init__()
        hidden = max(1, channels // compress)
        self.conv1 = CodecConv1d(channels, hidden, kernel_size, dilation=dilation, causal=causal)
        self.conv2 = CodecConv1d(hidden, channels, 1, causal=causal)

    def forward(self, hidden, mask):
        residual = self.conv2(nn.functional.elu(self.conv1(nn.functional.elu(hidden))))
        return (hidden + residual) * mask


def _mask(lengths, size, dtype):
    return lengths_to_mask(lengths, size)[:, None].to(dtype)


class SEANetEncoderBlock(nn.Module):
    """Residual units at `channels`, then ELU + strided conv (kernel 2 * stride) to `2 * channels`."""

    def __init__(self, config, channels, stride):
        super().__init__()
        self.stride = stride
        self.residual_units = nn.ModuleList(
            SEANetResidualUnit(
                channels, config.residual_kernel_size, config.dilation_growth_rate**j, config.compress, config.causal
            )
            for j in range(config.num_residual_layers)
        )
        self.downsample = CodecConv1d(channels, 2 * channels, 2 * stride, stride=stride, causal=config.causal)

    def forward(self, hidden, lengths):
        mask = _mask(lengths, hidden.shape[-1], hidden.dtype)
        for unit in self.residual_units:
            hidden = unit(hidden, mask)
        hidden = self.downsample(nn.functional.elu(hidden))
        lengths = torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")
        return hidden * _mask(lengths, hidden.shape[-1], hidden.dtype), lengths


class SEANetDecoderBlock(nn.Module):
    """ELU + transposed conv (kernel 2 * stride) from `channels` to `channels / 2`, then residual units."""

    def __init__(self, config, channels, stride):
        super().__init__()
        self.stride = stride
        self.upsample = CodecConvTranspose1d(channels, channels // 2, 2 * stride, stride, causal=config.causal)
        self.residual_units = nn.ModuleList(
            SEANetResidualUnit(
                channels // 2,
                config.residual_kernel_size,
                config.dilation_growth_rate**j,
                config.compress,
                config.causal,
            )
            for j in range(config.num_residual_layers)
        )

    def forward(self, hidden, lengths):
        hidden = self.upsample(nn.functional.elu(hidden))
        lengths = lengths * self.stride
        mask = _mask(lengths, hidden.shape[-1], hidden.dtype)
        hidden = hidden * mask
        for unit in self.residual_units:
            hidden = unit(hidden, mask)
        return hidden, lengths


class SEANetEncoder(nn.Module):
    """Waveform [B, S] (S a multiple of hop) -> latents [B, hidden_size, S / hop]; zero past each item's frames.

    Hidden states are zeroed past each item's valid length after every layer, so a padded batch gives every item
    exactly what it gets alone, causal or not.
    """

    def __init__(self, config):
        super().__init__()
        channels = config.num_filters
        self.conv_in = CodecConv1d(1, channels, config.kernel_size, causal=config.causal)
        blocks = []
        for stride in reversed(config.upsampling_ratios):
            blocks.append(SEANetEncoderBlock(config, channels, stride))
            channels *= 2
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = CodecConv1d(channels, config.hidden_size, config.last_kernel_size, causal=config.causal)

    def forward(self, waveform, lengths):
        hidden = self.conv_in(waveform[:, None]) * _mask(lengths, waveform.shape[-1], waveform.dtype)
        for block in self.blocks:
            hidden, lengths = block(hidden, lengths)
        hidden = self.conv_out(nn.functional.elu(hidden))
        return hidden * _mask(lengths, hidden.shape[-1], hidden.dtype), lengths


class SEANetDecoder(nn.Module):
    """Latents [B, hidden_size, T] -> waveform [B, T * hop]; the mirror of [`SEANetEncoder`]."""

    def __init__(self, config):
        super().__init__()
        channels = config.num_filters * 2 ** len(config.upsampling_ratios)
        self.conv_in = CodecConv1d(config.hidden_size, channels, config.kernel_size, causal=config.causal)
        blocks = []
        for stride in config.upsampling_ratios:
            blocks.append(SEANetDecoderBlock(config, channels, stride))
            channels //= 2
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = CodecConv1d(channels, 1, config.last_kernel_size, causal=config.causal)

    def forward(self, latents, frames):
        hidden = self.conv_in(latents) * _mask(frames, latents.shape[-1], latents.dtype)
        lengths = frames
        for block in self.blocks:
            hidden, lengths = block(hidden, lengths)
        waveform = self.conv_out(nn.functional.elu(hidden))[:, 0]
        return waveform * lengths_to_mask(lengths, waveform.shape[-1]).to(waveform.dtype)


# ---------------------------------------------------------------------------------------------------- the model
class RVQCodecModel(CodecModelMixin, PreTrainedModel):
    r"""
    SEANet encoder -> EMA residual vector quantizer -> SEANet decoder, trained as a GAN (`hf_slm.training.
    CodecGanTrainer`: mel L1 + commitment (+ semantic distillation) + HiFi-GAN's adversarial and feature-matching
    terms against multi-period / multi-scale discriminators that the trainer attaches).

    - `encode(input_values [B, S], attention_mask) -> CodecEncoderOutput(codes [B, Q, T], codes_mask [B, T], latents)`,
      `T = ceil(S / hop_length)`;
    - `decode(codes [B, q, T], codes_mask) -> CodecDecoderOutput(waveform [B, T * hop_length], waveform_lengths)`;
      `q <= num_codebooks` levels decode at a lower bitrate;
    - `forward(input_values, attention_mask, labels=..., semantic_features=...)` autoencodes and returns the
      non-adversarial training loss; `forward(input_ids=codes, attention_mask=frames_mask)` decodes (the pipeline's
      vocoder call).

    Example:

    ```python
    >>> import torch
    >>> from hf_slm import RVQCodecModel, RVQCodecConfig
    >>> config = RVQCodecConfig(upsampling_ratios=(4, 4), num_filters=4, hidden_size=8, num_codebooks=2,
    ...                         codebook_size=16)
    >>> codec = RVQCodecModel(config).eval()
    >>> out = codec.encode(torch.randn(2, 100), attention_mask=torch.tensor([[1] * 100, [1] * 40 + [0] * 60]))
    >>> out.codes.shape, out.codes_mask.sum(-1).tolist()
    (torch.Size([2, 2, 7]), [7, 3])
    >>> codec.decode(out.codes, out.codes_mask).waveform.shape
    torch.Size([2, 112])

    ```
    """

    config_class = RVQCodecConfig
    base_model_prefix = "rvq_codec"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = False
    _keys_to_ignore_on_load_unexpected = [r"^discriminator\."]

    def __init__(self, config: RVQCodecConfig):
        super().__init__(config)
        self.encoder = SEANetEncoder(config)
        self.quantizer = ResidualVectorQuantizer(config)
        self.decoder = SEANetDecoder(config)
        dim = config.semantic_distillation_dim
        self.semantic_projection = nn.Linear(config.hidden_size, dim) if dim else None
        #: GAN discriminators, attached by `hf_slm.training.CodecGanTrainer` for training only.
        self.discriminator = None
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        """Kaiming-normal convs (transformers' EnCodec init), PyTorch-default linears, random codebooks.

        PyTorch's default conv init shrinks activations layer by layer: at the tiny test sizes the latents vary by
        ~0.01 over time, every ELU works in its linear range and the encoder is close to a linear filter of the
        zero-mean waveform. Kaiming-normal keeps activations at unit scale (latents vary by ~1), so the encoder
        starts nonlinear; with it, level-1 distillation takes hold within tens of steps (docs/codec.md).
        """
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
            init.kaiming_normal_(module.weight)
            if module.bias is not None:
                fan_in = module.weight.shape[1] * math.prod(module.weight.shape[2:])
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight.shape[1] * math.prod(module.weight.shape[2:])
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, EMACodebook):
            init.kaiming_uniform_(module.embed)
            init.copy_(module.embed_avg, module.embed)
            init.zeros_(module.cluster_size)
            init.constant_(module.initialized, 0.0 if module.kmeans_init else 1.0)

    # ------------------------------------------------------------------ training helpers
    def mel_transform(self, device=None) -> CodecLogMel:
        """The loss log-mel, built on first use per device and kept out of the state dict."""
        cache = self.__dict__.setdefault("_mel_transforms", {})
        device = device or self.decoder.conv_out.conv.weight.device
        key = str(device)
        if key not in cache:
            config = self.config
            cache[key] = CodecLogMel(
                config.sampling_rate, config.mel_n_fft, config.mel_hop_length, config.mel_win_length,
                config.num_mel_bins, config.mel_fmin, config.mel_fmax,
            ).to(device)
        return cache[key]

    align_with_labels = staticmethod(align_with_labels)

    def generator_parameters(self):
        """Named parameters of everything but the discriminators (what the generator optimiser updates)."""
        return [(n, p) for n, p in self.named_parameters() if not n.startswith("discriminator.")]

    def save_pretrained(self, save_directory, *args, keep_discriminators: bool | None = None, **kwargs):
        """`PreTrainedModel.save_pretrained`, writing the codec only unless `keep_discriminators` (default:
        `config.keep_discriminators`) is true and a trainer attached discriminators."""
        keep = self.config.keep_discriminators if keep_discriminators is None else keep_discriminators
        if keep and self.discriminator is None:
            raise ValueError("keep_discriminators=True but no discriminators are attached (CodecGanTrainer does it)")
        state_dict = kwargs.pop("state_dict", None)
        if not keep:
            state_dict = self.state_dict() if state_dict is None else state_dict
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith("discriminator.")}
        previous = self.config.keep_discriminators
        self.config.keep_discriminators = keep
        try:
            return super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)
        finally:
            self.config.keep_discriminators = previous

    # ------------------------------------------------------------------ encode / decode
    def _encode(self, input_values, attention_mask, num_codebooks):
        waveforms, lengths = check_audio(input_values, attention_mask)
        waveforms, _ = self._pad_to_frames(waveforms, lengths)
        dtype = self.decoder.conv_out.conv.weight.dtype
        latents, frames = self.encoder(waveforms.to(dtype), lengths)
        mask = lengths_to_mask(frames, latents.shape[-1])
        quantized, codes, commitment, first = self.quantizer(latents, mask, num_codebooks)
        return latents, quantized, codes, mask, commitment, first, lengths

    def encode(self, input_values, attention_mask=None, num_codebooks: int | None = None, return_dict=None):
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch, samples)`): right-padded mono audio at
                `config.sampling_rate`.
            attention_mask (`torch.Tensor` of shape `(batch, samples)`, *optional*): 1 for real samples.
            num_codebooks (`int`, *optional*): levels to keep (default all `config.num_codebooks`).
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        latents, _, codes, mask, _, _, _ = self._encode(
            input_values, attention_mask, self.config.num_codebooks if num_codebooks is None else num_codebooks
        )
        output = CodecEncoderOutput(codes=self._padded_codes(codes, mask), codes_mask=mask, latents=latents)
        return output if return_dict else output.to_tuple()

    def decode(self, codes, codes_mask=None, return_dict=None):
        r"""
        Args:
            codes (`torch.LongTensor` of shape `(batch, q, frames)`): codes of the first `q <= num_codebooks` levels;
                `(batch, frames)` means level 1 only.
            codes_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*): 1 for real frames.
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        codes, mask = check_codes(codes, codes_mask, self.codebook_size, self.num_codebooks)
        frames = mask.long().sum(-1)
        latents = self.quantizer.decode(codes) * mask[:, None].to(self.quantizer.codebooks[0].embed.dtype)
        waveform = self.decoder(latents.to(self.decoder.conv_out.conv.weight.dtype), frames)
        return self._decoded(waveform, frames, return_dict)

    # ------------------------------------------------------------------ forward
    def _distillation(self, first, mask, semantic_features, semantic_features_mask):
        """Project level 1 to the teacher's space; the D-axis loss over the frames both sides have."""
        if semantic_features.dim() != 3 or semantic_features.shape[0] != first.shape[0]:
            raise ValueError(f"semantic_features must be [batch, frames, dim], got {tuple(semantic_features.shape)}")
        if semantic_features.shape[-1] != self.config.semantic_distillation_dim:
            raise ValueError(
                f"semantic_features have dim {semantic_features.shape[-1]}, config.semantic_distillation_dim is "
                f"{self.config.semantic_distillation_dim}"
            )
        student = self.semantic_projection(first.transpose(1, 2))
        frames = min(student.shape[1], semantic_features.shape[1])
        both = mask[:, :frames]
        if semantic_features_mask is not None:
            both = both & semantic_features_mask[:, :frames].bool().to(both.device)
        loss = semantic_distillation_loss(student[:, :frames], semantic_features[:, :frames].to(student.device), both)
        return student, loss

    def forward(
        self,
        input_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_ids: torch.LongTensor | None = None,
        labels: torch.FloatTensor | None = None,
        labels_mask: torch.Tensor | None = None,
        semantic_features: torch.FloatTensor | None = None,
        semantic_features_mask: torch.Tensor | None = None,
        num_codebooks: int | None = None,
        return_dict: bool | None = None,
    ) -> CodecOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch, samples)`, *optional*): audio to autoencode.
            attention_mask (`torch.Tensor`, *optional*): mask of the given input (samples, or frames of `input_ids`).
            input_ids (`torch.LongTensor` of shape `(batch, q, frames)`, *optional*): codes to decode (the vocoder
                call of a pipeline); exclusive with `input_values`.
            labels (`torch.FloatTensor` of shape `(batch, samples)`, *optional*): target audio (normally the input
                itself); turns on the loss.
            labels_mask (`torch.Tensor` of shape `(batch, samples)`, *optional*): valid samples of `labels`.
            semantic_features (`torch.FloatTensor` of shape `(batch, frames, semantic_distillation_dim)`, *optional*):
                teacher features at the codec's frame rate (e.g. a fitted `UnitEncoderModel`'s standardised MFCC
                or SSL features); required with `labels` when the config distils.
            semantic_features_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*): their valid frames.
            num_codebooks (`int`, *optional*): levels to use (default all, or a random prefix under
                `quantizer_dropout` while training).
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if (input_values is None) == (input_ids is None):
            raise ValueError("pass exactly one of input_values (audio to autoencode) or input_ids (codes to decode)")
        if input_ids is not None:
            decoded = self.decode(input_ids, attention_mask, return_dict=True)
            output = CodecOutput(waveform=decoded.waveform, waveform_lengths=decoded.waveform_lengths)
            return output if return_dict else output.to_tuple()

        latents, quantized, codes, mask, commitment, first, lengths = self._encode(
            input_values, attention_mask, num_codebooks
        )
        if self.training and self.config.quantizer_bypass > 0:
            bypass = torch.rand(latents.shape[0], device=latents.device) < self.config.quantizer_bypass
            quantized = torch.where(bypass[:, None, None], latents, quantized)
        waveform = self.decoder(quantized, mask.long().sum(-1))
        width = min(waveform.shape[1], input_values.shape[-1])
        waveform = waveform[:, :width] * lengths_to_mask(lengths, width).to(waveform.dtype)

        config = self.config
        loss = loss_mel = loss_distillation = student = None
        if config.semantic_distillation_dim and semantic_features is not None:
            student, loss_distillation = self._distillation(first, mask, semantic_features, semantic_features_mask)
        if labels is not None:
            if config.semantic_distillation_dim and semantic_features is None and self.training:
                raise ValueError(
                    "this codec distils level 1 (config.semantic_distillation_dim is set): training needs "
                    "semantic_features (CodecGanTrainer computes them with its semantic_teacher)"
                )
            real, generated, common = self.align_with_labels(waveform, lengths, labels, labels_mask)
            loss_mel = mel_l1_loss(real, generated, self.mel_transform(waveform.device), common)
            loss = config.lambda_mel * loss_mel + config.lambda_commitment * commitment
            if loss_distillation is not None:
                loss = loss + config.lambda_distillation * loss_distillation

        output = CodecOutput(
            loss=loss,
            waveform=waveform,
            waveform_lengths=lengths,
            codes=self._padded_codes(codes, mask),
            codes_mask=mask,
            loss_mel=None if loss_mel is None else loss_mel.detach(),
            loss_commitment=commitment.detach(),
            loss_distillation=None if loss_distillation is None else loss_distillation.detach(),
            semantic_embeddings=student,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "CodecConv1d",
    "CodecConvTranspose1d",
    "RVQCodecModel",
    "SEANetDecoder",
    "SEANetEncoder",
]
