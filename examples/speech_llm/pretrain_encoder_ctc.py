#!/usr/bin/env python
"""Pre-train a small speech encoder of ours with CTC on espeak-ng speech of open-vocabulary English.

    python examples/speech_llm/pretrain_encoder_ctc.py examples/speech_llm/config_encoder_tiny.json
    python examples/speech_llm/pretrain_encoder_ctc.py examples/speech_llm/config_encoder_cpu.json --max_steps 3000

Steps: the train side of `hf_slm.data.load_text_split` (WordNet examples + fortunes; no held-out sentence or word)
-> espeak-ng speech in many voices, rates and pitches (`synthesize_dataset`, cached; `voices: english` = all 816
English voice variants), optionally degraded as it is batched (`augmentation`: a `SpeechAugmentation` JSON, speed /
pitch / VTLP / reverberation / noise / band limit / codec; held-out speech stays clean) -> a character vocabulary built
from the training text (`Wav2Vec2CTCTokenizer` + the architecture's feature extractor = its processor) -> a randomly
initialised `Wav2Vec2ForCTC` / `HubertForCTC` (waveform convolutions) or `Wav2Vec2BertForCTC` (log-mel features,
conformer layers) trained with `Trainer` -> the model and its processor in
`output_dir`, and `results.json` with the greedy CER / WER on held-out sentences (the eval side of the split,
spoken at `eval_voice` / `eval_rate`). Rerunning the same command resumes from the last complete checkpoint.

The folder loads with `AutoModelForCTC` (and `transformers.pipeline("automatic-speech-recognition")`, so
`hf-slm evaluate asr --pipeline FOLDER` scores it), and its encoder alone with `AutoModel`: the speech LLM takes it
as its `audio_config` / audio encoder.

Arguments come from three dataclasses (`CtcDataArguments`, `CtcModelArguments`, `transformers.TrainingArguments`);
a `.json` first argument sets defaults for all of them and any `--flag` after it overrides one.
The CER in docs/speech_llm.md comes from ``config_encoder_cpu.json`` as it stands, on one torch thread of a
shared 2-core CPU (``OMP_NUM_THREADS=1``), stopped by `max_minutes`.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import soundfile
import torch
from transformers import (
    HubertConfig,
    HubertForCTC,
    SeamlessM4TFeatureExtractor,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    Wav2Vec2BertConfig,
    Wav2Vec2BertForCTC,
    Wav2Vec2BertProcessor,
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
    set_seed,
)

from hf_slm.data import corpus_voices, load_text_split, synthesize_dataset
from hf_slm.evaluation.metrics.error_rate.error_rate import error_rate
from hf_slm.training import (
    SpeechAugmentation,
    ReadableCheckpoints,
    WallClockLimit,
    finished_results,
    last_complete_checkpoint,
    resumable_interrupt,
    train_resuming,
    widen_to_umask,
)
from hf_slm.training.arguments import csv_list, parse_json_and_flags

logger = logging.getLogger("pretrain_encoder_ctc")
SAMPLING_RATE = 16000
ARCHITECTURES = {
    "wav2vec2": (Wav2Vec2Config, Wav2Vec2ForCTC),  # waveform convolutions + transformer
    "hubert": (HubertConfig, HubertForCTC),
    "wav2vec2-bert": (Wav2Vec2BertConfig, Wav2Vec2BertForCTC),  # 80-bin log-mel (stacked to 20 ms) + conformer
}
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "|")  # [PAD] is the CTC blank (id 0); "|" separates words


@dataclass
class CtcDataArguments:
    text_sources: str = field(default="wordnet,fortunes", metadata={"help": "Comma-separated `load_text_corpus` "
                              "sources, split together by `split_texts` (train side for training, eval side held out)."})
    num_train_sentences: int = field(default=2000, metadata={"help": "Training sentences (a random subset)."})
    num_eval_sentences: int = field(default=50, metadata={"help": "Held-out sentences scored at the end."})
    max_words: int = field(default=12, metadata={"help": "Keep sentences of at most this many words (short audio)."})
    voices: str = field(default="en-us,en-us+f3,en-us+m3,en-gb,en-gb+f2,en-us+m7",
                        metadata={"help": "Comma-separated voices of the training speech (espeak-ng, or "
                                  "`festival:<name>`) and keywords: `english` (every espeak-ng English voice with every "
                                  "variant), `festival` (Festival's English voices, from human recordings); "
                                  "`hf_slm.data.corpus_voices`."})
    rates: str = field(default="140,160,175,195,215", metadata={"help": "Comma-separated rates (words/min)."})
    pitches: str = field(default="35,50,65", metadata={"help": "Comma-separated base pitches (0-99)."})
    augmentation: str | None = field(default=None, metadata={"help": "A `SpeechAugmentation` JSON file "
                                     "(examples/default_pipeline/augmentation.json): every training utterance goes "
                                     "through it as it is batched, drawn from its row and the epoch (a resumed run "
                                     "hears the same audio). Held-out speech stays clean."})
    eval_voice: str = field(default="en-us", metadata={"help": "espeak-ng voice of the held-out speech."})
    eval_rate: int = field(default=175, metadata={"help": "Speaking rate of the held-out speech."})
    synthesis_num_proc: int = field(default=1, metadata={"help": "espeak-ng worker processes."})
    synthesis_cache_dir: str | None = field(default=None, metadata={"help": "Speech cache (default: hf_slm's)."})


@dataclass
class CtcModelArguments:
    architecture: str = field(default="wav2vec2", metadata={"help": f"One of {sorted(ARCHITECTURES)}: waveform "
                              "convolutions (wav2vec2, hubert) or log-mel features and conformer layers (wav2vec2-bert)."})
    hidden_size: int = field(default=144, metadata={"help": "Transformer width."})
    num_hidden_layers: int = field(default=4, metadata={"help": "Transformer layers."})
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads."})
    intermediate_size: int = field(default=384, metadata={"help": "Feed-forward width."})
    conv_dim: str = field(default="64,64,64,64,64,64,64", metadata={"help": "Channels of the waveform convolutions."})
    conv_depthwise_kernel_size: int = field(default=15, metadata={"help": "wav2vec2-bert: conformer convolution."})
    conv_kernel: str = field(default="10,3,3,3,3,2,2", metadata={"help": "Their kernels."})
    conv_stride: str = field(default="5,2,2,2,2,2,2", metadata={"help": "Their strides (product: samples per frame)."})
    feat_extract_norm: str = field(default="group", metadata={"help": "'group' (wav2vec 2.0 base: GroupNorm after "
                                   "the first convolution; ~3x faster on CPU) or 'layer' (LayerNorm after each)."})
    num_conv_pos_embeddings: int = field(default=32, metadata={"help": "Kernel of the convolutional positions."})
    num_conv_pos_embedding_groups: int = field(default=8, metadata={"help": "Groups of that convolution."})
    mask_time_prob: float = field(default=0.05, metadata={"help": "SpecAugment time masking (0 disables it)."})
    dropout: float = field(default=0.05, metadata={"help": "Hidden, attention and activation dropout."})
    max_minutes: float | None = field(default=None, metadata={"help": "Stop (and save) after this many minutes."})
    init_from: str | None = field(default=None, metadata={"help": "Warm start: a CTC folder of this script (its "
                                  "weights and character vocabulary; the architecture flags are then ignored)."})
    resume: bool = field(default=True, metadata={"help": "Resume from the last complete checkpoint in output_dir."})


def parse_arguments(argv: list[str]):
    return parse_json_and_flags((CtcDataArguments, CtcModelArguments, TrainingArguments), argv)


# ---------------------------------------------------------------------------------------------------- text
def ctc_text(sentence: str) -> str:
    """The CTC target of a sentence: lower-case letters, apostrophes and single spaces."""
    return " ".join(re.sub(r"[^a-z' ]+", " ", sentence.lower()).split())


def _usable(sentence: str, max_words: int) -> bool:
    # digits are spoken as number words by espeak-ng, so their characters are no transcript of the audio
    return not any(ch.isdigit() for ch in sentence) and 0 < len(sentence.split()) <= max_words and ctc_text(sentence)


def select_texts(data_args: CtcDataArguments, seed: int) -> tuple[list[str], list[str]]:
    """`(train, eval)` sentences: short, digit-free, from the two sides of the held-out split."""
    sources = csv_list(data_args.text_sources)
    sides = []
    for side, n in (("train", data_args.num_train_sentences), ("eval", data_args.num_eval_sentences)):
        usable = [s for s in load_text_split(side, sources=sources) if _usable(s, data_args.max_words)]
        if len(usable) < n:
            raise ValueError(f"only {len(usable)} usable {side} sentences in {sources} (asked for {n})")
        rng = np.random.default_rng(seed)
        sides.append([usable[i] for i in sorted(rng.choice(len(usable), size=n, replace=False))])
    return sides[0], sides[1]


def build_processor(train_texts: list[str], folder: Path, architecture: str = "wav2vec2"):
    """A character-vocabulary processor (the characters of the training text) with the architecture's features:
    `Wav2Vec2Processor` (waveform) or `Wav2Vec2BertProcessor` (log-mel)."""
    characters = sorted({ch for text in train_texts for ch in ctc_text(text)} - {" "})
    vocab = {token: index for index, token in enumerate([*SPECIAL_TOKENS, *characters])}
    return vocabulary_processor(vocab, folder, architecture)


def vocabulary_processor(vocab: dict[str, int], folder: Path, architecture: str = "wav2vec2"):
    """The processor of a CTC vocabulary (token -> id, with `SPECIAL_TOKENS`; written to `folder`/vocab.json) and the
    architecture's features: what `build_processor` makes from a text, and `make_default.py export-encoder` from a
    speech LLM's CTC symbol table."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, indent=1))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), unk_token="[UNK]", pad_token="[PAD]",
                                     word_delimiter_token="|", bos_token=None, eos_token=None)  # fmt: skip
    if architecture == "wav2vec2-bert":
        return Wav2Vec2BertProcessor(feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=tokenizer)
    feature_extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLING_RATE, padding_value=0.0,
                                                 do_normalize=True, return_attention_mask=True)  # fmt: skip
    return Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def speech(texts: list[str], voices, rates, pitches, data_args: CtcDataArguments, seed: int) -> datasets.Dataset:
    """espeak-ng speech of `texts` (audio kept as WAV bytes) with a `labels_text` column."""
    ds = synthesize_dataset(texts, voices=voices, rates=rates, pitches=pitches, sampling_rate=SAMPLING_RATE,
                            assignment="random", seed=seed, num_proc=data_args.synthesis_num_proc,
                            cache_dir=data_args.synthesis_cache_dir, show_progress=False)  # fmt: skip
    ds = ds.select_columns(["audio", "text", "duration"]).cast_column("audio", datasets.Audio(decode=False))
    return ds.add_column("labels_text", [ctc_text(t) for t in ds["text"]])


