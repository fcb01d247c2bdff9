"""Measured spoken tasks of an instruct variant: ASR WER, TTS intelligibility, intent accuracy, silence mode.

A thin wrapper over ``hf-slm evaluate instruct-tasks`` (and ``hf-slm card`` for ``--update_card``), kept for the
commands that docs and runs already use; the CLI is the reference:

    hf-slm evaluate instruct-tasks --pipeline runs/instruct_tiny/instruct_variant \
        --exclude-texts runs/instruct_tiny/tuning_texts.txt --output runs/instruct_tiny/tasks.json
    python examples/instruction_tuning/evaluate_tasks.py --variant instruct-default --num_examples 30 --update_card true

Held-out data (sentences, noise, voices apart from the tuning's) is synthesised with espeak-ng; see
`hf_slm.evaluation.instruct_tasks`. The tuning's texts are held out: ``--exclude_texts``, else the variant's own
``tuning_texts.txt`` (tune.py writes it into every variant). Writes the JSON (every item), a Markdown report and a plot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import HfArgumentParser

from hf_slm.cli.main import main as hf_slm_cli
from hf_slm.evaluation.instruct_tasks import HELD_OUT_VOICES, TASKS
from hf_slm.pipelines import SpokenChatPipeline
from hf_slm.pipelines.model_card import local_variant_folder, update_model_card


@dataclass
class EvaluationArguments:
    variant: str = field(metadata={"help": "The instruct variant: a folder, a Hub repo id or 'instruct-default'."})
    output: str = field(default="instruct_tasks.json", metadata={"help": "The JSON result (Markdown next to it)."})
    tasks: list[str] = field(default_factory=lambda: list(TASKS), metadata={"help": f"Out of {TASKS}."})
    num_examples: int = field(default=30, metadata={"help": "Utterances per task."})
    voices: list[str] = field(
        default_factory=lambda: list(HELD_OUT_VOICES),
        metadata={"help": "espeak-ng voices of the held-out speech (not the tuning's)."},
    )
    rates: list[int] = field(default_factory=lambda: [175], metadata={"help": "espeak-ng rates (words per minute)."})
    seed: int = field(default=1000, metadata={"help": "Seed of the held-out draws."})
    exclude_texts: str | None = field(
        default=None, metadata={"help": "tuning_texts.txt written by tune.py: held-out sentences avoid them "
                                        "(default: the variant's own tuning_texts.txt, where it has one)."}
    )
    synth_cache_dir: str | None = field(default=None, metadata={"help": "Cache of the synthesised speech."})
    torch_threads: int = field(default=1, metadata={"help": "torch.set_num_threads (1 is fastest on a shared CPU)."})
    update_card: bool = field(
        default=False, metadata={"help": "Merge the figures into the (local) variant's eval_results.json and card."}
    )


def main(argv=None) -> dict:
    (args,) = HfArgumentParser(EvaluationArguments).parse_args_into_dataclasses(args=argv)
    if args.update_card:
        local_variant_folder(args.variant)  # before any download or evaluation: a Hub id has no card to update
    command = ["--debug", "evaluate", "instruct-tasks", "--pipeline", args.variant, "--output", args.output,
               "--tasks", ",".join(args.tasks), "--num-examples", str(args.num_examples),
               "--voices", ",".join(args.voices), "--rates", ",".join(map(str, args.rates)), "--seed", str(args.seed),
               "--threads", str(args.torch_threads)]  # fmt: skip
    if args.exclude_texts:
        command += ["--exclude-texts", args.exclude_texts]
    if args.synth_cache_dir:
        command += ["--synth-cache-dir", args.synth_cache_dir]
    status = hf_slm_cli(command)
    if status:
        raise SystemExit(status)
    if args.update_card:  # `hf-slm card VARIANT --results OUTPUT`
        update_model_card(SpokenChatPipeline.from_pretrained(local_variant_folder(args.variant)), [args.output])
    return json.loads(Path(args.output).read_text(encoding="utf-8"))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
