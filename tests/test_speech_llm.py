"""Continuous-feature speech LLMs (issue 16): tiny random Whisper / HuBERT encoders with Llama / GPT-2 LMs, the three
projectors, the processor and its chat template, batched generation, the CTC speech decoder, the training stages,
remote code, and the staged training script on espeak-ng speech."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMultimodalLM,
    AutoProcessor,
    GPT2Config,
    HubertConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LogitsProcessorList,
    PreTrainedTokenizerFast,
    SeamlessM4TFeatureExtractor,
    Wav2Vec2BertConfig,
    Wav2Vec2FeatureExtractor,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperModel,
)

from hf_slm.models.speech_llm import (
    AUDIO_TOKEN,
    SpeechAudioError,
    SpeechLLMConfig,
    SpeechLLMForConditionalGeneration,
    SpeechLLMProcessor,
    add_speech_llm_tokens,
)
from hf_slm.training.speech_llm import SpeechLLMCollator, set_training_stage, trainable_parameters
from component_tester import BLOCK_HF_SLM, ComponentTesterMixin

REPO_ROOT = Path(__file__).resolve().parents[1]
WORDS = "the cat sat on a mat dog ran far away user assistant transcribe audio".split()
RNG = np.random.default_rng(0)
CLIPS = [RNG.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 7000, 11000)]


def make_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<unk>": 0, **{w: i + 1 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    add_speech_llm_tokens(tokenizer)
    return tokenizer


def encoder_parts(family: str):
    """A tiny random encoder config and its feature extractor (Whisper: 2 s windows, 16 mel bins)."""
    if family == "whisper":
        config = WhisperConfig(
            num_mel_bins=16, d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
            decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, max_source_positions=100,
            max_target_positions=8,
        )  # fmt: skip
        return config, WhisperFeatureExtractor(feature_size=16, chunk_length=2)
    if family == "wav2vec2-bert":  # log-mel stacked to 20 ms frames, conformer layers (our CTC encoder's family)
        config = Wav2Vec2BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                                    output_hidden_size=32, conv_depthwise_kernel_size=5,
                                    feature_projection_input_dim=32)  # fmt: skip  (16 mel bins x a stride of 2)
        return config, SeamlessM4TFeatureExtractor(feature_size=16, num_mel_bins=16)
    config = HubertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm="layer",
        do_stable_layer_norm=True,
    )  # fmt: skip
    return config, Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True)


def lm_config(family: str, vocab_size: int):
    if family == "llama":
        return LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    return GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=256, bos_token_id=None,
                      eos_token_id=None)


PROJECTORS = {
    "stack_mlp": {"projector_type": "stack_mlp", "downsample": 4, "hidden_size": 48},
    "pool_linear": {"projector_type": "pool_linear", "downsample": 2},
    "qformer": {"projector_type": "qformer", "downsample": 5, "hidden_size": 32, "num_queries": 2,
                "num_attention_heads": 2, "num_layers": 1},  # fmt: skip
    "ctc_posterior": {"projector_type": "ctc_posterior", "downsample": 2, "ctc_vocab_size": 12},
}
DECODER = {"num_units": 20, "upsample_factor": 4, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}


def tiny(encoder="whisper", lm="llama", projector="stack_mlp", speech_decoder=False, seed=0, audio_layer=-1):
    tokenizer = make_tokenizer()
    audio_config, feature_extractor = encoder_parts(encoder)
    config = SpeechLLMConfig(
        audio_config=audio_config, text_config=lm_config(lm, len(tokenizer)), projector_config=PROJECTORS[projector],
        speech_decoder_config=DECODER if speech_decoder else None,
        audio_token_id=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN), audio_layer=audio_layer,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = SpeechLLMForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return model, SpeechLLMProcessor.from_config(config, feature_extractor, tokenizer)


def chat(clip, text="the cat", audio_first=True):
    items = [{"type": "audio", "audio": clip}, {"type": "text", "text": text}]
    return [{"role": "user", "content": items if audio_first else items[::-1]}]


COMBOS = [
    ("whisper", "llama", "stack_mlp"),
    ("hubert", "gpt2", "pool_linear"),
    ("whisper", "gpt2", "qformer"),
    ("hubert", "llama", "qformer"),
    ("wav2vec2-bert", "llama", "pool_linear"),
    ("wav2vec2-bert", "gpt2", "ctc_posterior"),
]


class TestSpeechLLMComponent(ComponentTesterMixin):
    """The common checks on a Whisper encoder + pooling projector + Llama, inputs made by its own processor."""

    component = "speech_llm"
    model_class = SpeechLLMForConditionalGeneration
    compared_outputs = ("logits",)

    def get_model(self):
        return tiny("whisper", "llama", "pool_linear")[0]

    def _inputs(self, conversations):
        processor = tiny("whisper", "llama", "pool_linear")[1]
        return dict(processor.apply_chat_template(conversations, add_generation_prompt=True))

    def get_inputs(self):
        return self._inputs(chat(CLIPS[1]))

    def export_inputs(self):
        return {**self.get_inputs(), "use_cache": False}  # a DynamicCache is no pytree output

    def get_batch_and_items(self):
        conversations = [chat(CLIPS[0]), chat(CLIPS[1], "dog ran", audio_first=False)]
        return self._inputs(conversations), [self._inputs(conversation) for conversation in conversations]


# ---------------------------------------------------------------------- config
def test_config_round_trips_through_auto_config(tmp_path):
    model, _ = tiny("hubert", "gpt2", "qformer", speech_decoder=True)
    model.config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is SpeechLLMConfig
    assert (loaded.audio_config.model_type, loaded.text_config.model_type) == ("hubert", "gpt2")
    assert loaded.projector_config.num_queries == 2 and loaded.speech_decoder_config.num_units == 20
    drop = {"_name_or_path"}
    assert {k: v for k, v in loaded.to_dict().items() if k not in drop} == {
        k: v for k, v in model.config.to_dict().items() if k not in drop
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"projector_config": {"projector_type": "conv"}}, "projector_type must be one of"),
        ({"projector_config": {"downsample": 0}}, "downsample must be a positive int"),
        ({"audio_token_id": 10**6}, "outside the LM vocabulary"),
        ({"text_config": {"model_type": "nope"}}, "known `model_type`"),
        ({"speech_decoder_config": {"hidden_size": 30, "num_attention_heads": 4}}, "divisible"),
        ({"projector_config": {"projector_type": "ctc_posterior"}}, "ctc_vocab_size must be a positive int"),
        ({"projector_config": {"projector_type": "ctc_posterior", "ctc_vocab_size": 5, "temperature": 0}},
         "temperature must be a positive number"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpeechLLMConfig(**kwargs)


# ---------------------------------------------------------------------- model: batch vs single, loss
@pytest.mark.parametrize("encoder, lm, projector", COMBOS)
def test_batch_with_padding_matches_each_clip_alone(encoder, lm, projector):
    """Clips of different lengths in one padded batch give the logits each gives alone (audio and text masks)."""
    model, processor = tiny(encoder, lm, projector)
    conversations = [chat(CLIPS[0]), chat(CLIPS[1], "dog ran", audio_first=False)]
    batch = processor.apply_chat_template(conversations, add_generation_prompt=True)
    counts = processor.audio_token_counts(batch["feature_attention_mask"].sum(-1))
    assert counts[0] > counts[1] > 0
    assert counts == model.audio_token_counts(batch["feature_attention_mask"].sum(-1)).tolist()
    assert (batch["input_ids"] == model.config.audio_token_id).sum(-1).tolist() == counts
    with torch.no_grad():
        together = model(**batch).logits
        for row, conversation in enumerate(conversations):
            alone = processor.apply_chat_template(conversation, add_generation_prompt=True)
            logits = model(**alone).logits[0]
            torch.testing.assert_close(together[row, : logits.shape[0]], logits, atol=1e-4, rtol=1e-4)


def test_audio_changes_the_answer_and_placeholders_never_carry_loss():
    model, processor = tiny()
    batch = processor.apply_chat_template(chat(CLIPS[0]), add_generation_prompt=True, return_labels=True)
    other = processor.apply_chat_template(chat(CLIPS[0] * -3.0), add_generation_prompt=True)
    with torch.no_grad():
        out = model(**batch)
        assert not torch.allclose(out.logits[0, -1], model(**other).logits[0, -1])
        assert (batch["labels"] == -100).sum() == (batch["input_ids"] == model.config.audio_token_id).sum()
        unmasked = model(**{**batch, "labels": batch["input_ids"]})  # placeholders as labels: masked inside
    torch.testing.assert_close(out.loss, unmasked.loss)


def test_audio_layer_picks_the_encoder_hidden_state():
    """`audio_layer=1` feeds the projector the first layer's output; -1 the encoder's final output."""
    last, processor = tiny("hubert", "llama", "qformer")
    first, _ = tiny("hubert", "llama", "qformer", audio_layer=1)
    batch = processor.apply_chat_template(chat(CLIPS[1]), add_generation_prompt=True)
    audio = batch["input_values"], batch["feature_attention_mask"]
    with torch.no_grad():
        hidden = last.audio_tower(audio[0], attention_mask=audio[1], output_hidden_states=True).hidden_states
        frames = hidden[1].shape[1]
        expected = first.projector(hidden[1], torch.tensor([frames]))[0][0]
        torch.testing.assert_close(first.get_audio_features(*audio)[0], expected)
        assert not torch.allclose(last.get_audio_features(*audio)[0], expected)


def test_wrong_placeholder_count_is_refused():
    model, processor = tiny()
    batch = processor.apply_chat_template(chat(CLIPS[0]), add_generation_prompt=True)
    ids = batch["input_ids"].clone()
    ids[0, ids[0].tolist().index(model.config.audio_token_id)] = 1
    with pytest.raises(ValueError, match="audio placeholders"):
        model(**{**batch, "input_ids": ids})


# ---------------------------------------------------------------------- generate
@pytest.mark.parametrize("encoder, lm, projector", COMBOS[:2])
def test_generate_batched_with_left_padding_matches_single(encoder, lm, projector):
    model, processor = tiny(encoder, lm, projector)
    conversations = [chat(CLIPS[1], "dog"), chat(CLIPS[0], "the cat sat on a mat")]
    batch = processor.apply_chat_template(conversations, add_generation_prompt=True, padding_side="left")
    assert (batch["attention_mask"][:, 0] == 0).any()  # one row is left-padded
    kwargs = {"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": False}
    together = model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1] :]
    for row, conversation in enumerate(conversations):
        alone = processor.apply_chat_template(conversation, add_generation_prompt=True)
        assert together[row].tolist() == model.generate(**alone, **kwargs)[0, alone["input_ids"].shape[1] :].tolist()


def test_text_only_turns_need_no_audio():
    model, processor = tiny()
    batch = processor.apply_chat_template([{"role": "user", "content": "the cat"}], add_generation_prompt=True)
    assert set(batch) == {"input_ids", "attention_mask"}
    assert model.generate(**batch, max_new_tokens=3, min_new_tokens=3, do_sample=False).shape[1] == 3 + batch[
        "input_ids"
    ].shape[1]


# ---------------------------------------------------------------------- processor
def test_chat_template_serves_text_audio_and_mixed_turns():
    _, processor = tiny()
    conversation = [
        {"role": "user", "content": "the cat"},
        {"role": "assistant", "content": "dog"},
        {"role": "user", "content": [{"type": "text", "text": "mat"}, {"type": "audio", "audio": CLIPS[2]}]},
    ]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>user\nthe cat<|im_end|>\n<|im_start|>assistant\ndog<|im_end|>\n"
        f"<|im_start|>user\nmat{AUDIO_TOKEN}<|im_end|>\n<|im_start|>assistant\n"
    )
    batch = processor.apply_chat_template(conversation, add_generation_prompt=True)
    assert batch["input_features"].shape[0] == 1 and batch["feature_attention_mask"].shape == (1, 200)


@pytest.mark.parametrize(
    "audio, kwargs, message",
    [
        ([np.zeros((2, 100), np.float32)], {}, "1-D waveform"),
        ([np.zeros(100, np.int16)], {}, "floats"),
        ([np.full(100, np.nan, np.float32)], {}, "NaN"),
        ([np.zeros(100, np.float32)], {"sampling_rate": 8000}, "8000 Hz"),
        ([np.zeros(100, np.float32)] * 2, {}, "1 <|audio|> but 2 audio clips came"),
    ],
)
def test_processor_refuses_bad_audio_at_the_boundary(audio, kwargs, message):
    _, processor = tiny()
    with pytest.raises(ValueError, match=message.replace("|", r"\|")):
        processor(text=f"{AUDIO_TOKEN} the cat", audio=audio, **kwargs)
    assert issubclass(SpeechAudioError, ValueError)


def test_processor_needs_the_audio_token():
    tok = Tokenizer(models.WordLevel(vocab={"<unk>": 0, "cat": 1}, unk_token="<unk>"))
    with pytest.raises(ValueError, match="add_speech_llm_tokens"):
        SpeechLLMProcessor(WhisperFeatureExtractor(), PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>"))


# ---------------------------------------------------------------------- speech decoder
def test_ctc_speech_decoder_learns_units_and_streams_them():
    """The model's CTC loss on `unit_labels` trains the decoder; a fitted decoder decodes the units, and the streamed
    chunks give exactly the whole-utterance decode."""
    model, processor = tiny(speech_decoder=True)
    target = [3, 7, 1, 12, 5]
    collator = SpeechLLMCollator(processor, unit_labels=True)
    batch = collator([{"audio": CLIPS[1], "text": "the cat sat", "units": target}])
    set_training_stage(model, 3).train()
    out = model(**batch)
    out.speech_loss.backward()
    assert torch.isfinite(out.loss) and out.unit_logits.shape[-1] == DECODER["num_units"] + 1
    assert all((p.grad is not None) == p.requires_grad for p in model.parameters())
    hidden = out.hidden_states[-1][0][batch["labels"][0] != -100].detach()
    decoder = model.speech_decoder
    optimizer = torch.optim.Adam(decoder.parameters(), lr=2e-2)
    lengths, labels = torch.tensor([hidden.shape[0]]), torch.tensor([target])
    losses = []
    for _ in range(25):
        loss, _ = decoder.ctc_loss(hidden[None], lengths, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    decoder.eval()
    units = decoder.decode_units(hidden)
    assert units == target
    streamed = list(decoder.stream_units(hidden.split(1)))
    assert len(streamed) > 2 and sum(streamed, []) == units


def test_generated_answers_feed_the_speech_decoder():
    """`answer_hidden_states` gives each row's hidden states up to its end marker; they decode to unit ids."""
    model, processor = tiny(speech_decoder=True)
    batch = processor.apply_chat_template([chat(CLIPS[1]), chat(CLIPS[0], "dog")], add_generation_prompt=True,
                                          padding_side="left")  # fmt: skip
    end = model.generation_config.eos_token_id
    sequences = model.generate(**batch, max_new_tokens=4, do_sample=False)
    sequences[0, -2] = end  # row 0 ends two tokens early
    hidden = model.answer_hidden_states(sequences, batch["input_ids"].shape[1], **batch)
    assert [h.shape[0] for h in hidden][0] == sequences.shape[1] - batch["input_ids"].shape[1] - 1
    units = model.speech_decoder.decode_units(hidden[1])
    assert all(0 <= u < DECODER["num_units"] for u in units)


