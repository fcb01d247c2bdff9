"""The default recipe's `vocoder_gan` step on the CPU: where its time goes, and one thread against two.

What the 2-hour budget of `make default-pipeline` hangs on: the GAN stage is its longest (2,500 steps), and more
steps buy real-speech intelligibility (4,000: LibriVox CER 21.4 % against 26.1 %, docs/default_pipeline.md).
(1) Split: forward + backward of each part on one batch of the recipe's shape (8 crops of 28 units = 8,960
  samples), one thread: the generator (the shipped `default` vocoder, units -> waveform, mel L1) and the two
  discriminators with the recipe's CPU-sized channels (`setup_discriminators`: MPD periods 2-11, MSD 3 scales);
  then, for scale, cheaper scale-discriminator sets (`--msd_options`: scales / channels; speed only, their effect
  on quality is not measured here).
(2) Whole steps: `VocoderGanTrainer` (the HF `Trainer`) on random units / waveforms of that shape, `--steps` steps
  after `--warmup` untimed ones, at 1 thread (baseline: the recipe's `--torch_threads 1`) and 2 threads (what
  `--vocoder_gan_thread_schedule STEP:2` gives once the LM process beside it is done); `ratio: X` = 1-thread /
  2-thread seconds per step. Each setting runs in a fresh process, one after the other (nothing else running).

    python benchmarks/bench_vocoder_gan.py

docs/benchmarks.md figures: 2-core AMD EPYC VM (AVX2), medians over the timed steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from hf_slm import DEFAULT_PIPELINE


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed Trainer steps per thread setting")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps (oneDNN builds its kernels)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the part-by-part split")
    parser.add_argument("--msd_options", default="2:16,32,64,128,256,256,256;3:8,16,32,64,128,128,128",
                        help="';'-separated SCALES:CHANNELS scale-discriminator sets timed beside the recipe's")
    parser.add_argument("--split_only", action="store_true", help="skip the Trainer steps (2)")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)  # threads of one timed-steps process
    return parser.parse_args(argv)


def vocoder_with_discriminators():
    from hf_slm.models.unit_vocoder import UnitMelVocoder

    vocoder = UnitMelVocoder.from_pretrained(f"{DEFAULT_PIPELINE}/vocoder")
    vocoder.setup_discriminators()  # the recipe's CPU-sized MPD + MSD, from the vocoder's config
    return vocoder.train()


def split(repeats: int, msd_options: str = "") -> dict[str, float]:
    """Median forward + backward seconds of each part on one batch of the recipe's shape, one thread (and of each
    alternative scale-discriminator set in ``msd_options``, keyed by its description)."""
    from hf_slm.models.unit_vocoder import MultiScaleDiscriminator

    torch.set_num_threads(1)
    torch.manual_seed(0)
    vocoder = vocoder_with_discriminators()
    units = torch.randint(0, vocoder.config.num_units, (8, 28))
    waveform = 0.1 * torch.randn(8, 28 * vocoder.config.unit_hop_length)

    def generator():
        vocoder(input_ids=units, labels=waveform).loss.backward()

    def part(module):
        def run():
            scores, _ = module(waveform.clone().requires_grad_())
            sum(score.sum() for score in scores).backward()

        return run

    runs = {"generator": generator, "mpd": part(vocoder.discriminator.mpd), "msd": part(vocoder.discriminator.msd)}
    for option in filter(None, msd_options.split(";")):
        scales, channels = option.split(":")
        alternative = MultiScaleDiscriminator(int(scales), tuple(int(c) for c in channels.split(",")))
        runs[f"msd {scales} scales, channels {channels}"] = part(alternative)
    times = {name: [] for name in runs}
    for name, run in runs.items():
        run()  # warm-up
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def timed_steps(threads: int, steps: int, warmup: int) -> float:
    """Median seconds per `VocoderGanTrainer` step at `threads` torch threads."""
    from datasets import Dataset
    from transformers import TrainerCallback, TrainingArguments

    from hf_slm.training import UnitVocoderCollator, VocoderGanTrainer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    vocoder = vocoder_with_discriminators()
    hop = vocoder.config.unit_hop_length
    rng = np.random.default_rng(0)
    rows = [{"input_ids": rng.integers(0, vocoder.config.num_units, 150).tolist(),
             "audio": (0.1 * rng.standard_normal(150 * hop)).astype("float32")} for _ in range(64)]  # fmt: skip

    class StepTimes(TrainerCallback):
        def __init__(self):
            self.times, self.started = [], None

        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.started)

    clock = StepTimes()
    args = TrainingArguments(output_dir="/tmp/bench_vocoder_gan", max_steps=warmup + steps,
                             per_device_train_batch_size=8, learning_rate=2e-4, adam_beta1=0.8, adam_beta2=0.99,
                             lr_scheduler_type="constant",
                             report_to=[], use_cpu=True, save_strategy="no", logging_steps=10_000,
                             remove_unused_columns=False, disable_tqdm=True, dataloader_num_workers=0)  # fmt: skip
    trainer = VocoderGanTrainer(model=vocoder, args=args, train_dataset=Dataset.from_list(rows), callbacks=[clock],
                                data_collator=UnitVocoderCollator(hop_length=hop, segment_units=28))  # fmt: skip
    trainer.train()
    return statistics.median(clock.times[warmup:])


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps({"seconds_per_step": timed_steps(args.child, args.steps, args.warmup)}))
        return
    parts = split(args.repeats, args.msd_options)
    total = sum(parts[name] for name in ("generator", "mpd", "msd"))
    print("(1) forward + backward on one batch (8 x 28 units), one thread:")
    for name, seconds in parts.items():
        share = f"{100 * seconds / total:4.0f} %" if name in ("generator", "mpd", "msd") else "(instead of msd)"
        print(f"  {name:9s} {seconds * 1000:7.0f} ms  {share}")
    if args.split_only:
        return
    per_step = {}
    for threads in (1, 2):
        child = subprocess.run([sys.executable, __file__, "--child", str(threads), "--steps", str(args.steps),
                                "--warmup", str(args.warmup)], capture_output=True, text=True, check=True)  # fmt: skip
        per_step[threads] = json.loads(child.stdout.strip().splitlines()[-1])["seconds_per_step"]
    print(f"(2) VocoderGanTrainer steps, median of {args.steps}:")
    for threads, seconds in per_step.items():
        print(f"  {threads} thread(s): {seconds:.3f} s/step ({2500 * seconds / 60:.1f} min for the recipe's 2,500)")
    print(f"ratio: {per_step[1] / per_step[2]:.2f} (1-thread / 2-thread seconds per step)")


if __name__ == "__main__":
    main()
