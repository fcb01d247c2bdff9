"""VALL-E-style zero-shot TTS: the AR / NAR models (common component checks), grouped codes, Trainer training on
espeak-ng speech through a codec, `VallEPipeline.text_to_speech`, load-time validation and `hf-slm tts`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import Trainer, TrainingArguments

from hf_slm import (
    PipelineLoadError,
    RVQCodecConfig,
    RVQCodecModel,
    SpeechFeatureExtractor,
    VallEARModel,
    VallENARModel,
    VallEPipeline,
    group_codes,
    ungroup_codes,
)
from hf_slm.data import EspeakSynthesizer, phonemize, synthesize_dataset
from hf_slm.training.valle import VallECollator, build_phoneme_tokenizer, encode_tts_dataset, phonemize_texts
from component_tester import ComponentTesterMixin
from tiny_components import NUM_UNITS, tiny_valle_ar, tiny_valle_nar, valle_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = ["the cat sat on the mat", "a red bird sings in the tree", "we walk to the old bridge", "open the green door",
         "the sun is warm today", "she reads a long book", "two dogs run in the park", "bring me a cup of tea"]  # fmt: skip


class TestVallEARComponent(ComponentTesterMixin):
    component = "valle_ar"
    model_class = VallEARModel
    compared_outputs = ("logits",)

    def export_inputs(self):
        return {**self.get_inputs(), "use_cache": False}  # a DynamicCache is no pytree output

    def get_batch_and_items(self):
        model, (phonemes, codes) = self.get_model(), valle_rows(2)
        keep = ("input_ids", "token_type_ids", "attention_mask")
        batch = model.prepare_inputs(phonemes, codes)
        items = [model.prepare_inputs(phonemes[i : i + 1], codes[i : i + 1]) for i in range(2)]
        return {k: batch[k] for k in keep}, [{k: item[k] for k in keep} for item in items]

    def remote_calls(self, model):  # the grouped generation loop is remote code too
        phonemes, codes = valle_rows(1)
        greedy = {"phoneme_ids": phonemes[0], "prompt_codes": codes[0][0, :5], "max_new_frames": 6, "do_sample": False}
        return {**super().remote_calls(model), "generate": ("generate", greedy)}


class TestVallENARComponent(ComponentTesterMixin):
    component = "valle_nar"
    model_class = VallENARModel
    compared_outputs = ("logits",)

    def get_batch_and_items(self):
        model, (phonemes, codes) = self.get_model(), valle_rows(2)
        keep = ("input_ids", "token_type_ids", "attention_mask", "stage")
        batch = model.prepare_inputs(phonemes, codes, stages=[1, 2], prompt_frames=[3, 2])
        items = [model.prepare_inputs(phonemes[i : i + 1], codes[i : i + 1], stages=[[1, 2][i]], prompt_frames=[[3, 2][i]])
                 for i in range(2)]  # fmt: skip
        return {k: batch[k] for k in keep}, [{k: item[k] for k in keep} for item in items]

    def remote_calls(self, model):
        phonemes, codes = valle_rows(1)
        args = {"phoneme_ids": phonemes[0], "prompt_codes": codes[0][:, :4], "first_codes": codes[0][0, 4:]}
        return {**super().remote_calls(model), "generate": ("generate", args)}


# ---------------------------------------------------------------------------------------------------- grouped codes
@pytest.mark.parametrize("length", [1, 5, 6, 7])
@pytest.mark.parametrize("group_size", [1, 2, 3])
def test_grouped_codes_round_trip(length, group_size):
    codes = torch.arange(length) % NUM_UNITS
    groups = group_codes(codes, group_size, eos_id=NUM_UNITS, pad_id=NUM_UNITS + 2)
    assert groups.shape == (-(-(length + 1) // group_size), group_size)
    flat = groups.reshape(-1)
    assert flat[length] == NUM_UNITS and (flat[length + 1 :] == NUM_UNITS + 2).all()
    assert torch.equal(ungroup_codes(groups, eos_id=NUM_UNITS), codes)


def test_ar_rows_hold_phonemes_bos_then_groups_with_labels_on_codes_only():
    model = tiny_valle_ar(group_size=2)
    phonemes, codes = valle_rows(1)
    row = model.prepare_inputs(phonemes, codes)
    num_phonemes, config = len(phonemes[0]), model.config
    assert torch.equal(row["input_ids"][0, :num_phonemes, 0], phonemes[0])
    assert (row["input_ids"][0, num_phonemes] == config.bos_code_id).all()
    groups = row["input_ids"][0, num_phonemes + 1 :]
    assert torch.equal(ungroup_codes(groups, config.eos_code_id), codes[0][0])  # codebook 1, 9 codes -> 5 groups
    assert (row["labels"][0, : num_phonemes + 1] == -100).all()
    assert torch.equal(row["labels"][0, -1], torch.tensor([int(codes[0][0, -1]), config.eos_code_id]))
    row = model.prepare_inputs([phonemes[0]], [codes[0][:, :8]])  # 8 codes + <eos> -> the last group ends with <pad>
    assert torch.equal(row["labels"][0, -1], torch.tensor([config.eos_code_id, -100]))  # <pad> is not scored
    assert row["input_ids"][0, -1, 1] == config.pad_code_id


def test_ar_generation_honours_the_prompt_bounds_and_eos_suppression():
    model = tiny_valle_ar(group_size=2)
    phonemes, codes = valle_rows(1)
    greedy = model.generate(phonemes[0], codes[0][0, :5], max_new_frames=7, min_new_frames=7, do_sample=False)
    assert greedy.shape == (7,) and greedy.max() < NUM_UNITS
    assert torch.equal(greedy, model.generate(phonemes[0], codes[0][0, :5], max_new_frames=7, min_new_frames=7,
                                              do_sample=False))  # fmt: skip
    with pytest.raises(ValueError, match="prompt_codes holds id 99"):
        model.generate(phonemes[0], torch.tensor([1, 99]))
    with pytest.raises(ValueError, match="max_new_frames"):
        model.generate(phonemes[0], max_new_frames=0)


def test_nar_fills_codebooks_two_to_q_and_keeps_codebook_one():
    model = tiny_valle_nar()
    phonemes, codes = valle_rows(1)
    out = model.generate(phonemes[0], codes[0][:, :4], codes[0][0, 4:])
    assert out.shape == (3, 5) and torch.equal(out[0], codes[0][0, 4:]) and out.max() < NUM_UNITS
    with pytest.raises(ValueError, match=r"prompt_codes must be \[3, frames\]"):
        model.generate(phonemes[0], codes[0][:2], codes[0][0])
    with pytest.raises(ValueError, match="one phoneme sequence per code sequence, got 1 and 2"):
        model.prepare_inputs(phonemes, codes * 2)
    with pytest.raises(ValueError, match="prompt_frames 9 of row 0 must leave a target frame"):
        model.prepare_inputs(phonemes, codes, prompt_frames=[9])


@pytest.mark.parametrize("group_size", [2, 3])
def test_nar_grouped_codes_round_trip(group_size):
    """VALL-E 2's grouped codes in the NAR model: rows hold every prompt / target frame once (a padded last group),
    the labels are codebook `stage` of the target frames, and greedy generation of codebook 2 is the argmax of the
    teacher-forced logits."""
    model = tiny_valle_nar(group_size=group_size)
    phonemes, codes = valle_rows(1)
    p, c, split = phonemes[0], codes[0], 4  # 9 frames: a 4-frame prompt, a 5-frame target (padded last groups)
    batch = model.prepare_inputs([p], [c], stages=[1], prompt_frames=[split])
    ids, types, labels = batch["input_ids"][0], batch["token_type_ids"][0], batch["labels"][0]
    groups = -(-split // group_size) + -(-(c.shape[1] - split) // group_size)
    assert ids.shape == (len(p) + groups, group_size, 3) and labels.shape == (len(p) + groups, group_size)
    assert torch.equal(ids[: len(p), 0, 0], p)
    for kind, frames in ((1, c[:, :split]), (2, c[:, split:])):
        held = ids[types == kind].reshape(-1, 3)
        assert torch.equal(held[held[:, 0] >= 0].T, frames)  # every frame once, in order; padding frames are -1
    scored = labels[types == 2].reshape(-1)
    assert torch.equal(scored[scored != -100], c[1, split:]) and (labels[types != 2] == -100).all()
    assert model(**batch).loss.isfinite()

    out = model.generate(p, c[:, :split], c[0, split:])
    assert out.shape == (3, c.shape[1] - split) and torch.equal(out[0], c[0, split:])
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
    assert torch.equal(out[1], logits[types == 2].argmax(-1).reshape(-1)[: out.shape[1]])
    with pytest.raises(ValueError, match="group_size must be an int >= 1, got 0"):
        tiny_valle_nar(group_size=0)


def test_docstring_examples_run():
    import doctest

    from hf_slm.data import espeak
    from hf_slm.models.valle import configuration_valle

    assert doctest.testmod(configuration_valle).failed == 0
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(espeak.phonemize, "phonemize", globs={"phonemize": espeak.phonemize}):
        runner.run(test)
    assert runner.summarize(verbose=False).attempted == 1 and runner.summarize(verbose=False).failed == 0


# ---------------------------------------------------------------------------------------------------- data + training
def tts_codec() -> RVQCodecModel:
    """A random codec at 16 kHz with hop 320 (50 Hz), 3 levels of 16 codes, like the tiny models above."""
    torch.manual_seed(0)
    config = RVQCodecConfig(upsampling_ratios=(8, 5, 4, 2), num_filters=4, hidden_size=8, num_codebooks=3,
                            codebook_size=NUM_UNITS)  # fmt: skip
    return RVQCodecModel(config).eval()


@pytest.fixture(scope="module")
def tts_data(tmp_path_factory):
    """(rows, tokenizer, codec, feature extractor): espeak-ng speech of TEXTS in two voices, phonemised and encoded."""
    codec = tts_codec()
    feature_extractor = SpeechFeatureExtractor(sampling_rate=codec.sampling_rate, do_normalize=False)
    speech = synthesize_dataset(TEXTS, voices=["en-us", "en-us+f3"], sampling_rate=codec.sampling_rate,
                                cache_dir=str(tmp_path_factory.mktemp("speech")))  # fmt: skip
    tokenizer = build_phoneme_tokenizer(phonemize_texts(TEXTS))
    rows = encode_tts_dataset(speech, feature_extractor, codec, tokenizer)
    return rows, tokenizer, codec, feature_extractor


def test_rows_are_the_texts_phonemes_and_codes(tts_data):
    rows, tokenizer, codec, _ = tts_data
    assert len(rows) == len(TEXTS)
    assert tokenizer.convert_ids_to_tokens(rows[0]["phoneme_ids"]) == phonemize(TEXTS[0])
    codes = torch.tensor(rows[0]["codes"])
    assert codes.shape[0] == 3 and codes.shape[1] > 20 and codes.unique().numel() > 1


@pytest.mark.parametrize("stage", ["ar", "nar", "nar_grouped"])
def test_trainer_steps_lower_the_loss(stage, tts_data, tmp_path):
    rows, tokenizer, _, _ = tts_data
    build = {"ar": tiny_valle_ar, "nar": tiny_valle_nar, "nar_grouped": lambda **kw: tiny_valle_nar(group_size=2, **kw)}
    model = build[stage](num_phonemes=len(tokenizer)).train()
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, learning_rate=3e-3,
                             max_steps=16, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
                             remove_unused_columns=False, dataloader_num_workers=0, seed=0)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=VallECollator(model))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 16
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


def test_text_conditioning_grows_once_the_codes_follow_the_text(tmp_path):
    """Codes that repeat the first phoneme: an untrained model scores own and other text alike, a trained one not."""
    from hf_slm.evaluation.voice import text_conditioning

    g = torch.Generator().manual_seed(0)
    phonemes = [torch.randint(2, 2 + NUM_UNITS, (int(torch.randint(3, 8, (), generator=g)),), generator=g)
                for _ in range(64)]  # fmt: skip
    codes = [torch.full((3, 2 * len(p)), int(p[0]) - 2) for p in phonemes]
    held_out = (phonemes[-8:], codes[-8:])
    model = tiny_valle_ar(num_phonemes=2 + NUM_UNITS)
    before = text_conditioning(model, *held_out)
    rows = [{"phoneme_ids": p.tolist(), "codes": c.tolist()} for p, c in zip(phonemes[:-8], codes[:-8])]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, learning_rate=1e-2,
                             max_steps=150, save_strategy="no", report_to="none", use_cpu=True,
                             remove_unused_columns=False, dataloader_num_workers=0, seed=0)  # fmt: skip
    Trainer(model=model.train(), args=args, train_dataset=rows, data_collator=VallECollator(model)).train()
    after = text_conditioning(model, *held_out)
    assert abs(before["gain"]) < 0.2 and before["n"] == 8, before
    assert after["gain"] > 1.0 and after["loss"] < before["loss"], after
    with pytest.raises(ValueError, match="2 utterances"):
        text_conditioning(model, phonemes[:1], codes[:1])


# ---------------------------------------------------------------------------------------------------- pipeline
def make_pipeline(tts_data, **overrides) -> VallEPipeline:
    _, tokenizer, codec, feature_extractor = tts_data
    parts = dict(feature_extractor=feature_extractor, speech_tokenizer=codec, tokenizer=tokenizer,
                 ar_model=tiny_valle_ar(num_phonemes=len(tokenizer), frame_rate=codec.frame_rate),
                 nar_model=tiny_valle_nar(num_phonemes=len(tokenizer), frame_rate=codec.frame_rate))  # fmt: skip
    return VallEPipeline(**(parts | overrides))


@pytest.fixture(scope="module")
def prompt_wav(tmp_path_factory):
    speech = EspeakSynthesizer("en-us+f3").synthesize("the cat sat on the mat")
    path = tmp_path_factory.mktemp("prompt") / "prompt.wav"
    sf.write(path, speech.waveform, speech.sampling_rate)
    return path


@pytest.fixture(scope="module")
def variant(tts_data, tmp_path_factory):
    return make_pipeline(tts_data).save_pretrained(tmp_path_factory.mktemp("valle") / "variant")


def test_text_to_speech_after_a_save_and_load(variant, prompt_wav):
    index = json.loads((variant / "pipeline_index.json").read_text())
    assert index["_class_name"] == "VallEPipeline" and index["ar_model"] == ["hf_slm", "VallEARModel"]
    pipe = VallEPipeline.from_pretrained(variant)
    out = pipe.text_to_speech("open the door", str(prompt_wav), prompt_text="the cat sat on the mat",
                              max_new_frames=9, min_new_frames=9, seed=0)  # fmt: skip
    assert out.codes.shape == (3, 9) and out.sampling_rate == 16000
    assert out.waveform.shape == (9 * pipe.hop_length,) and pipe.hop_length == 320
    expected_prompt = pipe.encode(str(prompt_wav))
    assert torch.equal(out.prompt_codes, expected_prompt)
    assert out.phoneme_ids[-3:] == pipe.tokenizer.convert_tokens_to_ids(phonemize("the door"))[-3:]
    again = pipe.text_to_speech("open the door", str(prompt_wav), prompt_text="the cat sat on the mat",
                                max_new_frames=9, min_new_frames=9, seed=0)  # fmt: skip
    assert torch.equal(again.codes, out.codes)  # seeded repetition-aware sampling


def test_default_floor_is_half_the_text_at_the_prompts_pace(variant, prompt_wav):
    """No min_new_frames: `<eos>` is refused until half the text's length at the prompt's own frames per phoneme (a
    recording unlike the training voices made the shipped AR model stop after one frame); within max_new_frames."""
    from hf_slm.pipelines.valle_pipeline import MIN_PACE_FRACTION, text_to_phoneme_ids

    pipe = VallEPipeline.from_pretrained(variant)
    prompt_text, text = "the cat sat on the mat", "open the door and then close the window again"
    pace = pipe.encode(str(prompt_wav)).shape[1] / len(text_to_phoneme_ids(pipe.tokenizer, prompt_text))
    floor = round(MIN_PACE_FRACTION * pace * len(text_to_phoneme_ids(pipe.tokenizer, text)))
    assert floor > 1
    asked, generate = [], pipe.ar_model.generate

    def recording_generate(*args, **kwargs):  # the real generate, with what it was asked
        asked.append(kwargs["min_new_frames"])
        return generate(*args, **kwargs)

    pipe.ar_model.generate = recording_generate
    for seed in range(3):
        out = pipe.text_to_speech(text, str(prompt_wav), prompt_text=prompt_text, seed=seed)
        assert out.codes.shape[1] >= floor
    assert asked == [floor] * 3
    pipe.text_to_speech(text, str(prompt_wav), prompt_text=prompt_text, min_new_frames=2, seed=0)
    assert asked[-1] == 2  # an explicit floor is kept
    short = pipe.text_to_speech(text, str(prompt_wav), prompt_text=prompt_text, max_new_frames=floor - 1, seed=0)
    assert short.codes.shape[1] <= floor - 1  # a smaller max wins over the default floor, with no error
    assert MIN_PACE_FRACTION == 0.5


def test_a_saved_variant_carries_a_model_card(variant):
    from huggingface_hub import ModelCard

    from hf_slm.pipelines.valle_pipeline import VALLE_COMPONENTS

    card = ModelCard.load(variant / "README.md")
    assert card.data.library_name == "hf_slm" and card.data.pipeline_tag == "text-to-speech"
    assert {"valle", "zero-shot-tts"} <= set(card.data.tags)
    for name in VALLE_COMPONENTS:
        assert f"| `{name}` |" in card.text, name
    assert "phonemes" in card.text and "codebooks 3" in card.text  # the models' details
    assert 'VallEPipeline.from_pretrained("variant")' in card.text and "pipe.text_to_speech(" in card.text
    assert 'subfolder="ar_model"' in card.text


def test_text_to_speech_with_a_grouped_nar_model(tts_data, prompt_wav):
    _, tokenizer, codec, _ = tts_data
    pipe = make_pipeline(tts_data, nar_model=tiny_valle_nar(num_phonemes=len(tokenizer), frame_rate=codec.frame_rate,
                                                             group_size=2))  # fmt: skip
    out = pipe.text_to_speech("open the door", str(prompt_wav), prompt_text="the cat sat on the mat",
                              max_new_frames=9, min_new_frames=9, seed=0)  # fmt: skip
    assert out.codes.shape == (3, 9) and out.waveform.shape == (9 * 320,) and out.codes.max() < NUM_UNITS


def test_the_whole_prompt_and_its_transcript_lead_the_ar_input(variant, prompt_wav):
    from hf_slm.pipelines.valle_pipeline import text_to_phoneme_ids

    pipe = VallEPipeline.from_pretrained(variant)
    out = pipe.text_to_speech("open the door", str(prompt_wav), prompt_text="the cat sat on the mat", max_new_frames=3,
                              seed=1)  # fmt: skip
    assert torch.equal(out.prompt_codes, pipe.encode(str(prompt_wav)))
    assert out.phoneme_ids == text_to_phoneme_ids(pipe.tokenizer, "the cat sat on the mat open the door")
    assert out.waveform.shape == (out.codes.shape[1] * 320,) and 1 <= out.codes.shape[1] <= 3


def test_text_to_speech_over_a_transformers_codec(tts_data, prompt_wav):
    """The same pipeline over transformers' DAC (2 codebooks of 64, hop 16): any codec of the codec interface."""
    from hf_slm import VallEARConfig, VallENARConfig
    from tiny_components import VALLE_BACKBONE, tiny_codec

    _, tokenizer, _, _ = tts_data
    codec = tiny_codec()
    shared = dict(text_config=VALLE_BACKBONE, num_phonemes=len(tokenizer), codebook_size=64, num_codebooks=2,
                  frame_rate=codec.frame_rate)  # fmt: skip
    torch.manual_seed(0)
    pipe = VallEPipeline(feature_extractor=SpeechFeatureExtractor(sampling_rate=codec.sampling_rate, do_normalize=False),
                         speech_tokenizer=codec, tokenizer=tokenizer, ar_model=VallEARModel(VallEARConfig(**shared)),
                         nar_model=VallENARModel(VallENARConfig(**shared)))  # fmt: skip
    audio, rate = sf.read(prompt_wav, dtype="float32")
    prompt = {"array": audio[: int(0.05 * rate)], "sampling_rate": rate}  # 50 frames at DAC's 1 kHz frame rate
    out = pipe.text_to_speech("open the door", prompt, prompt_text="the", max_new_frames=8, min_new_frames=8, seed=0)
    assert out.prompt_codes.shape == (2, round(0.05 * codec.frame_rate))
    assert out.codes.shape == (2, 8) and out.waveform.shape == (8 * codec.hop_length,)
    assert out.codes.max() < 64 and out.sampling_rate == codec.sampling_rate


