"""Staged training of continuous-feature speech LLMs (SLAM-LLM / LLaMA-Omni recipes) through Trainer + PEFT.

| stage | trainable | frozen |
|---|---|---|
| 1 | projector | audio encoder, LM |
| 2 | projector + LoRA on the LM (and, optionally, on the encoder), or + the whole LM (`lm_training="full"`) | the rest |
| 3 | speech decoder | everything else |
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ..models.speech_llm import (
    AUDIO_TOKEN,
    DEFAULT_CHAT_TEMPLATE,
    SpeechLLMForConditionalGeneration,
    SpeechLLMProcessor,
    symbol_token_ids,
)
from ..models.speech_llm.configuration_speech_llm import CHAT_END
from ..pipelines.adapters import peft_wrapping
from ..pipelines.speech_llm_pipeline import ASR_PROMPT

STAGES = (1, 2, 3)
#: How stage 2 trains the LM: LoRA adapters (PEFT) or every parameter.
LM_TRAINING = ("lora", "full")
#: LoRA targets: the attention and MLP projections of Llama / Qwen2 / Mistral (q_proj ...) and GPT-2 (c_attn ...).
LM_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "c_attn", "c_proj")
#: What closes a trained answer (the chat template's end of turn); it carries loss, so the LM learns to stop.
ANSWER_END = CHAT_END + "\n"
#: LoRA targets in the encoder: Whisper / wav2vec 2.0 / HuBERT / WavLM attention projections.
ENCODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


def lora_target_regex(lm_targets=LM_LORA_TARGETS, encoder_targets=ENCODER_LORA_TARGETS, on_encoder=False) -> str:
    """A PEFT `target_modules` regex that picks LoRA targets inside `language_model` (and `audio_tower`)."""
    parts = [rf"language_model\..*\.({'|'.join(lm_targets)})"]
    if on_encoder:
        parts.append(rf"audio_tower\..*\.({'|'.join(encoder_targets)})")
    return "^(" + "|".join(parts) + ")$"


def set_training_stage(
    model: SpeechLLMForConditionalGeneration,
    stage: int,
    lora_r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.0,
    lora_on_encoder: bool = False,
    lora_config=None,
    lm_training: str = "lora",
):
    """Make exactly the parameters of `stage` trainable (table above); returns the model to train.

    Stage 2 returns a `peft.PeftModel`: LoRA adapters from `lora_config` (default: rank `lora_r` on every attention /
    MLP projection of the LM, and of the encoder with `lora_on_encoder`), with the projector trained in full and
    saved with the adapter (`modules_to_save`). `merge_and_unload()` gives back a plain model. With
    `lm_training="full"`, stage 2 trains the projector and every LM parameter instead (no PEFT; the model itself is
    returned): for LMs small enough that LoRA's rank limit, not memory, is the constraint.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if lm_training not in LM_TRAINING:
        raise ValueError(f"lm_training must be one of {LM_TRAINING}, got {lm_training!r}")
    if stage == 2 and lm_training == "full" and (lora_on_encoder or lora_config is not None):
        raise ValueError("lm_training='full' trains the LM without PEFT: it takes no lora_config / lora_on_encoder")
    model.requires_grad_(False)
    if stage == 1:
        model.projector.requires_grad_(True)
        return model
    if stage == 3:
        if model.speech_decoder is None:
            raise ValueError("stage 3 trains the speech decoder, but the model has none: call add_speech_decoder()")
        model.speech_decoder.requires_grad_(True)
        return model
    if lm_training == "full":
        model.projector.requires_grad_(True)
        model.language_model.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    if lora_config is None:
        lora_config = LoraConfig(
            r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
            target_modules=lora_target_regex(on_encoder=lora_on_encoder), modules_to_save=["projector"],
        )  # fmt: skip
    with warnings.catch_warnings(), peft_wrapping():  # GPT-2's Conv1D: PEFT sets fan_in_fan_out per module itself
        warnings.filterwarnings("ignore", message="fan_in_fan_out is set to", category=UserWarning)
        return get_peft_model(model, lora_config)


def trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class SpeechLLMCollator:
    """Rows -> a training batch; loss only on the answer (the last assistant turn and its end marker).

    A row holds `audio` (a waveform, `{"array", "sampling_rate"}`, or the AudioDecoder `datasets.Audio` decodes to)
    and either `messages` (a chat whose last message is the assistant's answer, a string or a list of text items as
    `hf_slm.instruct.build_speech_asr` and its siblings write; the user turn's `{"type": "audio"}` item takes
    the row's audio) or `text` (the answer, after a user turn of `[audio, prompt]`; `prompt` from the row or the
    collator). With `unit_labels=True`, each row's `units` (unit ids of the spoken answer) become `unit_labels` for
    the speech decoder.
    """

    def __init__(self, processor: SpeechLLMProcessor, prompt: str = ASR_PROMPT, unit_labels: bool = False):
        self.processor = processor
        self.prompt = prompt
        self.unit_labels = unit_labels
        self.answer_end = ANSWER_END

    def conversation(self, row: dict) -> list[dict]:
        audio = row["audio"]
        if hasattr(audio, "get_all_samples"):  # datasets' Audio decodes to a torchcodec AudioDecoder
            samples = audio.get_all_samples()
            audio = {"array": samples.data.mean(0).numpy(), "sampling_rate": samples.sample_rate}
        if isinstance(audio, dict):
            if audio.get("sampling_rate") != self.processor.feature_extractor.sampling_rate:
                raise ValueError(
                    f"row audio at {audio.get('sampling_rate')} Hz; the feature extractor takes "
                    f"{self.processor.feature_extractor.sampling_rate} Hz (cast the dataset's Audio column)"
                )
            audio = audio["array"]
        audio = np.asarray(audio, dtype=np.float32)
        if "messages" in row and row["messages"]:
            messages = [dict(m) for m in row["messages"]]
            for message in messages:
                if not isinstance(message["content"], str):
                    message["content"] = [dict(i, audio=audio) if i.get("type") == "audio" else i
                                          for i in message["content"]]  # fmt: skip
            answer = messages[-1]
            if answer["role"] == "assistant" and not isinstance(answer["content"], str):  # a list of text items
                answer["content"] = "".join(i["text"] for i in answer["content"] if i.get("type") == "text")
            return messages
        prompt = row.get("prompt") or self.prompt
        return [
            {"role": "user", "content": [{"type": "audio", "audio": audio}, {"type": "text", "text": prompt}]},
            {"role": "assistant", "content": row["text"]},
        ]

    def __call__(self, rows: list[dict]) -> dict:
        conversations = [self.conversation(row) for row in rows]
        for conversation in conversations:
            if conversation[-1]["role"] != "assistant" or not isinstance(conversation[-1]["content"], str):
                raise ValueError("the last message of each row must be the assistant's answer, as a string")
        rendered = [self.processor.render_chat(c[:-1], add_generation_prompt=True) for c in conversations]
        clips = [clip for _, row_clips in rendered for clip in row_clips]
        prompts = self.processor(text=[text for text, _ in rendered], audio=clips or None)
        tokenizer = self.processor.tokenizer
        ids, labels = [], []
        for row, conversation in enumerate(conversations):
            prompt_ids = prompts["input_ids"][row][prompts["attention_mask"][row] == 1]
            answer = tokenizer(conversation[-1]["content"] + self.answer_end, add_special_tokens=False)["input_ids"]
            answer = torch.tensor(answer, dtype=torch.long)
            ids.append(torch.cat([prompt_ids, answer]))
            labels.append(torch.cat([torch.full_like(prompt_ids, -100), answer]))
        batch = {key: value for key, value in prompts.items() if key not in ("input_ids", "attention_mask")}
        batch.update(_pad_text_batch(ids, labels, tokenizer.pad_token_id))
        if self.unit_labels:
            missing = [i for i, row in enumerate(rows) if row.get("units") is None]
            if missing:
                raise ValueError(f"unit_labels=True but rows {missing} of the batch have no `units`")
            units = [torch.as_tensor(row["units"], dtype=torch.long) for row in rows]
            batch["unit_labels"] = pad_sequence(units, batch_first=True, padding_value=-100)
        return batch


