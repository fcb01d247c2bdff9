"""Configuration of the continuous-feature speech LLM: audio encoder -> projector -> causal LM (+ speech decoder)."""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

PROJECTOR_TYPES = ("stack_mlp", "pool_linear", "qformer", "ctc_posterior")
_KEPT_IMPLEMENTATIONS = ("_attn_implementation", "_experts_implementation")
#: The text-tokenizer token that stands for one projected audio frame.
AUDIO_TOKEN = "<|audio|>"
#: The chat template's turn markers (ChatML).
CHAT_START, CHAT_END = "<|im_start|>", "<|im_end|>"


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _sub_config(name: str, value, default: dict | None = None) -> PretrainedConfig:
    """A sub-config from a dict (with `model_type`), a config, or `None` (`default`, a dict with `model_type`)."""
    if value is None:
        value = dict(default)
    if isinstance(value, dict):
        value = dict(value)
        model_type = value.pop("model_type", None)
        if model_type not in CONFIG_MAPPING:
            raise ValueError(f"{name} needs a known `model_type`, got {model_type!r}")
        return CONFIG_MAPPING[model_type](**value)
    if not isinstance(value, PretrainedConfig):
        raise ValueError(f"{name} must be a dict or a PretrainedConfig, got {type(value).__name__}")
    return value


class SpeechLLMProjectorConfig(PretrainedConfig):
    r"""
    The projector between the audio encoder and the LM: encoder frames `[B, T, audio_hidden]` -> LM embeddings
    `[B, T', text_hidden]`.

    | `projector_type` | what | frames out per `k` frames in |
    |---|---|---|
    | `"stack_mlp"` | concatenate `k` consecutive frames, then Linear-GELU-Linear (SLAM-LLM) | 1 |
    | `"pool_linear"` | average `k` frames, then Linear (Qwen2-Audio, `k=2`) | 1 |
    | `"qformer"` | per window of `k` frames, `num_queries` learned queries attend to it (SALMONN) | `num_queries` |
    | `"ctc_posterior"` | the encoder's CTC posteriors (mean over `k` frames) weight a table of LM embeddings, one row per CTC symbol (LegoSLM) | 1 |

    `"ctc_posterior"` puts each frame where the LM already reads text: a frame that the CTC head hears as "t" lands on
    (a trained copy of) the LM's embedding of "t". Build it with
    [`~SpeechLLMForConditionalGeneration.from_encoder_and_lm`] from a CTC checkpoint (`...ForCTC`), which copies the
    CTC head and initialises the table from the LM's embeddings of the CTC vocabulary.

    Args:
        projector_type (`str`, defaults to `"stack_mlp"`): one of the three above.
        downsample (`int`, defaults to 5): `k`, encoder frames per window (50 Hz encoder frames -> 10 Hz).
        hidden_size (`int`, defaults to 1024): width of the MLP / query transformer.
        num_queries (`int`, defaults to 1): `"qformer"` only: queries per window.
        num_layers (`int`, defaults to 2): `"qformer"` only: query-transformer layers.
        num_attention_heads (`int`, defaults to 4): `"qformer"` only.
        ctc_vocab_size (`int`, *optional*): `"ctc_posterior"` only (required): the CTC head's classes, blank included.
        temperature (`float`, defaults to 1.0): `"ctc_posterior"` only: softmax temperature of the CTC logits.
        ctc_symbol_token_ids (`list[list[int]]`, *optional*): `"ctc_posterior"` only: for each CTC class, the LM
            token ids that spell it (set by `from_encoder_and_lm`); lets `transcribe` score answers against the CTC
            posteriors (`ctc_weight`, joint CTC / LM decoding).
        ctc_blank_id (`int`, *optional*): `"ctc_posterior"` only: the CTC blank class (set with the above).
    """

    model_type = "hf_slm_speech_llm_projector"

    def __init__(
        self,
        projector_type: str = "stack_mlp",
        downsample: int = 5,
        hidden_size: int = 1024,
        num_queries: int = 1,
        num_layers: int = 2,
        num_attention_heads: int = 4,
        ctc_vocab_size: int | None = None,
        temperature: float = 1.0,
        ctc_symbol_token_ids: list[list[int]] | None = None,
        ctc_blank_id: int | None = None,
        **kwargs,
    ):
        if projector_type not in PROJECTOR_TYPES:
            raise ValueError(f"projector_type must be one of {PROJECTOR_TYPES}, got {projector_type!r}")
        self.projector_type = projector_type
        self.downsample = _positive_int("downsample", downsample)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.num_queries = _positive_int("num_queries", num_queries)
        self.num_layers = _positive_int("num_layers", num_layers)
        self.num_attention_heads = _positive_int("num_attention_heads", num_attention_heads)
        if projector_type == "qformer" and hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be divisible by num_attention_heads ({num_attention_heads})"
            )
        if projector_type == "ctc_posterior" or ctc_vocab_size is not None:
            _positive_int("ctc_vocab_size", ctc_vocab_size)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        if ctc_symbol_token_ids is not None:
            if (not isinstance(ctc_symbol_token_ids, (list, tuple)) or len(ctc_symbol_token_ids) != ctc_vocab_size
                    or not all(isinstance(ids, (list, tuple)) and all(isinstance(i, int) and i >= 0 for i in ids)
                               for ids in ctc_symbol_token_ids)):  # fmt: skip
                raise ValueError(f"ctc_symbol_token_ids must hold one list of token ids per CTC class "
                                 f"(ctc_vocab_size={ctc_vocab_size}), got {ctc_symbol_token_ids!r:.200}")  # fmt: skip
            ctc_symbol_token_ids = [list(ids) for ids in ctc_symbol_token_ids]
        if ctc_blank_id is not None and not (isinstance(ctc_vocab_size, int) and 0 <= ctc_blank_id < ctc_vocab_size):
            raise ValueError(f"ctc_blank_id must be a CTC class in [0, {ctc_vocab_size}), got {ctc_blank_id!r}")
        self.ctc_vocab_size = ctc_vocab_size
        self.temperature = float(temperature)
        self.ctc_symbol_token_ids = ctc_symbol_token_ids
        self.ctc_blank_id = ctc_blank_id
        super().__init__(**kwargs)

    def output_lengths(self, lengths):
        """Projected frames for `lengths` encoder frames (an int or an integer tensor): `ceil(n / k) * queries`."""
        windows = (lengths + self.downsample - 1) // self.downsample
        return windows * (self.num_queries if self.projector_type == "qformer" else 1)