def test_ctc_refuses_answers_too_short_for_their_units():
    model, processor = tiny(speech_decoder=True)
    batch = SpeechLLMCollator(processor, unit_labels=True)([{"audio": CLIPS[1], "text": "cat", "units": [1, 2] * 5}])
    with pytest.raises(ValueError, match=r"rows \[0\]: \[8\] decoder frames for \[10\] units"):
        model(**batch)


def test_ctc_refuses_units_outside_the_decoder():
    """Units from a larger tokenizer than the decoder's are an error (CPU CTC would silently read out of range)."""
    model, processor = tiny(speech_decoder=True)
    units = [1, DECODER["num_units"], 2]
    batch = SpeechLLMCollator(processor, unit_labels=True)([{"audio": CLIPS[1], "text": "the cat sat", "units": units}])
    with pytest.raises(ValueError, match=rf"unit_labels hold \[{DECODER['num_units']}\] outside \[0, "):
        model(**batch)


def test_unit_labels_need_a_speech_decoder():
    model, processor = tiny()
    batch = SpeechLLMCollator(processor, unit_labels=True)([{"audio": CLIPS[1], "text": "cat", "units": [1, 2]}])
    with pytest.raises(ValueError, match="no speech_decoder_config"):
        model(**batch)


# ---------------------------------------------------------------------- training stages
@pytest.mark.parametrize("encoder, lm, projector", COMBOS[:2])
def test_stage_trainable_parameters_are_exactly_the_stage_parts(encoder, lm, projector):
    model, _ = tiny(encoder, lm, projector, speech_decoder=True)
    projector_count = sum(p.numel() for p in model.projector.parameters())
    decoder_count = sum(p.numel() for p in model.speech_decoder.parameters())
    assert trainable_parameters(set_training_stage(model, 1)) == projector_count
    assert trainable_parameters(set_training_stage(model, 3)) == decoder_count
    peft_model = set_training_stage(model, 2, lora_r=4)
    lora = {n: p.numel() for n, p in peft_model.named_parameters() if "lora_" in n}
    assert lora and all(".language_model." in n for n in lora)
    assert trainable_parameters(peft_model) == projector_count + sum(lora.values())
    with_encoder = set_training_stage(tiny(encoder, lm, projector)[0], 2, lora_r=4, lora_on_encoder=True)
    assert any(".audio_tower." in n and "lora_" in n for n, _ in with_encoder.named_parameters())
    full = set_training_stage(tiny(encoder, lm, projector)[0], 2, lm_training="full")
    lm_count = sum(p.numel() for p in full.language_model.parameters())
    assert trainable_parameters(full) == projector_count + lm_count  # the whole LM, no adapters, encoder frozen
    assert not any(p.requires_grad for p in full.audio_tower.parameters())
    with pytest.raises(ValueError, match="lm_training must be one of"):
        set_training_stage(model, 2, lm_training="half")
    with pytest.raises(ValueError, match="no lora_config / lora_on_encoder"):
        set_training_stage(model, 2, lm_training="full", lora_on_encoder=True)


