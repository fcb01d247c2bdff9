"""Configuration of the acoustic LM: AudioLM's coarse and fine stages, one decoder over a conditioning prefix and
flattened codec codes."""

from __future__ import annotations

import copy

from transformers import CONFIG_MAPPING, AutoConfig, LlamaConfig, PretrainedConfig

_CONDITIONS = ("units", "codes")


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _positive_or_none(name: str, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise ValueError(f"{name} must be a number > 0 (frames per second) or None, got {value!r}")
    return None if value is None else float(value)


class AcousticLMConfig(PretrainedConfig):
    r"""
    Configuration of [`AcousticLMForCausalLM`]: a causal decoder that predicts codebooks `first_codebook ..
    first_codebook + num_codebooks - 1` of a residual-VQ codec, frame by frame and codebook by codebook (flattened:
    frame `t`'s codebook `q` at target position `t * num_codebooks + q`), after a conditioning prefix. These are the
    two acoustic stages of AudioLM (Borsos et al., 2022):

    - **coarse** (`condition="units"`, `first_codebook=0`): the prefix is the semantic units of the whole utterance
      (prompt and continuation); the target is the first `Q1` codebooks; the prompt's own coarse codes are the start
      of the target (the acoustic prompt);
    - **fine** (`condition="codes"`, `first_codebook=Q1`): the prefix is codebooks `0..Q1-1` of a window of
      frames (flattened); the target is the remaining codebooks of the same frames.

    The sequence is `<s> prefix <sep> target`. Ids: the prefix's (`num_units` units, or codebook `q`'s code `c` at
    `q * codebook_size + c`), then the target's (codebook `first_codebook + k`'s code `c` at `target_offset + k *
    codebook_size + c`), then `<s>`, `<sep>`, `<pad>`. One linear head gives `num_codebooks x codebook_size` scores
    per position; a position is scored on the slice of the codebook that comes next.

    Args:
        text_config (`dict` or `PretrainedConfig`, *optional*):
            The decoder, built with `AutoModel.from_config` (any transformers decoder; a dict needs a `model_type`).
            Defaults to a 4-layer Llama of width 256. Its `vocab_size` is set to [`~AcousticLMConfig.vocab_size`].
        condition (`str`, *optional*, defaults to `"units"`): `"units"` (semantic units prefix, the coarse stage) or
            `"codes"` (codebooks `0..first_codebook-1` prefix, the fine stage).
        num_units (`int`, *optional*): units of the semantic tokenizer; `condition="units"` only (default 100).
        codebook_size (`int`, *optional*, defaults to 1024): codes per codebook.
        first_codebook (`int`, *optional*, defaults to 0): first codebook predicted; with `condition="codes"` it is
            also the number of conditioning codebooks (>= 1).
        num_codebooks (`int`, *optional*, defaults to 2): codebooks predicted.
        frame_rate (`float`, *optional*): frames per second of the codes; a pipeline refuses a codec of another rate.
        unit_frame_rate (`float`, *optional*): frames per second of the units (`condition="units"`); a pipeline
            refuses a unit encoder of another rate.
        kwargs: Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from hf_slm import AcousticLMConfig, AcousticLMForCausalLM
    >>> coarse = AcousticLMConfig(condition="units", num_units=16, codebook_size=64, num_codebooks=2)
    >>> coarse.target_offset, coarse.bos_token_id, coarse.sep_token_id, coarse.vocab_size
    (16, 144, 145, 147)
    >>> fine = AcousticLMConfig(condition="codes", codebook_size=64, first_codebook=2, num_codebooks=2)
    >>> fine.condition_vocab_size, fine.vocab_size
    (128, 259)
    >>> model = AcousticLMForCausalLM(coarse)

    ```
    """

    model_type = "hf_slm_acoustic_lm"
    sub_configs = {"text_config": AutoConfig}

    def __init__(
        self,
        text_config: dict | PretrainedConfig | None = None,
        condition: str = "units",
        num_units: int | None = None,
        codebook_size: int = 1024,
        first_codebook: int = 0,
        num_codebooks: int = 2,
        frame_rate: float | None = None,
        unit_frame_rate: float | None = None,
        **kwargs,
    ):
        if condition not in _CONDITIONS:
            raise ValueError(f"condition must be one of {_CONDITIONS}, got {condition!r}")
        if condition == "codes" and num_units is not None:
            raise ValueError(f"num_units={num_units!r} is for condition='units'; a 'codes' prefix has no units")
        if condition == "units" and num_units is None:
            num_units = 100
        for name, value, minimum in (("num_units", num_units if condition == "units" else 1, 1),
                                     ("codebook_size", codebook_size, 1),
                                     ("first_codebook", first_codebook, 0), ("num_codebooks", num_codebooks, 1)):
            if not _is_int(value, minimum):
                raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
        if condition == "codes" and first_codebook < 1:
            raise ValueError(
                "condition='codes' conditions on codebooks 0..first_codebook-1, so first_codebook must be >= 1, got "
                f"{first_codebook}"
            )
        self.condition = condition
        self.num_units = num_units
        self.codebook_size = codebook_size
        self.first_codebook = first_codebook
        self.num_codebooks = num_codebooks
        self.frame_rate = _positive_or_none("frame_rate", frame_rate)
        self.unit_frame_rate = _positive_or_none("unit_frame_rate", unit_frame_rate)

        if text_config is None:
            text_config = LlamaConfig(hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                                      num_attention_heads=4, max_position_embeddings=4096)  # fmt: skip
        elif isinstance(text_config, dict):
            values = dict(text_config)
            model_type = values.pop("model_type", None)
            if model_type is None:
                raise ValueError(f"text_config as a dict needs a 'model_type', got keys {sorted(values)}")
            text_config = CONFIG_MAPPING[model_type](**values)
        elif isinstance(text_config, PretrainedConfig):
            text_config = copy.deepcopy(text_config)  # its vocab_size / special ids are rewritten below
        else:
            raise ValueError(f"text_config must be a dict or a PretrainedConfig, got {type(text_config).__name__}")
        if not hasattr(text_config, "hidden_size"):
            raise ValueError(f"text_config ({type(text_config).__name__}) has no hidden_size: it must be a decoder")
        text_config.vocab_size = self.vocab_size
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if hasattr(text_config, name):
                setattr(text_config, name, None)
        self.text_config = text_config
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ derived values
    @property
    def condition_vocab_size(self) -> int:
        """Ids of the prefix: `num_units`, or `first_codebook * codebook_size` conditioning codes."""
        return self.num_units if self.condition == "units" else self.first_codebook * self.codebook_size

    @property
    def target_offset(self) -> int:
        """Id of the first predicted codebook's code 0."""
        return self.condition_vocab_size

    @property
    def bos_token_id(self) -> int:
        return self.target_offset + self.num_codebooks * self.codebook_size

    @property
    def sep_token_id(self) -> int:
        return self.bos_token_id + 1

    @property
    def pad_token_id(self) -> int:
        return self.bos_token_id + 2

    @property
    def vocab_size(self) -> int:
        return self.bos_token_id + 3

    @property
    def last_codebook(self) -> int:
        """One past the last codebook predicted."""
        return self.first_codebook + self.num_codebooks

    @property
    def consumes(self) -> dict:
        """What it takes in (`hf_slm.pipelines.check_compatibility` keys)."""
        needs = {"codes.codebook_size": self.codebook_size}
        if self.condition == "units":
            needs["units.num_units"] = self.num_units
            if self.unit_frame_rate:
                needs["units.frame_rate"] = self.unit_frame_rate
        if self.frame_rate:
            needs["codes.frame_rate"] = self.frame_rate
        return needs


__all__ = ["AcousticLMConfig"]
