"""Unit HiFi-GAN vocoder (Polyak et al., 2021, "speech resynthesis"): discrete units -> waveform.

The generator is transformers' `SeamlessM4THifiGan` (the fairseq code HiFi-GAN body with `HifiGanResidualBlock`),
fed with our own conditioning: unit embedding, optional duration expansion (deduplicated units), speaker embedding
and F0. The discriminators (`discriminators_unit_vocoder.py`) and losses (`losses_unit_vocoder.py`) are separate;
GAN training runs through `hf_slm.training.VocoderGanTrainer`, while `forward(labels=...)` alone returns the mel-L1
(+ duration) part of the generator loss, so the plain `Trainer` can pre-train the generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn.utils import parametrize
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.models.seamless_m4t.modeling_seamless_m4t import SeamlessM4THifiGan
from transformers.utils import ModelOutput

from .audio_unit_vocoder import LogMelSpectrogram
from .configuration_unit_vocoder import UnitHifiGanVocoderConfig
from .discriminators_unit_vocoder import HifiGanDiscriminator
from .losses_unit_vocoder import mel_l1_loss


@dataclass
class UnitVocoderOutput(ModelOutput):
    """
    Output of every unit vocoder ([`UnitHifiGanVocoder`], [`UnitMelVocoder`]); the pipeline treats them alike.

    Args:
        loss (`torch.FloatTensor`, *optional*): total training loss, returned when `labels` are given.
        waveform (`torch.FloatTensor` of shape `(batch, samples)`): generated audio; silence after
            `waveform_lengths`. `None` when a model skips synthesis (the mel vocoder while training).
        waveform_lengths (`torch.LongTensor` of shape `(batch,)`): valid samples per item (units * hop_length).
        mel (`torch.FloatTensor` of shape `(batch, frames, num_mel_bins)`, *optional*): predicted log-mel (mel
            vocoder only).
        mel_lengths (`torch.LongTensor` of shape `(batch,)`, *optional*): valid frames of `mel`.
        loss_mel (`torch.FloatTensor`, *optional*): unweighted mel L1 loss.
        loss_duration (`torch.FloatTensor`, *optional*): duration predictor loss (MSE on log(1 + d)).
        durations (`torch.LongTensor` of shape `(batch, units)`, *optional*): repeats applied to each unit (given or
            predicted), when a duration expansion ran.
    """

    loss: torch.FloatTensor | None = None
    waveform: torch.FloatTensor | None = None
    waveform_lengths: torch.LongTensor | None = None
    mel: torch.FloatTensor | None = None
    mel_lengths: torch.LongTensor | None = None
    loss_mel: torch.FloatTensor | None = None
    loss_duration: torch.FloatTensor | None = None
    durations: torch.LongTensor | None = None


# ---------------------------------------------------------------------------------------------------- shared helpers
def is_tracing() -> bool:
    """Whether `torch.compile` / `torch.export` is tracing: value checks (which read tensor data) are skipped then."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def prepare_units(input_ids, attention_mask):
    """Shape / dtype checks of a unit batch (no tensor data read, so they trace); returns (ids [B, T] with padding
    set to 0, mask [B, T] bool). The range of the ids is checked by `check_unit_values`."""
    if not torch.is_tensor(input_ids):
        raise ValueError(f"input_ids must be a torch.LongTensor of units, got {type(input_ids).__name__}")
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
        attention_mask = None if attention_mask is None else attention_mask[None]
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [batch, units], got shape {tuple(input_ids.shape)}")
    if input_ids.is_floating_point():
        raise ValueError(f"input_ids must hold integer unit ids, got {input_ids.dtype}")
    if input_ids.shape[1] == 0:
        raise ValueError("input_ids is empty: cannot vocode zero units")
    if attention_mask is None:
        mask = torch.ones_like(input_ids, dtype=torch.bool)
    else:
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}"
            )
        mask = attention_mask.bool()
    return torch.where(mask, input_ids, 0).long(), mask


