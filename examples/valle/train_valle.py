#!/usr/bin/env python
"""Build, train and save a VALL-E-style zero-shot TTS variant: phoneme tokenizer + codec + AR + NAR models.

    python examples/valle/train_valle.py examples/valle/config_tiny.json
    python examples/valle/train_valle.py examples/valle/config_tiny.json --codec runs/codec_tiny --group_size 1
    hf-slm tts --pipeline runs/valle_tiny/variant --text "open the door" --prompt-audio prompt.wav --output out.wav

Steps: speech with its text (espeak-ng speech of `text_source` in `voices` x `rates` x `pitches`, or a saved dataset
with a text column) -> espeak-ng phonemes (`hf_slm.data.phonemize`) -> a word-level phoneme tokenizer -> rows of
phoneme ids + codec codes `[Q, T]` -> `VallEARModel` (codebook 1, `group_size` codes a step) and `VallENARModel`
(codebooks 2..Q), each trained with `transformers.Trainer` and `VallECollator` -> `VallEPipeline` saved in
`output_dir/variant`.
"""

from __future__ import annotations

import dataclasses
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
from hf_slm.training.arguments import load_codec, SpeechDataArguments, load_speech_splits, parse_json_and_flags
from hf_slm.training.valle import VallECollator, build_phoneme_tokenizer, encode_tts_dataset, phonemize_texts

logger = logging.getLogger("train_valle")


@dataclass
class VallEArguments:
    codec: str = field(default="random", metadata={"help": "'random', a saved codec folder, or a codec checkpoint."})
    num_codebooks: int | None = field(default=None, metadata={"help": "Levels of a wrapped transformers codec."})
    group_size: int = field(default=2, metadata={"help": "Codebook-1 codes per AR step (VALL-E 2 grouping)."})
    nar_group_size: int = field(default=1, metadata={"help": "Frames per NAR position (VALL-E 2 grouping)."})
    language: str = field(default="en-us", metadata={"help": "espeak-ng language of the phonemizer."})
    text_column: str = field(default="text", metadata={"help": "Column with each utterance's text."})
    hidden_size: int = field(default=64, metadata={"help": "Width of both Llama backbones."})
    num_hidden_layers: int = field(default=2, metadata={"help": "Layers of both backbones."})
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads of both backbones."})
    max_position_embeddings: int = field(default=1024, metadata={"help": "Longest sequence (phonemes + frames)."})



def build_models(args: VallEArguments, codec, num_phonemes: int) -> tuple[VallEARModel, VallENARModel]:
    backbone = dict(model_type="llama", hidden_size=args.hidden_size, intermediate_size=4 * args.hidden_size,
                    num_hidden_layers=args.num_hidden_layers, num_attention_heads=args.num_attention_heads,
                    num_key_value_heads=args.num_attention_heads, max_position_embeddings=args.max_position_embeddings)
    shared = dict(text_config=backbone, num_phonemes=num_phonemes, codebook_size=codec.codebook_size,
                  num_codebooks=codec.num_codebooks, frame_rate=codec.frame_rate)  # fmt: skip
    ar = VallEARModel(VallEARConfig(group_size=args.group_size, **shared))
    return ar, VallENARModel(VallENARConfig(group_size=args.nar_group_size, **shared))


def train(model, name: str, train_rows, eval_rows, training_args: TrainingArguments) -> float:
    args = dataclasses.replace(training_args, output_dir=str(Path(training_args.output_dir) / name),
                               remove_unused_columns=False)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=train_rows, eval_dataset=eval_rows,
                      data_collator=VallECollator(model))  # fmt: skip
    trainer.train()
    loss = trainer.evaluate()["eval_loss"]
    logger.info("%s: held-out loss %.3f", name, loss)
    return loss


def main(argv: list[str]) -> Path:
    data_args, valle_args, training_args = parse_json_and_flags((SpeechDataArguments, VallEArguments, TrainingArguments), argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    set_seed(training_args.seed)
    codec = load_codec(valle_args.codec, valle_args.num_codebooks)
    feature_extractor = SpeechFeatureExtractor(sampling_rate=codec.sampling_rate, do_normalize=False)
    train_speech, eval_speech = load_speech_splits(data_args, training_args.seed, sampling_rate=codec.sampling_rate)
    texts = list(train_speech[valle_args.text_column]) + list(eval_speech[valle_args.text_column])
    tokenizer = build_phoneme_tokenizer(phonemize_texts(texts, valle_args.language))
    rows = [encode_tts_dataset(split, feature_extractor, codec, tokenizer, valle_args.language, valle_args.text_column,
                               data_args.audio_column) for split in (train_speech, eval_speech)]  # fmt: skip
    logger.info("%d / %d utterances, %d phonemes, %d codebooks of %d at %.1f Hz", len(rows[0]), len(rows[1]),
                len(tokenizer), codec.num_codebooks, codec.codebook_size, codec.frame_rate)  # fmt: skip
    ar_model, nar_model = build_models(valle_args, codec, len(tokenizer))
    train(ar_model, "ar", *rows, training_args)
    train(nar_model, "nar", *rows, training_args)
    pipe = VallEPipeline(feature_extractor=feature_extractor, speech_tokenizer=codec, tokenizer=tokenizer,
                         ar_model=ar_model.eval(), nar_model=nar_model.eval())  # fmt: skip
    path = pipe.save_pretrained(Path(training_args.output_dir) / "variant")
    logger.info("saved the VALL-E variant to %s (try: hf-slm tts --pipeline %s ...)", path, path)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