# ---------------------------------------------------------------------- real checkpoints, remote code
def test_from_encoder_and_lm_builds_from_saved_checkpoints(tmp_path):
    audio_config, feature_extractor = encoder_parts("whisper")
    torch.manual_seed(1)
    WhisperModel(audio_config).save_pretrained(tmp_path / "encoder")
    feature_extractor.save_pretrained(tmp_path / "encoder")
    LlamaForCausalLM(lm_config("llama", len(WORDS) + 1)).save_pretrained(tmp_path / "lm")  # before the new tokens
    tokenizer = make_tokenizer()
    model = SpeechLLMForConditionalGeneration.from_encoder_and_lm(
        str(tmp_path / "encoder"), str(tmp_path / "lm"), tokenizer=tokenizer, projector=PROJECTORS["stack_mlp"]
    )
    encoder = WhisperModel.from_pretrained(tmp_path / "encoder").get_encoder()
    torch.testing.assert_close(model.audio_tower.layers[0].fc1.weight, encoder.layers[0].fc1.weight)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) == len(WORDS) + 4
    assert model.config.audio_token_id == tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)
    assert tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|im_start|>"]) == model.generation_config.eos_token_id[-2:]
    processor = SpeechLLMProcessor.from_config(model.config, feature_extractor, tokenizer)
    batch = processor.apply_chat_template(chat(CLIPS[0]), add_generation_prompt=True)
    assert model.generate(**batch, max_new_tokens=2, min_new_tokens=2, do_sample=False).shape[1] > 2


