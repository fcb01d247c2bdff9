"""Configurations of the unit vocoders (discrete units -> waveform)."""

from __future__ import annotations

import math

from transformers import PretrainedConfig


def _check_int(name, value, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_float(name, value, minimum=0.0):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ValueError(f"{name} must be a number >= {minimum}, got {value!r}")


def _check_int_tuple(name, value, minimum=1, length=None):
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{name} must be a non-empty list/tuple of ints, got {value!r}")
    for v in value:
        _check_int(f"each entry of {name}", v, minimum)
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(value)}: {value!r}")
    return tuple(value)


# Groups of `ScaleDiscriminator`'s seven convolutions (HiFi-GAN's DiscriminatorS): msd_channels must divide by them.
SCALE_DISCRIMINATOR_GROUPS = (1, 4, 16, 16, 16, 16, 1)


def _check_discriminators(mpd_periods, mpd_channels, msd_num_scales, msd_channels):
    """HiFi-GAN's MPD + MSD sizes (`HifiGanDiscriminator.from_config`), checked where a config is made rather than
    deep in a GAN trainer's first step: returns `(mpd_periods, mpd_channels, msd_channels)` as tuples."""
    _check_int("msd_num_scales", msd_num_scales, 0)
    mpd_periods = _check_int_tuple("mpd_periods", mpd_periods) if mpd_periods else ()
    mpd_channels = _check_int_tuple("mpd_channels", mpd_channels)  # a PeriodDiscriminator takes any depth
    msd_channels = _check_int_tuple("msd_channels", msd_channels, length=7)
    for i, groups in enumerate(SCALE_DISCRIMINATOR_GROUPS[1:], 1):  # convolution 0 reads the 1-channel waveform
        if msd_channels[i - 1] % groups or msd_channels[i] % groups:
            raise ValueError(
                f"msd_channels[{i - 1}] and msd_channels[{i}] must be multiples of {groups} (scale discriminator "
                f"convolution {i} has {groups} groups), got {msd_channels}"
            )
    if not mpd_periods and msd_num_scales == 0:
        raise ValueError("at least one discriminator is needed: mpd_periods is empty and msd_num_scales=0")
    return mpd_periods, mpd_channels, msd_channels