def check_unit_values(input_ids, mask, num_units):
    """Raise unless every unit where `mask` is set lies in [0, num_units) (reads the data: eager only)."""
    valid = input_ids[mask]
    if valid.numel() and (valid.min() < 0 or valid.max() >= num_units):
        raise ValueError(
            f"unit ids must be in [0, {num_units}) where attention_mask is 1, got values in "
            f"[{int(valid.min())}, {int(valid.max())}] (padding ids must be masked out)"
        )


def check_units(input_ids, attention_mask, num_units):
    """Validate a unit batch; returns (ids [B, T] with padding set to 0, mask [B, T] bool)."""
    ids, mask = prepare_units(input_ids, attention_mask)
    raw = input_ids if input_ids.dim() == 2 else input_ids[None]
    check_unit_values(raw, mask, num_units)
    return ids, mask


def prepare_durations(durations, shape, mask):
    """Per-unit repeat counts [B, T] as long, padded units set to 0; shape checks only (see `check_durations`)."""
    if not torch.is_tensor(durations):
        durations = torch.as_tensor(durations)
    if durations.dim() == 1 and len(shape) == 2 and shape[0] == 1:
        durations = durations[None]
    if tuple(durations.shape) != tuple(shape):
        raise ValueError(f"durations must have the shape of input_ids {tuple(shape)}, got {tuple(durations.shape)}")
    return durations, durations.long().to(mask.device) * mask


def check_durations(durations, shape, mask):
    """Validate per-unit repeat counts [B, T] (>= 0 integers); padded units get 0."""
    raw, durations = prepare_durations(durations, shape, mask)
    if raw.is_floating_point() and not torch.equal(raw, raw.round()):
        raise ValueError("durations must be integer repeat counts (frames per unit)")
    if (raw.long().to(mask.device)[mask] < 0).any():
        raise ValueError("durations must be >= 0")
    if (durations.sum(1) == 0).any():
        raise ValueError("every item needs at least one frame after duration expansion (all durations are 0)")
    return durations


def expand_by_durations(hidden, durations):
    """Repeat unit vectors by their durations, batched: hidden [B, T, C], durations [B, T] -> [B, T', C], mask [B, T'].

    Frame t of item b copies the unit whose cumulative duration first exceeds t (a searchsorted, no Python loop).
    """
    ends = durations.cumsum(1)  # [B, T]
    lengths = ends[:, -1]
    positions = torch.arange(int(lengths.max()), device=hidden.device).expand(hidden.shape[0], -1).contiguous()
    index = torch.searchsorted(ends, positions, right=True).clamp(max=hidden.shape[1] - 1)
    expanded = hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))
    mask = positions < lengths[:, None]
    return expanded * mask[..., None].to(expanded.dtype), mask


def sample_mask(lengths, num_samples):
    """[B] lengths -> [B, num_samples] bool mask."""
    return torch.arange(num_samples, device=lengths.device)[None] < lengths[:, None]


def label_lengths(labels, labels_mask, name="labels"):
    """Valid length of each label row: from `labels_mask` (a prefix mask) or the full width."""
    if labels_mask is None:
        return torch.full((labels.shape[0],), labels.shape[1], dtype=torch.long, device=labels.device)
    if labels_mask.shape != labels.shape[:2]:
        raise ValueError(f"labels_mask shape {tuple(labels_mask.shape)} does not match {name} {tuple(labels.shape)}")
    return labels_mask.long().sum(1).to(labels.device)


class UnitDurationPredictor(nn.Module):
    """Predicts log(1 + frames) per unit: two conv + ReLU + LayerNorm + dropout layers and a projection.

    The layout of fairseq's / speech-resynthesis' `VariancePredictor` (transformers' `SeamlessM4TVariancePredictor`,
    which hard-codes the second padding to kernel 3; this one pads any odd kernel).
    """

    def __init__(self, dim, kernel_size=3, dropout=0.5):
        super().__init__()
        self.conv1 = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2)
        self.ln1 = nn.LayerNorm(dim)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2)
        self.ln2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, 1)

    def forward(self, hidden, mask):
        for conv, norm in ((self.conv1, self.ln1), (self.conv2, self.ln2)):
            hidden = torch.relu(conv((hidden * mask[..., None]).transpose(1, 2))).transpose(1, 2)
            hidden = self.dropout(norm(hidden))
        return self.proj(hidden).squeeze(-1)


