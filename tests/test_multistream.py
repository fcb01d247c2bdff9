"""Tests of the multi-stream speech LM: config, delay patterns, forward / per-stream losses, generation with delays
undone (learned cross-stream structure, KV cache vs full forward), depth transformer, pGSLM streams and F0, Trainer.
The common checks (save/load, Auto classes, remote code, padded batch, dtype, device, export) run through
`ComponentTesterMixin` (`TestMultiStreamComponent`)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import GPT2Config, LlamaConfig, LogitsProcessor, LogitsProcessorList

from hf_slm import UnitEncoderModel
from hf_slm.models.speech_lm import (
    MultiStreamSpeechLMConfig,
    MultiStreamSpeechLMForCausalLM,
    ProsodyQuantizer,
    RepetitionAwareSamplingLogitsProcessor,
    apply_delay_pattern,
    estimate_f0,
    undo_delay_pattern,
)
from component_tester import ComponentTesterMixin
from tiny_components import NUM_UNITS


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models run fastest on one thread


class MultiStreamModelTester:
    """Tiny configs in the style of transformers' ModelTesters (hidden 32, 2 layers)."""

    def __init__(self, stream_vocab_sizes=(8, 8, 8), stream_kind="codec", delays=None, depth=False, backbone=None):
        self.stream_vocab_sizes = list(stream_vocab_sizes)
        self.stream_kind, self.delays, self.depth = stream_kind, delays, depth
        self.backbone = backbone or LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
        )

    def get_config(self) -> MultiStreamSpeechLMConfig:
        return MultiStreamSpeechLMConfig(
            text_config=self.backbone,
            stream_vocab_sizes=self.stream_vocab_sizes,
            stream_kind=self.stream_kind,
            delays=self.delays,
            use_depth_transformer=self.depth,
            depth_hidden_size=16,
            depth_num_hidden_layers=1,
            depth_num_attention_heads=2,
        )

    def get_model(self, seed: int = 0) -> MultiStreamSpeechLMForCausalLM:
        torch.manual_seed(seed)
        return MultiStreamSpeechLMForCausalLM(self.get_config()).eval()

    def get_frames(self, batch: int = 2, frames: int = 6, seed: int = 0) -> torch.LongTensor:
        g = torch.Generator().manual_seed(seed)
        return torch.stack([torch.randint(0, v, (batch, frames), generator=g) for v in self.stream_vocab_sizes], 1)


class TestMultiStreamComponent(ComponentTesterMixin):
    """Codec-style, 3 codebooks with delays [0, 1, 2] and a depth transformer (`tiny_components`)."""

    component = "multistream_speech_lm"
    model_class = MultiStreamSpeechLMForCausalLM
    compared_outputs = ("logits",)

    def export_inputs(self):
        return {**self.get_inputs(), "use_cache": False}  # a DynamicCache is no pytree output

    def get_batch_and_items(self):
        model = self.get_model()
        frames = torch.randint(0, NUM_UNITS, (2, 3, 6), generator=torch.Generator().manual_seed(0))
        batch = model.prepare_inputs(frames, attention_mask=torch.tensor([[1] * 6, [1] * 4 + [0] * 2]))
        items = [model.prepare_inputs(frames[:1]), model.prepare_inputs(frames[1:, :, :4])]
        keep = ("input_ids", "attention_mask")
        return {k: batch[k] for k in keep}, [{k: item[k] for k in keep} for item in items]

    def remote_calls(self, model):  # the delay-undoing generation loop is remote code too
        prompt = torch.randint(0, NUM_UNITS, (1, 3, 3), generator=torch.Generator().manual_seed(0))
        greedy = {"prompt_streams": prompt, "max_new_frames": 4, "do_sample": False}
        return {**super().remote_calls(model), "generate": ("generate", greedy)}


