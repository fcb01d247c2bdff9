#!/usr/bin/env python
"""Build, train and save an AudioLM-style variant: semantic LM -> coarse acoustic LM -> fine acoustic LM -> codec.

    python examples/audiolm/train_audiolm.py examples/audiolm/config_tiny.json
    python examples/audiolm/train_audiolm.py examples/audiolm/config_tiny.json --codec runs/codec_tiny \
        --num_coarse_codebooks 2

Steps: speech (espeak-ng, or a saved dataset) -> semantic units (`--unit_encoder`: the embedded default's MFCC k-means
units, or a saved `UnitEncoderModel`) and codec codes `[Q, T]` (`AudioLMPipeline.encode`) -> three models, each
trained with `transformers.Trainer`:

1. the semantic LM (`SpeechLMForCausalLM` over the units; `--semantic_lm default` reuses the embedded default's
   instead of training one),
2. the coarse acoustic LM (`AcousticLMForCausalLM`, `condition="units"`): codebooks `0..Q1-1` after all the units,
3. the fine acoustic LM (`condition="codes"`): codebooks `Q1..Q-1` after the coarse ones, on windows of
   `--fine_window_frames` frames (AudioLM: 3 s),

-> `AudioLMPipeline` saved in `output_dir/variant`; `AudioLMPipeline.from_pretrained(...).continue_speech(audio)` then
continues speech in the prompt's voice.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoModel, LlamaConfig, Trainer, TrainingArguments, set_seed

import hf_slm
from hf_slm import (
    AcousticLMConfig,
    AcousticLMForCausalLM,
    AudioLMPipeline,
    SpeechFeatureExtractor,
    SpeechLMConfig,
    SpeechLMForCausalLM,
)
from hf_slm.training.acoustic_lm import AcousticLMCollator
from hf_slm.training.arguments import load_codec, SpeechDataArguments, load_speech_splits, parse_json_and_flags
from hf_slm.training.collators import CausalLMCollator

logger = logging.getLogger("train_audiolm")


@dataclass
class AudioLMArguments:
    unit_encoder: str = field(default="default", metadata={"help": "'default' (embedded) or a UnitEncoderModel dir."})
    semantic_lm: str = field(default="scratch", metadata={"help": "'scratch' (train one), 'default' or a folder."})
    codec: str = field(default="random", metadata={"help": "'random', a saved codec folder, or a codec checkpoint."})
    num_codebooks: int | None = field(default=None, metadata={"help": "Levels of a wrapped transformers codec."})
    num_coarse_codebooks: int = field(default=2, metadata={"help": "Q1: codebooks of the coarse stage."})
    fine_window_frames: int = field(default=150, metadata={"help": "Frames the fine LM reads at once (3 s: 150)."})
    hidden_size: int = field(default=64, metadata={"help": "Width of each Llama decoder."})
    num_hidden_layers: int = field(default=2, metadata={"help": "Layers of each decoder."})
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads of each decoder."})
    max_position_embeddings: int = field(default=2048, metadata={"help": "Semantic / coarse LM positions."})


def decoder_config(args: AudioLMArguments, positions: int | None = None) -> LlamaConfig:
    return LlamaConfig(hidden_size=args.hidden_size, intermediate_size=4 * args.hidden_size,
                       num_hidden_layers=args.num_hidden_layers, num_attention_heads=args.num_attention_heads,
                       max_position_embeddings=positions or args.max_position_embeddings)  # fmt: skip


def load_component(name: str, embedded_subfolder: str):
    if name == "default":
        return AutoModel.from_pretrained(hf_slm.DEFAULT_PIPELINE, subfolder=embedded_subfolder).eval()
    return AutoModel.from_pretrained(name).eval()



def build_pipeline(args: AudioLMArguments) -> AudioLMPipeline:
    unit_encoder, codec = load_component(args.unit_encoder, "speech_tokenizer"), load_codec(args.codec, args.num_codebooks)
    num_units, q, q1 = unit_encoder.config.num_units, codec.num_codebooks, args.num_coarse_codebooks
    if not 1 <= q1 < q:
        raise ValueError(f"--num_coarse_codebooks must be in [1, {q - 1}] for a codec of {q} codebooks, got {q1}")
    if args.semantic_lm == "scratch":
        semantic_lm = SpeechLMForCausalLM(SpeechLMConfig(text_config=decoder_config(args), num_units=num_units))
    else:
        semantic_lm = load_component(args.semantic_lm, "language_model")
    common = {"codebook_size": codec.codebook_size, "frame_rate": codec.frame_rate}
    coarse_lm = AcousticLMForCausalLM(AcousticLMConfig(
        text_config=decoder_config(args), condition="units", num_units=num_units, num_codebooks=q1,
        unit_frame_rate=unit_encoder.config.frame_rate, **common))  # fmt: skip
    fine_positions = 2 + args.fine_window_frames * q
    fine_lm = AcousticLMForCausalLM(AcousticLMConfig(
        text_config=decoder_config(args, fine_positions), condition="codes", first_codebook=q1, num_codebooks=q - q1,
        **common))  # fmt: skip
    feature_extractor = SpeechFeatureExtractor(sampling_rate=codec.sampling_rate, do_normalize=False)
    return AudioLMPipeline(feature_extractor, unit_encoder, semantic_lm, coarse_lm, fine_lm, codec)


def train(name, model, train_rows, eval_rows, collator, training_args: TrainingArguments) -> dict:
    args = TrainingArguments(**{**training_args.to_dict(), "output_dir": str(Path(training_args.output_dir) / name)})
    trainer = Trainer(model=model.train(), args=args, train_dataset=train_rows, eval_dataset=eval_rows,
                      data_collator=collator)  # fmt: skip
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    logger.info("%s: held-out loss %.3f -> %.3f", name, before, after)
    model.eval()
    return {"eval_loss_before": before, "eval_loss": after}


def main(argv: list[str]) -> Path:
    parsed = parse_json_and_flags((SpeechDataArguments, AudioLMArguments, TrainingArguments), argv)
    data_args, args, training_args = parsed
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    set_seed(training_args.seed)
    pipe = build_pipeline(args)
    train_set, eval_set = load_speech_splits(data_args, training_args.seed, sampling_rate=pipe.sampling_rate)

    def encode(batch):
        units, codes = pipe.encode(batch[data_args.audio_column])
        input_ids = [pipe.semantic_lm.units_to_input_ids([u], add_eos=True)[0][0].tolist() for u in units]
        return {"units": [u.tolist() for u in units], "codes": [c.tolist() for c in codes], "input_ids": input_ids}

    columns = train_set.column_names
    train_set = train_set.map(encode, batched=True, batch_size=8, remove_columns=columns, desc="units and codes")
    eval_set = eval_set.map(encode, batched=True, batch_size=8, remove_columns=columns, desc="units and codes")
    logger.info("%d / %d utterances; %d units; %d codebooks of %d at %.1f Hz (%d coarse)", len(train_set),
                len(eval_set), pipe.unit_encoder.config.num_units, pipe.codec.num_codebooks,
                pipe.codec.codebook_size, pipe.codec.frame_rate, pipe.num_coarse_codebooks)  # fmt: skip
    if args.semantic_lm == "scratch":
        semantic = ["input_ids"]
        train("semantic_lm", pipe.semantic_lm, train_set.select_columns(semantic), eval_set.select_columns(semantic),
              CausalLMCollator(pad_token_id=pipe.semantic_lm.config.pad_token_id), training_args)  # fmt: skip
    train("coarse_lm", pipe.coarse_lm, train_set, eval_set, AcousticLMCollator(pipe.coarse_lm), training_args)
    fine_collator = AcousticLMCollator(pipe.fine_lm, max_frames=args.fine_window_frames, seed=training_args.seed)
    train("fine_lm", pipe.fine_lm, train_set, eval_set, fine_collator, training_args)
    path = pipe.save_pretrained(Path(training_args.output_dir) / "variant")
    logger.info("saved the AudioLM variant to %s", path)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
