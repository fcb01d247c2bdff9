"""The embedded `codec-default` (issue 19): loads by name offline, within its size budget, stores float16 weights that
compute in float32, continues speech as codec codes that its own codec speaks, carries its measured figures, and is
what `ship_codec_default.py` packages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import hf_slm
from hf_slm import MelRVQCodecModel, MultiStreamSpeechLMForCausalLM, SpeechLMPipeline

from embedded_variants import check_embedded_folder, run_offline, voice_prompt

CODEC_DEFAULT = Path(hf_slm.DEFAULT_CODEC_PIPELINE)
BUDGET_MB = 4  # docs/default_pipeline.md


@pytest.fixture(scope="module")
def pipe():
    return SpeechLMPipeline.from_pretrained("codec-default")


@pytest.fixture(scope="module")
def prompt():
    return voice_prompt()


def test_resolves_by_name_within_budget_and_ships_no_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_embedded_folder("codec-default", CODEC_DEFAULT, BUDGET_MB, float16=["language_model"])


def test_components_compute_in_float32(pipe):
    assert isinstance(pipe.speech_tokenizer, MelRVQCodecModel) and pipe.vocoder is None
    lm = pipe.language_model
    assert isinstance(lm, MultiStreamSpeechLMForCausalLM) and lm.dtype == torch.float32
    assert lm.config.stream_vocab_sizes == [pipe.speech_tokenizer.codebook_size] * pipe.speech_tokenizer.num_codebooks


def test_continues_speech_in_codes_its_codec_speaks(pipe, prompt):
    out = pipe.continue_speech(prompt, max_new_tokens=25, seed=0)
    codec = pipe.speech_tokenizer
    assert out.units[0].shape == (codec.num_codebooks, 25)
    assert torch.equal(out.prompt_units[0], pipe.encode(prompt)[0])
    prompt_frames = out.prompt_units[0].shape[-1]
    assert len(out.waveforms[0]) == (prompt_frames + 25) * codec.hop_length
    new = out.waveforms[0][prompt_frames * codec.hop_length :]
    assert np.isfinite(new).all() and np.abs(new).max() > 1e-3  # it says something, not silence
    assert len(set(out.units[0][0].tolist())) > 3  # not one code repeated


def test_loads_offline_in_a_fresh_process(tmp_path):
    code = ("import hf_slm; from hf_slm import SpeechLMPipeline; p = SpeechLMPipeline.from_pretrained('codec-default'); "
            "print(type(p.speech_tokenizer).__name__, p.language_model.dtype)")  # fmt: skip
    assert run_offline(code, tmp_path) == ["MelRVQCodecModel", "torch.float32"]


def test_card_states_the_measured_voice_figures_against_the_default():
    results = json.loads((CODEC_DEFAULT / "eval_results.json").read_text())
    systems = results["voice"]["systems"]
    assert {"default", "codec-default"} <= set(systems) and systems["codec-default"]["n"] >= 32
    card = (CODEC_DEFAULT / "README.md").read_text()
    for name in ("default", "codec-default"):
        assert f"| continuation voice: `{name}`" in card
        assert f"{systems[name]['speaker_similarity']:.3f}" in card
    assert f"{results['codec']['codec-default']['speaker_similarity']:.3f}" in card
    summary = json.loads((CODEC_DEFAULT / "training_summary.json").read_text())
    assert summary["train_hours"] > 4 and "CODEC=mel" in summary["recipe"]


def test_ship_script_packages_a_codec_lm_run(tmp_path):
    """`ship_codec_default.py` on a tiny run folder: float16 storage, float32 config, card, summary, no code."""
    import datasets

    from transformers import LlamaConfig

    from example_loader import ROOT, load_script
    from tiny_components import tiny_mel_rvq_codec

    run = tmp_path / "run"
    codec = tiny_mel_rvq_codec()
    backbone = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                           num_key_value_heads=2)  # fmt: skip
    lm = MultiStreamSpeechLMForCausalLM(hf_slm.MultiStreamSpeechLMConfig(
        text_config=backbone, stream_vocab_sizes=[codec.codebook_size] * codec.num_codebooks,
        frame_rate=codec.frame_rate))  # fmt: skip
    pipe = SpeechLMPipeline(feature_extractor=hf_slm.SpeechFeatureExtractor(do_normalize=False),
                            speech_tokenizer=codec, language_model=lm)  # fmt: skip
    pipe.save_pretrained(run / "codec_lm" / "variant")
    (run / "codec").mkdir()
    (run / "codec" / "results.json").write_text(json.dumps({"bitrate_bps": codec.bitrate}))
    rows = {"audio": [np.zeros(1600, np.float32)] * 2, "duration": [3600.0, 1800.0]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(run / "data" / "train_corpus"))
    split = {"train_voices": 3, "unseen_voices": 1, "validation_utterances": 0}
    (run / "data" / "voice_split.json").write_text(json.dumps(split))
    script = load_script(ROOT / "examples" / "codec_lm" / "ship_codec_default.py")
    script.main([str(run), "--output", str(tmp_path / "shipped")])
    shipped = tmp_path / "shipped"
    assert not list(shipped.rglob("*.py")) and (shipped / "README.md").is_file()
    assert json.loads((shipped / "training_summary.json").read_text())["train_hours"] == 1.5
    loaded = SpeechLMPipeline.from_pretrained(shipped)
    assert loaded.language_model.dtype == torch.float32
    expected = {k: v.half().float() for k, v in pipe.language_model.state_dict().items()}
    assert all(torch.equal(v, expected[k]) for k, v in loaded.language_model.state_dict().items())