class SpelledFramesCollator:
    """Text rows -> LM batches that teach a text LM, before it hears audio, to read what a `ctc_posterior` projector
    hands it: the speech LLM's ASR prompt (`chat_template`, `prompt`) with, in place of the audio, the transcript
    spelled as CTC-like frames, and the transcript as the answer (loss on the answer only).

    A spelled frame is the LM token of one symbol (`symbol_token_ids`: a letter, or the word boundary for a space),
    held for 1 frame (2 with probability `repeat`), then `blank` frames of `<|audio|>` (the projector's blank row),
    exponentially distributed with mean `blank` x a per-row rate factor in `rates`; a symbol is dropped with
    probability `deletion` and replaced by a random letter with probability `substitution` (a CTC head's errors).
    `blank=0` and no errors is the plain copy task, which a small LM learns first (a curriculum: the CPU recipe's
    character LM copied nothing in 1,000 steps of the full task, and learned the plain one in ~2,000 steps).

    Rows: `{"text": transcript}`. Rows are drawn from a `numpy` generator seeded with `seed`.
    """

    LETTERS = "abcdefghijklmnopqrstuvwxyz'"

    def __init__(self, tokenizer, prompt: str = ASR_PROMPT, chat_template: str = DEFAULT_CHAT_TEMPLATE,
                 blank: float = 1.9, rates: tuple[float, float] = (0.7, 1.4), repeat: float = 0.2,
                 deletion: float = 0.03, substitution: float = 0.08, seed: int = 0):  # fmt: skip
        if blank < 0 or not all(0 <= p <= 1 for p in (repeat, deletion, substitution)):
            raise ValueError(f"blank must be >= 0 and repeat / deletion / substitution probabilities, got "
                             f"{blank}, {repeat}, {deletion}, {substitution}")  # fmt: skip
        self.tokenizer = tokenizer
        self.blank, self.rates, self.repeat = blank, rates, repeat
        self.deletion, self.substitution = deletion, substitution
        self.rng = np.random.default_rng(seed)
        conversation = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": prompt}]}]
        text = tokenizer.apply_chat_template(conversation, chat_template=chat_template, tokenize=False,
                                             add_generation_prompt=True)  # fmt: skip
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        self.audio_id = tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)
        if self.audio_id in (None, tokenizer.unk_token_id) or ids.count(self.audio_id) != 1:
            raise ValueError(f"the tokenizer has no {AUDIO_TOKEN} token: call add_speech_llm_tokens(tokenizer)")
        cut = ids.index(self.audio_id)
        self.before, self.after = ids[:cut], ids[cut + 1 :]
        self.symbols: dict[str, list[int]] = {}

    def _symbol(self, char: str) -> list[int]:
        if char not in self.symbols:
            ids = symbol_token_ids(char, self.tokenizer)
            if not ids and char != " ":  # a vocabulary without a word-boundary token spells words run together
                raise ValueError(f"the LM tokenizer cannot spell {char!r}")
            self.symbols[char] = ids
        return self.symbols[char]

    def frames(self, text: str) -> list[int]:
        """The spelled frames of one transcript."""
        rng, blanks = self.rng, self.blank * self.rng.uniform(*self.rates)
        edge = [self.audio_id] * int(rng.integers(2, 10)) if self.blank else []
        out = list(edge)
        for char in text:
            draw = rng.random()
            if draw < self.deletion:
                continue
            if draw < self.deletion + self.substitution:
                char = self.LETTERS[int(rng.integers(len(self.LETTERS)))]
            out += self._symbol(char) * (2 if rng.random() < self.repeat else 1)
            if blanks:
                out += [self.audio_id] * int(round(rng.exponential(blanks)))
        return out + edge

    def __call__(self, rows: list[dict]) -> dict:
        tokenizer = self.tokenizer
        ids, labels = [], []
        for row in rows:
            prompt = self.before + self.frames(row["text"]) + self.after
            answer = tokenizer(row["text"] + ANSWER_END, add_special_tokens=False)["input_ids"]
            ids.append(torch.tensor(prompt + answer))
            labels.append(torch.tensor([-100] * len(prompt) + answer))
        return _pad_text_batch(ids, labels, tokenizer.pad_token_id)


def _pad_text_batch(ids: list[torch.Tensor], labels: list[torch.Tensor], pad_token_id: int) -> dict:
    """Right-padded `input_ids` / `attention_mask` / `labels` (-100 on padding) of per-row token tensors."""
    return {
        "input_ids": pad_sequence(ids, batch_first=True, padding_value=pad_token_id),
        "attention_mask": pad_sequence([torch.ones_like(i) for i in ids], batch_first=True),
        "labels": pad_sequence(labels, batch_first=True, padding_value=-100),
    }


__all__ = [
    "ENCODER_LORA_TARGETS",
    "LM_LORA_TARGETS",
    "LM_TRAINING",
    "STAGES",
    "SpeechLLMCollator",
    "SpelledFramesCollator",
    "lora_target_regex",
    "set_training_stage",
    "trainable_parameters",
]
