"""Configuration of the unit encoder: speech -> frame features -> k-means discrete units."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

_FRONTENDS = ("mfcc", "ssl")
#: Encoders that read log-mel features (the Seamless / w2v-BERT 2.0 feature extractor: 25 ms windows every 10 ms at
#: 16 kHz), not the waveform.
LOG_MEL_ENCODERS = ("wav2vec2-bert",)
LOG_MEL_WINDOW, LOG_MEL_HOP = 400, 160


class UnitEncoderConfig(PretrainedConfig):
    r"""
    Configuration of [`UnitEncoderModel`]: a speech front end (MFCC or a self-supervised encoder) followed by a
    k-means quantiser that maps each frame to one of `num_units` discrete units.

    The defaults reproduce the HuBERT "iteration 0" tokenizer: 13 MFCCs plus deltas and delta-deltas (39 dims),
    quantised into 100 clusters, at HuBERT's 50 Hz frame rate (25 ms window, 20 ms hop at 16 kHz) so that MFCC units
    and SSL units of the same audio have the same length. With `frontend="ssl"` the defaults (HuBERT-base, layer 6,
    100 units) are the "HuBERT-base L6 km100" units of GSLM.

    Args:
        frontend (`str`, *optional*, defaults to `"mfcc"`):
            `"mfcc"` (no trained weights; good for bootstrapping and tests) or `"ssl"` (any transformers audio encoder
            described by `ssl_config`).
        num_units (`int`, *optional*, defaults to 100):
            Number of k-means clusters (the unit vocabulary size). Typical values 50..2000.
        sampling_rate (`int`, *optional*, defaults to 16000):
            Sampling rate (Hz) the front end expects; the feature extractor resamples everything to it.
        n_mfcc (`int`, *optional*, defaults to 13):
            Number of cepstral coefficients (MFCC front end).
        n_mels (`int`, *optional*, defaults to 40):
            Number of mel filters the MFCCs are computed from.
        n_fft (`int`, *optional*):
            FFT size; defaults to `win_length`.
        win_length (`int`, *optional*, defaults to 400):
            Analysis window in samples (25 ms at 16 kHz). Audio shorter than `n_fft` gives no frame.
        hop_length (`int`, *optional*, defaults to 320):
            MFCC hop in samples (20 ms at 16 kHz), equal to HuBERT's conv stride product so both front ends run at
            50 Hz.
        use_deltas (`bool`, *optional*, defaults to `True`):
            Append first and second order deltas to the MFCCs (13 -> 39 dims, as HuBERT iteration 0).
        ssl_config (`dict` or `PretrainedConfig`, *optional*):
            Config of the self-supervised encoder (`HubertConfig`, `WavLMConfig`, `Wav2Vec2Config`, ... or their
            dict with a `model_type`). Defaults to `HubertConfig()` (HuBERT-base) when `frontend="ssl"`; ignored
            (kept `None`) for the MFCC front end.
        ssl_feature_extractor (`dict`, *optional*):
            For an encoder that reads log-mel features instead of the waveform (wav2vec2-bert, a conformer over 80
            log-mel bins stacked in pairs): its feature extractor's dict (`SeamlessM4TFeatureExtractor().to_dict()`),
            which the model runs on the waveform (`from_ssl_pretrained` reads it from the checkpoint). Required for
            `wav2vec2-bert`, refused for conv (waveform) encoders.
        ssl_layer (`int`, *optional*, defaults to 6):
            Which `hidden_states` entry of the encoder to quantise, as transformers 5 numbers them: 0 = input of the
            first transformer layer, L = output of layer L (before the final LayerNorm of pre-LN encoders). Only the
            layers up to it are built and run.
        utterance_normalization (`bool`, *optional*, defaults to `False`):
            Normalise every utterance's features to zero mean and unit variance per dimension over its own frames
            (CMVN) before the global standardisation and k-means, when fitting and when tokenising. It removes a
            constant per-utterance offset such as a speaker's timbre; it needs the whole utterance (a chunk of a long
            recording is normalised on its own).
        vtln_warps (`Sequence[float]`, *optional*):
            Vocal tract length normalisation (MFCC front end only): the grid of frequency warp factors to search,
            e.g. `DEFAULT_VTLN_WARPS` (0.80 to 1.20 in steps of 0.025; it must hold 1.0, the unwarped features a
            first fit clusters). A fitted tokenizer warps the mel filterbank by each factor (piecewise linear, the
            shape of Kaldi's VTLN) and tokenises each utterance at the factor whose features lie closest to its
            centroids, so a shorter or longer vocal tract (a higher or lower voice) maps onto the same units. Pool the
            choice over a speaker's utterances with `estimate_warp_factors(..., groups=)`. Fit with
            `fit_unit_tokenizer_on_dataset(..., vtln_iterations=2)`. `None` (the default): no warping.
        vtln_prior_weight (`float`, *optional*, defaults to 0.0):
            Weight of a prior that pulls the warp towards 1: the search minimises the mean squared distance of the
            standardised features to their nearest centroid plus `vtln_prior_weight * ln(warp) ** 2`. 0 (plain
            maximum-likelihood warps) scored better within speakers than 20 on held-out ABX items.
        vtln_tokenization (`str`, *optional*, defaults to `"search"`):
            How a fitted tokenizer with `vtln_warps` tokenises when no `warp_factors` are given: `"search"` warps each
            utterance to its best-fitting factor; `"unwarped"` reads every utterance at warp 1.0 with the codebook
            fitted on warp-normalised speech (the search still runs when fitting). Measured on the default's recipe
            (8 k-means draws), `"unwarped"` kept within-speaker ABX at the plain MFCC units' level (1.82 vs 1.74 %)
            where the search on a word or two of speech raised it (3.52 %), with between-speaker ABX 5.88 vs 13.93 %.
        pad_unit_id (`int`, *optional*, defaults to -1):
            Value written at padded frames of `units`; never a valid unit id, so a forgotten mask fails loudly
            (e.g. in an embedding lookup) instead of silently reading unit 0.
        kwargs:
            Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from transformers import HubertConfig
    >>> from hf_slm import UnitEncoderConfig
    >>> config = UnitEncoderConfig()  # MFCC + deltas, 100 units, 50 Hz
    >>> config.feature_dim, config.frame_rate, config.hop_length
    (39, 50.0, 320)
    >>> ssl = UnitEncoderConfig(frontend="ssl", ssl_config=HubertConfig(), ssl_layer=6, num_units=500)
    >>> ssl.feature_dim, ssl.frame_rate
    (768, 50.0)

    ```
    """

    model_type = "hf_slm_unit_encoder"
    sub_configs_defaults = {"ssl_config": SubConfigSpec(config_class=AutoConfig, model_type="hubert", optional=True)}

    #: Names this family had before hf_slm 0.2, still read from saved configs (with a FutureWarning) until 0.3,
    #: by `hf_slm.models.legacy_names` (installed at registration).
    legacy_model_types = ("hf_slm_kmeans_unit_tokenizer",)  # rename: keep
    legacy_architectures = {"KMeansUnitTokenizer": "UnitEncoderModel"}  # rename: keep

    def __init__(
        self,
        frontend: str = "mfcc",
        num_units: int = 100,
        sampling_rate: int = 16000,
        n_mfcc: int = 13,
        n_mels: int = 40,
        n_fft: int | None = None,
        win_length: int = 400,
        hop_length: int = 320,
        use_deltas: bool = True,
        ssl_config: dict | PretrainedConfig | None = None,
        ssl_layer: int = 6,
        ssl_feature_extractor: dict | None = None,
        utterance_normalization: bool = False,
        vtln_warps: Sequence[float] | None = None,
        vtln_prior_weight: float = 0.0,
        vtln_tokenization: str = "search",
        pad_unit_id: int = -1,
        **kwargs,
    ):
        if frontend not in _FRONTENDS:
            raise ValueError(f"frontend must be one of {_FRONTENDS}, got {frontend!r}")
        for name, value, minimum in (
            ("num_units", num_units, 1),
            ("sampling_rate", sampling_rate, 1),
            ("n_mfcc", n_mfcc, 1),
            ("n_mels", n_mels, 1),
            ("win_length", win_length, 1),
            ("hop_length", hop_length, 1),
            ("ssl_layer", ssl_layer, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
        n_fft = win_length if n_fft is None else n_fft
        if not isinstance(n_fft, int) or n_fft < win_length:
            raise ValueError(f"n_fft must be an int >= win_length={win_length}, got {n_fft!r}")
        if n_mfcc > n_mels:
            raise ValueError(f"n_mfcc={n_mfcc} cannot exceed n_mels={n_mels}")
        if not isinstance(utterance_normalization, bool):
            raise ValueError(f"utterance_normalization must be a bool, got {utterance_normalization!r}")
        vtln_warps = _check_vtln(frontend, vtln_warps, vtln_prior_weight)
        if vtln_tokenization not in VTLN_TOKENIZATIONS:
            raise ValueError(f"vtln_tokenization must be one of {VTLN_TOKENIZATIONS}, got {vtln_tokenization!r}")
        if vtln_tokenization != "search" and vtln_warps is None:
            raise ValueError(f"vtln_tokenization={vtln_tokenization!r} is for a tokenizer fitted with vtln_warps "
                             "(the codebook of warp-normalised speech); this one has none")  # fmt: skip
        if pad_unit_id >= 0:
            raise ValueError(f"pad_unit_id must be negative (never a valid unit id), got {pad_unit_id}")

        if isinstance(ssl_config, PretrainedConfig):
            ssl_config = copy.deepcopy(ssl_config)  # models set attributes on their config: never share the caller's
        elif ssl_config is not None and not isinstance(ssl_config, dict):
            raise ValueError(f"ssl_config must be a dict or a PretrainedConfig, got {type(ssl_config).__name__}")
        elif ssl_config is not None or frontend == "ssl":  # a dict names its model_type (default HuBERT)
            ssl_config, _ = self.sub_configs_defaults["ssl_config"].create_subconfig("ssl_config", ssl_config)
        log_mel = frontend == "ssl" and getattr(ssl_config, "model_type", None) in LOG_MEL_ENCODERS
        if log_mel:
            fields = ("feature_extractor_type", "num_mel_bins", "stride", "sampling_rate")
            if not isinstance(ssl_feature_extractor, dict) or any(k not in ssl_feature_extractor for k in fields):
                raise ValueError(
                    f"a {ssl_config.model_type} encoder reads log-mel features: ssl_feature_extractor must be its "
                    f"feature extractor's dict with {fields} (SeamlessM4TFeatureExtractor().to_dict()), got "
                    f"{ssl_feature_extractor!r:.120}"
                )
            if ssl_feature_extractor["sampling_rate"] != sampling_rate:
                raise ValueError(f"ssl_feature_extractor works at {ssl_feature_extractor['sampling_rate']} Hz but "
                                 f"sampling_rate={sampling_rate}")  # fmt: skip
        elif ssl_feature_extractor is not None:
            raise ValueError("ssl_feature_extractor is for log-mel encoders (wav2vec2-bert) only")
        if frontend == "ssl":
            for attr in (() if log_mel else ("conv_stride", "conv_kernel")) + ("num_hidden_layers", "hidden_size"):
                if not hasattr(ssl_config, attr):
                    raise ValueError(
                        f"ssl_config ({type(ssl_config).__name__}) has no `{attr}`: the SSL front end needs a "
                        "wav2vec2-style audio encoder config (HubertConfig, WavLMConfig, Wav2Vec2Config, ...)"
                    )
            if ssl_layer > ssl_config.num_hidden_layers:
                raise ValueError(
                    f"ssl_layer={ssl_layer} exceeds the encoder's num_hidden_layers={ssl_config.num_hidden_layers}"
                )

        self.frontend = frontend
        self.num_units = num_units
        self.sampling_rate = sampling_rate
        self.n_mfcc = n_mfcc
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.win_length = win_length
        self._hop_length = hop_length
        self.use_deltas = use_deltas
        self.ssl_config = ssl_config
        self.ssl_layer = ssl_layer
        self.ssl_feature_extractor = dict(ssl_feature_extractor) if ssl_feature_extractor is not None else None
        self.utterance_normalization = utterance_normalization
        self.vtln_warps = vtln_warps
        self.vtln_prior_weight = float(vtln_prior_weight)
        self.vtln_tokenization = vtln_tokenization
        self.pad_unit_id = pad_unit_id
        super().__init__(**kwargs)

    @property
    def hop_length(self) -> int:
        """Samples per output frame: the MFCC hop, the product of the encoder's conv strides, or a log-mel encoder's
        10 ms hop times its frame stacking."""
        if self.ssl_feature_extractor is not None:  # 10 ms fbank frames, stacked `stride` at a time
            return LOG_MEL_HOP * self.ssl_feature_extractor["stride"]
        if self.frontend == "ssl":
            return math.prod(self.ssl_config.conv_stride)
        return self._hop_length

    @property
    def receptive_field(self) -> int:
        """Fewest samples that give one frame (the analysis window): `n_fft`, the conv stack's receptive field, or a
        log-mel encoder's stacked windows."""
        if self.ssl_feature_extractor is not None:  # one stacked frame: `stride` 25 ms windows, 10 ms apart
            return LOG_MEL_WINDOW + LOG_MEL_HOP * (self.ssl_feature_extractor["stride"] - 1)
        if self.frontend == "ssl":
            field = 1
            for kernel, stride in reversed(list(zip(self.ssl_config.conv_kernel, self.ssl_config.conv_stride))):
                field = (field - 1) * stride + kernel
            return field
        return self.n_fft

    @property
    def frame_rate(self) -> float:
        """Units per second."""
        return self.sampling_rate / self.hop_length

    @property
    def consumes(self) -> dict:
        """What a pipeline component of this config takes in: `hf_slm.pipelines.check_compatibility` compares the
        values of a key one component produces and the next consumes. `audio.min_samples` is a lower bound: the
        feature extractor must refuse audio shorter than one receptive field."""
        return {"audio.sampling_rate": self.sampling_rate, "audio.min_samples": self.receptive_field}

    @property
    def produces(self) -> dict:
        """What a pipeline component of this config hands on: `hf_slm.pipelines.check_compatibility` compares the
        values of a key one component produces and the next consumes."""
        return {"units.num_units": self.num_units, "units.frame_rate": self.frame_rate}

    @property
    def feature_dim(self) -> int:
        """Dimension of the features that are clustered."""
        if self.frontend == "ssl":
            return self.ssl_config.hidden_size
        return self.n_mfcc * (3 if self.use_deltas else 1)

    def to_dict(self):
        output = super().to_dict()
        output["hop_length"] = output.pop("_hop_length", self._hop_length)
        return output


#: The warp grid of `vtln_warps=` in `hf-slm fit-tokenizer --vtln`: 0.80 .. 1.20 in steps of 0.025 (17 factors).
DEFAULT_VTLN_WARPS = tuple(round(0.8 + 0.025 * i, 3) for i in range(17))
#: `vtln_tokenization=`: search each utterance's warp, or read every utterance at warp 1.0.
VTLN_TOKENIZATIONS = ("search", "unwarped")
#: Warp factors outside this range are refused: they move a formant past half or double its frequency.
VTLN_WARP_RANGE = (0.5, 2.0)


def _check_vtln(frontend, warps, prior_weight) -> list[float] | None:
    if isinstance(prior_weight, bool) or not isinstance(prior_weight, (int, float)) or not prior_weight >= 0:
        raise ValueError(f"vtln_prior_weight must be a number >= 0, got {prior_weight!r}")
    if warps is None:
        return None
    if frontend != "mfcc":
        raise ValueError("vtln_warps warps the MFCC front end's mel filterbank: it needs frontend='mfcc'")
    if isinstance(warps, (str, bytes)) or not isinstance(warps, Sequence) or len(warps) < 2:
        raise ValueError(f"vtln_warps must be a list of at least 2 warp factors, got {warps!r}")
    low, high = VTLN_WARP_RANGE
    for warp in warps:
        if isinstance(warp, bool) or not isinstance(warp, (int, float)) or not low <= warp <= high:
            raise ValueError(f"vtln_warps: each warp factor must be a number in [{low}, {high}], got {warp!r}")
    warps = [float(w) for w in warps]
    if sorted(set(warps)) != warps:
        raise ValueError(f"vtln_warps must be strictly increasing, got {warps}")
    if 1.0 not in warps:
        raise ValueError(f"vtln_warps must hold 1.0 (the unwarped features a first fit clusters), got {warps}")
    return warps


__all__ = ["DEFAULT_VTLN_WARPS", "VTLN_TOKENIZATIONS", "UnitEncoderConfig"]
