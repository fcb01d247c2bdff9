"""Instruction tuning: data builders (formats, masks), chat template, LoRA defaults / training step / save-load-merge,
silence mode after a short tuning, spoken chat streaming and user interruption, the example script."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, LlamaConfig, OPTConfig, Qwen2Config

from hf_slm import SpeechChatTemplate, SpeechLMConfig, SpeechLMForCausalLM, SpeechLMPipeline, SpeechLMProcessor
from hf_slm.cli import main as cli_main
from hf_slm.data import generate_sentences
from hf_slm.instruct import (
    ASR_TEMPLATES,
    INSTRUCT_TOKENS,
    TTS_TEMPLATES,
    attach_adapter,
    build_chain_of_modality,
    build_cross_modal,
    build_silence_mode,
    build_slu,
    default_lora_config,
    espeak_speaker,
    instruction_words,
    merge_adapter,
    noise_waveforms,
    save_instruct_variant,
    synthetic_qa_pairs,
    synthetic_slu_commands,
    word_level_tokenizer,
)
from hf_slm.evaluation.instruct_tasks import (
    evaluate_instruct_tasks,
    evaluate_silence,
    held_out_sentences,
    text_overlap,
)
from hf_slm.pipelines.adapters import adapter_holds_embeddings, add_task_tokens
from hf_slm.pipelines import SpokenChatPipeline

sys.path.insert(0, str(Path(__file__).parent))
from example_loader import load_script  # noqa: E402
from tiny_components import NUM_UNITS, tiny_mel_vocoder, tiny_unit_encoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "instruction_tuning"
SENTENCES = generate_sentences(6, seed=3)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: threads cost more than they give


def _tiny_backbone(kind: str = "llama", hidden: int = 32):
    if kind == "llama":
        return LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    if kind == "qwen2":
        return Qwen2Config(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    if kind == "gpt2":
        return GPT2Config(n_embd=hidden, n_layer=2, n_head=4, tie_word_embeddings=True)
    return OPTConfig(hidden_size=hidden, ffn_dim=2 * hidden, num_hidden_layers=2, num_attention_heads=4,
                     word_embed_proj_dim=hidden, tie_word_embeddings=False)  # fmt: skip


def _tokenizer():
    return word_level_tokenizer(SENTENCES, extra_words=instruction_words())


def _chat_model(tokenizer, kind: str = "llama", hidden: int = 32, seed: int = 0):
    torch.manual_seed(seed)
    config = SpeechLMConfig(text_config=_tiny_backbone(kind, hidden), text_vocab_size=len(tokenizer),
                            num_units=NUM_UNITS)  # fmt: skip
    return add_task_tokens(SpeechLMForCausalLM(config), INSTRUCT_TOKENS).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return _tokenizer()


@pytest.fixture(scope="module")
def chat(tokenizer):
    model = _chat_model(tokenizer)
    return SpeechChatTemplate(SpeechLMProcessor.from_config(model, tokenizer=tokenizer))


@pytest.fixture(scope="module")
def speak(tmp_path_factory):
    pipe = SpeechLMPipeline(feature_extractor=_feature_extractor(), speech_tokenizer=tiny_unit_encoder())
    return espeak_speaker(pipe, cache_dir=tmp_path_factory.mktemp("speech"))


def _feature_extractor():
    from hf_slm.models.unit_encoder import SpeechFeatureExtractor

    return SpeechFeatureExtractor()


def _learned(chat, row) -> list[int]:
    out = chat.encode(row["messages"], task=row["tag"] or None)
    assert len(out["labels"]) == len(out["input_ids"]) == len(out["attention_mask"])
    return [i for i in out["labels"] if i != -100]


# ---------------------------------------------------------------------------------------------------- builders
def test_cross_modal_rows_and_assistant_only_labels(chat, tokenizer):
    units = [[1, 2, 3], [4, 5]]
    data = build_cross_modal(units, ["The cat sleeps.", "A dog runs!"], seed=1)
    assert data["task"] == ["asr", "tts", "asr", "tts"] and data["tag"] == ["[ASR]", "[TTS]", "[ASR]", "[TTS]"]
    assert data[0]["messages"][0]["content"][0]["text"] in ASR_TEMPLATES
    assert data[1]["messages"][0]["content"][0]["text"] in TTS_TEMPLATES
    assert data[0]["reference"] == "the cat sleeps"  # normalised: lower case, no punctuation
    layout = chat.layout
    asr = _learned(chat, data[0])
    assert asr == [layout.text_token_id, *tokenizer("the cat sleeps", add_special_tokens=False)["input_ids"],
                   layout.eos_token_id]  # fmt: skip
    tts = _learned(chat, data[3])
    assert tts == [layout.speech_token_id, *layout.units_to_token_ids([4, 5]).tolist(), layout.eos_token_id]
    ids = chat.encode(data[0]["messages"], task="[ASR]")["input_ids"]
    assert ids[:3] == [layout.bos_token_id, layout.token_id("[ASR]"), layout.token_id("[User]")]
    assert build_cross_modal(units, ["a b", "c"], seed=1)[:] == build_cross_modal(units, ["a b", "c"], seed=1)[:]
    with pytest.raises(ValueError, match="2 unit sequences for 1 texts"):
        build_cross_modal(units, ["a"])
    with pytest.raises(ValueError, match="tasks"):
        build_cross_modal(units, ["a", "b"], tasks=("asr", "st"))


def test_chain_of_modality_from_espeak(chat, speak):
    pairs = synthetic_qa_pairs(3, seed=0)
    assert pairs == synthetic_qa_pairs(3, seed=0)
    data = build_chain_of_modality(pairs, speak)
    row = data[0]
    user, assistant = row["messages"]
    assert [c["type"] for c in user["content"]] == ["speech"] and len(user["content"][0]["units"]) > 10
    assert [c["type"] for c in assistant["content"]] == ["text", "text", "speech"]
    assert assistant["content"][0]["text"] == pairs[0][0] and assistant["content"][1]["text"] == pairs[0][1]
    learned = _learned(chat, row)
    layout = chat.layout
    assert learned.count(layout.text_token_id) == 2 and learned.count(layout.speech_token_id) == 1
    assert learned[-1] == layout.eos_token_id and layout.is_unit_token(learned[-2])


def test_slu_tasks(chat, speak):
    commands = synthetic_slu_commands(6, seed=2)
    data = build_slu(commands, speak, seed=0)
    assert sorted(set(data["task"])) == ["intent", "keyword", "slots"] and len(data) == 18
    for command, intent, slots, keyword in zip(commands, data.filter(lambda r: r["task"] == "intent"),
                                               data.filter(lambda r: r["task"] == "slots"),
                                               data.filter(lambda r: r["task"] == "keyword")):  # fmt: skip
        assert intent["reference"] == command["intent"].replace("_", " ")
        for name, value in command["slots"].items():
            assert f"{name} is {value}" in slots["reference"]
        asked = keyword["messages"][0]["content"][0]["text"].split()
        word = asked[asked.index("word") + 1]  # both templates say "... the word {keyword} ..."
        assert keyword["reference"] == ("yes" if word in command["text"].split() else "no")
        assert _learned(chat, intent)[0] == chat.layout.text_token_id


def test_silence_mode_rows_learn_only_eos(chat):
    data = build_silence_mode([[1, 2], [3]], ["one", "two"], [[7, 7, 7]])
    assert data["task"] == ["query", "query", "silence"]
    assert _learned(chat, data[2]) == [chat.layout.eos_token_id]
    assert _learned(chat, data[0])[0] == chat.layout.text_token_id
    clips = noise_waveforms(3, seed=0)
    assert len(clips) == 3 and all(c.dtype.name == "float32" and 0 < abs(c).max() <= 0.1 + 1e-6 for c in clips)


def test_chat_template_prompt_and_errors(chat, tokenizer):
    messages = [{"role": "user", "content": "say this text"}]
    out = chat.encode(messages, add_generation_prompt=True, return_labels=False)
    assert out["input_ids"][-1] == chat.layout.token_id("[Assistant]") and "labels" not in out
    batch = chat([messages, messages + [{"role": "assistant", "content": "yes"}, *messages]],
                 add_generation_prompt=True)  # fmt: skip
    assert batch["input_ids"].shape[0] == 2 and batch["attention_mask"][0, 0] == 0  # left padded for generation
    with pytest.raises(ValueError, match="role"):
        chat.encode([{"role": "system", "content": "x"}])
    with pytest.raises(ValueError, match="encode audio first"):
        chat.encode([{"role": "user", "content": [{"type": "speech"}]}])
    with pytest.raises(ValueError, match="end with a user turn"):
        chat.encode([*messages, {"role": "assistant", "content": "x"}], add_generation_prompt=True)
    plain = SpeechLMProcessor.from_config(SpeechLMConfig(num_units=4))
    with pytest.raises(ValueError, match="add_task_tokens"):
        SpeechChatTemplate(plain)


# ---------------------------------------------------------------------------------------------------- LoRA
@pytest.mark.parametrize(
    "kind, targets",
    [("llama", "q_proj"), ("qwen2", "gate_proj"), ("gpt2", "c_attn"), ("opt", "fc1")],
)
def test_default_lora_config_per_backbone(tokenizer, kind, targets):
    model = _chat_model(tokenizer, kind)
    config = default_lora_config(model)
    assert targets in config.target_modules
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    assert set(config.target_modules) <= names
    if kind == "gpt2":  # tied: the non-text rows of the shared table, not two diverging copies
        assert config.modules_to_save is None
        (rows,) = config.trainable_token_indices.values()
        assert rows == list(range(len(tokenizer), model.config.vocab_size))
    else:
        assert len(config.modules_to_save) == 2
    peft_model = attach_adapter(model, config)
    assert any("lora_A" in n for n, p in peft_model.named_parameters() if p.requires_grad)


def test_add_task_tokens_keeps_existing_ids_and_logits(tokenizer):
    torch.manual_seed(0)
    config = SpeechLMConfig(text_config=_tiny_backbone(), text_vocab_size=len(tokenizer), num_units=NUM_UNITS)
    model = SpeechLMForCausalLM(config).eval()
    ids = torch.tensor([[config.bos_token_id, config.speech_token_id, len(tokenizer) + 3, 5]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
    extended = add_task_tokens(model, INSTRUCT_TOKENS)
    assert extended.config.task_tokens[-len(INSTRUCT_TOKENS):] == list(INSTRUCT_TOKENS)
    assert extended.config.eos_token_id == config.eos_token_id
    with torch.no_grad():
        after = extended(input_ids=ids).logits
    torch.testing.assert_close(after[..., : before.shape[-1]], before)
    assert add_task_tokens(extended, ["[User]"]) is extended


def _train(peft_model, dataset, steps, lr, batch_size, tmp_path, processor):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), max_steps=steps, learning_rate=lr,
                             per_device_train_batch_size=batch_size, report_to="none", save_strategy="no",
                             use_cpu=True, remove_unused_columns=False, logging_steps=1000, seed=0,
                             lr_scheduler_type="constant", disable_tqdm=True)  # fmt: skip
    Trainer(model=peft_model, args=args, train_dataset=dataset, data_collator=processor.pad).train()
    return peft_model.eval()


def test_lora_step_changes_only_adapter_and_saved_modules(tokenizer, chat, tmp_path):
    model = _chat_model(tokenizer)
    peft_model = attach_adapter(model, default_lora_config(model, r=4))
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    data = build_cross_modal([[1, 2, 3], [4, 5, 6, 7]], SENTENCES[:2]).map(chat.map_function())
    data = data.remove_columns(["task", "tag", "messages", "reference"])
    _train(peft_model, data, steps=1, lr=1e-2, batch_size=4, tmp_path=tmp_path, processor=chat.processor)
    changed = {n for n, p in peft_model.named_parameters() if not torch.equal(p, before[n])}
    assert changed, "the training step changed nothing"
    assert all("lora_" in n or ".modules_to_save." in n for n in changed), sorted(changed)
    assert any(".modules_to_save." in n for n in changed) and any("lora_B" in n for n in changed)


def test_tied_backbone_trains_token_rows_of_embedding_and_head(tokenizer):
    """GPT-2 ties its head to the embedding: the trained rows must reach both, and merging must keep them tied."""
    model = _chat_model(tokenizer, "gpt2")
    peft_model = attach_adapter(model, default_lora_config(model, r=4)).train()
    config = model.config
    ids = torch.tensor([[config.bos_token_id, config.token_id("[User]"), len(tokenizer) + 3,
                         config.token_id("[Assistant]"), config.speech_token_id, len(tokenizer) + 5]])  # fmt: skip
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=1.0)
    peft_model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    (delta,) = [p for n, p in peft_model.named_parameters() if "trainable_tokens_delta" in n]
    assert float(delta.detach().abs().sum()) > 0
    with torch.no_grad():
        expected = peft_model.eval()(input_ids=ids).logits
        merged = merge_adapter(peft_model)
        backbone = merged.language_model
        assert backbone.get_output_embeddings().weight is backbone.get_input_embeddings().weight
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-4)


def _base_variant(tokenizer, tmp_path, seed=0):
    torch.manual_seed(seed)
    config = SpeechLMConfig(text_config=_tiny_backbone(), text_vocab_size=len(tokenizer), num_units=NUM_UNITS)
    pipe = SpeechLMPipeline(feature_extractor=_feature_extractor(), speech_tokenizer=tiny_unit_encoder(),
                            language_model=SpeechLMForCausalLM(config).eval(), vocoder=tiny_mel_vocoder(),
                            tokenizer=tokenizer)  # fmt: skip
    return pipe, pipe.save_pretrained(tmp_path / "base")


def test_adapter_save_load_merge_equivalence(tokenizer, tmp_path):
    from peft import PeftModel

    base_pipe, base_path = _base_variant(tokenizer, tmp_path)
    lm = add_task_tokens(copy.deepcopy(base_pipe.language_model), INSTRUCT_TOKENS)
    peft_model = attach_adapter(lm, default_lora_config(lm, r=4, init_lora_weights=False)).eval()
    with torch.no_grad():  # a tuned head / embedding: differ from the mean-initialised rows a reload would make
        for n, p in peft_model.named_parameters():
            if ".modules_to_save." in n:
                p.add_(0.1 * torch.randn_like(p))
    tuned = SpeechLMPipeline(**{**base_pipe.components, "language_model": peft_model})
    ids = torch.tensor([[lm.config.bos_token_id, lm.config.token_id("[User]"), lm.config.speech_token_id,
                         len(tokenizer) + 2, len(tokenizer) + 5, lm.config.token_id("[Assistant]")]])  # fmt: skip
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits

    adapter_only = save_instruct_variant(tuned, tmp_path / "instruct", base=str(base_path))
    assert sorted(p.name for p in adapter_only.iterdir()) == ["README.md", "adapter", "pipeline_index.json"]
    index = json.loads((adapter_only / "pipeline_index.json").read_text())
    assert index["language_model"]["repo"] == "../base" and index["adapter"] == ["peft", "PeftModel"]  # movable
    loaded = SpokenChatPipeline.from_pretrained(adapter_only)
    assert isinstance(loaded.language_model, PeftModel)
    with torch.no_grad():
        torch.testing.assert_close(loaded.language_model(input_ids=ids).logits, expected)

    merged = merge_adapter(copy.deepcopy(peft_model))
    assert isinstance(merged, SpeechLMForCausalLM)
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-4)
    merged_path = save_instruct_variant(tuned, tmp_path / "merged", base=str(base_path), merge=True)
    assert (merged_path / "language_model").is_dir() and not (merged_path / "adapter").exists()
    reloaded = SpeechLMPipeline.from_pretrained(merged_path)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.language_model(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("tie", [True, False])
def test_adapter_only_variant_stores_no_copy_of_the_embedding(tokenizer, tmp_path, tie):
    """The adapter holds the tag rows (trainable tokens when tied, modules_to_save otherwise): PEFT's copy of the
    whole resized embedding is not written, and the reloaded variant still gives the tuned logits (tied: the head
    sees the trained rows after loading too)."""
    from safetensors import safe_open

    torch.manual_seed(0)
    backbone = _tiny_backbone()
    backbone.tie_word_embeddings = tie
    config = SpeechLMConfig(text_config=backbone, text_vocab_size=len(tokenizer), num_units=NUM_UNITS)
    base = SpeechLMPipeline(feature_extractor=_feature_extractor(), speech_tokenizer=tiny_unit_encoder(),
                            language_model=SpeechLMForCausalLM(config).eval(), tokenizer=tokenizer)  # fmt: skip
    base_path = base.save_pretrained(tmp_path / "base")
    # loaded from disk, as in tune.py: PEFT's "auto" then sees the resized vocabulary (a from-config model it does not)
    lm = add_task_tokens(SpeechLMPipeline.from_pretrained(base_path).language_model, INSTRUCT_TOKENS)
    peft_model = attach_adapter(lm, default_lora_config(lm, r=4, init_lora_weights=False)).eval()
    assert adapter_holds_embeddings(peft_model)  # tied: seen through PEFT's wrappers of the embedding and head
    with torch.no_grad():  # trained tag rows: a reload's fresh mean-initialised rows would differ
        for n, p in peft_model.named_parameters():
            if p.requires_grad and "lora_" not in n:
                p.add_(0.1 * torch.randn_like(p))
    tags = [lm.config.token_id(t) for t in ("[ASR]", "[User]", "[Assistant]")]
    ids = torch.tensor([[lm.config.bos_token_id, *tags[:2], lm.config.speech_token_id, len(tokenizer) + 3, tags[2]]])
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
    saved = save_instruct_variant(SpeechLMPipeline(**{**base.components, "language_model": peft_model}),
                                  tmp_path / "instruct", base=str(base_path))  # fmt: skip
    with safe_open(str(saved / "adapter" / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    if tie:  # only the trained rows; untied, the two modules to save are stored under the layers' own names
        assert any("trainable_tokens" in k for k in keys) and not [k for k in keys if k.endswith("embed_tokens.weight")]
    with torch.no_grad():
        torch.testing.assert_close(SpokenChatPipeline.from_pretrained(saved).language_model(input_ids=ids).logits,
                                   expected)  # fmt: skip


def test_adapter_only_variant_follows_the_base_references(tokenizer, tmp_path):
    """A base that itself references another variant's components (a TWIST variant sharing the GSLM default's
    tokenizer and vocoder) has no folder for them: the instruct variant must point where the base points."""
    first_pipe, first_path = _base_variant(tokenizer, tmp_path)
    torch.manual_seed(1)
    other_lm = SpeechLMForCausalLM(first_pipe.language_model.config).eval()
    second = SpeechLMPipeline(**{**first_pipe.components, "language_model": other_lm})
    second._shared_components = {name: {"library": "hf_slm", "class": type(first_pipe.components[name]).__name__,
                                        "repo": str(first_path), "subfolder": name}
                                 for name in ("feature_extractor", "speech_tokenizer", "vocoder")}  # fmt: skip
    second_path = second.save_pretrained(tmp_path / "second")
    assert not (second_path / "vocoder").exists()
    lm = add_task_tokens(copy.deepcopy(second.language_model), INSTRUCT_TOKENS)
    tuned = SpeechLMPipeline(**{**second.components, "language_model": attach_adapter(lm, r=4).eval()})
    saved = save_instruct_variant(tuned, tmp_path / "instruct", base=str(second_path))
    index = json.loads((saved / "pipeline_index.json").read_text())
    assert index["vocoder"]["repo"] == index["speech_tokenizer"]["repo"] == "../base"
    assert index["language_model"]["repo"] == index["tokenizer"]["repo"] == "../second"
    adapter_config = json.loads((saved / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "../second"  # the index's reference, not this machine's path
    loaded = SpokenChatPipeline.from_pretrained(saved)
    units = torch.arange(12) % NUM_UNITS
    torch.testing.assert_close(loaded.decode([units])[0], first_pipe.decode([units])[0])


def test_copied_or_moved_instruct_variant_still_loads(tokenizer, tmp_path):
    """The adapter-only variant references its base by a path relative to itself: copied or moved together with the
    base, it loads; moved without it, the error names the reference and where it was looked up."""
    import shutil

    from hf_slm.pipelines import PipelineLoadError

    runs = tmp_path / "runs"
    base_pipe, base_path = _base_variant(tokenizer, runs)
    lm = add_task_tokens(copy.deepcopy(base_pipe.language_model), INSTRUCT_TOKENS)
    peft_model = attach_adapter(lm, default_lora_config(lm, r=4, init_lora_weights=False)).eval()
    save_instruct_variant(SpeechLMPipeline(**{**base_pipe.components, "language_model": peft_model}),
                          runs / "instruct", base=str(base_path))  # fmt: skip
    ids = torch.tensor([[lm.config.bos_token_id, lm.config.token_id("[User]"), lm.config.speech_token_id,
                         len(tokenizer) + 2, lm.config.token_id("[Assistant]")]])  # fmt: skip
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits

    copied = tmp_path / "elsewhere" / "copy"
    shutil.copytree(runs, copied)
    moved = tmp_path / "moved"
    runs.rename(moved)
    for folder in (copied, moved):
        loaded = SpokenChatPipeline.from_pretrained(folder / "instruct")
        assert Path(loaded.local_path) == folder / "instruct"
        with torch.no_grad():
            torch.testing.assert_close(loaded.language_model(input_ids=ids).logits, expected)

    alone = tmp_path / "alone"
    shutil.copytree(moved / "instruct", alone)
    with pytest.raises(PipelineLoadError, match="'../base'") as error:
        SpokenChatPipeline.from_pretrained(alone)
    assert str(tmp_path / "base") in str(error.value)  # where it looked


# ---------------------------------------------------------------------------------------------------- silence mode
def _load_example(name: str):
    """An example script as a module (its dataclasses look their module up while being built)."""
    return load_script(EXAMPLE / f"{name}.py", f"instruction_{name}", keep_registered=True)


def test_silence_mode_after_short_tuning(tmp_path):
    """VITA's non-awakening: a tiny model tuned a few dozen steps answers noise with an immediate </s>, and does not
    on spoken queries. Units come from real audio (espeak-ng questions, synthetic noise) through a k-means
    tokenizer fitted on both."""
    tune = _load_example("tune")
    pairs = synthetic_qa_pairs(12, seed=5)
    questions = [q for q, _ in pairs]
    base = tune.build_tiny_base_pipeline(questions + [a for _, a in pairs], noise_waveforms(6, seed=1), seed=0,
                                         cache_dir=tmp_path / "speech")
    lm = add_task_tokens(base.language_model, INSTRUCT_TOKENS)
    pipe = SpokenChatPipeline(**{**base.components, "language_model": lm})
    speak = espeak_speaker(pipe, cache_dir=tmp_path / "speech")
    query_units = speak(questions)
    noise_units = [u.tolist() for u in pipe.encode(noise_waveforms(12, seed=2), sampling_rate=16000)]
    data = build_silence_mode(query_units, [a for _, a in pairs], noise_units)
    chat = pipe.chat_template
    data = data.map(chat.map_function(), remove_columns=data.column_names)
    peft_model = attach_adapter(lm, default_lora_config(lm, r=8, lora_alpha=16))
    _train(peft_model, data, steps=40, lr=5e-3, batch_size=8, tmp_path=tmp_path, processor=chat.processor)
    pipe.register_modules(language_model=peft_model)

    held_out_noise = noise_waveforms(6, seed=3)
    silent_noise = [pipe.chat(n, sampling_rate=16000, max_new_tokens=3, vocode=False).silent for n in held_out_noise]
    silent_queries = [pipe.chat({"role": "user", "content": [{"type": "speech", "units": u}]}, max_new_tokens=3,
                                vocode=False).silent for u in query_units]  # fmt: skip
    held_out_queries = speak([q for q, _ in synthetic_qa_pairs(6, seed=99)])
    silent_held_out = [pipe.chat({"role": "user", "content": [{"type": "speech", "units": u}]}, max_new_tokens=3,
                                 vocode=False).silent for u in held_out_queries]  # fmt: skip
    assert sum(silent_noise) >= 5, silent_noise  # measured: 6/6 for 4 seeds
    assert sum(silent_queries) <= 1 and sum(silent_held_out) <= 1, (silent_queries, silent_held_out)  # measured: 0

    # the task evaluation's silence measure counts the same replies
    noise_units = [u.tolist() for u in pipe.encode(held_out_noise, sampling_rate=16000)]
    measured = evaluate_silence(pipe, held_out_queries, noise_units, ["noise"] * len(noise_units))
    assert measured["silence_rate"] == sum(silent_noise) / 6 == measured["silence_rate_by_kind"]["noise"]
    assert measured["answer_rate"] == 1 - sum(silent_held_out) / 6
    assert measured["balanced_accuracy"] == (measured["silence_rate"] + measured["answer_rate"]) / 2


# ---------------------------------------------------------------------------------------------------- spoken chat
@pytest.fixture
def chat_pipeline(tokenizer):
    torch.manual_seed(0)
    lm = _chat_model(tokenizer)
    return SpokenChatPipeline(feature_extractor=_feature_extractor(), speech_tokenizer=tiny_unit_encoder(),
                              language_model=lm, vocoder=tiny_mel_vocoder(), tokenizer=tokenizer)  # fmt: skip


def test_spoken_chat_streams_audio_chunks(chat_pipeline):
    events = list(chat_pipeline.stream_chat("say this text", response_modality="speech", max_new_tokens=30,
                                            min_new_tokens=30, chunk_units=8, seed=0, do_sample=True,
                                            strict_modality=True))  # fmt: skip
    done = events[-1]
    assert done.kind == "done" and not done.output.interrupted
    chunks = [e.audio for e in events if e.kind == "audio"]
    units = done.output.units
    assert len(units) == 30 and len(chunks) >= 3  # 30 decoding steps after the forced [Speech]
    hop = chat_pipeline.vocoder.config.hop_length
    assert sum(len(c) for c in chunks) == len(done.output.waveform) == hop * len(units)
    assert all(len(c) % hop == 0 for c in chunks)  # each chunk holds whole units: context samples cut exactly
    assert done.output.messages[-1]["role"] == "assistant"
    assert done.output.messages[-1]["content"][0]["type"] == "speech"
    text = chat_pipeline.chat("transcribe this speech", response_modality="text", max_new_tokens=5, min_new_tokens=5,
                              strict_modality=True)
    assert text.text and not len(text.units) and text.waveform is None


def test_user_interruption(chat_pipeline):
    stream = chat_pipeline.stream_chat("say this text", response_modality="speech", max_new_tokens=200,
                                       min_new_tokens=200, chunk_units=2, strict_modality=True)  # fmt: skip
    first = next(stream)
    assert first.kind in ("audio", "text")
    chat_pipeline.stream_chat("what is two plus three")  # a new user input interrupts the running reply
    rest = list(stream)
    assert [e.kind for e in rest][-1] == "interrupted" and len(rest) <= 2
    output = rest[-1].output
    assert output.interrupted and len(output.token_ids) < 10
    assert output.messages[-1]["role"] == "assistant"  # the partial turn, to continue the conversation

    steps = []
    out = chat_pipeline.chat("say this text", response_modality="speech", max_new_tokens=50, min_new_tokens=50,
                             interrupt=lambda: steps.append(1) or len(steps) > 5, vocode=False)  # fmt: skip
    assert out.interrupted and len(out.token_ids) == 1 + 5  # forced [Speech] + 5 decoding steps


def test_spoken_chat_refuses_a_conversation_past_the_lm_positions(tokenizer):
    backbone = _tiny_backbone("opt")  # learned positions: past the table there is no position at all
    backbone.max_position_embeddings = 40
    torch.manual_seed(0)
    config = SpeechLMConfig(text_config=backbone, text_vocab_size=len(tokenizer), num_units=NUM_UNITS)
    lm = add_task_tokens(SpeechLMForCausalLM(config), INSTRUCT_TOKENS).eval()
    pipe = SpokenChatPipeline(feature_extractor=_feature_extractor(), speech_tokenizer=tiny_unit_encoder(),
                              language_model=lm, tokenizer=tokenizer)  # fmt: skip
    user = "what is two plus three"
    prompt = len(pipe.chat_template.encode([pipe.user_message(user)], add_generation_prompt=True)["input_ids"])
    fits = 40 - prompt - 1  # the forced [Text] marker is read too
    out = pipe.chat(user, response_modality="text", max_new_tokens=fits, min_new_tokens=fits, strict_modality=True)
    assert len(out.token_ids) == 1 + fits  # ran up to the last position
    with pytest.raises(ValueError, match=rf"conversation is {prompt + 1} LM tokens \+ max_new_tokens={fits + 1}, "
                                         r"more than the language model's 40 positions"):  # fmt: skip
        pipe.chat(user, response_modality="text", max_new_tokens=fits + 1)
    with pytest.raises(ValueError, match=r"is \d+ LM tokens \+ max_new_tokens=1, more than .* 40 positions"):
        pipe.chat(user, history=out.messages, max_new_tokens=1)  # the history alone fills the positions
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int, got 0"):
        pipe.chat(user, max_new_tokens=0)


# ---------------------------------------------------------------------------------------------------- example
def test_example_script_runs_on_tiny_config(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_SLM_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, str(EXAMPLE / "tune.py"), str(EXAMPLE / "config_tiny.json"), "--output_dir",
           str(tmp_path / "run"), "--max_steps", "2", "--synth_cache_dir", str(tmp_path / "speech"),
           "--save_strategy", "steps", "--save_steps", "2"]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = (tmp_path / "run" / "instruct_summary.json").read_bytes()
    summary = json.loads(saved)
    assert summary["steps"] == 2 and summary["rows"] > 0 and not summary["merged"]
    from safetensors import safe_open

    keys = []  # the checkpoint holds the adapter as the variant does: no copy of the whole resized table
    for folder in (tmp_path / "run" / "checkpoint-2", Path(summary["variant"]) / "adapter"):
        with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
            keys.append(sorted(f.keys()))
    assert keys[0] == keys[1] and not [k for k in keys[0] if "original_module" in k]
    # the same command again finds the run complete: nothing is trained or saved over it
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "run" / "instruct_summary.json").read_bytes() == saved
    assert not (tmp_path / "run" / "checkpoint-3").exists()
    # killed after its last checkpoint, before the summary: the rerun loads that checkpoint (the tied output
    # layer's copy of the trainable-token delta included) and writes the same adapter, training nothing
    adapter = Path(summary["variant"]) / "adapter" / "adapter_model.safetensors"
    weights = adapter.read_bytes()
    (tmp_path / "run" / "instruct_summary.json").unlink()
    resumed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert adapter.read_bytes() == weights and json.loads((tmp_path / "run" / "instruct_summary.json").read_text())["steps"] == 2
    pipe = SpokenChatPipeline.from_pretrained(summary["variant"])
    assert pipe.chat("what is two plus three", max_new_tokens=2, vocode=False).token_ids
    # the index names the chat pipeline, so a loader that reads `_class_name` gets `chat` too
    index = json.loads((Path(summary["variant"]) / "pipeline_index.json").read_text())
    assert index["_class_name"] == "SpokenChatPipeline"

    # the measured tasks on held-out speech (plumbing: a 2-step model scores poorly), then merged into the card
    output = tmp_path / "eval" / "tasks.json"
    assert cli_main(["evaluate", "instruct-tasks", "--pipeline", summary["variant"], "--output", str(output),
                     "--num-examples", "4", "--exclude-texts", str(tmp_path / "run" / "tuning_texts.txt"),
                     "--synth-cache-dir", str(tmp_path / "speech")]) == 0  # fmt: skip
    result = json.loads(output.read_text())
    assert output.with_suffix(".md").is_file() and output.with_suffix(".tasks.png").stat().st_size > 0
    assert result["tuning_texts"] == str(tmp_path / "run" / "tuning_texts.txt")
    assert cli_main(["card", summary["variant"], "--results", str(output)]) == 0
    card = (Path(summary["variant"]) / "README.md").read_text()  # training summary (tune.py) and figures (here)
    assert "64 instruction rows" in card and "| ASR on held-out speech (n=4) | WER |" in card
    tuning_texts = set((tmp_path / "run" / "tuning_texts.txt").read_text().splitlines())
    assert tuning_texts and not {i["reference"] for i in result["asr"]["items"]} & tuning_texts
    assert result["asr"]["n"] == result["tts"]["n"] == result["intent"]["n"] == 4
    assert result["asr"]["wer"] >= 0 and result["tts"]["wer"] >= 0 and 0 <= result["tts"]["wer_espeak"] <= 1
    for value in (result["asr"]["exact_match"], result["intent"]["accuracy"], result["silence"]["silence_rate"],
                  result["silence"]["answer_rate"], result["silence"]["balanced_accuracy"]):  # fmt: skip
        assert 0 <= value <= 1
    assert result["intent"]["chance"] == 0.2 and result["silence"]["n_non_queries"] == 4
    # held-out sentences share no text with tuning; the small QA / command sets are counted against it
    assert result["asr"]["text_overlap"] == result["tts"]["text_overlap"] == 0.0
    commands = [i["text"] for i in result["intent"]["items"]]
    assert result["intent"]["text_overlap"] == text_overlap(commands, tuning_texts)
    assert 0 <= result["silence"]["text_overlap"] <= 1
    # recordings (a folder of .wav + .txt): ASR of them, silence mode with them as side talk; kept apart on the card
    from hf_slm.data import synthesize_to_wav
    from hf_slm.data.real_speech import write_audio_dir

    spoken = ["the old house stood alone", "rain fell on the quiet town"]
    for i, text in enumerate(spoken):
        synthesize_to_wav(text, tmp_path / f"r{i}.wav", voice="en-gb+f2", rate=160)
    clips = write_audio_dir([tmp_path / f"r{i}.wav" for i in range(2)], spoken, tmp_path / "clips")
    recorded_out = tmp_path / "eval" / "recorded.json"
    assert cli_main(["evaluate", "instruct-tasks", "--pipeline", summary["variant"], "--audio-dir", str(clips),
                     "--num-examples", "4", "--output", str(recorded_out),
                     "--synth-cache-dir", str(tmp_path / "speech")]) == 0  # fmt: skip
    recorded = json.loads(recorded_out.read_text())
    assert recorded["audio_dir"] == "clips" and set(recorded) & {"tts", "intent"} == set()  # the recordable tasks
    assert [i["reference"] for i in recorded["asr"]["items"]] == spoken and recorded["asr"]["n"] == 2
    silence = recorded["silence"]
    assert silence["n_non_queries"] == 2 + 2 and silence["n_queries"] == 4  # 2 noise clips + the 2 recordings
    assert set(silence["silence_rate_by_kind"]) == {"noise", "recording"}
    assert cli_main(["card", summary["variant"], "--results", str(recorded_out)]) == 0
    merged = json.loads((Path(summary["variant"]) / "eval_results.json").read_text())
    assert merged["instruct_tasks"]["asr"]["n"] == 4 and merged["instruct_tasks_real_speech"]["asr"]["n"] == 2
    assert merged["instruct_tasks_real_speech"]["source"] == "clips"
    assert merged["instruct_tasks_real_speech"]["silence"]["recording_silence_rate"] == \
        silence["silence_rate_by_kind"]["recording"]  # fmt: skip
    card = (Path(summary["variant"]) / "README.md").read_text()
    assert "| ASR on held-out speech (n=4) | WER |" in card and "| ASR on real speech (`clips`, n=2) | WER |" in card
    assert "on real recordings (`clips`, n=2) its ASR has WER" in card

    # the variant carries its tuning's texts, and they are what the recorded arguments draw again
    own = Path(summary["variant"]) / "tuning_texts.txt"
    assert own.read_text() == (tmp_path / "run" / "tuning_texts.txt").read_text()
    tune = _load_example("tune")
    arguments = summary["arguments"]
    assert tune.instruction_texts(tune.instruction_draws(arguments["tasks"], arguments["num_utterances"],
                                                         arguments["seed"])) == own.read_text().splitlines()  # fmt: skip
    # the example script is a wrapper of the same command (and of `hf-slm card` for --update_card)
    evaluate_tasks = _load_example("evaluate_tasks")
    quick = ["--variant", summary["variant"], "--num_examples", "2", "--tasks", "intent", "--synth_cache_dir",
             str(tmp_path / "speech")]  # fmt: skip
    found = evaluate_tasks.main(quick + ["--output", str(tmp_path / "eval" / "own.json"), "--update_card", "true"])
    assert found["tuning_texts"] == str(own)  # no --exclude_texts: the variant's own copy
    assert found["intent"]["text_overlap"] == text_overlap([i["text"] for i in found["intent"]["items"]], tuning_texts)
    merged = json.loads((Path(summary["variant"]) / "eval_results.json").read_text())["instruct_tasks"]
    assert merged["intent"]["n"] == 2 and "asr" not in merged  # the newer run's tasks replace the earlier run's
    with pytest.raises(ValueError, match="not a local variant folder"):  # before any download or evaluation
        evaluate_tasks.main(["--variant", "someone/instruct", "--update_card", "true", "--output", str(tmp_path / "x")])
    # without the tuning's texts the overlap is unknown: null, not a 0.0 that reads as "all held out"
    own.unlink()
    unknown = evaluate_tasks.main(quick + ["--output", str(tmp_path / "eval" / "u.json")])
    assert unknown["intent"]["text_overlap"] is None and unknown["tuning_texts"] is None
    assert json.loads((tmp_path / "eval" / "u.json").read_text())["intent"]["text_overlap"] is None


def test_held_out_sentences_avoid_tuning_texts():
    seen = held_out_sentences(20, seed=7)
    assert held_out_sentences(20, seed=7) == seen and len(set(seen)) == 20
    fresh = held_out_sentences(20, seed=7, exclude=seen[:10])
    assert len(fresh) == 20 and not set(fresh) & set(seen[:10]) and fresh[:10] == seen[10:]
    with pytest.raises(ValueError, match="tasks must be"):
        evaluate_instruct_tasks(None, tasks=["translation"])


def test_text_overlap_is_a_fraction_of_normalised_texts_and_unknown_without_tuning_texts():
    tuning = ["The cat sleeps.", "a dog runs"]
    assert text_overlap(["the cat sleeps", "A dog runs!", "birds sing"], tuning) == pytest.approx(2 / 3)
    assert text_overlap(["birds sing"], tuning) == 0.0 and text_overlap(["birds sing"], []) == 0.0
    assert text_overlap(["the cat sleeps"], None) is None
    with pytest.raises(ValueError, match="at least one text"):
        text_overlap([], tuning)


# ---------------------------------------------------------------------------------------------------- DPO (TRL)
def test_layout_tokenizer_maps_names_to_layout_ids(tokenizer):
    from hf_slm.instruct.preference import build_speech_preferences, layout_tokenizer, units_to_string

    model = _chat_model(tokenizer)
    tok = layout_tokenizer(model)
    layout = model.config.vocab_layout
    ids = tok("<s>[Speech]" + units_to_string([3, 0, 15]) + "</s>", add_special_tokens=True)["input_ids"]
    assert ids == [layout.bos_token_id, layout.speech_token_id, *layout.units_to_token_ids([3, 0, 15]).tolist(),
                   layout.eos_token_id]  # fmt: skip
    assert tok.pad_token_id == layout.pad_token_id and tok.eos_token_id == layout.eos_token_id
    data = build_speech_preferences([[1, 2]], [[3]], [[4, 5]])
    assert data[0] == {"prompt": "<s>[Speech]<unit_1><unit_2>", "chosen": "<unit_3>", "rejected": "<unit_4><unit_5>"}
    with pytest.raises(ValueError, match="empty"):
        build_speech_preferences([[1]], [[]], [[2]])


def test_dpo_example_prefers_real_continuations(tmp_path):
    pytest.importorskip("trl", reason="DPO needs TRL: pip install 'hf_slm[instruct]'")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(EXAMPLE / "dpo.py"), "--output_dir", str(tmp_path / "dpo"), "--max_steps", "4",
           "--num_pairs", "8", "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--logging_steps",
           "1", "--report_to", "none", "--use_cpu", "true", "--save_strategy", "no", "--seed", "0",
           "--synth_cache_dir", str(tmp_path / "speech")]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "dpo" / "dpo_summary.json").read_text())
    assert summary["steps"] == 4 and summary["pairs"] == 8
    assert summary["last_loss"] < summary["first_loss"]  # the policy moves towards real speech
    pipe = SpeechLMPipeline.from_pretrained(summary["variant"])
    assert type(pipe.language_model.get_base_model()) is SpeechLMForCausalLM


def test_chat_decodes_as_generate_does(chat_pipeline):
    """The pipeline's own loop picks tokens as `generate` with the same processors would (greedy), and a seed fixes
    a sampled reply."""
    from transformers import GenerationConfig

    from hf_slm.pipelines.spoken_chat import KeepOnlyModality

    layout = chat_pipeline.chat_template.layout
    out = chat_pipeline.chat("say this text", response_modality="speech", strict_modality=True, max_new_tokens=12,
                             min_new_tokens=4, vocode=False)  # fmt: skip
    prompt = chat_pipeline.chat_template.encode([chat_pipeline.user_message("say this text")],
                                                add_generation_prompt=True, return_labels=False)["input_ids"]  # fmt: skip
    banned = [layout.pad_token_id, layout.bos_token_id] + [layout.token_id(t) for t in layout.task_tokens]
    config = GenerationConfig(max_new_tokens=12, min_new_tokens=4, do_sample=False, suppress_tokens=banned,
                              eos_token_id=layout.eos_token_id, pad_token_id=layout.pad_token_id)  # fmt: skip
    reference = chat_pipeline.language_model.generate(input_ids=torch.tensor([prompt + [layout.speech_token_id]]),
                                                      generation_config=config,
                                                      logits_processor=[KeepOnlyModality(layout, "speech")])  # fmt: skip
    assert out.token_ids == [layout.speech_token_id] + reference[0, len(prompt) + 1 :].tolist()
    sampled = [chat_pipeline.chat("say this text", max_new_tokens=12, do_sample=True, top_k=20, seed=seed,
                                  vocode=False).token_ids for seed in (0, 0, 1)]  # fmt: skip
    assert sampled[0] == sampled[1] != sampled[2]


def test_interruption_from_another_thread(chat_pipeline):
    """A reply generated in a worker thread stops promptly when the user speaks again on the main thread."""
    import threading

    started, result = threading.Event(), {}
    budget = chat_pipeline.language_model.config.text_config.max_position_embeddings - 64  # the most that fits

    def worker():
        def signal():  # called before each decoding step: tells the main thread that generation runs
            started.set()
            return False

        result["out"] = chat_pipeline.chat("say this text", response_modality="speech", max_new_tokens=budget,
                                           min_new_tokens=budget, strict_modality=True, vocode=False,
                                           interrupt=signal)  # fmt: skip

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    assert started.wait(30)
    chat_pipeline.stream_chat("stop")  # the new user input
    thread.join(30)
    assert not thread.is_alive()
    out = result["out"]
    assert out.interrupted and 1 <= len(out.token_ids) < budget


def test_docstring_examples_run():
    import doctest

    import hf_slm.models.speech_lm.chat_template_speech_lm as chat_module

    result = doctest.testmod(chat_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