def _waveform(value) -> np.ndarray:
    wave, _ = soundfile.read(io.BytesIO(value["bytes"]), dtype="float32")
    return wave


@dataclass
class CtcCollator:
    """Pads waveforms with the feature extractor and character labels with -100 (ignored by the CTC loss). With
    `augmentation`, rows that carry a `row` index (the training set's) are degraded first, keyed by
    `(epoch, row)`; `AugmentationEpoch` keeps `epoch` in step with the Trainer."""

    processor: Wav2Vec2Processor
    augmentation: SpeechAugmentation | None = None
    epoch: int = 0

    def __call__(self, features: list[dict]) -> dict:
        waves = [_waveform(f["audio"]) for f in features]
        if self.augmentation is not None:
            waves = [wave if "row" not in f else self.augmentation(wave, SAMPLING_RATE, key=(self.epoch, int(f["row"])))
                     for wave, f in zip(waves, features)]  # fmt: skip
        batch = self.processor.feature_extractor(waves, sampling_rate=SAMPLING_RATE, padding=True,
                                                 return_attention_mask=True, return_tensors="pt")  # fmt: skip
        labels = self.processor.tokenizer([f["labels_text"] for f in features], padding=True, return_tensors="pt")
        batch["labels"] = labels.input_ids.masked_fill(labels.attention_mask.eq(0), -100)
        return batch