class UnitVocoderPreTrainedModel(PreTrainedModel):
    """Shared init: normal(0, initializer_range) linears (and convs unless `_conv_init = "torch_default"`), N(0, 1)
    embeddings; weight-normed (discriminator) layers keep PyTorch's default init, as in HiFi-GAN."""

    main_input_name = "input_ids"
    input_modalities = "audio"
    supports_gradient_checkpointing = False

    _conv_init = "normal"

    @torch.no_grad()
    def _init_weights(self, module):
        if parametrize.is_parametrized(module):
            return
        convolution = isinstance(module, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d))
        if convolution and self._conv_init == "torch_default":
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight.shape[1] * math.prod(module.weight.shape[2:])  # as torch, transposed too
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(module.bias, -bound, bound)
        elif convolution or isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    def validate_inputs(self, input_ids, attention_mask=None, durations=None, speaker_id=None, f0=None) -> None:
        """
        The value checks of `forward`'s inputs: unit ids in `[0, num_units)` where `attention_mask` is 1, integer
        durations >= 0 with at least one frame per item, speaker ids in range, finite F0 >= 0. They read tensor data,
        which stops `torch.export` and `torch.compile(fullgraph=True)`, so `forward` runs them only in eager mode;
        a traced or compiled model trusts its inputs, and whoever feeds it (the pipeline validates unit ids against
        the vocoder's range in `decode`) calls this method first.
        """
        ids, mask = check_units(input_ids, attention_mask, self.config.num_units)
        if durations is not None:
            check_durations(durations, ids.shape, mask)
        num_speakers = getattr(self.config, "num_speakers", 0)
        if speaker_id is not None and num_speakers > 0:
            speaker_id = torch.as_tensor(speaker_id).reshape(-1)
            if speaker_id.min() < 0 or speaker_id.max() >= num_speakers:
                raise ValueError(f"speaker_id must be in [0, {num_speakers}), got {speaker_id.tolist()}")
        if f0 is not None and torch.is_tensor(f0) and f0.is_floating_point():
            if (f0 < 0).any() or not torch.isfinite(f0).all():
                raise ValueError("f0 must be finite and >= 0 Hz (0 marks unvoiced frames)")

    def _mel_transform(self, device, **kwargs) -> LogMelSpectrogram:
        """The loss / target log-mel, built on first use per device and kept out of the state dict."""
        cache = self.__dict__.setdefault("_mel_transforms", {})
        key = str(device)
        if key not in cache:
            cache[key] = LogMelSpectrogram(**kwargs).to(device)
        return cache[key]


