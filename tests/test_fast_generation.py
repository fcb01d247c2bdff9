"""Tests of FastUnitGenerator (same units as generate_units, streaming, caches, compile) and of VALL-E 2's
repetition-aware sampling processor, plus a smoke run of the generation benchmark."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import DynamicCache, GPT2Config, LlamaConfig, LogitsProcessor, RepetitionPenaltyLogitsProcessor

from hf_slm.models.speech_lm import (
    FastUnitGenerator,
    MultiStreamSpeechLMForCausalLM,
    RepetitionAwareSamplingLogitsProcessor,
    SpeechLMConfig,
    SpeechLMForCausalLM,
)
from hf_slm.models.speech_lm.decoding_speech_lm import LeanLlamaStep, lean_step_supported

REPO_ROOT = Path(__file__).resolve().parents[1]
NUM_UNITS = 20


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and the 2 shared cores stay usable for others."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed: int = 0, **config_kwargs) -> SpeechLMForCausalLM:
    torch.manual_seed(seed)
    backbone = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    )
    return SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, num_units=NUM_UNITS, **config_kwargs)).eval()


class EosAfter(LogitsProcessor):
    """Bans `</s>` until the sequence (prompt included) has `length` tokens, then forces it: an exact stop both
    paths must honour."""

    def __init__(self, length: int, eos: int):
        self.length, self.eos = length, eos

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.eos] = 1e4 if input_ids.shape[1] >= self.length else -float("inf")
        return scores


class Bias(LogitsProcessor):
    """Adds `value` to one token's logit: a loop-prone model for the repetition-aware sampling test."""

    def __init__(self, token: int, value: float):
        self.token, self.value = token, value

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.token] += self.value
        return scores


# ====================================================================== same units as generate_units
@pytest.mark.parametrize(
    "prompt", [[1, 2, 3], [], [7] * 12, list(range(NUM_UNITS))], ids=["short", "empty", "repeat", "all"]
)
@pytest.mark.parametrize("cache", ["lean", "dynamic", "static"])
def test_greedy_equals_generate_units_token_for_token(prompt, cache):
    model = tiny_model(seed=len(prompt))
    fast = FastUnitGenerator(model, cache_implementation=cache)
    expected = model.generate_units(torch.tensor(prompt, dtype=torch.long), max_new_tokens=40, do_sample=False)[0]
    assert torch.equal(fast.generate(prompt, max_new_tokens=40, do_sample=False), expected)


def test_greedy_equals_generate_units_with_task_tag_and_stop_at_eos():
    model = tiny_model(task_tokens=["[TTS]"], use_modality_tokens=False)
    fast = FastUnitGenerator(model)
    stop = [EosAfter(9, model.config.eos_token_id)]
    kwargs = {"max_new_tokens": 30, "do_sample": False, "task": "[TTS]", "logits_processor": stop}
    expected = model.generate_units(torch.tensor([4, 5]), **kwargs)[0]
    got = fast.generate([4, 5], **kwargs)
    assert len(expected) == 9 - 4 and torch.equal(got, expected)  # <s> [TTS] u u + 5 units, then </s>


@pytest.mark.parametrize(
    "sampling",
    [{}, {"temperature": 0.7, "top_k": 5}, {"top_p": 0.8, "top_k": 0}, {"temperature": 1.3, "top_p": 0.9}],
    ids=["defaults", "temp_topk", "topp", "temp_topp"],
)
def test_sampling_with_the_same_seed_equals_generate_units(sampling):
    """Same processors in the same order, same torch.multinomial draws: identical units on CPU."""
    model = tiny_model(seed=2)
    fast = FastUnitGenerator(model)
    torch.manual_seed(11)
    expected = model.generate_units(torch.tensor([1, 2, 3]), max_new_tokens=40, do_sample=True, **sampling)[0]
    torch.manual_seed(11)
    got = fast.generate([1, 2, 3], max_new_tokens=40, do_sample=True, **sampling)
    assert torch.equal(got, expected)


