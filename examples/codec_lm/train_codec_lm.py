#!/usr/bin/env python
"""Build, train and save a codec-LM pipeline variant: a codec speech tokenizer + `MultiStreamSpeechLMForCausalLM`.

    python examples/codec_lm/train_codec_lm.py examples/codec_lm/config_tiny.json
    python examples/codec_lm/train_codec_lm.py examples/codec_lm/config_tiny.json --codec runs/codec_tiny
    python examples/codec_lm/train_codec_lm.py examples/codec_lm/config_tiny.json --delays 0,0,0,0 --max_steps 20

Steps: speech (espeak-ng, or a saved dataset) -> codes `[Q, T]` with the codec (`SpeechLMPipeline.encode`) -> a
multi-stream LM over the Q codebooks (delay pattern from `--delays`, optional depth transformer) trained with
`transformers.Trainer` on `prepare_inputs` batches -> `SpeechLMPipeline(feature_extractor, codec, lm)` saved in
`output_dir/variant` (the codec decodes its own codes: no vocoder component). `hf-slm demo --pipeline
output_dir/variant` then continues espeak-ng speech with it.

`--codec` is `random` (a random tiny `RVQCodecModel`, for smoke runs), a saved codec folder (`examples/codec`'s
output, or any `CodecModel` / `RVQCodecModel` folder), or a transformers codec checkpoint (`facebook/encodec_24khz`,
`kyutai/mimi`, ...; wrapped with `CodecModel.from_codec_pretrained`, `--num_codebooks` levels kept).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import LlamaConfig, Trainer, TrainingArguments, set_seed

from hf_slm import (
    MultiStreamSpeechLMConfig,
    MultiStreamSpeechLMForCausalLM,
    SpeechFeatureExtractor,
    SpeechLMPipeline,
)
from hf_slm.training.arguments import load_codec, SpeechDataArguments, csv_list, load_speech_splits, parse_json_and_flags

logger = logging.getLogger("train_codec_lm")


@dataclass
class CodecLMArguments:
    codec: str = field(default="random", metadata={"help": "'random', a saved codec folder, or a codec checkpoint."})
    num_codebooks: int | None = field(default=None, metadata={"help": "Levels of a wrapped transformers codec."})
    delays: str | None = field(default=None, metadata={"help": "Per-codebook delays, e.g. 0,1,2 (default MusicGen)."})
    pattern: str = field(default="delay", metadata={"help": "'delay' (per-codebook delays) or 'flatten'."})
    use_depth_transformer: bool = field(default=False, metadata={"help": "Codebooks 1..Q-1 by a depth transformer."})
    hidden_size: int = field(default=64, metadata={"help": "Width of the Llama backbone."})
    num_hidden_layers: int = field(default=2, metadata={"help": "Layers of the Llama backbone."})
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads of the backbone."})
    max_position_embeddings: int = field(default=1024, metadata={"help": "Longest delayed sequence (frames)."})



def build_lm(args: CodecLMArguments, codec) -> MultiStreamSpeechLMForCausalLM:
    backbone = LlamaConfig(
        hidden_size=args.hidden_size, intermediate_size=4 * args.hidden_size, num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads, max_position_embeddings=args.max_position_embeddings,
    )  # fmt: skip
    config = MultiStreamSpeechLMConfig(
        text_config=backbone,
        stream_vocab_sizes=[codec.codebook_size] * codec.num_codebooks,
        delays=csv_list(args.delays, int) if args.delays else None,
        use_depth_transformer=args.use_depth_transformer,
        pattern=args.pattern,
        frame_rate=codec.frame_rate,
    )
    return MultiStreamSpeechLMForCausalLM(config)


class CodesCollator:
    """Rows of `codes` ([Q][T] lists) -> the LM's `prepare_inputs` batch (`<s>` frame, delays, -100 labels)."""

    def __init__(self, lm: MultiStreamSpeechLMForCausalLM):
        self.lm = lm

    def __call__(self, rows):
        frames_last = [torch.tensor(r["codes"]).T for r in rows]  # pad_sequence pads the first axis
        codes = torch.nn.utils.rnn.pad_sequence(frames_last, batch_first=True).permute(0, 2, 1)
        lengths = torch.tensor([c.shape[0] for c in frames_last])
        mask = (torch.arange(codes.shape[-1])[None] < lengths[:, None]).long()
        return {k: v.cpu() for k, v in self.lm.prepare_inputs(codes, mask).items()}  # the Trainer moves them


def main(argv: list[str]) -> Path:
    data_args, lm_args, training_args = parse_json_and_flags((SpeechDataArguments, CodecLMArguments, TrainingArguments), argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    set_seed(training_args.seed)
    codec = load_codec(lm_args.codec, lm_args.num_codebooks)
    feature_extractor = SpeechFeatureExtractor(sampling_rate=codec.sampling_rate, do_normalize=False)
    lm = build_lm(lm_args, codec)
    pipe = SpeechLMPipeline(feature_extractor=feature_extractor, speech_tokenizer=codec, language_model=lm)

    train, evaluation = load_speech_splits(data_args, training_args.seed, sampling_rate=codec.sampling_rate)

    def encode(batch):
        return {"codes": [c.tolist() for c in pipe.encode(batch[data_args.audio_column])]}

    columns = train.column_names
    train = train.map(encode, batched=True, batch_size=8, remove_columns=columns, desc="codec codes")
    evaluation = evaluation.map(encode, batched=True, batch_size=8, remove_columns=columns, desc="codec codes")
    logger.info("%d / %d utterances, %d codebooks of %d at %.1f Hz", len(train), len(evaluation),
                codec.num_codebooks, codec.codebook_size, codec.frame_rate)  # fmt: skip

    trainer = Trainer(model=lm, args=training_args, train_dataset=train, eval_dataset=evaluation,
                      data_collator=CodesCollator(lm))  # fmt: skip
    trainer.train()
    metrics = trainer.evaluate()
    logger.info("held-out loss %.3f", metrics["eval_loss"])
    lm.eval()
    path = pipe.save_pretrained(Path(training_args.output_dir) / "variant")
    logger.info("saved the codec-LM variant to %s (try: hf-slm demo --pipeline %s)", path, path)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