def test_bad_calls_are_refused(variant, prompt_wav):
    pipe = VallEPipeline.from_pretrained(variant)
    with pytest.raises(ValueError, match="text must be a non-empty string"):
        pipe.text_to_speech("  ", str(prompt_wav), prompt_text="the cat sat on the mat")
    for missing in (None, " "):
        with pytest.raises(ValueError, match="prompt_text must be the prompt audio's transcript"):
            pipe.text_to_speech("hi there", str(prompt_wav), prompt_text=missing)
    with pytest.raises(ValueError, match="fill the AR model's 512 positions"):
        pipe.text_to_speech("hello " * 120, str(prompt_wav), prompt_text="the cat sat on the mat")


def test_components_are_validated_when_built_and_loaded(tts_data, variant, tmp_path):
    _, tokenizer, codec, _ = tts_data
    with pytest.raises(PipelineLoadError, match="nar_model has num_codebooks=2 but the codec .* num_codebooks=3"):
        make_pipeline(tts_data, nar_model=tiny_valle_nar(num_phonemes=len(tokenizer), num_codebooks=2))
    with pytest.raises(PipelineLoadError, match=f"tokenizer has {len(tokenizer)} tokens but ar_model .*num_phonemes=3"):
        make_pipeline(tts_data, ar_model=tiny_valle_ar(num_phonemes=3))
    with pytest.raises(PipelineLoadError, match="ar_model has frame_rate=25.0 but the codec"):
        make_pipeline(tts_data, ar_model=tiny_valle_ar(num_phonemes=len(tokenizer), frame_rate=25.0))
    # on disk: a variant whose NAR model was swapped for one of another codebook count does not load
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(variant, broken)
    shutil.rmtree(broken / "nar_model")
    tiny_valle_nar(num_phonemes=len(tokenizer), num_codebooks=4).save_pretrained(broken / "nar_model")
    with pytest.raises(PipelineLoadError, match="nar_model has num_codebooks=4"):
        VallEPipeline.from_pretrained(broken)
    from hf_slm import SpeechLMPipeline

    with pytest.raises(PipelineLoadError, match="is a SpeechLMPipeline variant.* load it with SpeechLMPipeline"):
        VallEPipeline.from_pretrained("default")
    with pytest.raises(PipelineLoadError, match="is a VallEPipeline variant.* load it with VallEPipeline"):
        SpeechLMPipeline.from_pretrained(variant)


