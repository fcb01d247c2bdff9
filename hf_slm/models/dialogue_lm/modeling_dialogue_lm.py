"""`DialogueLMForCausalLM`: dGSLM's dialogue LM, two weight-sharing transformer towers over the time-aligned unit
streams of two speakers with cross-attention between them, edge-unit and duration prediction."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_dialogue_lm import DialogueLMConfig


@dataclass
class DialogueLMOutput(ModelOutput):
    """
    Output of [`DialogueLMForCausalLM`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): `unit_loss + duration_loss_weight * duration_loss`.
        unit_loss (`torch.FloatTensor`, *optional*): mean cross-entropy of the edge units (frames that start a run).
        duration_loss (`torch.FloatTensor`, *optional*): mean cross-entropy of the run durations.
        unit_logits (`torch.FloatTensor` of shape `(batch, 2, length, num_units)`): scores of the unit that starts
            the next run, at the last frame of a run.
        duration_logits (`torch.FloatTensor` of shape `(batch, 2, length, max_duration)`): at the first frame of a
            run, scores of its length (class `d - 1` for `d` frames).
        cache (`list[dict]`, *optional*): per layer, the keys and values of both channels (for `generate`).
    """

    loss: torch.FloatTensor | None = None
    unit_loss: torch.FloatTensor | None = None
    duration_loss: torch.FloatTensor | None = None
    unit_logits: torch.FloatTensor | None = None
    duration_logits: torch.FloatTensor | None = None
    cache: list | None = None


def edge_targets(units: torch.Tensor, valid: torch.Tensor, max_duration: int) -> tuple[torch.Tensor, torch.Tensor]:
    """dGSLM's edge-unit targets of unit streams `[..., L]` (`valid`: real frames, right padding).

    A *run* is a stretch of one repeated unit, split into runs of at most `max_duration` frames. Returns `(unit
    targets, duration targets)`, both `[..., L]` with -100 where there is none: position `t` has the unit target
    `units[t + 1]` when frame `t + 1` starts a run, and a run's first frame `t` has the duration target `length - 1`
    (runs at the first or last real frame are left out: the sequence may cut them).
    """
    length = units.shape[-1]
    index = torch.arange(length, device=units.device).expand_as(units)
    change = torch.ones_like(valid, dtype=torch.bool)
    change[..., 1:] = (units[..., 1:] != units[..., :-1]) | (valid[..., 1:] != valid[..., :-1])
    run_start = torch.where(change, index, 0).cummax(-1).values
    following = torch.where(change, index, length).flip(-1).cummin(-1).values.flip(-1)  # next change at or after t
    run_end = torch.cat([following[..., 1:], torch.full_like(following[..., :1], length)], dim=-1)
    offset = index - run_start
    starts = (offset % max_duration == 0) & valid
    duration = torch.minimum(run_end - index, torch.full_like(index, max_duration))
    last_real = valid.long().sum(-1, keepdim=True)
    whole = (run_start > 0) & (run_end < last_real)
    duration_targets = torch.where(starts & whole, duration - 1, -100)
    unit_targets = torch.full_like(units, -100)
    unit_targets[..., :-1] = torch.where(starts[..., 1:], units[..., 1:], -100)
    return unit_targets, duration_targets


def _rotate(x: torch.Tensor, positions: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding of `x` `[B, heads, L, head_dim]` at `positions` `[L]`: attention scores then depend
    on how far apart two frames are, which is what lets a channel find the other's current frame quickly."""
    half = x.shape[-1] // 2
    freq = theta ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = positions.float()[:, None] * freq[None]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    first, second = x[..., :half], x[..., half : 2 * half]
    return torch.cat([first * cos - second * sin, first * sin + second * cos, x[..., 2 * half :]], dim=-1)


class DialogueLMAttention(nn.Module):
    def __init__(self, config: DialogueLMConfig):
        super().__init__()
        size = config.hidden_size
        self.num_heads, self.head_dim = config.num_attention_heads, config.head_dim
        self.q_proj, self.k_proj = nn.Linear(size, size), nn.Linear(size, size)
        self.v_proj, self.o_proj = nn.Linear(size, size), nn.Linear(size, size)

    def split(self, x):
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def keys_values(self, x, positions):
        return _rotate(self.split(self.k_proj(x)), positions), self.split(self.v_proj(x))

    def forward(self, x, keys, values, positions):
        """Causal attention of `x` (the last positions) to `keys` / `values` (all positions so far)."""
        queries = _rotate(self.split(self.q_proj(x)), positions)
        past = keys.shape[2] - queries.shape[2]
        mask = None
        if queries.shape[2] > 1:
            rows = torch.arange(queries.shape[2], device=x.device)[:, None] + past
            mask = torch.arange(keys.shape[2], device=x.device)[None, :] <= rows
        out = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(x.shape))


