"""Fast batch-1 streaming decode for `SpeechLMForCausalLM`, and VALL-E 2's repetition-aware sampling.

`generate()` spends most of a batch-1 step outside the network: it rebuilds model inputs, masks and stopping criteria
in Python every token. `FastUnitGenerator` keeps one pre-allocated KV cache and runs a lean loop (prefill once, then
one backbone call per token); on CUDA the decode step is compiled with `torch.compile(mode="reduce-overhead")`
(CUDA graphs) over a `StaticCache`, and the greedy choice stays on the GPU, so the host only synchronises to hand
units out. On CPU, for Llama backbones, each token runs `LeanLlamaStep` (the backbone's operations written out over
its weights, keys / values in a pre-allocated buffer, no mask, no module calls; bit-identical logits); other backbones
use their `DynamicCache`. `compile=True` compiles on CPU too (inductor C++), which pays off for long generations only.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterator

import torch
from transformers import (
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
    StaticCache,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .configuration_speech_lm import as_unit_sequences
from .decoding_speech_lm import LeanLlamaStep, lean_step_supported
from .modeling_speech_lm import SpeechLMForCausalLM

#: Fallbacks of `generate()` for sampling parameters that neither the call nor the model's generation config sets.
_GENERATE_DEFAULTS = {"temperature": 1.0, "top_k": 50, "top_p": 1.0}
_CACHE_BUCKET = 256  # static caches are sized in multiples of this, so that compiled graphs are reused across calls


class RepetitionAwareSamplingLogitsProcessor(LogitsProcessor):
    r"""
    Repetition-aware sampling (RAS) of VALL-E 2 (Chen et al., 2024, Algorithm 1), as a logits processor.

    For each row: draw a candidate `y` by nucleus sampling (`top_p`, optionally `top_k`, after `temperature`);
    compute its repetition ratio `r = #{y in the last window_size tokens} / window_size`; if `r >= threshold`,
    replace `y` by a draw from the *full* distribution (random sampling), which breaks the loops that nucleus
    sampling falls into on codec / unit tokens. The paper's defaults are `top_p=0.8`, `window_size=10`,
    `threshold=0.1` (a single repeat in the window triggers the fallback).

    RAS is a sampling procedure, not a reshaping of the distribution, so this processor *performs* it and returns
    scores that keep only the chosen token (0 there, -inf elsewhere). Whatever decodes those scores afterwards
    (greedy, multinomial, the temperature / top-k / top-p warpers of `generate`) picks exactly that token, so it
    works inside `generate(do_sample=True or False)`, `generate_units`, [`FastUnitGenerator`] and the multi-stream
    model's `generate`. Put it last among the processors that reshape scores (`generate` applies user processors
    before its own warpers, which is what we want). `output_scores` then shows the one-hot scores.

    Args:
        top_p (`float`, defaults to 0.8): nucleus mass of the candidate draw.
        window_size (`int`, defaults to 10): `K`, how many previous tokens the ratio counts over (fewer at the start
            of a sequence; the ratio is still divided by `K`, as in the paper).
        threshold (`float`, defaults to 0.1): `t_r`; the fallback fires when `r >= t_r`.
        top_k (`int`, *optional*): also restrict the candidate draw to the top-k tokens (CosyVoice uses 25).
        temperature (`float`, defaults to 1.0): applied to the scores of both draws.
        generator (`torch.Generator`, *optional*): random generator of both draws (default: the global one).

    After each call `last_fallback` (`BoolTensor` `[batch]`) tells which rows took the random-sampling branch.
    """

    def __init__(
        self,
        top_p: float = 0.8,
        window_size: int = 10,
        threshold: float = 0.1,
        top_k: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ):
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
        if not isinstance(window_size, int) or isinstance(window_size, bool) or window_size < 1:
            raise ValueError(f"window_size must be an int >= 1, got {window_size!r}")
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be an int >= 1 or None, got {top_k!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.top_p, self.window_size, self.threshold = top_p, window_size, threshold
        self.temperature, self.generator = temperature, generator
        nucleus = [TopKLogitsWarper(top_k)] if top_k is not None else []
        self.nucleus = LogitsProcessorList(nucleus + ([TopPLogitsWarper(top_p)] if top_p < 1 else []))
        self.last_fallback: torch.BoolTensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float() / self.temperature
        candidate = self._draw(self.nucleus(input_ids, scores))
        window = input_ids[:, -self.window_size :]
        repeats = (window == candidate[:, None]).sum(-1)
        # r >= t_r, compared in integers: repeats >= t_r * K (up to float rounding of the product)
        fallback = repeats >= math.ceil(self.threshold * self.window_size - 1e-9)
        if bool(fallback.any()):
            candidate = torch.where(fallback, self._draw(scores), candidate)
        self.last_fallback = fallback
        chosen = torch.full_like(scores, -float("inf"))
        return chosen.scatter_(1, candidate[:, None], 0.0)

    def _draw(self, scores: torch.Tensor) -> torch.LongTensor:
        return torch.multinomial(scores.softmax(-1), 1, generator=self.generator)[:, 0]


class FastUnitGenerator:
    r"""
    Batch-1 streaming speech continuation for a [`SpeechLMForCausalLM`]: `stream()` yields units as they are
    produced (for a pipeline or a Space), `generate()` returns them all. The semantics are `generate_units`':
    the same `<s> [task] [Speech] prompt` input, only units and `</s>` allowed (less the model's
    `generation_config.suppress_tokens`, read at construction), stop at `</s>` or
    `max_new_tokens`, and the same processors in the same order (allowed tokens, your `logits_processor`,
    temperature, top-k, top-p, with `None` falling back to the model's generation config, then to `generate`'s
    defaults). Greedy decoding gives `generate_units`' units token for token.

    Args:
        model ([`SpeechLMForCausalLM`]): the model (its device and dtype are used as they are).
        compile (`bool` or `"auto"`, defaults to `"auto"`): compile the decode step with `torch.compile`
            (`mode="reduce-overhead"`, i.e. CUDA graphs, on CUDA; inductor's default mode elsewhere). `"auto"`
            compiles on CUDA only: on a CPU the first call then pays the compilation (about a minute on 2 cores)
            before it is faster, see `docs/benchmarks.md`. Falls back to eager with a warning if compilation fails.
        cache_implementation (`str`, defaults to `"auto"`): `"lean"` (a decode step written out over the backbone's
            weights with a pre-allocated key / value buffer, [`LeanLlamaStep`]: Llama backbones, eager; its logits equal
            the backbone's bit for bit), `"static"` (pre-allocated `StaticCache`, needed for compiling), `"dynamic"`
            (`DynamicCache`) or `"auto"` (static when compiling, else lean where supported, else dynamic).
        max_cache_len (`int`, *optional*): size of the static cache; by default each call's prompt + new tokens,
            rounded up to a multiple of 256 and kept for later calls (one compiled graph per size).
        weights_dtype (`str`, *optional*): decode with a lighter copy of the backbone instead of the model itself,
            for CPUs, where a batch-1 step of a 100M+ model is bound by reading the weights: `"bfloat16"` (a bf16
            copy) or `"int8"` (fp32 model on CPU only: `torch.ao` dynamic int8 quantisation, per output channel, of
            the backbone's `nn.Linear` layers; embeddings and the LM head stay as they are). This changes the
            numerics, so greedy units are no longer `generate_units`' token for token; `docs/benchmarks.md` gives
            speed and agreement at 115M. The copy is made once, here (it briefly holds both models in memory), and
            the model itself is left untouched. `None` (default) decodes with the model as it is.

    Example:

    ```python
    >>> import torch
    >>> from hf_slm import SpeechLMConfig, SpeechLMForCausalLM
    >>> from hf_slm.models.speech_lm import FastUnitGenerator
    >>> model = SpeechLMForCausalLM(SpeechLMConfig(num_units=100)).eval()
    >>> fast = FastUnitGenerator(model)
    >>> units = fast.generate(torch.tensor([1, 2, 3]), max_new_tokens=5, do_sample=False)
    >>> units.equal(model.generate_units(torch.tensor([1, 2, 3]), max_new_tokens=5, do_sample=False)[0])
    True
    >>> for unit in fast.stream([1, 2, 3], max_new_tokens=3):  # ints, as soon as they are sampled
    ...     pass

    ```
    """

    def __init__(
        self,
        model: SpeechLMForCausalLM,
        compile: bool | str = "auto",
        cache_implementation: str = "auto",
        max_cache_len: int | None = None,
        weights_dtype: str | None = None,
    ):
        if not hasattr(model, "language_model") or not hasattr(model.config, "vocab_layout"):
            raise ValueError(f"FastUnitGenerator needs a SpeechLMForCausalLM, got {type(model).__name__}")
        if compile not in (True, False, "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {compile!r}")
        if cache_implementation not in ("auto", "lean", "static", "dynamic"):
            raise ValueError(
                f"cache_implementation must be 'auto', 'lean', 'static' or 'dynamic', got {cache_implementation!r}"
            )
        if max_cache_len is not None and (not isinstance(max_cache_len, int) or max_cache_len < 2):
            raise ValueError(f"max_cache_len must be an int >= 2, got {max_cache_len!r}")
        if weights_dtype not in (None, "bfloat16", "int8"):
            raise ValueError(f"weights_dtype must be None, 'bfloat16' or 'int8', got {weights_dtype!r}")
        self.model = model
        self.weights_dtype = weights_dtype
        #: the backbone that decodes: the model's own, or its bf16 / int8 copy
        self.language_model = _lighter_copy(model.language_model, weights_dtype)
        self.compile = model.device.type == "cuda" if compile == "auto" else compile
        lean = weights_dtype != "int8" and lean_step_supported(self.language_model)
        if cache_implementation == "auto":
            cache_implementation = "static" if self.compile else "lean" if lean else "dynamic"
        if cache_implementation == "lean" and (self.compile or not lean):
            raise ValueError(
                "cache_implementation='lean' needs a Llama backbone (default RoPE, SiLU, sdpa), compile=False and "
                f"no int8 weights; got {type(self.language_model).__name__}, compile={self.compile}"
            )
        if self.compile and weights_dtype == "int8":
            raise ValueError(
                "weights_dtype='int8' runs eagerly only (a compiled int8 step measured 2x slower than eager on CPU)"
            )
        if self.compile and cache_implementation != "static":
            raise ValueError("compile=True needs cache_implementation='static' (a compiled step needs fixed shapes)")
        self.cache_implementation = cache_implementation
        self.max_cache_len = max_cache_len
        layout = model.config.vocab_layout
        self.eos_token_id = layout.eos_token_id
        self.unit_token_offset = layout.unit_token_offset
        allowed = torch.full((model.config.vocab_size,), -float("inf"))
        allowed[layout.unit_token_offset : layout.special_token_offset] = 0.0
        allowed[layout.eos_token_id] = 0.0
        # generate's SuppressTokensLogitsProcessor (config.suppressed_token_ids land there), read once, here
        suppressed = getattr(getattr(model, "generation_config", None), "suppress_tokens", None) or []
        allowed[list(suppressed)] = -float("inf")
        self._allowed_bias = allowed.to(model.device)  # adding it = AllowedTokensLogitsProcessor's masked_fill
        self._cache: StaticCache | None = None
        self._cache_size = 0
        self._cache_in_use = None  # the cache of the running call, read by the (compiled) step
        self._compiled: dict[str, object] = {}
        self._lean = LeanLlamaStep(self.language_model) if cache_implementation == "lean" else None

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def stream(
        self,
        units_prompt=None,
        max_new_tokens: int = 100,
        do_sample: bool = True,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        logits_processor: LogitsProcessorList | list | None = None,
        task: str | None = None,
        sync_every: int | None = None,
    ) -> Iterator[int]:
        """
        Yield the continuation's units one by one (Python ints), stopping at `</s>` or after `max_new_tokens`.

        Args:
            units_prompt: one prompt (`[T]` / `[1, T]` tensor, list of ints, or a list holding one sequence);
                `None` or empty generates unconditionally.
            max_new_tokens, do_sample, temperature, top_k, top_p, logits_processor, task: as in `generate_units`.
            sync_every (`int`, *optional*): read generated tokens back to the host every this many steps (default
                1 on CPU, 8 on CUDA, where the GPU then runs ahead of Python; a few steps past `</s>` may be
                computed and dropped).
        """
        input_ids = self._prompt_ids(units_prompt, task)
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
        if sync_every is None:
            sync_every = 8 if input_ids.device.type == "cuda" else 1
        processors = LogitsProcessorList(logits_processor or [])
        warpers = self._warpers(do_sample, temperature, top_k, top_p)
        prompt_len = input_ids.shape[1]
        total = prompt_len + max_new_tokens
        history = torch.empty((1, total), dtype=torch.long, device=input_ids.device)
        history[:, :prompt_len] = input_ids
        fused = not processors  # nothing needs the host-side history: choose inside the (compiled) step
        step = self._step_function(fused and not do_sample, warpers if fused else LogitsProcessorList())
        cache = self._new_cache(total)

        lm = self.language_model
        logits = lm(input_ids=input_ids, cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
        if self._lean is not None:
            self._lean.start(cache, prompt_len, total)
        position = torch.full((1, 1), prompt_len, dtype=torch.long, device=input_ids.device)
        scores = logits.float() + self._allowed_bias
        next_token = self._choose(scores, history[:, :prompt_len], processors, warpers, do_sample)
        flushed = prompt_len
        for i in range(max_new_tokens):
            history[:, prompt_len + i] = next_token[:, 0]
            end = prompt_len + i + 1
            if end - flushed >= sync_every or end == total:
                for token in history[0, flushed:end].tolist():
                    if token == self.eos_token_id:
                        return
                    yield token - self.unit_token_offset
                flushed = end
            if end == total:
                return
            output = step(next_token, position, end - 1)
            if self._lean is None:  # the lean step takes the position as an int
                position = position + 1
            if fused and not do_sample:
                next_token = output.clone() if self.compile else output  # a compiled graph reuses its output
            else:
                scores = output.float() if fused else output.float() + self._allowed_bias
                next_token = self._choose(
                    scores, history[:, :end], processors, None if fused else warpers, do_sample, checked=True
                )

    def generate(self, units_prompt=None, max_new_tokens: int = 100, **kwargs) -> torch.LongTensor:
        """All units of [`~FastUnitGenerator.stream`] as one 1-D `LongTensor` (the continuation only)."""
        units = list(self.stream(units_prompt, max_new_tokens=max_new_tokens, **kwargs))
        return torch.tensor(units, dtype=torch.long)

    # ------------------------------------------------------------------ internals
    def _prompt_ids(self, units_prompt, task) -> torch.LongTensor:
        if units_prompt is None:
            units_prompt = torch.zeros(0, dtype=torch.long)
        if isinstance(units_prompt, (list, tuple)) and not units_prompt:
            units_prompt = torch.zeros(0, dtype=torch.long)
        sequences = as_unit_sequences(units_prompt)
        if len(sequences) != 1:
            raise ValueError(
                f"FastUnitGenerator decodes one prompt at a time (batch 1), got {len(sequences)}; use "
                "model.generate_units for batches"
            )
        input_ids, _ = self.model.units_to_input_ids(sequences, padding_side="left", task=task)
        return input_ids

    def _warpers(self, do_sample, temperature, top_k, top_p) -> LogitsProcessorList:
        """`generate`'s sampling warpers, with `None` resolved as `generate` does (generation config, defaults)."""
        warpers = LogitsProcessorList()
        if not do_sample:
            return warpers
        config = getattr(self.model, "generation_config", None)
        values = {}
        for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p)):
            if value is None:
                value = getattr(config, name, None)
            values[name] = _GENERATE_DEFAULTS[name] if value is None else value
        if values["temperature"] != 1.0:
            warpers.append(TemperatureLogitsWarper(values["temperature"]))
        if values["top_k"] != 0:
            warpers.append(TopKLogitsWarper(top_k=values["top_k"]))
        if values["top_p"] < 1.0:
            warpers.append(TopPLogitsWarper(top_p=values["top_p"]))
        return warpers

    @staticmethod
    def _choose(scores, history, processors, warpers, do_sample, checked: bool = False) -> torch.LongTensor:
        """`generate`'s token choice: processors, warpers, then multinomial or argmax -> `[1, 1]`. `checked`: the
        processors already ran once through `LogitsProcessorList` (which checks their signatures), so apply them
        directly (the list inspects every processor's signature on every call, ~30 us each)."""
        apply = _apply if checked else lambda processors, history, scores: processors(history, scores)
        if processors:
            scores = apply(processors, history, scores)
        if warpers:
            scores = apply(warpers, history, scores)
        if do_sample:
            return torch.multinomial(scores.softmax(-1), num_samples=1)
        return scores.argmax(-1, keepdim=True)

    def _new_cache(self, needed: int):
        config = self.language_model.config
        if self.cache_implementation in ("dynamic", "lean"):  # lean: the prefill's cache, copied into its buffer
            self._cache_in_use = DynamicCache(config=config)
            return self._cache_in_use
        size = self.max_cache_len or _CACHE_BUCKET * math.ceil(needed / _CACHE_BUCKET)
        if needed > size:
            raise ValueError(f"prompt + max_new_tokens = {needed} tokens do not fit max_cache_len={size}")
        if self._cache is None or self._cache_size < size:
            self._cache, self._cache_size = StaticCache(config=config, max_cache_len=size), size
            self._compiled.clear()  # new cache tensors: the compiled graphs must be rebuilt
        else:
            self._cache.reset()
        self._cache_in_use = self._cache
        return self._cache

    def _step_function(self, greedy: bool, warpers: LogitsProcessorList):
        """One decode step `(token [1, 1], position [1, 1], position as an int) -> next token [1, 1]` (greedy, fused)
        or scores."""
        lm, bias, lean = self.language_model, self._allowed_bias, self._lean

        def step(token, position):
            if lean is not None:
                logits = lean(token, position)
            else:
                logits = lm(
                    input_ids=token, position_ids=position, cache=self._cache_in_use, use_cache=True
                ).logits[:, -1]
            if greedy:
                return (logits.float() + bias).argmax(-1, keepdim=True)
            if warpers:  # fused sampling: allowed tokens + warpers inside the graph, the draw outside
                return _apply(warpers, token, logits.float() + bias)
            return logits

        if not self.compile:
            if lean is not None:
                return lambda token, position, index: step(token, index)
            return lambda token, position, index: step(token, position)
        # keyed by the warpers' settings (they are rebuilt each call), so that equal settings reuse one graph
        key = (greedy, tuple((type(w).__name__, str(sorted(vars(w).items()))) for w in warpers))
        if key not in self._compiled:
            self._compiled[key] = _compiled_or_eager(step, self.model.device.type)
        compiled = self._compiled[key]
        return lambda token, position, index: compiled(token, position)


def _apply(processors, input_ids, scores):
    """`LogitsProcessorList.__call__` without its per-call signature inspection: each processor on the scores."""
    for processor in processors:
        scores = processor(input_ids, scores)
    return scores


def _lighter_copy(language_model, weights_dtype: str | None):
    """The backbone itself (`None`), or a copy with bf16 weights or int8 `nn.Linear` layers (see `weights_dtype`)."""
    if weights_dtype is None:
        return language_model
    if weights_dtype == "bfloat16":
        return copy.deepcopy(language_model).to(torch.bfloat16)
    if language_model.device.type != "cpu" or language_model.dtype != torch.float32:
        raise ValueError(
            "weights_dtype='int8' needs an fp32 model on the CPU (dynamic int8 kernels are CPU-only and take fp32 "
            f"activations), got {language_model.dtype} on {language_model.device}"
        )
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    quantized = copy.deepcopy(language_model)
    body = quantized.get_decoder()  # the LM head stays fp32: it makes the token choice
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices: it is still the CPU int8 path
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_(tensor|channel).*")
        quantize_dynamic(body, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
    if not any(type(module).__module__.startswith("torch.ao.nn.quantized") for module in body.modules()):
        raise ValueError(
            f"weights_dtype='int8' found no nn.Linear layer to quantise in {type(body).__name__} (e.g. GPT-2 uses "
            "Conv1D); use weights_dtype='bfloat16' or None"
        )
    return quantized


def _compiled_or_eager(step, device_type: str):
    """`torch.compile(step)` (CUDA graphs on CUDA); on the first failure, warn and run eager from then on."""
    mode = "reduce-overhead" if device_type == "cuda" else None
    compiled = torch.compile(step, mode=mode, fullgraph=False, dynamic=False)
    state = {"failed": False, "warm": False}

    def run(token, position):
        if not state["failed"]:
            try:
                if device_type == "cuda":
                    torch.compiler.cudagraph_mark_step_begin()
                if not state["warm"]:  # the first call compiles (guards evaluated)
                    output = compiled(token, position)
                    state["warm"] = True
                    return output
                # Every later call has the same shapes, dtypes and cache object, so dynamo's guard check (~70 us a
                # call on CPU, ~30 % of a tiny model's step) only has to tell this graph from the other entries.
                with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
                    return compiled(token, position)
            except Exception as error:  # noqa: BLE001 - any backend failure: fall back, keep generating
                import warnings

                warnings.warn(f"torch.compile of the decode step failed ({error!r}); decoding eagerly", stacklevel=3)
                state["failed"] = True
        return step(token, position)

    return run


__all__ = ["FastUnitGenerator", "RepetitionAwareSamplingLogitsProcessor"]
