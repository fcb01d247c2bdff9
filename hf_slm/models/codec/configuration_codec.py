"""Configurations of the codecs: a wrapper of transformers' neural codecs, our own trainable RVQ codec, and a log-mel
RVQ codec fitted by k-means."""

from __future__ import annotations

import copy
import math

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

#: transformers codecs the wrapper knows how to drive (their `encode` / `decode` signatures differ).
SUPPORTED_CODECS = ("encodec", "dac", "mimi", "xcodec")


def _check_int(name, value, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_float(name, value, minimum=0.0, maximum=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ValueError(f"{name} must be a number >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")


def _check_int_tuple(name, value, minimum=1):
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{name} must be a non-empty list/tuple of ints, got {value!r}")
    for v in value:
        _check_int(f"each entry of {name}", v, minimum)
    return tuple(value)


def _check_pad_code_id(pad_code_id):
    if not isinstance(pad_code_id, int) or pad_code_id >= 0:
        raise ValueError(f"pad_code_id must be a negative int (never a valid code), got {pad_code_id!r}")


def _check_mel_fmax(mel_fmin, mel_fmax, sampling_rate):
    if mel_fmax is not None and not (mel_fmin < mel_fmax <= sampling_rate / 2):
        raise ValueError(f"mel_fmax must be in (mel_fmin, sampling_rate / 2], got {mel_fmax!r}")


def _codec_fields(codec_config) -> dict:
    """Sampling rate, hop, codebook size and number of codebooks of a transformers codec config."""
    model_type = codec_config.model_type
    if model_type == "xcodec":
        sampling_rate = codec_config.sample_rate
    else:
        sampling_rate = codec_config.sampling_rate
    if model_type == "mimi":
        hop_length = int(round(sampling_rate / codec_config.frame_rate))
        max_codebooks = codec_config.num_quantizers
    elif model_type == "dac":
        hop_length = int(math.prod(codec_config.downsampling_ratios))
        max_codebooks = codec_config.n_codebooks
    else:  # encodec, xcodec: the highest target bandwidth decides how many codebooks exist
        hop_length = int(codec_config.hop_length)
        max_codebooks = int(codec_config.num_quantizers)
    return {
        "sampling_rate": int(sampling_rate),
        "hop_length": hop_length,
        "codebook_size": int(codec_config.codebook_size),
        "max_codebooks": int(max_codebooks),
    }


class CodecInterfaceMixin:
    """What every codec config derives (frame rate, bitrate) and what its component hands on and takes in, for
    `hf_slm.pipelines.check_compatibility`, which compares the values of a key one component produces and the next
    consumes."""

    @property
    def consumes(self) -> dict:
        """Audio in as a tokenizer, codes in as a vocoder."""
        return {"audio.sampling_rate": self.sampling_rate} | self.produces

    @property
    def frame_rate(self) -> float:
        """Code frames per second: `sampling_rate / hop_length`."""
        return self.sampling_rate / self.hop_length

    @property
    def bitrate(self) -> float:
        """Bits per second of the codes `encode` returns: num_codebooks * log2(codebook_size) * frame_rate."""
        return self.num_codebooks * math.log2(self.codebook_size) * self.frame_rate

    @property
    def produces(self) -> dict:
        return {
            "codes.num_codebooks": self.num_codebooks,
            "codes.codebook_size": self.codebook_size,
            "codes.frame_rate": self.frame_rate,
        }


class CodecConfig(CodecInterfaceMixin, PretrainedConfig):
    r"""
    Configuration of [`CodecModel`]: one interface (`encode(audio) -> codes [B, Q, T]`, `decode(codes) -> audio`)
    over a neural codec that transformers ships: `EncodecModel`, `DacModel`, `MimiModel` or `XcodecModel`, held as
    the `codec_config` sub-config and built with `AutoModel.from_config` (CSM's way of owning a codec).

    The defaults reproduce `facebook/encodec_24khz` (24 kHz, 75 Hz frames, 1024 codes per codebook) at its lowest
    bandwidth, 1.5 kbps = 2 codebooks. Real checkpoints load with [`CodecModel.from_codec_pretrained`].

    Args:
        codec_config (`dict` or `PretrainedConfig`, *optional*):
            Config of the wrapped codec (`EncodecConfig`, `DacConfig`, `MimiConfig`, `XcodecConfig`, or their dict
            with a `model_type`). Defaults to `EncodecConfig()`. Chunked / normalised / stereo Encodec variants
            (`encodec_48khz`) are refused: their per-chunk scales are not codes.
        num_codebooks (`int`, *optional*):
            How many residual codebooks `encode` keeps (the bitrate); defaults to the codec's smallest bandwidth
            for Encodec / Xcodec and to all codebooks for DAC / Mimi. At most `max_codebooks`.
        pad_code_id (`int`, *optional*, defaults to -1):
            Value written at padded frames of `codes`; never a valid code, so a forgotten `codes_mask` fails loudly.
        kwargs:
            Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from transformers import DacConfig
    >>> from hf_slm import CodecConfig
    >>> config = CodecConfig()  # encodec_24khz layout
    >>> config.codec_type, config.sampling_rate, config.frame_rate, config.num_codebooks, config.bitrate
    ('encodec', 24000, 75.0, 2, 1500.0)
    >>> CodecConfig(codec_config=DacConfig(), num_codebooks=4).bitrate  # 4 of DAC's 9 codebooks, 31.25 Hz
    1250.0

    ```
    """

    model_type = "hf_slm_codec"
    sub_configs_defaults = {"codec_config": SubConfigSpec(config_class=AutoConfig, model_type="encodec")}

    #: Names this family had before hf_slm 0.2, still read from saved configs (with a FutureWarning) until 0.3,
    #: by `hf_slm.models.legacy_names` (installed at registration).
    legacy_model_types = ("hf_slm_codec_tokenizer",)  # rename: keep
    legacy_architectures = {"CodecTokenizer": "CodecModel"}  # rename: keep

    def __init__(self, codec_config=None, num_codebooks: int | None = None, pad_code_id: int = -1, **kwargs):
        if isinstance(codec_config, PretrainedConfig):
            codec_config = copy.deepcopy(codec_config)  # models write into their config: never share the caller's
        elif codec_config is None or isinstance(codec_config, dict):  # a dict names its model_type (default EnCodec)
            codec_config, _ = self.sub_configs_defaults["codec_config"].create_subconfig("codec_config", codec_config)
        else:
            raise ValueError(f"codec_config must be a dict or a PretrainedConfig, got {type(codec_config).__name__}")
        if codec_config.model_type not in SUPPORTED_CODECS:
            raise ValueError(
                f"codec_config.model_type={codec_config.model_type!r} is not a supported codec; use one of "
                f"{SUPPORTED_CODECS}"
            )
        if codec_config.model_type == "encodec":
            if codec_config.chunk_length_s is not None or codec_config.normalize:
                raise ValueError(
                    "codec_config: chunked / normalised Encodec (chunk_length_s, normalize, e.g. encodec_48khz) "
                    "rescales every chunk by a float that codes cannot carry; use a chunk-free Encodec (encodec_24khz)"
                )
        if getattr(codec_config, "audio_channels", 1) != 1:
            raise ValueError(f"codec_config.audio_channels must be 1 (mono speech), got {codec_config.audio_channels}")
        fields = _codec_fields(codec_config)
        if num_codebooks is None:
            num_codebooks = self._default_codebooks(codec_config, fields)
        _check_int("num_codebooks", num_codebooks, 1)
        if num_codebooks > fields["max_codebooks"]:
            raise ValueError(
                f"num_codebooks={num_codebooks} exceeds the {fields['max_codebooks']} codebooks of the "
                f"{codec_config.model_type} codec"
            )
        _check_pad_code_id(pad_code_id)
        self.codec_config = codec_config
        self.num_codebooks = num_codebooks
        self.pad_code_id = pad_code_id
        super().__init__(**kwargs)

    @staticmethod
    def _default_codebooks(codec_config, fields) -> int:
        if codec_config.model_type in ("encodec", "xcodec"):
            frame_rate = fields["sampling_rate"] / fields["hop_length"]
            bits_per_second = math.ceil(math.log2(fields["codebook_size"])) * frame_rate
            return max(1, int(1000 * codec_config.target_bandwidths[0] // bits_per_second))
        return fields["max_codebooks"]

    @property
    def codec_type(self) -> str:
        return self.codec_config.model_type

    @property
    def sampling_rate(self) -> int:
        return _codec_fields(self.codec_config)["sampling_rate"]

    @property
    def hop_length(self) -> int:
        """Audio samples per code frame."""
        return _codec_fields(self.codec_config)["hop_length"]

    @property
    def codebook_size(self) -> int:
        return _codec_fields(self.codec_config)["codebook_size"]

    @property
    def max_codebooks(self) -> int:
        """Codebooks the codec has (`num_codebooks` keeps a prefix of them)."""
        return _codec_fields(self.codec_config)["max_codebooks"]


class RVQCodecConfig(CodecInterfaceMixin, PretrainedConfig):
    r"""
    Configuration of [`RVQCodecModel`], our own trainable codec: a SEANet-style convolutional encoder/decoder
    (SoundStream, EnCodec) around a residual vector quantizer with EMA codebooks, k-means initialisation, dead-code
    restart and a commitment loss, trained with the HiFi-GAN losses (mel L1 + least-squares adversarial + feature
    matching against multi-period / multi-scale discriminators). Optionally the first RVQ level is distilled toward a
    teacher's semantic features (SpeechTokenizer; Mimi), making level-1 codes a "semantic" token stream.

    The defaults reproduce the EnCodec SEANet layout without its LSTM (so the receptive field stays finite and
    chunked decoding is exact) on 16 kHz speech: strides 2, 4, 5, 8 (hop 320, 50 Hz frames, the rate of HuBERT /
    MFCC units), 32 base filters doubling per stride, a 128-dim latent, causal convolutions (streamable with no
    look-ahead), 8 codebooks of 1024 codes = 4 kbps, EMA decay 0.99 and dead-code threshold 2 (EnCodec), commitment
    weight 1; HiFi-GAN's discriminators and loss weights (mel 45, feature matching 2, adversarial 1) and
    SpeechTokenizer's distillation weight 120.

    Args:
        sampling_rate (`int`, *optional*, defaults to 16000): Audio sampling rate in Hz.
        upsampling_ratios (`tuple[int]`, *optional*, defaults to `(8, 5, 4, 2)`):
            Decoder strides (the encoder uses them reversed); their product is `hop_length`.
        num_filters (`int`, *optional*, defaults to 32): Channels of the first encoder conv; doubled at each stride.
        num_residual_layers (`int`, *optional*, defaults to 1): Residual units per stride, dilations
            `dilation_growth_rate ** j`.
        kernel_size (`int`, *optional*, defaults to 7): Kernel of the first encoder / decoder conv.
        last_kernel_size (`int`, *optional*, defaults to 7): Kernel of the last encoder / decoder conv.
        residual_kernel_size (`int`, *optional*, defaults to 3): Kernel of the residual units' dilated conv.
        dilation_growth_rate (`int`, *optional*, defaults to 2): Dilation growth inside a stack of residual units.
        compress (`int`, *optional*, defaults to 2): Channel reduction inside residual units (Demucs v3).
        hidden_size (`int`, *optional*, defaults to 128): Latent (and codebook vector) dimension.
        causal (`bool`, *optional*, defaults to `True`): Pad convolutions on the left only, so a frame depends on
            the past: streaming encode / decode needs no right context. `False` pads symmetrically.
        num_codebooks (`int`, *optional*, defaults to 8): Residual levels; sets the bitrate
            (`num_codebooks * log2(codebook_size) * frame_rate` bits/s).
        codebook_size (`int`, *optional*, defaults to 1024): Codes per codebook.
        ema_decay (`float`, *optional*, defaults to 0.99): Decay of the EMA codebook update (no gradient reaches
            the codebooks).
        ema_epsilon (`float`, *optional*, defaults to 1e-5): Laplace smoothing of the EMA cluster sizes.
        dead_code_threshold (`float`, *optional*, defaults to 2.0): A code whose EMA cluster size (frames per
            batch) falls below this is restarted from a random frame of the batch; 0 disables restarts. Scale it
            with the number of frames per batch over `codebook_size`.
        kmeans_init (`bool`, *optional*, defaults to `True`): Initialise each codebook by k-means on the first
            training batch (EnCodec); otherwise codebooks start uniform-random and are restarted from data.
        kmeans_iters (`int`, *optional*, defaults to 10): Lloyd iterations of that initialisation.
        quantizer_dropout (`float`, *optional*, defaults to 0.0): Probability that a training batch uses only the
            first n ~ U{1..num_codebooks} levels (SoundStream), so that one model serves every bitrate.
        quantizer_bypass (`float`, *optional*, defaults to 0.0): Probability that a training sequence skips
            quantization and the decoder gets the continuous latents (Mimi quantizes only half of its training
            sequences, 0.5): the encoder then also learns from direct gradients, not only through the
            straight-through codes. Inference always quantizes.
        semantic_distillation_dim (`int`, *optional*): Dimension of the teacher features that level 1 is distilled
            toward (39 for MFCC + deltas, 768 for HuBERT-base); `None` disables distillation.
        lambda_distillation (`float`, *optional*, defaults to 120.0): Weight of the distillation loss.
        lambda_commitment (`float`, *optional*, defaults to 1.0): Weight of the commitment loss.
        lambda_mel (`float`, *optional*, defaults to 45.0): Weight of the mel-L1 reconstruction loss.
        lambda_fm (`float`, *optional*, defaults to 2.0): Weight of feature matching (GAN training).
        lambda_adv (`float`, *optional*, defaults to 1.0): Weight of the least-squares adversarial loss.
        num_mel_bins (`int`, *optional*, defaults to 80): Mel bins of the reconstruction loss.
        mel_n_fft (`int`, *optional*, defaults to 1024): FFT size of the loss mel.
        mel_hop_length (`int`, *optional*, defaults to 256): Hop of the loss mel.
        mel_win_length (`int`, *optional*, defaults to 1024): Window of the loss mel.
        mel_fmin (`float`, *optional*, defaults to 0.0): Lowest loss-mel frequency (Hz).
        mel_fmax (`float`, *optional*): Highest loss-mel frequency (Hz); `None` = Nyquist.
        keep_discriminators (`bool`, *optional*, defaults to `False`): Whether `save_pretrained` writes the
            discriminators that a GAN trainer attached (checkpoints do, to resume training).
        mpd_periods (`tuple[int]`, *optional*, defaults to `(2, 3, 5, 7, 11)`): Periods of the multi-period
            discriminator (built by `hf_slm.training.CodecGanTrainer`, not by the model).
        mpd_channels (`tuple[int]`, *optional*, defaults to `(32, 128, 512, 1024, 1024)`): Its channels.
        msd_num_scales (`int`, *optional*, defaults to 3): Scales of the multi-scale discriminator.
        msd_channels (`tuple[int]`, *optional*, defaults to `(128, 128, 256, 512, 1024, 1024, 1024)`): Its channels
            (multiples of 16).
        pad_code_id (`int`, *optional*, defaults to -1): Value written at padded frames of `codes`.
        kwargs:
            Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from hf_slm import RVQCodecConfig
    >>> config = RVQCodecConfig()
    >>> config.hop_length, config.frame_rate, config.bitrate
    (320, 50.0, 4000.0)
    >>> RVQCodecConfig(num_codebooks=2, semantic_distillation_dim=39).bitrate  # 2 levels: 1 kbps
    1000.0

    ```
    """

    model_type = "hf_slm_rvq_codec"

    def __init__(
        self,
        sampling_rate: int = 16000,
        upsampling_ratios=(8, 5, 4, 2),
        num_filters: int = 32,
        num_residual_layers: int = 1,
        kernel_size: int = 7,
        last_kernel_size: int = 7,
        residual_kernel_size: int = 3,
        dilation_growth_rate: int = 2,
        compress: int = 2,
        hidden_size: int = 128,
        causal: bool = True,
        num_codebooks: int = 8,
        codebook_size: int = 1024,
        ema_decay: float = 0.99,
        ema_epsilon: float = 1e-5,
        dead_code_threshold: float = 2.0,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        quantizer_dropout: float = 0.0,
        quantizer_bypass: float = 0.0,
        semantic_distillation_dim: int | None = None,
        lambda_distillation: float = 120.0,
        lambda_commitment: float = 1.0,
        lambda_mel: float = 45.0,
        lambda_fm: float = 2.0,
        lambda_adv: float = 1.0,
        num_mel_bins: int = 80,
        mel_n_fft: int = 1024,
        mel_hop_length: int = 256,
        mel_win_length: int = 1024,
        mel_fmin: float = 0.0,
        mel_fmax: float | None = None,
        keep_discriminators: bool = False,
        mpd_periods=(2, 3, 5, 7, 11),
        mpd_channels=(32, 128, 512, 1024, 1024),
        msd_num_scales: int = 3,
        msd_channels=(128, 128, 256, 512, 1024, 1024, 1024),
        pad_code_id: int = -1,
        **kwargs,
    ):
        for name, value, minimum in (
            ("sampling_rate", sampling_rate, 1),
            ("num_filters", num_filters, 1),
            ("num_residual_layers", num_residual_layers, 0),
            ("kernel_size", kernel_size, 1),
            ("last_kernel_size", last_kernel_size, 1),
            ("residual_kernel_size", residual_kernel_size, 1),
            ("dilation_growth_rate", dilation_growth_rate, 1),
            ("compress", compress, 1),
            ("hidden_size", hidden_size, 1),
            ("num_codebooks", num_codebooks, 1),
            ("codebook_size", codebook_size, 2),
            ("kmeans_iters", kmeans_iters, 0),
            ("num_mel_bins", num_mel_bins, 1),
            ("mel_n_fft", mel_n_fft, 2),
            ("mel_hop_length", mel_hop_length, 1),
            ("mel_win_length", mel_win_length, 1),
            ("msd_num_scales", msd_num_scales, 0),
        ):
            _check_int(name, value, minimum)
        upsampling_ratios = _check_int_tuple("upsampling_ratios", upsampling_ratios)
        mpd_periods = _check_int_tuple("mpd_periods", mpd_periods) if mpd_periods else ()
        mpd_channels = _check_int_tuple("mpd_channels", mpd_channels)
        msd_channels = _check_int_tuple("msd_channels", msd_channels)
        _check_float("ema_decay", ema_decay, 0.0, 1.0)
        if ema_decay >= 1.0:
            raise ValueError(f"ema_decay must be < 1 (1 would freeze the codebooks), got {ema_decay!r}")
        _check_float("ema_epsilon", ema_epsilon)
        _check_float("dead_code_threshold", dead_code_threshold)
        _check_float("quantizer_dropout", quantizer_dropout, 0.0, 1.0)
        _check_float("quantizer_bypass", quantizer_bypass, 0.0, 1.0)
        for name, value in (
            ("lambda_distillation", lambda_distillation),
            ("lambda_commitment", lambda_commitment),
            ("lambda_mel", lambda_mel),
            ("lambda_fm", lambda_fm),
            ("lambda_adv", lambda_adv),
            ("mel_fmin", mel_fmin),
        ):
            _check_float(name, value)
        if semantic_distillation_dim is not None:
            _check_int("semantic_distillation_dim", semantic_distillation_dim, 1)
        if mel_win_length > mel_n_fft:
            raise ValueError(f"mel_win_length={mel_win_length} must be <= mel_n_fft={mel_n_fft}")
        _check_mel_fmax(mel_fmin, mel_fmax, sampling_rate)
        _check_pad_code_id(pad_code_id)

        self.sampling_rate = sampling_rate
        self.upsampling_ratios = list(upsampling_ratios)
        self.num_filters = num_filters
        self.num_residual_layers = num_residual_layers
        self.kernel_size = kernel_size
        self.last_kernel_size = last_kernel_size
        self.residual_kernel_size = residual_kernel_size
        self.dilation_growth_rate = dilation_growth_rate
        self.compress = compress
        self.hidden_size = hidden_size
        self.causal = bool(causal)
        self.num_codebooks = num_codebooks
        self.codebook_size = codebook_size
        self.ema_decay = float(ema_decay)
        self.ema_epsilon = float(ema_epsilon)
        self.dead_code_threshold = float(dead_code_threshold)
        self.kmeans_init = bool(kmeans_init)
        self.kmeans_iters = kmeans_iters
        self.quantizer_dropout = float(quantizer_dropout)
        self.quantizer_bypass = float(quantizer_bypass)
        self.semantic_distillation_dim = semantic_distillation_dim
        self.lambda_distillation = float(lambda_distillation)
        self.lambda_commitment = float(lambda_commitment)
        self.lambda_mel = float(lambda_mel)
        self.lambda_fm = float(lambda_fm)
        self.lambda_adv = float(lambda_adv)
        self.num_mel_bins = num_mel_bins
        self.mel_n_fft = mel_n_fft
        self.mel_hop_length = mel_hop_length
        self.mel_win_length = mel_win_length
        self.mel_fmin = float(mel_fmin)
        self.mel_fmax = mel_fmax
        self.keep_discriminators = bool(keep_discriminators)
        self.mpd_periods = list(mpd_periods)
        self.mpd_channels = list(mpd_channels)
        self.msd_num_scales = msd_num_scales
        self.msd_channels = list(msd_channels)
        self.pad_code_id = pad_code_id
        super().__init__(**kwargs)

    @property
    def hop_length(self) -> int:
        """Audio samples per code frame: the product of the strides."""
        return int(math.prod(self.upsampling_ratios))


class MelRVQCodecConfig(CodecInterfaceMixin, PretrainedConfig):
    r"""
    Configuration of [`MelRVQCodecModel`]: a codec with no neural network. Codes are a residual vector quantization
    of log-mel frames whose codebooks are fitted by k-means, level by level on the residuals
    (`hf_slm.training.kmeans.fit_mel_rvq_codec`); decoding sums the codebook vectors back into a log-mel and
    inverts it with least squares and Griffin-Lim. It is the codec a CPU can fit in minutes: the mel keeps the
    spectral envelope that carries a voice, which a SEANet codec needs ~10^5 GAN steps to learn (docs/audiolm.md
    measures both).

    The defaults: 16 kHz, 80 slaney mel bins of a 1024-point STFT at hop 320 (50 Hz frames, the rate of the unit
    tokenizers), 4 codebooks of 256 codes = 1.6 kbps, 32 Griffin-Lim iterations.

    Args:
        sampling_rate (`int`, *optional*, defaults to 16000): Audio sampling rate in Hz.
        hop_length (`int`, *optional*, defaults to 320): Samples per code frame.
        n_fft (`int`, *optional*, defaults to 1024): FFT size of the mel analysis and of Griffin-Lim.
        win_length (`int`, *optional*): Window length (`None` = `n_fft`).
        num_mel_bins (`int`, *optional*, defaults to 80): Mel bins (the codebook vectors' dimension).
        mel_fmin (`float`, *optional*, defaults to 0.0): Lowest mel frequency (Hz).
        mel_fmax (`float`, *optional*): Highest mel frequency (Hz); `None` = Nyquist.
        num_codebooks (`int`, *optional*, defaults to 4): Residual levels.
        codebook_size (`int`, *optional*, defaults to 256): Codes per codebook.
        griffin_lim_iters (`int`, *optional*, defaults to 32): Griffin-Lim iterations of `decode`.
        pad_code_id (`int`, *optional*, defaults to -1): Value written at padded frames of `codes`.
        kwargs:
            Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from hf_slm import MelRVQCodecConfig
    >>> config = MelRVQCodecConfig()
    >>> config.frame_rate, config.bitrate
    (50.0, 1600.0)

    ```
    """

    model_type = "hf_slm_mel_rvq_codec"

    def __init__(
        self,
        sampling_rate: int = 16000,
        hop_length: int = 320,
        n_fft: int = 1024,
        win_length: int | None = None,
        num_mel_bins: int = 80,
        mel_fmin: float = 0.0,
        mel_fmax: float | None = None,
        num_codebooks: int = 4,
        codebook_size: int = 256,
        griffin_lim_iters: int = 32,
        pad_code_id: int = -1,
        **kwargs,
    ):
        for name, value, minimum in (
            ("sampling_rate", sampling_rate, 1),
            ("hop_length", hop_length, 1),
            ("n_fft", n_fft, 2),
            ("num_mel_bins", num_mel_bins, 1),
            ("num_codebooks", num_codebooks, 1),
            ("codebook_size", codebook_size, 2),
            ("griffin_lim_iters", griffin_lim_iters, 1),
        ):
            _check_int(name, value, minimum)
        if win_length is not None:
            _check_int("win_length", win_length, 1)
            if win_length > n_fft:
                raise ValueError(f"win_length={win_length} must be <= n_fft={n_fft}")
        if hop_length > (win_length or n_fft):
            raise ValueError(f"hop_length={hop_length} must be <= the window ({win_length or n_fft}): frames would "
                             "leave gaps that Griffin-Lim cannot fill")  # fmt: skip
        _check_float("mel_fmin", mel_fmin)
        _check_mel_fmax(mel_fmin, mel_fmax, sampling_rate)
        _check_pad_code_id(pad_code_id)
        self.sampling_rate = sampling_rate
        self.hop_length = hop_length
        self.n_fft = n_fft
        self.win_length = win_length
        self.num_mel_bins = num_mel_bins
        self.mel_fmin = float(mel_fmin)
        self.mel_fmax = mel_fmax
        self.num_codebooks = num_codebooks
        self.codebook_size = codebook_size
        self.griffin_lim_iters = griffin_lim_iters
        self.pad_code_id = pad_code_id
        super().__init__(**kwargs)


__all__ = ["SUPPORTED_CODECS", "CodecConfig", "MelRVQCodecConfig", "RVQCodecConfig"]
