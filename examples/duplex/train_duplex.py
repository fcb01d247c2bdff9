#!/usr/bin/env python
"""Train a duplex LM on generated two-speaker dialogues, let it generate dialogues, and measure their turn-taking.

    python examples/duplex/train_duplex.py examples/duplex/config_tiny.json
    python examples/duplex/train_duplex.py examples/duplex/config_tiny.json --kind moshi_text --timing calm
    python examples/duplex/train_duplex.py examples/duplex/config_tiny.json --minutes 5 --max_steps 100000

Steps: `generate_dialogues` with a timing preset (`--timing`: calm = no overlap, default, lively) -> both channels
encoded by the embedded default's unit encoder (every `--stride`-th frame kept) -> a duplex LM (`--kind`: `dgslm`
two towers, `moshi` system/user streams, `moshi_text` with the system's text stream) trained by `transformers.Trainer`
(`max_steps`, or `--minutes` of wall clock) -> `--num_generated` dialogues continued from `--prompt_seconds` of
held-out dialogues -> unit-level turn-taking statistics of the reference and generated units
(`unit_turn_taking_statistics`) in `output_dir/turn_taking.json`, the model in `output_dir/model`, and with
`--vocode` each generated dialogue as a stereo wav (both channels through the default's vocoder) in
`output_dir/generated`.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainingArguments, set_seed

from hf_slm import DEFAULT_PIPELINE, SpeechLMPipeline
from hf_slm.data.builder import write_wav
from hf_slm.data.dialogue import DialogueTiming, generate_dialogues
from hf_slm.data.dialogue_units import dialogue_streams, encode_dialogue_units, silence_unit, stride_units
from hf_slm.evaluation.turn_taking import EVENTS, unit_turn_taking_statistics
from hf_slm.training import WallClockLimit
from hf_slm.training.arguments import parse_json_and_flags
from hf_slm.training.dialogue import DUPLEX_KINDS, duplex_collator, duplex_lm, duplex_rows, generate_duplex
from hf_slm.utils import atomic_open, atomic_save_directory

logger = logging.getLogger("train_duplex")

TIMINGS = {
    "calm": dict(gap_mean=0.6, gap_std=0.2, overlap_probability=0.0, interruption_probability=0.0,
                 backchannel_probability=0.0),
    "default": {},
    "lively": dict(gap_mean=0.3, gap_std=0.15, overlap_probability=0.4, interruption_probability=0.15,
                   backchannel_probability=0.6),
}  # fmt: skip


@dataclass
class DuplexArguments:
    kind: str = field(default="dgslm", metadata={"help": f"Duplex LM: one of {DUPLEX_KINDS}."})
    timing: str = field(default="default", metadata={"help": f"Timing preset of the dialogues: {sorted(TIMINGS)}."})
    num_dialogues: int = field(default=40, metadata={"help": "Training dialogues (generated)."})
    num_generated: int = field(default=8, metadata={"help": "Dialogues to generate (prompts: held-out dialogues)."})
    stride: int = field(default=5, metadata={"help": "Keep every stride-th unit frame (50 Hz / stride)."})
    hidden_size: int = field(default=64, metadata={"help": "Width of the LM."})
    num_hidden_layers: int = field(default=2, metadata={"help": "Layers of the LM."})
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads."})
    max_duration: int = field(default=4, metadata={"help": "dgslm: longest run in frames (duration classes)."})
    crop_seconds: float = field(default=12.0, metadata={"help": "Training windows (seconds of dialogue)."})
    prompt_seconds: float = field(default=2.0, metadata={"help": "Prompt of each generated dialogue."})
    generate_seconds: float = field(default=30.0, metadata={"help": "Seconds generated after the prompt."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature."})
    minutes: float | None = field(default=None, metadata={"help": "Stop training after this many minutes."})
    vocode: bool = field(default=False, metadata={"help": "Write the generated dialogues as stereo wavs."})

    def __post_init__(self):
        if self.kind not in DUPLEX_KINDS:
            raise ValueError(f"--kind must be one of {DUPLEX_KINDS}, got {self.kind!r}")
        if self.timing not in TIMINGS:
            raise ValueError(f"--timing must be one of {sorted(TIMINGS)}, got {self.timing!r}")
        for name in ("num_dialogues", "num_generated", "stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)!r}")


def main(argv: list[str]) -> dict:
    args, training_args = parse_json_and_flags((DuplexArguments, TrainingArguments), argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    set_seed(training_args.seed)
    torch.set_num_threads(1)
    pipe = SpeechLMPipeline.from_pretrained(DEFAULT_PIPELINE)
    timing = DialogueTiming(**TIMINGS[args.timing])
    total = args.num_dialogues + args.num_generated
    dialogues = generate_dialogues(total, timing, seed=training_args.seed)
    units = encode_dialogue_units(dialogues, pipe.feature_extractor, pipe.speech_tokenizer, stride=args.stride)
    silence = silence_unit(units)
    rate = pipe.speech_tokenizer.config.sampling_rate / pipe.speech_tokenizer.config.hop_length / args.stride
    logger.info("%d dialogues, %.1f min, %.0f Hz units, silence unit %d", total,
                sum(u.shape[1] for u in units) / rate / 60, rate, silence)  # fmt: skip

    model = duplex_lm(args.kind, pipe.speech_tokenizer.config.num_units, silence, rate, args.hidden_size,
                      args.num_hidden_layers, args.num_attention_heads, args.max_duration)  # fmt: skip
    train = duplex_rows(model, units[: args.num_dialogues], dialogues[: args.num_dialogues])
    callbacks = [WallClockLimit(args.minutes, save=False)] if args.minutes else []
    trainer = Trainer(model=model, args=training_args, train_dataset=train, callbacks=callbacks,
                      data_collator=duplex_collator(model, int(args.crop_seconds * rate), training_args.seed))  # fmt: skip
    result = trainer.train()
    model.eval()

    held_out = list(range(args.num_dialogues, total))
    prompt_frames = int(args.prompt_seconds * rate)
    prompts = torch.stack([units[i][:, :prompt_frames] for i in held_out])
    text = None
    if args.kind == "moshi_text":
        text = torch.stack([dialogue_streams(units[i], 1, dialogues[i], rate)[0, :prompt_frames] for i in held_out])
    generated = generate_duplex(model, prompts, int(args.generate_seconds * rate), args.temperature,
                                training_args.seed, text_prompts=text)  # fmt: skip
    new = [g[:, prompt_frames:] for g in generated]
    stats = {"reference": unit_turn_taking_statistics([units[i] for i in range(args.num_dialogues)], silence, rate),
             "generated": unit_turn_taking_statistics(new, silence, rate)}  # fmt: skip
    for label, values in stats.items():
        logger.info("%-9s " + " ".join(f"{e} {values[e]['per_minute']:.1f}/{values[e]['duration_per_minute']:.1f}"
                                       for e in EVENTS), label)  # fmt: skip

    out = Path(training_args.output_dir)
    model.save_pretrained(out / "model")
    if args.vocode:
        def write(tmp):
            for index, dialogue in enumerate(generated):
                channels = pipe.decode([stride_units(c, args.stride) for c in dialogue])
                length = min(len(c) for c in channels)
                write_wav(Path(tmp) / f"generated_{index:03d}.wav", np.stack([c[:length] for c in channels], 1),
                          pipe.sampling_rate)  # fmt: skip

        atomic_save_directory(out / "generated", write)
    report = {"arguments": asdict(args), "timing": asdict(timing), "silence_unit": silence, "frame_rate": rate,
              "train_steps": result.global_step, "train_seconds": result.metrics["train_runtime"],
              "train_loss": result.training_loss, **stats}  # fmt: skip
    with atomic_open(out / "turn_taking.json", "w") as f:
        json.dump(report, f, indent=1, default=float)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
