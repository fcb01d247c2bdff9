"""The embedded `speech-llm-default` (issue 16): within its size budget, its vocoder a reference to the default's,
loads offline in a fresh process and transcribes espeak-ng speech, answers through `hf-slm chat`,
and its card carries the measured figures of eval_results.json."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

import hf_slm
from hf_slm.cli.main import main
from hf_slm.data.builder import write_wav
from hf_slm.data.espeak import EspeakSynthesizer
from hf_slm.pipelines import INDEX_FILE
from hf_slm.pipelines.pipeline_utils import resolve_pipeline_path

SPEECH_LLM = Path(hf_slm.DEFAULT_SPEECH_LLM_PIPELINE)
BUDGET_MB = 14  # docs/speech_llm.md states it

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: threads cost more than they give


def test_within_budget_and_the_vocoder_is_the_defaults():
    assert resolve_pipeline_path("speech-llm-default") == SPEECH_LLM
    size = sum(f.stat().st_size for f in SPEECH_LLM.rglob("*") if f.is_file())
    assert size <= BUDGET_MB * 1e6, f"speech-llm-default is {size / 1e6:.1f} MB, over the {BUDGET_MB} MB budget"
    index = json.loads((SPEECH_LLM / INDEX_FILE).read_text())
    assert index["_class_name"] == "SpeechLLMPipeline"
    assert index["vocoder"] == {"library": "hf_slm", "class": "UnitMelVocoder", "repo": "default", "subfolder": "vocoder"}
    assert not (SPEECH_LLM / "vocoder").exists() and not list(SPEECH_LLM.rglob("*.bin"))
    summary = json.loads((SPEECH_LLM / "training_summary.json").read_text())
    assert [summary[s]["stage"] for s in ("stage1", "stage2", "stage3")] == [1, 2, 3]
    assert all(summary[s]["steps"] > 0 for s in ("encoder", "lm", "stage1", "stage2", "stage3"))


def test_loads_offline_in_a_fresh_process_and_transcribes_espeak_speech(tmp_path):
    code = """
from hf_slm import SpeechLLMPipeline
from hf_slm.data import EspeakSynthesizer
pipe = SpeechLLMPipeline.from_pretrained("speech-llm-default")
speech = EspeakSynthesizer("en-us").synthesize("the weather is nice today")
print(repr(pipe.transcribe(speech.waveform, sampling_rate=speech.sampling_rate, max_new_tokens=24)[0]))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = eval(proc.stdout.strip().splitlines()[-1])  # noqa: S307 - our own repr of a str
    assert isinstance(text, str) and text.strip()


