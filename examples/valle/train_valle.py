#!/usr/bin/env python
"""Build, train and save a VALL-E-style zero-shot TTS variant: phoneme tokenizer + codec + AR + NAR models.

    python examples/valle/train_valle.py examples/valle/config_tiny.json
    python examples/valle/train_valle.py examples/valle/config_tiny.json --codec runs/codec_tiny --group_size 1
    hf-slm tts --pipeline runs/valle_tiny/variant --text "open the door" --prompt-audio prompt.wav --output out.wav

Steps: speech with its text (espeak-ng speech of `text_source` in `voices` x `rates` x `pitches`, or a saved dataset
with a text column) -> espeak-ng phonemes (`hf_slm.data.phonemize`) -> a word-level phoneme tokenizer -> rows of
phoneme ids + codec codes `[Q, T]` -> `VallEARModel` (codebook 1, `group_size` codes a step) and `VallENARModel`
(codebooks 2..Q), each trained with `transformers.Trainer` and `VallECollator` -> `VallEPipeline` saved in
`output_dir/variant`, with `output_dir/results.json`: each model's held-out loss and the AR model's
`text_conditioning` (its loss with another utterance's phonemes minus with its own: ~0 while it ignores the text).
Each model resumes from its last complete checkpoint (`save_strategy`) and is kept in `output_dir/{ar,nar}/model`
once trained, so a rerun after a kill redoes only what was unfinished; `ar_max_steps` / `nar_max_steps` set each
model's steps. `init_variant` fine-tunes a saved variant (its codec, tokenizer and models) on new speech.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import Trainer, TrainingArguments, set_seed

from hf_slm import (
    SpeechFeatureExtractor,
    VallEARConfig,
    VallEARModel,
    VallENARConfig,
    VallENARModel,
    VallEPipeline,
)
from hf_slm.evaluation.voice import text_conditioning
from hf_slm.training import last_complete_checkpoint, train_resuming
from hf_slm.training.arguments import load_codec, SpeechDataArguments, load_speech_splits, parse_json_and_flags
from hf_slm.training.valle import VallECollator, build_phoneme_tokenizer, encode_tts_dataset, phonemize_texts
from hf_slm.utils import atomic_open, atomic_save_directory

logger = logging.getLogger("train_valle")


@dataclass
class VallEArguments:
    codec: str = field(default="random", metadata={"help": "'random', a saved codec folder, or a codec checkpoint."})
    init_variant: str | None = field(default=None, metadata={
        "help": "A saved VallEPipeline variant to fine-tune: its codec, phoneme tokenizer and both models are the "
                "starting point (codec and model-shape arguments are then not used)."})  # fmt: skip
    num_codebooks: int | None = field(default=None, metadata={"help": "Levels of a wrapped transformers codec."})
    group_size: int = field(default=2, metadata={"help": "Codebook-1 codes per AR step (VALL-E 2 grouping)."})
    nar_group_size: int = field(default=1, metadata={"help": "Frames per NAR position (VALL-E 2 grouping)."})
    language: str = field(default="en-us", metadata={"help": "espeak-ng language of the phonemizer."})
    text_column: str = field(default="text", metadata={"help": "Column with each utterance's text."})
    hidden_size: int = field(default=64, metadata={"help": "Width of both Llama backbones."})
    num_hidden_layers: int = field(default=2, metadata={"help": "Layers of both backbones."})
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads of both backbones."})
    max_position_embeddings: int = field(default=1024, metadata={"help": "Longest sequence (phonemes + frames)."})
    ar_max_steps: int | None = field(default=None, metadata={"help": "Steps of the AR model (default: max_steps)."})
    nar_max_steps: int | None = field(default=None, metadata={"help": "Steps of the NAR model (default: max_steps)."})


def build_models(args: VallEArguments, codec, num_phonemes: int) -> tuple[VallEARModel, VallENARModel]:
    backbone = dict(model_type="llama", hidden_size=args.hidden_size, intermediate_size=4 * args.hidden_size,
                    num_hidden_layers=args.num_hidden_layers, num_attention_heads=args.num_attention_heads,
                    num_key_value_heads=args.num_attention_heads, max_position_embeddings=args.max_position_embeddings)
    shared = dict(text_config=backbone, num_phonemes=num_phonemes, codebook_size=codec.codebook_size,
                  num_codebooks=codec.num_codebooks, frame_rate=codec.frame_rate)  # fmt: skip
    ar = VallEARModel(VallEARConfig(group_size=args.group_size, **shared))
    return ar, VallENARModel(VallENARConfig(group_size=args.nar_group_size, **shared))


def train(model, name: str, train_rows, eval_rows, training_args: TrainingArguments, max_steps: int | None = None):
    """Train `model` in `output_dir/name` (resuming from its last complete checkpoint) and keep it in
    `output_dir/name/model`; a rerun after a kill loads a finished model instead of training it again."""
    output_dir = Path(training_args.output_dir) / name
    finished = output_dir / "model"
    if (finished / "config.json").is_file():
        logger.info("%s: already trained, loading %s", name, finished)
        return type(model).from_pretrained(finished)
    changes = {"max_steps": max_steps} if max_steps is not None else {}
    args = dataclasses.replace(training_args, output_dir=str(output_dir), remove_unused_columns=False, **changes)
    trainer = Trainer(model=model, args=args, train_dataset=train_rows, eval_dataset=eval_rows,
                      data_collator=VallECollator(model))  # fmt: skip
    train_resuming(trainer, last_complete_checkpoint(output_dir, remove_incomplete=True))
    atomic_save_directory(finished, model.save_pretrained)
    return model


def held_out_loss(model, eval_rows, training_args: TrainingArguments) -> float:
    args = dataclasses.replace(training_args, remove_unused_columns=False)
    trainer = Trainer(model=model, args=args, eval_dataset=eval_rows, data_collator=VallECollator(model))
    return trainer.evaluate()["eval_loss"]


def main(argv: list[str]) -> Path:
    data_args, valle_args, training_args = parse_json_and_flags((SpeechDataArguments, VallEArguments, TrainingArguments), argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    set_seed(training_args.seed)
    start = VallEPipeline.from_pretrained(valle_args.init_variant) if valle_args.init_variant else None
    codec = start.speech_tokenizer if start else load_codec(valle_args.codec, valle_args.num_codebooks)
    feature_extractor = start.feature_extractor if start else SpeechFeatureExtractor(
        sampling_rate=codec.sampling_rate, do_normalize=False)
    train_speech, eval_speech = load_speech_splits(data_args, training_args.seed, sampling_rate=codec.sampling_rate)
    texts = list(train_speech[valle_args.text_column]) + list(eval_speech[valle_args.text_column])
    phonemes = phonemize_texts(texts, valle_args.language)
    if start:  # its phoneme ids are what the models learned; phonemes it has never seen become <unk>
        tokenizer = start.tokenizer
        unknown = sorted({p for seq in phonemes for p in seq} - set(tokenizer.vocab))
        if unknown:
            logger.warning("%d phonemes are not in %s's tokenizer and read as <unk>: %s", len(unknown),
                           valle_args.init_variant, unknown[:10])  # fmt: skip
    else:
        tokenizer = build_phoneme_tokenizer(phonemes)
    rows = [encode_tts_dataset(split, feature_extractor, codec, tokenizer, valle_args.language, valle_args.text_column,
                               data_args.audio_column) for split in (train_speech, eval_speech)]  # fmt: skip
    logger.info("%d / %d utterances, %d phonemes, %d codebooks of %d at %.1f Hz", len(rows[0]), len(rows[1]),
                len(tokenizer), codec.num_codebooks, codec.codebook_size, codec.frame_rate)  # fmt: skip
    if start:
        ar_model, nar_model = start.ar_model.train(), start.nar_model.train()
    else:
        ar_model, nar_model = build_models(valle_args, codec, len(tokenizer))
    ar_model = train(ar_model, "ar", *rows, training_args, valle_args.ar_max_steps)
    nar_model = train(nar_model, "nar", *rows, training_args, valle_args.nar_max_steps)
    results = {name: {"held_out_loss": held_out_loss(model, rows[1], training_args)}
               for name, model in (("ar", ar_model), ("nar", nar_model))}  # fmt: skip
    if len(rows[1]) >= 2:
        held_out = list(rows[1]["phoneme_ids"]), list(rows[1]["codes"])
        results["ar"]["text_conditioning"] = text_conditioning(ar_model, *held_out)
    else:
        logger.warning("one held-out utterance: no text_conditioning (it compares utterances)")
    logger.info("results: %s", results)
    with atomic_open(Path(training_args.output_dir) / "results.json") as handle:
        json.dump(results, handle, indent=2)
    pipe = VallEPipeline(feature_extractor=feature_extractor, speech_tokenizer=codec, tokenizer=tokenizer,
                         ar_model=ar_model.eval(), nar_model=nar_model.eval())  # fmt: skip
    path = pipe.save_pretrained(Path(training_args.output_dir) / "variant")
    logger.info("saved the VALL-E variant to %s (try: hf-slm tts --pipeline %s ...)", path, path)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
