"""Configuration of the speech language model: a causal-LM backbone over one joint vocabulary of text and units."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import warnings

import numpy as np
import torch
from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

_KEPT_IMPLEMENTATIONS = ("_attn_implementation", "_experts_implementation")

#: Names of the built-in special tokens, in the order they follow the units in the vocabulary.
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "[Speech]", "[Text]")


#: How the backbone sub-config is built (transformers' `SubConfigSpec`): a dict names its `model_type` (default
#: Llama); `None` is a small Llama (4 layers, width 256, ~3M parameters besides the embeddings) that trains on a CPU.
#: Shared by every speech LM config of this folder; the layout sets `vocab_size` and the special ids afterwards.
TEXT_CONFIG_SPEC = SubConfigSpec(
    config_class=AutoConfig,
    model_type="llama",
    init_kwargs=dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=4,
                     num_key_value_heads=4, max_position_embeddings=4096, tie_word_embeddings=False),  # fmt: skip
)


def build_backbone_config(text_config) -> PretrainedConfig:
    """The backbone sub-config through `TEXT_CONFIG_SPEC`; refuses anything that is not a decoder with a vocabulary."""
    if not isinstance(text_config, (dict, PretrainedConfig, type(None))):
        raise ValueError(f"text_config must be a dict or a PretrainedConfig, got {type(text_config).__name__}")
    text_config, _ = TEXT_CONFIG_SPEC.create_subconfig("text_config", text_config)
    if not hasattr(text_config, "vocab_size"):
        raise ValueError(
            f"text_config ({type(text_config).__name__}) has no `vocab_size`: it must describe a causal LM"
        )
    return text_config


def take_legacy_backbone_config(text_config, kwargs: dict, owner: str):
    """`text_config`, or the value of its old name `backbone_config` (popped from `kwargs`, with a FutureWarning).

    Config files written before the rename are read without a warning: `from_dict` renames their key first
    ([`rename_legacy_config_keys`]). The old keyword and attribute are accepted until hf_slm 0.3.
    """
    legacy = kwargs.pop("backbone_config", None)
    if legacy is None:
        return text_config
    if text_config is not None:
        raise ValueError(f"{owner} got both text_config and backbone_config (its old name): pass text_config only")
    warnings.warn(
        f"{owner}(backbone_config=...) is deprecated and will be removed in hf_slm 0.3: pass text_config=...",
        FutureWarning,
        stacklevel=3,
    )
    return legacy


def rename_legacy_config_keys(config_dict: dict) -> dict:
    """A config dict with the pre-0.2 key `backbone_config` renamed to `text_config` (a copy; others unchanged)."""
    if "backbone_config" not in config_dict:
        return config_dict
    config_dict = dict(config_dict)
    legacy = config_dict.pop("backbone_config")
    config_dict.setdefault("text_config", legacy)
    return config_dict


class TextConfigMixin:
    """What a config that holds its LM backbone under `text_config` (as transformers' composite models do) shares:
    `get_text_config`, the common `PretrainedConfig` attributes read through to the backbone, reading config files
    that still call it `backbone_config`, and the deprecated `backbone_config` attribute."""

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        return super().from_dict(rename_legacy_config_keys(config_dict), **kwargs)

    def get_text_config(self, decoder=None, encoder=None) -> PretrainedConfig:
        """The backbone config: what generation, caches and `resize_token_embeddings` read (its input and its output
        are both this backbone, so `decoder` / `encoder` select the same config)."""
        return self.text_config

    # The attributes `PretrainedConfig` documents as common to every config, read from the backbone (read-only:
    # change them on `text_config`).
    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size

    @property
    def num_attention_heads(self) -> int:
        return self.text_config.num_attention_heads

    @property
    def num_hidden_layers(self) -> int:
        return self.text_config.num_hidden_layers

    @property
    def backbone_config(self) -> PretrainedConfig:
        """Deprecated name of `text_config` (removed in hf_slm 0.3)."""
        warnings.warn(
            f"{type(self).__name__}.backbone_config is deprecated and will be removed in hf_slm 0.3: use "
            ".text_config",
            FutureWarning,
            stacklevel=2,
        )
        return self.text_config

    @backbone_config.setter
    def backbone_config(self, value: PretrainedConfig):
        warnings.warn(
            f"{type(self).__name__}.backbone_config is deprecated and will be removed in hf_slm 0.3: use "
            ".text_config",
            FutureWarning,
            stacklevel=2,
        )
        self.text_config = value


def as_unit_sequences(units) -> list[torch.Tensor]:
    """Normalise a batch of unit sequences: a `[T]` / `[B, T]` tensor or array, one list of ints, or a list of 1-D
    sequences of any lengths -> a list of 1-D tensors."""
    if isinstance(units, (torch.Tensor, np.ndarray)):
        units = torch.as_tensor(units)
        if units.dim() == 1:
            return [units]
        if units.dim() == 2:
            return list(units)
        raise ValueError(f"units must be [T] or [B, T], got shape {tuple(units.shape)}")
    if isinstance(units, (list, tuple)) and units and all(isinstance(u, (int, np.integer)) for u in units):
        return [torch.as_tensor(units)]
    if isinstance(units, (list, tuple)) and units:
        sequences = [torch.as_tensor(u) for u in units]
        for i, seq in enumerate(sequences):
            if seq.dim() != 1:
                raise ValueError(f"each unit sequence must be 1-D; sequence {i} has shape {tuple(seq.shape)}")
        return sequences
    raise ValueError("units must be a 1-D / 2-D tensor or a non-empty list of 1-D sequences")


@dataclass(frozen=True)
class SpeechLMVocabularyLayout:
    r"""
    Where every kind of token lives in the joint vocabulary of a [`SpeechLMForCausalLM`], and how units map to ids.

    ```
    [0, text_vocab_size)                           text tokens: the text tokenizer's own ids, unchanged
    [unit_token_offset, + num_units)               unit k  -> unit_token_offset + k
    [special_token_offset, + 5)                    <pad> <s> </s> [Speech] [Text]
    [special_token_offset + 5, pitch_token_offset) task / language tags, e.g. [ASR] [TTS] [en] (VioLA / VoxtLM)
    [pitch_token_offset, + num_pitch_tokens)       pitch token k -> [Pi{k}] (SpiRit-LM Expressive; 0 by default)
    [style_token_offset, + num_style_tokens)       style token k -> [St{k}] (SpiRit-LM Expressive; 0 by default)
    ```

    Text ids come first so that a warm start from a text LM (TWIST) keeps every text row at its own index; a
    speech-only (GSLM-style) model simply has `text_vocab_size=0`. The config and the processor build the same
    layout from the same five numbers, so token ids always agree between them.

    Args:
        text_vocab_size (`int`): Rows reserved for text tokens (0 for a speech-only model).
        num_units (`int`): Number of discrete units of the speech tokenizer.
        task_tokens (`tuple[str, ...]`): Names of extra tag tokens, appended after the built-in specials.
        use_modality_tokens (`bool`): Whether each speech / text segment starts with `[Speech]` / `[Text]`.
        num_pitch_tokens, num_style_tokens (`int`): Expressive token ranges (SpiRit-LM `[Pi..]` / `[St..]`), placed
            after every named token so that a layout without them keeps all its ids.
    """

    text_vocab_size: int = 0
    num_units: int = 100
    task_tokens: tuple[str, ...] = ()
    use_modality_tokens: bool = True
    num_pitch_tokens: int = 0
    num_style_tokens: int = 0

    def __post_init__(self):
        for name, value, minimum in (
            ("text_vocab_size", self.text_vocab_size, 0),
            ("num_units", self.num_units, 1),
            ("num_pitch_tokens", self.num_pitch_tokens, 0),
            ("num_style_tokens", self.num_style_tokens, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
        tags = tuple(self.task_tokens)
        if not all(isinstance(tag, str) and tag for tag in tags):
            raise ValueError(f"task_tokens must be non-empty strings, got {list(tags)!r}")
        clashes = sorted({tag for tag in tags if tags.count(tag) > 1 or tag in SPECIAL_TOKENS})
        if clashes:
            raise ValueError(f"task_tokens must be unique and differ from the built-in {SPECIAL_TOKENS}, got {clashes}")
        object.__setattr__(self, "task_tokens", tags)

    # ------------------------------------------------------------------ offsets and sizes
    @property
    def unit_token_offset(self) -> int:
        """Token id of unit 0."""
        return self.text_vocab_size

    @property
    def special_token_offset(self) -> int:
        """Token id of the first special token (`<pad>`)."""
        return self.text_vocab_size + self.num_units

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """Names of all special tokens (built-in ones, then task tags), in id order."""
        return SPECIAL_TOKENS + self.task_tokens

    @property
    def pitch_token_offset(self) -> int:
        """Token id of pitch token 0 (`[Pi0]`), right after the specials and task tags."""
        return self.special_token_offset + len(self.special_tokens)

    @property
    def style_token_offset(self) -> int:
        """Token id of style token 0 (`[St0]`)."""
        return self.pitch_token_offset + self.num_pitch_tokens

    @property
    def vocab_size(self) -> int:
        """Total number of token ids (text + units + specials + tags + pitch + style tokens)."""
        return self.style_token_offset + self.num_style_tokens

    @property
    def pad_token_id(self) -> int:
        return self.token_id("<pad>")

    @property
    def bos_token_id(self) -> int:
        return self.token_id("<s>")

    @property
    def eos_token_id(self) -> int:
        return self.token_id("</s>")

    @property
    def speech_token_id(self) -> int:
        """Id of `[Speech]`, the marker that opens a speech segment."""
        return self.token_id("[Speech]")

    @property
    def text_token_id(self) -> int:
        """Id of `[Text]`, the marker that opens a text segment."""
        return self.token_id("[Text]")

    def token_id(self, name: str) -> int:
        """Id of a special token or task tag given by name (e.g. `"[Speech]"`, `"[ASR]"`)."""
        try:
            return self.special_token_offset + self.special_tokens.index(name)
        except ValueError:
            raise ValueError(f"unknown special token {name!r}; this layout has {list(self.special_tokens)}") from None

    def token_name(self, token_id: int) -> str:
        """Readable name of any id: the special's name, `<unit_k>`, or `<text_i>` (decode text with the tokenizer)."""
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} is outside the vocabulary [0, {self.vocab_size})")
        if token_id < self.unit_token_offset:
            return f"<text_{token_id}>"
        if token_id < self.special_token_offset:
            return f"<unit_{token_id - self.unit_token_offset}>"
        if token_id >= self.style_token_offset:
            return f"[St{token_id - self.style_token_offset}]"
        if token_id >= self.pitch_token_offset:
            return f"[Pi{token_id - self.pitch_token_offset}]"
        return self.special_tokens[token_id - self.special_token_offset]

    # ------------------------------------------------------------------ units <-> token ids
    def units_to_token_ids(self, units) -> torch.LongTensor:
        """Map units (any int tensor / array / list) to token ids; raises on a unit outside `[0, num_units)`."""
        units = torch.as_tensor(units)
        if units.is_floating_point() or units.dtype == torch.bool:
            raise ValueError(f"units must be integers, got dtype {units.dtype}")
        units = units.long()
        if units.numel() and (int(units.min()) < 0 or int(units.max()) >= self.num_units):
            bad = units[(units < 0) | (units >= self.num_units)][0].item()
            raise ValueError(
                f"unit {bad} is outside [0, {self.num_units}) (num_units={self.num_units}); padded unit frames "
                "must be removed before they reach the language model"
            )
        return units + self.unit_token_offset

    def is_unit_token(self, token_ids) -> torch.BoolTensor:
        token_ids = torch.as_tensor(token_ids)
        return (token_ids >= self.unit_token_offset) & (token_ids < self.special_token_offset)

    def is_pitch_token(self, token_ids) -> torch.BoolTensor:
        token_ids = torch.as_tensor(token_ids)
        return (token_ids >= self.pitch_token_offset) & (token_ids < self.style_token_offset)

    def is_style_token(self, token_ids) -> torch.BoolTensor:
        token_ids = torch.as_tensor(token_ids)
        return (token_ids >= self.style_token_offset) & (token_ids < self.vocab_size)

    def expressive_to_token_ids(self, tokens, kind: str) -> torch.LongTensor:
        """Pitch (`kind="pitch"`) or style (`"style"`) tokens -> token ids; raises on a token outside its range."""
        if kind not in ("pitch", "style"):
            raise ValueError(f"kind must be 'pitch' or 'style', got {kind!r}")
        size = self.num_pitch_tokens if kind == "pitch" else self.num_style_tokens
        tokens = torch.as_tensor(tokens)
        if tokens.is_floating_point() or tokens.dtype == torch.bool:
            raise ValueError(f"{kind} tokens must be integers, got dtype {tokens.dtype}")
        tokens = tokens.long()
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= size):
            bad = tokens[(tokens < 0) | (tokens >= size)][0].item()
            raise ValueError(f"{kind} token {bad} is outside [0, {size}) (num_{kind}_tokens={size})")
        return tokens + (self.pitch_token_offset if kind == "pitch" else self.style_token_offset)

    def is_text_token(self, token_ids) -> torch.BoolTensor:
        token_ids = torch.as_tensor(token_ids)
        return (token_ids >= 0) & (token_ids < self.text_vocab_size)

    def token_ids_to_units(self, token_ids, strict: bool = True) -> torch.LongTensor:
        """Map unit token ids back to units. `strict=False` drops every non-unit id instead of raising."""
        token_ids = torch.as_tensor(token_ids).long()
        is_unit = self.is_unit_token(token_ids)
        if not bool(is_unit.all()):
            if strict:
                bad = int(token_ids[~is_unit][0])
                raise ValueError(f"token id {bad} ({self.token_name(bad)}) is not a unit token")
            token_ids = token_ids[is_unit]
        return token_ids - self.unit_token_offset

    def speech_prefix_ids(self, task: str | Sequence[str] | None = None) -> list[int]:
        """Ids that open a speech-only sequence: `<s>`, the task tags, then `[Speech]` if modality tokens are used."""
        return [self.bos_token_id, *self.task_ids(task)] + ([self.speech_token_id] if self.use_modality_tokens else [])

    def task_ids(self, task: str | Sequence[str] | None) -> list[int]:
        """Ids of one or several task / language tags (`None` -> none)."""
        if task is None:
            return []
        names = [task] if isinstance(task, str) else list(task)
        unknown = [name for name in names if name not in self.task_tokens]
        if unknown:
            raise ValueError(f"unknown task tag(s) {unknown}; this layout has task_tokens={list(self.task_tokens)}")
        return [self.token_id(name) for name in names]

    def to_dict(self) -> dict:
        return {
            "text_vocab_size": self.text_vocab_size,
            "num_units": self.num_units,
            "task_tokens": list(self.task_tokens),
            "use_modality_tokens": self.use_modality_tokens,
            "num_pitch_tokens": self.num_pitch_tokens,
            "num_style_tokens": self.num_style_tokens,
        }