def test_suppressed_tokens_are_never_generated_as_in_generate_units():
    """`suppressed_token_ids` (copied into `generation_config.suppress_tokens`, which `generate` masks): the fast
    path masks the same ids, so greedy and sampled units stay `generate_units`' and never hold a suppressed unit."""
    model = tiny_model(seed=2)
    free = model.generate_units(torch.tensor([1, 2]), max_new_tokens=30, do_sample=False)[0]
    banned = sorted(set(free.tolist()))[:3]  # units greedy decoding picks without suppression
    offset = model.config.unit_token_offset
    model = tiny_model(seed=2, suppressed_token_ids=[offset + u for u in banned])
    fast = FastUnitGenerator(model)
    expected = model.generate_units(torch.tensor([1, 2]), max_new_tokens=30, do_sample=False)[0]
    got = fast.generate([1, 2], max_new_tokens=30, do_sample=False)
    assert torch.equal(got, expected) and not set(got.tolist()) & set(banned)
    torch.manual_seed(6)
    expected = model.generate_units(torch.tensor([1, 2]), max_new_tokens=30, do_sample=True)[0]
    torch.manual_seed(6)
    assert torch.equal(fast.generate([1, 2], max_new_tokens=30, do_sample=True), expected)


def test_generation_config_values_are_used_when_arguments_are_none():
    model = tiny_model(seed=5)
    model.generation_config.top_k = 3
    model.generation_config.temperature = 0.5
    fast = FastUnitGenerator(model)
    torch.manual_seed(1)
    expected = model.generate_units(torch.tensor([1, 2]), max_new_tokens=30, do_sample=True)[0]
    torch.manual_seed(1)
    assert torch.equal(fast.generate([1, 2], max_new_tokens=30, do_sample=True), expected)


def test_user_logits_processor_sees_the_same_history():
    model = tiny_model(seed=3)
    fast = FastUnitGenerator(model)
    penalty = [RepetitionPenaltyLogitsProcessor(penalty=3.0)]
    kwargs = {"max_new_tokens": 30, "do_sample": False, "logits_processor": penalty}
    expected = model.generate_units(torch.tensor([1, 1, 2]), **kwargs)[0]
    assert torch.equal(fast.generate([1, 1, 2], **kwargs), expected)


# ====================================================================== streaming, caches, sync
def test_stream_yields_ints_progressively_and_can_be_stopped():
    model = tiny_model(seed=1)
    fast = FastUnitGenerator(model)
    full = fast.generate([3, 4], max_new_tokens=25, do_sample=False)
    stream = fast.stream([3, 4], max_new_tokens=25, do_sample=False)
    first = [next(stream) for _ in range(5)]
    assert all(type(u) is int for u in first) and first == full[:5].tolist()
    stream.close()  # the consumer stops early: nothing breaks, the next call starts clean
    assert torch.equal(fast.generate([3, 4], max_new_tokens=25, do_sample=False), full)


def test_static_cache_is_reused_and_reset_across_calls():
    model = tiny_model(seed=4)
    fast = FastUnitGenerator(model, cache_implementation="static")
    prompts = [[1, 2, 3, 4, 5, 6], [9], list(range(15))]
    for prompt in prompts + prompts[::-1]:
        expected = model.generate_units(torch.tensor(prompt), max_new_tokens=20, do_sample=False)[0]
        assert torch.equal(fast.generate(prompt, max_new_tokens=20, do_sample=False), expected), prompt
    assert fast._cache_size == 256  # one bucket served every call
    fast.generate([1], max_new_tokens=300, do_sample=False)  # longer than the bucket: a bigger cache
    assert fast._cache_size == 512
    small = FastUnitGenerator(model, cache_implementation="static", max_cache_len=16)
    with pytest.raises(ValueError, match="max_cache_len=16"):
        small.generate([1, 2], max_new_tokens=20)


@pytest.mark.parametrize("sync_every", [1, 4, 7])
def test_sync_every_gives_the_same_units_and_stops_at_eos(sync_every):
    model = tiny_model(seed=6)
    fast = FastUnitGenerator(model)
    stop = [EosAfter(14, model.config.eos_token_id)]
    expected = model.generate_units(torch.tensor([2, 3]), max_new_tokens=30, do_sample=False, logits_processor=stop)[0]
    got = fast.generate([2, 3], max_new_tokens=30, do_sample=False, logits_processor=stop, sync_every=sync_every)
    assert torch.equal(got, expected) and len(got) == 14 - 4  # <s> [Speech] 2 3, then 10 units


