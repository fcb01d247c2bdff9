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
    attention, and every projection a plain `nn.Linear` (not a quantised, LoRA-wrapped or otherwise patched one,
    whose forward the step would skip)."""
    config = getattr(language_model, "config", None)
    if config is None or getattr(config, "model_type", None) != "llama":
        return False
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default" or config.hidden_act != "silu":
        return False
    if getattr(config, "pretraining_tp", 1) != 1 or config._attn_implementation != "sdpa":
        return False
    decoder = language_model.get_decoder()
    projections = [language_model.get_output_embeddings(), decoder.embed_tokens]
    for layer in decoder.layers:
        attn, mlp = layer.self_attn, layer.mlp
        projections += [attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj]
        norms = (layer.input_layernorm, layer.post_attention_layernorm)
        if any(type(n).__name__ != "LlamaRMSNorm" or n._forward_hooks or n._forward_pre_hooks for n in norms):
            return False
    plain = (torch.nn.Linear, torch.nn.Embedding)
    return all(type(m) in plain and not m._forward_hooks and not m._forward_pre_hooks for m in projections)


class LeanLlamaStep:
    """`step(token [1, 1], position) -> logits [1, vocab]` of a Llama backbone, after `start(prefill_cache, length)`.

    The q / k / v and the gate / up projections run as one matrix product each (two fewer ops per layer, fused
    copies of the weights); the products are checked once, here, to equal the separate ones bit for bit on this
    machine's BLAS, else the step keeps them separate. Backbones above `max_fused_parameters` keep them separate too
    (their step is matrix work: fusing saves nothing there and would double the weights' memory).

    Args:
        language_model: the `LlamaForCausalLM` backbone (its weights are read, not modified).
        max_fused_parameters (`int`, defaults to 32M): fuse the projections below this many backbone parameters.
    """

    def __init__(self, language_model, max_fused_parameters: int = 32_000_000):
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
        small = sum(p.numel() for p in decoder.layers.parameters()) < max_fused_parameters
        self.layers = [self._layer_weights(layer, fuse=small) for layer in decoder.layers]
        self.rotary = decoder.rotary_emb
        self.dtype, self.device = self.embed.dtype, self.embed.device
        self.size = 0
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.cos = self.sin = None

    @staticmethod
    def _layer_weights(layer, fuse: bool) -> tuple:
        """(qkv, o, gate_up, down, norm1, norm2): each projection as (weight, bias) or a tuple of them if unfused."""
        attn, mlp = layer.self_attn, layer.mlp
        qkv = [(m.weight, m.bias) for m in (attn.q_proj, attn.k_proj, attn.v_proj)]
        gate_up = [(m.weight, m.bias) for m in (mlp.gate_proj, mlp.up_proj)]
        if fuse:
            qkv, gate_up = _fused(qkv), _fused(gate_up)
        return (qkv, (attn.o_proj.weight, attn.o_proj.bias), gate_up, (mlp.down_proj.weight, mlp.down_proj.bias),
                (layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon),
                (layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon))  # fmt: skip

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
        self.cos = torch.cat([c for c, _ in tables], dim=1)[0, :, None]  # [size, 1, head_dim]
        self.sin = torch.cat([s for _, s in tables], dim=1)[0, :, None]
        self.size = size

    def start(self, cache, length: int, total: int) -> None:
        """Take the prompt's keys / values from the `DynamicCache` the prefill filled (`length` positions); room for
        `total` positions in all."""
        self._allocate(total)
        for index, layer in enumerate(cache.layers):
            self.keys[index][:, :, :length].copy_(layer.keys)
            self.values[index][:, :, :length].copy_(layer.values)

    def __call__(self, token: torch.Tensor, position: int) -> torch.Tensor:
        hidden = F.embedding(token.view(1), self.embed)  # [1, hidden]: 2-D products, as the backbone's [1, 1, hidden]
        cos, sin = self.cos[position], self.sin[position]  # [1, head_dim], broadcast over heads
        heads, kv_heads, dim, end = self.num_heads, self.num_kv_heads, self.head_dim, position + 1
        for (qkv, o, gate_up, down, norm1, norm2), keys, values in zip(self.layers, self.keys, self.values):
            x = _rms_norm(hidden, *norm1)
            projected = _linear(x, qkv).view(1, heads + 2 * kv_heads, dim)
            rotated = _rotate(projected[:, : heads + kv_heads], cos, sin)  # q and k, elementwise as the backbone
            keys[0, :, position] = rotated[0, heads:]
            values[0, :, position] = projected[0, heads + kv_heads :]
            attn = F.scaled_dot_product_attention(
                rotated[:, :heads, None], keys[:, :, :end], values[:, :, :end], scale=self.scaling, enable_gqa=self.gqa
            )
            hidden = hidden + F.linear(attn.view(1, heads * dim), *o)
            gate, up = _linear(_rms_norm(hidden, *norm2), gate_up).chunk(2, dim=-1)
            hidden = hidden + F.linear(F.silu(gate) * up, *down)
        return F.linear(_rms_norm(hidden, *self.norm), *self.head)


def _fused(parts: list[tuple]) -> tuple | list:
    """One (weight, bias) for several projections of the same input, if its product equals theirs bit for bit."""
    weight = torch.cat([w for w, _ in parts])
    bias = None if parts[0][1] is None else torch.cat([b for _, b in parts])
    probe = torch.randn(1, weight.shape[1], generator=torch.Generator().manual_seed(0)).to(weight)
    separate = torch.cat([F.linear(probe, w, b) for w, b in parts], dim=-1)
    return (weight, bias) if torch.equal(F.linear(probe, weight, bias), separate) else parts


def _linear(x: torch.Tensor, weights) -> torch.Tensor:
    if isinstance(weights, tuple):
        return F.linear(x, *weights)
    return torch.cat([F.linear(x, w, b) for w, b in weights], dim=-1)


def _rms_norm(hidden: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """`LlamaRMSNorm.forward`, op for op."""
    x = hidden.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(hidden.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """`apply_rotary_pos_emb` for x [1, heads, d] (the same elementwise products as on [1, heads, 1, d])."""
    half = x.shape[-1] // 2
    return (x * cos) + (torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin)


__all__ = ["LeanLlamaStep", "lean_step_supported"]
