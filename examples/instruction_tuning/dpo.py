"""DPO over speech continuations with TRL (as slamkit's SLAM does), LoRA through PEFT, saved as an adapter variant.

    pip install "hf_slm[instruct]"     # trl
    python examples/instruction_tuning/dpo.py --base_pipeline tiny-random --output_dir runs/dpo --max_steps 20

Preference pairs (SpeechAlign style): prompt = the first units of a spoken sentence, chosen = its real
continuation, rejected = a continuation sampled from the base model. The DPO loss raises the likelihood of real
speech over the model's own samples relative to the frozen reference (the base model: with PEFT, TRL uses the
model with its adapter disabled as the reference).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser

from hf_slm import SpeechLMPipeline
from hf_slm.data import generate_sentences
from hf_slm.instruct import default_lora_config, espeak_speaker, noise_waveforms, save_instruct_variant
from hf_slm.instruct.preference import build_speech_preferences, layout_tokenizer
from hf_slm.training import require_single_process

logger = logging.getLogger(__name__)


@dataclass
class DPOScriptArguments:
    base_pipeline: str = field(default="tiny-random", metadata={"help": "Base variant (folder / repo / 'default' / "
                                                                         "'tiny-random')."})  # fmt: skip
    num_pairs: int = field(default=32, metadata={"help": "Preference pairs (spoken sentences) to build."})
    prompt_fraction: float = field(default=0.5, metadata={"help": "Part of each utterance used as the prompt."})
    max_continuation_units: int = field(default=40, metadata={"help": "Units per continuation (chosen / rejected)."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    sample_temperature: float = field(default=1.0, metadata={"help": "Temperature of the rejected samples."})
    synth_cache_dir: str | None = field(default=None, metadata={"help": "Cache of the synthesised speech."})
    variant_dir: str | None = field(default=None, metadata={"help": "Default: <output_dir>/dpo_variant."})


def build_pairs(pipe, args: DPOScriptArguments, seed: int):
    units = espeak_speaker(pipe, cache_dir=args.synth_cache_dir)(generate_sentences(args.num_pairs, seed=seed + 11))
    units = [torch.as_tensor(u) for u in units]
    prompts, chosen = [], []
    for u in units:
        cut = max(1, int(len(u) * args.prompt_fraction))
        prompts.append(u[:cut])
        chosen.append(u[cut : cut + args.max_continuation_units])
    torch.manual_seed(seed)
    lm = pipe.language_model
    rejected = [
        lm.generate_units(p, max_new_tokens=len(c), min_new_tokens=len(c), do_sample=True,
                          temperature=args.sample_temperature)[0]  # fmt: skip
        for p, c in zip(prompts, chosen)
    ]
    keep = [i for i, (c, r) in enumerate(zip(chosen, rejected)) if len(c) and len(r)]
    return build_speech_preferences([prompts[i] for i in keep], [chosen[i] for i in keep], [rejected[i] for i in keep])


def main(argv=None):
    from trl import DPOConfig, DPOTrainer

    require_single_process("examples/instruction_tuning/dpo.py")

    parser = HfArgumentParser((DPOScriptArguments, DPOConfig))
    script_args, dpo_args = parser.parse_args_into_dataclasses(args=sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    output_dir = Path(dpo_args.output_dir)
    base = script_args.base_pipeline
    if base == "tiny-random":
        sys.path.insert(0, str(Path(__file__).parent))
        from tune import build_tiny_base_pipeline

        texts = generate_sentences(16, seed=dpo_args.seed + 11)
        tiny = build_tiny_base_pipeline(texts, noise_waveforms(4, seed=dpo_args.seed), seed=dpo_args.seed,
                                        cache_dir=script_args.synth_cache_dir)  # fmt: skip
        base = str(tiny.save_pretrained(output_dir / "base"))
    pipe = SpeechLMPipeline.from_pretrained(base)
    dataset = build_pairs(pipe, script_args, dpo_args.seed)
    lm = pipe.language_model.train()
    trainer = DPOTrainer(
        model=lm,
        args=dpo_args,
        train_dataset=dataset,
        processing_class=layout_tokenizer(lm),
        peft_config=default_lora_config(lm, r=script_args.lora_r, train_embeddings=False),
    )
    result = trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    pipe.register_modules(language_model=trainer.model.eval())
    variant = save_instruct_variant(pipe, script_args.variant_dir or output_dir / "dpo_variant", base=base)
    summary = {"variant": str(variant), "base": base, "pairs": len(dataset), "steps": result.global_step,
               "first_loss": logs[0]["loss"] if logs else None, "last_loss": logs[-1]["loss"] if logs else None,
               "last_reward_accuracy": logs[-1].get("rewards/accuracies") if logs else None}  # fmt: skip
    (output_dir / "dpo_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    logger.info("saved %s", summary)
    return summary


if __name__ == "__main__":
    main()
