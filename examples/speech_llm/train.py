"""Staged training of a continuous-feature speech LLM (encoder -> projector -> LM, + speech decoder) with Trainer.

    python examples/speech_llm/train.py examples/speech_llm/stage1.json     # projector only
    python examples/speech_llm/train.py examples/speech_llm/stage2.json     # + LoRA on the LM (or the whole LM)
    python examples/speech_llm/train.py examples/speech_llm/stage3.json     # speech decoder only
    accelerate launch --multi_gpu --num_processes 2 examples/speech_llm/train.py examples/speech_llm/stage1.json

Flags after the JSON file override it (`--max_steps 10`). Stage 1 builds the model from `encoder_name_or_path` and
`lm_name_or_path` (Hub names or folders) unless `model_name_or_path` names a saved speech LLM; later stages start from
the previous stage's `output_dir`. Each stage saves a full model + processor into `output_dir` (stage 2 merges its
LoRA weights first), so the next stage loads it with `from_pretrained`. Rerunning a command resumes from the last
complete checkpoint in `output_dir`.

Data: `dataset_path` is a `datasets.load_from_disk` folder with rows `{"audio": waveform or Audio, "text": answer}`
or `{"audio", "messages"}` (and `units` for stage 3), e.g. espeak-ng speech built with
`hf_slm.data.synthesize_dataset`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoFeatureExtractor, AutoTokenizer, Trainer, TrainingArguments, set_seed

from hf_slm.models.speech_llm import (
    SpeechLLMForConditionalGeneration,
    SpeechLLMProcessor,
    add_speech_llm_tokens,
)
from hf_slm.pipelines import ASR_PROMPT
from hf_slm.training import WallClockLimit, end_distributed, last_complete_checkpoint, train_resuming
from hf_slm.training.arguments import parse_json_and_flags
from hf_slm.training.speech_llm import SpeechLLMCollator, set_training_stage, trainable_parameters


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "A saved speech LLM (previous stage)."})
    encoder_name_or_path: str | None = field(default=None, metadata={"help": "Audio encoder to start from."})
    lm_name_or_path: str | None = field(default=None, metadata={"help": "Causal LM (and its tokenizer)."})
    projector_type: str = field(default="stack_mlp", metadata={"help": (
        "stack_mlp, pool_linear, qformer, or ctc_posterior (encoder_name_or_path a CTC checkpoint with its "
        "tokenizer).")})  # fmt: skip
    projector_downsample: int = field(default=5, metadata={"help": "Encoder frames per projected frame."})
    projector_hidden_size: int = field(default=1024, metadata={"help": "Projector width."})
    audio_layer: int = field(default=-1, metadata={"help": "Encoder hidden state fed to the projector."})
    num_units: int = field(default=100, metadata={"help": "Stage 3: units of the speech decoder (if it is new)."})
    upsample_factor: int = field(default=25, metadata={"help": "Stage 3: unit frames per LM hidden state."})
    decoder_hidden_size: int = field(default=256, metadata={"help": "Stage 3: speech decoder width."})
    decoder_intermediate_size: int = field(default=1024, metadata={"help": "Stage 3: its feed-forward width."})
    decoder_num_attention_heads: int = field(default=4, metadata={"help": "Stage 3: its attention heads."})


@dataclass
class StageArguments:
    stage: int = field(default=1, metadata={"help": "1: projector; 2: + LoRA on the LM; 3: speech decoder."})
    lora_r: int = field(default=8, metadata={"help": "Stage 2: LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "Stage 2: LoRA alpha."})
    lora_on_encoder: bool = field(default=False, metadata={"help": "Stage 2: LoRA on the encoder's attention too."})
    lm_training: str = field(default="lora", metadata={"help": "Stage 2: 'lora' (PEFT) or 'full' (every LM weight)."})
    dataset_path: str = field(default="", metadata={"help": "datasets.load_from_disk folder(s), comma-separated."})
    prompt: str = field(default=ASR_PROMPT, metadata={"help": "User text of rows without messages."})
    resume: bool = field(default=True, metadata={"help": "Resume from the last complete checkpoint in output_dir."})
    max_minutes: float | None = field(default=None, metadata={"help": "Stop (and save) after this many minutes."})
    match_embedding_norm: bool = field(default=False, metadata={"help": (
        "Before training, scale the projector's last layer so projected frames have the norm of the LM's token "
        "embeddings (measured on the first batch).")})  # fmt: skip


def build_model(args: ModelArguments):
    if args.model_name_or_path:
        processor = SpeechLLMProcessor.from_pretrained(args.model_name_or_path)
        model = SpeechLLMForConditionalGeneration.from_pretrained(args.model_name_or_path)
        return model, processor
    if not (args.encoder_name_or_path and args.lm_name_or_path):
        raise ValueError("give model_name_or_path, or both encoder_name_or_path and lm_name_or_path")
    tokenizer = AutoTokenizer.from_pretrained(args.lm_name_or_path)
    add_speech_llm_tokens(tokenizer)
    projector = {"projector_type": args.projector_type, "downsample": args.projector_downsample,
                 "hidden_size": args.projector_hidden_size}  # fmt: skip
    model = SpeechLLMForConditionalGeneration.from_encoder_and_lm(
        args.encoder_name_or_path, args.lm_name_or_path, tokenizer=tokenizer, projector=projector,
        audio_layer=args.audio_layer,
    )  # fmt: skip
    feature_extractor = AutoFeatureExtractor.from_pretrained(args.encoder_name_or_path)
    return model, SpeechLLMProcessor.from_config(model.config, feature_extractor, tokenizer)


@torch.no_grad()
def match_embedding_norm(model, batch: dict) -> float:
    """Scale the projector's last `nn.Linear` so its frames have the LM's mean token-embedding norm; returns the
    factor. In a pre-norm LM, audio frames far louder than tokens drown every layer's update at their positions."""
    audio = batch.get("input_features", batch.get("input_values"))
    frames, _ = model.get_audio_features(audio, batch.get("feature_attention_mask"))
    target = model.get_input_embeddings().weight.norm(dim=-1).mean()
    factor = float(target / frames.norm(dim=-1).mean())
    last = [m for m in model.projector.modules() if isinstance(m, torch.nn.Linear)][-1]
    last.weight.mul_(factor)
    if last.bias is not None:
        last.bias.mul_(factor)
    return factor


