"""Tests of the speech_lm family: config / vocabulary layout, SpeechLMForCausalLM, processor, TWIST warm start.
The common checks (save/load, Auto classes, remote code, padded batch, dtype, device, export) run through
`ComponentTesterMixin` (`TestSpeechLMComponent`)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoProcessor,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    OPTConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)
from transformers.generation.streamers import BaseStreamer

from hf_slm import (
    SpeechLMConfig,
    SpeechLMForCausalLM,
    SpeechLMProcessor,
    SpeechLMVocabularyLayout,
    UnitEncoderConfig,
    UnitEncoderModel,
)
from hf_slm.models.speech_lm import AllowedTokensLogitsProcessor
from hf_slm.training.interleaving import interleave
from component_tester import ComponentTesterMixin

WORDS = "the cat sat on a mat dog ran far away".split()


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level text tokenizer built in memory (no download): `<unk>` + 10 words."""
    vocab = {"<unk>": 0, **{w: i + 1 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


@pytest.fixture
def tokenizer():
    return make_tokenizer()


class SpeechLMModelTester:
    """Tiny configs in the style of transformers' ModelTesters (hidden 32, 2 layers)."""

    num_units = 20

    def __init__(self, text_vocab_size: int = 0, task_tokens=None, use_modality_tokens: bool = True):
        self.text_vocab_size = text_vocab_size
        self.task_tokens = task_tokens
        self.use_modality_tokens = use_modality_tokens

    def get_config(self) -> SpeechLMConfig:
        backbone = LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        )
        return SpeechLMConfig(
            text_config=backbone,
            text_vocab_size=self.text_vocab_size,
            num_units=self.num_units,
            task_tokens=self.task_tokens,
            use_modality_tokens=self.use_modality_tokens,
        )

    def get_model(self, seed: int = 0) -> SpeechLMForCausalLM:
        torch.manual_seed(seed)
        return SpeechLMForCausalLM(self.get_config()).eval()

    def get_units(self, lengths=(7, 4), seed: int = 0) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return [torch.randint(0, self.num_units, (n,), generator=g) for n in lengths]


@pytest.fixture(scope="module")
def gslm():
    return SpeechLMModelTester().get_model()


class TestSpeechLMComponent(ComponentTesterMixin):
    component = "speech_lm"
    model_class = SpeechLMForCausalLM
    compared_outputs = ("logits",)
    processor_auto_class = "AutoProcessor"

    def export_inputs(self):
        return {**self.get_inputs(), "use_cache": False}  # a DynamicCache is no pytree output

    def get_batch_and_items(self):
        model, generator = self.get_model(), torch.Generator().manual_seed(0)
        units = [torch.randint(0, model.config.num_units, (n,), generator=generator) for n in (7, 3)]
        ids, mask = model.units_to_input_ids(units, padding_side="right", add_eos=True)
        return {"input_ids": ids, "attention_mask": mask}, [
            {"input_ids": model.units_to_input_ids([u], add_eos=True)[0]} for u in units
        ]

    def remote_calls(self, model):
        prompt = {"units_prompt": [torch.tensor([1, 2, 3])], "max_new_tokens": 4, "do_sample": False}
        return {**super().remote_calls(model), "generate_units": ("generate_units", prompt)}

    def get_processor(self):
        return SpeechLMProcessor.from_config(self.get_model().config)

    def processor_inputs(self):
        return {"units": [torch.tensor([1, 2, 3]), torch.tensor([4])], "add_eos": True}


# ====================================================================== config and vocabulary layout
@pytest.mark.parametrize(
    "text_vocab_size, num_units, tags, expected",
    [
        # (unit offset, pad, bos, eos, [Speech], [Text], vocab size)
        (0, 100, None, (0, 100, 101, 102, 103, 104, 105)),
        (32000, 500, ["[ASR]", "[TTS]"], (32000, 32500, 32501, 32502, 32503, 32504, 32507)),
        (11, 20, ["[en]"], (11, 31, 32, 33, 34, 35, 37)),
    ],
)
def test_vocabulary_layout(text_vocab_size, num_units, tags, expected):
    config = SpeechLMConfig(text_vocab_size=text_vocab_size, num_units=num_units, task_tokens=tags)
    got = (
        config.unit_token_offset,
        config.pad_token_id,
        config.bos_token_id,
        config.eos_token_id,
        config.speech_token_id,
        config.text_token_id,
        config.vocab_size,
    )
    assert got == expected
    assert config.text_config.vocab_size == config.vocab_size
    assert config.text_config.bos_token_id == config.bos_token_id
    for i, tag in enumerate(tags or []):
        assert config.token_id(tag) == config.text_token_id + 1 + i
    units = torch.arange(num_units)
    ids = config.units_to_token_ids(units)
    assert ids[0] == config.unit_token_offset and ids[-1] == config.pad_token_id - 1
    assert torch.equal(config.token_ids_to_units(ids), units)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_units": 0}, "num_units"),
        ({"text_vocab_size": -1}, "text_vocab_size"),
        ({"task_tokens": ["[Speech]"]}, "task_tokens"),
        ({"task_tokens": ["[ASR]", "[ASR]"]}, "task_tokens"),
        ({"bos_token_id": 3}, "bos_token_id"),
        ({"text_config": {"model_type": "no_such_model"}}, "no_such_model"),
        ({"text_config": 3}, "text_config"),
        ({"suppressed_token_ids": [105]}, r"suppressed_token_ids must be ints in \[0, 105\)"),
        ({"suppressed_token_ids": 101}, "suppressed_token_ids must be a list"),
        ({"suppressed_token_ids": [101, 102]}, "</s>"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpeechLMConfig(**kwargs)


def test_text_config_from_a_dict_or_nothing():
    """transformers' sub-config rules: a dict without `model_type` is a Llama, `None` the small default Llama."""
    config = SpeechLMConfig(text_config={"hidden_size": 64, "num_attention_heads": 4}, num_units=10)
    assert type(config.text_config).__name__ == "LlamaConfig" and config.text_config.hidden_size == 64
    default = SpeechLMConfig(num_units=10).text_config
    assert (type(default).__name__, default.hidden_size, default.num_hidden_layers) == ("LlamaConfig", 256, 4)
    assert default.vocab_size == SpeechLMConfig(num_units=10).vocab_size  # the layout's, not Llama's 32000


def test_layout_unit_range_errors():
    layout = SpeechLMVocabularyLayout(text_vocab_size=5, num_units=10)
    with pytest.raises(ValueError, match="unit 10 is outside"):
        layout.units_to_token_ids([1, 10])
    with pytest.raises(ValueError, match="unit -1 is outside"):
        layout.units_to_token_ids(torch.tensor([-1, 2]))
    with pytest.raises(ValueError, match="not a unit token"):
        layout.token_ids_to_units([5, 2])
    assert layout.token_ids_to_units([5, 2, layout.eos_token_id, 14], strict=False).tolist() == [0, 9]
    with pytest.raises(ValueError, match="unknown task tag"):
        layout.task_ids("[ASR]")


def test_config_save_load_roundtrip(tmp_path):
    config = SpeechLMConfig(
        text_config=GPT2Config(n_embd=16, n_layer=1, n_head=2), text_vocab_size=7, num_units=9, task_tokens=["[x]"]
    )
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, SpeechLMConfig)
    assert loaded.vocab_layout == config.vocab_layout
    assert loaded.text_config.model_type == "gpt2" and loaded.text_config.n_embd == 16
    assert loaded.vocab_size == config.vocab_size == 7 + 9 + 6


# ====================================================================== model: forward, generate, scoring
def test_forward_and_loss_shapes(gslm):
    input_ids, attention_mask = gslm.units_to_input_ids(SpeechLMModelTester().get_units(), add_eos=True)
    assert input_ids.shape == (2, 2 + 7 + 1)
    assert attention_mask.tolist()[1] == [0, 0, 0] + [1] * 7  # left padding
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    out = gslm(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (2, 10, gslm.config.vocab_size)
    # the loss is the mean next-token cross entropy over non-ignored labels
    logits, targets = out.logits[:, :-1], labels[:, 1:]
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    torch.testing.assert_close(out.loss, expected)
    last = gslm(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=1).logits
    assert last.shape == (2, 1, gslm.config.vocab_size)
    torch.testing.assert_close(last[:, 0], out.logits[:, -1])
    assert isinstance(gslm(input_ids=input_ids, return_dict=False), tuple)


def test_units_to_input_ids_format():
    tester = SpeechLMModelTester(task_tokens=["[ASR]"])
    model = tester.get_model()
    c = model.config
    ids, mask = model.units_to_input_ids([[1, 2], [3]], padding_side="right", add_eos=True, task="[ASR]")
    assert ids.tolist() == [
        [c.bos_token_id, c.token_id("[ASR]"), c.speech_token_id, 1, 2, c.eos_token_id],
        [c.bos_token_id, c.token_id("[ASR]"), c.speech_token_id, 3, c.eos_token_id, c.pad_token_id],
    ]
    assert mask.tolist() == [[1] * 6, [1] * 5 + [0]]
    plain = SpeechLMModelTester(use_modality_tokens=False).get_model()
    assert plain.units_to_input_ids(torch.tensor([4, 5]))[0].tolist() == [[plain.config.bos_token_id, 4, 5]]
    with pytest.raises(ValueError, match="unit 20 is outside"):
        model.units_to_input_ids([torch.tensor([20])])


def test_greedy_generate_equals_manual_argmax_loop(gslm):
    prompt, _ = gslm.units_to_input_ids(torch.tensor([3, 1, 4, 1, 5]))
    generated = gslm.generate(prompt, max_new_tokens=6, do_sample=False)
    ids = prompt
    with torch.no_grad():
        for _ in range(6):
            next_id = gslm(input_ids=ids, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=-1)
            if next_id.item() == gslm.config.eos_token_id:
                break
    assert torch.equal(generated, ids)


def test_generate_units_emits_only_units_and_streams():
    tester = SpeechLMModelTester(text_vocab_size=11)  # text ids exist, so a free sampler would emit some
    model = tester.get_model()
    prompts = tester.get_units((5, 2, 0, 3))
    c = model.config
    ids, mask = model.units_to_input_ids(prompts)
    torch.manual_seed(0)
    free = model.generate(ids, attention_mask=mask, do_sample=True, temperature=5.0, max_new_tokens=30)
    assert (free[:, ids.shape[1] :] < c.unit_token_offset).any(), "control: unrestricted sampling emits text ids"

    class Collect(BaseStreamer):
        def __init__(self):
            self.chunks = []

        def put(self, value):
            self.chunks.append(value.clone())

        def end(self):
            self.ended = True

    streamer = Collect()
    torch.manual_seed(0)
    units = model.generate_units(prompts[:1], max_new_tokens=30, temperature=5.0, streamer=streamer)
    assert len(units) == 1 and units[0].dtype == torch.long
    assert ((units[0] >= 0) & (units[0] < c.num_units)).all() and len(units[0]) <= 30
    streamed = torch.cat([chunk.flatten() for chunk in streamer.chunks[1:]])  # chunk 0 is the prompt
    assert streamer.ended and streamed[: len(units[0])].tolist() == (units[0] + c.unit_token_offset).tolist()
    torch.manual_seed(1)
    batch = model.generate_units(prompts, max_new_tokens=30, temperature=5.0)
    assert len(batch) == 4
    for u in batch:
        assert ((u >= 0) & (u < c.num_units)).all()


def test_generate_units_batch_matches_single_prompts(gslm):
    """Left padding + position ids from the mask: a batched greedy continuation equals the one-by-one ones."""
    prompts = SpeechLMModelTester().get_units((9, 3))
    batched = gslm.generate_units(prompts, max_new_tokens=5, do_sample=False)
    for prompt, out in zip(prompts, batched):
        assert torch.equal(gslm.generate_units([prompt], max_new_tokens=5, do_sample=False)[0], out)


def test_allowed_tokens_logits_processor():
    processor = AllowedTokensLogitsProcessor([1, 3], vocab_size=5)
    scores = processor(None, torch.zeros(2, 5))
    assert torch.isinf(scores[:, [0, 2, 4]]).all() and (scores[:, [1, 3]] == 0).all()
    with pytest.raises(ValueError, match="subset"):
        AllowedTokensLogitsProcessor([5], vocab_size=5)


def test_log_likelihood_equals_loss_and_is_padding_invariant(gslm):
    units = SpeechLMModelTester().get_units((8, 3, 5))
    right, right_mask = gslm.units_to_input_ids(units, padding_side="right", add_eos=True)
    left, left_mask = gslm.units_to_input_ids(units, padding_side="left", add_eos=True)
    out = gslm.log_likelihood(right, right_mask)
    assert out.num_tokens.tolist() == [len(u) + 2 for u in units]  # [Speech], units, </s>
    assert out.token_nll.shape == (3, right.shape[1] - 1)
    loss = gslm(input_ids=right, attention_mask=right_mask, labels=right.masked_fill(right_mask == 0, -100)).loss
    torch.testing.assert_close(out.sum_nll.sum() / out.num_tokens.sum(), loss)
    torch.testing.assert_close(gslm.log_likelihood(left, left_mask).sum_nll, out.sum_nll, atol=1e-5, rtol=1e-5)
    for i, u in enumerate(units):  # each sequence alone, unpadded
        single, _ = gslm.units_to_input_ids([u], add_eos=True)
        torch.testing.assert_close(gslm.log_likelihood(single).sum_nll[0], out.sum_nll[i], atol=1e-5, rtol=1e-5)
    normalized = gslm.log_likelihood(right, right_mask, normalize=True)
    torch.testing.assert_close(normalized.sum_nll, out.sum_nll / out.num_tokens)


def test_suppressed_token_ids_default_changes_nothing(gslm, tmp_path):
    assert gslm.config.suppressed_token_ids is None and gslm.generation_config.suppress_tokens is None
    ids, mask = gslm.units_to_input_ids(SpeechLMModelTester().get_units((6, 4)), add_eos=True, padding_side="right")
    with torch.no_grad():
        logp = gslm(input_ids=ids, attention_mask=mask).logits[:, :-1].log_softmax(-1)  # the whole vocabulary
    expected = -(logp.gather(-1, ids[:, 1:, None])[..., 0] * mask[:, 1:]).sum(-1)
    torch.testing.assert_close(gslm.log_likelihood(ids, mask).sum_nll, expected, atol=1e-5, rtol=1e-5)


def test_suppressed_token_ids_leave_the_softmax_and_generation(tmp_path):
    tester = SpeechLMModelTester(use_modality_tokens=False)
    config = tester.get_config()
    layout = config.vocab_layout
    suppressed = [layout.speech_token_id, layout.text_token_id, layout.bos_token_id]
    torch.manual_seed(0)
    model = SpeechLMForCausalLM(SpeechLMConfig(**{**config.to_dict(), "suppressed_token_ids": suppressed})).eval()
    model.save_pretrained(tmp_path)
    loaded = SpeechLMForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.suppressed_token_ids == sorted(suppressed) == loaded.generation_config.suppress_tokens
    kept = [i for i in range(config.vocab_size) if i not in suppressed]
    ids, mask = loaded.units_to_input_ids(tester.get_units((6, 4)), add_eos=True)
    with torch.no_grad():
        logits = loaded(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
        logp = logits[:, :-1, kept].log_softmax(-1)  # the reference: a softmax over the kept ids only
    position = {token: i for i, token in enumerate(kept)}
    targets = ids[:, 1:].clone().apply_(lambda t: position.get(t, 0))
    expected = -logp.gather(-1, targets[..., None])[..., 0] * (mask[:, 1:] * mask[:, :-1])
    out = loaded.log_likelihood(ids, mask)
    torch.testing.assert_close(out.token_nll, expected, atol=1e-5, rtol=1e-5)
    plain = SpeechLMForCausalLM(config).eval()
    plain.load_state_dict(model.state_dict())
    assert (out.sum_nll < plain.log_likelihood(ids, mask).sum_nll).all()  # same weights, full softmax: less likely

    generated = loaded.generate(input_ids=ids[:1, :4], max_new_tokens=6, min_new_tokens=6, do_sample=True,
                                output_scores=True, return_dict_in_generate=True)  # fmt: skip
    assert all(torch.isinf(scores[:, suppressed]).all() for scores in generated.scores)
    with pytest.raises(ValueError, match=rf"token id {layout.bos_token_id} \(<s>\) is scored"):
        loaded.log_likelihood(torch.tensor([[layout.bos_token_id, 3, layout.bos_token_id]]))
    loaded.resize_token_embeddings(config.vocab_size + 2)  # extra rows keep the suppressed ids
    assert loaded.config.suppressed_token_ids == sorted(suppressed)


def test_log_likelihood_score_mask_scores_the_continuation(gslm):
    ids, mask = gslm.units_to_input_ids([torch.tensor([1, 2, 3, 4, 5, 6])], add_eos=False)
    score_mask = torch.zeros_like(ids)
    score_mask[:, -2:] = 1  # the last two units given the prompt
    full = gslm.log_likelihood(ids, mask)
    part = gslm.log_likelihood(ids, mask, score_mask=score_mask)
    assert part.num_tokens.item() == 2
    torch.testing.assert_close(part.sum_nll, full.token_nll[:, -2:].sum(-1))
    with pytest.raises(ValueError, match="input_ids must lie"):
        gslm.log_likelihood(torch.tensor([[0, gslm.config.vocab_size]]))
    with pytest.raises(ValueError, match="score_mask must have the shape"):
        gslm.log_likelihood(ids, score_mask=score_mask[:, 1:])


BACKBONES = {
    "llama": lambda: LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    ),
    "qwen2": lambda: Qwen2Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    ),
    "gpt2": lambda: GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=128),
    "opt": lambda: OPTConfig(
        hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4, word_embed_proj_dim=32
    ),
}


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_any_causal_lm_backbone(backbone):
    """Forward + loss, padding-invariant scoring and batched generation with each backbone family."""
    torch.manual_seed(0)
    model = SpeechLMForCausalLM(SpeechLMConfig(text_config=BACKBONES[backbone](), num_units=20)).eval()
    assert model.language_model.config.model_type == backbone
    units = SpeechLMModelTester().get_units((6, 2))
    right, right_mask = model.units_to_input_ids(units, padding_side="right", add_eos=True)
    left, left_mask = model.units_to_input_ids(units, padding_side="left", add_eos=True)
    out = model(input_ids=right, attention_mask=right_mask, labels=right.masked_fill(right_mask == 0, -100))
    assert out.logits.shape == (*right.shape, 20 + 5) and torch.isfinite(out.loss)
    # base_model is the headless body, as for transformers' causal LMs (TRL's fused LM head relies on it)
    hidden = model.base_model(input_ids=right, attention_mask=right_mask).last_hidden_state
    torch.testing.assert_close(model.get_output_embeddings()(hidden), out.logits)
    scores = model.log_likelihood(right, right_mask).sum_nll
    torch.testing.assert_close(model.log_likelihood(left, left_mask).sum_nll, scores, atol=1e-5, rtol=1e-5)
    batched = model.generate_units(units, max_new_tokens=4, do_sample=False)
    assert [u.tolist() for u in batched] == [
        model.generate_units([u], max_new_tokens=4, do_sample=False)[0].tolist() for u in units
    ]


