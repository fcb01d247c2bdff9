"""Measured spoken tasks of an instruct variant: ASR WER, TTS intelligibility, intent accuracy, silence mode.

    python examples/instruction_tuning/evaluate_tasks.py --variant runs/instruct_tiny/instruct_variant \
        --exclude_texts runs/instruct_tiny/tuning_texts.txt --output runs/instruct_tiny/tasks.json
    python examples/instruction_tuning/evaluate_tasks.py --variant instruct-default --num_examples 50

Held-out data (sentences, noise, voices apart from the tuning's) is synthesised with espeak-ng; see
`hf_slm.evaluation.instruct_tasks`. Writes the JSON (every item) and a Markdown report next to it.
instruct-default's figures (docs/instruction_tuning.md): ``--variant instruct-default --num_examples 30
--update_card true`` (its tuning's texts: the variant's own ``tuning_texts.txt``, which tune.py writes into every
variant); every TTS reply is vocoded and transcribed, however short (an empty reply scores an empty transcript).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import HfArgumentParser

from hf_slm.evaluation.report import write_json, write_report
from hf_slm.evaluation.instruct_tasks import (
    HELD_OUT_VOICES,
    TASKS,
    TUNING_TEXTS_FILE,
    evaluate_instruct_tasks,
    summarize,
)
from hf_slm.pipelines import SpeechLMPipeline, SpokenChatPipeline
from hf_slm.pipelines.model_card import render_model_card, write_eval_results
from hf_slm.pipelines.embedded import embedded_pipeline_name, embedded_pipeline_path
from hf_slm.utils import atomic_open


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.torch_threads)
    if args.update_card and not Path(args.variant).is_dir() and embedded_pipeline_path(args.variant) is None:
        raise ValueError(f"--update_card writes into the variant's folder, and {args.variant!r} is not a local folder "
                         "(a Hub download is a read-only cache): pull it into a folder first (hf-slm pull)")
    if args.exclude_texts and not Path(args.exclude_texts).is_file():
        raise FileNotFoundError(f"--exclude_texts {args.exclude_texts} does not exist (tune.py writes tuning_texts.txt)")
    pipe = SpokenChatPipeline.from_pretrained(args.variant)
    own = Path(pipe.local_path) / TUNING_TEXTS_FILE if getattr(pipe, "local_path", None) else None
    path = Path(args.exclude_texts) if args.exclude_texts else own if own is not None and own.is_file() else None
    exclude = None  # the tuning's texts unknown: held-out sentences cannot avoid them, `text_overlap` is null
    if path is not None:
        exclude = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        logging.info("holding out the %d texts of %s", len(exclude), path)
    result = evaluate_instruct_tasks(pipe, tasks=args.tasks, num_examples=args.num_examples, voices=args.voices,
                                     rates=args.rates, seed=args.seed, exclude_texts=exclude,
                                     cache_dir=args.synth_cache_dir)  # fmt: skip
    result = {"variant": args.variant, "arguments": asdict(args), "tuning_texts": None if path is None else str(path),
              **result}  # fmt: skip
    output = write_json(result, args.output)
    notes = (f"Held-out speech: voices {', '.join(args.voices)}, seed {args.seed}, {args.num_examples} utterances per "
             "task; greedy decoding. `tts_wer_espeak` is the recogniser's WER on espeak-ng's own audio of the same "
             "texts; `intent_chance` is 1 / number of intents; a constant policy has silence balanced accuracy 0.5. "
             "`text_overlap` in the JSON: the fraction of a task's texts also seen in tuning (null when the tuning's "
             "texts are unknown: no --exclude_texts and no tuning_texts.txt in the variant).")  # fmt: skip
    write_report(output.with_suffix(".md"), f"Spoken tasks of {args.variant}", summarize(result), notes=notes)
    logging.info("%s", json.dumps(summarize(result), indent=2))
    if args.update_card:
        folder = Path(pipe.local_path)
        write_eval_results(folder, [output])
        # an embedded variant (instruct-default) keeps its name and says it needs hf_slm
        card = render_model_card(SpeechLMPipeline.from_pretrained(folder),
                                 repo_id=embedded_pipeline_name(folder) or args.variant)  # fmt: skip
        with atomic_open(folder / "README.md") as f:
            f.write(str(card))
    return result


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
