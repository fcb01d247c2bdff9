"""Configuration of the two-tower dialogue LM (dGSLM)."""

from __future__ import annotations

from transformers import PretrainedConfig


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


class DialogueLMConfig(PretrainedConfig):
    r"""
    Configuration of [`DialogueLMForCausalLM`], the dialogue LM of dGSLM (Nguyen et al., 2022, "Generative Spoken
    Dialogue Language Modeling"): two time-aligned unit streams, one per speaker, each read by a transformer tower;
    the two towers share their weights, and every layer has a cross-attention from one channel to the other
    (causal: frame `t` sees the other channel up to `t`); positions are rotary (RoPE) in both attentions. Both
    channels are predicted at every step with dGSLM's *edge-unit* scheme: the unit head is trained only where the
    next frame starts a new run of a unit, and a duration head predicts, at the first frame of a run (given its unit:
    dGSLM's delayed duration prediction), how many frames the run lasts (classes `1..max_duration`; longer runs are
    split into runs of at most `max_duration`).

    The defaults are a small model for 50 Hz units of 100 clusters (the embedded default's MFCC units); dGSLM itself
    is 6 layers of width 512 with 8 heads on HuBERT units (500 clusters).

    Args:
        num_units (`int`, *optional*, defaults to 100): Size of the unit vocabulary (of both channels).
        hidden_size (`int`, *optional*, defaults to 256): Width of the towers.
        num_hidden_layers (`int`, *optional*, defaults to 4): Layers of the (shared) tower.
        num_attention_heads (`int`, *optional*, defaults to 4): Heads of self- and cross-attention.
        intermediate_size (`int`, *optional*): MLP width (default `4 * hidden_size`).
        max_duration (`int`, *optional*, defaults to 32): Duration classes `1..max_duration` (frames).
        dropout (`float`, *optional*, defaults to 0.1): Dropout of attention outputs and MLPs.
        duration_loss_weight (`float`, *optional*, defaults to 1.0): Weight of the duration loss against the unit
            loss.
        silence_unit (`int`, *optional*): The unit that silence encodes to (a channel is silent while it emits it);
            recorded for generation and turn-taking measurements, not used by the forward pass.
        frame_rate (`float`, *optional*, defaults to 50.0): Frames per second of the units.
        initializer_range (`float`, *optional*, defaults to 0.02): Std of the weight initialisation.
        kwargs: Passed to [`PretrainedConfig`].

    Example:

    ```python
    >>> from hf_slm.models.dialogue_lm import DialogueLMConfig, DialogueLMForCausalLM
    >>> config = DialogueLMConfig(num_units=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    >>> config.head_dim, config.intermediate_size
    (16, 128)
    >>> model = DialogueLMForCausalLM(config)

    ```
    """

    model_type = "hf_slm_dialogue_lm"

    def __init__(
        self,
        num_units: int = 100,
        hidden_size: int = 256,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int | None = None,
        max_duration: int = 32,
        dropout: float = 0.1,
        duration_loss_weight: float = 1.0,
        silence_unit: int | None = None,
        frame_rate: float = 50.0,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        for name, value, minimum in (("num_units", num_units, 2), ("hidden_size", hidden_size, 1),
                                     ("num_hidden_layers", num_hidden_layers, 1),
                                     ("num_attention_heads", num_attention_heads, 1),
                                     ("max_duration", max_duration, 1)):  # fmt: skip
            _check_int(name, value, minimum)
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size={hidden_size} must be divisible by num_attention_heads={num_attention_heads}"
            )
        if intermediate_size is not None:
            _check_int("intermediate_size", intermediate_size, 1)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        weight = duration_loss_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"duration_loss_weight must be a number >= 0, got {duration_loss_weight!r}")
        if silence_unit is not None and (isinstance(silence_unit, bool) or not isinstance(silence_unit, int)
                                         or not 0 <= silence_unit < num_units):
            raise ValueError(f"silence_unit must be a unit id in [0, {num_units}) or None, got {silence_unit!r}")
        if isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float)) or frame_rate <= 0:
            raise ValueError(f"frame_rate must be a number > 0 (frames per second), got {frame_rate!r}")
        self.num_units = num_units
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size or 4 * hidden_size
        self.max_duration = max_duration
        self.dropout = float(dropout)
        self.duration_loss_weight = float(duration_loss_weight)
        self.silence_unit = silence_unit
        self.frame_rate = float(frame_rate)
        self.initializer_range = initializer_range
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def consumes(self) -> dict:
        """What it takes from a speech tokenizer (`hf_slm.pipelines.check_compatibility`)."""
        return {"units.num_units": self.num_units}

    @property
    def produces(self) -> dict:
        return self.consumes


__all__ = ["DialogueLMConfig"]