class DialogueLMLayer(nn.Module):
    """Self-attention over the own channel, cross-attention to the other channel, MLP (pre-norm, residual)."""

    def __init__(self, config: DialogueLMConfig):
        super().__init__()
        size = config.hidden_size
        self.self_norm, self.cross_norm, self.mlp_norm = nn.LayerNorm(size), nn.LayerNorm(size), nn.LayerNorm(size)
        self.self_attn, self.cross_attn = DialogueLMAttention(config), DialogueLMAttention(config)
        self.mlp = nn.Sequential(nn.Linear(size, config.intermediate_size), nn.GELU(),
                                 nn.Linear(config.intermediate_size, size))  # fmt: skip
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, positions, cache: dict | None):
        """`x` is `[2B, L, H]` (rows `2b` and `2b + 1` are the two channels of dialogue `b`) at `positions` `[L]`."""
        h = self.self_norm(x)
        keys, values = self.self_attn.keys_values(h, positions)
        h = self.cross_norm(x)  # the other channel's keys come from its own normed states, channels swapped
        cross_keys, cross_values = self.cross_attn.keys_values(h, positions)
        if cache is not None:
            if "self" in cache:
                keys = torch.cat([cache["self"][0], keys], dim=2)
                values = torch.cat([cache["self"][1], values], dim=2)
                cross_keys = torch.cat([cache["cross"][0], cross_keys], dim=2)
                cross_values = torch.cat([cache["cross"][1], cross_values], dim=2)
            cache["self"], cache["cross"] = (keys, values), (cross_keys, cross_values)
        x = x + self.dropout(self.self_attn(self.self_norm(x), keys, values, positions))
        x = x + self.dropout(self.cross_attn(h, _swap_channels(cross_keys), _swap_channels(cross_values), positions))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


def _swap_channels(x: torch.Tensor) -> torch.Tensor:
    return x.view(-1, 2, *x.shape[1:]).flip(1).reshape(x.shape)