# ====================================================================== config
def test_config_defaults_and_derived_values():
    codec = MultiStreamSpeechLMConfig()
    assert (codec.stream_kind, codec.stream_vocab_sizes, codec.delays) == ("codec", [1024] * 4, [0, 1, 2, 3])
    assert codec.stream_names == ("codebook_0", "codebook_1", "codebook_2", "codebook_3")
    pgslm = MultiStreamSpeechLMConfig(stream_kind="pgslm")
    assert pgslm.stream_names == ("units", "duration", "f0")
    assert (pgslm.stream_vocab_sizes, pgslm.delays) == ([100, 32, 33], [0, 1, 1])
    config = MultiStreamSpeechLMConfig(stream_vocab_sizes=[5, 3], delays=[0, 2])
    assert config.stream_token_offsets == [0, 7]
    assert config.embedding_vocab_size == config.text_config.vocab_size == 12
    assert (config.pad_token_ids, config.bos_token_ids, config.max_delay) == ([5, 3], [6, 4], 2)
    assert config.text_config.pad_token_id is None  # no frozen padding row in the shared table


def test_config_does_not_modify_the_callers_text_config():
    backbone = LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=777)
    MultiStreamSpeechLMConfig(text_config=backbone, stream_vocab_sizes=[4, 4])
    assert backbone.vocab_size == 777


def test_text_config_name_and_the_old_backbone_config():
    backbone = LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = MultiStreamSpeechLMConfig(text_config=backbone, stream_vocab_sizes=[4, 4])
    assert config.get_text_config() is config.text_config
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (32, 2, 1)
    legacy = config.to_dict()
    legacy["backbone_config"] = legacy.pop("text_config")
    loaded = MultiStreamSpeechLMConfig.from_dict(legacy)  # a config.json written before the rename: no warning
    assert loaded.text_config.to_dict() == config.text_config.to_dict()
    with pytest.warns(FutureWarning, match="text_config"):
        MultiStreamSpeechLMConfig(backbone_config=backbone, stream_vocab_sizes=[4, 4])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stream_kind": "musicgen"}, "stream_kind"),
        ({"stream_vocab_sizes": []}, "stream_vocab_sizes"),
        ({"stream_vocab_sizes": [8, 0]}, "stream_vocab_sizes"),
        ({"stream_kind": "pgslm", "stream_vocab_sizes": [100, 32]}, "exactly 3 streams"),
        ({"stream_vocab_sizes": [8, 8], "delays": [0]}, "delays"),
        ({"stream_vocab_sizes": [8, 8], "delays": [0, -1]}, "delays"),
        ({"stream_vocab_sizes": [8, 8], "delays": [1, 2]}, "smallest value 0"),
        ({"stream_kind": "pgslm", "use_depth_transformer": True}, "use_depth_transformer"),
        ({"stream_vocab_sizes": [8], "use_depth_transformer": True}, "at least 2 codebooks"),
        ({"depth_hidden_size": 30, "depth_num_attention_heads": 4}, "divisible"),
        ({"stream_vocab_sizes": [8, 8], "stream_loss_weights": [1.0]}, "stream_loss_weights"),
        ({"stream_vocab_sizes": [8, 8], "stream_loss_weights": [0.0, 0.0]}, "stream_loss_weights"),
        ({"text_config": {"model_type": "no_such_model"}}, "no_such_model"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiStreamSpeechLMConfig(**kwargs)


# ====================================================================== delay pattern
def test_delay_pattern_layout_musicgen():
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
    delayed, mask = apply_delay_pattern(codes, [0, 1, 2], pad_token_id=0)
    P = 0
    assert delayed.tolist() == [[[1, 2, 3, P, P], [P, 4, 5, 6, P], [P, P, 7, 8, 9]]]
    assert mask.tolist() == [[[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1]]]


@pytest.mark.parametrize("delays", [[0, 0, 0], [0, 1, 2], [0, 2, 1], [0, 1, 1], [2, 0, 5], [0, 3, 3]])
def test_delay_pattern_round_trip(delays):
    codes = torch.randint(0, 50, (2, 3, 7), generator=torch.Generator().manual_seed(1))
    delayed, mask = apply_delay_pattern(codes, delays, pad_token_id=[50, 51, 52])
    assert delayed.shape == (2, 3, 7 + max(delays))
    assert torch.equal(undo_delay_pattern(delayed, delays), codes)
    assert int(mask.sum()) == codes.numel()
    for s, pad in enumerate([50, 51, 52]):  # every position the pattern opened holds that stream's pad
        assert bool((delayed[:, s][~mask[:, s]] == pad).all())


def test_delay_pattern_with_lengths_pads_beyond_each_row():
    codes = torch.arange(12).view(2, 2, 3)
    delayed, mask = apply_delay_pattern(codes, [0, 1], pad_token_id=-7, lengths=torch.tensor([3, 1]))
    assert delayed[1].tolist() == [[6, -7, -7, -7], [-7, 9, -7, -7]]
    assert mask.sum(-1).tolist() == [[3, 3], [1, 1]]


def test_delay_pattern_errors():
    with pytest.raises(ValueError, match="batch, streams, frames"):
        apply_delay_pattern(torch.zeros(3, 4, dtype=torch.long), [0, 1, 2], 0)
    with pytest.raises(ValueError, match="one value per stream"):
        apply_delay_pattern(torch.zeros(1, 3, 4, dtype=torch.long), [0, 1], 0)
    with pytest.raises(ValueError, match="shorter than the largest delay"):
        undo_delay_pattern(torch.zeros(1, 2, 1, dtype=torch.long), [0, 3])


# ====================================================================== inputs, forward, losses
def test_prepare_inputs_layout_and_labels():
    tester = MultiStreamModelTester(stream_vocab_sizes=(5, 6), delays=[0, 1])
    model = tester.get_model()
    frames = torch.tensor([[[1, 2, 3], [4, 5, 0]], [[4, 3, 9], [1, 2, 9]]])  # row 1: 2 real frames + padding
    inputs = model.prepare_inputs(frames, attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]))
    bos0, bos1, pad0, pad1 = 6, 7, 5, 6
    assert inputs["input_ids"].tolist() == [
        [[bos0, 1, 2, 3, pad0], [bos1, pad1, 4, 5, 0]],
        [[bos0, 4, 3, pad0, pad0], [bos1, pad1, 1, 2, pad1]],
    ]
    assert inputs["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert inputs["labels"].tolist() == [
        [[-100, 1, 2, 3, -100], [-100, -100, 4, 5, 0]],
        [[-100, 4, 3, -100, -100], [-100, -100, 1, 2, -100]],
    ]
    with pytest.raises(ValueError, match="right padding"):
        model.prepare_inputs(frames, attention_mask=torch.tensor([[0, 1, 1], [1, 1, 1]]))
    with pytest.raises(ValueError, match=r"stream 0 \(codebook_0\) holds id 5, outside \[0, 5\)"):
        model.prepare_inputs(torch.tensor([[[5], [0]]]))


