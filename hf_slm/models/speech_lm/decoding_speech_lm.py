"""A batch-1 decode step for Llama-family backbones, written out over the backbone's own weights.

At the sizes we ship (0.1-4M parameters) a CPU decode step is per-op Python overhead, not matrix work: the backbone's
module calls, `generate`'s input preparation, the mask and rotary recomputation cost more than the matrix products.
`LeanLlamaStep` computes what `LlamaForCausalLM.forward` computes with the `sdpa` attention and a `DynamicCache`,
rounding for rounding (the same products and sums in the same order and dtype, in fewer calls where the result is
checked to be bit-equal), with none of the module machinery:

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

    About 25 tensor calls per layer, each chosen so that its result equals the backbone's bit for bit:

    - q / k / v and gate / up run as one matrix product each (fused copies of the weights), a projection added to
      the residual as one `addmm`, RMSNorm as 6 calls instead of 8. Each is checked once, here, against the
      backbone's own ops on this machine's BLAS with a probe, and kept as the backbone runs it where it differs
      (`addmm` and the short RMSNorm in bf16). Backbones above `max_fused_parameters` keep q / k / v and gate / up
      separate (their step is matrix work: fusing saves nothing there and would double the weights' memory).
    - one buffer per layer holds q, k and v of every position (`[positions, heads + 2 kv heads, head_dim]`): the
      rotary embedding writes into it (`x * cos`, with cos = 1 on the v rows, then `+= roll(x) * ±sin` on the q / k
      rows: `rotate_half` without its negation and concatenation), and attention reads k / v through strided views
      of it, so nothing is copied into a cache per token.

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
        self.dtype, self.device = self.embed.dtype, self.embed.device
        self.norm = _rms_norm_function(decoder.norm)
        head = language_model.get_output_embeddings()
        self.head = _projection(head.weight, head.bias)
        small = sum(p.numel() for p in decoder.layers.parameters()) < max_fused_parameters
        self.layers = [self._layer(layer, fuse=small) for layer in decoder.layers]
        self.rotary = decoder.rotary_emb
        self.size = 0
        self.buffers: list[torch.Tensor] = []  # per layer: [positions, heads + 2 kv heads, head_dim]
        self.views: list[tuple] = []  # per layer: (q [positions, 1, heads, 1, d], k / v [1, kv heads, positions, d])
        self.cos = self.sin = None

    def _layer(self, layer, fuse: bool) -> tuple:
        """(norm1, qkv, o + residual, norm2, gate_up, down + residual) as callables over this layer's weights."""
        attn, mlp = layer.self_attn, layer.mlp
        qkv = [(m.weight, m.bias) for m in (attn.q_proj, attn.k_proj, attn.v_proj)]
        gate_up = [(m.weight, m.bias) for m in (mlp.gate_proj, mlp.up_proj)]
        if fuse:
            qkv, gate_up = _fused(qkv), _fused(gate_up)
        return (
            _rms_norm_function(layer.input_layernorm),
            _projection(*qkv) if isinstance(qkv, tuple) else _concatenated(qkv),
            _residual_projection(attn.o_proj.weight, attn.o_proj.bias),
            _rms_norm_function(layer.post_attention_layernorm),
            _projection(*gate_up) if isinstance(gate_up, tuple) else _concatenated(gate_up),
            _residual_projection(mlp.down_proj.weight, mlp.down_proj.bias),
        )

    def _allocate(self, needed: int) -> None:
        if needed <= self.size:
            return
        size = _BUCKET * math.ceil(needed / _BUCKET)
        heads, kv_heads, dim = self.num_heads, self.num_kv_heads, self.head_dim
        self.buffers = [
            torch.zeros(size, heads + 2 * kv_heads, dim, dtype=self.dtype, device=self.device) for _ in self.layers
        ]
        self.views = [
            (b[:, None, :heads, None], b[:, heads : heads + kv_heads].transpose(0, 1)[None],
             b[:, heads + kv_heads :].transpose(0, 1)[None])
            for b in self.buffers
        ]  # fmt: skip
        # the backbone's own rotary module, one position at a time (its decode-time call), so cos / sin are its values
        probe = torch.empty(0, dtype=self.dtype, device=self.device)
        tables = [self.rotary(probe, torch.tensor([[p]], device=self.device)) for p in range(size)]
        cos = torch.cat([c for c, _ in tables], dim=1)[0, :, None]  # [size, 1, head_dim]
        sin = torch.cat([s for _, s in tables], dim=1)[0, :, None]
        half = dim // 2
        ones = torch.ones(size, kv_heads, dim, dtype=self.dtype, device=self.device)
        self.cos = torch.cat([cos.expand(size, heads + kv_heads, dim), ones], dim=1)  # v rows: x * 1 = x
        self.sin = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)  # roll(x) * this = rotate_half(x) * sin
        self.size = size

    def start(self, cache, length: int, total: int) -> None:
        """Take the prompt's keys / values from the `DynamicCache` the prefill filled (`length` positions); room for
        `total` positions in all."""
        self._allocate(total)
        for (_, keys, values), layer in zip(self.views, cache.layers):
            keys[:, :, :length].copy_(layer.keys)
            values[:, :, :length].copy_(layer.values)

    def __call__(self, token: torch.Tensor, position: int) -> torch.Tensor:
        hidden = torch.index_select(self.embed, 0, token.view(1))  # [1, hidden]: 2-D products as on [1, 1, hidden]
        cos, sin = self.cos[position], self.sin[position]
        rotated, half, end = self.num_heads + self.num_kv_heads, self.head_dim // 2, position + 1
        shape = (self.num_heads + 2 * self.num_kv_heads, self.head_dim)
        for (norm1, qkv, o, norm2, gate_up, down), buffer, (queries, keys, values) in zip(
            self.layers, self.buffers, self.views
        ):
            projected = qkv(norm1(hidden)).view(shape)
            row = torch.mul(projected, cos, out=buffer[position])  # q, k, v of this position, q / k half-rotated
            row[:rotated].add_(projected[:rotated].roll(half, -1).mul_(sin))
            attn = F.scaled_dot_product_attention(
                queries[position], keys[:, :, :end], values[:, :, :end], scale=self.scaling, enable_gqa=self.gqa
            )
            hidden = o(hidden, attn.view(1, -1))
            gate, up = gate_up(norm2(hidden)).chunk(2, dim=-1)
            hidden = down(hidden, F.silu(gate).mul_(up))
        return self.head(self.norm(hidden))


