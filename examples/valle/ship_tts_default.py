#!/usr/bin/env python
"""Package a trained VALL-E variant as the embedded `tts-default`: AR and NAR weights stored in float16 (they load as
float32), the codec and feature extractor as references to `codec-default`'s (the same weights: not stored twice), a
training summary, the `hf-slm evaluate tts` results and the rendered model card.

    python examples/valle/ship_tts_default.py runs/tts/valle_4s/variant --output hf_slm/default_tts_pipeline \
        --stage runs/tts/valle runs/tts/data --stage runs/tts/valle_4s runs/tts/data4 \
        --eval runs/tts/eval/tts_default.json

Each `--stage RUN DATA` is one `train_valle.py` run in training order (its `{ar,nar}/checkpoint-*` and
`results.json`) and the `make_voice_corpus.py` folder it trained on; the summary records their steps, batch sizes,
hours and held-out figures. Float16 storage halves the 9.7 MB of float32 weights (docs/default_pipeline.md states the
budget); the configs keep `dtype: float32`, so the models compute as trained and the rounding is the only change
(measured by evaluating the packaged folder, which is what `--eval` should be run on). Without `--eval` only the folder
is written (evaluate it, then rerun with `--eval`); the folder is replaced atomically.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import datasets

from hf_slm.pipelines import VallEPipeline
from hf_slm.pipelines.model_card import save_embedded_variant

MODELS = ("ar_model", "nar_model")
CODEC_PARTS = ("feature_extractor", "speech_tokenizer")


def last_trainer_state(folder: Path) -> dict:
    """The `trainer_state.json` of the furthest checkpoint in `folder` (a `train_valle.py` model folder)."""
    states = [json.loads(p.read_text()) for p in folder.glob("checkpoint-*/trainer_state.json")]
    if not states:
        raise ValueError(f"{folder} holds no checkpoint-*/trainer_state.json: is it a train_valle.py output folder?")
    return max(states, key=lambda s: s["global_step"])


def stage_summary(run: Path, data: Path, split: dict) -> dict:
    train = datasets.load_from_disk(str(data / "train_corpus"))["train"]
    seconds = sum(train["duration"])
    stage = {"corpus": f"{data.parent.name}/{data.name}", "train_utterances": len(train),
             "train_hours": round(seconds / 3600, 2), "mean_seconds": round(seconds / len(train), 1),
             "train_voices": split["train_voices"],
             "results": json.loads((run / "results.json").read_text())}  # fmt: skip
    for name in ("ar", "nar"):
        state = last_trainer_state(run / name)
        stage[f"{name}_steps"] = min(state["global_step"], state["max_steps"])
        stage[f"{name}_batch_size"] = state["train_batch_size"]
    return stage


def training_summary(pipe: VallEPipeline, stages: list[tuple[Path, Path]]) -> dict:
    splits = [json.loads((data / "voice_split.json").read_text()) for _, data in stages]
    parts = [stage_summary(run, data, split) for (run, data), split in zip(stages, splits)]
    last = splits[-1]
    ar = pipe.ar_model.config
    return {
        "recipe": "examples/audiolm/README.md ('VALL-E that reads its text'): train_small.sh with "
                  "VALLE_CONFIG=small/valle_long.json, then train_valle.py small/valle_finetune_long.json "
                  "--init_variant on four-sentence utterances",  # fmt: skip
        "arguments": {"text_source": "builtin", "voices": f"{last['train_voices']} English espeak-ng voice variants",
                      "rates": "150, 175, 200 (pitches 35, 50, 65)"},  # fmt: skip
        "train_utterances": sum(s["train_utterances"] for s in parts),
        "train_hours": round(sum(s["train_hours"] for s in parts), 2),
        "eval_utterances": last.get("validation_utterances"),
        "held_out_voices": f"{last['unseen_voices']} voice variants never heard in training, at pitches 42 / 80",
        "stages": parts,
        "models": {name: {"layers": getattr(pipe, name).config.text_config.num_hidden_layers,
                          "hidden_size": getattr(pipe, name).config.text_config.hidden_size,
                          "parameters": getattr(pipe, name).num_parameters()} for name in MODELS},  # fmt: skip
        "group_size": ar.group_size,
        "phonemes": len(pipe.tokenizer),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", type=Path, help="the trained VallEPipeline folder (train_valle.py's variant/)")
    parser.add_argument("--stage", nargs=2, type=Path, action="append", required=True, metavar=("RUN", "DATA"),
                        help="a train_valle.py output folder and the corpus it trained on, in training order")
    parser.add_argument("--output", type=Path, default=Path("hf_slm/default_tts_pipeline"))
    parser.add_argument("--codec-from", default="codec-default",
                        help="variant whose feature extractor and codec are referenced when they are the same")
    parser.add_argument("--eval", nargs="*", default=[], help="hf-slm evaluate tts JSON of the packaged folder")
    args = parser.parse_args(argv)
    pipe = VallEPipeline.from_pretrained(args.variant)
    summary = training_summary(pipe, args.stage)
    try:
        pipe.reference_components(args.codec_from, CODEC_PARTS)
    except ValueError as err:
        print(f"storing the codec: {err}")

    save_embedded_variant(pipe, args.output, "tts-default", float16=MODELS, training_summary=summary,
                          eval_paths=args.eval)  # fmt: skip
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