LETTERS = "abcdefghijklmnopqrstuvwxyz"


def ctc_checkpoint(folder: Path) -> tuple:
    """A tiny HuBERT CTC checkpoint over characters (`[PAD]` blank, `[UNK]`, `|`, a-z) with its tokenizer and
    feature extractor, and an LM tokenizer that has the letters as tokens (`letters_tokenizer`)."""
    from transformers import HubertForCTC, Wav2Vec2CTCTokenizer

    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "|", *LETTERS])}
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    ctc_tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), unk_token="[UNK]", pad_token="[PAD]",
                                         word_delimiter_token="|", bos_token=None, eos_token=None)  # fmt: skip
    config, feature_extractor = encoder_parts("hubert")
    config.vocab_size, config.pad_token_id = len(vocab), 0
    torch.manual_seed(3)
    encoder = HubertForCTC(config).eval()
    for part in (encoder, ctc_tokenizer, feature_extractor):
        part.save_pretrained(folder)
    return encoder, feature_extractor, letters_tokenizer()


def letters_tokenizer() -> PreTrainedTokenizerFast:
    """An LM tokenizer with the test words and the single letters as tokens (+ the speech-LLM tokens)."""
    lm_vocab = {"<unk>": 0, **{w: i + 1 for i, w in enumerate(dict.fromkeys([*WORDS, *LETTERS]))}}
    tok = Tokenizer(models.WordLevel(vocab=lm_vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    add_speech_llm_tokens(tokenizer)
    return tokenizer


def test_ctc_posterior_projector_reads_audio_as_soft_text(tmp_path):
    """LegoSLM: built from a CTC checkpoint, each projected frame is the mean CTC posterior of its window times the
    LM's embeddings of the CTC symbols (a letter's row is that letter's LM embedding; the blank's is `<|audio|>`'s)."""
    ctc, feature_extractor, lm_tokenizer = ctc_checkpoint(tmp_path / "encoder")
    torch.manual_seed(4)
    LlamaForCausalLM(lm_config("llama", len(lm_tokenizer))).save_pretrained(tmp_path / "lm")
    model = SpeechLLMForConditionalGeneration.from_encoder_and_lm(
        str(tmp_path / "encoder"), str(tmp_path / "lm"), tokenizer=lm_tokenizer,
        projector={"projector_type": "ctc_posterior", "downsample": 2},
    ).eval()  # fmt: skip
    assert model.config.projector_config.ctc_vocab_size == 29
    assert model.config.projector_config.ctc_blank_id == 0  # and each class's LM tokens, for joint CTC decoding
    assert model.config.projector_config.ctc_symbol_token_ids[3] == [lm_tokenizer.convert_tokens_to_ids("a")]
    torch.testing.assert_close(model.projector.ctc_head.weight, ctc.lm_head.weight)
    embeddings = model.get_input_embeddings().weight
    table = model.projector.symbol_embeddings.weight  # [LM width, CTC classes]
    for symbol, letter in enumerate(LETTERS, start=3):
        torch.testing.assert_close(table[:, symbol], embeddings[lm_tokenizer.convert_tokens_to_ids(letter)])
    torch.testing.assert_close(table[:, 0], embeddings[model.config.audio_token_id])  # the blank: plain audio
    assert not table[:, 1].any()  # [UNK]: nothing
    # the whole path, against the CTC checkpoint's own posteriors
    processor = SpeechLLMProcessor.from_config(model.config, feature_extractor, lm_tokenizer)
    batch = processor.apply_chat_template(chat(CLIPS[0]), add_generation_prompt=True)
    with torch.no_grad():
        frames, counts = model.get_audio_features(batch["input_values"], batch["feature_attention_mask"])
        posteriors = ctc(batch["input_values"]).logits[0].softmax(-1)
    pairs = F.pad(posteriors, (0, 0, 0, posteriors.shape[0] % 2)).reshape(-1, 2, posteriors.shape[-1])
    counts_per_window = torch.tensor([2] * (posteriors.shape[0] // 2) + [1] * (posteriors.shape[0] % 2))
    expected = (pairs.sum(1) / counts_per_window[:, None]) @ table.T
    assert counts.tolist() == [expected.shape[0]] == [int((batch["input_ids"] == model.config.audio_token_id).sum())]
    torch.testing.assert_close(frames, expected, atol=1e-5, rtol=1e-4)
    assert trainable_parameters(set_training_stage(model, 1)) == 29 * 32 + 29 + 32 * 29  # head + table only
    model.save_pretrained(tmp_path / "m")
    loaded = SpeechLLMForConditionalGeneration.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits)
    assert loaded.generate(**batch, max_new_tokens=2, min_new_tokens=2, do_sample=False).shape[1] > 2
    # joint CTC / LM decoding (beam search): only tokens that spell a CTC symbol, or the end
    end = lm_tokenizer.convert_tokens_to_ids("<|im_end|>")
    scorer = loaded.ctc_prefix_scorer(batch["input_ids"].shape[1], 0.5, input_values=batch["input_values"],
                                      feature_attention_mask=batch["feature_attention_mask"], eos_token_id=end)  # fmt: skip
    out = loaded.generate(**batch, max_new_tokens=4, num_beams=2, do_sample=False, eos_token_id=end,
                          pad_token_id=end, logits_processor=LogitsProcessorList([scorer]))  # fmt: skip
    spelled = {lm_tokenizer.convert_tokens_to_ids(c) for c in LETTERS} | {end}
    assert out.shape[1] > batch["input_ids"].shape[1] and set(out[0, batch["input_ids"].shape[1] :].tolist()) <= spelled
    # embed_prompt: one encoder pass gives the merged prompt and the CTC posteriors; generating from its embeddings
    # (no encoder inside beam search) gives the same beams
    embeds, (log_probs, lengths) = loaded.embed_prompt(batch["input_ids"], input_values=batch["input_values"],
                                                       feature_attention_mask=batch["feature_attention_mask"], ctc=True)
    direct = loaded.ctc_log_posteriors(batch["input_values"], batch["feature_attention_mask"])
    torch.testing.assert_close(log_probs, direct[0])
    torch.testing.assert_close(lengths, direct[1])
    with torch.no_grad():
        torch.testing.assert_close(loaded(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits,
                                   loaded(**batch).logits)  # fmt: skip
    scorer = loaded.ctc_prefix_scorer(batch["input_ids"].shape[1], 0.5, eos_token_id=end,
                                      ctc_posteriors=(log_probs, lengths))  # fmt: skip
    again = loaded.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], inputs_embeds=embeds,
                            max_new_tokens=4, num_beams=2, do_sample=False, eos_token_id=end, pad_token_id=end,
                            logits_processor=LogitsProcessorList([scorer]))  # fmt: skip
    assert torch.equal(again, out)
    with pytest.raises(ValueError, match="needs a ctc_posterior projector"):
        tiny()[0].ctc_prefix_scorer(3, 0.5, input_features=torch.zeros(1, 80, 100))
    with pytest.raises(ValueError, match="CTC posteriors need a ctc_posterior projector"):
        tiny()[0].embed_prompt(torch.tensor([[1, 2]]), input_features=torch.zeros(1, 80, 100), ctc=True)


def test_ctc_posterior_projector_refuses_what_it_cannot_map(tmp_path):
    ctc_checkpoint(tmp_path / "encoder")
    audio_config, _ = encoder_parts("whisper")
    WhisperModel(audio_config).save_pretrained(tmp_path / "whisper")
    LlamaForCausalLM(lm_config("llama", len(WORDS) + 1)).save_pretrained(tmp_path / "lm")
    projector = {"projector_type": "ctc_posterior"}
    build = SpeechLLMForConditionalGeneration.from_encoder_and_lm
    with pytest.raises(ValueError, match="needs the LM's `tokenizer`"):
        build(str(tmp_path / "encoder"), str(tmp_path / "lm"), projector=projector, audio_token_id=1)
    with pytest.raises(ValueError, match="needs a CTC encoder"):
        build(WhisperModel.from_pretrained(tmp_path / "whisper"), str(tmp_path / "lm"), tokenizer=make_tokenizer(),
              projector=projector)  # fmt: skip


def test_saved_model_and_processor_load_as_remote_code_without_hf_slm(tmp_path):
    model, processor = tiny("hubert", "llama", "qformer", speech_decoder=True)
    model.save_pretrained(tmp_path / "m")
    processor.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForMultimodalLM"].endswith("SpeechLLMForConditionalGeneration")
    batch = processor.apply_chat_template(chat(CLIPS[1]), add_generation_prompt=True)
    torch.save({"clip": torch.from_numpy(CLIPS[1]), **batch}, tmp_path / "inputs.pt")
    with torch.no_grad():
        expected = model(**batch).logits
    # in this process, the Auto classes load it too, non-persistent buffers (RoPE) included
    loaded = AutoModelForMultimodalLM.from_pretrained(tmp_path / "m").eval()
    assert type(loaded) is SpeechLLMForConditionalGeneration
    for (name, buffer), (_, again) in zip(model.named_buffers(), loaded.named_buffers()):
        torch.testing.assert_close(again, buffer, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, expected)
    assert type(AutoProcessor.from_pretrained(tmp_path / "m")) is SpeechLLMProcessor
    code = BLOCK_HF_SLM + textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModelForMultimodalLM, AutoProcessor
        model = AutoModelForMultimodalLM.from_pretrained({str(tmp_path / 'm')!r}, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained({str(tmp_path / 'm')!r}, trust_remote_code=True)
        saved = torch.load({str(tmp_path / 'inputs.pt')!r})
        chat = [{{"role": "user", "content": [{{"type": "audio", "audio": saved.pop("clip").numpy()}},
                                             {{"type": "text", "text": "the cat"}}]}}]
        inputs = processor.apply_chat_template(chat, add_generation_prompt=True)
        assert all(torch.equal(inputs[k], saved[k]) for k in saved) and set(inputs) == set(saved)
        with torch.no_grad():
            torch.save(model(**inputs).logits, {str(tmp_path / 'out.pt')!r})
        print(type(model).__module__, type(processor).__name__, "hf_slm" in sys.modules)
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    module, name, imported = proc.stdout.split()[-3:]
    assert module.startswith("transformers_modules") and name == "SpeechLLMProcessor" and imported == "False"
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected)


# ---------------------------------------------------------------------- the staged training script
def espeak_rows(texts: list[str]) -> list[dict]:
    """espeak-ng speech at 16 kHz, with the default variant's units of the same speech (the spoken answer)."""
    import torchaudio

    import hf_slm
    from hf_slm.data.espeak import EspeakSynthesizer

    speech_tokenizer = AutoModel.from_pretrained(hf_slm.DEFAULT_PIPELINE, subfolder="speech_tokenizer").eval()
    unit_features = AutoProcessor.from_pretrained(hf_slm.DEFAULT_PIPELINE, subfolder="feature_extractor")
    synthesizer = EspeakSynthesizer("en-us", rate=200)
    rows = []
    for text in texts:
        result = synthesizer.synthesize(text)
        audio = torchaudio.functional.resample(torch.from_numpy(result.waveform), result.sampling_rate, 16000)
        with torch.no_grad():
            units = speech_tokenizer(**unit_features(result.waveform, sampling_rate=result.sampling_rate,
                                                     return_tensors="pt")).units[0]  # fmt: skip
        rows.append({"audio": audio.numpy()[:32000], "text": text, "units": units.unique_consecutive().tolist()})
    return rows


def test_three_stage_script_runs_and_resumes(tmp_path):
    """stage1.json / stage2.json / stage3.json, pointed at tiny saved parts and an espeak-ng dataset, run a few
    Trainer steps each; each stage starts from the previous one's output, and a rerun resumes from a checkpoint."""
    from datasets import Dataset

    import hf_slm

    sys.path.insert(0, str(REPO_ROOT / "examples" / "speech_llm"))
    import train  # examples/speech_llm/train.py

    audio_config, feature_extractor = encoder_parts("whisper")
    WhisperModel(audio_config).save_pretrained(tmp_path / "encoder")
    feature_extractor.save_pretrained(tmp_path / "encoder")
    make_tokenizer().save_pretrained(tmp_path / "lm")
    LlamaForCausalLM(lm_config("llama", 18)).save_pretrained(tmp_path / "lm")
    rows = espeak_rows(["the cat sat", "a dog ran far", "the mat"])
    Dataset.from_list(rows).save_to_disk(tmp_path / "data")
    num_units = AutoConfig.from_pretrained(hf_slm.DEFAULT_PIPELINE, subfolder="speech_tokenizer").num_units
    assert max(max(row["units"]) for row in rows) < num_units
    common = {"dataset_path": str(tmp_path / "data"), "per_device_train_batch_size": 2, "max_steps": 2,
              "save_steps": 2, "logging_steps": 1, "use_cpu": True, "dataloader_num_workers": 0}  # fmt: skip
    overrides = {
        1: {"encoder_name_or_path": str(tmp_path / "encoder"), "lm_name_or_path": str(tmp_path / "lm"),
            "projector_hidden_size": 32},
        2: {"model_name_or_path": str(tmp_path / "stage1")},
        3: {"model_name_or_path": str(tmp_path / "stage2"), "num_units": num_units, "decoder_hidden_size": 32},
    }  # fmt: skip
    results = {}
    for stage in (1, 2, 3):
        config = json.loads((REPO_ROOT / "examples" / "speech_llm" / f"stage{stage}.json").read_text())
        config.update(common, **overrides[stage], output_dir=str(tmp_path / f"stage{stage}"))
        (tmp_path / f"stage{stage}.json").write_text(json.dumps(config))
        results[stage] = train.main([str(tmp_path / f"stage{stage}.json")])
        assert results[stage]["steps"] == 2 and np.isfinite(results[stage]["final_loss"]), results[stage]
    assert results[3]["final_loss"] > results[2]["final_loss"] + 1  # the CTC loss of a fresh decoder on top
    model = SpeechLLMForConditionalGeneration.from_pretrained(tmp_path / "stage3")
    assert model.speech_decoder is not None and model.config.speech_decoder_config.num_units == num_units
    assert results[1]["trainable_parameters"] == sum(p.numel() for p in model.projector.parameters())
    assert results[3]["trainable_parameters"] == sum(p.numel() for p in model.speech_decoder.parameters())
    again = train.main([str(tmp_path / "stage1.json")])  # the same command again: ends on checkpoint-2, no step more
    assert again["steps"] == 2 and again["final_loss"] == results[1]["final_loss"]
    assert not (tmp_path / "stage1" / "checkpoint-3").exists()
    rerun = train.main([str(tmp_path / "stage1.json"), "--max_steps", "3"])
    assert rerun["resumed_from"] == "checkpoint-2" and rerun["steps"] == 3
    # stage 2 on the whole LM, two datasets concatenated, projected frames scaled to the token-embedding norm
    two = f"{tmp_path / 'data'},{tmp_path / 'data'}"
    full = train.main([str(tmp_path / "stage2.json"), "--lm_training", "full", "--match_embedding_norm", "true",
                       "--dataset_path", two, "--output_dir", str(tmp_path / "stage2_full")])  # fmt: skip
    stage1 = SpeechLLMForConditionalGeneration.from_pretrained(tmp_path / "stage1")
    counts = [sum(p.numel() for p in part.parameters()) for part in (stage1.projector, stage1.language_model)]
    assert full["trainable_parameters"] == sum(counts) and full["projector_scale"] > 0
    processor = SpeechLLMProcessor.from_pretrained(tmp_path / "stage1")
    batch = SpeechLLMCollator(processor)(espeak_rows(["the cat sat", "a dog ran far"]))
    train.match_embedding_norm(stage1, batch)
    frames, _ = stage1.get_audio_features(batch["input_features"], batch["feature_attention_mask"])
    target = stage1.get_input_embeddings().weight.norm(dim=-1).mean()
    torch.testing.assert_close(frames.norm(dim=-1).mean(), target, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="no saved dataset"):
        train.load_datasets(f"{tmp_path / 'data'},{tmp_path / 'nowhere'}")


def test_script_builds_a_ctc_posterior_model_from_a_ctc_checkpoint(tmp_path):
    """`train.py` stage 1 with `--projector_type ctc_posterior`: the encoder folder is a CTC checkpoint with its
    tokenizer; the projector (CTC head + symbol table) alone trains, and the saved model reloads as such."""
    from datasets import Dataset

    sys.path.insert(0, str(REPO_ROOT / "examples" / "speech_llm"))
    import train  # examples/speech_llm/train.py

    ctc, _, lm_tokenizer = ctc_checkpoint(tmp_path / "encoder")
    lm_tokenizer.save_pretrained(tmp_path / "lm")
    LlamaForCausalLM(lm_config("llama", len(lm_tokenizer))).save_pretrained(tmp_path / "lm")
    Dataset.from_list(espeak_rows(["the cat sat", "a dog ran far"])).save_to_disk(tmp_path / "data")
    config = json.loads((REPO_ROOT / "examples" / "speech_llm" / "stage1.json").read_text())
    config.update(encoder_name_or_path=str(tmp_path / "encoder"), lm_name_or_path=str(tmp_path / "lm"),
                  projector_type="ctc_posterior", projector_downsample=2, dataset_path=str(tmp_path / "data"),
                  per_device_train_batch_size=2, max_steps=2, save_steps=2, logging_steps=1, use_cpu=True,
                  dataloader_num_workers=0, output_dir=str(tmp_path / "stage1"))  # fmt: skip
    (tmp_path / "stage1.json").write_text(json.dumps(config))
    result = train.main([str(tmp_path / "stage1.json")])
    model = SpeechLLMForConditionalGeneration.from_pretrained(tmp_path / "stage1")
    assert type(model.projector).__name__ == "SpeechLLMCTCPosteriorProjector"
    assert result["steps"] == 2 and np.isfinite(result["final_loss"])
    assert result["trainable_parameters"] == sum(p.numel() for p in model.projector.parameters())
    assert not torch.equal(model.projector.ctc_head.weight, ctc.lm_head.weight)  # it trained
    torch.testing.assert_close(model.projector.ctc_head.weight, ctc.lm_head.weight, atol=0.05, rtol=0)  # from it


def test_spelled_frames_collator_spells_the_transcript_in_place_of_the_audio():
    """Text-only batches for a `ctc_posterior` LM: the ASR prompt with the transcript's letters (held, with
    `<|audio|>` blank frames) where the audio goes, the transcript as the only labelled part."""
    from hf_slm.training.speech_llm import SpelledFramesCollator

    tokenizer = letters_tokenizer()
    audio_id = tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)
    plain = SpelledFramesCollator(tokenizer, blank=0, repeat=0, deletion=0, substitution=0)
    batch = plain([{"text": "the cat"}, {"text": "a dog ran"}])
    for row, text in enumerate(["the cat", "a dog ran"]):
        ids, labels = batch["input_ids"][row], batch["labels"][row]
        answer = labels[labels != -100]
        assert tokenizer.decode(answer, skip_special_tokens=True).replace(" ", "") == text.replace(" ", "")
        letters = [tokenizer.convert_tokens_to_ids(c) for c in text.replace(" ", "")]
        prompt = ids[: int((labels == -100).long().argmin())].tolist() if row == 0 else None
        if prompt is not None:
            spelled = [t for t in prompt if t in letters]
            assert spelled[: len(letters)] == letters  # the letters, in order, before the prompt's own words
        assert audio_id not in ids.tolist()
    held = SpelledFramesCollator(tokenizer, blank=2.0, repeat=1.0, deletion=0, substitution=0, seed=1)
    ids = held([{"text": "cat"}])["input_ids"][0].tolist()
    assert ids.count(audio_id) > 0
    frames = ids[ids.index(audio_id) : len(ids) - ids[::-1].index(audio_id)]
    spoken = [t for t in frames if t != audio_id]
    assert spoken == [t for c in "cat" for t in [tokenizer.convert_tokens_to_ids(c)] * 2]  # each letter held twice
    with pytest.raises(ValueError, match="no <\\|audio\\|> token"):
        SpelledFramesCollator(PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(
            vocab={"<unk>": 0, "a": 1}, unk_token="<unk>")), unk_token="<unk>"))  # fmt: skip