def test_fast_generator_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match="one prompt at a time"):
        FastUnitGenerator(model).generate([torch.tensor([1, 2]), torch.tensor([3])])
    with pytest.raises(ValueError, match="max_new_tokens"):
        FastUnitGenerator(model).generate([1], max_new_tokens=0)
    with pytest.raises(ValueError, match="outside"):
        FastUnitGenerator(model).generate([NUM_UNITS])
    with pytest.raises(ValueError, match="needs cache_implementation='static'"):
        FastUnitGenerator(model, compile=True, cache_implementation="dynamic")
    with pytest.raises(ValueError, match="compile must be"):
        FastUnitGenerator(model, compile="yes")
    multistream = MultiStreamSpeechLMForCausalLM.__new__(MultiStreamSpeechLMForCausalLM)
    with pytest.raises(ValueError, match="needs a SpeechLMForCausalLM"):
        FastUnitGenerator(multistream)


def test_auto_compile_is_off_on_cpu():
    fast = FastUnitGenerator(tiny_model())
    assert fast.compile is False and fast.cache_implementation == "lean"


# ====================================================================== the lean step (written-out Llama decode)
@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lean_step_logits_equal_the_backbones_bit_for_bit(kv_heads, dtype):
    """Equal numerics, not just equal argmax: every step's logits are the backbone's exactly (same ops, same order)."""
    torch.manual_seed(0)
    backbone = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=kv_heads)  # fmt: skip
    lm = SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, num_units=NUM_UNITS)).eval().to(dtype).language_model
    assert lean_step_supported(lm)
    with torch.inference_mode():
        cache = DynamicCache(config=lm.config)
        lm(input_ids=torch.randint(0, NUM_UNITS, (1, 7)), cache=cache, use_cache=True)
        lean = LeanLlamaStep(lm)
        lean.start(cache, 7, 7 + 300)  # past one buffer bucket
        token = torch.tensor([[3]])
        for position in range(7, 7 + 300):
            expected = lm(input_ids=token, position_ids=torch.tensor([[position]]), cache=cache).logits[:, -1]
            assert torch.equal(lean(token, position), expected), position
            token = expected.argmax(-1, keepdim=True)


@pytest.mark.parametrize("variant", ["biases", "unfused"])
def test_lean_step_variants_stay_bit_equal(variant):
    """Projections with biases (`addmm` with the bias, residual adds kept separate) and unfused q / k / v and
    gate / up (backbones above `max_fused_parameters`): still the backbone's logits exactly, greedy and sampled."""
    torch.manual_seed(1)
    biases = {"attention_bias": True, "mlp_bias": True} if variant == "biases" else {}
    backbone = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, **biases)  # fmt: skip
    model = SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, num_units=NUM_UNITS)).eval()
    lm = model.language_model
    if variant == "biases":
        with torch.no_grad():  # transformers initialises biases to zero: make them count
            for name, parameter in lm.named_parameters():
                if name.endswith("bias"):
                    parameter.normal_(0, 0.5)
    with torch.inference_mode():
        cache = DynamicCache(config=lm.config)
        lm(input_ids=torch.randint(0, NUM_UNITS, (1, 5)), cache=cache, use_cache=True)
        lean = LeanLlamaStep(lm, max_fused_parameters=0 if variant == "unfused" else 32_000_000)
        lean.start(cache, 5, 5 + 40)
        token = torch.tensor([[3]])
        for position in range(5, 5 + 40):
            expected = lm(input_ids=token, position_ids=torch.tensor([[position]]), cache=cache).logits[:, -1]
            assert torch.equal(lean(token, position), expected), position
            token = expected.argmax(-1, keepdim=True)
    torch.manual_seed(5)
    expected = model.generate_units(torch.tensor([1, 2]), max_new_tokens=30, do_sample=True, top_k=5)[0]
    torch.manual_seed(5)
    assert torch.equal(FastUnitGenerator(model).generate([1, 2], max_new_tokens=30, do_sample=True, top_k=5), expected)