class DialogueLMPreTrainedModel(PreTrainedModel):
    config_class = DialogueLMConfig
    base_model_prefix = "dialogue_lm"
    main_input_name = "input_ids"
    _supports_sdpa = True
    accepts_loss_kwargs = False  # the losses are means

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class DialogueLMForCausalLM(DialogueLMPreTrainedModel):
    r"""
    dGSLM's dialogue LM (see [`DialogueLMConfig`]). `input_ids` are the two channels' frame-level units `[B, 2, L]`
    (not deduplicated: the channels stay aligned in time); one tower (shared weights) reads each channel, attending
    to its own past and, through cross-attention, to the other channel's past and present. `generate` continues a
    two-channel prompt run by run: at the end of a run it samples the next unit, at its start its duration.
    """

    def __init__(self, config: DialogueLMConfig):
        super().__init__(config)
        self.embed_units = nn.Embedding(config.num_units, config.hidden_size)
        self.layers = nn.ModuleList([DialogueLMLayer(config) for _ in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(config.hidden_size)
        self.unit_head = nn.Linear(config.hidden_size, config.num_units, bias=False)
        self.duration_head = nn.Linear(config.hidden_size, config.max_duration, bias=False)
        self.dropout = nn.Dropout(config.dropout)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_units

    def set_input_embeddings(self, value: nn.Module):
        self.embed_units = value

    def _check_units(self, units: torch.Tensor, name: str, allow_ignore: bool = False):
        if units.dim() != 3 or units.shape[1] != 2:
            raise ValueError(f"{name} must be [batch, 2 channels, frames], got shape {tuple(units.shape)}")
        if units.is_floating_point() or units.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer unit ids, got dtype {units.dtype}")
        if torch.compiler.is_compiling() or torch.compiler.is_exporting():
            return
        real = units[units != -100] if allow_ignore else units
        if real.numel() and (int(real.min()) < 0 or int(real.max()) >= self.config.num_units):
            bad = int(real.min()) if int(real.min()) < 0 else int(real.max())
            raise ValueError(f"{name} holds unit id {bad}, outside [0, {self.config.num_units})")

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        cache: list | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> DialogueLMOutput | tuple:
        r"""
        Args:
            input_ids (`LongTensor` `[B, 2, L]`): units of both channels, frame by frame.
            attention_mask (`Tensor` `[B, L]`, *optional*): 1 for real frames (right padding; attention is causal,
                so padding only matters for the loss).
            labels (`LongTensor` `[B, 2, L]`, *optional*): usually `input_ids` (-100 on padding); the edge-unit and
                duration targets are derived from it (`edge_targets`).
            cache (`list`, *optional*): from an earlier call with `use_cache=True`; `input_ids` are then the frames
                after it.
        """
        return_dict = kwargs.pop("return_dict", None)
        kwargs.pop("num_items_in_batch", None)
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        self._check_units(input_ids, "input_ids")
        batch, _, length = input_ids.shape
        past = 0 if not cache else cache[0]["self"][0].shape[2]
        if use_cache and cache is None:
            cache = [{} for _ in self.layers]
        positions = torch.arange(past, past + length, device=input_ids.device)
        x = self.embed_units(input_ids).reshape(batch * 2, length, -1)
        x = self.dropout(x)
        for index, layer in enumerate(self.layers):
            x = layer(x, positions, cache[index] if use_cache else None)
        x = self.norm(x).view(batch, 2, length, -1)
        unit_logits, duration_logits = self.unit_head(x), self.duration_head(x)

        loss = unit_loss = duration_loss = None
        if labels is not None:
            self._check_units(labels, "labels", allow_ignore=True)
            valid = labels != -100
            if attention_mask is not None:
                valid &= attention_mask[:, None].to(labels.device).bool()
            unit_targets, duration_targets = edge_targets(labels.clamp(min=0), valid, self.config.max_duration)
            unit_loss = F.cross_entropy(unit_logits.float().flatten(0, 2), unit_targets.flatten(), ignore_index=-100)
            duration_loss = F.cross_entropy(duration_logits.float().flatten(0, 2), duration_targets.flatten(),
                                            ignore_index=-100)  # fmt: skip
            unit_loss, duration_loss = unit_loss.nan_to_num(0.0), duration_loss.nan_to_num(0.0)  # no target: 0
            loss = unit_loss + self.config.duration_loss_weight * duration_loss
        output = DialogueLMOutput(loss=loss, unit_loss=unit_loss, duration_loss=duration_loss,
                                  unit_logits=unit_logits, duration_logits=duration_logits,
                                  cache=cache if use_cache else None)  # fmt: skip
        return output if return_dict is not False else output.to_tuple()

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: torch.Tensor,
        max_new_frames: int = 250,
        do_sample: bool = True,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.LongTensor:
        """
        Continue a two-channel prompt `[B, 2, T]` (`T >= 1`) by `max_new_frames` frames of both channels.

        Run by run, as dGSLM generates: each channel's last prompt frame ends a run; at the end of a run the next
        unit is drawn from the unit head, then its duration (frames) from the duration head at that run's first
        frame; the unit is repeated for that many frames while the other channel goes on. Greedy when
        `do_sample=False`.

        Returns:
            `LongTensor` `[B, 2, max_new_frames]`: the new frames only.
        """
        if isinstance(max_new_frames, bool) or not isinstance(max_new_frames, int) or max_new_frames < 1:
            raise ValueError(f"max_new_frames must be an int >= 1, got {max_new_frames!r}")
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        prompt_ids = torch.as_tensor(prompt_ids).to(self.device)
        self._check_units(prompt_ids, "prompt_ids")
        if prompt_ids.shape[-1] < 1:
            raise ValueError("prompt_ids needs at least one frame of both channels")

        def pick(logits):
            logits = logits.float() / temperature
            if top_k:
                threshold = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
                logits = logits.masked_fill(logits < threshold, float("-inf"))
            if not do_sample:
                return logits.argmax(-1)
            flat = torch.multinomial(logits.softmax(-1).flatten(0, -2), 1, generator=generator)
            return flat.view(logits.shape[:-1])

        out = self(input_ids=prompt_ids, use_cache=True)
        cache, current = out.cache, prompt_ids[:, :, -1]
        remaining = torch.zeros_like(current)  # frames left in each channel's current run
        frames = []
        for _ in range(max_new_frames):
            new_run = remaining <= 0
            current = torch.where(new_run, pick(out.unit_logits[:, :, -1]), current)
            frames.append(current)
            out = self(input_ids=current[:, :, None], cache=cache, use_cache=True)
            durations = pick(out.duration_logits[:, :, -1]) + 1
            remaining = torch.where(new_run, durations, remaining) - 1
        return torch.stack(frames, dim=-1)


__all__ = ["DialogueLMForCausalLM", "DialogueLMOutput", "DialogueLMPreTrainedModel", "edge_targets"]