class AugmentationEpoch(TrainerCallback):
    """Tells the collator which epoch it batches, so each epoch degrades an utterance differently."""

    def __init__(self, collator: CtcCollator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.epoch = int(state.epoch or 0)


def training_voices(voices: str) -> list[str]:
    return corpus_voices(voices)


# ---------------------------------------------------------------------------------------------------- model
def build_model(model_args: CtcModelArguments, processor):
    if model_args.architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {model_args.architecture!r}")
    config_class, model_class = ARCHITECTURES[model_args.architecture]
    common = {
        "vocab_size": len(processor.tokenizer),
        "pad_token_id": processor.tokenizer.pad_token_id,
        "hidden_size": model_args.hidden_size,
        "num_hidden_layers": model_args.num_hidden_layers,
        "num_attention_heads": model_args.num_attention_heads,
        "intermediate_size": model_args.intermediate_size,
        "mask_time_prob": model_args.mask_time_prob,
        "mask_time_length": 5,
        "hidden_dropout": model_args.dropout,
        "attention_dropout": model_args.dropout,
        "activation_dropout": model_args.dropout,
        "feat_proj_dropout": model_args.dropout,
        "final_dropout": model_args.dropout,
        "layerdrop": 0.0,
        "ctc_loss_reduction": "mean",
        "ctc_zero_infinity": True,
    }
    if model_args.architecture == "wav2vec2-bert":
        config = config_class(**common, output_hidden_size=model_args.hidden_size,
                              conv_depthwise_kernel_size=model_args.conv_depthwise_kernel_size)  # fmt: skip
        return model_class(config)
    conv_dim = csv_list(model_args.conv_dim, int)
    config = config_class(
        **common,
        conv_dim=conv_dim,
        conv_kernel=csv_list(model_args.conv_kernel, int),
        conv_stride=csv_list(model_args.conv_stride, int),
        num_feat_extract_layers=len(conv_dim),
        feat_extract_norm=model_args.feat_extract_norm,
        do_stable_layer_norm=model_args.feat_extract_norm == "layer",
        num_conv_pos_embeddings=model_args.num_conv_pos_embeddings,
        num_conv_pos_embedding_groups=model_args.num_conv_pos_embedding_groups,
    )
    return model_class(config)


def warm_start(folder: str, train_texts: list[str]):
    """`(processor, model)` of an earlier run of this script, to continue on other data. Its vocabulary must hold
    every character of the new training text (else those would train as [UNK])."""
    from transformers import AutoModelForCTC, AutoProcessor

    if not (Path(folder) / "config.json").is_file():
        raise ValueError(f"init_from: no CTC model in {folder!r} (no config.json)")
    processor = AutoProcessor.from_pretrained(folder)
    missing = sorted({ch for text in train_texts for ch in ctc_text(text)} - {" "} - set(processor.tokenizer.get_vocab()))
    if missing:
        raise ValueError(f"init_from: {folder!r} has no vocabulary entry for characters {missing} of the training text")
    return processor, AutoModelForCTC.from_pretrained(folder)


# ---------------------------------------------------------------------------------------------------- evaluation
def metrics_function(processor: Wav2Vec2Processor):
    """`compute_metrics` for Trainer: greedy CTC decoding, corpus CER and WER."""

    def compute(prediction) -> dict:
        pad = processor.tokenizer.pad_token_id  # Trainer pads both across batches with -100
        predicted = processor.batch_decode(np.where(prediction.predictions == -100, pad, prediction.predictions))
        references = processor.batch_decode(np.where(prediction.label_ids == -100, pad, prediction.label_ids),
                                            group_tokens=False)  # fmt: skip
        return {"cer": error_rate(predicted, references, unit="char")["cer"],
                "wer": error_rate(predicted, references, unit="word")["wer"]}  # fmt: skip

    return compute


def greedy_ids(logits, labels):
    return logits.argmax(-1)


@torch.no_grad()
def transcribe(model, processor: Wav2Vec2Processor, dataset: datasets.Dataset, batch_size: int = 8) -> list[str]:
    model.eval()
    collate = CtcCollator(processor)
    hypotheses = []
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        batch.pop("labels")
        logits = model(**{k: v.to(model.device) for k, v in batch.items()}).logits
        hypotheses += processor.batch_decode(logits.argmax(-1).cpu())
    return hypotheses


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    data_args, model_args, training_args = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    set_seed(training_args.seed)
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    train_texts, eval_texts = select_texts(data_args, training_args.seed)
    train = speech(train_texts, training_voices(data_args.voices), csv_list(data_args.rates, int),
                   csv_list(data_args.pitches, int), data_args, training_args.seed)  # fmt: skip
    held_out = speech(eval_texts, [data_args.eval_voice], [data_args.eval_rate], [50], data_args, training_args.seed)
    if model_args.init_from:
        processor, model = warm_start(model_args.init_from, train_texts)
    else:
        with tempfile.TemporaryDirectory() as folder:
            processor = build_processor(train_texts, Path(folder), model_args.architecture)
        model = build_model(model_args, processor)
    logger.info("%s: %.2fM parameters, %d train / %d held-out utterances (%.1f / %.1f min of speech)",
                type(model).__name__, model.num_parameters() / 1e6, len(train), len(held_out),
                sum(train["duration"]) / 60, sum(held_out["duration"]) / 60)  # fmt: skip

    augmentation = SpeechAugmentation.from_config(data_args.augmentation) if data_args.augmentation else None
    collator = CtcCollator(processor, augmentation)
    callbacks = [ReadableCheckpoints()]
    if augmentation is not None:  # the rows it degrades, keyed by (epoch, row)
        train = train.add_column("row", list(range(len(train))))
        callbacks.append(AugmentationEpoch(collator))
    if model_args.max_minutes:
        callbacks.append(WallClockLimit(model_args.max_minutes))
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=held_out,
        data_collator=collator,
        processing_class=processor,
        compute_metrics=metrics_function(processor),
        preprocess_logits_for_metrics=greedy_ids,
        callbacks=callbacks,
    )
    checkpoint = last_complete_checkpoint(output_dir) if model_args.resume else None
    finished = finished_results(checkpoint, training_args, output_dir / "results.json")
    if finished is not None:
        return finished
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    with resumable_interrupt(output_dir):
        train_resuming(trainer, checkpoint)  # a checkpoint at max_steps: loaded, not stepped past
    trainer.save_model(str(output_dir))  # the model, and the processor (processing_class) beside it
    widen_to_umask(output_dir)  # safetensors writes the weights private

    hypotheses = transcribe(model, processor, held_out)
    results = {
        "cer": error_rate(hypotheses, held_out["labels_text"], unit="char")["cer"],
        "wer": error_rate(hypotheses, held_out["labels_text"], unit="word")["wer"],
        "n": len(held_out),
        "eval_voice": data_args.eval_voice,
        "eval_rate": data_args.eval_rate,
        "steps": trainer.state.global_step,
        "parameters": model.num_parameters(),
        "train_utterances": len(train),
        "resumed_from": None if checkpoint is None else Path(checkpoint).name,
        "init_from": model_args.init_from,
        "eval_history": [{k: v for k, v in entry.items() if k in ("step", "eval_cer", "eval_wer", "eval_loss")}
                         for entry in trainer.state.log_history if "eval_cer" in entry],  # fmt: skip
        "items": [{"text": t, "hypothesis": h} for t, h in zip(held_out["text"], hypotheses)],
    }
    (output_dir / "results.json").write_text(json.dumps(results, indent=2))
    logger.info("held-out CER %.3f, WER %.3f after %d steps", results["cer"], results["wer"], results["steps"])
    return results


if __name__ == "__main__":
    main()