class GanGeneratorMixin:
    """What `VocoderGanTrainer` needs of a generator: HiFi-GAN's MPD + MSD discriminators in `self.discriminator`
    (built from the config's `mpd_*` / `msd_*` by `setup_discriminators()` or `keep_discriminators=True`), the
    generator's own parameters, `save_pretrained` without the discriminators unless asked, and the crop of generated
    and target audio to a common length. Shared by [`UnitHifiGanVocoder`] and [`UnitMelVocoder`]'s inverse-STFT head.
    """

    _keys_to_ignore_on_load_unexpected = [r"^discriminator\."]

    def setup_discriminators(self) -> HifiGanDiscriminator:
        """Add the MPD + MSD discriminators for GAN training (no-op if present); they are not saved unless asked."""
        if self.discriminator is None:
            reference = next(p for n, p in self.named_parameters() if not n.startswith("discriminator."))
            self.discriminator = HifiGanDiscriminator.from_config(self.config).to(reference.device)
        return self.discriminator

    def generator_parameters(self):
        """Named parameters of everything but the discriminators (what the generator optimiser updates)."""
        return [(n, p) for n, p in self.named_parameters() if not n.startswith("discriminator.")]

    def save_pretrained(self, save_directory, *args, keep_discriminators: bool | None = None, **kwargs):
        """`PreTrainedModel.save_pretrained`, writing the generator only unless `keep_discriminators` (default:
        `config.keep_discriminators`) is true; the saved config records which, so `from_pretrained` rebuilds it."""
        keep = self.config.keep_discriminators if keep_discriminators is None else keep_discriminators
        if keep and self.discriminator is None:
            raise ValueError("keep_discriminators=True but the model has no discriminators (call setup_discriminators)")
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

    @staticmethod
    def align_with_labels(waveform, waveform_lengths, labels, labels_mask=None):
        """Crop generated and target audio to a common length and zero both past each item's valid length.

        Returns `(real [B, L], generated [B, L], lengths [B])`; what the mel loss and the discriminators compare.
        """
        if not torch.is_tensor(labels) or labels.dim() != 2 or labels.shape[0] != waveform.shape[0]:
            shape = tuple(labels.shape) if torch.is_tensor(labels) else type(labels).__name__
            raise ValueError(f"labels must be target waveforms [batch={waveform.shape[0]}, samples], got {shape}")
        lengths = torch.minimum(label_lengths(labels, labels_mask), waveform_lengths.to(labels.device))
        common = min(labels.shape[1], waveform.shape[1])
        keep = sample_mask(lengths, common)
        real = labels[:, :common].to(waveform.dtype) * keep
        generated = waveform[:, :common] * keep
        return real, generated, lengths


