#!/usr/bin/env python
"""Package a trained codec-LM variant as the embedded `codec-default`: language model weights stored in float16 (they
load as float32), its training summary, its `hf-slm evaluate voice|codec` results and the rendered model card.

    python examples/codec_lm/ship_codec_default.py runs/codec_default --output hf_slm/default_codec_pipeline \
        --eval runs/codec_default/eval/voice_default.json runs/codec_default/eval/codec_default.json

`RUN` is the output folder of `CODEC=mel UTTERANCES=4000 CODEC_LM_STEPS=4000 bash examples/audiolm/train_small.sh RUN`
(its `codec_lm/variant` is packaged; `data/` gives the summary's hours). Float16 storage halves the 5.2 MB of
float32 weights, so the variant fits the package's budget (docs/default_pipeline.md); the config keeps
`dtype: float32`, so `from_pretrained` upcasts and the model computes as trained (rounding the weights to float16 is
the only change: measured by evaluating the packaged folder, which is what `--eval` should be run on).
Without `--eval` only the folder is written (evaluate it, then rerun with `--eval`); the folder is replaced atomically.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import datasets

from hf_slm.pipelines import SpeechLMPipeline
from hf_slm.pipelines.model_card import save_embedded_variant


def training_summary(run: Path, pipe) -> dict:
    train = datasets.load_from_disk(str(run / "data" / "train_corpus"))["train"]
    split = json.loads((run / "data" / "voice_split.json").read_text())
    lm = pipe.language_model.config
    codec = pipe.speech_tokenizer
    frames = sum(math.ceil(seconds * codec.frame_rate) for seconds in train["duration"])
    return {
        "recipe": "CODEC=mel UTTERANCES=4000 CODEC_LM_STEPS=4000 bash examples/audiolm/train_small.sh RUN",
        "arguments": {"text_source": "builtin", "voices": f"{split['train_voices']} English espeak-ng voice variants",
                      "rates": "150, 175, 200 (pitches 35, 50, 65)"},  # fmt: skip
        "train_utterances": len(train),
        "train_hours": round(sum(train["duration"]) / 3600, 2),
        "train_unit_tokens": frames * codec.num_codebooks,  # codes: frames x codebooks
        "eval_utterances": split.get("validation_utterances"),
        "held_out_voices": f"{split['unseen_voices']} voice variants never heard in training, at pitches 42 / 80",
        "codec": json.loads((run / "codec" / "results.json").read_text()),
        "language_model": {"layers": lm.text_config.num_hidden_layers, "hidden_size": lm.text_config.hidden_size,
                           "delays": lm.delays, "parameters": pipe.language_model.num_parameters()},  # fmt: skip
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="train_small.sh's output folder")
    parser.add_argument("--output", type=Path, default=Path("hf_slm/default_codec_pipeline"))
    parser.add_argument("--eval", nargs="*", default=[], help="hf-slm evaluate voice / codec JSON of the packaged folder")
    args = parser.parse_args(argv)
    pipe = SpeechLMPipeline.from_pretrained(args.run / "codec_lm" / "variant")
    summary = training_summary(args.run, pipe)

    save_embedded_variant(pipe, args.output, "codec-default", float16=("language_model",), training_summary=summary,
                          eval_paths=args.eval)  # fmt: skip
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