def test_cli_chat_answers_a_spoken_question_in_text_and_speech(tmp_path, capsys):
    """`hf-slm chat speech-llm-default --audio --text --output` answers in text and writes the spoken answer (its
    speech decoder emits units: 1,200 CPU steps of stage 3)."""
    speech = EspeakSynthesizer("en-us").synthesize("What does the word jackrabbit mean?")
    question = write_wav(tmp_path / "question.wav", speech.waveform, speech.sampling_rate)
    answer = tmp_path / "answer.wav"
    argv = ["chat", "speech-llm-default", "--audio", str(question), "--text", "say the answer", "--max-new-tokens", "12",
            "--output", str(answer)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip()
    with wave.open(str(answer)) as spoken:
        assert spoken.getnframes() > spoken.getframerate() // 10  # at least 0.1 s of speech


def test_shipped_decoding_spells_lexicon_words_and_beats_the_lm_alone():
    """What `transcribe` does by default on the variant (its `generation_config.json`: beam search, joint CTC / LM
    scores; its processor's lexicon) spells only lexicon words, and on held-out sentences it is no worse than greedy
    decoding of the LM alone."""
    from hf_slm import SpeechLLMPipeline
    from hf_slm.data import load_text_corpus
    from hf_slm.evaluation.asr import evaluate_asr

    pipe = SpeechLLMPipeline.from_pretrained("speech-llm-default")
    config, lexicon = pipe.language_model.generation_config, set(pipe.processor.lexicon)
    assert config.num_beams > 1 and config.asr_num_beams >= config.num_beams and config.asr_ctc_weight > 0
    assert len(lexicon) > 100_000 and pipe.processor.lexicon["the"] > 1000  # train-side counts: the unigram prior
    word_lm = pipe.processor.word_lm  # the look-ahead word trigram LM, read from processor/word_lm.arpa.gz
    assert config.asr_word_lm_weight > 0 and word_lm.order == 3
    assert word_lm.log_prob("sea", ("of", "the")) > word_lm.log_prob("see", ("of", "the"))

    class LanguageModelAlone:
        def transcribe(self, waveforms, sampling_rate):
            return pipe.transcribe(waveforms, sampling_rate=sampling_rate, num_beams=1, no_repeat_ngram_size=0,
                                   ctc_weight=0, use_lexicon=False)  # fmt: skip

    # short held-out sentences: a beam search batch runs as long as its longest item (the LM alone misspells these)
    texts = [t for t in load_text_corpus("open-eval", limit=40, seed=1) if len(t.split()) <= 8][:8]
    shipped, alone = evaluate_asr(pipe, texts, baselines=()), evaluate_asr(LanguageModelAlone(), texts, baselines=())
    assert shipped["wer"] <= alone["wer"] and shipped["cer"] <= alone["cer"]
    words = [w for item in shipped["items"] for w in re.findall(r"[a-z']+", item["hypothesis"])]
    assert words and set(words) <= lexicon
    assert any(w not in lexicon for item in alone["items"] for w in re.findall(r"[a-z']+", item["hypothesis"]))
    pipe.processor.set_word_lm(None)  # the configured default weight needs the LM: refused by name, not ignored
    with pytest.raises(ValueError, match="word_lm_weight=0.5 needs a processor with a word LM"):
        pipe.transcribe(np.zeros(16000, dtype=np.float32), sampling_rate=16000)
    silence = pipe.transcribe(np.zeros(16000, dtype=np.float32), sampling_rate=16000, word_lm_weight=0, num_beams=2)
    assert len(silence) == 1 and isinstance(silence[0], str)


def test_card_carries_the_measured_figures():
    results = json.loads((SPEECH_LLM / "eval_results.json").read_text())
    card = (SPEECH_LLM / "README.md").read_text()
    assert results["asr"]["n"] >= 50 and results["asr"]["voice"] == "en-us" and results["asr"]["rate"] == 175
    assert f"{results['asr']['wer']:.3f}" in card and f"{results['asr']['pocketsphinx_open_wer']:.3f}" in card
    assert f"{results['speech_llm_tasks']['intent_accuracy']:.3f}" in card


def test_lm_tokenizer_spends_no_merge_on_chat_markers():
    """The recipe's BPE learns from the texts, so no vocabulary entry is a fragment of `<|im_start|>` etc. (encoding
    splits added tokens off first, so such entries could never be produced), and framed text keeps each marker whole."""
    from example_loader import load_script

    recipe = load_script("examples/speech_llm/make_default.py")
    texts = ["the cat sat on the mat", "a dog ran in the park", "what is the meaning of it"] * 20
    tokenizer = recipe.train_lm_tokenizer(texts, vocab_size=120)
    markers = ("<|im_start|>", "<|im_end|>", "<|audio|>")
    vocab = tokenizer.get_vocab()
    fragments = [t for t in vocab if t not in markers and ("<|" in t or "|>" in t or "im_" in t)]
    assert not fragments
    framed = "<|im_start|>assistant\nthe cat sat<|im_end|>\n"
    ids = tokenizer(framed, add_special_tokens=False)["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == "<|im_start|>" and "<|im_end|>" in tokens and "<unk>" not in tokens
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == "assistant\nthe cat sat"


def test_spelling_curriculum_trains_both_phases_and_skips_what_is_saved(tmp_path, monkeypatch):
    """`make_default.py spell`: OUT/lm -> OUT/lm_copy (plain copy task) -> OUT/lm_spelled (CTC-like frames), two
    Trainer runs; a rerun finds both saved and trains nothing."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from example_loader import load_script

    recipe = load_script("examples/speech_llm/make_default.py")
    tokenizer = recipe.train_lm_tokenizer(["the cat sat on the mat", "a dog ran"] * 10, vocab_size=40)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    monkeypatch.setattr(recipe, "SPELL_PHASES", tuple((name, opts, 2) for name, opts, _ in recipe.SPELL_PHASES))
    assert recipe.build_spelled_lm(tmp_path) == tmp_path / "lm_spelled"
    copy = json.loads((tmp_path / "lm_copy" / "lm_results.json").read_text())
    spelled = json.loads((tmp_path / "lm_spelled" / "lm_results.json").read_text())
    assert copy["steps"] == spelled["steps"] == 2 and copy["blank"] == 0.0 and "blank" not in spelled
    before = (tmp_path / "lm_spelled" / "model.safetensors").stat().st_mtime_ns
    recipe.build_spelled_lm(tmp_path)
    assert (tmp_path / "lm_spelled" / "model.safetensors").stat().st_mtime_ns == before


def test_ship_step_rebuilds_the_shipped_folder_atomically_without_model_code(tmp_path, monkeypatch):
    """`make_default.py ship OUT`: the shipped variant's own parts and figures laid out as the recipe leaves them give
    back its eval_results.json and card, swapped into place whole, with no modelling code (the package serves it)."""
    import shutil

    from example_loader import load_script

    from hf_slm.pipelines import SpeechLLMPipeline
    from hf_slm.pipelines.model_card import render_model_card

    recipe = load_script("examples/speech_llm/make_default.py")
    shipped_results = json.loads((SPEECH_LLM / "eval_results.json").read_text())
    summary = json.loads((SPEECH_LLM / "training_summary.json").read_text())
    out = tmp_path / "out"
    shutil.copytree(SPEECH_LLM, out / "variant")
    (out / "variant" / "language_model" / "modeling_written_by_save.py").write_text("# remote code\n")
    for key, name in (("asr", "asr.json"), ("asr_real_speech", "asr_librivox.json")):  # as `evaluate asr` writes
        asr = shipped_results[key]
        asr = {k: v for k, v in asr.items() if not k.startswith("pocketsphinx_")} | {"pocketsphinx": {
            v: {m: asr[f"pocketsphinx_{v}_{m}"] for m in ("wer", "cer")} for v in ("open", "closed")}}
        (out / name).write_text(json.dumps(asr))
    tasks, nested = shipped_results["speech_llm_tasks"], {}
    for key, value in tasks.items():  # back to the layout `evaluate speech-llm-tasks` writes: {task: {figure: value}}
        task = next((t for t in ("intent", "spoken_answer") if key.startswith(t + "_")), None)
        if task is None:
            nested[key] = value
        else:
            nested.setdefault(task, {})[key[len(task) + 1:]] = value
    (out / "tasks.json").write_text(json.dumps(nested))
    for name, folder in (("encoder", "encoder_long"), ("stage1", "stage1"), ("stage2", "stage2"), ("stage3", "stage3")):
        (out / folder).mkdir()
        (out / folder / "results.json").write_text(json.dumps(summary[name]))
    for name in ("lm", "lm_copy", "lm_spelled"):
        (out / name).mkdir()
        (out / name / "lm_results.json").write_text(json.dumps(summary[name]))
    target = tmp_path / "package" / "default_speech_llm_pipeline"
    shutil.copytree(SPEECH_LLM, target)
    (target / "stale_file_of_the_old_release.txt").write_text("old")
    monkeypatch.setattr(hf_slm, "DEFAULT_SPEECH_LLM_PIPELINE", str(target))

    assert recipe.ship(out) == target.resolve()
    assert json.loads((target / "eval_results.json").read_text()) == shipped_results
    assert json.loads((target / "training_summary.json").read_text())["previous_release"] == shipped_results
    card = (target / "README.md").read_text()  # the embedded card, with the release it replaced beside it
    assert card == str(render_model_card(SpeechLLMPipeline.from_pretrained(target), repo_id="speech-llm-default",
                                         embedded=True))  # fmt: skip
    assert '`"speech-llm-default"` names the copy embedded' in card and f"{shipped_results['asr']['wer']:.3f}" in card
    assert not list(target.rglob("*.py")) and not (target / "stale_file_of_the_old_release.txt").exists()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temporary or backup folder left


def test_encoder_export_and_put_back_round_trip_through_a_ctc_model(tmp_path):
    """`make_default.py export-encoder OUT`: the variant's encoder + its projector's CTC head as a transformers CTC
    model that scores a clip exactly as the variant's own CTC head does; `put-back-encoder OUT`: a fine-tuned copy's
    weights go back into the variant (encoder and head), the LM and everything else untouched."""
    import shutil

    import torch
    from example_loader import load_script
    from transformers import AutoModelForCTC, AutoProcessor
    from safetensors.torch import load_file

    from hf_slm.models.speech_llm import SpeechLLMForConditionalGeneration

    recipe = load_script("examples/speech_llm/make_default.py")
    out = tmp_path / "out"
    shutil.copytree(SPEECH_LLM, out / "variant")
    exported = recipe.export_encoder(out)
    ctc, processor = AutoModelForCTC.from_pretrained(exported).eval(), AutoProcessor.from_pretrained(exported)
    speech = EspeakSynthesizer("en-us").synthesize("the weather is nice today")
    wave = speech.waveform if speech.sampling_rate == 16000 else __import__("torchaudio").functional.resample(
        torch.as_tensor(speech.waveform), speech.sampling_rate, 16000).numpy()  # fmt: skip
    features = processor.feature_extractor(wave, sampling_rate=16000, return_tensors="pt")
    model = SpeechLLMForConditionalGeneration.from_pretrained(out / "variant" / "language_model").eval()
    with torch.no_grad():
        mine, _ = model.ctc_log_posteriors(features["input_features"], features["attention_mask"])
        theirs = ctc(**features).logits.log_softmax(-1)
    torch.testing.assert_close(theirs, mine, atol=1e-4, rtol=1e-4)
    # its vocabulary, read back from the symbol table, spells what was said (greedy CTC: "... nice taday")
    assert processor.batch_decode(theirs.argmax(-1))[0].startswith("the weather is nice t")
    assert recipe.export_encoder(out) == exported  # done: not redone

    with pytest.raises(FileNotFoundError, match="no finished run"):
        recipe.put_back_encoder(out)
    tuned = out / "encoder_robust"
    shutil.copytree(exported, tuned)
    with torch.no_grad():
        ctc.lm_head.bias.add_(0.5)
        ctc.base_model.encoder.layers[0].ffn1.intermediate_dense.weight.mul_(1.1)
    ctc.save_pretrained(tuned)
    (tuned / "results.json").write_text("{}")
    variant = recipe.put_back_encoder(out)
    back = SpeechLLMForConditionalGeneration.from_pretrained(variant / "language_model")
    torch.testing.assert_close(back.projector.ctc_head.bias, ctc.lm_head.bias)
    torch.testing.assert_close(back.audio_tower.encoder.layers[0].ffn1.intermediate_dense.weight,
                               ctc.base_model.encoder.layers[0].ffn1.intermediate_dense.weight)  # fmt: skip
    before = load_file(out / "variant" / "language_model" / "model.safetensors")
    after = load_file(variant / "language_model" / "model.safetensors")
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed and all(k.startswith(("audio_tower.", "projector.ctc_head.")) for k in changed)
    assert set(before) == set(after)
    for name in ("pipeline_index.json", "processor/lexicon.txt", "language_model/generation_config.json"):
        assert (variant / name).read_bytes() == (out / "variant" / name).read_bytes()