def test_ctc_prefix_scores_add_up_to_the_ctc_likelihood():
    """Joint CTC / LM decoding: with `ctc_weight=1`, a transcript's step scores (each token, then the end) sum to its
    CTC log-likelihood (`F.ctc_loss`), per clip and with padded frames; unmapped tokens are excluded, and a fresh
    processor (no cached states) scores the same."""
    from hf_slm.models.speech_llm import CTCPrefixScoreLogitsProcessor, ctc_token_symbols

    torch.manual_seed(0)
    lengths = torch.tensor([12, 9])
    log_probs = torch.randn(2, 12, 5).log_softmax(-1)  # blank 0, symbols 1..4
    symbols = ctc_token_symbols([[9], [3], [4], [5], [6]], blank_id=0, vocab_size=8)  # token t -> symbol t - 2
    assert symbols.tolist() == [-1, -1, -1, 1, 2, 3, 4, -1]
    eos, prompt = 7, torch.tensor([[0, 1]] * 4)
    targets = [[1, 1, 3], [2, 4, 4], [4, 2, 1], [3, 3, 3]]  # rows 0-1: clip 0, rows 2-3: clip 1 (2 beams a clip)

    def scored(processor, steps):
        ids = torch.cat([prompt, torch.tensor([[s + 2 for s in t[:steps]] for t in targets], dtype=torch.long)], 1)
        return processor(ids, torch.zeros(4, 8))

    processor = CTCPrefixScoreLogitsProcessor(log_probs, lengths, symbols, 0, eos, prompt_length=2, ctc_weight=1.0)
    total = torch.zeros(4)
    for step in range(3):
        out = scored(processor, step)
        total += out[torch.arange(4), torch.tensor([t[step] + 2 for t in targets])]
        assert (out[:, :3] < -1e9).all()  # tokens that spell no CTC symbol
    end = scored(processor, 3)[:, eos]
    total += end
    for row, target in enumerate(targets):
        clip = row // 2
        expected = -F.ctc_loss(log_probs[clip, : lengths[clip], None], torch.tensor([target]), lengths[clip : clip + 1],
                               torch.tensor([3]), blank=0, reduction="sum")  # fmt: skip
        torch.testing.assert_close(total[row], expected, atol=1e-4, rtol=1e-4)
    fresh = CTCPrefixScoreLogitsProcessor(log_probs, lengths, symbols, 0, eos, prompt_length=2, ctc_weight=1.0)
    torch.testing.assert_close(scored(fresh, 3)[:, eos], end, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="ctc_weight must be in"):
        CTCPrefixScoreLogitsProcessor(log_probs, lengths, symbols, 0, eos, prompt_length=2, ctc_weight=0)