class UnitHifiGanVocoder(GanGeneratorMixin, UnitVocoderPreTrainedModel):
    r"""
    Unit HiFi-GAN: units [B, T] at `config.frame_rate` -> waveform [B, T * hop_length] at `config.sampling_rate`.

    `forward(labels=waveform)` returns `lambda_mel * L_mel (+ lambda_duration * L_dur)`, the non-adversarial part of
    the HiFi-GAN generator loss; `VocoderGanTrainer` adds the adversarial and feature-matching terms with the
    discriminators held in `self.discriminator` (built by `keep_discriminators=True` or `setup_discriminators()`).
    `save_pretrained` writes the generator only unless told `keep_discriminators=True`.

    Example:

    ```python
    >>> import torch
    >>> from hf_slm import UnitHifiGanVocoder, UnitHifiGanVocoderConfig
    >>> config = UnitHifiGanVocoderConfig(upsample_initial_channel=32, resblock_kernel_sizes=(3,),
    ...                                   resblock_dilation_sizes=((1, 3),))
    >>> vocoder = UnitHifiGanVocoder(config).eval()
    >>> out = vocoder(torch.tensor([[3, 3, 7, 9], [5, 1, 0, 0]]), attention_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]))
    >>> out.waveform.shape, out.waveform_lengths.tolist()
    (torch.Size([2, 1280]), [1280, 640])
    ```
    """

    config_class = UnitHifiGanVocoderConfig
    base_model_prefix = "unit_hifigan"

    # HiFi-GAN's `init_weights` writes N(0, 0.01) into `weight` of weight-normed layers, which the weight-norm hook
    # recomputes from (g, v) before every forward: the convolutions it trains from have PyTorch's default init. Same
    # here (a N(0, 0.01) start would make the first outputs ~1e-7, below the log-mel floor, with no mel gradient).
    _conv_init = "torch_default"

    def __init__(self, config: UnitHifiGanVocoderConfig):
        super().__init__(config)
        self.unit_embedding = nn.Embedding(config.num_units, config.embedding_dim)
        self.duration_predictor = (
            UnitDurationPredictor(
                config.embedding_dim, config.duration_predictor_kernel_size, config.duration_predictor_dropout
            )
            if config.use_duration_predictor
            else None
        )
        self.speaker_embedding = (
            nn.Embedding(config.num_speakers, config.speaker_embedding_dim) if config.num_speakers > 0 else None
        )
        self.f0_projection = nn.Conv1d(2, config.f0_embedding_dim, 1) if config.use_f0 else None
        num_styles = getattr(config, "num_styles", 0)
        self.style_embedding = nn.Embedding(num_styles, config.style_embedding_dim) if num_styles > 0 else None
        # SeamlessM4THifiGan reads its sizes from a SeamlessM4TConfig; only these fields are used.
        generator_config = SimpleNamespace(
            unit_embed_dim=config.generator_input_dim,
            lang_embed_dim=0,
            spkr_embed_dim=0,
            leaky_relu_slope=config.leaky_relu_slope,
            resblock_kernel_sizes=config.resblock_kernel_sizes,
            resblock_dilation_sizes=config.resblock_dilation_sizes,
            upsample_rates=config.upsample_rates,
            upsample_kernel_sizes=config.upsample_kernel_sizes,
            upsample_initial_channel=config.upsample_initial_channel,
        )
        self.hifi_gan = SeamlessM4THifiGan(generator_config)
        self.discriminator = HifiGanDiscriminator.from_config(config) if config.keep_discriminators else None
        self.post_init()

    # ------------------------------------------------------------------ conditioning
    def _speaker_features(self, speaker_id, batch, num_frames, device):
        if self.speaker_embedding is None:
            if speaker_id is not None:
                raise ValueError("speaker_id given but the vocoder has no speaker embedding (config.num_speakers=0)")
            return None
        if speaker_id is None:
            raise ValueError(f"speaker_id [batch] is required: config.num_speakers={self.config.num_speakers}")
        speaker_id = torch.as_tensor(speaker_id, device=device).long().reshape(-1)
        if speaker_id.numel() == 1 and batch > 1:
            speaker_id = speaker_id.expand(batch)
        if speaker_id.shape != (batch,):
            raise ValueError(f"speaker_id must be [batch]={batch}, got shape {tuple(speaker_id.shape)}")
        return self.speaker_embedding(speaker_id)[:, None].expand(-1, num_frames, -1)

    def _style_features(self, style_ids, batch, num_frames, device):
        """Style tokens [B] or [B, steps] -> [B, frames, style_embedding_dim] (nearest step for each frame)."""
        if self.style_embedding is None:
            if style_ids is not None:
                raise ValueError("style_ids given but the vocoder has no style conditioning (config.num_styles=0)")
            return None
        if style_ids is None:
            raise ValueError(f"style_ids [batch, steps] are required: config.num_styles={self.config.num_styles}")
        style_ids = torch.as_tensor(style_ids, device=device)
        if style_ids.is_floating_point() or style_ids.dim() not in (1, 2) or style_ids.shape[0] != batch:
            raise ValueError(f"style_ids must be integer [batch={batch}] or [batch, steps], got {tuple(style_ids.shape)}")
        style_ids = style_ids.long().reshape(batch, -1)
        if int(style_ids.min()) < 0 or int(style_ids.max()) >= self.config.num_styles:
            raise ValueError(f"style_ids must lie in [0, {self.config.num_styles}), got {style_ids.min()}..{style_ids.max()}")
        index = (torch.arange(num_frames, device=device) * style_ids.shape[1]) // max(num_frames, 1)
        return self.style_embedding(style_ids[:, index])

    def _f0_features(self, f0, mask):
        """F0 [B, T_f0] in Hz (0 = unvoiced) -> [B, T, f0_embedding_dim] at the (expanded) unit rate.

        F0 at another frame rate (e.g. 100 or 200 Hz) is brought to the unit frames by nearest-neighbour resampling
        over the padded batch length, which is exact when F0 and units were padded to the same duration.
        """
        if self.f0_projection is None:
            if f0 is not None:
                raise ValueError("f0 given but the vocoder has no F0 conditioning (config.use_f0=False)")
            return None
        batch, num_frames = mask.shape
        if f0 is None:
            raise ValueError("f0 [batch, frames] (Hz, 0 = unvoiced) is required: config.use_f0=True")
        f0 = torch.as_tensor(f0, device=mask.device)
        if f0.dim() != 2 or f0.shape[0] != batch or not f0.is_floating_point():
            raise ValueError(f"f0 must be a float tensor [batch={batch}, frames], got {f0.dtype} {tuple(f0.shape)}")
        f0 = f0.float()
        if f0.shape[1] != num_frames:
            f0 = nn.functional.interpolate(f0[:, None], size=num_frames, mode="nearest")[:, 0]
        voiced = (f0 > 0) & mask
        log_f0 = torch.log(f0.clamp(min=1.0))
        if self.config.f0_normalize:
            count = voiced.sum(1, keepdim=True).clamp(min=1)
            mean = (log_f0 * voiced).sum(1, keepdim=True) / count
            std = ((((log_f0 - mean) ** 2) * voiced).sum(1, keepdim=True) / count).sqrt().clamp(min=1e-3)
            log_f0 = (log_f0 - mean) / std
        else:
            log_f0 = log_f0 - math.log(100.0)
        features = torch.stack([log_f0 * voiced, voiced.float()], dim=1)  # [B, 2, T]
        return self.f0_projection(features.to(self.f0_projection.weight.dtype)).transpose(1, 2)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        durations: torch.LongTensor | None = None,
        speaker_id: torch.LongTensor | None = None,
        f0: torch.FloatTensor | None = None,
        labels: torch.FloatTensor | None = None,
        labels_mask: torch.Tensor | None = None,
        return_dict: bool | None = None,
        style_ids: torch.LongTensor | None = None,
    ) -> UnitVocoderOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, units)`): unit ids in `[0, num_units)`; padded positions
                may hold anything (e.g. the tokenizer's -1) as long as `attention_mask` is 0 there.
            attention_mask (`torch.Tensor` of shape `(batch, units)`, *optional*): 1 for real units.
            durations (`torch.LongTensor` of shape `(batch, units)`, *optional*): frames per unit, e.g. the run
                lengths of deduplicated units. Used as given (teacher forcing; also the duration predictor's target);
                without them, a model with a duration predictor predicts them, otherwise every unit is one frame.
            speaker_id (`torch.LongTensor` of shape `(batch,)`, *optional*): required when `num_speakers > 0`.
            f0 (`torch.FloatTensor` of shape `(batch, frames)`, *optional*): F0 in Hz (0 = unvoiced) at any frame rate
                spanning the same padded duration as the (expanded) units; required when `use_f0`.
            style_ids (`torch.LongTensor` of shape `(batch, steps)` or `(batch,)`, *optional*): style tokens in
                `[0, num_styles)` at any rate spanning the padded duration (e.g. one per unit from
                `SpeechLMProcessor.deinterleave`, or one per utterance); required when `num_styles > 0`.
            labels (`torch.FloatTensor` of shape `(batch, samples)`, *optional*): target waveforms at
                `sampling_rate`, aligned with the units (sample `t * hop_length` starts unit frame `t`).
            labels_mask (`torch.Tensor` of shape `(batch, samples)`, *optional*): 1 for valid target samples.
        """
        return_dict = getattr(self.config, "return_dict", True) if return_dict is None else return_dict
        if not is_tracing():
            self.validate_inputs(input_ids, attention_mask, durations, speaker_id, f0)
        ids, mask = prepare_units(input_ids, attention_mask)
        hidden = self.unit_embedding(ids) * mask[..., None].to(self.unit_embedding.weight.dtype)

        loss_duration = None
        if durations is not None:
            durations = prepare_durations(durations, ids.shape, mask)[1]
        if self.duration_predictor is not None:
            log_duration = self.duration_predictor(hidden, mask)
            if durations is not None:
                target = torch.log1p(durations.float())
                loss_duration = ((log_duration.float() - target) ** 2)[mask].mean()
            else:
                if labels is not None:
                    raise ValueError(
                        "training with labels needs the true `durations` of the (deduplicated) units: predicted "
                        "durations would not line up with the target audio"
                    )
                predicted = torch.clamp(torch.round(torch.expm1(log_duration.float())), min=1).long()
                durations = predicted * mask
        if durations is not None:
            hidden, mask = expand_by_durations(hidden, durations)

        batch, num_frames = mask.shape
        features = [hidden]
        speaker = self._speaker_features(speaker_id, batch, num_frames, hidden.device)
        if speaker is not None:
            features.append(speaker.to(hidden.dtype))
        pitch = self._f0_features(f0, mask)
        if pitch is not None:
            features.append(pitch.to(hidden.dtype))
        style = self._style_features(style_ids, batch, num_frames, hidden.device)
        if style is not None:
            features.append(style.to(hidden.dtype))
        hidden = torch.cat(features, dim=-1) * mask[..., None].to(hidden.dtype)

        frame_lengths = mask.long().sum(1)
        waveform = self.generate(hidden.transpose(1, 2), frame_lengths)
        waveform_lengths = frame_lengths * self.config.hop_length

        loss = loss_mel = None
        if labels is not None:
            real, generated, lengths = self.align_with_labels(waveform, waveform_lengths, labels, labels_mask)
            loss_mel = mel_l1_loss(real, generated, self.loss_mel_transform(waveform.device), lengths=lengths)
            loss = self.config.lambda_mel * loss_mel
        if loss_duration is not None:
            weighted = self.config.lambda_duration * loss_duration
            loss = weighted if loss is None else loss + weighted

        output = UnitVocoderOutput(
            loss=loss,
            waveform=waveform,
            waveform_lengths=waveform_lengths,
            loss_mel=loss_mel,
            loss_duration=loss_duration,
            durations=durations,
        )
        return output if return_dict else output.to_tuple()

    def generate(self, hidden: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """`SeamlessM4THifiGan.forward` on frames [B, C, T] with every layer's input zeroed past each item's length.

        The conv biases make padded positions non-zero and the receptive field carries them back into the item, so
        each conv (pre, upsamplers, resblocks, post) gets the length mask at its own rate: a padded item then sees
        the zeros an item alone gets from the conv padding. Masks multiply (no data-dependent branch, so it traces);
        times 1.0 is exact, so unpadded items are bit-identical to the plain generator. Returns [B, T * hop_length],
        zero past `frame_lengths * hop_length`.
        """
        generator, slope = self.hifi_gan, self.config.leaky_relu_slope

        def masked(states, lengths):
            return states * sample_mask(lengths, states.shape[-1])[:, None].to(states.dtype)

        lengths = frame_lengths
        states = masked(generator.conv_pre(masked(hidden, lengths)), lengths)
        for i, rate in enumerate(self.config.upsample_rates):
            lengths = lengths * rate
            states = masked(generator.upsampler[i](nn.functional.leaky_relu(states, slope)), lengths)
            blocks = generator.resblocks[i * generator.num_kernels : (i + 1) * generator.num_kernels]
            res_state = None
            for block in blocks:
                out = states
                for conv1, conv2 in zip(block.convs1, block.convs2):
                    residual = out
                    out = masked(conv1(nn.functional.leaky_relu(out, block.leaky_relu_slope)), lengths)
                    out = masked(conv2(nn.functional.leaky_relu(out, block.leaky_relu_slope)), lengths)
                    out = out + residual
                res_state = out if res_state is None else res_state + out
            states = res_state / generator.num_kernels
        # SeamlessM4THifiGan's last leaky ReLU uses the default slope (0.01), not the config's.
        return masked(torch.tanh(generator.conv_post(nn.functional.leaky_relu(states))), lengths).squeeze(1)

    def loss_mel_transform(self, device=None) -> LogMelSpectrogram:
        """The log-mel of the mel-L1 loss (HiFi-GAN's loss mel with this config's `mel_*` settings)."""
        config = self.config
        return self._mel_transform(
            device or self.unit_embedding.weight.device,
            sampling_rate=config.sampling_rate,
            n_fft=config.mel_n_fft,
            hop_length=config.mel_hop_length,
            win_length=config.mel_win_length,
            n_mels=config.num_mel_bins,
            f_min=config.mel_fmin,
            f_max=config.mel_fmax,
        )


__all__ = [
    "GanGeneratorMixin",
    "UnitDurationPredictor",
    "UnitHifiGanVocoder",
    "UnitVocoderOutput",
    "UnitVocoderPreTrainedModel",
    "check_durations",
    "check_unit_values",
    "check_units",
    "expand_by_durations",
    "is_tracing",
    "prepare_durations",
    "prepare_units",
]