# ---------------------------------------------------------------------------------------------------- CLI
def hf_slm(*args):
    return subprocess.run([sys.executable, "-m", "hf_slm.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_cli_tts_writes_a_readable_wav_and_refuses_bad_input(variant, prompt_wav, tmp_path):
    output = tmp_path / "out" / "speech.wav"
    done = hf_slm("tts", "--pipeline", variant, "--text", "open the door", "--prompt-audio", prompt_wav,
                  "--prompt-text", "the cat sat on the mat", "--max-new-frames", "6", "--output", output)  # fmt: skip
    assert done.returncode == 0, done.stderr
    audio, rate = sf.read(output)
    assert rate == 16000 and 320 <= len(audio) <= 6 * 320 and len(audio) % 320 == 0
    assert [p.name for p in output.parent.iterdir()] == ["speech.wav"]  # no temporary file left
    exact = hf_slm("tts", "--pipeline", variant, "--text", "open the door", "--prompt-audio", prompt_wav, "--prompt-text",
                   "the cat sat on the mat", "--max-new-frames", "5", "--min-new-frames", "5", "--output", output)  # fmt: skip
    assert exact.returncode == 0, exact.stderr
    assert len(sf.read(output)[0]) == 5 * 320  # --min-new-frames reaches the model
    embedded = hf_slm("tts", "--text", "three calm mice dance", "--prompt-audio", prompt_wav, "--prompt-text",
                      "the cat sat on the mat", "--output", tmp_path / "default.wav")  # no --pipeline: tts-default
    assert embedded.returncode == 0, embedded.stderr
    audio, rate = sf.read(tmp_path / "default.wav")
    assert rate == 16000 and 0.3 < len(audio) / rate < 6 and np.abs(audio).max() > 1e-3
    missing = hf_slm("tts", "--pipeline", variant, "--text", "hi", "--prompt-audio", tmp_path / "nope.wav", "--prompt-text", "hi",
                     "--output", tmp_path / "x.wav")  # fmt: skip
    assert missing.returncode == 2 and "nope.wav" in missing.stderr
    empty = hf_slm("tts", "--pipeline", variant, "--text", " ", "--prompt-audio", prompt_wav, "--prompt-text", "the cat", "--output", tmp_path / "x.wav")
    assert empty.returncode == 1 and "--text is empty" in empty.stderr
    not_wav = hf_slm("tts", "--pipeline", variant, "--text", "hi", "--prompt-audio", prompt_wav, "--prompt-text", "the cat", "--output", tmp_path / "x.mp3")
    assert not_wav.returncode == 1 and "must be a .wav file" in not_wav.stderr
    other = hf_slm("tts", "--pipeline", "default", "--text", "hi", "--prompt-audio", prompt_wav, "--prompt-text", "the cat", "--output", tmp_path / "x.wav")
    assert other.returncode == 1 and "SpeechLMPipeline variant, not a zero-shot TTS" in other.stderr
    untold = hf_slm("tts", "--pipeline", variant, "--text", "hi", "--prompt-audio", prompt_wav, "--output", tmp_path / "x.wav")
    assert untold.returncode == 2 and "--prompt-text" in untold.stderr
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "x.mp3").exists()


# ---------------------------------------------------------------------------------------------------- Space
def _space_app():
    from example_loader import load_script

    pytest.importorskip("gradio", reason="the Space needs gradio: pip install -e '.[space]'")
    return load_script("spaces/app.py", "space_app")


def _tab_function(demo, api_name):
    return next(block.fn for block in demo.fns.values() if block.api_name == api_name)


def test_space_tts_tab_speaks_with_a_variant_and_explains_without_one(variant, prompt_wav, tmp_path):
    import socket

    import gradio as gr
    from gradio_client import Client, handle_file

    from tiny_components import tiny_pipeline

    app = _space_app()
    tiny_pipeline().save_pretrained(tmp_path / "pipeline")
    plain = app.build_demo(str(tmp_path / "pipeline"), "none", "none", tts_pipeline="none")
    with pytest.raises(gr.Error, match="no VALL-E variant configured: start the Space with --tts-pipeline"):
        _tab_function(plain, "text_to_speech")("hello", str(prompt_wav), "", 0)
    demo = app.build_demo(str(tmp_path / "pipeline"), "none", "none", tts_pipeline=str(variant))
    # the TTS examples' voice prompts are spoken only where the tab has a model to use them
    tts_prompts = [sorted(Path(d.allowed_example_dir).rglob("tts_prompt*")) for d in (plain, demo)]
    assert not tts_prompts[0] and len(tts_prompts[1]) == len(app.TTS_EXAMPLES)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                allowed_paths=[demo.allowed_example_dir])  # fmt: skip
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        audio_path, info = client.predict("open the door", handle_file(str(prompt_wav)), "the cat sat on the mat", 0,
                                          api_name="/text_to_speech")  # fmt: skip
        audio, rate = sf.read(audio_path)
        frames = int(info.split()[0])
        assert rate == 16000 and frames >= 1 and len(audio) == frames * 320
    finally:
        demo.close()


