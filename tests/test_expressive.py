"""SpiRit-LM Expressive on tiny configs: pitch / style tokenizer, [Pi] / [St] interleaving, F0 / style vocoder
conditioning, the expressive pipeline end to end, Trainer on interleaved sequences, STSP and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModel, LlamaConfig, PreTrainedTokenizerFast, Trainer, TrainingArguments

from hf_slm.cli import main
from hf_slm.data import EspeakSynthesizer
from hf_slm.data.sentiment import SENTIMENTS, build_sentiment_prompts
from hf_slm.evaluation.stsp import evaluate_stsp, preservation, split_prompts, train_classifiers
from hf_slm.models.speech_lm import (
    ExpressiveEncoderConfig,
    ExpressiveEncoderModel,
    SpeechLMConfig,
    SpeechLMForCausalLM,
    SpeechLMProcessor,
    SpeechLMVocabularyLayout,
)
from hf_slm.models.unit_encoder import SpeechFeatureExtractor
from hf_slm.models.unit_vocoder import UnitHifiGanVocoder, UnitHifiGanVocoderConfig
from hf_slm.pipelines import ExpressiveSpeechLMPipeline
from hf_slm.training import CausalLMCollator
from hf_slm.training.expressive import expressive_sequences, fit_expressive_encoder
from component_tester import ComponentTesterMixin
from tiny_components import NUM_UNITS, tiny_unit_encoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NUM_PITCH, NUM_STYLE = 8, 4


def _speak(text, pitch, rate=175, pitch_range=50, voice="en-us"):
    import torchaudio

    result = EspeakSynthesizer(voice, rate=rate, pitch=pitch, pitch_range=pitch_range).synthesize(text)
    return torchaudio.functional.resample(torch.from_numpy(result.waveform), result.sampling_rate, 16000)


@pytest.fixture(scope="module")
def prompts():
    return build_sentiment_prompts(3, seed=0)


@pytest.fixture(scope="module")
def expressive_encoder(prompts):
    tokenizer = ExpressiveEncoderModel(
        ExpressiveEncoderConfig(num_pitch_tokens=NUM_PITCH, num_style_tokens=NUM_STYLE, style_frames=25)
    )
    fit_expressive_encoder(tokenizer, [torch.from_numpy(p.waveform) for p in prompts], max_steps=20)
    return tokenizer.eval()


def _word_tokenizer(prompts):
    words = sorted({w for p in prompts for w in p.text.replace(",", " ").replace(".", " ").split()})
    tok = Tokenizer(models.WordLevel(vocab={"<unk>": 0, **{w: i + 1 for i, w in enumerate(words)}}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


@pytest.fixture(scope="module")
def pipeline(prompts, expressive_encoder):
    torch.manual_seed(0)
    tokenizer = _word_tokenizer(prompts)
    backbone = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2)  # fmt: skip
    lm = SpeechLMForCausalLM(SpeechLMConfig(
        text_config=backbone, text_vocab_size=len(tokenizer), num_units=NUM_UNITS, num_pitch_tokens=NUM_PITCH,
        num_style_tokens=NUM_STYLE,
    )).eval()  # fmt: skip
    vocoder = UnitHifiGanVocoder(UnitHifiGanVocoderConfig(
        num_units=NUM_UNITS, embedding_dim=16, upsample_rates=(10, 8, 4), upsample_kernel_sizes=(20, 16, 8),
        upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),), use_f0=True,
        f0_embedding_dim=8, f0_normalize=False, num_styles=NUM_STYLE, style_embedding_dim=8,
    )).eval()  # fmt: skip
    return ExpressiveSpeechLMPipeline(
        feature_extractor=SpeechFeatureExtractor(), speech_tokenizer=tiny_unit_encoder("mfcc"),
        expressive_encoder=expressive_encoder, language_model=lm, vocoder=vocoder, tokenizer=tokenizer,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------- layout
def test_layout_puts_pitch_and_style_after_every_named_token():
    plain = SpeechLMVocabularyLayout(num_units=100)
    layout = SpeechLMVocabularyLayout(num_units=100, task_tokens=("[ASR]",), num_pitch_tokens=3, num_style_tokens=2)
    assert plain.vocab_size == 105 and layout.eos_token_id == plain.eos_token_id  # named ids unchanged
    assert (layout.pitch_token_offset, layout.style_token_offset, layout.vocab_size) == (106, 109, 111)
    assert [layout.token_name(i) for i in (105, 106, 108, 109, 110)] == ["[ASR]", "[Pi0]", "[Pi2]", "[St0]", "[St1]"]
    assert layout.expressive_to_token_ids([0, 2], "pitch").tolist() == [106, 108]
    with pytest.raises(ValueError, match=r"style token 2 is outside \[0, 2\)"):
        layout.expressive_to_token_ids([2], "style")
    with pytest.raises(ValueError, match="num_pitch_tokens must be an int >= 0"):
        SpeechLMVocabularyLayout(num_pitch_tokens=-1)
    config = SpeechLMConfig(num_units=100, num_pitch_tokens=3, num_style_tokens=2)
    assert config.vocab_size == 110 and SpeechLMConfig.from_dict(config.to_dict()).vocab_layout == config.vocab_layout


def test_interleave_in_time_order_and_round_trip(tmp_path):
    processor = SpeechLMProcessor.from_config(SpeechLMConfig(num_units=16, num_pitch_tokens=8, num_style_tokens=4))
    layout = processor.layout
    units = torch.tensor([3, 3, 5, 6, 7, 1, 2, 9, 9, 4, 0, 8, 8, 15, 14, 13, 12, 11, 10, 1, 2, 3, 4, 5, 6])  # 0.5 s
    pitch = torch.tensor([1, 1, 2, 7, 7, 7, 0])  # 12.5 Hz: repeats are dropped (SpiRit-LM's pitch_dedup)
    style = torch.tensor([3])  # 1 Hz
    ids = processor(units=[units], pitch=[pitch], style=[style], return_tensors=None)["input_ids"][0]
    names = [layout.token_name(i) for i in ids]
    # time order, ties style < pitch < unit; a pitch token every 4 unit frames (50 Hz / 12.5 Hz)
    expected = ["<s>", "[Speech]", "[St3]", "[Pi1]", *[f"<unit_{u}>" for u in units[:8].tolist()], "[Pi2]",
                *[f"<unit_{u}>" for u in units[8:12].tolist()], "[Pi7]", *[f"<unit_{u}>" for u in units[12:24].tolist()],
                "[Pi0]", f"<unit_{int(units[24])}>", "</s>"]  # fmt: skip
    assert names == expected
    back = processor.deinterleave(ids)
    assert torch.equal(back["units"], units)
    assert torch.equal(back["pitch"], pitch.repeat_interleave(4)[: len(units)])
    assert torch.equal(back["style"], torch.full((len(units),), 3))
    assert torch.equal(processor.decode_segments(ids)[0][1], units)  # the speech run's units, expressive tokens dropped
    processor.save_pretrained(tmp_path)
    reloaded = SpeechLMProcessor.from_pretrained(tmp_path)
    assert reloaded.layout == layout and reloaded.pitch_rate == 12.5 and reloaded.style_rate == 1.0
    with pytest.raises(ValueError, match="num_style_tokens=0"):
        SpeechLMProcessor(num_units=16, num_pitch_tokens=8)(units=[units], style=[style])
    with pytest.raises(ValueError, match=r"pitch token 8 is outside \[0, 8\)"):
        processor(units=[units], pitch=[torch.tensor([8])])
    with pytest.raises(ValueError, match="modes 'speech' and 'concat'"):
        processor(units=[units], pitch=[pitch], words=[["a"]], word_start=[[0.0]], modalities=[["speech"]])


# ---------------------------------------------------------------------------------------------------- tokenizer
def test_expressive_encoder_fits_saves_loads_and_follows_pitch(expressive_encoder, tmp_path):
    with pytest.raises(RuntimeError, match="not fitted"):
        ExpressiveEncoderModel(ExpressiveEncoderConfig()).encode([torch.zeros(16000)])
    low, high = _speak("the garden was lovely today", pitch=15), _speak("the garden was lovely today", pitch=85)
    tokens = expressive_encoder.encode([low, high])
    for pitch, style, wave in zip(tokens["pitch"], tokens["style"], (low, high)):
        frames = int(np.ceil(len(wave) / 320))
        assert len(pitch) == int(np.ceil(frames / 4)) and len(style) == int(np.ceil(frames / 25))  # 12.5 Hz / 2 Hz
        assert 0 <= int(pitch.min()) and int(pitch.max()) < NUM_PITCH and int(style.max()) < NUM_STYLE

    def median_f0(pitch):
        f0 = expressive_encoder.pitch_to_f0(pitch)
        return float(f0[f0 > 0].median())

    assert median_f0(tokens["pitch"][1]) > 1.3 * median_f0(tokens["pitch"][0])  # the codebook keeps the pitch level
    expressive_encoder.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(reloaded, ExpressiveEncoderModel)
    again = reloaded.encode([low, high])
    assert all(torch.equal(a, b) for k in ("pitch", "style") for a, b in zip(tokens[k], again[k]))


class TestExpressiveEncoderComponent(ComponentTesterMixin):
    component = "expressive_encoder"
    model_class = ExpressiveEncoderModel
    compared_outputs = ("pitch_codes", "style_codes")
    batch_atol = 0.0  # each utterance is tokenized alone, padding removed: bit-exact
    export_blocked = fullgraph_blocked = (
        "tokens are computed per utterance after removing its padding (a Python loop over data-dependent lengths)"
    )

    def get_batch_and_items(self):
        fe = SpeechFeatureExtractor()
        waves = [_speak("the garden was lovely", pitch=20).numpy(), _speak("the meeting", pitch=80).numpy()]
        return dict(fe(waves, sampling_rate=16000)), [dict(fe(w, sampling_rate=16000)) for w in waves]


# ---------------------------------------------------------------------------------------------------- vocoder
def test_vocoder_follows_pitch_and_style_tokens(pipeline):
    units = torch.randint(0, NUM_UNITS, (40,), generator=torch.Generator().manual_seed(0))
    codebook = pipeline.expressive_encoder.pitch_to_f0(torch.arange(NUM_PITCH))
    levels = codebook.view(NUM_PITCH, -1).mean(-1)
    low, high = int(levels.argmin()), int(levels.argmax())
    wave = lambda pitch, style: pipeline.decode_expressive(units, torch.full((40,), pitch), torch.full((40,), style))  # noqa: E731
    base = wave(low, 0)
    assert len(base) == 40 * pipeline.vocoder.config.hop_length
    assert np.abs(wave(high, 0) - base).mean() > 1e-3 * np.abs(base).mean()  # F0 conditioning reaches the output
    assert np.abs(wave(low, 1) - base).mean() > 1e-3 * np.abs(base).mean()  # style conditioning too
    with pytest.raises(ValueError, match="num_styles=0"):
        UnitHifiGanVocoder(UnitHifiGanVocoderConfig(num_units=4, embedding_dim=4, upsample_rates=(320,),
                                                    upsample_kernel_sizes=(640,), upsample_initial_channel=4,
                                                    resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1,),)))(
            input_ids=torch.zeros(1, 3, dtype=torch.long), style_ids=torch.zeros(1, 3, dtype=torch.long))  # fmt: skip


# ---------------------------------------------------------------------------------------------------- pipeline
def test_pipeline_continues_in_each_direction_after_save_and_load(pipeline, prompts, tmp_path):
    pipeline.save_pretrained(tmp_path / "expressive")
    pipe = ExpressiveSpeechLMPipeline.from_pretrained(tmp_path / "expressive")
    layout = pipe.language_model.config.vocab_layout
    prompt = prompts[0]
    speech = pipe.continue_expressive(audio=prompt.waveform, sampling_rate=16000, max_new_tokens=30, min_new_tokens=30,
                                      seed=0)  # fmt: skip
    assert len(speech.token_ids) == 30
    assert all(layout.is_unit_token(t) or t >= layout.pitch_token_offset for t in speech.token_ids)
    assert len(speech.waveform) == len(speech.units) * pipe.vocoder.config.hop_length
    text_to_speech = pipe.continue_expressive(text=prompt.text, max_new_tokens=20, min_new_tokens=20, seed=0)
    assert text_to_speech.modality == "speech" and len(text_to_speech.token_ids) == 20
    to_text = pipe.continue_expressive(audio=prompt.waveform, sampling_rate=16000, output_modality="text",
                                       max_new_tokens=5, min_new_tokens=5, seed=0)  # fmt: skip
    assert len(to_text.token_ids) == 5 and all(t < layout.text_vocab_size for t in to_text.token_ids)
    assert to_text.text == pipe.tokenizer.decode(to_text.token_ids)
    with pytest.raises(ValueError, match="exactly one prompt"):
        pipe.continue_expressive(audio=prompt.waveform, text=prompt.text)
    with pytest.raises(ValueError, match="num_pitch_tokens=8"):
        ExpressiveSpeechLMPipeline(pipe.feature_extractor, pipe.speech_tokenizer,
                                   ExpressiveEncoderModel(ExpressiveEncoderConfig()), pipe.language_model)  # fmt: skip


def test_trainer_learns_interleaved_sequences(pipeline, prompts, tmp_path):
    items = pipeline.encode_expressive([p.waveform for p in prompts], sampling_rate=16000)
    sequences = expressive_sequences(pipeline.processor, [i["units"] for i in items], [i["pitch"] for i in items],
                                     [i["style"] for i in items], texts=[p.text for p in prompts])  # fmt: skip
    assert len(sequences) == 4 * len(prompts)
    layout = pipeline.processor.layout
    assert any(layout.is_pitch_token(t) for t in sequences[0]) and any(layout.is_style_token(t) for t in sequences[0])
    lm = SpeechLMForCausalLM(pipeline.language_model.config)
    collator = CausalLMCollator(pad_token_id=layout.pad_token_id)
    batch = collator([{"input_ids": s} for s in sequences])
    with torch.no_grad():
        before = float(lm(**batch).loss)
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=15, per_device_train_batch_size=8,
                             learning_rate=3e-3, report_to=[], save_strategy="no", logging_strategy="no",
                             use_cpu=True, disable_tqdm=True)  # fmt: skip
    Trainer(model=lm, args=args, train_dataset=[{"input_ids": s} for s in sequences], data_collator=collator).train()
    with torch.no_grad():
        assert float(lm.eval()(**batch).loss) < before - 0.5


# ---------------------------------------------------------------------------------------------------- STSP
def test_preservation_and_random_baseline():
    result = preservation([0, 1, 2, 2], [0, 2, 2, -1])
    assert result["stsp"] == 0.5 and result["random_baseline"] == pytest.approx(1 / 3)
    assert result["unusable_continuations"] == 1
    # chance|pred = sum_c p(prompt=c) p(pred=c) = 1/4 * 1/4 + 2/4 * 2/4
    assert result["chance_given_predictions"] == pytest.approx(0.3125)
    with pytest.raises(ValueError, match="as many predictions"):
        preservation([0, 1], [0])


def test_stsp_on_a_tiny_set(pipeline, prompts):
    assert [p.sentiment for p in prompts] == [s for s in SENTIMENTS for _ in range(3)]
    neg, pos = (next(p for p in prompts if p.sentiment == s) for s in ("negative", "positive"))
    assert neg.rate < pos.rate and neg.pitch < pos.pitch and neg.pitch_range < pos.pitch_range
    train, held_out = split_prompts(prompts, 0.67, seed=0)
    assert len(train) == 6 and len(held_out) == 3 and {p.sentiment for p in held_out} == set(SENTIMENTS)
    speech_clf, text_clf, accuracy = train_classifiers(train, held_out)
    assert set(accuracy) == {"speech_classifier_accuracy", "text_classifier_accuracy"}
    results = evaluate_stsp(pipeline, held_out, speech_clf, text_clf, max_new_tokens=20, min_new_tokens=20)
    assert set(results) == {"speech->speech", "text->speech", "speech->text"}
    for r in results.values():
        assert r["num_prompts"] == 3 and 0.0 <= r["stsp"] <= 1.0 and sum(r["predicted_counts"].values()) <= 3
    with pytest.raises(ValueError, match="directions must be"):
        evaluate_stsp(pipeline, held_out, speech_clf, text_clf, directions=["speech->video"])


def test_cli_stsp_runs_and_refuses_bad_arguments(pipeline, tmp_path, capsys):
    folder = tmp_path / "expressive"
    pipeline.save_pretrained(folder)
    out = tmp_path / "stsp.json"
    assert main(["evaluate", "stsp", "--pipeline", str(folder), "--num-prompts", "3", "--train-fraction", "0.67",
                 "--directions", "speech->speech", "--max-new-tokens", "20", "--output", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["directions"]["speech->speech"]["num_prompts"] == 3 and out.with_suffix(".md").is_file()
    assert "speech->speech" in capsys.readouterr().out
    for bad, message in ((["--directions", "speech->video"], "unknown direction"),
                         (["--num-prompts", "0"], "positive int"),
                         (["--train-fraction", "1.5"], "(0, 1]")):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", "stsp", "--pipeline", str(folder), "--output", str(out), *bad])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert main(["evaluate", "stsp", "--pipeline", str(folder), "--train-fraction", "1", "--output", str(out)]) == 1
    assert "--train-fraction must be below 1" in capsys.readouterr().err