def test_lexicon_processor_spells_only_listed_words():
    """Within a word only prefixes of listed words; a word ends (boundary / end / punctuation) only where a listed
    word does; `word_penalty` comes off the boundary."""
    from hf_slm.models.speech_llm import LexiconLogitsProcessor

    token_of = {c: i + 4 for i, c in enumerate("acrt")}
    boundary, eos, period = 1, 2, 3
    processor = LexiconLogitsProcessor(["cat", "car", "cart", "a"], token_of, boundary, eos, prompt_length=1,
                                       punctuation_token_ids=[period], word_penalty=0.5)  # fmt: skip

    def allowed(text: str) -> set:
        ids = [[0] + [boundary if c == " " else period if c == "." else token_of[c] for c in text]]
        out = processor(torch.tensor(ids), torch.zeros(1, 8))
        return {t for t in range(8) if out[0, t] > -1e9}

    names = {v: k for k, v in token_of.items()}
    names.update({boundary: " ", eos: "<end>", period: "."})
    as_text = lambda tokens: {names[t] for t in tokens}  # noqa: E731
    assert as_text(allowed("")) == {"a", "c", "<end>"}
    assert as_text(allowed("c")) == {"a"}
    assert as_text(allowed("ca")) == {"r", "t"}
    assert as_text(allowed("car")) == {"t", " ", "<end>", "."}
    assert as_text(allowed("cat")) == {" ", "<end>", "."}
    assert as_text(allowed("cat ")) == {"a", "c", "<end>"}
    assert as_text(allowed("cat.")) == {" ", "<end>"}
    out = processor(torch.tensor([[0, token_of["a"]]]), torch.zeros(1, 8))
    assert out[0, boundary] == -0.5 and out[0, eos] == 0
    with pytest.raises(ValueError, match="no word spelled"):
        LexiconLogitsProcessor(["dog"], token_of, boundary, eos, prompt_length=1)
    # with counts, ending a word adds unigram_weight * log p(word) (add-half smoothed) to every word-ending token
    counted = LexiconLogitsProcessor({"cat": 7, "car": 0, "a": 2}, token_of, boundary, eos, prompt_length=1,
                                     unigram_weight=0.5)  # fmt: skip
    for word, count in (("cat", 7), ("car", 0)):
        out = counted(torch.tensor([[0] + [token_of[c] for c in word]]), torch.zeros(1, 8))
        expected = 0.5 * math.log((count + 0.5) / (9 + 1.5))
        assert out[0, boundary].item() == pytest.approx(expected) and out[0, eos].item() == pytest.approx(expected)