class SpeechLLMSpeechDecoderConfig(PretrainedConfig):
    r"""
    The speech-out head (LLaMA-Omni): LM hidden states, each repeated `upsample_factor` times, go through a small
    causal transformer and a CTC classifier over `num_units` discrete units plus a blank (id `num_units`).

    Args:
        num_units (`int`, defaults to 100): discrete units of the unit vocoder it feeds.
        upsample_factor (`int`, defaults to 25): unit frames per LM hidden state, as in LLaMA-Omni (a text token
            spans several 50 Hz units; CTC needs at least one frame per unit).
        hidden_size (`int`, defaults to 256), num_layers (`int`, defaults to 2), num_attention_heads
            (`int`, defaults to 4), intermediate_size (`int`, defaults to 1024): the transformer.
        max_position_embeddings (`int`, defaults to 4096): longest unit-frame sequence.
    """

    model_type = "hf_slm_speech_llm_speech_decoder"

    def __init__(
        self,
        num_units: int = 100,
        upsample_factor: int = 25,
        hidden_size: int = 256,
        num_layers: int = 2,
        num_attention_heads: int = 4,
        intermediate_size: int = 1024,
        max_position_embeddings: int = 4096,
        **kwargs,
    ):
        self.num_units = _positive_int("num_units", num_units)
        self.upsample_factor = _positive_int("upsample_factor", upsample_factor)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.num_layers = _positive_int("num_layers", num_layers)
        self.num_attention_heads = _positive_int("num_attention_heads", num_attention_heads)
        self.intermediate_size = _positive_int("intermediate_size", intermediate_size)
        self.max_position_embeddings = _positive_int("max_position_embeddings", max_position_embeddings)
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be divisible by num_attention_heads ({num_attention_heads})"
            )
        super().__init__(**kwargs)

    @property
    def blank_id(self) -> int:
        """The CTC blank: the last class."""
        return self.num_units