def test_lean_step_is_used_for_llama_only():
    gpt2 = SpeechLMForCausalLM(SpeechLMConfig(text_config=GPT2Config(n_embd=32, n_layer=1, n_head=4),
                                              num_units=NUM_UNITS)).eval()  # fmt: skip
    fast = FastUnitGenerator(gpt2)
    assert fast.cache_implementation == "dynamic"
    expected = gpt2.generate_units(torch.tensor([1, 2]), max_new_tokens=10, do_sample=False)[0]
    assert torch.equal(fast.generate([1, 2], max_new_tokens=10, do_sample=False), expected)
    with pytest.raises(ValueError, match="needs a Llama backbone"):
        FastUnitGenerator(gpt2, cache_implementation="lean")
    assert FastUnitGenerator(tiny_model(), weights_dtype="int8").cache_implementation == "dynamic"


def test_compiled_steps_are_reused_for_equal_sampling_settings():
    """Warpers are rebuilt on every call; equal settings must map to one compiled graph (no recompiles per call)."""
    fast = FastUnitGenerator(tiny_model(), compile=True)  # torch.compile is lazy: nothing compiles here
    for _ in range(3):
        fast._step_function(False, fast._warpers(True, 0.7, 5, None))
        fast._step_function(True, fast._warpers(False, None, None, None))
    assert len(fast._compiled) == 2
    fast._step_function(False, fast._warpers(True, 0.7, 6, None))
    assert len(fast._compiled) == 3


@pytest.mark.slow
def test_compiled_decode_step_on_cpu_equals_generate_units():
    """torch.compile (inductor C++ on CPU) of the decode step: same greedy units and sampled units. ~1 min."""
    model = tiny_model(seed=7)
    fast = FastUnitGenerator(model, compile=True)
    assert fast.cache_implementation == "static"
    for prompt in ([1, 2, 3], [5] * 9):
        expected = model.generate_units(torch.tensor(prompt), max_new_tokens=30, do_sample=False)[0]
        assert torch.equal(fast.generate(prompt, max_new_tokens=30, do_sample=False), expected)
    torch.manual_seed(3)
    expected = model.generate_units(torch.tensor([1, 2]), max_new_tokens=30, do_sample=True, top_k=5)[0]
    torch.manual_seed(3)
    assert torch.equal(fast.generate([1, 2], max_new_tokens=30, do_sample=True, top_k=5), expected)


def test_compiled_step_stays_exact_when_its_cache_grows_and_settings_alternate():
    """After its first call a compiled step skips dynamo's full guard check (`skip_guard_eval_unsafe`); the entries
    that must then still be told apart (greedy vs sampled graphs, a static cache replaced by a larger one) give
    generate_units' units on every call."""
    model = tiny_model(seed=11)
    fast = FastUnitGenerator(model, compile=True)
    for prompt, new in (([1, 2], 20), ([3] * 5, 300), ([1, 2], 20)):  # 256-token cache, then 512, then reused
        expected = model.generate_units(torch.tensor(prompt), max_new_tokens=new, do_sample=False)[0]
        assert torch.equal(fast.generate(prompt, max_new_tokens=new, do_sample=False), expected)
        torch.manual_seed(5)
        expected = model.generate_units(torch.tensor(prompt), max_new_tokens=20, do_sample=True, top_k=4)[0]
        torch.manual_seed(5)
        assert torch.equal(fast.generate(prompt, max_new_tokens=20, do_sample=True, top_k=4), expected)
    assert fast._cache_size == 512


# ====================================================================== lighter weights (weights_dtype)
def test_bf16_model_greedy_equals_generate_units():
    """Equal numerics in bf16 (the model itself in bf16): still generate_units' units token for token."""
    model = tiny_model(seed=9).to(torch.bfloat16)
    expected = model.generate_units(torch.tensor([1, 2, 3]), max_new_tokens=40, do_sample=False)[0]
    assert torch.equal(FastUnitGenerator(model).generate([1, 2, 3], max_new_tokens=40, do_sample=False), expected)