# ---------------------------------------------------------------------------------------------------- example
def test_example_trains_and_saves_a_variant(tmp_path, prompt_wav):
    from example_loader import ROOT, load_script

    path = ROOT / "examples" / "valle" / "train_valle.py"
    module = load_script(path)
    argv = [str(path.with_name("config_tiny.json")), "--output_dir", str(tmp_path / "run"), "--num_sentences", "20",
            "--max_steps", "2", "--nar_max_steps", "3", "--hidden_size", "32", "--per_device_train_batch_size", "2",
            "--logging_steps", "1", "--nar_group_size", "2", "--save_strategy", "steps", "--save_steps", "1",
            "--save_total_limit", "1"]  # fmt: skip
    variant = module.main(argv)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["ar"]["held_out_loss"] > 0 and results["nar"]["held_out_loss"] > 0
    conditioning = results["ar"]["text_conditioning"]
    assert conditioning["n"] == 2 and conditioning["gain"] == pytest.approx(
        conditioning["loss_other_text"] - conditioning["loss"])
    # each model ran its own steps and left its last checkpoint
    assert [c.name for c in (tmp_path / "run" / "ar").glob("checkpoint-*")] == ["checkpoint-2"]
    assert [c.name for c in (tmp_path / "run" / "nar").glob("checkpoint-*")] == ["checkpoint-3"]
    assert all((tmp_path / "run" / name / "model" / "config.json").is_file() for name in ("ar", "nar"))
    # a rerun loads both finished models instead of training them again: the same weights, the same results
    weights = (tmp_path / "run" / "ar" / "model" / "model.safetensors").read_bytes()
    module.main(argv)
    assert (tmp_path / "run" / "ar" / "model" / "model.safetensors").read_bytes() == weights
    assert json.loads((tmp_path / "run" / "results.json").read_text())["ar"] == results["ar"]
    pipe = VallEPipeline.from_pretrained(variant)
    assert pipe.ar_model.config.group_size == 2 and pipe.nar_model.config.num_codebooks == 4

    # fine-tuning a saved variant keeps its codec, phoneme tokenizer and model shapes (not the shape flags)
    tuned = VallEPipeline.from_pretrained(module.main(
        [str(path.with_name("config_tiny.json")), "--output_dir", str(tmp_path / "tuned"), "--num_sentences", "20",
         "--max_steps", "1", "--hidden_size", "48", "--init_variant", str(variant), "--text_source", "builtin",
         "--voices", "en-us+m3"]))  # fmt: skip
    assert tuned.tokenizer.get_vocab() == pipe.tokenizer.get_vocab()
    assert tuned.ar_model.config.hidden_size == tuned.nar_model.config.hidden_size == 32
    codec = tuned.speech_tokenizer.state_dict()
    assert all(torch.equal(codec[n], w) for n, w in pipe.speech_tokenizer.state_dict().items())
    original = pipe.ar_model.state_dict()
    changed = [n for n, w in tuned.ar_model.state_dict().items() if not torch.equal(w, original[n])]
    assert changed  # one step from the variant's weights
    assert pipe.nar_model.config.group_size == 2
    assert pipe.ar_model.config.frame_rate == pipe.speech_tokenizer.frame_rate == 50.0
    out = pipe.text_to_speech("open the door", str(prompt_wav), prompt_text="the cat sat on the mat", max_new_frames=4,
                              min_new_frames=4, seed=0)  # fmt: skip
    assert out.codes.shape == (4, 4) and out.waveform.shape == (4 * pipe.hop_length,)
