"""The embedded TWIST-style variant: loads by name, borrows the GSLM default's components by reference, keeps text.

Also the reproduction script (`examples/default_pipeline/train_twist.py`) on a tiny setting.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LogitsProcessorList

import hf_slm
from hf_slm import SpeechLMPipeline
from hf_slm.data import load_text_corpus
from hf_slm.models.speech_lm.modeling_speech_lm import AllowedTokensLogitsProcessor
from hf_slm.pipelines import INDEX_FILE
from hf_slm.pipelines.pipeline_utils import embedded_pipeline_path, resolve_pipeline_path

TWIST = Path(hf_slm.DEFAULT_TWIST_PIPELINE)
DEFAULT = Path(hf_slm.DEFAULT_PIPELINE)
SHARED = ("feature_extractor", "speech_tokenizer", "vocoder")
SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "default_pipeline" / "train_twist.py"


def _weights_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*.safetensors")) / 1e6


@pytest.fixture(scope="module")
def twist():
    return SpeechLMPipeline.from_pretrained("twist-default")


def test_names_resolve_to_the_embedded_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # wherever the user runs from
    assert resolve_pipeline_path("twist-default") == TWIST == resolve_pipeline_path("default-twist")
    assert resolve_pipeline_path("default") == DEFAULT
    assert embedded_pipeline_path("org/default") is None


def test_shares_the_default_components_by_reference_within_budget():
    index = json.loads((TWIST / INDEX_FILE).read_text())
    for name in SHARED:
        assert index[name]["repo"] == "default" and index[name]["subfolder"] == name, index[name]
        assert not (TWIST / name).exists(), f"{name} is duplicated instead of referenced"
    assert (TWIST / "tokenizer" / "tokenizer.json").is_file() and (TWIST / "README.md").is_file()
    assert not list(TWIST.rglob("*.bin")) and not list(TWIST.rglob("*.pkl"))
    package = Path(hf_slm.__file__).parent
    others = ("default_speech_llm_pipeline", "default_codec_pipeline", "default_tts_pipeline")  # own budgets: 14, 4, 5 MB
    speech_lm = _weights_mb(package) - sum(_weights_mb(package / name) for name in others)
    assert speech_lm <= 30, f"unit speech-LM variants' weights {speech_lm:.1f} MB over their 30 MB budget"
    total = _weights_mb(package)  # every variant shipped in the package, together (docs/default_pipeline.md)
    assert total <= 46, f"shipped weights {total:.1f} MB over the package's 46 MB budget"


def test_loads_by_name_with_the_default_components(twist):
    default = SpeechLMPipeline.from_pretrained("default")
    for name in ("speech_tokenizer", "vocoder"):
        ours, theirs = getattr(twist, name).state_dict(), getattr(default, name).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), name
    assert twist.feature_extractor.to_dict() == default.feature_extractor.to_dict()
    config = twist.language_model.config
    assert config.text_vocab_size == len(twist.tokenizer)
    assert config.num_units == twist.speech_tokenizer.config.num_units
    summary = json.loads((TWIST / "training_summary.json").read_text())
    assert summary["arguments"]["init"] == "text_lm"
    # the TWIST guarantee at the moment of the warm start: text NLL unchanged
    assert summary["text_eval_loss_after_warm_start"] == pytest.approx(summary["text_eval_loss_text_lm"], abs=1e-5)


@torch.no_grad()
def _text_nll_per_token(pipe, sentences: list[str]) -> float:
    """Mean NLL per text token of `<|endoftext|> sentence <|endoftext|>`, softmax over the text vocabulary."""
    tok, model = pipe.tokenizer, pipe.language_model
    eos, text_vocab = tok.eos_token_id, model.config.text_vocab_size
    total, count = 0.0, 0
    for sentence in sentences:
        ids = torch.tensor([[eos, *tok(sentence, add_special_tokens=False)["input_ids"], eos]])
        logits = model(input_ids=ids).logits[0, :-1, :text_vocab]
        total += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
        count += ids.shape[1] - 1
    return total / count


def test_still_scores_and_generates_text(twist):
    """Text knowledge survives the speech training (text rows mixed into it: NLL 1.75 -> 1.74 nats/token; speech
    alone left 3.94-4.17, and the cold-init LM of the same size, which never saw text, is at 6.30, above uniform
    ln 512 = 6.24), and text-only generation continues with the corpus's words (speech alone: "The" ->
    " pololndd......"; docs/default_pipeline.md)."""
    sentences = load_text_corpus("builtin", limit=40, seed=123)
    uniform = math.log(twist.language_model.config.text_vocab_size)
    nll = _text_nll_per_token(twist, sentences)
    assert nll < 3.0, f"text NLL {nll:.2f} nats/token (uniform {uniform:.2f}): the speech training erased the text LM"

    tok, model = twist.tokenizer, twist.language_model
    text_only = LogitsProcessorList([AllowedTokensLogitsProcessor(range(len(tok)), model.config.vocab_size)])
    prompt = torch.tensor([[tok.eos_token_id, *tok("The", add_special_tokens=False)["input_ids"]]])
    out = model.generate(prompt, max_new_tokens=12, do_sample=False, logits_processor=text_only,
                         pad_token_id=model.config.vocab_layout.pad_token_id)
    new = out[0, prompt.shape[1]:]
    assert len(new) == 12 and bool((new < model.config.text_vocab_size).all()), new
    vocabulary = {w for sentence in load_text_corpus("builtin", limit=2000, seed=0) for w in sentence.lower().split()}
    words = tok.decode(new).lower().replace(".", " ").split()
    assert sum(w in vocabulary for w in words) >= 3, f"the text continuation {tok.decode(new)!r} holds no corpus words"


def test_continues_speech(twist):
    from hf_slm.data import EspeakSynthesizer

    speech = EspeakSynthesizer("en-us").synthesize("the red dog runs home")
    audio = {"array": speech.waveform, "sampling_rate": speech.sampling_rate}
    # like the GSLM default, it learned to end a whole-sentence prompt at once: ask for 10 units at least
    out = twist.continue_speech(audio, max_new_tokens=20, min_new_tokens=10, seed=0)
    assert 10 <= len(out.units[0]) <= 20 and out.waveforms[0].size > 0


def test_training_script_smoke(tmp_path):
    """Tiny run end to end: text tokenizer + text LM -> warm start -> speech training with text rows mixed in ->
    variant with references."""
    args = [sys.executable, str(SCRIPT), "--num_sentences", "16", "--num_eval_sentences", "4", "--num_proc", "1",
            "--text_lm_num_sentences", "200", "--text_lm_num_eval_sentences", "20", "--text_vocab_size", "300",
            "--text_lm_max_steps", "2", "--lm_epochs", "1", "--lm_batch_size", "8", "--text_mix_ratio", "0.5",
            "--lm_hidden_size", "32", "--lm_num_layers", "1", "--lm_num_heads", "2", "--lm_intermediate_size", "64",
            "--output_dir", str(tmp_path / "variant"), "--work_dir", str(tmp_path / "work")]
    env = {**os.environ, "HF_SLM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    variant = tmp_path / "variant"
    summary = json.loads((variant / "training_summary.json").read_text())
    assert summary["text_eval_loss_after_warm_start"] == pytest.approx(summary["text_eval_loss_text_lm"], abs=1e-5)
    assert summary["train_utterances"] + summary["eval_utterances"] == 20
    # one epoch of the speech rows and half as many text rows, in batches of 8
    speech_rows = summary["train_utterances"]
    assert summary["text_mix_rows"] == round(0.5 * speech_rows) > 0
    state = json.loads(next((tmp_path / "work" / "speech_lm_text_lm_text0.5").glob("checkpoint-*/trainer_state.json")).read_text())
    assert state["global_step"] == math.ceil((speech_rows + summary["text_mix_rows"]) / 8) > math.ceil(speech_rows / 8)
    index = json.loads((variant / INDEX_FILE).read_text())
    assert all(index[name]["repo"] == "default" for name in SHARED)
    pipe = SpeechLMPipeline.from_pretrained(variant)
    assert pipe.language_model.config.text_vocab_size == len(pipe.tokenizer) == 300
    stages = sorted(re.sub(r"-[0-9a-f]{12}$", "-<key>", p.name) for p in (tmp_path / "work").iterdir())
    assert stages == ["corpus-<key>", "speech_lm_text_lm_text0.5", "text_lm", "text_lm_final", "text_tokenizer", "units-<key>"]


def test_training_script_refuses_a_bad_text_mix_ratio():
    from example_loader import load_script

    twist = load_script(SCRIPT)
    with pytest.raises(ValueError, match="--text_mix_ratio must be a number >= 0, got -1"):
        twist.TwistPipelineArguments(text_mix_ratio=-1)


def test_cli_info_shows_the_references(capsys):
    from hf_slm.cli import main

    assert main(["info", "twist-default", "--json"]) == 0
    components = json.loads(capsys.readouterr().out)["components"]
    assert components["vocoder"]["shared_from"] == "default:vocoder"
    default_units = json.loads((Path(hf_slm.DEFAULT_PIPELINE) / "speech_tokenizer" / "config.json").read_text())
    assert components["speech_tokenizer"]["num_units"] == default_units["num_units"]  # read through the reference
    assert components["language_model"]["text_vocab_size"] == 512