# ====================================================================== text_config, old checkpoints, resizing
def test_text_config_is_the_transformers_composite_name():
    backbone = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4)
    config = SpeechLMConfig(text_config=backbone, num_units=10)
    assert SpeechLMConfig.sub_configs == {"text_config": AutoConfig}
    assert config.get_text_config() is config.get_text_config(decoder=True) is config.text_config
    # What transformers' generation / cache code and GenerationTesterMixin read on a composite config.
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (32, 4, 3)
    assert config.vocab_size == config.text_config.vocab_size == 15
    saved = config.to_dict()
    assert "text_config" in saved and "backbone_config" not in saved and "hidden_size" not in saved


def test_backbone_config_old_name_is_still_read(tmp_path):
    backbone = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4)
    with pytest.warns(FutureWarning, match="text_config"):
        config = SpeechLMConfig(backbone_config=backbone, num_units=10)
    assert config.text_config.hidden_size == 32
    with pytest.warns(FutureWarning, match="text_config"):
        assert config.backbone_config is config.text_config
    with pytest.raises(ValueError, match="both"):
        SpeechLMConfig(text_config=backbone, backbone_config=backbone)
    # A config.json written before the rename loads without a warning (checkpoints on the Hub cannot be fixed).
    model = SpeechLMForCausalLM(config).eval()
    model.save_pretrained(tmp_path)
    legacy = json.loads((tmp_path / "config.json").read_text())
    legacy["backbone_config"] = legacy.pop("text_config")
    (tmp_path / "config.json").write_text(json.dumps(legacy))
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[11, 1, 2, 3, 4]])
    torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=0)