@pytest.mark.parametrize("depth", [False, True], ids=["heads", "depth"])
def test_forward_logits_and_per_stream_losses(depth):
    tester = MultiStreamModelTester(stream_vocab_sizes=(7, 5, 9), delays=[0, 1, 2], depth=depth)
    model = tester.get_model()
    model.config.stream_loss_weights = [1.0, 2.0, 0.5]
    inputs = model.prepare_inputs(tester.get_frames(batch=2, frames=5))
    out = model(**inputs)
    assert out.logits.shape == (2, 3, 1 + 5 + 2, 9)
    for s, vocab in enumerate((7, 5, 9)):
        assert torch.isfinite(out.logits[:, s, :, :vocab]).all()
        assert torch.isneginf(out.logits[:, s, :, vocab:]).all()
        labels = inputs["labels"][:, s, 1:]
        manual = torch.nn.functional.cross_entropy(
            out.logits[:, s, :-1, :vocab].reshape(-1, vocab), labels.reshape(-1), ignore_index=-100
        )
        torch.testing.assert_close(out.stream_losses[s], manual)
    torch.testing.assert_close(out.loss, (out.stream_losses * torch.tensor([1.0, 2.0, 0.5])).sum() / 3.5)
    out.loss.backward()
    assert model.get_input_embeddings().weight.grad is not None
    # labels = input_ids scores exactly the same targets: <pad> / <s> are never targets
    same = model(input_ids=inputs["input_ids"], labels=inputs["input_ids"])
    torch.testing.assert_close(same.stream_losses, out.stream_losses)


