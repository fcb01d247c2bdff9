"""Configuration of the multi-stream speech LM: several parallel token streams per frame (pGSLM units + prosody, or
the Q codebooks of a neural codec), each with its own vocabulary and delay."""

from __future__ import annotations

import copy

from transformers import LlamaConfig, PretrainedConfig

from .configuration_speech_lm import TEXT_CONFIG_SPEC, TextConfigMixin, build_backbone_config, take_legacy_backbone_config

_KEPT_IMPLEMENTATIONS = ("_attn_implementation", "_experts_implementation")

#: Number of special ids each stream owns after its real values: `<pad>` (delay filler) and `<s>` (first frame).
NUM_STREAM_SPECIAL_TOKENS = 2

#: Names of the three pGSLM streams, in order.
PGSLM_STREAM_NAMES = ("units", "duration", "f0")

#: Names of the streams of a duplex dialogue (Moshi): the system's and the user's units, after an optional text stream.
DIALOGUE_STREAM_NAMES = ("system", "user")

_STREAM_KINDS = ("codec", "pgslm", "dialogue")


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


class MultiStreamSpeechLMConfig(TextConfigMixin, PretrainedConfig):
    r"""
    Configuration of [`MultiStreamSpeechLMForCausalLM`]: a causal backbone (any `AutoModel` decoder: Llama, Qwen2,
    GPT-2, ...) over frames of `S` parallel token streams. The embeddings of a frame's `S` tokens are summed into
    one backbone input; stream `s` is predicted by its own head (or, for codecs, codebooks `1..Q-1` by a small depth
    transformer, as in Moshi / RQ-Transformer).

    Stream `s` is shifted right by `delays[s]` frames (MusicGen / Moshi delay pattern), so that a frame's later
    streams are predicted after its earlier ones are known; generation undoes the shift. Each stream's vocabulary
    is its `stream_vocab_sizes[s]` values followed by two special ids, `<pad>` (= `stream_vocab_sizes[s]`, fills
    the positions the delays open) and `<s>` (= `stream_vocab_sizes[s] + 1`, the first frame). Heads predict the
    real values only.

    The defaults reproduce a MusicGen-style codec LM: 4 codebooks of 1024 codes with delays `[0, 1, 2, 3]` on a
    4-layer Llama of width 256. `stream_kind="pgslm"` without vocabularies gives pGSLM's three streams (Kharitonov
    et al., 2022): 100 deduplicated units, durations quantised to 1..32 frames, and log-F0 in 32 bins plus an
    unvoiced bin, with prosody delayed by one step (`[0, 1, 1]`): a unit's duration and pitch are predicted one
    step after the unit itself (see `prosody_multistream_speech_lm.py` for building these streams).

    Args:
        text_config (`dict` or `PretrainedConfig`, *optional*):
            Config of the temporal transformer, built with `AutoModel.from_config` (a base model that runs on
            `inputs_embeds`). A dict needs a `model_type`. Defaults to a 4-layer Llama (hidden 256, 4 heads). Its
            `vocab_size` is set to [`~MultiStreamSpeechLMConfig.embedding_vocab_size`]: its embedding table holds
            every stream's rows, one after the other (as CSM's backbone embeddings do). Called `backbone_config`
            before hf_slm 0.2: that name is still read from config files and accepted (with a FutureWarning).
        stream_vocab_sizes (`list[int]`, *optional*):
            Number of real values of each stream (codebook size; units / duration bins / F0 bins). Defaults to
            `[1024] * 4` for `"codec"`, `[100, 32, 33]` for `"pgslm"` and `[100, 100]` for `"dialogue"`.
        stream_kind (`str`, *optional*, defaults to `"codec"`):
            `"codec"` (Q codebooks of an RVQ codec, optionally with a depth transformer), `"pgslm"` (exactly
            three streams: units, duration, quantised log-F0) or `"dialogue"` (Moshi-style duplex: the system's
            and the user's units of one dialogue, `[system, user]`, or `[text, system, user]` with the system's
            text "inner monologue" first, as `hf_slm.data.dialogue_units.dialogue_streams` builds them).
        delays (`list[int]`, *optional*):
            Delay of each stream in frames; non-negative, smallest 0. Defaults to `[0, 1, ..., S-1]` for codecs
            (MusicGen), `[0, 1, 1]` for pGSLM and for a dialogue with text (the text leads the audio by a frame, as
            in Moshi), `[0, 0]` for a dialogue without. `[0] * S` predicts all streams of a frame at once.
        use_depth_transformer (`bool`, *optional*, defaults to `False`):
            Codecs only: predict codebooks `1..Q-1` of a frame with a small causal transformer over the codebook
            axis, conditioned on the backbone's output and the frame's earlier codebooks (Moshi's depformer, CSM's
            depth decoder); codebook 0 keeps its linear head.
        depth_hidden_size (`int`, *optional*, defaults to 128): Width of the depth transformer.
        depth_num_hidden_layers (`int`, *optional*, defaults to 2): Layers of the depth transformer.
        depth_num_attention_heads (`int`, *optional*, defaults to 4): Attention heads of the depth transformer.
        depth_intermediate_size (`int`, *optional*): MLP width of the depth transformer (default `4 *
            depth_hidden_size`).
        stream_loss_weights (`list[float]`, *optional*):
            Weight of each stream's cross-entropy in the total loss (a weighted mean). Defaults to all 1; Moshi
            weights its semantic codebook higher.
        pattern (`str`, *optional*, defaults to `"delay"`):
            How frames become the backbone's sequence: `"delay"` (one position per frame, streams shifted by
            `delays`) or `"flatten"` (one position per codebook value: frame `t`'s codebook `q` at position
            `t * S + q`, predicted by head `q`; `S` times longer sequences, no depth transformer, `delays` all 0).
        frame_rate (`float`, *optional*):
            Frames per second of the codes it models (a codec LM): when set, a pipeline refuses a codec of another
            frame rate (`consumes["codes.frame_rate"]`).
        kwargs: Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from hf_slm import MultiStreamSpeechLMConfig, MultiStreamSpeechLMForCausalLM
    >>> config = MultiStreamSpeechLMConfig(stream_vocab_sizes=[64, 64, 64], delays=[0, 1, 2])
    >>> config.num_streams, config.max_delay, config.embedding_vocab_size, config.stream_token_offsets
    (3, 2, 198, [0, 66, 132])
    >>> config.pad_token_ids, config.bos_token_ids
    ([64, 64, 64], [65, 65, 65])
    >>> pgslm = MultiStreamSpeechLMConfig(stream_kind="pgslm")
    >>> pgslm.stream_names, pgslm.stream_vocab_sizes, pgslm.delays
    (('units', 'duration', 'f0'), [100, 32, 33], [0, 1, 1])
    >>> duplex = MultiStreamSpeechLMConfig(stream_kind="dialogue", stream_vocab_sizes=[31, 100, 100])
    >>> duplex.stream_names, duplex.delays
    (('text', 'system', 'user'), [0, 1, 1])
    >>> model = MultiStreamSpeechLMForCausalLM(config)

    ```
    """

    model_type = "hf_slm_multistream_speech_lm"
    sub_configs_defaults = {"text_config": TEXT_CONFIG_SPEC}

    def __init__(
        self,
        text_config: dict | PretrainedConfig | None = None,
        stream_vocab_sizes: list[int] | None = None,
        stream_kind: str = "codec",
        delays: list[int] | None = None,
        use_depth_transformer: bool = False,
        depth_hidden_size: int = 128,
        depth_num_hidden_layers: int = 2,
        depth_num_attention_heads: int = 4,
        depth_intermediate_size: int | None = None,
        stream_loss_weights: list[float] | None = None,
        pattern: str = "delay",
        frame_rate: float | None = None,
        **kwargs,
    ):
        text_config = take_legacy_backbone_config(text_config, kwargs, type(self).__name__)
        if stream_kind not in _STREAM_KINDS:
            raise ValueError(f"stream_kind must be one of {_STREAM_KINDS}, got {stream_kind!r}")
        if stream_vocab_sizes is None:
            stream_vocab_sizes = {"codec": [1024] * 4, "pgslm": [100, 32, 33], "dialogue": [100, 100]}[stream_kind]
        stream_vocab_sizes = list(stream_vocab_sizes)
        if not stream_vocab_sizes or not all(_is_int(v, 1) for v in stream_vocab_sizes):
            raise ValueError(f"stream_vocab_sizes must be a non-empty list of ints >= 1, got {stream_vocab_sizes!r}")
        num_streams = len(stream_vocab_sizes)
        if stream_kind == "pgslm" and num_streams != len(PGSLM_STREAM_NAMES):
            raise ValueError(
                f"stream_kind='pgslm' needs exactly 3 streams {PGSLM_STREAM_NAMES}, got stream_vocab_sizes="
                f"{stream_vocab_sizes!r}"
            )
        if stream_kind == "dialogue" and (num_streams not in (2, 3) or stream_vocab_sizes[-1] != stream_vocab_sizes[-2]):
            raise ValueError(
                f"stream_kind='dialogue' needs the system's and the user's units (same vocabulary), after an optional "
                f"text stream: 2 or 3 streams, got stream_vocab_sizes={stream_vocab_sizes!r}"
            )
        if delays is None and (pattern == "flatten" or (stream_kind == "dialogue" and num_streams == 2)):
            delays = [0] * num_streams
        elif delays is None:
            delays = list(range(num_streams)) if stream_kind == "codec" else [0, 1, 1]
        delays = list(delays)
        if len(delays) != num_streams or not all(_is_int(d, 0) for d in delays) or min(delays) != 0:
            raise ValueError(
                f"delays must hold one int >= 0 per stream ({num_streams}) with smallest value 0, got {delays!r}"
            )
        if use_depth_transformer and (stream_kind != "codec" or num_streams < 2):
            raise ValueError(
                "use_depth_transformer=True needs stream_kind='codec' and at least 2 codebooks, got "
                f"stream_kind={stream_kind!r} with {num_streams} stream(s)"
            )
        for name, value in (
            ("depth_hidden_size", depth_hidden_size),
            ("depth_num_hidden_layers", depth_num_hidden_layers),
            ("depth_num_attention_heads", depth_num_attention_heads),
        ):
            if not _is_int(value, 1):
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if depth_hidden_size % depth_num_attention_heads:
            raise ValueError(
                f"depth_hidden_size={depth_hidden_size} must be divisible by depth_num_attention_heads="
                f"{depth_num_attention_heads}"
            )
        if depth_intermediate_size is not None and not _is_int(depth_intermediate_size, 1):
            raise ValueError(f"depth_intermediate_size must be an int >= 1 or None, got {depth_intermediate_size!r}")
        if stream_loss_weights is None:
            stream_loss_weights = [1.0] * num_streams
        stream_loss_weights = [float(w) for w in stream_loss_weights]
        if len(stream_loss_weights) != num_streams or min(stream_loss_weights) < 0 or sum(stream_loss_weights) <= 0:
            raise ValueError(
                f"stream_loss_weights must hold one weight >= 0 per stream ({num_streams}), not all 0, got "
                f"{stream_loss_weights!r}"
            )

        if pattern not in ("delay", "flatten"):
            raise ValueError(f"pattern must be 'delay' or 'flatten', got {pattern!r}")
        if pattern == "flatten" and (use_depth_transformer or any(delays)):
            raise ValueError(
                f"pattern='flatten' predicts one codebook value per position: it takes no depth transformer and "
                f"delays of 0, got use_depth_transformer={use_depth_transformer}, delays={delays!r}"
            )
        if frame_rate is not None and (isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float))
                                       or frame_rate <= 0):
            raise ValueError(f"frame_rate must be a number > 0 (frames per second) or None, got {frame_rate!r}")

        if isinstance(text_config, PretrainedConfig):
            text_config = copy.deepcopy(text_config)  # its vocab_size / special ids are rewritten below
        text_config = build_backbone_config(text_config)  # vocab_size is set just below
        # One embedding table holds every stream's rows; the frame's input is the sum of its streams' rows.
        text_config.vocab_size = sum(v + NUM_STREAM_SPECIAL_TOKENS for v in stream_vocab_sizes)
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if hasattr(text_config, name):
                setattr(text_config, name, None)  # a padding_idx would freeze one stream's row at zero

        self.text_config = text_config
        self.stream_vocab_sizes = stream_vocab_sizes
        self.stream_kind = stream_kind
        self.delays = delays
        self.use_depth_transformer = bool(use_depth_transformer)
        self.depth_hidden_size = depth_hidden_size
        self.depth_num_hidden_layers = depth_num_hidden_layers
        self.depth_num_attention_heads = depth_num_attention_heads
        self.depth_intermediate_size = depth_intermediate_size
        self.stream_loss_weights = stream_loss_weights
        self.pattern = pattern
        self.frame_rate = None if frame_rate is None else float(frame_rate)
        kwargs.setdefault("tie_word_embeddings", False)
        # As in SpeechLMConfig: keep the backbone's attention implementation unless one is asked for here.
        kept = {name: getattr(text_config, name, None) for name in _KEPT_IMPLEMENTATIONS}
        super().__init__(**kwargs)
        for name, value in kept.items():
            if value is not None and kwargs.get(name.lstrip("_")) is None:
                setattr(text_config, name, value)

    # ------------------------------------------------------------------ derived values
    @property
    def num_streams(self) -> int:
        return len(self.stream_vocab_sizes)

    @property
    def max_delay(self) -> int:
        """Largest delay: a delayed sequence of `T` frames has `T + max_delay` positions."""
        return max(self.delays)

    @property
    def stream_names(self) -> tuple[str, ...]:
        """`("units", "duration", "f0")` for pGSLM, `([text,] system, user)` for a dialogue, `("codebook_0", ...)`
        for codecs."""
        if self.stream_kind == "pgslm":
            return PGSLM_STREAM_NAMES
        if self.stream_kind == "dialogue":
            return ("text",) * (self.num_streams - 2) + DIALOGUE_STREAM_NAMES
        return tuple(f"codebook_{q}" for q in range(self.num_streams))

    @property
    def pad_token_ids(self) -> list[int]:
        """Per-stream id of `<pad>`, the filler of the positions opened by the delays (stream-local ids)."""
        return list(self.stream_vocab_sizes)

    @property
    def bos_token_ids(self) -> list[int]:
        """Per-stream id of `<s>`, the first frame of every sequence (stream-local ids)."""
        return [v + 1 for v in self.stream_vocab_sizes]

    @property
    def stream_token_offsets(self) -> list[int]:
        """Row of each stream's id 0 in the shared embedding table."""
        offsets, total = [], 0
        for v in self.stream_vocab_sizes:
            offsets.append(total)
            total += v + NUM_STREAM_SPECIAL_TOKENS
        return offsets

    @property
    def embedding_vocab_size(self) -> int:
        """Rows of the shared embedding table (every stream's values and specials); the backbone's `vocab_size`."""
        return self.text_config.vocab_size

    @property
    def depth_config(self) -> LlamaConfig:
        """Config of the depth transformer: a small Llama over the `Q` codebook positions of one frame."""
        return LlamaConfig(
            vocab_size=1,  # runs on inputs_embeds; its own embedding table is removed by the model
            hidden_size=self.depth_hidden_size,
            intermediate_size=self.depth_intermediate_size or 4 * self.depth_hidden_size,
            num_hidden_layers=self.depth_num_hidden_layers,
            num_attention_heads=self.depth_num_attention_heads,
            num_key_value_heads=self.depth_num_attention_heads,
            max_position_embeddings=self.num_streams,
            pad_token_id=None,
            bos_token_id=None,
            eos_token_id=None,
            attn_implementation=getattr(self.text_config, "_attn_implementation", None) or "sdpa",
        )

    @property
    def consumes(self) -> dict:
        """What a pipeline component of this config takes in: `hf_slm.pipelines.check_compatibility` compares the
        values of a key one component produces and the next consumes."""
        if self.stream_kind in ("pgslm", "dialogue"):
            return {"units.num_units": self.stream_vocab_sizes[0 if self.stream_kind == "pgslm" else -1]}
        sizes = set(self.stream_vocab_sizes)
        return (
            {"codes.num_codebooks": self.num_streams}
            | ({"codes.codebook_size": self.stream_vocab_sizes[0]} if len(sizes) == 1 else {})
            | ({"codes.frame_rate": self.frame_rate} if getattr(self, "frame_rate", None) else {})
        )

    @property
    def produces(self) -> dict:
        """What a pipeline component of this config hands on: `hf_slm.pipelines.check_compatibility` compares the
        values of a key one component produces and the next consumes."""
        return self.consumes


__all__ = ["MultiStreamSpeechLMConfig"]