def _embedded_language_model():
    import hf_slm

    return SpeechLMForCausalLM.from_pretrained(hf_slm.DEFAULT_PIPELINE, subfolder="language_model").eval()


def test_embedded_checkpoint_loads_with_the_same_logits():
    """The embedded variant's config.json as committed (it may still say `backbone_config`) loads, and the wrapper
    gives exactly the logits of its backbone loaded alone from the same files."""
    import hf_slm
    from safetensors.torch import load_file

    folder = os.path.join(hf_slm.DEFAULT_PIPELINE, "language_model")
    saved = json.loads(open(os.path.join(folder, "config.json")).read())
    backbone_dict = saved.get("text_config", saved.get("backbone_config"))
    model = _embedded_language_model()
    backbone = LlamaForCausalLM(LlamaConfig(**backbone_dict)).eval()
    weights = load_file(os.path.join(folder, "model.safetensors"))
    backbone.load_state_dict({k.removeprefix("language_model."): v for k, v in weights.items()}, strict=False)
    backbone.tie_weights()
    ids = torch.tensor([[model.config.bos_token_id, *range(5, 25)]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, backbone(input_ids=ids).logits, rtol=0, atol=0)


def test_resize_token_embeddings_adds_tokens_to_a_trained_lm_and_trains_on(tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    model = _embedded_language_model()
    config = model.config
    old_size, named = config.vocab_size, config.vocab_layout.vocab_size
    ids = torch.tensor([[config.bos_token_id, *config.units_to_token_ids(range(20)).tolist()]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
    model.resize_token_embeddings(old_size + 3)
    new_ids = list(range(old_size, old_size + 3))
    assert config.vocab_size == old_size + 3 and config.num_extra_tokens == old_size + 3 - named
    assert config.units_to_token_ids([0, 99]).tolist() == [0, 99]  # every named id is unchanged
    with torch.no_grad():
        after = model(input_ids=ids).logits
    torch.testing.assert_close(after[..., :old_size], before, rtol=0, atol=0)
    assert after.shape[-1] == old_size + 3
    with pytest.raises(ValueError, match="layout names"):
        model.resize_token_embeddings(named - 1)

    rows = [[config.bos_token_id, new_ids[i % 3], *range(i, i + 8), new_ids[(i + 1) % 3], config.eos_token_id]
            for i in range(8)]  # fmt: skip
    dataset = Dataset.from_dict({"input_ids": rows, "labels": rows})
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), max_steps=3, learning_rate=1e-3,
                             per_device_train_batch_size=4, report_to="none", save_strategy="no", use_cpu=True,
                             logging_steps=1000, seed=0, disable_tqdm=True)  # fmt: skip
    new_row = model.get_input_embeddings().weight[new_ids[0]].detach().clone()
    model.train()
    Trainer(model=model, args=args, train_dataset=dataset).train()
    model.eval()
    assert not torch.equal(model.get_input_embeddings().weight[new_ids[0]], new_row)  # the new tokens learn

    model.save_pretrained(tmp_path / "resized")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "resized").eval()
    assert loaded.config.vocab_size == old_size + 3 and loaded.config.num_extra_tokens == old_size + 3 - named
    probe = torch.tensor([[config.bos_token_id, new_ids[2], 4, 5, new_ids[0]]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=probe).logits, model(input_ids=probe).logits)


# ====================================================================== processor saved with the model, PEFT
def test_processor_with_a_text_tokenizer_saves_next_to_the_model(tmp_path, tokenizer):
    tester = SpeechLMModelTester(text_vocab_size=len(tokenizer))
    model = tester.get_model()
    processor = SpeechLMProcessor.from_config(model.config, tokenizer=tokenizer)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    for name in ("modeling_speech_lm.py", "configuration_speech_lm.py", "processing_speech_lm.py"):
        assert (tmp_path / name).exists()
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, SpeechLMProcessor) and loaded.layout == processor.layout
    kwargs = {"units": tester.get_units(), "text": ["the cat", "a dog ran"]}
    assert torch.equal(loaded(**kwargs)["input_ids"], processor(**kwargs)["input_ids"])