def test_forward_input_errors():
    model = MultiStreamModelTester().get_model()
    with pytest.raises(ValueError, match="3 streams"):
        model(input_ids=torch.zeros(1, 2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        model(input_ids=torch.full((1, 3, 4), 10))  # 8 values + <pad> + <s> = ids 0..9
    with pytest.raises(ValueError, match="exactly one"):
        model()
    with pytest.raises(ValueError, match="needs input_ids"):
        MultiStreamModelTester(depth=True).get_model()(inputs_embeds=torch.zeros(1, 3, 32))


def test_any_decoder_backbone_gpt2():
    gpt2 = GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64)
    tester = MultiStreamModelTester(backbone=gpt2, delays=[0, 1, 1])
    model = tester.get_model()
    out = model(**model.prepare_inputs(tester.get_frames()))
    assert out.logits.shape == (2, 3, 8, 8) and torch.isfinite(out.loss)
    assert model.generate(tester.get_frames()[:, :, :3], max_new_frames=4, do_sample=False).shape == (2, 3, 4)


# ====================================================================== generation
def _train(model, make_frames, steps: int, lr: float = 2e-2):
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        out = model(**model.prepare_inputs(make_frames(step)))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    return model.eval(), out.stream_losses.detach()


def _linked_frames(batch: int, frames: int, seed: int, vocab: int = 8) -> torch.LongTensor:
    """Codebook 0 random each frame; codebook s = codebook 0 + s (mod vocab): learnable only if, when a frame's
    codebook s is predicted, its codebook 0 is already known (a delay, or the depth transformer)."""
    first = torch.randint(0, vocab, (batch, 1, frames), generator=torch.Generator().manual_seed(seed))
    return (first + torch.arange(3).view(1, 3, 1)) % vocab


@pytest.mark.parametrize(
    "delays, depth, learnable",
    [([0, 1, 2], False, True), ([0, 0, 0], True, True), ([0, 0, 0], False, False)],
    ids=["musicgen_delays", "depth_transformer", "parallel_no_delay"],
)
def test_generation_undoes_delays_on_learned_cross_stream_structure(delays, depth, learnable):
    model = MultiStreamModelTester(delays=delays, depth=depth).get_model()
    model, losses = _train(model, lambda step: _linked_frames(16, 10, seed=step), steps=40)
    chance = math.log(8)
    assert losses[0] > 0.7 * chance  # codebook 0 is random: nothing to learn
    if not learnable:  # without a delay or depth, codebooks 1-2 cannot see the frame's codebook 0
        assert bool((losses[1:] > 0.7 * chance).all()), losses
        return
    assert bool((losses[1:] < 0.1).all()), losses
    torch.manual_seed(0)
    prompt = _linked_frames(4, 3, seed=999)
    generated = model.generate(prompt, max_new_frames=12, do_sample=True)
    assert generated.shape == (4, 3, 12)
    # aligned output: every generated frame links its codebooks as in training (a wrong undo shifts them apart)
    expected = (generated[:, :1] + torch.arange(3).view(1, 3, 1)) % 8
    assert (generated == expected).float().mean() > 0.97
    assert len(generated[:, 0].unique()) > 4  # sampled, not collapsed


def test_generation_continues_the_prompt_undelayed():
    """Each codebook counts up by one per frame from a random start: the continuation must pick up exactly where
    the prompt stops, in every codebook (off-by-one delay handling would shift it)."""

    def counting(batch, frames, seed):
        start = torch.randint(0, 8, (batch, 3, 1), generator=torch.Generator().manual_seed(seed))
        return (start + torch.arange(frames)) % 8

    model = MultiStreamModelTester(delays=[0, 2, 1]).get_model()
    model, _ = _train(model, lambda step: counting(16, 10, seed=step), steps=40)
    full = counting(3, 12, seed=123)
    generated = model.generate(full[:, :, :4], max_new_frames=8, do_sample=False)
    assert torch.equal(generated, full[:, :, 4:])


@pytest.mark.parametrize("depth", [False, True], ids=["heads", "depth"])
def test_greedy_generation_is_a_fixed_point_of_the_full_forward(depth):
    """KV-cached, frame-by-frame greedy decoding equals the argmax of one teacher-forced forward over its output."""
    tester = MultiStreamModelTester(stream_vocab_sizes=(6, 7, 5), delays=[0, 2, 1], depth=depth)
    model = tester.get_model(seed=3)
    prompt = tester.get_frames(batch=2, frames=3, seed=4)
    generated = model.generate(prompt, max_new_frames=6, do_sample=False)
    inputs = model.prepare_inputs(torch.cat([prompt, generated], dim=-1))
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"]).logits
    for s, (vocab, delay) in enumerate(zip((6, 7, 5), (0, 2, 1))):
        positions = torch.arange(3, 9) + delay  # delayed positions of the new frames (after <s>: +1, minus shift)
        predicted = logits[:, s, positions, :vocab].argmax(-1)
        assert torch.equal(predicted, generated[:, s]), s


def test_generate_unconditional_and_errors():
    model = MultiStreamModelTester(delays=[0, 1, 2]).get_model()
    assert model.generate(max_new_frames=5, batch_size=3).shape == (3, 3, 5)
    assert model.generate(torch.zeros(2, 3, 0, dtype=torch.long), max_new_frames=2).shape == (2, 3, 2)
    with pytest.raises(ValueError, match="max_new_frames"):
        model.generate(max_new_frames=0)
    with pytest.raises(ValueError, match="real values only"):
        model.generate(torch.full((1, 3, 2), 8), max_new_frames=2)  # 8 is codebook 0's <pad>
    with pytest.raises(ValueError, match="one entry per stream"):
        model.generate(max_new_frames=2, logits_processor=(None, None))


@pytest.mark.parametrize("pattern", ["delay", "flatten"])
def test_streamer_gets_each_frame_as_soon_as_all_its_streams_are_known(pattern):
    """The streamer's frames equal `generate`'s output (same draws), and frame k of the continuation arrives after
    k + 1 + max delay backbone calls (delay pattern) or (k + 1) * S (flattened): during generation, not after it."""
    from transformers.generation.streamers import BaseStreamer

    tester = MultiStreamModelTester(delays=[0, 2, 1] if pattern == "delay" else None)
    config = tester.get_config()
    config.pattern = pattern
    torch.manual_seed(0)
    model = MultiStreamSpeechLMForCausalLM(config).eval()
    calls = []
    model.backbone.register_forward_hook(lambda *_: calls.append(1))

    class Collect(BaseStreamer):
        def __init__(self):
            self.values, self.calls_at_put, self.ended = [], [], False

        def put(self, value):
            self.values.append(value.clone())
            self.calls_at_put.append(len(calls))

        def end(self):
            self.ended = True

    prompt, new = tester.get_frames(batch=1, frames=3), 7
    reference = model.generate(prompt, max_new_frames=new, generator=torch.Generator().manual_seed(5))
    calls.clear()
    streamer = Collect()
    out = model.generate(prompt, max_new_frames=new, generator=torch.Generator().manual_seed(5), streamer=streamer)
    assert torch.equal(out, reference) and streamer.ended
    assert torch.equal(streamer.values[0], prompt)
    assert torch.equal(torch.stack(streamer.values[1:], dim=-1), out)
    if pattern == "delay":
        expected = [k + 1 + 2 for k in range(new)]
    else:
        expected = [(k + 1) * 3 for k in range(new)]
    assert streamer.calls_at_put[1:] == expected
    assert model.generate_units([prompt[0]], max_new_tokens=2, streamer=Collect())[0].shape == (3, 2)
    with pytest.raises(ValueError, match="one prompt at a time"):
        model.generate_units([prompt[0], prompt[0]], max_new_tokens=2, streamer=Collect())


class _Force(LogitsProcessor):
    def __init__(self, token: int):
        self.token = token

    def __call__(self, input_ids, scores):
        forced = torch.full_like(scores, -float("inf"))
        forced[:, self.token] = 0
        return forced


@pytest.mark.parametrize("depth", [False, True], ids=["heads", "depth"])
def test_per_stream_logits_processors_reach_their_stream(depth):
    model = MultiStreamModelTester(delays=[0, 2, 1], depth=depth).get_model()
    prompt = MultiStreamModelTester().get_frames(batch=2, frames=2)
    out = model.generate(prompt, max_new_frames=5, do_sample=True, logits_processor=(None, None, [_Force(3)]))
    assert bool((out[:, 2] == 3).all()) and not bool((out[:, 0] == 3).all() and (out[:, 1] == 3).all())
    every = model.generate(prompt, max_new_frames=5, logits_processor=LogitsProcessorList([_Force(6)]))
    assert bool((every == 6).all())
    # repetition-aware sampling as a stream processor
    ras = RepetitionAwareSamplingLogitsProcessor(top_p=0.5, window_size=4, threshold=0.25)
    assert model.generate(prompt, max_new_frames=5, logits_processor=[ras]).shape == (2, 3, 5)


# ====================================================================== pGSLM streams
def test_prosody_quantizer_f0_bins_and_stream_round_trip():
    quantizer = ProsodyQuantizer(max_duration=4, num_f0_bins=8, f0_min=50.0, f0_max=400.0)
    assert quantizer.stream_vocab_sizes(num_units=20) == [20, 4, 9]
    f0 = torch.tensor([0.0, float("nan"), 10.0, 50.0, 100.0, 399.0, 1000.0])
    assert quantizer.quantize_f0(f0).tolist() == [0, 0, 1, 1, 3, 8, 8]  # 100 Hz: 1 of 3 octaves -> bin floor(8 / 3) + 1
    centres = quantizer.dequantize_f0(torch.arange(9))
    assert centres[0] == 0 and torch.equal(quantizer.quantize_f0(centres[1:]), torch.arange(1, 9))

    units = torch.tensor([3, 3, 3, 1, 7, 7, 7, 7, 7, 7, 2, 2])
    f0 = torch.tensor([120.0, 125.0, 0.0, 0.0, 200.0, 210.0, 0.0, 205.0, 0.0, 0.0, 80.0, 80.0])
    streams = quantizer.build_streams(units, f0)
    assert streams[0].tolist() == [3, 1, 7, 2]
    assert streams[1].tolist() == [2, 0, 3, 1]  # durations 3, 1, 6 (clipped to 4), 2 -> token = frames - 1
    geometric_mean = lambda *hz: math.exp(sum(map(math.log, hz)) / len(hz))  # noqa: E731
    voiced_f0 = torch.tensor([geometric_mean(120, 125), 0.0, geometric_mean(200, 210, 205), 80.0])
    assert streams[2].tolist() == quantizer.quantize_f0(voiced_f0).tolist()  # unit 7: 3 of 6 frames voiced
    frame_units, frame_f0 = quantizer.expand_streams(streams)
    assert frame_units.tolist() == [3, 3, 3, 1, 7, 7, 7, 7, 2, 2]  # the 6-frame run comes back as 4
    assert torch.equal(quantizer.quantize_f0(frame_f0), streams[2].repeat_interleave(streams[1] + 1))


def test_build_streams_matches_unit_tokenizer_deduplicate_and_checks_lengths():
    quantizer = ProsodyQuantizer()
    units = torch.tensor([4, 4, 9, 9, 9, 4, 0])
    (dedup, durations), = UnitEncoderModel.deduplicate(units)
    f0 = torch.full((7,), 150.0)
    from_frames = quantizer.build_streams(units, f0)
    assert torch.equal(from_frames, quantizer.build_streams(dedup, f0, durations=durations))
    assert torch.equal(from_frames[0], dedup) and torch.equal(from_frames[1] + 1, durations)
    assert torch.equal(quantizer.build_streams(units, f0[:6]), from_frames)  # one frame short: edge-padded
    with pytest.raises(ValueError, match="one value per unit frame"):
        quantizer.build_streams(units, f0[:3])
    with pytest.raises(ValueError, match="durations"):
        quantizer.build_streams(dedup, f0, durations=torch.tensor([1, 0, 1, 1]))
    with pytest.raises(ValueError, match="max_duration"):
        ProsodyQuantizer(max_duration=0)


@pytest.mark.parametrize("f0", [85.0, 140.0, 230.0, 370.0])
def test_estimate_f0_on_tones_silence_and_noise(f0):
    sr = 16000
    t = torch.arange(sr) / sr
    tone = 0.5 * torch.sin(2 * math.pi * f0 * t) + 0.2 * torch.sin(2 * math.pi * 2 * f0 * t + 0.3)
    audio = torch.cat([torch.zeros(sr // 4), tone, torch.zeros(sr // 4)])
    track = estimate_f0(audio, sr, frame_rate=50)
    assert track.shape == (75,)
    assert bool((track[:10] == 0).all()) and bool((track[-10:] == 0).all())  # silence: unvoiced
    voiced = track[16:60]
    assert bool((voiced > 0).all()) and float(((voiced - f0).abs() / f0).max()) < 0.02
    noise = torch.randn(sr, generator=torch.Generator().manual_seed(0)) * 0.3
    assert float((estimate_f0(noise, sr) > 0).float().mean()) < 0.1
    batch = estimate_f0(torch.stack([audio, audio]), sr)
    assert torch.equal(batch[0], track)


def test_estimate_f0_errors():
    with pytest.raises(ValueError, match="whole number of samples"):
        estimate_f0(torch.zeros(1000), 16000, frame_rate=75)
    with pytest.raises(ValueError, match="mono"):
        estimate_f0(torch.zeros(1, 2, 100), 16000)
    with pytest.raises(ValueError, match="f0_min"):
        estimate_f0(torch.zeros(1000), 16000, f0_min=500, f0_max=400)


def test_pgslm_end_to_end_audio_to_streams_to_generation():
    sr, quantizer = 16000, ProsodyQuantizer(max_duration=8, num_f0_bins=16)
    t = torch.arange(sr) / sr
    audio = torch.sin(2 * math.pi * (120 + 60 * t) * t)  # a rising tone
    f0 = estimate_f0(audio, sr)
    units = (torch.arange(len(f0)) // 3) % 10  # 3-frame units
    streams = quantizer.build_streams(units, f0)
    tester = MultiStreamModelTester(stream_kind="pgslm", stream_vocab_sizes=quantizer.stream_vocab_sizes(10))
    model = tester.get_model()
    assert model.config.delays == [0, 1, 1]
    out = model(**model.prepare_inputs(streams[None]))
    assert out.stream_losses.shape == (3,) and torch.isfinite(out.loss)
    new = model.generate(streams[None, :, :5], max_new_frames=6, do_sample=True)
    frame_units, frame_f0 = quantizer.expand_streams(new[0])
    assert len(frame_units) == len(frame_f0) == int((new[0, 1] + 1).sum())


# ====================================================================== training
def test_trainer_runs_two_steps(tmp_path):
    from transformers import Trainer, TrainingArguments, default_data_collator

    tester = MultiStreamModelTester(delays=[0, 1, 2], depth=True)
    model = tester.get_model().train()
    inputs = model.prepare_inputs(tester.get_frames(batch=8, frames=6))
    examples = [{name: value[i] for name, value in inputs.items()} for i in range(8)]
    before = model.heads[0].weight.detach().clone()
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2, learning_rate=1e-2,
        gradient_accumulation_steps=1, report_to=[], save_strategy="no", logging_steps=1, use_cpu=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=default_data_collator)
    result = trainer.train()
    assert math.isfinite(result.training_loss) and not torch.equal(model.heads[0].weight, before)
