"""AudioLM's hierarchy: the acoustic LM family (coarse and fine stages, `ComponentTesterMixin`), each stage trained
through `Trainer`, and `AudioLMPipeline` (continue_speech, save / reload, component checks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from huggingface_hub import ModelCard
from transformers import Trainer, TrainingArguments

from hf_slm import (
    AcousticLMConfig,
    AcousticLMForCausalLM,
    AudioLMPipeline,
    MelRVQCodecModel,
    PipelineLoadError,
    SpeechFeatureExtractor,
)
from hf_slm.training.acoustic_lm import AcousticLMCollator
from hf_slm.training.collators import CausalLMCollator
from component_tester import ComponentTesterMixin
from tiny_components import (
    NUM_UNITS,
    tiny_acoustic_lm,
    tiny_mel_rvq_codec,
    tiny_rvq_codec,
    tiny_speech_lm,
    tiny_unit_encoder,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RATE, HOP = 16000, 320


class _AcousticTester(ComponentTesterMixin):
    model_class = AcousticLMForCausalLM
    compared_outputs = ("logits",)

    def export_inputs(self):
        return {**self.get_inputs(), "use_cache": False}  # a DynamicCache is no pytree output

    def get_batch_and_items(self):
        model = self.get_model()
        g = torch.Generator().manual_seed(1)
        codes = [torch.randint(0, NUM_UNITS, (4, 6), generator=g), torch.randint(0, NUM_UNITS, (4, 3), generator=g)]
        units = [torch.randint(0, NUM_UNITS, (n,), generator=g) for n in (7, 4)]
        units = units if model.config.condition == "units" else None
        keep = ("input_ids", "attention_mask")
        batch = model.prepare_inputs(codes, units)
        items = [model.prepare_inputs([c], None if units is None else [u]) for c, u in zip(codes, units or [None] * 2)]
        return {k: batch[k] for k in keep}, [{k: item[k] for k in keep} for item in items]


class TestAcousticLMCoarseComponent(_AcousticTester):
    """Coarse stage: 16 semantic units -> codebooks 0, 1 of 16 codes."""

    component = "acoustic_lm_coarse"


class TestAcousticLMFineComponent(_AcousticTester):
    """Fine stage: codebooks 0, 1 -> codebooks 2, 3."""

    component = "acoustic_lm_fine"


# ---------------------------------------------------------------------- the model
def test_config_layout_and_bad_values():
    config = AcousticLMConfig(condition="codes", codebook_size=8, first_codebook=3, num_codebooks=2)
    layout = (config.condition_vocab_size, config.target_offset, config.sep_token_id, config.vocab_size)
    assert layout == (24, 24, 41, 43)
    assert config.text_config.vocab_size == config.vocab_size
    with pytest.raises(ValueError, match="first_codebook must be >= 1"):
        AcousticLMConfig(condition="codes", first_codebook=0)
    with pytest.raises(ValueError, match="num_units=16 is for condition='units'"):
        AcousticLMConfig(condition="codes", first_codebook=1, num_units=16)
    with pytest.raises(ValueError, match="condition must be one of"):
        AcousticLMConfig(condition="text")
    with pytest.raises(ValueError, match="frame_rate must be a number > 0"):
        AcousticLMConfig(frame_rate=0)


def test_docstring_example_runs():
    import doctest

    from hf_slm.models.acoustic_lm import configuration_acoustic_lm

    result = doctest.testmod(configuration_acoustic_lm, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_inputs_flatten_frames_and_score_only_the_target():
    model = tiny_acoustic_lm("fine")
    codes = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8]])  # 4 codebooks, 2 frames
    batch = model.prepare_inputs([codes])
    c, off = model.config, model.config.target_offset
    expected = [c.bos_token_id, 1, 16 + 3, 2, 16 + 4, c.sep_token_id, off + 5, off + 16 + 7, off + 6, off + 16 + 8]
    assert batch["input_ids"][0].tolist() == expected
    assert (batch["labels"][0] != -100).tolist() == [False] * 6 + [True] * 4
    assert model.next_codebook(batch["input_ids"])[0, 5:].tolist() == [0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match="outside \\[0, 16\\)"):
        model.prepare_inputs([codes + 16])
    with pytest.raises(ValueError, match="needs one units sequence per item"):
        tiny_acoustic_lm("coarse").prepare_inputs([codes])


def test_greedy_generation_follows_the_teacher_forced_logits():
    """The KV-cached loop picks, step by step, the argmax of a full forward over what it generated."""
    model = tiny_acoustic_lm("coarse")
    units = torch.randint(0, NUM_UNITS, (1, 9), generator=torch.Generator().manual_seed(0))
    prompt = torch.randint(0, NUM_UNITS, (1, 2, 3), generator=torch.Generator().manual_seed(1))
    new = model.generate(units, prompt, max_new_frames=4, do_sample=False)
    assert new.shape == (1, 2, 4)
    batch = model.prepare_inputs([torch.cat([prompt[0], new[0]], -1)], [units[0]])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"]).logits[0]
    start = 1 + 9 + 1 + 2 * 3  # <s>, units, <sep>, prompt codes
    picked = logits[start - 1 : -1].argmax(-1)
    assert picked.tolist() == new[0].T.reshape(-1).tolist()
    with pytest.raises(ValueError, match="max_position_embeddings"):
        tiny_acoustic_lm("coarse", max_positions=20).generate(units, prompt, max_new_frames=4)


def test_any_transformers_decoder_is_a_backbone():
    """GPT-2 (absolute positions, its own cache layout): generation still follows the teacher-forced logits."""
    from transformers import GPT2Config

    backbone = GPT2Config(n_embd=32, n_layer=1, n_head=2, n_positions=64)
    model = AcousticLMForCausalLM(AcousticLMConfig(text_config=backbone, condition="codes", codebook_size=8,
                                                   first_codebook=1, num_codebooks=2)).eval()  # fmt: skip
    codes = torch.randint(0, 8, (1, 3, 6), generator=torch.Generator().manual_seed(0))
    new = model.generate(codes[:, :1], codes[:, 1:, :2], do_sample=False)  # the 4 frames the prompt leaves
    assert type(model.backbone).__name__ == "GPT2Model" and new.shape == (1, 2, 4)
    batch = model.prepare_inputs([torch.cat([codes[0, :1], torch.cat([codes[0, 1:, :2], new[0]], -1)])])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"]).logits[0]
    start = 1 + 6 + 1 + 4  # <s>, 6 conditioning codes, <sep>, 2 prompt frames x 2 codebooks
    assert logits[start - 1 : -1].argmax(-1).tolist() == new[0].T.reshape(-1).tolist()


# ---------------------------------------------------------------------- training and the pipeline
def _pipeline(**overrides):
    parts = dict(
        feature_extractor=SpeechFeatureExtractor(sampling_rate=RATE, do_normalize=False),
        unit_encoder=tiny_unit_encoder("mfcc"),
        semantic_lm=tiny_speech_lm(),
        coarse_lm=tiny_acoustic_lm("coarse"),
        fine_lm=tiny_acoustic_lm("fine", max_positions=34),  # 8-frame windows: the continuation spans several
        codec=tiny_rvq_codec(upsampling_ratios=(8, 5, 4, 2), num_codebooks=4, codebook_size=NUM_UNITS),  # 50 Hz
    )
    return AudioLMPipeline(**{**parts, **overrides})


def _clips(n=6, seconds=0.5):
    rng = np.random.default_rng(0)
    t = np.arange(int(RATE * seconds)) / RATE
    return [(0.3 * np.sin(2 * np.pi * (120 + 40 * i) * t * (1 + 0.3 * t)) + 0.02 * rng.standard_normal(t.size))
            .astype(np.float32) for i in range(n)]  # fmt: skip


@pytest.fixture(scope="module")
def rows():
    units, codes = _pipeline().encode(_clips(), sampling_rate=RATE)
    return [{"units": u.tolist(), "codes": c.tolist()} for u, c in zip(units, codes)]


def _train(model, dataset, collator, tmp_path, steps=20):
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=3,
                             learning_rate=5e-3, report_to="none", save_strategy="no", use_cpu=True,
                             dataloader_num_workers=0, remove_unused_columns=False, logging_steps=100,
                             seed=0)  # fmt: skip
    trainer = Trainer(model=model.train(), args=args, train_dataset=dataset, eval_dataset=dataset,
                      data_collator=collator)  # fmt: skip
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    return before, trainer.evaluate()["eval_loss"]


@pytest.mark.parametrize("stage", ["semantic", "coarse", "fine"])
def test_each_stage_trains_through_trainer(stage, rows, tmp_path):
    if stage == "semantic":
        model = tiny_speech_lm()
        dataset = Dataset.from_list([{"input_ids": model.units_to_input_ids([r["units"]], add_eos=True)[0][0].tolist()}
                                     for r in rows])  # fmt: skip
        collator = CausalLMCollator(pad_token_id=model.config.pad_token_id)
    else:
        model = tiny_acoustic_lm(stage)
        dataset = Dataset.from_list(rows)
        collator = AcousticLMCollator(model)
    before, after = _train(model, dataset, collator, tmp_path)
    assert after < 0.8 * before, (before, after)


def test_fine_collator_windows_long_utterances(rows):
    model = tiny_acoustic_lm("fine")
    batch = AcousticLMCollator(model, max_frames=8)(rows[:2])
    assert batch["input_ids"].shape == (2, 1 + 8 * 2 + 1 + 8 * 2)  # <s>, 8 frames x 2 coarse, <sep>, 8 x 2 fine
    with pytest.raises(ValueError, match="a coarse model reads the whole utterance"):
        AcousticLMCollator(tiny_acoustic_lm("coarse"), max_frames=8)


def test_continue_speech_saves_reloads_and_keeps_the_acoustic_prompt(tmp_path):
    pipe = _pipeline()
    clip = _clips(1)[0]
    out = pipe.continue_speech(clip, sampling_rate=RATE, max_new_tokens=7, seed=0)
    prompt_frames = out.prompt_codes[0].shape[-1]
    assert out.units[0].shape == (7,) and out.codes[0].shape == (4, 7)
    assert out.waveforms[0].shape == ((prompt_frames + 7) * HOP,) and out.sampling_rate == RATE
    assert torch.equal(out.prompt_codes[0], pipe.encode(clip, sampling_rate=RATE)[1][0])
    assert len(set(out.codes[0].flatten().tolist())) > 1

    pipe.save_pretrained(tmp_path / "variant")
    card = ModelCard.load(tmp_path / "variant" / "README.md")
    assert card.data.library_name == "hf_slm" and "audiolm" in card.data.tags
    for name in pipe.components:
        assert f"| `{name}` |" in card.text, name
    assert 'AudioLMPipeline.from_pretrained("variant")' in card.text and "pipe.continue_speech(" in card.text
    assert 'subfolder="semantic_lm"' in card.text
    loaded = AudioLMPipeline.from_pretrained(tmp_path / "variant")
    assert [type(c) for c in loaded.components.values()] == [type(c) for c in pipe.components.values()]
    again = loaded.continue_speech(clip, sampling_rate=RATE, max_new_tokens=7, seed=0)
    assert torch.equal(again.codes[0], out.codes[0]) and torch.equal(again.units[0], out.units[0])
    np.testing.assert_allclose(again.waveforms[0], out.waveforms[0], atol=1e-6)


def test_the_log_mel_codec_is_an_audiolm_codec(tmp_path):
    """The hierarchy runs over any codec of the shared interface: here the k-means log-mel codec."""
    codec = tiny_mel_rvq_codec(hop_length=HOP, n_fft=1024, num_mel_bins=32, num_codebooks=4, codebook_size=NUM_UNITS)
    pipe, clip = _pipeline(codec=codec), _clips(1)[0]
    out = pipe.continue_speech(clip, sampling_rate=RATE, max_new_tokens=5, seed=0)
    prompt_frames = out.prompt_codes[0].shape[-1]
    assert out.codes[0].shape == (4, 5) and out.waveforms[0].shape == ((prompt_frames + 5) * HOP,)
    assert torch.equal(out.prompt_codes[0], codec.encode(torch.from_numpy(clip)[None]).codes[0])
    pipe.save_pretrained(tmp_path / "variant")
    loaded = AudioLMPipeline.from_pretrained(tmp_path / "variant")
    assert type(loaded.codec) is MelRVQCodecModel
    again = loaded.continue_speech(clip, sampling_rate=RATE, max_new_tokens=5, seed=0)
    assert torch.equal(again.codes[0], out.codes[0])


def test_continue_speech_takes_a_list_of_prompts_of_different_lengths():
    clips = [_clips(1, seconds=0.5)[0], _clips(2, seconds=0.3)[1]]
    out = _pipeline().continue_speech(clips, sampling_rate=RATE, max_new_tokens=4, seed=0)
    frames = [c.shape[-1] for c in out.prompt_codes]
    assert frames == [25, 15]
    assert [w.shape[0] for w in out.waveforms] == [(n + 4) * HOP for n in frames]
    assert [u.shape[0] for u in out.units] == [4, 4]


def test_fine_stage_keeps_the_prompt_frames_and_fills_every_window():
    pipe = _pipeline()
    coarse = torch.randint(0, NUM_UNITS, (2, 19), generator=torch.Generator().manual_seed(0))
    prompt = torch.randint(0, NUM_UNITS, (2, 10), generator=torch.Generator().manual_seed(1))
    assert pipe.fine_window() == 8
    fine = pipe.generate_fine(coarse, prompt, do_sample=False)
    assert fine.shape == (2, 19) and torch.equal(fine[:, :10], prompt)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"codec": "three_codebooks"}, "predict 2 \\+ 2 = 4 codebooks but the codec has 3"),
        ({"semantic_lm": "12_units"}, "unit_encoder produces 16 units but semantic_lm models 12"),
        ({"fine_lm": "coarse"}, "fine_lm must be conditioned on the coarse codebooks"),
        ({"codec": "1000_hz"}, "codec makes 1000.0 frames/s but coarse_lm was trained on 50.0"),
        ({"feature_extractor": "normalising"}, "do_normalize=True"),
    ],
)
def test_mismatched_components_are_refused(overrides, message):
    from transformers import LlamaConfig

    from hf_slm import SpeechLMConfig, SpeechLMForCausalLM

    make = {
        "three_codebooks": lambda: tiny_rvq_codec(upsampling_ratios=(8, 5, 4, 2), num_codebooks=3, codebook_size=16),
        "12_units": lambda: SpeechLMForCausalLM(SpeechLMConfig(text_config=LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4), num_units=12)),
        "coarse": lambda: tiny_acoustic_lm("coarse"),
        "1000_hz": lambda: tiny_rvq_codec(num_codebooks=4, codebook_size=16),
        "normalising": lambda: SpeechFeatureExtractor(sampling_rate=RATE),
    }
    with pytest.raises(PipelineLoadError, match=message):
        _pipeline(**{name: make[kind]() for name, kind in overrides.items()})


def test_a_saved_variant_with_a_mismatched_component_is_refused_at_load(tmp_path):
    _pipeline().save_pretrained(tmp_path / "variant")
    tiny_rvq_codec(upsampling_ratios=(8, 5, 4, 2), num_codebooks=3, codebook_size=16).save_pretrained(
        tmp_path / "variant" / "codec"
    )
    with pytest.raises(PipelineLoadError, match="the codec has 3"):
        AudioLMPipeline.from_pretrained(tmp_path / "variant")
    from hf_slm import SpeechLMPipeline

    with pytest.raises(PipelineLoadError, match="is a AudioLMPipeline variant.*load it with AudioLMPipeline"):
        SpeechLMPipeline.from_pretrained(tmp_path / "variant")


def test_example_trains_and_saves_a_variant(tmp_path):
    from example_loader import ROOT, load_script

    path = ROOT / "examples" / "audiolm" / "train_audiolm.py"
    module = load_script(path)
    variant = module.main([str(path.with_name("config_tiny.json")), "--output_dir", str(tmp_path / "run"),
                           "--num_sentences", "10", "--num_eval_utterances", "1", "--max_steps", "2",
                           "--hidden_size", "32", "--per_device_train_batch_size", "2",
                           "--fine_window_frames", "20"])  # fmt: skip
    pipe = AudioLMPipeline.from_pretrained(variant)
    assert (pipe.coarse_lm.config.num_codebooks, pipe.fine_lm.config.first_codebook, pipe.fine_window()) == (2, 2, 20)
    clip = _clips(1)[0]
    out = pipe.continue_speech(clip, sampling_rate=RATE, max_new_tokens=5, seed=0)
    assert out.codes[0].shape == (4, 5)
    assert out.waveforms[0].shape == ((out.prompt_codes[0].shape[-1] + 5) * HOP,)


def test_cli_demo_runs_an_audiolm_variant(tmp_path, capsys):
    import soundfile

    from hf_slm.cli.main import main

    _pipeline().save_pretrained(tmp_path / "variant")
    out = tmp_path / "demo_out"
    assert main(["demo", "--pipeline", str(tmp_path / "variant"), "--text", "hello there", "--max-new-tokens", "6",
                 "--output", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "AudioLMPipeline(" in printed and "continuation: 6 new frames" in printed
    resynthesized, _ = soundfile.read(out / "resynthesized.wav")
    continuation, rate = soundfile.read(out / "continuation.wav")
    assert rate == RATE and len(continuation) % HOP == 0 and len(resynthesized) % HOP == 0
    assert abs(len(continuation) - 6 * HOP - len(resynthesized) / 2) <= HOP  # half the utterance + 6 frames
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