def test_peft_lora_forward_backward_and_generate(gslm):
    peft = pytest.importorskip("peft")
    model = SpeechLMModelTester().get_model(seed=1)
    lora = peft.get_peft_model(
        model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    ids, mask = model.units_to_input_ids(SpeechLMModelTester().get_units(), add_eos=True)
    out = lora(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100))
    out.loss.backward()
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert all(p.grad is not None for n, p in lora.named_parameters() if "lora_B" in n)
    assert all(p.grad is None for n, p in lora.named_parameters() if not p.requires_grad)
    generated = lora.generate(input_ids=ids, attention_mask=mask, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] <= ids.shape[1] + 3
    units = lora.generate_units([torch.tensor([1, 2, 3])], max_new_tokens=3, do_sample=False)
    assert len(units) == 1


# ====================================================================== TWIST warm start
def _text_lm(kind: str, vocab_size: int):
    torch.manual_seed(0)
    if kind == "llama":  # untied input / output embeddings
        config = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=False,
        )
        model = LlamaForCausalLM(config)
    else:  # GPT-2: tied embeddings
        config = GPT2Config(
            vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0
        )
        model = GPT2LMHeadModel(config)
    with torch.no_grad():  # move the text rows away from 0 so that "mean of the text rows" is recognisable
        model.get_input_embeddings().weight.add_(1.0)
        if not model.config.tie_word_embeddings:
            model.get_output_embeddings().weight.sub_(0.5)
    return model.eval()


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_warm_start_from_text_lm_preserves_text(tmp_path, tokenizer, kind):
    text_lm = _text_lm(kind, len(tokenizer))
    text_lm.save_pretrained(tmp_path / "text_lm")
    tokenizer.save_pretrained(tmp_path / "text_lm")
    old_in = text_lm.get_input_embeddings().weight.detach().clone()
    old_out = text_lm.get_output_embeddings().weight.detach().clone()

    model = SpeechLMForCausalLM.from_text_lm(tmp_path / "text_lm", 20, task_tokens=["[ASR]"]).eval()
    c = model.config
    assert (c.text_vocab_size, c.unit_token_offset, c.vocab_size) == (11, 11, 11 + 20 + 6)
    new_in = model.get_input_embeddings().weight.detach()
    new_out = model.get_output_embeddings().weight.detach()
    assert new_in.shape == new_out.shape == (c.vocab_size, 32)
    # text rows bit-identical in both tables; new rows initialised once, to the mean of the text rows
    assert torch.equal(new_in[:11], old_in) and torch.equal(new_out[:11], old_out)
    torch.testing.assert_close(new_in[11:], old_in.mean(0).expand(c.vocab_size - 11, -1), atol=1e-4, rtol=0)
    torch.testing.assert_close(new_out[11:], old_out.mean(0).expand(c.vocab_size - 11, -1), atol=1e-4, rtol=0)
    assert (new_out.data_ptr() == new_in.data_ptr()) == (kind == "gpt2")

    # text-only input: the text LM's logits, exactly, on the text vocabulary
    processor = SpeechLMProcessor.from_config(model, tokenizer=AutoTokenizer.from_pretrained(tmp_path / "text_lm"))
    text_ids = torch.tensor([tokenizer("the cat sat on a mat")["input_ids"]])
    with torch.no_grad():
        reference = text_lm(input_ids=text_ids, output_hidden_states=True)
        output = model(input_ids=text_ids, output_hidden_states=True)
    # the backbone computes bit-identical hidden states; the output projection over the larger vocabulary may use
    # another GEMM blocking, so the text logits agree to float32 rounding (seen: 4e-6 on logits of ~16)
    assert all(torch.equal(a, b) for a, b in zip(output.hidden_states, reference.hidden_states))
    torch.testing.assert_close(output.logits[..., :11], reference.logits, rtol=1e-6, atol=1e-5)

    # neither post_init nor a save / load round trip re-initialises any row (transformers issue 35141)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.post_init()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.save_pretrained(tmp_path / "speech_lm")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "speech_lm")
    assert all(torch.equal(before[k], v) for k, v in reloaded.state_dict().items())
    if kind == "gpt2":
        assert reloaded.get_output_embeddings().weight is reloaded.get_input_embeddings().weight
    batch = processor(units=[torch.tensor([1, 2, 3])], text=["the cat"], task="[ASR]", return_labels=True)
    assert torch.isfinite(reloaded(**batch).loss)


