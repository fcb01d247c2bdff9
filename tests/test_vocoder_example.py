"""examples/vocoder/train_vocoder.py: the tiny config trains a unit HiFi-GAN on CPU (real espeak-ng, the embedded
default speech tokenizer, the real `VocoderGanTrainer`, real pocketsphinx), lowers the mel loss, and resumes."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from hf_slm import SpeechLMPipeline, UnitHifiGanVocoder
from hf_slm.training.arguments import SpeechDataArguments, load_speech_splits, parse_json_and_flags

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vocoder"
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def script():
    from example_loader import load_script

    return load_script(EXAMPLE / "train_vocoder.py")


def _flags(out: Path) -> list[str]:
    # the tiny config, smaller still: 20 sentences, 2 held out, batches of 8 x 16 units, a loss window of 4 steps
    overrides = {"output_dir": out, "num_sentences": 20, "num_eval_utterances": 2, "logging_steps": 4, "save_steps": 12,
                 "disable_tqdm": "true"}  # fmt: skip
    return [str(EXAMPLE / "config_tiny.json")] + [item for k, v in overrides.items() for item in (f"--{k}", str(v))]


def test_tiny_config_lowers_the_mel_loss_then_resumes(script, tmp_path):
    torch.set_num_threads(1)
    results = script.main(_flags(tmp_path) + ["--max_steps", "12"])
    curve = [point["loss_mel"] for point in results["loss_mel"]]
    assert [point["step"] for point in results["loss_mel"]] == [4, 8, 12]
    assert curve[-1] < 0.9 * curve[0], curve  # the unweighted training mel L1 goes down
    resynthesis = results["resynthesis"]
    assert resynthesis["n"] == 2 and math.isfinite(resynthesis["mel_distance"]) and resynthesis["mel_distance"] > 0
    assert 0 <= resynthesis["wer_original"] and 0 <= resynthesis["wer_resynthesized"]
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 12
    assert len(list((tmp_path / "resynthesis").glob("*_resynthesized.wav"))) == 2
    (tmp_path / "results.json").unlink()  # killed after checkpoint-12, before its results: ends on that checkpoint
    again = script.main(_flags(tmp_path) + ["--max_steps", "12"])
    assert again["steps"] == 12 and again["resynthesis"]["mel_distance"] == resynthesis["mel_distance"]
    assert not (tmp_path / "checkpoint-13").exists()
    # the exported generator (no discriminators) and the speech tokenizer load back and resynthesise
    vocoder = AutoModel.from_pretrained(tmp_path)
    assert type(vocoder) is UnitHifiGanVocoder and vocoder.discriminator is None
    assert vocoder.num_parameters() == results["generator_parameters"]
    pipe = SpeechLMPipeline.from_pretrained("default")
    pipe = SpeechLMPipeline(pipe.feature_extractor, AutoModel.from_pretrained(tmp_path / "speech_tokenizer"),
                            vocoder=vocoder)  # fmt: skip
    out = pipe.resynthesize(torch.randn(8000).numpy() * 0.1, sampling_rate=16000)
    assert out.waveforms[0].shape == (len(out.units[0]) * 320,)
    # the same command with more steps continues from the last checkpoint; a spent time budget stops it after one
    # step (checkpointed there), whatever max_steps says
    resumed = script.main(_flags(tmp_path) + ["--max_steps", "1000", "--max_train_minutes", "1e-6"])
    assert resumed["steps"] == 13 and resumed["resumed_from"] == "checkpoint-12" and results["resumed_from"] is None
    assert resumed["stopped_by_time_limit"] and not results["stopped_by_time_limit"]
    assert (tmp_path / "checkpoint-13" / "optimizer_discriminator.pt").is_file()


def test_script_arguments_and_errors(script, tmp_path):
    tiny = str(EXAMPLE / "config_tiny.json")
    data_args, model_args, training_args = script.parse_arguments([tiny, "--max_steps", "3"])
    assert training_args.max_steps == 3 and model_args.upsample_initial_channel == 32  # flag, JSON
    assert data_args.segment_units == 16 and model_args.speech_tokenizer == "default"
    assert training_args.remove_unused_columns is False
    base = script.parse_arguments([str(EXAMPLE / "config_base.json")])
    assert base[1].upsample_initial_channel == 512 and base[1].baseline_pipeline == "default"
    (tmp_path / "bad.json").write_text(json.dumps({"max_steps": 2, "segment_unit": 3}))
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['segment_unit'\]"):
        script.parse_arguments([str(tmp_path / "bad.json")])
    with pytest.raises(ValueError, match="hop of 160 samples.*every 320 samples"):
        half_hop = script.VocoderModelArguments(upsample_rates="5,4,4,2", upsample_kernel_sizes="11,8,8,4")
        script.build_vocoder(half_hop, num_units=100, hop_length=320, sampling_rate=16000, use_duration_predictor=False)


def test_shared_speech_splits_name_a_missing_column(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": ["a", "b", "c"]}).save_to_disk(str(tmp_path / "ds"))
    (data_args,) = parse_json_and_flags((SpeechDataArguments,), ["--dataset_path", str(tmp_path / "ds")])
    with pytest.raises(ValueError, match="no column 'audio'"):
        load_speech_splits(data_args, seed=0)


def test_csv_list_strips_items_and_drops_empty_ones():
    """`"a, b ,c"` is three names, not " b " (a voice or rate list written with spaces reached espeak-ng padded)."""
    from hf_slm.training.arguments import csv_list

    assert csv_list("en-us, en-gb+f2 ,en-us+m7") == ["en-us", "en-gb+f2", "en-us+m7"]
    assert csv_list(" 150, 175,,200 ", int) == [150, 175, 200]
    assert csv_list(" , ") == []
