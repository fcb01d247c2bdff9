"""A batch-1 decode step for Llama-family backbones, written out over the backbone's own weights.

At the sizes we ship (0.1-4M parameters) a CPU decode step is per-op Python overhead, not matrix work: the backbone's
module calls, `generate`'s input preparation, the mask and rotary recomputation cost more than the matrix products.
`LeanLlamaStep` runs the same tensor operations as `LlamaForCausalLM.forward` with the `sdpa` attention and a
`DynamicCache`, in the same order and dtype, with none of the module machinery:

- keys / values go to a pre-allocated buffer (no `torch.cat` per token), attention reads its filled prefix;
- cos / sin of every position are computed once per buffer by the backbone's own rotary module;
- no attention mask (batch 1, no padding: the query attends to every cached position, as `sdpa` does in `generate`
  with `attention_mask=None`), and only the last position's logits.

So its logits equal the backbone's bit for bit (checked in `tests/test_fast_generation.py`), and greedy or seeded
sampling picks the same tokens as `generate`.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

_BUCKET = 256  # buffers are sized in multiples of this and kept across calls


def lean_step_supported(language_model) -> bool:
    """Whether `LeanLlamaStep` reproduces this backbone exactly: a Llama causal LM with default RoPE, SiLU MLP, sdpa
    or eager-free attention and plain `nn.Linear` layers (not a quantised or PEFT-wrapped copy)."""
    config = getattr(language_model, "config", None)
    if config is None or getattr(config, "model_type", None) != "llama":
        return False
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default" or config.hidden_act != "silu":
        return False
    if getattr(config, "pretraining_tp", 1) != 1 or config._attn_implementation != "sdpa":
        return False
    decoder = language_model.get_decoder()
    linears = [m for layer in decoder.layers for m in layer.modules() if m is not layer and len(list(m.children())) == 0]
    return all(type(m).__name__ in ("Linear", "LlamaRMSNorm", "SiLU", "SiLUActivation") for m in linears) and type(
        language_model.get_output_embeddings()
    ).__name__ == "Linear"


class LeanLlamaStep:
    """`step(token [1, 1], position) -> logits [1, vocab]` of a Llama backbone, after `start(prefill_cache, length)`.

    Args:
        language_model: the `LlamaForCausalLM` backbone (weights are read, never copied).
    """

    def __init__(self, language_model):
        config = language_model.config
        decoder = language_model.get_decoder()
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.gqa = self.num_heads != self.num_kv_heads
        self.embed = decoder.embed_tokens.weight
        self.norm = (decoder.norm.weight, decoder.norm.variance_epsilon)
        head = language_model.get_output_embeddings()
        self.head = (head.weight, head.bias)
        self.layers = []
        for layer in decoder.layers:
            attn, mlp = layer.self_attn, layer.mlp
            self.layers.append(
                tuple(
                    (m.weight, getattr(m, "bias", None))
                    for m in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
                )
                + ((layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon),
                   (layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon))
            )  # fmt: skip
        self.rotary = decoder.rotary_emb
        self.dtype, self.device = self.embed.dtype, self.embed.device
        self.size = 0
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.cos = self.sin = None

    def _allocate(self, needed: int) -> None:
        if needed <= self.size:
            return
        size = _BUCKET * math.ceil(needed / _BUCKET)
        shape = (1, self.num_kv_heads, size, self.head_dim)
        self.keys = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.layers]
        self.values = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.layers]
        # the backbone's own rotary module, one position at a time (its decode-time call), so cos / sin are its values
        probe = torch.empty(0, dtype=self.dtype, device=self.device)
        tables = [self.rotary(probe, torch.tensor([[p]], device=self.device)) for p in range(size)]
        self.cos = torch.cat([c for c, _ in tables], dim=1)[:, :, None]  # [1, size, 1, head_dim]
        self.sin = torch.cat([s for _, s in tables], dim=1)[:, :, None]
        self.size = size

    def start(self, cache, length: int, total: int) -> None:
        """Take the prompt's keys / values from the `DynamicCache` the prefill filled (`length` positions); room for
        `total` positions in all."""
        self._allocate(total)
        for index, layer in enumerate(cache.layers):
            self.keys[index][:, :, :length].copy_(layer.keys)
            self.values[index][:, :, :length].copy_(layer.values)

    def __call__(self, token: torch.Tensor, position: int) -> torch.Tensor:
        hidden = F.embedding(token, self.embed)  # [1, 1, hidden]
        cos, sin = self.cos[:, position : position + 1], self.sin[:, position : position + 1]  # [1, 1, 1, d]
        end = position + 1
        for (q, k, v, o, gate, up, down, norm1, norm2), keys, values in zip(self.layers, self.keys, self.values):
            x = _rms_norm(hidden, *norm1)
            query = _rotate(F.linear(x, *q).view(1, 1, -1, self.head_dim), cos, sin).transpose(1, 2)
            key = _rotate(F.linear(x, *k).view(1, 1, -1, self.head_dim), cos, sin).transpose(1, 2)
            keys[:, :, position : end] = key
            values[:, :, position : end] = F.linear(x, *v).view(1, 1, -1, self.head_dim).transpose(1, 2)
            attn = F.scaled_dot_product_attention(
                query, keys[:, :, :end], values[:, :, :end], scale=self.scaling, enable_gqa=self.gqa
            )
            hidden = hidden + F.linear(attn.transpose(1, 2).reshape(1, 1, -1), *o)
            x = _rms_norm(hidden, *norm2)
            hidden = hidden + F.linear(F.silu(F.linear(x, *gate)) * F.linear(x, *up), *down)
        return F.linear(_rms_norm(hidden, *self.norm)[:, -1], *self.head)


def _rms_norm(hidden: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """`LlamaRMSNorm.forward`, op for op."""
    x = hidden.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(hidden.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """`apply_rotary_pos_emb` for x [1, 1, heads, d] (heads before transposing: the same elementwise products)."""
    half = x.shape[-1] // 2
    return (x * cos) + (torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin)


__all__ = ["LeanLlamaStep", "lean_step_supported"]