def test_warm_start_normal_init_and_unit_tokenizer_argument(tokenizer):
    text_lm = _text_lm("llama", len(tokenizer))
    old_in = text_lm.get_input_embeddings().weight.detach().clone()

    unit_tokenizer = UnitEncoderModel(UnitEncoderConfig(num_units=7))  # the project's speech tokenizer
    model = SpeechLMForCausalLM.from_text_lm(text_lm, unit_tokenizer, new_embeddings_init="normal", seed=3)
    new_rows = model.get_input_embeddings().weight[11:].detach()
    assert model.config.num_units == 7 and torch.equal(model.get_input_embeddings().weight[:11], old_in)
    assert new_rows.mean().abs() < 0.05 and 0.005 < new_rows.std() < 0.05  # N(0, 0.02), not the text mean (~1)
    with pytest.raises(ValueError, match="number of units"):
        SpeechLMForCausalLM.from_text_lm(_text_lm("llama", 11), object())
    with pytest.raises(ValueError, match="new_embeddings_init"):
        SpeechLMForCausalLM.from_text_lm(_text_lm("llama", 11), 5, new_embeddings_init="zeros")


# ====================================================================== processor
@pytest.fixture(scope="module")
def processor():
    tokenizer = make_tokenizer()
    config = SpeechLMModelTester(text_vocab_size=len(tokenizer), task_tokens=["[ASR]", "[TTS]"]).get_config()
    return SpeechLMProcessor.from_config(config, tokenizer=tokenizer)