class UnitHifiGanVocoderConfig(PretrainedConfig):
    r"""
    Configuration of [`UnitHifiGanVocoder`], the unit HiFi-GAN of Polyak et al. (2021), "Speech Resynthesis from
    Discrete Disentangled Self-Supervised Representations": unit embedding (+ optional duration predictor, speaker
    embedding and F0) -> HiFi-GAN generator, trained against multi-period + multi-scale discriminators.

    The defaults reproduce the speech-resynthesis / fairseq "code HiFi-GAN" generator (the one transformers ships as
    `SeamlessM4TCodeHifiGan`): 100 units embedded in 128 dims, HiFi-GAN V1 blocks (512 initial channels, resblock
    kernels 3/7/11 with dilations 1/3/5), upsampling 5*4*4*2*2 = 320 so 50 Hz units (HuBERT / MFCC units) become
    16 kHz audio; HiFi-GAN's discriminators (periods 2, 3, 5, 7, 11; 3 scales) and loss weights (lambda_fm=2,
    lambda_mel=45) on an 80-bin log-mel of n_fft 1024 / hop 256.

    Args:
        num_units (`int`, *optional*, defaults to 100):
            Size of the unit vocabulary (the tokenizer's `num_units`).
        embedding_dim (`int`, *optional*, defaults to 128):
            Unit embedding size.
        sampling_rate (`int`, *optional*, defaults to 16000):
            Output sampling rate in Hz.
        upsample_rates (`tuple[int]`, *optional*, defaults to `(5, 4, 4, 2, 2)`):
            Stride of each transposed convolution; their product is `hop_length` (samples per unit).
        upsample_kernel_sizes (`tuple[int]`, *optional*, defaults to `(11, 8, 8, 4, 4)`):
            Kernel of each transposed convolution; `kernel - rate` must be even and >= 0 so every layer upsamples
            exactly (output length = units * hop_length).
        upsample_initial_channel (`int`, *optional*, defaults to 512):
            Channels after the input convolution; halved after each upsampling layer.
        resblock_kernel_sizes (`tuple[int]`, *optional*, defaults to `(3, 7, 11)`):
            Kernels of the parallel residual blocks (multi-receptive-field fusion).
        resblock_dilation_sizes (`tuple[tuple[int]]`, *optional*, defaults to `((1, 3, 5), (1, 3, 5), (1, 3, 5))`):
            Dilations of each residual block.
        leaky_relu_slope (`float`, *optional*, defaults to 0.1):
            Negative slope of the generator's leaky ReLUs.
        use_duration_predictor (`bool`, *optional*, defaults to `False`):
            Add a duration predictor (for deduplicated units). Trained on `durations` (MSE on log(1 + d)); at
            inference without `durations` each unit is repeated round(exp(pred) - 1) >= 1 times.
        duration_predictor_kernel_size (`int`, *optional*, defaults to 3):
            Kernel of the predictor's two convolutions (odd).
        duration_predictor_dropout (`float`, *optional*, defaults to 0.5):
            Dropout of the duration predictor.
        num_speakers (`int`, *optional*, defaults to 0):
            Number of speakers of the speaker embedding table; 0 disables speaker conditioning.
        speaker_embedding_dim (`int`, *optional*, defaults to 128):
            Speaker embedding size (used when `num_speakers > 0`).
        use_f0 (`bool`, *optional*, defaults to `False`):
            Condition on an F0 contour (Hz, 0 = unvoiced) brought to the unit rate; `f0` is then required.
        f0_embedding_dim (`int`, *optional*, defaults to 128):
            Size of the projected (log-F0, voicing) features (used when `use_f0`).
        num_styles (`int`, *optional*, defaults to 0):
            Size of a style-token embedding table (SpiRit-LM Expressive `[St..]` tokens of an
            `ExpressiveEncoderModel`); 0 disables style conditioning. `style_ids` are then required.
        style_embedding_dim (`int`, *optional*, defaults to 64):
            Style embedding size (used when `num_styles > 0`).
        f0_normalize (`bool`, *optional*, defaults to `True`):
            Normalise log-F0 per utterance over voiced frames (speech-resynthesis normalises F0 so that pitch
            contour and speaker identity are separate factors); `False` feeds log(F0 / 100 Hz).
        keep_discriminators (`bool`, *optional*, defaults to `False`):
            Build the discriminators with the model and save them in checkpoints (to continue GAN training).
            Otherwise the model is the generator only and `setup_discriminators()` adds them for training.
        mpd_periods (`tuple[int]`, *optional*, defaults to `(2, 3, 5, 7, 11)`):
            Periods of the multi-period discriminator.
        mpd_channels (`tuple[int]`, *optional*, defaults to `(32, 128, 512, 1024, 1024)`):
            Channels of each period discriminator's five convolutions.
        msd_num_scales (`int`, *optional*, defaults to 3):
            Number of scale discriminators (raw, x2 and x4 average-pooled audio).
        msd_channels (`tuple[int]`, *optional*, defaults to `(128, 128, 256, 512, 1024, 1024, 1024)`):
            Channels of each scale discriminator's seven convolutions (grouped: entries 0-1 multiples of 4, 1-5 of 16).
        num_mel_bins (`int`, *optional*, defaults to 80):
            Mel bins of the mel-L1 loss.
        mel_n_fft (`int`, *optional*, defaults to 1024):
            FFT size of the loss mel spectrogram.
        mel_hop_length (`int`, *optional*, defaults to 256):
            Hop of the loss mel spectrogram.
        mel_win_length (`int`, *optional*, defaults to 1024):
            Window of the loss mel spectrogram.
        mel_fmin (`float`, *optional*, defaults to 0.0):
            Lowest mel frequency of the loss (Hz).
        mel_fmax (`float`, *optional*):
            Highest mel frequency of the loss (Hz); `None` = Nyquist (HiFi-GAN's `fmax_for_loss`).
        lambda_mel (`float`, *optional*, defaults to 45.0):
            Weight of the mel-L1 loss (HiFi-GAN).
        lambda_fm (`float`, *optional*, defaults to 2.0):
            Weight of the feature-matching loss (HiFi-GAN).
        lambda_adv (`float`, *optional*, defaults to 1.0):
            Weight of the generator's least-squares adversarial loss.
        lambda_duration (`float`, *optional*, defaults to 1.0):
            Weight of the duration-predictor loss.
        initializer_range (`float`, *optional*, defaults to 0.01):
            Std of the normal init of linear layers (duration predictor). Convolutions keep PyTorch's default init,
            which is what HiFi-GAN effectively trains from (its N(0, 0.01) `init_weights` is overwritten by
            weight norm).
        kwargs:
            Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from hf_slm import UnitHifiGanVocoderConfig
    >>> config = UnitHifiGanVocoderConfig()
    >>> config.hop_length, config.frame_rate
    (320, 50.0)
    >>> UnitHifiGanVocoderConfig(upsample_rates=(10, 8, 2, 2), upsample_kernel_sizes=(20, 16, 4, 4)).hop_length
    320
    ```
    """

    model_type = "hf_slm_unit_hifigan_vocoder"

    #: Names this family had before hf_slm 0.2, still read from saved configs (with a FutureWarning) until 0.3,
    #: by `hf_slm.models.legacy_names` (installed at registration).
    legacy_model_types = ("hf_slm_unit_hifigan",)  # rename: keep
    legacy_architectures = {}  # the class kept its name

    def __init__(
        self,
        num_units: int = 100,
        embedding_dim: int = 128,
        sampling_rate: int = 16000,
        upsample_rates=(5, 4, 4, 2, 2),
        upsample_kernel_sizes=(11, 8, 8, 4, 4),
        upsample_initial_channel: int = 512,
        resblock_kernel_sizes=(3, 7, 11),
        resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        leaky_relu_slope: float = 0.1,
        use_duration_predictor: bool = False,
        duration_predictor_kernel_size: int = 3,
        duration_predictor_dropout: float = 0.5,
        num_speakers: int = 0,
        speaker_embedding_dim: int = 128,
        use_f0: bool = False,
        f0_embedding_dim: int = 128,
        f0_normalize: bool = True,
        num_styles: int = 0,
        style_embedding_dim: int = 64,
        keep_discriminators: bool = False,
        mpd_periods=(2, 3, 5, 7, 11),
        mpd_channels=(32, 128, 512, 1024, 1024),
        msd_num_scales: int = 3,
        msd_channels=(128, 128, 256, 512, 1024, 1024, 1024),
        num_mel_bins: int = 80,
        mel_n_fft: int = 1024,
        mel_hop_length: int = 256,
        mel_win_length: int = 1024,
        mel_fmin: float = 0.0,
        mel_fmax: float | None = None,
        lambda_mel: float = 45.0,
        lambda_fm: float = 2.0,
        lambda_adv: float = 1.0,
        lambda_duration: float = 1.0,
        initializer_range: float = 0.01,
        **kwargs,
    ):
        for name, value, minimum in (
            ("num_units", num_units, 1),
            ("embedding_dim", embedding_dim, 1),
            ("sampling_rate", sampling_rate, 1),
            ("upsample_initial_channel", upsample_initial_channel, 1),
            ("duration_predictor_kernel_size", duration_predictor_kernel_size, 1),
            ("num_speakers", num_speakers, 0),
            ("speaker_embedding_dim", speaker_embedding_dim, 1),
            ("f0_embedding_dim", f0_embedding_dim, 1),
            ("num_styles", num_styles, 0),
            ("style_embedding_dim", style_embedding_dim, 1),
            ("num_mel_bins", num_mel_bins, 1),
            ("mel_n_fft", mel_n_fft, 1),
            ("mel_hop_length", mel_hop_length, 1),
            ("mel_win_length", mel_win_length, 1),
        ):
            _check_int(name, value, minimum)
        for name, value in (
            ("leaky_relu_slope", leaky_relu_slope),
            ("duration_predictor_dropout", duration_predictor_dropout),
            ("mel_fmin", mel_fmin),
            ("lambda_mel", lambda_mel),
            ("lambda_fm", lambda_fm),
            ("lambda_adv", lambda_adv),
            ("lambda_duration", lambda_duration),
            ("initializer_range", initializer_range),
        ):
            _check_float(name, value)
        upsample_rates = _check_int_tuple("upsample_rates", upsample_rates)
        upsample_kernel_sizes = _check_int_tuple(
            "upsample_kernel_sizes", upsample_kernel_sizes, length=len(upsample_rates)
        )
        for i, (rate, kernel) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            if kernel < rate or (kernel - rate) % 2:
                raise ValueError(
                    f"upsample_kernel_sizes[{i}]={kernel} must be >= upsample_rates[{i}]={rate} with an even "
                    "difference, so that the layer upsamples exactly"
                )
        if upsample_initial_channel % 2 ** len(upsample_rates):
            raise ValueError(
                f"upsample_initial_channel={upsample_initial_channel} must be divisible by 2**{len(upsample_rates)} "
                "(channels halve after each upsampling layer)"
            )
        resblock_kernel_sizes = _check_int_tuple("resblock_kernel_sizes", resblock_kernel_sizes)
        if not isinstance(resblock_dilation_sizes, (list, tuple)) or len(resblock_dilation_sizes) != len(
            resblock_kernel_sizes
        ):
            raise ValueError(
                f"resblock_dilation_sizes must have one entry per resblock kernel ({len(resblock_kernel_sizes)}), "
                f"got {resblock_dilation_sizes!r}"
            )
        resblock_dilation_sizes = tuple(
            _check_int_tuple("resblock_dilation_sizes[i]", d) for d in resblock_dilation_sizes
        )
        if duration_predictor_kernel_size % 2 == 0:
            raise ValueError(f"duration_predictor_kernel_size must be odd, got {duration_predictor_kernel_size}")
        if duration_predictor_dropout >= 1:
            raise ValueError(f"duration_predictor_dropout must be < 1, got {duration_predictor_dropout}")
        mpd_periods, mpd_channels, msd_channels = _check_discriminators(
            mpd_periods, mpd_channels, msd_num_scales, msd_channels
        )
        if mel_win_length > mel_n_fft:
            raise ValueError(f"mel_win_length={mel_win_length} cannot exceed mel_n_fft={mel_n_fft}")
        if mel_fmax is not None and not (mel_fmin < mel_fmax <= sampling_rate / 2):
            raise ValueError(f"mel_fmax must be in (mel_fmin, sampling_rate / 2], got {mel_fmax!r}")

        self.num_units = num_units
        self.embedding_dim = embedding_dim
        self.sampling_rate = sampling_rate
        self.upsample_rates = list(upsample_rates)
        self.upsample_kernel_sizes = list(upsample_kernel_sizes)
        self.upsample_initial_channel = upsample_initial_channel
        self.resblock_kernel_sizes = list(resblock_kernel_sizes)
        self.resblock_dilation_sizes = [list(d) for d in resblock_dilation_sizes]
        self.leaky_relu_slope = leaky_relu_slope
        self.use_duration_predictor = use_duration_predictor
        self.duration_predictor_kernel_size = duration_predictor_kernel_size
        self.duration_predictor_dropout = duration_predictor_dropout
        self.num_speakers = num_speakers
        self.speaker_embedding_dim = speaker_embedding_dim
        self.use_f0 = use_f0
        self.f0_embedding_dim = f0_embedding_dim
        self.f0_normalize = f0_normalize
        self.num_styles = num_styles
        self.style_embedding_dim = style_embedding_dim
        self.keep_discriminators = keep_discriminators
        self.mpd_periods = list(mpd_periods)
        self.mpd_channels = list(mpd_channels)
        self.msd_num_scales = msd_num_scales
        self.msd_channels = list(msd_channels)
        self.num_mel_bins = num_mel_bins
        self.mel_n_fft = mel_n_fft
        self.mel_hop_length = mel_hop_length
        self.mel_win_length = mel_win_length
        self.mel_fmin = float(mel_fmin)
        self.mel_fmax = mel_fmax
        self.lambda_mel = float(lambda_mel)
        self.lambda_fm = float(lambda_fm)
        self.lambda_adv = float(lambda_adv)
        self.lambda_duration = float(lambda_duration)
        self.initializer_range = float(initializer_range)
        super().__init__(**kwargs)

    @property
    def hop_length(self) -> int:
        """Output samples per unit frame: the product of `upsample_rates`."""
        return math.prod(self.upsample_rates)

    @property
    def frame_rate(self) -> float:
        """Unit frames per second the vocoder expects (50.0 for the defaults)."""
        return self.sampling_rate / self.hop_length

    @property
    def consumes(self) -> dict:
        """What a pipeline component of this config takes in: `hf_slm.pipelines.check_compatibility` compares the
        values of a key one component produces and the next consumes."""
        return {"units.num_units": self.num_units, "units.frame_rate": self.frame_rate}

    @property
    def generator_input_dim(self) -> int:
        """Channels entering the HiFi-GAN: unit embedding (+ speaker embedding) (+ F0 features) (+ style)."""
        return (
            self.embedding_dim
            + (self.speaker_embedding_dim if self.num_speakers > 0 else 0)
            + (self.f0_embedding_dim if self.use_f0 else 0)
            + (self.style_embedding_dim if getattr(self, "num_styles", 0) > 0 else 0)
        )