def test_processor_word_lm_saves_and_loads_and_travels_as_remote_code(tmp_path):
    """`set_word_lm` takes a fitted LM or an ARPA path; `save_pretrained` writes `word_lm.arpa.gz` (and removes a stale
    one); `from_pretrained`, with or without hf_slm (remote code), reads it back."""
    from hf_slm.training import fit_word_lm

    _, processor = tiny("hubert", "llama")
    lm = fit_word_lm(["the cat sat on the mat", "the dog sat"], order=2, min_count=1)
    processor.set_word_lm(lm)
    processor.save_pretrained(tmp_path / "p")
    loaded = SpeechLLMProcessor.from_pretrained(tmp_path / "p").word_lm
    assert loaded.order == 2 and loaded.log_prob("cat", ("the",)) == pytest.approx(lm.log_prob("cat", ("the",)), abs=1e-3)
    code = BLOCK_HF_SLM + textwrap.dedent(
        f"""
        import sys
        from transformers import AutoProcessor
        processor = AutoProcessor.from_pretrained({str(tmp_path / 'p')!r}, trust_remote_code=True)
        print(round(processor.word_lm.log_prob("cat", ("the",)), 3), "hf_slm" in sys.modules)
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    value, imported = proc.stdout.split()[-2:]
    assert float(value) == pytest.approx(lm.log_prob("cat", ("the",)), abs=2e-3) and imported == "False"
    # read on first use: an unread LM is saved as its bytes; a damaged file is named when the LM is first needed
    unread = SpeechLLMProcessor.from_pretrained(tmp_path / "p")
    unread.save_pretrained(tmp_path / "copy")
    assert (tmp_path / "copy" / "word_lm.arpa.gz").read_bytes() == (tmp_path / "p" / "word_lm.arpa.gz").read_bytes()
    assert "word_lm" not in (tmp_path / "copy" / "processor_config.json").read_text()
    (tmp_path / "copy" / "word_lm.arpa.gz").write_text("\\data\\\n\\1-grams:\n-1.0\n")
    damaged = SpeechLLMProcessor.from_pretrained(tmp_path / "copy")
    with pytest.raises(ValueError, match=r"word_lm\.arpa\.gz, line 3: not an ARPA n-gram line of order 1"):
        damaged.word_lm
    processor.set_word_lm(tmp_path / "p" / "word_lm.arpa.gz")  # a path reads the file
    assert processor.word_lm.ngrams.keys() == lm.ngrams.keys()
    processor.set_word_lm(None)
    processor.save_pretrained(tmp_path / "p")
    assert not (tmp_path / "p" / "word_lm.arpa.gz").exists()
    assert SpeechLLMProcessor.from_pretrained(tmp_path / "p").word_lm is None
    with pytest.raises(TypeError, match="an NgramLanguageModel, an ARPA file path or None"):
        processor.set_word_lm({"the": 1})


def test_processor_lexicon_saves_and_loads(tmp_path):
    _, processor = tiny("hubert", "llama")
    processor.set_lexicon(["Cat", "dog", "cat"])
    processor.save_pretrained(tmp_path / "p")
    assert SpeechLLMProcessor.from_pretrained(tmp_path / "p").lexicon == {"cat": 0, "dog": 0}
    processor.set_lexicon({"the": 7, "The": 1, "zyzzyva": 0})  # counts (a unigram prior) travel with the words
    processor.save_pretrained(tmp_path / "p")
    assert (tmp_path / "p" / "lexicon.txt").read_text() == "the 8\nzyzzyva 0\n"
    assert SpeechLLMProcessor.from_pretrained(tmp_path / "p").lexicon == {"the": 8, "zyzzyva": 0}
    (tmp_path / "p" / "lexicon.txt").write_text("the 8\nzyzzyva lots\n")
    with pytest.raises(ValueError, match="line 2: expected `word` or `word count`"):
        SpeechLLMProcessor.from_pretrained(tmp_path / "p")
    processor.set_lexicon(None)
    processor.save_pretrained(tmp_path / "p")  # a save without a lexicon leaves none behind
    assert SpeechLLMProcessor.from_pretrained(tmp_path / "p").lexicon is None
    with pytest.raises(ValueError, match="one word per entry"):
        processor.set_lexicon(["two words"])
    with pytest.raises(ValueError, match="count >= 0"):
        processor.set_lexicon({"cat": -1})