def _names(processor, ids):
    """Readable tokens: specials by name, units as u<k>, text as words."""
    out = []
    for i in ids:
        name = processor.layout.token_name(i)
        if name.startswith("<unit_"):
            out.append("u" + name[6:-1])
        elif name.startswith("<text_"):
            out.append(processor.tokenizer.convert_ids_to_tokens(int(i)))
        else:
            out.append(name)
    return out


UNITS = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"units": UNITS[:3]}, "<s> [Speech] u1 u2 u3 </s>"),
        ({"text": "the cat sat"}, "<s> [Text] the cat sat </s>"),
        ({"units": UNITS[:2], "text": "a dog"}, "<s> [Speech] u1 u2 [Text] a dog </s>"),
        ({"units": UNITS[:2], "text": "a dog", "first_modality": "text"}, "<s> [Text] a dog [Speech] u1 u2 </s>"),
        ({"units": UNITS[:2], "text": "a dog", "task": "[ASR]"}, "<s> [ASR] [Speech] u1 u2 [Text] a dog </s>"),
        ({"text": "far <|speech|> away", "units": [UNITS[:2]]}, "<s> [Text] far [Speech] u1 u2 [Text] away </s>"),
        ({"text": "<|speech|>", "units": [UNITS[:4]], "add_eos": False}, "<s> [Speech] u1 u2 u3 u4"),
    ],
)
def test_processor_modes(processor, kwargs, expected):
    batch = processor(**kwargs)
    assert _names(processor, batch["input_ids"][0].tolist()) == expected.split()
    assert batch["attention_mask"].sum().item() == len(expected.split())


