"""Configurations of VALL-E-style zero-shot TTS (Wang et al., 2023; VALL-E 2, Chen et al., 2024): an autoregressive
model over codebook 1 and a non-autoregressive model over codebooks 2..Q, both conditioned on phonemes."""

from __future__ import annotations

import copy

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

#: The backbone sub-config (transformers' `SubConfigSpec`): a dict names its `model_type` (default Llama); `None` is a
#: small Llama that trains on a CPU. The NAR model runs the same decoder with a bidirectional (4-D) attention mask.
TEXT_CONFIG_SPEC = SubConfigSpec(
    config_class=AutoConfig,
    model_type="llama",
    init_kwargs=dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=4,
                     num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=False),  # fmt: skip
)


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


class _VallEConfigBase(PretrainedConfig):
    """What the AR and NAR configs share: the backbone, the phoneme vocabulary and the codec's code layout."""

    sub_configs_defaults = {"text_config": TEXT_CONFIG_SPEC}

    def __init__(self, text_config=None, num_phonemes: int = 128, codebook_size: int = 1024, num_codebooks: int = 8,
                 frame_rate: float | None = None, **kwargs):  # fmt: skip
        for name, value, low in (("num_phonemes", num_phonemes, 3), ("codebook_size", codebook_size, 2),
                                 ("num_codebooks", num_codebooks, 1)):  # fmt: skip
            if not _is_int(value, low):
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if frame_rate is not None and (isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float))
                                       or frame_rate <= 0):  # fmt: skip
            raise ValueError(f"frame_rate must be a number > 0 (frames per second) or None, got {frame_rate!r}")
        if not isinstance(text_config, (dict, PretrainedConfig, type(None))):
            raise ValueError(f"text_config must be a dict or a PretrainedConfig, got {type(text_config).__name__}")
        if isinstance(text_config, PretrainedConfig):
            text_config = copy.deepcopy(text_config)  # its vocab_size / special ids are rewritten below
        text_config, _ = TEXT_CONFIG_SPEC.create_subconfig("text_config", text_config)
        text_config.vocab_size = 1  # the model embeds phonemes and codes itself and runs the backbone on embeddings
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if hasattr(text_config, name):
                setattr(text_config, name, None)
        self.text_config = text_config
        self.num_phonemes = num_phonemes
        self.codebook_size = codebook_size
        self.num_codebooks = num_codebooks
        self.frame_rate = None if frame_rate is None else float(frame_rate)
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    def get_text_config(self, decoder=None, encoder=None) -> PretrainedConfig:
        return self.text_config

    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size

    @property
    def consumes(self) -> dict:
        """What a pipeline checks against the codec (`hf_slm.pipelines.check_compatibility` keys)."""
        frame_rate = {"codes.frame_rate": self.frame_rate} if self.frame_rate else {}
        return {"codes.num_codebooks": self.num_codebooks, "codes.codebook_size": self.codebook_size} | frame_rate

    @property
    def produces(self) -> dict:
        return self.consumes