@pytest.mark.parametrize("weights_dtype", ["bfloat16", "int8"])
def test_lighter_weights_decode_like_generate_on_the_same_copy(weights_dtype):
    """The loop adds nothing to the numerics: greedy and seeded sampled units equal generate_units of a model holding
    the same lighter backbone copy; the model itself keeps its fp32 nn.Linear layers."""
    model = tiny_model(seed=10)
    before = {name: p.clone() for name, p in model.named_parameters()}
    fast = FastUnitGenerator(model, weights_dtype=weights_dtype)
    assert fast.language_model is not model.language_model
    reference = copy.deepcopy(model)
    reference.language_model = fast.language_model
    for prompt in ([1, 2, 3], [5] * 9):
        expected = reference.generate_units(torch.tensor(prompt), max_new_tokens=30, do_sample=False)[0]
        assert torch.equal(fast.generate(prompt, max_new_tokens=30, do_sample=False), expected)
    torch.manual_seed(2)
    expected = reference.generate_units(torch.tensor([4, 4]), max_new_tokens=30, do_sample=True, top_k=5)[0]
    torch.manual_seed(2)
    assert torch.equal(fast.generate([4, 4], max_new_tokens=30, do_sample=True, top_k=5), expected)
    up_proj = fast.language_model.get_decoder().layers[0].mlp.up_proj
    if weights_dtype == "int8":
        assert type(up_proj).__module__.startswith("torch.ao.nn.quantized") and up_proj.weight().dtype == torch.qint8
    else:
        assert up_proj.weight.dtype == torch.bfloat16
    assert type(model.language_model.model.layers[0].mlp.up_proj) is torch.nn.Linear
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())


@pytest.mark.parametrize("weights_dtype", ["bfloat16", "int8"])
def test_lighter_weights_stay_close_to_the_fp32_logits(weights_dtype):
    model = tiny_model(seed=12)
    fast = FastUnitGenerator(model, weights_dtype=weights_dtype)
    ids, _ = model.units_to_input_ids([torch.randint(0, NUM_UNITS, (30,), generator=torch.Generator().manual_seed(0))])
    with torch.inference_mode():
        exact = model.language_model(input_ids=ids).logits.float()
        light = fast.language_model(input_ids=ids).logits.float()
    error = (light - exact).norm() / exact.norm()
    assert error < 0.05, f"relative logit error {error:.3f}"  # measured ~0.01 (int8) and ~0.005 (bf16)


def test_weights_dtype_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match="weights_dtype must be"):
        FastUnitGenerator(model, weights_dtype="float16")
    with pytest.raises(ValueError, match="runs eagerly only"):
        FastUnitGenerator(model, compile=True, weights_dtype="int8")
    with pytest.raises(ValueError, match=r"needs an fp32 model on the CPU.*bfloat16"):
        FastUnitGenerator(tiny_model().to(torch.bfloat16), weights_dtype="int8")
    gpt2 = SpeechLMForCausalLM(SpeechLMConfig(text_config=GPT2Config(n_embd=32, n_layer=1, n_head=4),
                                              num_units=NUM_UNITS))  # fmt: skip
    with pytest.raises(ValueError, match="no nn.Linear layer to quantise in GPT2Model"):
        FastUnitGenerator(gpt2, weights_dtype="int8")


# ====================================================================== repetition-aware sampling
def _scores(probabilities) -> torch.Tensor:
    return torch.tensor(probabilities, dtype=torch.float32).log()[None]


def test_ras_keeps_the_nucleus_draw_without_repetition():
    ras = RepetitionAwareSamplingLogitsProcessor(top_p=0.5, window_size=4, threshold=0.25)
    scores = _scores([0.6, 0.1, 0.1, 0.1, 0.1])  # nucleus of 0.5 = {0}
    history = torch.tensor([[1, 2, 3, 4, 1]])
    for _ in range(20):
        out = ras(history, scores)
        assert out.argmax().item() == 0 and torch.isneginf(out[0, 1:]).all() and out[0, 0] == 0
        assert not ras.last_fallback.item()


def test_ras_falls_back_to_the_full_distribution_on_repetition():
    ras = RepetitionAwareSamplingLogitsProcessor(top_p=0.5, window_size=4, threshold=0.25)
    probabilities = torch.tensor([0.6, 0.1, 0.1, 0.1, 0.1])
    history = torch.tensor([[0, 9, 9, 9]])  # one 0 in a window of 4: ratio 0.25 >= 0.25
    torch.manual_seed(0)
    draws = torch.stack([ras(history, probabilities.log()[None]).argmax(-1)[0] for _ in range(2000)])
    assert ras.last_fallback.item()
    frequencies = torch.bincount(draws, minlength=5).float() / len(draws)
    torch.testing.assert_close(frequencies, probabilities, atol=0.04, rtol=0)  # random sampling, not nucleus