# word k starts at 0.1 * k s: at 50 Hz, word k owns frames [5k, 5k + 5), with pauses given to the word before
INTERLEAVE = {
    "units": torch.arange(20),
    "words": ["the", "cat", "sat", "on"],
    "word_start": [0.02, 0.1, 0.2, 0.3],
    "word_end": [0.08, 0.18, 0.28, 0.36],
}


@pytest.mark.parametrize(
    "start, expected",
    [
        ("speech", "<s> [Speech] u0 u1 u2 u3 u4 [Text] cat [Speech] u10 u11 u12 u13 u14 [Text] on </s>"),
        ("text", "<s> [Text] the [Speech] u5 u6 u7 u8 u9 [Text] sat [Speech] u15 u16 u17 u18 u19 </s>"),
    ],
)
def test_interleave_switches_at_word_boundaries(processor, start, expected):
    batch = interleave(processor, **INTERLEAVE, start_modality=start, switch_probability=1.0)
    assert _names(processor, batch["input_ids"][0].tolist()) == expected.split()


def test_interleave_probability_and_seed(processor):
    never = interleave(processor, **INTERLEAVE, start_modality="speech", switch_probability=0.0)["input_ids"]
    assert torch.equal(never, processor(units=INTERLEAVE["units"])["input_ids"])
    text_only = interleave(processor, **INTERLEAVE, start_modality="text", switch_probability=0.0)["input_ids"][0]
    assert _names(processor, text_only) == "<s> [Text] the cat sat on </s>".split()
    batch = {k: [v] * 8 for k, v in INTERLEAVE.items()}
    a = interleave(processor, **batch, seed=7)["input_ids"]
    assert torch.equal(a, interleave(processor, **batch, seed=7)["input_ids"])
    draws = {
        tuple(row.tolist()) for seed in range(4) for row in interleave(processor, **batch, seed=seed)["input_ids"]
    }
    assert len(draws) > 3  # the draws differ across utterances and seeds
    # every draw tells the whole utterance once: each unit or word exactly once, in order
    for row in draws:
        names = [n for n in _names(processor, row) if n not in ("<s>", "</s>", "[Speech]", "[Text]", "<pad>")]
        units = [int(n[1:]) for n in names if n.startswith("u")]
        assert units == sorted(units) and [n for n in names if not n.startswith("u")] == [
            w for w in INTERLEAVE["words"] if w in names
        ]


