"""The embedded instruct variant: an adapter (< 1 MB) over the TWIST default, loaded by name, its components all
references; its card carries the measured task figures; it still tells noise from spoken queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hf_slm
from hf_slm.instruct import INSTRUCT_TOKENS, noise_waveforms
from hf_slm.pipelines import INDEX_FILE, SpokenChatPipeline
from hf_slm.pipelines.pipeline_utils import resolve_pipeline_path

INSTRUCT = Path(hf_slm.DEFAULT_INSTRUCT_PIPELINE)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: threads cost more than they give


@pytest.fixture(scope="module")
def instruct():
    return SpokenChatPipeline.from_pretrained("instruct-default")


def test_adapter_only_over_the_twist_default():
    assert resolve_pipeline_path("instruct-default") == INSTRUCT
    assert sorted(p.name for p in INSTRUCT.iterdir()) == ["README.md", "adapter", "eval_results.json", INDEX_FILE,
                                                         "training_summary.json", "tuning_texts.txt"]  # fmt: skip
    index = json.loads((INSTRUCT / INDEX_FILE).read_text())
    assert index["language_model"]["repo"] == index["tokenizer"]["repo"] == "twist-default"
    for name in ("feature_extractor", "speech_tokenizer", "vocoder"):  # where the TWIST default itself points
        assert index[name]["repo"] == "default", index[name]
    assert index["language_model"]["add_task_tokens"] == list(INSTRUCT_TOKENS)
    adapter_bytes = sum(f.stat().st_size for f in (INSTRUCT / "adapter").glob("*.safetensors"))
    assert 0 < adapter_bytes < 1e6, f"adapter is {adapter_bytes / 1e6:.2f} MB"


def test_loads_by_name_and_its_card_shows_the_measured_tasks(instruct):
    from peft import PeftModel

    assert isinstance(instruct.language_model, PeftModel) and instruct.tokenizer is not None
    assert instruct.language_model.get_base_model().config.task_tokens[-len(INSTRUCT_TOKENS) :] == list(INSTRUCT_TOKENS)
    results = json.loads((INSTRUCT / "eval_results.json").read_text())["instruct_tasks"]
    card = (INSTRUCT / "README.md").read_text()
    assert f"| {results['intent']['accuracy']:.3f} ({results['intent']['chance']:.3f}) |" in card
    assert f"| {results['tts']['wer']:.3f} / {results['tts']['wer_espeak']:.3f} |" in card
    summary = json.loads((INSTRUCT / "training_summary.json").read_text())
    assert summary["base"] == "twist-default" and summary["steps"] > 0


def test_stays_silent_on_noise(instruct):
    """Silence mode on fresh noise clips (seed unseen in tuning and evaluation): an immediate </s>."""
    silent = [instruct.chat(clip, sampling_rate=16000, max_new_tokens=2, vocode=False).silent
              for clip in noise_waveforms(6, seed=4242)]  # fmt: skip
    assert sum(silent) >= 5, silent


def test_ships_its_tuning_texts_as_its_recorded_arguments_draw_them():
    """evaluate_tasks.py holds out the variant's own tuning_texts.txt; they must be the texts its tuning drew, and the
    evaluation's held-out sentences none of them (the recorded overlaps: none for ASR / TTS)."""
    from example_loader import load_script

    from hf_slm.evaluation.instruct_tasks import held_out_sentences, text_overlap

    tune = load_script("examples/instruction_tuning/tune.py", "instruction_tune_shipped", keep_registered=True)
    arguments = json.loads((INSTRUCT / "training_summary.json").read_text())["arguments"]
    seed = arguments["seed"] + arguments.get("data_seed_offset", 0)
    texts = tune.instruction_texts(tune.instruction_draws(arguments["tasks"], arguments["num_utterances"], seed))
    assert (INSTRUCT / "tuning_texts.txt").read_text(encoding="utf-8").splitlines() == texts
    results = json.loads((INSTRUCT / "eval_results.json").read_text())["instruct_tasks"]
    sentences = held_out_sentences(results["asr"]["n"], seed=1000, exclude=texts)
    assert text_overlap(sentences, texts) == results["asr"]["text_overlap"] == 0.0