class VallEARConfig(_VallEConfigBase):
    r"""
    Configuration of [`VallEARModel`]: a causal decoder over `phonemes, <bos>, codebook-1 codes, <eos>`.

    Codes are read and predicted `group_size` at a time (VALL-E 2's grouped code modelling): a group's embeddings are
    concatenated and projected to one position, and one position predicts the next group's `group_size` codes. The
    code vocabulary is the `codebook_size` codes, then `<eos>` (= `codebook_size`), `<bos>` and `<pad>` (fills the
    last group after `<eos>`); the head predicts codes and `<eos>`.

    Args:
        text_config (`dict` or `PretrainedConfig`, *optional*): the decoder, built with `AutoModel.from_config` and run
            on `inputs_embeds` (default: a 4-layer Llama of width 256).
        num_phonemes (`int`, defaults to 128): size of the phoneme vocabulary (the phoneme tokenizer's `len`).
        codebook_size (`int`, defaults to 1024): codes per codebook of the codec.
        num_codebooks (`int`, defaults to 8): codebooks of the codec (the AR model reads only the first; the count is
            checked against the codec and the NAR model when a pipeline loads).
        group_size (`int`, defaults to 1): codes per position (VALL-E 2 uses 1, 2, 4, 8).
        frame_rate (`float`, *optional*): frames per second of the codec; a pipeline refuses a codec of another rate.

    Example:

    ```python
    >>> from hf_slm import VallEARConfig
    >>> config = VallEARConfig(num_phonemes=40, codebook_size=64, num_codebooks=4, group_size=2)
    >>> config.eos_code_id, config.bos_code_id, config.pad_code_id, config.code_vocab_size
    (64, 65, 66, 67)

    ```
    """

    model_type = "hf_slm_valle_ar"

    def __init__(self, text_config=None, num_phonemes: int = 128, codebook_size: int = 1024, num_codebooks: int = 8,
                 group_size: int = 1, frame_rate: float | None = None, **kwargs):  # fmt: skip
        if not _is_int(group_size, 1):
            raise ValueError(f"group_size must be an int >= 1, got {group_size!r}")
        self.group_size = group_size
        super().__init__(text_config, num_phonemes, codebook_size, num_codebooks, frame_rate, **kwargs)

    @property
    def eos_code_id(self) -> int:
        return self.codebook_size

    @property
    def bos_code_id(self) -> int:
        return self.codebook_size + 1

    @property
    def pad_code_id(self) -> int:
        return self.codebook_size + 2

    @property
    def code_vocab_size(self) -> int:
        """Rows of the code embedding: codes, `<eos>`, `<bos>`, `<pad>`."""
        return self.codebook_size + 3


class VallENARConfig(_VallEConfigBase):
    r"""
    Configuration of [`VallENARModel`]: a bidirectional transformer that predicts codebook `j` (2..Q) of every frame
    at once from the phonemes, the acoustic prompt's `Q` codebooks and codebooks `1..j-1` of the frames, told `j` by
    a learned codebook-index embedding (VALL-E's NAR stage).

    Args:
        text_config (`dict` or `PretrainedConfig`, *optional*): the transformer (default: a 4-layer Llama of width
            256), run with a bidirectional attention mask.
        num_phonemes (`int`, defaults to 128): size of the phoneme vocabulary.
        codebook_size (`int`, defaults to 1024): codes per codebook.
        num_codebooks (`int`, defaults to 8): `Q`, at least 2.
        group_size (`int`, defaults to 1): frames per position (VALL-E 2's grouped code modelling, as in the AR
            model): a group's frame embeddings are concatenated and projected to one position, and the head predicts
            codebook `stage` of the group's `group_size` frames. The prompt and the target are grouped separately, each
            padded to whole groups.
        frame_rate (`float`, *optional*): frames per second of the codec.

    Example:

    ```python
    >>> from hf_slm import VallENARConfig
    >>> config = VallENARConfig(num_phonemes=40, codebook_size=64, num_codebooks=4, group_size=2)
    >>> config.num_codebooks, config.group_size
    (4, 2)

    ```
    """

    model_type = "hf_slm_valle_nar"

    def __init__(self, text_config=None, num_phonemes: int = 128, codebook_size: int = 1024, num_codebooks: int = 8,
                 frame_rate: float | None = None, group_size: int = 1, **kwargs):  # fmt: skip
        if _is_int(num_codebooks, 0) and num_codebooks < 2:
            raise ValueError(f"num_codebooks must be >= 2 for a NAR model (it predicts codebooks 2..Q), got {num_codebooks}")
        if not _is_int(group_size, 1):
            raise ValueError(f"group_size must be an int >= 1, got {group_size!r}")
        self.group_size = group_size
        super().__init__(text_config, num_phonemes, codebook_size, num_codebooks, frame_rate, **kwargs)


__all__ = ["VallEARConfig", "VallENARConfig"]
