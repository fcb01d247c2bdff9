"""The default recipe's unit LM step with random batches vs length-grouped batches (`lm_group_by_length`).

Open-vocabulary utterances vary about 10x in length (units: median 109, 99th percentile 467 at 50 Hz), so a random
batch of 16 pads to its longest. Synthesises `--sentences` open-train sentences with many voices, rates and pitches
(`synthesize_corpus`, as `config_open_vocab_cpu.json`), fits the MFCC k-means tokenizer (CMVN, 100 units) and
tokenises them with the recipe's own functions, then runs the recipe's LM (`lm_backbone_config`, 3.3M parameters)
under `Trainer` for `--steps` steps of batch 16 with `train_sampling_strategy` "random" and then "group_by_length",
one torch thread each, same seed and data. The first `--warmup` steps are not timed. Prints seconds a step and
padded tokens a step for both and `ratio: X` = random / grouped seconds a step.

    python benchmarks/bench_length_grouping.py --sentences 4000 --steps 25
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from hf_slm.models.speech_lm import SpeechLMConfig, SpeechLMForCausalLM
from hf_slm.training import CausalLMCollator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data_stages import load_recipe, open_vocabulary_units_setup  # noqa: E402


class StepTimer(TrainerCallback):
    def __init__(self, warmup: int):
        self.warmup, self.started, self.seconds = warmup, None, None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.warmup:
            self.started = time.perf_counter()
        elif state.global_step == state.max_steps:
            self.seconds = (time.perf_counter() - self.started) / (state.max_steps - self.warmup)


class PaddedTokens:
    """The recipe's collator, counting the padded tokens it hands out."""

    def __init__(self, collator):
        self.collator, self.tokens, self.batches = collator, 0, 0

    def __call__(self, features):
        batch = self.collator(features)
        self.tokens += batch["input_ids"].numel()
        self.batches += 1
        return batch


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    if args.steps <= args.warmup or args.warmup < 1 or args.sentences < 16 * args.steps:
        parser.error(f"need --steps > --warmup >= 1 and --sentences >= 16 x --steps, got {vars(args)}")
    torch.set_num_threads(1)
    recipe = load_recipe()
    speech, feature_extractor, tokenizer = open_vocabulary_units_setup(recipe, args.sentences, num_proc=2)
    units = recipe.add_units(speech, feature_extractor, tokenizer, keep_waveform=False, num_proc=2)
    lm_args = recipe.parse_arguments(recipe.DefaultPipelineArguments,
                                     [str(ROOT / "examples" / "default_pipeline" / "config_open_vocab_cpu.json")])
    config = SpeechLMConfig(text_config=recipe.lm_backbone_config(lm_args), num_units=100)
    layout = config.vocab_layout
    rows = recipe.unit_lm_rows(units, layout)
    lengths = sorted(len(ids) for ids in rows["input_ids"])
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {len(rows)} utterances, tokens "
          f"median {lengths[len(lengths) // 2]}, max {lengths[-1]}")  # fmt: skip
    results = {}
    for strategy in ("random", "group_by_length"):
        torch.manual_seed(0)
        model = SpeechLMForCausalLM(config)
        timer, collator = StepTimer(args.warmup), PaddedTokens(CausalLMCollator(layout.pad_token_id, max_length=2048))
        training = TrainingArguments(output_dir=str(ROOT / "outputs" / "bench_length_grouping"), max_steps=args.steps,
                                     per_device_train_batch_size=16, learning_rate=1e-3, report_to=[], use_cpu=True,
                                     save_strategy="no", remove_unused_columns=False, disable_tqdm=True, seed=0,
                                     train_sampling_strategy=strategy)  # fmt: skip
        Trainer(model=model, args=training, train_dataset=rows, data_collator=collator, callbacks=[timer]).train()
        results[strategy] = (timer.seconds, collator.tokens / collator.batches)
        print(f"{strategy}: {timer.seconds:.3f} s/step, {collator.tokens / collator.batches:.0f} padded tokens/step")
    ratio = results["random"][0] / results["group_by_length"][0]
    print(f"ratio: {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main()