#: How `UnitMelVocoder` turns its predicted mel into a waveform.
WAVEFORM_HEADS = ("griffin_lim", "istft")


class UnitMelVocoderConfig(PretrainedConfig):
    r"""
    Configuration of [`UnitMelVocoder`], the "input-enhanced" synthesis path of the survey: units -> log-mel (a small
    convolutional network) -> waveform by Griffin-Lim (pure signal processing, no trained vocoder) or, with
    `waveform_head="istft"`, by a learned inverse-STFT head (Vocos-style magnitude and phase per frame, trained as a
    GAN with [`VocoderGanTrainer`]).

    The defaults are a ~2M-parameter model for 50 Hz units at 16 kHz that trains in minutes on a CPU: 100 units
    embedded in 256 dims, 3 residual conv blocks at the unit rate, x2 upsampling to a 100 Hz log-mel (80 bins,
    n_fft 1024, hop 160), 3 conv blocks at the mel rate; Griffin-Lim with 32 iterations.

    Args:
        num_units (`int`, *optional*, defaults to 100):
            Size of the unit vocabulary.
        hidden_size (`int`, *optional*, defaults to 256):
            Width of the embedding and the convolution blocks.
        num_unit_layers (`int`, *optional*, defaults to 3):
            Residual conv blocks at the unit rate (before upsampling).
        num_mel_layers (`int`, *optional*, defaults to 3):
            Residual conv blocks at the mel frame rate (after upsampling).
        kernel_size (`int`, *optional*, defaults to 5):
            Kernel of every conv block (odd).
        dropout (`float`, *optional*, defaults to 0.1):
            Dropout inside the conv blocks.
        sampling_rate (`int`, *optional*, defaults to 16000):
            Output sampling rate in Hz.
        unit_hop_length (`int`, *optional*, defaults to 320):
            Samples per unit frame (320 = 50 Hz units at 16 kHz); must be a multiple of `mel_hop_length`.
        num_mel_bins (`int`, *optional*, defaults to 80):
            Mel bins of the predicted log-mel spectrogram.
        n_fft (`int`, *optional*, defaults to 1024):
            FFT size of the mel spectrogram and of Griffin-Lim.
        mel_hop_length (`int`, *optional*, defaults to 160):
            Hop of the mel spectrogram (10 ms at 16 kHz).
        win_length (`int`, *optional*, defaults to 1024):
            Analysis window of the mel spectrogram and of Griffin-Lim.
        mel_fmin (`float`, *optional*, defaults to 0.0):
            Lowest mel frequency (Hz).
        mel_fmax (`float`, *optional*):
            Highest mel frequency (Hz); `None` = Nyquist.
        griffin_lim_iters (`int`, *optional*, defaults to 32):
            Griffin-Lim iterations (more = fewer phase artefacts, slower).
        griffin_lim_momentum (`float`, *optional*, defaults to 0.99):
            Momentum of the fast Griffin-Lim update.
        log_mel_mean (`float`, *optional*, defaults to -6.0):
            Rough mean of speech log-mels (floor 1e-5); the head predicts `(log_mel - log_mel_mean) / log_mel_std`,
            so training starts near the target statistics instead of spending steps moving an output bias.
        log_mel_std (`float`, *optional*, defaults to 3.0):
            Rough standard deviation of speech log-mels (see `log_mel_mean`).
        initializer_range (`float`, *optional*, defaults to 0.02):
            Std of the normal init of linear/conv weights.
        waveform_head (`str`, *optional*, defaults to `"griffin_lim"`):
            `"griffin_lim"`: the predicted mel is inverted by Griffin-Lim (no training beyond the mel L1).
            `"istft"`: `istft_num_layers` more conv blocks predict, per mel frame, a log-magnitude correction to the
            least-squares inverse of the predicted mel and a phase, inverted by overlap-add (Siuzdak 2023, Vocos);
            differentiable, so it trains with HiFi-GAN's losses.
        istft_num_layers (`int`, *optional*, defaults to 2):
            Conv blocks of the inverse-STFT head (`waveform_head="istft"`).
        keep_discriminators, mpd_periods, mpd_channels, msd_num_scales, msd_channels:
            HiFi-GAN's discriminators for GAN training of the `"istft"` head, as [`UnitHifiGanVocoderConfig`].
        lambda_mel (`float`, *optional*, defaults to 45.0):
            Weight of the log-mel L1 of the generated waveform (`"istft"`); the predicted mel's own L1 has weight 1.
        lambda_fm (`float`, *optional*, defaults to 2.0), lambda_adv (`float`, *optional*, defaults to 1.0):
            Feature-matching and adversarial weights, as HiFi-GAN's.
        kwargs:
            Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from hf_slm import UnitMelVocoderConfig
    >>> config = UnitMelVocoderConfig()
    >>> config.hop_length, config.mel_frames_per_unit, config.frame_rate
    (320, 2, 50.0)
    ```
    """

    model_type = "hf_slm_unit_mel_vocoder"

    def __init__(
        self,
        num_units: int = 100,
        hidden_size: int = 256,
        num_unit_layers: int = 3,
        num_mel_layers: int = 3,
        kernel_size: int = 5,
        dropout: float = 0.1,
        sampling_rate: int = 16000,
        unit_hop_length: int = 320,
        num_mel_bins: int = 80,
        n_fft: int = 1024,
        mel_hop_length: int = 160,
        win_length: int = 1024,
        mel_fmin: float = 0.0,
        mel_fmax: float | None = None,
        griffin_lim_iters: int = 32,
        griffin_lim_momentum: float = 0.99,
        log_mel_mean: float = -6.0,
        log_mel_std: float = 3.0,
        initializer_range: float = 0.02,
        waveform_head: str = "griffin_lim",
        istft_num_layers: int = 2,
        keep_discriminators: bool = False,
        mpd_periods=(2, 3, 5, 7, 11),
        mpd_channels=(32, 128, 512, 1024, 1024),
        msd_num_scales: int = 3,
        msd_channels=(128, 128, 256, 512, 1024, 1024, 1024),
        lambda_mel: float = 45.0,
        lambda_fm: float = 2.0,
        lambda_adv: float = 1.0,
        **kwargs,
    ):
        if waveform_head not in WAVEFORM_HEADS:
            raise ValueError(f"waveform_head must be one of {WAVEFORM_HEADS}, got {waveform_head!r}")
        if keep_discriminators and waveform_head != "istft":
            raise ValueError(
                "keep_discriminators=True needs waveform_head='istft' (Griffin-Lim is not trained as a GAN)"
            )
        mpd_periods, mpd_channels, msd_channels = _check_discriminators(
            mpd_periods, mpd_channels, msd_num_scales, msd_channels
        )
        for name, value, minimum in (
            ("istft_num_layers", istft_num_layers, 0),
            ("num_units", num_units, 1),
            ("hidden_size", hidden_size, 1),
            ("num_unit_layers", num_unit_layers, 0),
            ("num_mel_layers", num_mel_layers, 0),
            ("kernel_size", kernel_size, 1),
            ("sampling_rate", sampling_rate, 1),
            ("unit_hop_length", unit_hop_length, 1),
            ("num_mel_bins", num_mel_bins, 1),
            ("n_fft", n_fft, 2),
            ("mel_hop_length", mel_hop_length, 1),
            ("win_length", win_length, 1),
            ("griffin_lim_iters", griffin_lim_iters, 1),
        ):
            _check_int(name, value, minimum)
        for name, value in (
            ("dropout", dropout),
            ("mel_fmin", mel_fmin),
            ("griffin_lim_momentum", griffin_lim_momentum),
            ("initializer_range", initializer_range),
            ("lambda_mel", lambda_mel),
            ("lambda_fm", lambda_fm),
            ("lambda_adv", lambda_adv),
        ):
            _check_float(name, value)
        if isinstance(log_mel_mean, bool) or not isinstance(log_mel_mean, (int, float)):
            raise ValueError(f"log_mel_mean must be a number, got {log_mel_mean!r}")
        if isinstance(log_mel_std, bool) or not isinstance(log_mel_std, (int, float)) or log_mel_std <= 0:
            raise ValueError(f"log_mel_std must be a positive number, got {log_mel_std!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if dropout >= 1:
            raise ValueError(f"dropout must be < 1, got {dropout}")
        if unit_hop_length % mel_hop_length:
            raise ValueError(
                f"unit_hop_length={unit_hop_length} must be a multiple of mel_hop_length={mel_hop_length}"
            )
        if win_length > n_fft:
            raise ValueError(f"win_length={win_length} cannot exceed n_fft={n_fft}")
        if griffin_lim_momentum >= 1:
            raise ValueError(f"griffin_lim_momentum must be < 1, got {griffin_lim_momentum}")
        if mel_fmax is not None and not (mel_fmin < mel_fmax <= sampling_rate / 2):
            raise ValueError(f"mel_fmax must be in (mel_fmin, sampling_rate / 2], got {mel_fmax!r}")

        self.num_units = num_units
        self.hidden_size = hidden_size
        self.num_unit_layers = num_unit_layers
        self.num_mel_layers = num_mel_layers
        self.kernel_size = kernel_size
        self.dropout = float(dropout)
        self.sampling_rate = sampling_rate
        self.unit_hop_length = unit_hop_length
        self.num_mel_bins = num_mel_bins
        self.n_fft = n_fft
        self.mel_hop_length = mel_hop_length
        self.win_length = win_length
        self.mel_fmin = float(mel_fmin)
        self.mel_fmax = mel_fmax
        self.griffin_lim_iters = griffin_lim_iters
        self.griffin_lim_momentum = float(griffin_lim_momentum)
        self.log_mel_mean = float(log_mel_mean)
        self.log_mel_std = float(log_mel_std)
        self.initializer_range = float(initializer_range)
        self.waveform_head = waveform_head
        self.istft_num_layers = istft_num_layers
        self.keep_discriminators = keep_discriminators
        self.mpd_periods = list(mpd_periods)
        self.mpd_channels = list(mpd_channels)
        self.msd_num_scales = msd_num_scales
        self.msd_channels = list(msd_channels)
        self.lambda_mel = float(lambda_mel)
        self.lambda_fm = float(lambda_fm)
        self.lambda_adv = float(lambda_adv)
        super().__init__(**kwargs)

    @property
    def hop_length(self) -> int:
        """Output samples per unit frame (same meaning as `UnitHifiGanVocoderConfig.hop_length`)."""
        return self.unit_hop_length

    @property
    def frame_rate(self) -> float:
        """Unit frames per second the vocoder expects."""
        return self.sampling_rate / self.unit_hop_length

    @property
    def consumes(self) -> dict:
        """What a pipeline component of this config takes in: `hf_slm.pipelines.check_compatibility` compares the
        values of a key one component produces and the next consumes."""
        return {"units.num_units": self.num_units, "units.frame_rate": self.frame_rate}

    @property
    def mel_frames_per_unit(self) -> int:
        """Mel frames generated per unit frame."""
        return self.unit_hop_length // self.mel_hop_length


__all__ = ["WAVEFORM_HEADS", "UnitHifiGanVocoderConfig", "UnitMelVocoderConfig"]
