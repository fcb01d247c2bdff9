"""Codecs behind one interface: `encode(audio) -> codes [B, Q, T]`, `decode(codes) -> audio`.

`CodecModel` wraps the neural codecs that transformers ships (EnCodec, DAC, Mimi, X-codec), whose `encode` /
`decode` signatures, code layouts and padding rules all differ; `RVQCodecModel` (`modeling_rvq_codec.py`) is our own
trainable codec. Both return the same outputs and also act as a pipeline vocoder for codec tokens:
`model(input_ids=codes, attention_mask=frames_mask).waveform`, like the unit vocoders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_codec import CodecConfig


@dataclass
class CodecEncoderOutput(ModelOutput):
    """
    Output of `encode`.

    Args:
        codes (`torch.LongTensor` of shape `(batch, num_codebooks, frames)`): code of every residual level and frame;
            `config.pad_code_id` at padded frames.
        codes_mask (`torch.BoolTensor` of shape `(batch, frames)`): True for real frames (`ceil(samples / hop)`).
        latents (`torch.FloatTensor` of shape `(batch, hidden_size, frames)`, *optional*): the continuous encoder
            output before quantization (`RVQCodecModel` only).
    """

    codes: torch.LongTensor | None = None
    codes_mask: torch.BoolTensor | None = None
    latents: torch.FloatTensor | None = None

    def unpadded(self) -> list[torch.LongTensor]:
        """Codes of each utterance without padding, on the CPU: a list of `[num_codebooks, frames]` tensors (the
        speech-tokenizer interface shared with `UnitEncoderOutput.unpadded`)."""
        return [c[:, m].cpu() for c, m in zip(self.codes, self.codes_mask)]


@dataclass
class CodecDecoderOutput(ModelOutput):
    """
    Output of `decode`.

    Args:
        waveform (`torch.FloatTensor` of shape `(batch, samples)`): decoded audio, exactly 0 after
            `waveform_lengths`.
        waveform_lengths (`torch.LongTensor` of shape `(batch,)`): valid samples (`frames * hop_length`).
    """

    waveform: torch.FloatTensor | None = None
    waveform_lengths: torch.LongTensor | None = None


@dataclass
class CodecOutput(ModelOutput):
    """
    Output of a codec's `forward`: audio -> codes -> audio (autoencoding), or codes -> audio (`input_ids`, the
    vocoder call that pipelines make). The field names match the unit vocoders' `UnitVocoderOutput`.

    Args:
        loss (`torch.FloatTensor`, *optional*): `lambda_mel * L_mel + lambda_commitment * L_commit
            (+ lambda_distillation * L_distill)`, when `labels` are given (`RVQCodecModel` only); the GAN trainer adds
            the adversarial and feature-matching terms.
        waveform (`torch.FloatTensor` of shape `(batch, samples)`): reconstructed / decoded audio.
        waveform_lengths (`torch.LongTensor` of shape `(batch,)`): valid samples of `waveform`.
        codes (`torch.LongTensor` of shape `(batch, num_codebooks, frames)`, *optional*): codes (autoencoding).
        codes_mask (`torch.BoolTensor` of shape `(batch, frames)`, *optional*): real frames of `codes`.
        loss_mel (`torch.FloatTensor`, *optional*): unweighted mel L1.
        loss_commitment (`torch.FloatTensor`, *optional*): unweighted commitment loss (mean over levels).
        loss_distillation (`torch.FloatTensor`, *optional*): unweighted semantic distillation loss.
        semantic_embeddings (`torch.FloatTensor` of shape `(batch, frames, semantic_distillation_dim)`, *optional*):
            level-1 quantized output projected to the teacher's feature space (distilled codecs).
    """

    loss: torch.FloatTensor | None = None
    waveform: torch.FloatTensor | None = None
    waveform_lengths: torch.LongTensor | None = None
    codes: torch.LongTensor | None = None
    codes_mask: torch.BoolTensor | None = None
    loss_mel: torch.FloatTensor | None = None
    loss_commitment: torch.FloatTensor | None = None
    loss_distillation: torch.FloatTensor | None = None
    semantic_embeddings: torch.FloatTensor | None = None


# ---------------------------------------------------------------------------------------------------- input checks
def check_audio(input_values, attention_mask=None):
    """Validate right-padded mono audio; returns `(waveforms [B, S] float, lengths [B] long)`, padding zeroed."""
    if not torch.is_tensor(input_values):
        raise ValueError(f"input_values must be a torch.FloatTensor of audio, got {type(input_values).__name__}")
    if input_values.dim() == 3:
        if input_values.shape[1] != 1:
            raise ValueError(f"input_values must be mono: [batch, 1, samples] has {input_values.shape[1]} channels")
        input_values = input_values[:, 0]
        attention_mask = attention_mask.reshape(input_values.shape) if attention_mask is not None else None
    if input_values.dim() == 1:
        input_values = input_values[None]
        attention_mask = None if attention_mask is None else attention_mask.reshape(1, -1)
    if input_values.dim() != 2:
        raise ValueError(f"input_values must be [batch, samples], got shape {tuple(input_values.shape)}")
    if not input_values.is_floating_point():
        raise ValueError(f"input_values must be float audio, got {input_values.dtype}")
    batch, samples = input_values.shape
    if samples == 0:
        raise ValueError("input_values is empty: cannot encode zero samples")
    if attention_mask is None:
        return input_values, torch.full((batch,), samples, dtype=torch.long, device=input_values.device)
    if attention_mask.shape != input_values.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} != input_values shape {tuple(input_values.shape)}"
        )
    lengths = attention_mask.long().sum(-1)
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        # Checks that read the data stop torch.export / fullgraph compiles: a traced model trusts its mask.
        return input_values * attention_mask.to(input_values.dtype), lengths
    if not torch.equal(lengths_to_mask(lengths, samples), attention_mask.bool()):
        raise ValueError("attention_mask must be right-padded (ones, then zeros) in every row")
    if (lengths == 0).any():
        raise ValueError(f"batch item {int((lengths == 0).nonzero()[0])} has no samples (attention_mask is all 0)")
    return input_values * attention_mask.to(input_values.dtype), lengths


def check_codes(codes, codes_mask, codebook_size, max_codebooks):
    """Validate codes `[B, Q, T]` (or `[B, T]`, one codebook); returns `(codes [B, Q, T], padding 0; mask [B, T])`."""
    if not torch.is_tensor(codes):
        raise ValueError(f"codes must be a torch.LongTensor, got {type(codes).__name__}")
    if codes.is_floating_point():
        raise ValueError(f"codes must hold integer code ids, got {codes.dtype}")
    if codes.dim() == 2:
        codes = codes[:, None]
    if codes.dim() != 3:
        raise ValueError(
            f"codes must be [batch, num_codebooks, frames] (or [batch, frames] for one codebook), got shape "
            f"{tuple(codes.shape)}"
        )
    batch, levels, frames = codes.shape
    if levels > max_codebooks:
        raise ValueError(f"codes have {levels} codebooks, but this codec has {max_codebooks}")
    if frames == 0:
        raise ValueError("codes are empty: cannot decode zero frames")
    if codes_mask is None:
        mask = torch.ones(batch, frames, dtype=torch.bool, device=codes.device)
    else:
        if tuple(codes_mask.shape) != (batch, frames):
            raise ValueError(f"codes_mask must be [batch, frames] = {(batch, frames)}, got {tuple(codes_mask.shape)}")
        mask = codes_mask.bool().to(codes.device)
        if not torch.equal(lengths_to_mask(mask.long().sum(-1), frames), mask):
            raise ValueError("codes_mask must be right-padded (ones, then zeros) in every row")
        if not mask.any(-1).all():
            raise ValueError("every item needs at least one frame (a codes_mask row is all 0)")
    valid = codes.masked_select(mask[:, None])
    if valid.numel() and (valid.min() < 0 or valid.max() >= codebook_size):
        raise ValueError(
            f"codes must be in [0, {codebook_size}) where codes_mask is 1, got values in [{int(valid.min())}, "
            f"{int(valid.max())}] (padding codes must be masked out)"
        )
    return torch.where(mask[:, None], codes, 0).long(), mask


def lengths_to_mask(lengths, size):
    """[B] lengths -> [B, size] bool mask."""
    return torch.arange(size, device=lengths.device)[None] < lengths[:, None]


class CodecModelMixin:
    """What every codec tokenizer shares: derived properties, the frame count rule, and a `forward` that either
    autoencodes audio or decodes codes (the call a pipeline makes on its vocoder)."""

    @property
    def sampling_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def num_codebooks(self) -> int:
        return self.config.num_codebooks

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def bitrate(self) -> float:
        return self.config.bitrate

    def num_frames(self, lengths):
        """Code frames for `lengths` samples: `ceil(lengths / hop_length)` (audio is zero-padded to whole frames)."""
        if torch.is_tensor(lengths):
            return torch.div(lengths + self.hop_length - 1, self.hop_length, rounding_mode="floor")
        return math.ceil(lengths / self.hop_length)

    def _pad_to_frames(self, waveforms, lengths):
        """Crop / zero-pad a batch to whole frames of the longest item; returns (waveforms, frames per item)."""
        frames = self.num_frames(lengths)
        total = int(frames.max()) * self.hop_length
        waveforms = waveforms[:, :total]
        if waveforms.shape[1] < total:
            waveforms = nn.functional.pad(waveforms, (0, total - waveforms.shape[1]))
        return waveforms, frames

    def _padded_codes(self, codes, mask):
        return codes.masked_fill(~mask[:, None], self.config.pad_code_id)

    def _decoded(self, waveform, frames, return_dict):
        lengths = frames * self.hop_length
        waveform = waveform * lengths_to_mask(lengths, waveform.shape[1]).to(waveform.dtype)
        output = CodecDecoderOutput(waveform=waveform, waveform_lengths=lengths)
        return output if return_dict else output.to_tuple()

    def forward(
        self,
        input_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_ids: torch.LongTensor | None = None,
        num_codebooks: int | None = None,
        return_dict: bool | None = None,
    ) -> CodecOutput | tuple:
        r"""
        Autoencode audio (the waveform cut to each input's length) or decode codes.

        Args:
            input_values (`torch.FloatTensor` of shape `(batch, samples)`, *optional*): audio to autoencode.
            attention_mask (`torch.Tensor`, *optional*): mask of the given input (samples, or frames of `input_ids`).
            input_ids (`torch.LongTensor` of shape `(batch, q, frames)`, *optional*): codes to decode, as a pipeline
                calls its vocoder; exclusive with `input_values`.
            num_codebooks (`int`, *optional*): levels to use when autoencoding.
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if (input_values is None) == (input_ids is None):
            raise ValueError("pass exactly one of input_values (audio to autoencode) or input_ids (codes to decode)")
        codes = codes_mask = None
        if input_ids is not None:
            decoded = self.decode(input_ids, attention_mask, return_dict=True)
        else:
            encoded = self.encode(input_values, attention_mask, num_codebooks=num_codebooks, return_dict=True)
            codes, codes_mask = encoded.codes, encoded.codes_mask
            decoded = self.decode(codes, codes_mask, return_dict=True)
            _, lengths = check_audio(input_values, attention_mask)
            width = min(decoded.waveform.shape[1], input_values.shape[-1])
            decoded.waveform_lengths = lengths.to(decoded.waveform.device)
            decoded.waveform = decoded.waveform[:, :width] * lengths_to_mask(decoded.waveform_lengths, width)
        output = CodecOutput(
            waveform=decoded.waveform, waveform_lengths=decoded.waveform_lengths, codes=codes, codes_mask=codes_mask
        )
        return output if return_dict else output.to_tuple()



class CodecModel(CodecModelMixin, PreTrainedModel):
    r"""
    A transformers neural codec (EnCodec, DAC, Mimi, X-codec) behind the hf_slm codec interface.

    - `encode(input_values [B, S], attention_mask) -> CodecEncoderOutput(codes [B, Q, T], codes_mask [B, T])` with
      `Q = config.num_codebooks` and `T = ceil(S / hop_length)`;
    - `decode(codes, codes_mask) -> CodecDecoderOutput(waveform [B, T * hop_length], waveform_lengths)`;
    - `forward(input_values=...)` autoencodes; `forward(input_ids=codes, attention_mask=frames_mask)` decodes (the
      pipeline's vocoder call).

    A padded batch gives every item the codes it gets alone: causal codecs (EnCodec, Mimi) run batched, since right
    padding cannot reach earlier frames; non-causal ones (DAC, X-codec), and EnCodec items shorter than its last
    kernel (reflect padding), run item by item when lengths differ.
    Tests use tiny random configs; real checkpoints load with [`~CodecModel.from_codec_pretrained`].

    Example:

    ```python
    >>> import torch
    >>> from transformers import DacConfig
    >>> from hf_slm import CodecModel, CodecConfig
    >>> dac = DacConfig(encoder_hidden_size=4, downsampling_ratios=[2, 4], decoder_hidden_size=16, n_codebooks=4,
    ...                 codebook_size=64, codebook_dim=4)
    >>> codec = CodecModel(CodecConfig(codec_config=dac, num_codebooks=2)).eval()
    >>> out = codec.encode(torch.randn(2, 100), attention_mask=torch.tensor([[1] * 100, [1] * 60 + [0] * 40]))
    >>> out.codes.shape, out.codes_mask.sum(-1).tolist()
    (torch.Size([2, 2, 13]), [13, 8])
    >>> codec.decode(out.codes, out.codes_mask).waveform_lengths.tolist()
    [104, 64]

    ```
    """

    config_class = CodecConfig
    base_model_prefix = "codec_model"
    main_input_name = "input_values"
    input_modalities = "audio"

    def __init__(self, config: CodecConfig, codec: PreTrainedModel | None = None):
        super().__init__(config)
        if codec is None:
            codec = AutoModel.from_config(config.codec_config)
        elif codec.config.model_type != config.codec_type:
            raise ValueError(
                f"codec is a {codec.config.model_type} model but config.codec_config is {config.codec_type}"
            )
        self.codec = codec
        self.post_init()

    def _init_weights(self, module):
        """Nothing of its own to initialise: the wrapped codec is a `PreTrainedModel` that initialises itself."""

    @classmethod
    def from_codec_pretrained(cls, name_or_path: str, num_codebooks: int | None = None, **kwargs) -> CodecModel:
        """Wrap a real codec checkpoint (`facebook/encodec_24khz`, `descript/dac_16khz`, `kyutai/mimi`,
        `hf-audio/xcodec-hubert-librispeech`, or a local folder) loaded with `AutoModel.from_pretrained(**kwargs)`."""
        codec = AutoModel.from_pretrained(name_or_path, **kwargs)
        config = CodecConfig(codec_config=codec.config, num_codebooks=num_codebooks)
        return cls(config, codec=codec).eval()

    @property
    def is_causal(self) -> bool:
        """Whether right padding leaves earlier frames untouched (then padded batches run in one call)."""
        return self.config.codec_type in ("encodec", "mimi") and bool(self.config.codec_config.use_causal_conv)

    def _batch_is_exact(self, frames) -> bool:
        """Whether one padded call gives every item what it gets alone: all lengths equal, or a causal codec.

        EnCodec's reflect padding is the exception: a sequence shorter than a conv's padding is first zero-extended
        (transformers' `_pad1d`), so items of fewer frames than its last kernel depend on how much padding follows.
        """
        if bool((frames == frames[0]).all()):
            return True
        if not self.is_causal:
            return False
        codec_config = self.config.codec_config
        if self.config.codec_type == "encodec" and codec_config.pad_mode == "reflect":
            return int(frames.min()) > max(codec_config.kernel_size, codec_config.last_kernel_size)
        return True

    def _bandwidth(self, num_codebooks: int) -> float:
        """Smallest target bandwidth (kbps) of an EnCodec / X-codec that carries `num_codebooks` codebooks."""
        kbps_per_codebook = math.ceil(math.log2(self.codebook_size)) * self.frame_rate / 1000
        for bandwidth in sorted(self.config.codec_config.target_bandwidths):
            if int(bandwidth / kbps_per_codebook + 1e-6) >= num_codebooks:
                return bandwidth
        raise ValueError(f"no target bandwidth of the codec carries {num_codebooks} codebooks")

    def _check_num_codebooks(self, num_codebooks):
        num_codebooks = self.config.num_codebooks if num_codebooks is None else num_codebooks
        if not isinstance(num_codebooks, int) or not 1 <= num_codebooks <= self.config.max_codebooks:
            raise ValueError(f"num_codebooks must be in [1, {self.config.max_codebooks}], got {num_codebooks!r}")
        return num_codebooks

    # ------------------------------------------------------------------ encode
    def _encode_call(self, waveforms, num_codebooks):
        """One call of the wrapped codec's `encode` on [B, S] audio (S a multiple of hop) -> codes [B, Q, S / hop]."""
        codec, kind, audio = self.codec, self.config.codec_type, waveforms[:, None]
        if kind == "encodec":
            codes = codec.encode(audio, bandwidth=self._bandwidth(num_codebooks), return_dict=True).audio_codes[0]
        elif kind == "dac":
            codes = codec.encode(audio, n_quantizers=num_codebooks, return_dict=True).audio_codes
        elif kind == "mimi":
            codes = codec.encode(audio, num_quantizers=num_codebooks, return_dict=True).audio_codes
        else:
            codes = codec.encode(audio, bandwidth=self._bandwidth(num_codebooks), return_dict=True).audio_codes
        frames = waveforms.shape[1] // self.hop_length
        if codes.shape[-1] < frames:
            raise RuntimeError(
                f"{kind} returned {codes.shape[-1]} frames for {waveforms.shape[1]} samples, expected {frames}"
            )
        return codes[:, :num_codebooks, :frames].long()

    def encode(self, input_values, attention_mask=None, num_codebooks: int | None = None, return_dict=None):
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch, samples)`): right-padded mono audio at
                `config.sampling_rate` (e.g. from the codec's own feature extractor or `SpeechFeatureExtractor`).
            attention_mask (`torch.Tensor` of shape `(batch, samples)`, *optional*): 1 for real samples.
            num_codebooks (`int`, *optional*): levels to keep (default `config.num_codebooks`).
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        num_codebooks = self._check_num_codebooks(num_codebooks)
        waveforms, lengths = check_audio(input_values, attention_mask)
        waveforms, frames = self._pad_to_frames(waveforms, lengths)
        if self._batch_is_exact(frames):
            codes = self._encode_call(waveforms, num_codebooks)
        else:
            shape = (len(frames), num_codebooks, int(frames.max()))
            codes = torch.zeros(shape, dtype=torch.long, device=waveforms.device)
            for i, n in enumerate(frames.tolist()):
                codes[i, :, :n] = self._encode_call(waveforms[i : i + 1, : n * self.hop_length], num_codebooks)[0]
        mask = lengths_to_mask(frames, codes.shape[-1])
        output = CodecEncoderOutput(codes=self._padded_codes(codes, mask), codes_mask=mask)
        return output if return_dict else output.to_tuple()

    # ------------------------------------------------------------------ decode
    def _decode_call(self, codes):
        """One call of the wrapped codec's `decode`: codes [B, Q, T] -> audio [B, T * hop]."""
        codec, kind = self.codec, self.config.codec_type
        if kind == "encodec":
            audio = codec.decode(codes[None], [None], return_dict=True).audio_values
        elif kind == "dac":
            audio = codec.decode(audio_codes=codes, return_dict=True).audio_values
        else:
            audio = codec.decode(codes, return_dict=True).audio_values
        audio = audio.reshape(codes.shape[0], -1)
        samples = codes.shape[-1] * self.hop_length
        if audio.shape[1] < samples:
            audio = nn.functional.pad(audio, (0, samples - audio.shape[1]))
        return audio[:, :samples]

    def decode(self, codes, codes_mask=None, return_dict=None):
        r"""
        Args:
            codes (`torch.LongTensor` of shape `(batch, q, frames)`): codes of the first `q <= max_codebooks` levels
                (fewer levels decode at a lower bitrate); `(batch, frames)` means one codebook.
            codes_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*): 1 for real frames.
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        codes, mask = check_codes(codes, codes_mask, self.codebook_size, self.config.max_codebooks)
        frames = mask.long().sum(-1)
        if self._batch_is_exact(frames):
            waveform = self._decode_call(codes)
        else:
            waveform = codes.new_zeros(codes.shape[0], codes.shape[-1] * self.hop_length, dtype=torch.float32)
            for i, n in enumerate(frames.tolist()):
                audio = self._decode_call(codes[i : i + 1, :, :n])[0]
                waveform = waveform.to(audio.dtype)
                waveform[i, : audio.shape[0]] = audio
        return self._decoded(waveform, frames, return_dict)


__all__ = [
    "CodecDecoderOutput",
    "CodecEncoderOutput",
    "CodecModel",
    "CodecModelMixin",
    "CodecOutput",
    "check_audio",
    "check_codes",
    "lengths_to_mask",
]