class SpeechLLMConfig(PretrainedConfig):
    r"""
    A continuous-feature speech LLM (SLAM-LLM, Qwen2-Audio, SALMONN, LLaMA-Omni): any transformers audio encoder,
    a projector, and any causal LM. Each `audio_token_id` placeholder of the prompt is replaced by one projected audio
    frame. The defaults describe a small Whisper-style encoder with a small Llama, for tests and CPU training.

    Args:
        audio_config (`dict` or `PretrainedConfig`, *optional*): the encoder: any `AutoModel` audio config (Whisper,
            whose encoder half is used, HuBERT, WavLM, wav2vec 2.0, ...). Default: a 2-layer Whisper.
        text_config (`dict` or `PretrainedConfig`, *optional*): any `AutoModelForCausalLM` config. Default: a
            4-layer Llama of width 256.
        projector_config (`dict` or [`SpeechLLMProjectorConfig`], *optional*): the projector.
        speech_decoder_config (`dict` or [`SpeechLLMSpeechDecoderConfig`], *optional*): the optional speech-out head
            (`None`: text out only).
        audio_token_id (`int`, defaults to 0): id of the placeholder token in the text vocabulary.
        audio_layer (`int`, defaults to -1): which encoder hidden state feeds the projector (index into
            `hidden_states`; -1 is the encoder's final output).
        freeze_audio_encoder (`bool`, defaults to `True`), freeze_text_model (`bool`, defaults to `True`): set
            `requires_grad=False` on those parts when the model is built (training stages change it later).
        speech_loss_weight (`float`, defaults to 1.0): weight of the CTC unit loss added to the text loss.
        audio_conv_layers (`list[[kernel, stride, padding]]`, *optional*): the encoder's downsampling, used to count
            encoder frames from input lengths; read from `audio_config` for Whisper and the wav2vec 2.0 family.

    Example:

    ```python
    >>> from hf_slm import SpeechLLMConfig, SpeechLLMForConditionalGeneration
    >>> config = SpeechLLMConfig(projector_config={"projector_type": "pool_linear", "downsample": 2})
    >>> config.projector_config.projector_type, config.audio_config.model_type, config.text_config.model_type
    ('pool_linear', 'whisper', 'llama')

    ```
    """

    model_type = "hf_slm_speech_llm"
    sub_configs = {
        "audio_config": AutoConfig,
        "text_config": AutoConfig,
        "projector_config": SpeechLLMProjectorConfig,
        "speech_decoder_config": SpeechLLMSpeechDecoderConfig,
    }

    def __init__(
        self,
        audio_config=None,
        text_config=None,
        projector_config=None,
        speech_decoder_config=None,
        audio_token_id: int = 0,
        audio_layer: int = -1,
        freeze_audio_encoder: bool = True,
        freeze_text_model: bool = True,
        speech_loss_weight: float = 1.0,
        audio_conv_layers: list | None = None,
        **kwargs,
    ):
        self.audio_config = _sub_config("audio_config", audio_config, _DEFAULT_AUDIO)
        self.text_config = _sub_config("text_config", text_config, _DEFAULT_TEXT)
        if not hasattr(self.text_config, "vocab_size"):
            raise ValueError(f"text_config ({type(self.text_config).__name__}) has no vocab_size: not a causal LM")
        if isinstance(projector_config, dict) or projector_config is None:
            projector_config = SpeechLLMProjectorConfig(**(projector_config or {}))
        self.projector_config = projector_config
        if isinstance(speech_decoder_config, dict):
            speech_decoder_config = SpeechLLMSpeechDecoderConfig(**speech_decoder_config)
        self.speech_decoder_config = speech_decoder_config
        if isinstance(audio_token_id, bool) or not isinstance(audio_token_id, int) or audio_token_id < 0:
            raise ValueError(f"audio_token_id must be a token id (int >= 0), got {audio_token_id!r}")
        if audio_token_id >= self.text_config.vocab_size:
            raise ValueError(
                f"audio_token_id {audio_token_id} is outside the LM vocabulary ({self.text_config.vocab_size} rows)"
            )
        if isinstance(audio_layer, bool) or not isinstance(audio_layer, int):
            raise ValueError(f"audio_layer must be an int (an encoder hidden-state index), got {audio_layer!r}")
        self.audio_token_id = audio_token_id
        self.audio_layer = audio_layer
        self.freeze_audio_encoder = bool(freeze_audio_encoder)
        self.freeze_text_model = bool(freeze_text_model)
        self.speech_loss_weight = float(speech_loss_weight)
        if audio_conv_layers is not None:
            audio_conv_layers = [[int(v) for v in layer] for layer in audio_conv_layers]
            if not all(len(layer) == 3 and layer[0] > 0 and layer[1] > 0 for layer in audio_conv_layers):
                raise ValueError(f"audio_conv_layers must be [kernel, stride, padding] triples: {audio_conv_layers}")
        self.audio_conv_layers = audio_conv_layers
        kwargs.setdefault("tie_word_embeddings", getattr(self.text_config, "tie_word_embeddings", False))
        # `PretrainedConfig.__init__` pushes its own (unset) attention implementation down to every sub-config; keep
        # the sub-models' choice unless one is asked for here (parts built before the config already use theirs).
        kept = {
            (key, name): getattr(getattr(self, key), name, None)
            for key in ("audio_config", "text_config")
            for name in _KEPT_IMPLEMENTATIONS
        }
        super().__init__(**kwargs)
        for (key, name), value in kept.items():
            if value is not None and kwargs.get(name.lstrip("_")) is None:
                setattr(getattr(self, key), name, value)

    def get_text_config(self, decoder=None, encoder=None) -> PretrainedConfig:
        """The LM's config: what generation and caches read."""
        return self.text_config

    @property
    def audio_hidden_size(self) -> int:
        config = self.audio_config
        return getattr(config, "d_model", None) or config.hidden_size

    @property
    def produces(self) -> dict:
        """What a pipeline component of this config hands on: `hf_slm.pipelines.check_compatibility` compares the
        values of a key one component produces and the next consumes (the speech decoder's units feed a vocoder)."""
        decoder = self.speech_decoder_config
        return {} if decoder is None else {"units.num_units": decoder.num_units}