def _checked_suppressed_ids(token_ids, vocab_size: int, layout: SpeechLMVocabularyLayout) -> list[int] | None:
    """`suppressed_token_ids` as a sorted list without repeats (`None` when empty), or a clear error."""
    if token_ids is None:
        return None
    if isinstance(token_ids, (str, bytes)) or not isinstance(token_ids, Sequence):
        raise ValueError(f"suppressed_token_ids must be a list of token ids, got {token_ids!r}")
    bad = [
        t for t in token_ids if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < vocab_size
    ]
    if bad:
        raise ValueError(f"suppressed_token_ids must be ints in [0, {vocab_size}) (the vocabulary), got {bad}")
    if layout.eos_token_id in token_ids:
        raise ValueError(
            f"suppressed_token_ids holds </s> ({layout.eos_token_id}), which ends every sequence and cannot be "
            "suppressed"
        )
    return sorted({int(t) for t in token_ids}) or None


class SpeechLMConfig(TextConfigMixin, PretrainedConfig):
    r"""
    Configuration of [`SpeechLMForCausalLM`]: any causal-LM backbone (Llama, Qwen2, GPT-2, OPT, ...) held as
    `text_config` (the name transformers' composite models use, so `get_text_config()`, generation and caches find
    it), plus the vocabulary layout it is trained on (text tokens, units, special tokens; see
    [`SpeechLMVocabularyLayout`]). `hidden_size`, `num_attention_heads`, `num_hidden_layers` and `vocab_size` read
    through to the backbone.

    The defaults reproduce a small GSLM-style unit LM: speech only (`text_vocab_size=0`), 100 units (HuBERT / MFCC
    k-means 100), a 4-layer Llama of width 256. A TWIST-style model (warm-started from a text LM) is built with
    [`SpeechLMForCausalLM.from_text_lm`], which fills in `text_vocab_size` and the backbone.

    Args:
        text_config (`dict` or `PretrainedConfig`, *optional*):
            Config of the causal LM (anything `AutoModelForCausalLM.from_config` builds). A dict needs a
            `model_type`. Defaults to a 4-layer Llama (hidden 256, 4 heads, untied embeddings). Its `vocab_size` is
            set to the layout's total plus `num_extra_tokens` ([`~SpeechLMConfig.vocab_size`]). Its old name
            `backbone_config` is still read from config files and accepted (with a FutureWarning) until hf_slm 0.3.
        text_vocab_size (`int`, *optional*, defaults to 0):
            Number of text token ids (the text LM's embedding rows); 0 for a speech-only model.
        num_units (`int`, *optional*, defaults to 100):
            Number of units of the speech tokenizer.
        task_tokens (`list[str]`, *optional*):
            Names of extra tag tokens for multi-task / multi-lingual use, e.g. `["[ASR]", "[TTS]", "[en]"]`.
        use_modality_tokens (`bool`, *optional*, defaults to `True`):
            Whether speech and text segments open with `[Speech]` / `[Text]` (SpiRit-LM / SUTLM style). With
            `False` a speech-only sequence is plain `<s> u_1 ... u_T </s>` (GSLM).
        num_extra_tokens (`int`, *optional*, defaults to 0):
            Rows after the layout's named tokens, added by [`~SpeechLMForCausalLM.resize_token_embeddings`] (new
            tokens whose meaning the user manages, or padding to a multiple). Every named id is unchanged by them.
        num_pitch_tokens, num_style_tokens (`int`, *optional*, default to 0):
            SpiRit-LM Expressive token ranges `[Pi..]` / `[St..]` (an [`ExpressiveEncoderModel`]'s codebook sizes),
            after every other named token.
        suppressed_token_ids (`list[int]`, *optional*):
            Ids the model never produces (e.g. the specials a converted checkpoint's vocabulary lacks): they get
            probability 0, i.e. [`~SpeechLMForCausalLM.log_likelihood`] normalises its softmax over the other ids
            only, and generation never picks them (they are copied into `generation_config.suppress_tokens`, as
            transformers' `SuppressTokensLogitsProcessor` reads them). They may still be inputs (`<s>`). The
            training loss and `forward`'s logits are unchanged. `</s>` cannot be suppressed. Default: none.
        kwargs:
            Passed to [`PretrainedConfig`]. `pad_token_id`, `bos_token_id` and `eos_token_id` are derived from the
            layout; values passed here must agree with it.

    Example:

    ```python
    >>> from hf_slm import SpeechLMConfig, SpeechLMForCausalLM
    >>> config = SpeechLMConfig(num_units=100)  # GSLM-style: units only
    >>> config.vocab_size, config.unit_token_offset, config.bos_token_id, config.speech_token_id
    (105, 0, 101, 103)
    >>> config.units_to_token_ids([0, 7, 99]).tolist()
    [0, 7, 99]
    >>> twist = SpeechLMConfig(text_vocab_size=32000, num_units=500, task_tokens=["[ASR]", "[TTS]"])
    >>> twist.vocab_size, twist.unit_token_offset, twist.token_id("[ASR]")
    (32507, 32000, 32505)
    >>> model = SpeechLMForCausalLM(config)

    ```
    """

    model_type = "hf_slm_speech_lm"
    sub_configs_defaults = {"text_config": TEXT_CONFIG_SPEC}

    def __init__(
        self,
        text_config: dict | PretrainedConfig | None = None,
        text_vocab_size: int = 0,
        num_units: int = 100,
        task_tokens: list[str] | None = None,
        use_modality_tokens: bool = True,
        num_extra_tokens: int = 0,
        suppressed_token_ids: list[int] | None = None,
        num_pitch_tokens: int = 0,
        num_style_tokens: int = 0,
        **kwargs,
    ):
        text_config = take_legacy_backbone_config(text_config, kwargs, type(self).__name__)
        if not isinstance(num_extra_tokens, int) or isinstance(num_extra_tokens, bool) or num_extra_tokens < 0:
            raise ValueError(f"num_extra_tokens must be an int >= 0, got {num_extra_tokens!r}")
        layout = SpeechLMVocabularyLayout(
            text_vocab_size=text_vocab_size,
            num_units=num_units,
            task_tokens=tuple(task_tokens or ()),
            use_modality_tokens=bool(use_modality_tokens),
            num_pitch_tokens=num_pitch_tokens,
            num_style_tokens=num_style_tokens,
        )
        text_config = build_backbone_config(text_config)
        # The layout owns the vocabulary: the backbone's embedding table has one row per layout id (then the extra
        # rows), and its special ids are the layout's (a warm-started text LM's own BOS / EOS would point at text rows).
        text_config.vocab_size = layout.vocab_size + num_extra_tokens
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if hasattr(text_config, name):
                setattr(text_config, name, getattr(layout, name))

        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = kwargs.pop(name, None)
            if value is not None and value != getattr(layout, name):
                raise ValueError(
                    f"{name}={value!r} disagrees with the vocabulary layout, which puts it at {getattr(layout, name)}"
                )
        self.text_config = text_config
        self.num_extra_tokens = num_extra_tokens
        self.suppressed_token_ids = _checked_suppressed_ids(suppressed_token_ids, text_config.vocab_size, layout)
        self.text_vocab_size = layout.text_vocab_size
        self.num_units = layout.num_units
        self.task_tokens = list(layout.task_tokens)
        self.use_modality_tokens = layout.use_modality_tokens
        self.num_pitch_tokens = layout.num_pitch_tokens
        self.num_style_tokens = layout.num_style_tokens
        # Plain attributes (not properties) so that `GenerationConfig.from_model_config` picks them up.
        self.pad_token_id = layout.pad_token_id
        self.bos_token_id = layout.bos_token_id
        self.eos_token_id = layout.eos_token_id
        kwargs.setdefault("tie_word_embeddings", getattr(text_config, "tie_word_embeddings", False))
        # `PretrainedConfig.__init__` pushes its own (unset) attention / experts implementation down to every
        # sub-config; keep the backbone's choice unless one is asked for here (a warm-started text LM is already
        # built with it).
        kept = {name: getattr(text_config, name, None) for name in _KEPT_IMPLEMENTATIONS}
        super().__init__(**kwargs)
        for name, value in kept.items():
            if value is not None and kwargs.get(name.lstrip("_")) is None:
                setattr(text_config, name, value)

    @property
    def vocab_layout(self) -> SpeechLMVocabularyLayout:
        """The vocabulary layout (rebuilt from the config fields, so it follows any edit of them)."""
        return SpeechLMVocabularyLayout(
            text_vocab_size=self.text_vocab_size,
            num_units=self.num_units,
            task_tokens=tuple(self.task_tokens),
            use_modality_tokens=self.use_modality_tokens,
            num_pitch_tokens=getattr(self, "num_pitch_tokens", 0),
            num_style_tokens=getattr(self, "num_style_tokens", 0),
        )

    @property
    def vocab_size(self) -> int:
        """Total number of token ids (the layout's, then `num_extra_tokens`); the backbone's `vocab_size`."""
        return self.text_config.vocab_size

    @property
    def unit_token_offset(self) -> int:
        return self.vocab_layout.unit_token_offset

    @property
    def special_token_offset(self) -> int:
        return self.vocab_layout.special_token_offset

    @property
    def speech_token_id(self) -> int:
        return self.vocab_layout.speech_token_id

    @property
    def text_token_id(self) -> int:
        return self.vocab_layout.text_token_id

    def token_id(self, name: str) -> int:
        return self.vocab_layout.token_id(name)

    def units_to_token_ids(self, units) -> torch.LongTensor:
        return self.vocab_layout.units_to_token_ids(units)

    def token_ids_to_units(self, token_ids, strict: bool = True) -> torch.LongTensor:
        return self.vocab_layout.token_ids_to_units(token_ids, strict=strict)

    @property
    def consumes(self) -> dict:
        """What a pipeline component of this config takes in: `hf_slm.pipelines.check_compatibility` compares the
        values of a key one component produces and the next consumes."""
        return {"units.num_units": self.num_units}

    @property
    def produces(self) -> dict:
        """What a pipeline component of this config hands on: `hf_slm.pipelines.check_compatibility` compares the
        values of a key one component produces and the next consumes."""
        return {"units.num_units": self.num_units}


__all__ = [
    "SpeechLMConfig",
    "SpeechLMVocabularyLayout",
    "TEXT_CONFIG_SPEC",
    "TextConfigMixin",
    "as_unit_sequences",
    "build_backbone_config",
    "rename_legacy_config_keys",
    "take_legacy_backbone_config",
]