def load_datasets(paths: str):
    """One `load_from_disk` folder, or several (comma-separated) concatenated in order."""
    from datasets import concatenate_datasets, load_from_disk

    folders = [p.strip() for p in paths.split(",") if p.strip()]
    if not folders:
        raise ValueError("dataset_path is empty: give a datasets.load_from_disk folder")
    missing = [f for f in folders if not Path(f, "dataset_info.json").is_file()]
    if missing:
        raise ValueError(f"dataset_path: no saved dataset in {missing}")
    parts = [load_from_disk(f) for f in folders]
    if len(parts) == 1:
        return parts[0]
    return concatenate_datasets([p if p.features == parts[0].features else p.cast(parts[0].features) for p in parts])


def main(argv: list[str] | None = None) -> dict:
    model_args, stage_args, training_args = parse_json_and_flags(
        (ModelArguments, StageArguments, TrainingArguments), sys.argv[1:] if argv is None else argv
    )
    set_seed(training_args.seed)
    model, processor = build_model(model_args)
    if stage_args.stage == 3 and model.speech_decoder is None:
        model.add_speech_decoder({"num_units": model_args.num_units, "upsample_factor": model_args.upsample_factor,
                                  "hidden_size": model_args.decoder_hidden_size,
                                  "intermediate_size": model_args.decoder_intermediate_size,
                                  "num_attention_heads": model_args.decoder_num_attention_heads})  # fmt: skip
    model = set_training_stage(model, stage_args.stage, stage_args.lora_r, stage_args.lora_alpha,
                               lora_on_encoder=stage_args.lora_on_encoder,
                               lm_training=stage_args.lm_training)  # fmt: skip
    trainable = trainable_parameters(model)
    dataset = load_datasets(stage_args.dataset_path)
    collator = SpeechLLMCollator(processor, prompt=stage_args.prompt, unit_labels=stage_args.stage == 3)
    checkpoint = last_complete_checkpoint(training_args.output_dir) if stage_args.resume else None
    scale = None
    if stage_args.match_embedding_norm and checkpoint is None:  # a resumed run restores the scaled weights
        scale = match_embedding_norm(model, collator([dataset[i] for i in range(min(16, len(dataset)))]))
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=collator,
        callbacks=[WallClockLimit(stage_args.max_minutes)] if stage_args.max_minutes else None,
    )
    train_resuming(trainer, checkpoint)  # a checkpoint at max_steps: loaded, not stepped past
    results = {"stage": stage_args.stage, "steps": trainer.state.global_step, "trainable_parameters": trainable,
               "resumed_from": None if checkpoint is None else Path(checkpoint).name, "projector_scale": scale,
               "final_loss": next((e["loss"] for e in reversed(trainer.state.log_history) if "loss" in e), None)}
    if training_args.process_index == 0:
        lora = stage_args.stage == 2 and stage_args.lm_training == "lora"
        final = model.merge_and_unload() if lora else model
        final.save_pretrained(training_args.output_dir)
        processor.save_pretrained(training_args.output_dir)
        Path(training_args.output_dir, "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    print(json.dumps(main()))
    end_distributed()
