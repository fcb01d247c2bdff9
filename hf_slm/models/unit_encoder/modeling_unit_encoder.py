"""Unit encoder: speech -> frame features (MFCC or an SSL encoder layer) -> nearest k-means centroid id (a unit).

Batches are padding-invariant: an utterance gives the same units alone and padded inside a batch. The MFCC front
end achieves this exactly (frames never read past an utterance's end, deltas see a replicated last frame); the
SSL front end masks the only statistic that crosses time, the GroupNorm of the first conv layer of
`feat_extract_norm="group"` encoders (HuBERT-base, wav2vec2-base), and passes the frame mask to the transformer.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
import torchaudio
from torch import nn
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, PreTrainedModel
from transformers.models.auto.feature_extraction_auto import feature_extractor_class_from_name
from transformers.utils import ModelOutput

from .batching import TokenizationPlan, default_plan, length_buckets
from .configuration_unit_encoder import LOG_MEL_ENCODERS, VTLN_WARP_RANGE, UnitEncoderConfig
from .feature_extraction_unit_encoder import AudioInputError
from .kmeans import assign, squared_distances


@dataclass
class UnitEncoderOutput(ModelOutput):
    r"""
    units (`torch.LongTensor` of shape `(batch_size, num_frames)`):
        Unit id of each frame; padded frames hold `config.pad_unit_id` (-1 by default).
    units_mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`):
        True at frames that belong to the utterance.
    features (`torch.FloatTensor` of shape `(batch_size, num_frames, feature_dim)`, *optional*):
        The features that were quantised (before standardisation), when `output_features=True`.
    warp_factors (`torch.FloatTensor` of shape `(batch_size,)`, *optional*):
        The vocal tract length warp each utterance was tokenised at (`config.vtln_warps`, or the `warp_factors`
        passed in); `None` without warping.
    """

    units: torch.LongTensor | None = None
    units_mask: torch.BoolTensor | None = None
    features: torch.FloatTensor | None = None
    warp_factors: torch.FloatTensor | None = None

    # The speech-tokenizer interface shared with the codecs' `CodecEncoderOutput`: `codes [B, Q, T]`, `codes_mask`,
    # `unpadded()`; a unit encoder is a tokenizer of one codebook.
    @property
    def codes(self) -> torch.LongTensor:
        """`units` as `[batch, 1, num_frames]`: one codebook."""
        return self.units[:, None]

    @property
    def codes_mask(self) -> torch.BoolTensor:
        """Same as `units_mask`."""
        return self.units_mask

    def unpadded(self) -> list[torch.LongTensor]:
        """Units of each utterance without padding, on the CPU: a list of `[frames]` tensors."""
        return [u[m].cpu() for u, m in zip(self.units, self.units_mask)]


#: Per-thread state of running forwards (valid lengths of each MaskedGroupNorm, captured hidden states), so that
#: `UnitEncoderModel.tokenize`'s worker threads can run one model at the same time. Module-level (not an attribute)
#: because modules are pickled by `datasets.map(num_proc=N)`, and thread-locals cannot be.
_THREAD_STATE = threading.local()


class MaskedGroupNorm(nn.GroupNorm):
    """`nn.GroupNorm` over [B, C, T] whose statistics cover only each item's first `lengths[b]` time steps.

    Same parameters (and state-dict keys) as the GroupNorm it replaces; with `lengths=None` it is that GroupNorm.
    `lengths` is per thread.
    """

    @property
    def lengths(self) -> torch.Tensor | None:
        return getattr(_THREAD_STATE, "norm_lengths", {}).get(id(self))

    @lengths.setter
    def lengths(self, value: torch.Tensor | None) -> None:
        table = _THREAD_STATE.__dict__.setdefault("norm_lengths", {})
        if value is None:
            table.pop(id(self), None)
        else:
            table[id(self)] = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lengths is None:
            return super().forward(x)
        batch, channels, _ = x.shape
        per_group = channels // self.num_groups
        mean = torch.empty(batch, channels, device=x.device, dtype=torch.float32)
        rstd = torch.empty_like(mean)
        for b, length in enumerate(self.lengths.tolist()):
            # right padding: the valid part is a prefix, so each group's statistics are one native reduction
            valid = x[b, :, :length].float().reshape(self.num_groups, -1)
            var, group_mean = torch.var_mean(valid, dim=-1, correction=0)
            mean[b] = group_mean.repeat_interleave(per_group)
            rstd[b] = torch.rsqrt(var + self.eps).repeat_interleave(per_group)
        scale = rstd * self.weight.float() if self.affine else rstd
        shift = (self.bias.float() if self.affine else 0.0) - mean * scale
        return torch.addcmul(shift[..., None], x.float(), scale[..., None]).to(x.dtype)  # one pass over x


def _encoder_layers(encoder: nn.Module) -> nn.ModuleList | None:
    layers = getattr(getattr(encoder, "encoder", None), "layers", None)
    return layers if isinstance(layers, nn.ModuleList) else None


def _truncated_ssl_config(config: UnitEncoderConfig):
    """The encoder config with only the transformer layers that `ssl_layer` needs (at least one)."""
    ssl_config = copy.deepcopy(config.ssl_config)
    if config.ssl_layer < ssl_config.num_hidden_layers:
        ssl_config.num_hidden_layers = max(config.ssl_layer, 1)
    return ssl_config


class UnitEncoderModel(PreTrainedModel):
    r"""
    Speech -> discrete units: a front end (MFCC + deltas, or `hidden_states[ssl_layer]` of any transformers audio
    encoder) followed by a k-means quantiser whose centroids and feature standardisation are persistent buffers
    (saved in safetensors by `save_pretrained`).

    Inputs are what [`SpeechFeatureExtractor`] returns: `input_values` [B, T] at `config.sampling_rate`, right-padded,
    with a sample-level `attention_mask` [B, T].

    Example:

    ```python
    >>> import torch
    >>> from hf_slm import UnitEncoderModel, UnitEncoderConfig, SpeechFeatureExtractor
    >>> from hf_slm.training.kmeans import fit_unit_tokenizer
    >>> tokenizer = UnitEncoderModel(UnitEncoderConfig(num_units=8))
    >>> fe = SpeechFeatureExtractor()
    >>> _ = fit_unit_tokenizer(tokenizer, torch.randn(1000, tokenizer.config.feature_dim), show_progress=False)
    >>> inputs = fe([torch.randn(16000), torch.randn(8000)], sampling_rate=16000)
    >>> out = tokenizer(**inputs)
    >>> out.units.shape, out.units_mask.sum(-1).tolist()
    (torch.Size([2, 49]), [49, 24])

    ```
    """

    config_class = UnitEncoderConfig
    config: UnitEncoderConfig
    base_model_prefix = "unit_encoder"
    main_input_name = "input_values"
    input_modalities = "audio"
    _no_split_modules = []
    # attention lives in the SSL encoder; these let `attn_implementation=...` reach it
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True

    def __init__(self, config: UnitEncoderConfig):
        super().__init__(config)
        self._group_norms: list[tuple[int, MaskedGroupNorm]] = []
        self.log_mel = None  # the feature extractor of a log-mel SSL encoder (wav2vec2-bert), run on the waveform
        if config.frontend == "mfcc":
            self.mfcc = _build_mfcc(config)
            self.ssl_encoder = None
        else:
            self.mfcc = None
            self.ssl_encoder = AutoModel.from_config(_truncated_ssl_config(config))
            if config.ssl_feature_extractor is not None:  # wav2vec2-bert: log-mel in, computed here from the waveform
                extractor = config.ssl_feature_extractor
                self.log_mel = feature_extractor_class_from_name(extractor["feature_extractor_type"])(**extractor)
            if _encoder_layers(self.ssl_encoder) is None or (
                self.log_mel is None and not hasattr(self.ssl_encoder, "_get_feat_extract_output_lengths")
            ):
                raise ValueError(
                    f"{type(self.ssl_encoder).__name__} is not a wav2vec2-style encoder (conv feature encoder or "
                    "log-mel input + `encoder.layers`); supported: HuBERT, wav2vec2, WavLM, Data2VecAudio, "
                    "UniSpeech(SAT), SEW, wav2vec2-bert"
                )
            self._mask_group_norms()
        dim = config.feature_dim
        self.register_buffer("cluster_centers", torch.zeros(config.num_units, dim))
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        self.register_buffer("is_fitted", torch.zeros((), dtype=torch.bool))
        self.post_init()

    # The MFCC tokenizer has buffers but no parameters: transformers reads dtype/device from parameters.
    @property
    def dtype(self) -> torch.dtype:
        param = next((p for p in self.parameters() if p.is_floating_point()), None)
        return param.dtype if param is not None else self.cluster_centers.dtype

    @property
    def device(self) -> torch.device:
        param = next(self.parameters(), None)
        return param.device if param is not None else self.cluster_centers.device

    @torch.no_grad()
    def _init_weights(self, module):
        if module is self.mfcc:
            # non-persistent buffers come back from the meta device empty: recompute them from the config
            fresh = dict(_build_mfcc(self.config).named_buffers())
            for name, buffer in module.named_buffers():
                buffer.copy_(fresh[name])
        elif module is self or module.__module__.startswith("torchaudio"):
            return  # the k-means buffers keep their "unfitted" values (or the loaded ones)
        else:
            super()._init_weights(module)

    # ------------------------------------------------------------------ front ends
    def _mask_group_norms(self) -> None:
        """Swap every GroupNorm of the conv feature encoder for a `MaskedGroupNorm` (same weights)."""
        conv_layers = getattr(getattr(self.ssl_encoder, "feature_extractor", None), "conv_layers", None)
        if conv_layers is None:
            return
        for index, layer in enumerate(conv_layers):
            for name, child in list(layer.named_children()):
                if isinstance(child, nn.GroupNorm) and not isinstance(child, MaskedGroupNorm):
                    masked = MaskedGroupNorm(child.num_groups, child.num_channels, child.eps, child.affine)
                    masked.load_state_dict(child.state_dict())
                    setattr(layer, name, masked)
                    self._group_norms.append((index, masked))

    def _conv_lengths(self, lengths: torch.Tensor, upto: int) -> torch.Tensor:
        """Valid output length after conv layer `upto` (inclusive) for inputs of `lengths` samples."""
        ssl = self.config.ssl_config
        for kernel, stride in list(zip(ssl.conv_kernel, ssl.conv_stride))[: upto + 1]:
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        return lengths

    @contextlib.contextmanager
    def _norm_lengths(self, lengths: torch.Tensor | None):
        for index, norm in self._group_norms:
            norm.lengths = None if lengths is None else self._conv_lengths(lengths, index)
        try:
            yield
        finally:
            for _, norm in self._group_norms:
                norm.lengths = None

    @contextlib.contextmanager
    def _capture_layer(self) -> Iterator[dict]:
        """Capture `hidden_states[ssl_layer]` with a hook: the input of the first transformer layer (0) or the output
        of layer `ssl_layer`, before any final encoder LayerNorm (as transformers 5 reports `hidden_states`)."""
        captured: dict[str, torch.Tensor] = {}
        layers = _encoder_layers(self.ssl_encoder)
        layer = self.config.ssl_layer
        owner = threading.get_ident()  # other threads may run this model at the same time: keep only ours
        if layer == 0:

            def pre_hook(module, args, kwargs):
                if threading.get_ident() == owner:
                    captured["hidden"] = args[0] if args else kwargs["hidden_states"]

            handle = layers[0].register_forward_pre_hook(pre_hook, with_kwargs=True)
        else:

            def hook(module, args, output):
                if threading.get_ident() == owner:
                    captured["hidden"] = output[0] if isinstance(output, tuple) else output

            handle = layers[layer - 1].register_forward_hook(hook)
        try:
            yield captured
        finally:
            handle.remove()

    def _ssl_features(self, input_values: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.log_mel is not None:
            return self._log_mel_ssl_features(input_values, lengths)
        encoder = self.ssl_encoder
        padded = bool((lengths < input_values.shape[-1]).any())
        mask = (torch.arange(input_values.shape[-1], device=input_values.device)[None] < lengths[:, None]).long()
        dtype = next(encoder.parameters()).dtype
        with self._norm_lengths(lengths if padded else None), self._capture_layer() as captured:
            outputs = encoder(input_values.to(dtype), attention_mask=mask if padded else None, return_dict=True)
        hidden = captured.get("hidden", outputs.last_hidden_state)
        frame_lengths = encoder._get_feat_extract_output_lengths(lengths).long()
        return hidden, frame_lengths

    def _log_mel_ssl_features(self, input_values: torch.Tensor, lengths: torch.Tensor):
        """A log-mel encoder: each utterance through its own feature extractor (what it was trained on, normalised
        per utterance), padded, then the encoder with the frame mask."""
        waves = [input_values[i, :n].float().cpu().numpy() for i, n in enumerate(lengths.tolist())]
        features = self.log_mel(waves, sampling_rate=self.config.sampling_rate, padding=True, return_tensors="pt",
                                return_attention_mask=True)  # fmt: skip
        device, dtype = input_values.device, next(self.ssl_encoder.parameters()).dtype
        mask = features["attention_mask"].to(device)
        with self._capture_layer() as captured:
            outputs = self.ssl_encoder(features["input_features"].to(device, dtype), attention_mask=mask,
                                       return_dict=True)  # fmt: skip
        return captured.get("hidden", outputs.last_hidden_state), mask.sum(-1).long()

    def _power_spectrum(self, waves: torch.Tensor) -> torch.Tensor:
        """Power spectrogram [B, n_freqs, frames] in float64 (see `_cepstral_features`)."""
        stft = self.mfcc.MelSpectrogram.spectrogram
        with torch.autocast(waves.device.type, enabled=False):
            return torchaudio.functional.spectrogram(
                waves.double(), pad=0, window=stft.window.double(), n_fft=stft.n_fft, hop_length=stft.hop_length,
                win_length=stft.win_length, power=2.0, normalized=False, center=False,
            )  # fmt: skip

    def _cepstral_features(
        self, power: torch.Tensor, lengths: torch.Tensor, warps: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """torchaudio's MFCC (log-mel variant, center=False: frames stay inside the audio) of a power spectrogram,
        with its own mel bank (warped per row by `warps` [B]) and DCT, plus deltas: [B, frames, feature_dim].

        float64 makes the float32 result independent of the batch shape: BLAS picks different kernels (and summation
        orders) for a 1-frame utterance alone and the same frames inside a batch; in float32 that shows as 1e-6
        differences, in float64 it vanishes when rounding back to float32.
        """
        config = self.config
        bank = self.mfcc.MelSpectrogram.mel_scale.fb.double()
        if warps is not None:
            bank = warp_mel_bank(bank, warps)  # [B, n_freqs, n_mels]
        with torch.autocast(power.device.type, enabled=False):
            mel = torch.matmul(power.transpose(-1, -2), bank)
            mfcc = torch.matmul(torch.log(mel + 1e-6), self.mfcc.dct_mat.double()).transpose(-1, -2)
            frame_lengths = torch.div(lengths - config.n_fft, config.hop_length, rounding_mode="floor") + 1
            feats = [mfcc]
            if config.use_deltas:
                delta = compute_deltas(mfcc, frame_lengths)
                delta2 = compute_deltas(delta, frame_lengths)
                feats += [delta, delta2]
        return torch.cat(feats, dim=1).transpose(1, 2).float(), frame_lengths

    def _check_inputs(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if input_values.ndim != 2:
            raise ValueError(
                f"input_values must be [batch, samples] (use SpeechFeatureExtractor), got shape "
                f"{tuple(input_values.shape)}"
            )
        batch, time = input_values.shape
        if attention_mask is None:
            lengths = torch.full((batch,), time, device=input_values.device, dtype=torch.long)
        else:
            if attention_mask.shape != input_values.shape:
                raise ValueError(
                    f"attention_mask shape {tuple(attention_mask.shape)} != input_values shape {tuple(input_values.shape)}"
                )
            lengths = attention_mask.long().sum(-1)
        if torch.compiler.is_compiling() or torch.compiler.is_exporting():
            return lengths  # the checks below read the data, which stops torch.export / fullgraph compiles
        if attention_mask is not None:
            expected = torch.arange(time, device=attention_mask.device)[None] < lengths[:, None]
            if not torch.equal(expected, attention_mask.bool()):
                raise ValueError("attention_mask must be right-padded (ones, then zeros) in every row")
        minimum = self.config.receptive_field
        short = (lengths < minimum).nonzero().flatten().tolist()
        if short:
            i = short[0]
            raise AudioInputError(
                f"batch item {i}: {int(lengths[i])} samples is shorter than one analysis window of {minimum} samples "
                f"({minimum / self.config.sampling_rate * 1000:.0f} ms at {self.config.sampling_rate} Hz)"
            )
        return lengths

    def extract_features(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        warp_factors: float | Sequence[float] | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.BoolTensor]:
        """Front-end features [B, frames, feature_dim] (float32, not standardised; normalised per utterance when
        `config.utterance_normalization`) and the frame mask [B, frames].

        `warp_factors` (MFCC front end): the vocal tract length warp of every utterance (one number, or one per
        row). Without it, a fitted tokenizer with `config.vtln_warps` searches each utterance's own warp (or reads
        it at 1.0 with `config.vtln_tokenization="unwarped"`)."""
        features, frame_mask, _ = self._features(input_values, attention_mask, warp_factors)
        return features, frame_mask

    def _features(self, input_values, attention_mask, warp_factors):
        """(features, frame mask, warp factors used or None)."""
        input_values, lengths = self._batch(input_values, attention_mask)
        warps = self._check_warp_factors(warp_factors, input_values.shape[0])
        if self.config.frontend == "mfcc":
            power = self._power_spectrum(input_values)  # once: every searched warp reuses it
            search = self.config.vtln_warps is not None and self.config.vtln_tokenization == "search"
            if warps is None and search and self._fitted():
                warps = self.choose_warp_factors(*self._warp_distortions(power, lengths))
            features, frame_lengths = self._cepstral_features(power, lengths, warps)
        else:
            features, frame_lengths = self._ssl_features(input_values, lengths)
        features, frame_mask = self._masked(features, frame_lengths)
        return features, frame_mask, warps

    def _batch(self, input_values, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """`input_values` as a [B, T] batch (one waveform becomes a batch of one) and its checked lengths [B]."""
        if input_values.ndim == 1:
            input_values = input_values[None]
            attention_mask = None if attention_mask is None else attention_mask[None]
        return input_values, self._check_inputs(input_values, attention_mask)

    def _masked(self, features, frame_lengths) -> tuple[torch.Tensor, torch.BoolTensor]:
        """Front-end features as float32, normalised per utterance when configured, and their frame mask."""
        frame_mask = torch.arange(features.shape[1], device=features.device)[None] < frame_lengths[:, None]
        features = features.float()
        if self.config.utterance_normalization:
            features = _utterance_normalize(features, frame_mask)
        return features, frame_mask

    def _check_warp_factors(self, warp_factors, batch: int) -> torch.Tensor | None:
        if warp_factors is None:
            return None
        if self.config.frontend != "mfcc":
            raise ValueError("warp_factors warp the MFCC front end's mel filterbank; this tokenizer's front end is "
                             f"{self.config.frontend!r}")  # fmt: skip
        warps = torch.as_tensor(warp_factors, dtype=torch.float64).to(self.cluster_centers.device).flatten()
        if warps.numel() == 1:
            warps = warps.expand(batch)
        if warps.numel() != batch:
            raise ValueError(f"warp_factors: one per utterance ({batch}) or one for all, got {warps.numel()}")
        low, high = VTLN_WARP_RANGE
        if not (torch.compiler.is_compiling() or bool(((warps >= low) & (warps <= high)).all())):
            raise ValueError(f"warp_factors must lie in [{low}, {high}], got {warps.tolist()}")
        return warps

    # ------------------------------------------------------------------ vocal tract length normalisation
    @torch.no_grad()
    def warp_distortions(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For each utterance and each warp of `config.vtln_warps`: the summed squared distance of its
        standardised frames to their nearest centroids [B, warps], and its frame count [B]. Sum them over the
        utterances of one speaker and pass them to `choose_warp_factors` to give that speaker one warp."""
        if self.config.vtln_warps is None:
            raise ValueError("this tokenizer has no vtln_warps: build it with UnitEncoderConfig(vtln_warps=...)")
        self._require_fitted()
        input_values, lengths = self._batch(input_values, attention_mask)
        return self._warp_distortions(self._power_spectrum(input_values), lengths)

    def _warp_distortions(self, power: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        totals = []
        for warp in self.config.vtln_warps:
            warps = torch.full((power.shape[0],), warp, dtype=torch.float64, device=power.device)
            features, mask = self._masked(*self._cepstral_features(power, lengths, warps))
            # float64: a batch and its rows alone give the same sums, so a near-tie cannot pick another warp
            flat = (features.reshape(-1, features.shape[-1]).double() - self.feature_mean.double()) / self.feature_std.double()
            nearest = squared_distances(flat, self.cluster_centers, dtype=torch.float64).min(-1).values
            totals.append((nearest.view(mask.shape) * mask).sum(-1))
        return torch.stack(totals, -1), mask.sum(-1)

    def choose_warp_factors(
        self, distortions: torch.Tensor, frame_counts: torch.Tensor, groups: Sequence | None = None
    ) -> torch.Tensor:
        """The warp of `config.vtln_warps` per row that minimises the mean distortion (from `warp_distortions`)
        plus `config.vtln_prior_weight * ln(warp) ** 2`. With `groups` (one hashable label per row, e.g. the
        speaker), the rows of one label share the warp that fits all their frames together: a word or two is too
        little speech to estimate a vocal tract from, a speaker's utterances together are not."""
        device = distortions.device
        grid = torch.tensor(self.config.vtln_warps, dtype=torch.float64, device=device)
        prior = self.config.vtln_prior_weight * grid.log() ** 2
        distortions, counts = distortions.double(), frame_counts.double().to(device)
        if groups is None:
            return grid[(distortions / counts.clamp_min(1)[:, None] + prior).argmin(-1)]
        if len(groups) != distortions.shape[0]:
            raise ValueError(f"groups: one label per utterance ({distortions.shape[0]}), got {len(groups)}")
        labels = {label: i for i, label in enumerate(dict.fromkeys(groups))}
        index = torch.tensor([labels[label] for label in groups], device=device)
        pooled = torch.zeros(len(labels), grid.numel(), dtype=torch.float64, device=device).index_add_(0, index, distortions)
        frames = torch.zeros(len(labels), dtype=torch.float64, device=device).index_add_(0, index, counts)
        return grid[(pooled / frames.clamp_min(1)[:, None] + prior).argmin(-1)][index]

    def estimate_warp_factors(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None, groups: Sequence | None = None
    ) -> torch.Tensor:
        """The vocal tract length warp [B] of each utterance, or shared by the utterances of each `groups` label:
        `choose_warp_factors(*warp_distortions(...), groups)`. Pass it to `forward(warp_factors=)`."""
        return self.choose_warp_factors(*self.warp_distortions(input_values, attention_mask), groups)

    # ------------------------------------------------------------------ quantiser
    def _fitted(self) -> bool:
        """Whether the centroids are set (assumed under torch.compile / export, which cannot read a buffer)."""
        return torch.compiler.is_compiling() or torch.compiler.is_exporting() or bool(self.is_fitted)

    def _require_fitted(self) -> None:
        if torch.compiler.is_compiling() or torch.compiler.is_exporting():
            return  # reads a buffer's value, which stops torch.export / fullgraph compiles: checked in eager mode
        if not bool(self.is_fitted):
            raise RuntimeError(
                "UnitEncoderModel is not fitted: its k-means centroids are unset. Fit it with "
                "`hf_slm.training.kmeans.fit_unit_tokenizer(tokenizer, features)` or `fit_unit_tokenizer_on_dataset("
                "tokenizer, dataset, feature_extractor)`, or load a fitted tokenizer with `from_pretrained`."
            )

    def quantize(self, features: torch.Tensor) -> torch.LongTensor:
        """Nearest-centroid unit id for features [..., D] (standardised with the fitted mean/std first)."""
        self._require_fitted()
        if features.shape[-1] != self.cluster_centers.shape[-1]:
            raise ValueError(f"features have dim {features.shape[-1]}, centroids {self.cluster_centers.shape[-1]}")
        flat = (features.reshape(-1, features.shape[-1]).float() - self.feature_mean.float()) / self.feature_std.float()
        return assign(flat, self.cluster_centers.float()).view(features.shape[:-1])

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_features: bool = False,
        return_dict: bool | None = None,
        warp_factors: float | Sequence[float] | torch.Tensor | None = None,
        **kwargs,
    ) -> UnitEncoderOutput | tuple:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, num_samples)`):
            Right-padded waveforms at `config.sampling_rate` (from [`SpeechFeatureExtractor`]).
        attention_mask (`torch.LongTensor` of shape `(batch_size, num_samples)`, *optional*):
            1 for real samples, 0 for padding. Without it every sample is real.
        output_features (`bool`, *optional*, defaults to `False`):
            Also return the front-end features.
        warp_factors (`float` or `torch.FloatTensor` of shape `(batch_size,)`, *optional*):
            Vocal tract length warp of each utterance (MFCC front end), e.g. one per speaker from
            `estimate_warp_factors(..., groups=speakers)`. Default: searched per utterance when `config.vtln_warps`
            is set and `config.vtln_tokenization="search"`, else none (warp 1.0).
        """
        self._require_fitted()
        features, frame_mask, warps = self._features(input_values, attention_mask, warp_factors)
        units = self.quantize(features).masked_fill(~frame_mask, self.config.pad_unit_id)
        output = UnitEncoderOutput(
            units=units, units_mask=frame_mask, features=features if output_features else None,
            warp_factors=None if warps is None else warps.float(),
        )  # fmt: skip
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return output if return_dict else output.to_tuple()

    def encode(self, input_values, attention_mask=None, return_dict: bool | None = None) -> UnitEncoderOutput | tuple:
        """Audio -> units: the speech-tokenizer call shared with the codecs (`CodecModel.encode`); same as `forward`
        without features."""
        return self(input_values, attention_mask=attention_mask, return_dict=return_dict)

    def tokenize(
        self,
        input_values: torch.Tensor | Sequence[torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        plan: TokenizationPlan | None = None,
    ) -> list[torch.LongTensor]:
        r"""
        Units of each utterance (padding removed, on the CPU), in input order: the same units as calling the model
        on each utterance alone, computed in length-sorted batches (see [`~batching.length_buckets`]).

        Args:
            input_values: a padded `[batch, samples]` batch from [`SpeechFeatureExtractor`] (with its
                `attention_mask`), or a list of 1-D waveforms already normalised as the feature extractor does.
            attention_mask (`torch.LongTensor`, *optional*): sample mask of a padded batch.
            plan ([`TokenizationPlan`], *optional*): batch size, padding bound and workers; default
                [`~batching.default_plan`] for this model's config and device (per utterance on two CPU workers for
                HuBERT-base, batches of up to 16 on a GPU).
        """
        if isinstance(input_values, torch.Tensor):
            values = input_values[None] if input_values.ndim == 1 else input_values
            lengths = self._check_inputs(values, attention_mask).tolist()
            waves = [values[i, :n] for i, n in enumerate(lengths)]
        else:
            waves = [torch.as_tensor(w) for w in input_values]
            lengths = [int(w.shape[-1]) for w in waves]
        self._require_fitted()
        plan = plan or default_plan(self.config, self.device)
        buckets = length_buckets(lengths, plan.batch_size, plan.max_padding)
        units: list[torch.LongTensor | None] = [None] * len(waves)

        def run(bucket: list[int]) -> None:
            longest = lengths[bucket[0]]
            # built where the waves are: inputs already on a GPU make no round trip through the host
            first = waves[bucket[0]]
            batch = torch.zeros(len(bucket), longest, dtype=first.dtype, device=first.device)
            for row, index in enumerate(bucket):
                batch[row, : lengths[index]] = waves[index]
            mask = None
            if any(lengths[index] < longest for index in bucket):
                mask = (torch.arange(longest)[None] < torch.tensor([lengths[i] for i in bucket])[:, None]).long()
            with torch.inference_mode():  # per thread: the workers' forwards need it too
                out = self(batch.to(self.device), attention_mask=None if mask is None else mask.to(self.device))
            batch_units, batch_mask = out.units.cpu(), out.units_mask.cpu()  # one copy to the host per batch
            for row, index in enumerate(bucket):
                units[index] = batch_units[row][batch_mask[row]]

        threads = torch.get_num_threads()
        if plan.threads_per_worker:
            torch.set_num_threads(plan.threads_per_worker)
        try:
            if plan.num_workers > 1 and len(buckets) > 1:
                with ThreadPoolExecutor(min(plan.num_workers, len(buckets))) as pool:
                    list(pool.map(run, buckets))  # longest first: the workers finish close together
            else:
                for bucket in buckets:
                    run(bucket)
        finally:
            torch.set_num_threads(threads)
        return units

    @staticmethod
    def deduplicate(
        units: torch.Tensor, units_mask: torch.Tensor | None = None
    ) -> list[tuple[torch.LongTensor, torch.LongTensor]]:
        """Collapse runs of repeated units per utterance: [(units, durations in frames), ...] (padding dropped)."""
        if units.ndim == 1:
            units = units[None]
            units_mask = None if units_mask is None else units_mask[None]
        result = []
        for i, row in enumerate(units):
            valid = row if units_mask is None else row[units_mask[i].bool()]
            values, counts = torch.unique_consecutive(valid, return_counts=True)
            result.append((values.long(), counts.long()))
        return result

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_ssl_pretrained(
        cls, name_or_path: str, layer: int, num_units: int = 100, **kwargs
    ) -> UnitEncoderModel:
        """An (unfitted) SSL tokenizer around a real encoder checkpoint loaded with `AutoModel.from_pretrained`
        (HuBERT, WavLM, wav2vec2, ...); only the layers up to `layer` are kept. `kwargs` go to the config."""
        load_kwargs = {key: kwargs.pop(key) for key in ("revision", "token", "cache_dir", "local_files_only") if key in kwargs}
        ssl_config = AutoConfig.from_pretrained(name_or_path, **load_kwargs)
        if ssl_config.model_type in LOG_MEL_ENCODERS and "ssl_feature_extractor" not in kwargs:
            extractor = AutoFeatureExtractor.from_pretrained(name_or_path, **load_kwargs).to_dict()
            kwargs["ssl_feature_extractor"] = {k: v for k, v in extractor.items() if k != "auto_map"}
        config = UnitEncoderConfig(
            frontend="ssl", ssl_config=ssl_config, ssl_layer=layer, num_units=num_units, **kwargs
        )
        model = cls(config)
        encoder = AutoModel.from_pretrained(name_or_path, config=_truncated_ssl_config(config), **load_kwargs)
        model.ssl_encoder.load_state_dict(encoder.state_dict())
        return model.eval()


def _utterance_normalize(features: torch.Tensor, frame_mask: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-utterance mean and variance normalisation (CMVN) of features [B, T, D] over each row's valid frames
    (`frame_mask` [B, T]); padded frames become 0."""
    mask = frame_mask[..., None].to(features.dtype)
    count = mask.sum(1, keepdim=True).clamp_min(1.0)
    mean = (features * mask).sum(1, keepdim=True) / count
    var = (((features - mean) * mask) ** 2).sum(1, keepdim=True) / count
    return (features - mean) * torch.rsqrt(var + eps) * mask


def warp_mel_bank(bank: torch.Tensor, warps: torch.Tensor, knee: float = 0.8) -> torch.Tensor:
    """A mel filterbank [n_freqs, n_mels] warped by each factor of `warps` [W]: [W, n_freqs, n_mels].

    Kaldi's piecewise-linear VTLN shape: the warped bank reads frequency f where the plain bank reads g(f) = a * f,
    up to a knee (`knee` of Nyquist, lowered for a > 1 so that g stays inside the band), then a line to Nyquist.
    a < 1 maps a shorter vocal tract's (a higher voice's) formants down onto the plain bank's; a = 1 returns the
    bank unchanged, bit for bit.
    """
    nyquist = bank.shape[0] - 1
    frequency = torch.arange(bank.shape[0], dtype=torch.float64, device=bank.device)
    warps = torch.as_tensor(warps, dtype=torch.float64, device=bank.device).reshape(-1, 1)
    corner = knee * nyquist / warps.clamp_min(1.0)
    upper = warps * corner + (frequency - corner) * (nyquist - warps * corner) / (nyquist - corner)
    source = torch.where(frequency <= corner, warps * frequency, upper).clamp(0, nyquist)
    low = source.floor().long()
    high = (low + 1).clamp(max=nyquist)
    weight = (source - low).to(bank.dtype)[..., None]
    return bank[low] * (1 - weight) + bank[high] * weight


def _build_mfcc(config: UnitEncoderConfig) -> torchaudio.transforms.MFCC:
    """torchaudio MFCC whose window / mel bank / DCT buffers are computed from the config, never saved or loaded.

    Built on CPU even when transformers instantiates the model on the meta device (torchaudio cannot compute its
    filterbank there); the buffers are non-persistent so checkpoints hold only the k-means state.
    """
    with torch.device("cpu"):
        mfcc = torchaudio.transforms.MFCC(
            sample_rate=config.sampling_rate,
            n_mfcc=config.n_mfcc,
            log_mels=True,  # per-frame log (not AmplitudeToDB, whose top_db clamp looks at the whole utterance)
            melkwargs={
                "n_fft": config.n_fft,
                "win_length": config.win_length,
                "hop_length": config.hop_length,
                "n_mels": config.n_mels,
                "center": False,
            },
        )
    for module in mfcc.modules():
        module._non_persistent_buffers_set.update(name for name, _ in module.named_buffers(recurse=False))
    return mfcc


def compute_deltas(x: torch.Tensor, lengths: torch.Tensor, win_length: int = 5) -> torch.Tensor:
    """`torchaudio.functional.compute_deltas` (replicate padding) of x [B, C, T] per utterance of `lengths` frames.

    Frames past an utterance's end are first replaced by its last valid frame, so they act exactly like the
    replicate padding the utterance sees alone; the regression is written elementwise (not as a conv1d) so every
    output element is computed the same way whatever the batch shape, and padded batches equal single utterances
    bit for bit.
    """
    n = (win_length - 1) // 2
    time = x.shape[-1]
    padded = torch.nn.functional.pad(_replicate_tail(x, lengths), (n, n), mode="replicate")
    out = torch.zeros_like(x)
    for k in range(1, n + 1):
        out = out + k * (padded[..., n + k : n + k + time] - padded[..., n - k : n - k + time])
    return out / (n * (n + 1) * (2 * n + 1) / 3)


def _replicate_tail(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x [B, C, T]: frames at t >= lengths[b] become a copy of frame lengths[b]-1 (what an utterance alone sees
    from `compute_deltas`' replicate padding)."""
    time = x.shape[-1]
    index = torch.minimum(torch.arange(time, device=x.device)[None], (lengths - 1).clamp_min(0)[:, None])
    return x.gather(-1, index[:, None, :].expand(-1, x.shape[1], -1))


__all__ = ["MaskedGroupNorm", "UnitEncoderModel", "UnitEncoderOutput", "compute_deltas", "warp_mel_bank"]