@pytest.mark.parametrize("pre_tokenizer", ["byte_level", "metaspace"])
def test_interleave_text_spans_keep_the_sentence_tokenization(pre_tokenizer):
    """Subword tokenizers (GPT-2 `Ġ`, SentencePiece `▁`): text spans hold exactly the full sentence's tokens."""
    if pre_tokenizer == "byte_level":
        pre, dec = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    else:
        pre, dec = pre_tokenizers.Metaspace(), decoders.Metaspace()
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer, tok.decoder = pre, dec
    tok.train_from_iterator([" ".join(WORDS)] * 3, trainers.BpeTrainer(vocab_size=24, special_tokens=["<unk>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    config = SpeechLMConfig(text_vocab_size=len(tokenizer), num_units=20)
    processor = SpeechLMProcessor.from_config(config, tokenizer=tokenizer)
    words = ["the", "cat", "sat", "away"]
    full = tokenizer(" ".join(words))["input_ids"]
    per_word = [tokenizer(w if k == 0 else " " + w)["input_ids"] for k, w in enumerate(words)]
    assert sum(per_word, []) == full and max(len(t) for t in per_word) > 1  # subwords, and the check below bites
    timing = {"words": words, "word_start": [0.0, 0.1, 0.2, 0.3], "units": torch.arange(20)}
    text_only = interleave(processor, **timing, start_modality="text", switch_probability=0.0)["input_ids"][0]
    text_only = text_only.tolist()
    assert text_only == [config.bos_token_id, config.text_token_id, *full, config.eos_token_id]
    alternate = interleave(processor, **timing, start_modality="speech", switch_probability=1.0)["input_ids"][0]
    alternate = alternate.tolist()
    texts = [i for i in alternate if i < config.text_vocab_size]
    assert texts == per_word[1] + per_word[3]


def test_interleave_validation_errors(processor):
    with pytest.raises(ValueError, match="word times reach"):
        interleave(processor, **{**INTERLEAVE, "units": torch.arange(5)})
    with pytest.raises(ValueError, match="non-decreasing"):
        interleave(processor, **{**INTERLEAVE, "word_start": [0.0, 0.3, 0.2, 0.3]})
    with pytest.raises(ValueError, match="word_end"):
        interleave(processor, **{**INTERLEAVE, "word_end": [0.0, 0.0, 0.0, 0.0]})
    with pytest.raises(ValueError, match="one entry per utterance"):
        interleave(processor, **{**INTERLEAVE, "units": [torch.arange(20)] * 2})
    with pytest.raises(ValueError, match="takes its text from `words`"):
        interleave(processor, **INTERLEAVE, text="the cat")


def test_labels_and_prefix_masking(processor):
    batch = processor(units=[UNITS[:3], UNITS[:1]], text=["the cat", "a"], return_labels=True, mask_prefix=True)
    ids, labels = batch["input_ids"], batch["labels"]
    # sequence 0: <s> [Speech] u1 u2 u3 [Text] the cat </s>: only "the cat </s>" is learned
    assert labels[0].tolist() == [-100] * 6 + ids[0, 6:9].tolist()
    assert labels[1].tolist() == [-100] * 4 + ids[1, 4:6].tolist() + [-100] * 3  # right padding
    plain = processor(units=[UNITS[:3], UNITS[:1]], text=["the cat", "a"], return_labels=True)
    assert torch.equal(plain["labels"], plain["input_ids"].masked_fill(plain["attention_mask"] == 0, -100))


def test_placeholder_expansion_counts(processor):
    units = [UNITS[:3], UNITS[:6], UNITS[:1]]
    batch = processor(text=["<|speech|> then <|speech|>", "far <|speech|>"], units=units, padding_side="left")
    unit_mask = processor.layout.is_unit_token(batch["input_ids"])
    assert unit_mask.sum(-1).tolist() == [3 + 6, 1]
    assert batch["attention_mask"][1, 0] == 0  # left padded
    with pytest.raises(ValueError, match="2 unit sequence"):
        processor(text=["<|speech|> <|speech|> <|speech|>"], units=units[:2])
    with pytest.raises(ValueError, match="leave mode=None"):
        processor(text="<|speech|>", units=[UNITS], mode="text")


def test_processor_unpadded_lists_and_pad_collator(processor):
    features = processor(units=[UNITS[:3], UNITS[:1]], return_labels=True, return_tensors=None)
    assert isinstance(features["input_ids"][0], list) and len(features["input_ids"][1]) == 4
    examples = [{k: features[k][i] for k in features} for i in range(2)]
    padded = processor.pad(examples)
    direct = processor(units=[UNITS[:3], UNITS[:1]], return_labels=True)
    for key in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(padded[key], direct[key])
    assert processor.pad(examples, padding_side="left")["labels"][1, :2].tolist() == [-100, -100]


def test_processor_decode_and_errors(processor, tokenizer):
    ids = processor(units=UNITS[:2], text="the cat", task="[TTS]")["input_ids"][0]
    assert processor.decode(ids) == "<s>[TTS][Speech]<unit_1><unit_2>[Text]the cat</s>"
    segments = processor.decode_segments(ids)
    assert segments[0][0] == "speech" and segments[0][1].tolist() == [1, 2] and segments[1] == ("text", "the cat")
    with pytest.raises(ValueError, match="no text tokenizer"):
        SpeechLMProcessor(num_units=5)(text="the cat")
    with pytest.raises(ValueError, match="text_vocab_size=3"):
        SpeechLMProcessor(tokenizer=tokenizer, text_vocab_size=3)
    with pytest.raises(ValueError, match="unit 20 is outside"):
        processor(units=torch.tensor([20]))
    with pytest.raises(ValueError, match="mode must be one of"):
        processor(units=UNITS, mode="speech-only")
    with pytest.raises(ValueError, match="takes no `text`"):
        processor(units=UNITS, text="the", mode="speech")


def test_processor_without_tokenizer_roundtrip(tmp_path):
    processor = SpeechLMProcessor.from_config(SpeechLMConfig(num_units=50), frame_rate=25.0)
    processor.save_pretrained(tmp_path)
    assert not (tmp_path / "tokenizer_config.json").exists()
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, SpeechLMProcessor) and loaded.tokenizer is None and loaded.frame_rate == 25.0
    units = [np.array([3, 4]), [49]]
    assert torch.equal(loaded(units=units)["input_ids"], processor(units=units)["input_ids"])


def test_no_kv_cache_while_training_so_packed_rows_stay_separate():
    """A cache built during training disables transformers' packed-sequence masking (utterances would leak)."""
    torch.manual_seed(0)
    model = SpeechLMForCausalLM(SpeechLMConfig(num_units=10, text_config=LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)))
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    positions = torch.tensor([[0, 1, 2, 0, 1, 2]])  # two packed utterances
    model.train()
    packed = model(input_ids=ids, position_ids=positions, labels=ids)
    assert packed.cache is None
    model.eval()
    assert model(input_ids=ids).cache is not None  # inference keeps its cache
    with torch.no_grad():
        alone = torch.cat([model(input_ids=ids[:, :3]).logits, model(input_ids=ids[:, 3:]).logits], dim=1)
        torch.testing.assert_close(model(input_ids=ids, position_ids=positions, use_cache=False).logits, alone)


def test_suppressed_token_ids_keep_export_and_fullgraph_compile():
    """As a converted slamkit LM: the specials its source lacks are out of scoring and generation, and forward still
    traces (the suppression lives in `log_likelihood` and the generation config, not in `forward`)."""
    config = TestSpeechLMComponent().get_model().config
    layout = config.vocab_layout
    suppressed = [layout.bos_token_id, layout.speech_token_id, layout.text_token_id]
    model = SpeechLMForCausalLM(SpeechLMConfig(**{**config.to_dict(), "suppressed_token_ids": suppressed})).eval()
    kwargs = TestSpeechLMComponent().export_inputs()
    with torch.no_grad():
        eager = model(**kwargs).logits
        torch.testing.assert_close(torch.export.export(model, (), kwargs).module()(**kwargs)[0], eager)
        torch._dynamo.reset()
        torch.testing.assert_close(torch.compile(model, fullgraph=True, backend="eager")(**kwargs).logits, eager)