def test_ras_window_and_threshold_boundaries():
    scores = _scores([0.9, 0.025, 0.025, 0.025, 0.025])
    ras = RepetitionAwareSamplingLogitsProcessor(top_p=0.5, window_size=3, threshold=0.5)  # needs >= 1.5 -> 2 repeats
    ras(torch.tensor([[0, 0, 7, 7, 0]]), scores)  # only the last 3 tokens count: one 0
    assert not ras.last_fallback.item()
    ras(torch.tensor([[7, 0, 7, 0]]), scores)  # two 0s in the window
    assert ras.last_fallback.item()
    always = RepetitionAwareSamplingLogitsProcessor(threshold=0.0)
    always(torch.tensor([[1]]), scores)
    assert always.last_fallback.item()
    batch = RepetitionAwareSamplingLogitsProcessor(top_p=0.5, window_size=2, threshold=0.5)
    batch(torch.tensor([[0, 0], [3, 4]]), scores.expand(2, -1))
    assert batch.last_fallback.tolist() == [True, False]  # rows decide independently


def test_ras_reproducible_with_a_generator_and_validates():
    scores = torch.randn(3, 10)
    history = torch.randint(0, 10, (3, 6))
    a = RepetitionAwareSamplingLogitsProcessor(generator=torch.Generator().manual_seed(5))(history, scores)
    b = RepetitionAwareSamplingLogitsProcessor(generator=torch.Generator().manual_seed(5))(history, scores)
    assert torch.equal(a, b)
    for name, bad in (("top_p", 0), ("window_size", 0), ("threshold", 2), ("top_k", 0), ("temperature", 0)):
        with pytest.raises(ValueError, match=name):
            RepetitionAwareSamplingLogitsProcessor(**{name: bad})


def test_ras_inside_generate_units_and_fast_generator_agree_and_break_loops():
    model = tiny_model(seed=8)
    loop_prone = Bias(model.config.unit_token_offset, 5.0)  # unit 0 gets ~0.9 of the mass everywhere
    prompt = torch.tensor([0, 0])
    looped = model.generate_units(prompt, max_new_tokens=30, do_sample=False, logits_processor=[loop_prone])[0]
    assert bool((looped == 0).all())
    processors = [loop_prone, RepetitionAwareSamplingLogitsProcessor(top_p=0.8, window_size=10, threshold=0.1)]
    torch.manual_seed(4)
    expected = model.generate_units(prompt, max_new_tokens=30, do_sample=True, logits_processor=processors)[0]
    torch.manual_seed(4)
    got = FastUnitGenerator(model).generate([0, 0], max_new_tokens=30, do_sample=True, logits_processor=processors)
    assert torch.equal(got, expected)
    torch.manual_seed(4)
    greedy = model.generate_units(prompt, max_new_tokens=30, do_sample=False, logits_processor=processors)[0]
    assert len(greedy) and not bool((greedy == 0).all())  # RAS chooses even under greedy decoding: the loop breaks


# ====================================================================== benchmark smoke run
@pytest.mark.parametrize("weights", [[], ["--weights-dtype", "int8"]], ids=["model", "int8"])
def test_generation_benchmark_prints_a_ratio(weights):
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_generation.py", "--device", "cpu", "--size", "tiny", "--new-tokens", "20",
         "--repeats", "1", "--compile", "off", "--threads", "1", *weights],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("ratio: ") and float(lines[-1].split()[1]) > 0
    if not weights:  # equal numerics: every token identical
        assert "identical greedy tokens: 100.0% (first 20 of 20 before any difference)" in lines
    else:  # int8 copy: the agreement is measured, whatever it is
        agreement = [line for line in lines if line.startswith("teacher-forced top-1 agreement")]
        assert len(agreement) == 1 and 0 <= float(agreement[0].split()[-1].rstrip("%")) <= 100


# ====================================================================== docstring examples
def test_docstring_examples_run():
    import doctest

    from hf_slm.models.speech_lm import (
        configuration_multistream_speech_lm,
        generation_speech_lm,
        prosody_multistream_speech_lm,
    )

    for module in (configuration_multistream_speech_lm, prosody_multistream_speech_lm, generation_speech_lm):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0 and result.failed == 0, module.__name__