def _fused(parts: list[tuple]) -> tuple | list:
    """One (weight, bias) for several projections of the same input, if its product equals theirs bit for bit."""
    weight = torch.cat([w for w, _ in parts])
    bias = None if parts[0][1] is None else torch.cat([b for _, b in parts])
    probe = _probe(1, weight.shape[1], weight)
    separate = torch.cat([F.linear(probe, w, b) for w, b in parts], dim=-1)
    return (weight, bias) if torch.equal(F.linear(probe, weight, bias), separate) else parts


def _probe(rows: int, columns: int, like: torch.Tensor, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, columns, generator=torch.Generator().manual_seed(seed)).to(like)


def _projection(weight: torch.Tensor, bias: torch.Tensor | None):
    """`F.linear` on [1, in]: `mm` with the transposed weight (what `F.linear` calls, one dispatch fewer)."""
    transposed = weight.t()
    if bias is None:
        return lambda x: torch.mm(x, transposed)
    return lambda x: torch.addmm(bias, x, transposed)


def _concatenated(parts: list[tuple]):
    projections = [_projection(w, b) for w, b in parts]
    return lambda x: torch.cat([p(x) for p in projections], dim=-1)


def _residual_projection(weight: torch.Tensor, bias: torch.Tensor | None):
    """`hidden + F.linear(x, weight, bias)`: one `addmm` where that is bit-equal on this machine (checked with a
    probe; it is for fp32 on MKL), else the two ops."""
    transposed = weight.t()
    if bias is None:
        hidden, x = _probe(1, weight.shape[0], weight, 1), _probe(1, weight.shape[1], weight, 2)
        if torch.equal(torch.addmm(hidden, x, transposed), hidden + F.linear(x, weight)):
            return lambda hidden, x: torch.addmm(hidden, x, transposed)
    return lambda hidden, x: hidden + F.linear(x, weight, bias)


def _rms_norm_function(norm):
    """`LlamaRMSNorm.forward` in 6 calls where that is bit-equal (checked with a probe: it is in fp32), else op for
    op. The 6 calls: x * rsqrt(eps + sum(x^2) / n) * weight (`mean` is `sum` then `div_`, and `addcdiv` adds eps
    in the same rounding step as `+ eps`); `F.rms_norm` is bit-equal in fp32 too but runs ~10 ops inside."""
    weight, eps = norm.weight, norm.variance_epsilon
    size = torch.tensor(float(weight.shape[0]), dtype=weight.dtype, device=weight.device)
    epsilon = torch.tensor(eps, dtype=weight.dtype, device=weight.device)

    def short(hidden):
        variance = torch.addcdiv(epsilon, hidden.pow(2).sum(-1, keepdim=True), size)
        return torch.mul(hidden, torch.rsqrt(variance)).mul_(weight)

    probe = _probe(64, weight.shape[0], weight) * torch.logspace(-3, 3, 64, dtype=weight.dtype)[:, None]
    if weight.dtype == torch.float32 and torch.equal(short(probe), _rms_norm(probe, weight, eps)):
        return short
    return lambda hidden: _rms_norm(hidden, weight, eps)


def _rms_norm(hidden: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """`LlamaRMSNorm.forward`, op for op."""
    x = hidden.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(hidden.dtype)


__all__ = ["LeanLlamaStep", "lean_step_supported"]