def audio_conv_layers(config: SpeechLLMConfig) -> list[list[int]]:
    """`[kernel, stride, padding]` of each downsampling layer between the encoder's input and its output frames."""
    if config.audio_conv_layers is not None:
        return config.audio_conv_layers
    audio = config.audio_config
    if audio.model_type in ("whisper", "qwen2_audio_encoder", "voxtral_encoder"):
        return [[3, 1, 1], [3, 2, 1]]
    if audio.model_type == "wav2vec2-bert":  # its feature extractor already stacks 10 ms mel frames to 20 ms
        kernel, stride = audio.adapter_kernel_size, audio.adapter_stride
        return [[kernel, stride, stride // 2]] * audio.num_adapter_layers if audio.add_adapter else []
    if hasattr(audio, "conv_kernel") and hasattr(audio, "conv_stride"):  # wav2vec 2.0, HuBERT, WavLM, data2vec
        layers = [[k, s, 0] for k, s in zip(audio.conv_kernel, audio.conv_stride)]
        if getattr(audio, "add_adapter", False):
            layers += [[1, audio.adapter_stride, 0]] * audio.num_adapter_layers  # as transformers counts them
        return layers
    raise ValueError(
        f"cannot tell how {audio.model_type!r} downsamples its input: pass SpeechLLMConfig(audio_conv_layers=...)"
    )


def conv_output_lengths(lengths, layers: list[list[int]]):
    """Frames after the convolution `layers` for `lengths` input frames (an int or an integer tensor)."""
    for kernel, stride, padding in layers:
        lengths = (lengths + 2 * padding - kernel) // stride + 1
    return lengths


_DEFAULT_AUDIO = {
    "model_type": "whisper",
    "num_mel_bins": 80,
    "d_model": 256,
    "encoder_layers": 2,
    "encoder_attention_heads": 4,
    "encoder_ffn_dim": 1024,
    "decoder_layers": 1,
    "decoder_attention_heads": 4,
    "decoder_ffn_dim": 256,
    "max_source_positions": 1500,
}
_DEFAULT_TEXT = {
    "model_type": "llama",
    "vocab_size": 32000,
    "hidden_size": 256,
    "intermediate_size": 704,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "tie_word_embeddings": False,
}

__all__ = [
    "AUDIO_TOKEN",
    "CHAT_END",
    "CHAT_START",
    "PROJECTOR_TYPES",
    "SpeechLLMConfig",
    "SpeechLLMProjectorConfig",
    "SpeechLLMSpeechDecoderConfig",
    "audio_conv_layers",
    "conv_output_lengths",
]
