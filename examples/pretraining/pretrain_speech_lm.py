#!/usr/bin/env python
"""Pre-train a speech language model (GSLM cold start or TWIST warm start) with the HF `Trainer`.

    python examples/pretraining/pretrain_speech_lm.py examples/pretraining/config_tiny.json
    python examples/pretraining/pretrain_speech_lm.py examples/pretraining/config_tiny.json --output_dir runs/x --max_steps 50
    accelerate launch --config_file examples/pretraining/accelerate_fsdp.yaml \
        examples/pretraining/pretrain_speech_lm.py examples/pretraining/config_base.json

Steps: speech (synthesised with espeak-ng, or a `hf-slm synth` / `save_to_disk` folder) -> unit tokenizer (fitted
MFCC k-means, or a saved one) -> units with `datasets.map` (cached) -> optional deduplication -> `<s> [Speech] units
</s>` -> packed rows with per-document position ids -> `Trainer` -> final model, speech tokenizer and eval loss in
`output_dir`. Rerunning the same command resumes from the last complete checkpoint in `output_dir` (a finished run
is left as it is; Ctrl-C says where the last checkpoint is). Several processes (`torchrun --nproc_per_node N`,
`accelerate launch --multi_gpu --num_processes N`) train data-parallel, on a CPU machine with gloo; rank 0 writes.

Arguments come from three dataclasses (`SpeechDataArguments`, `SpeechModelArguments`, `transformers.TrainingArguments`);
a `.json` first argument sets defaults for all of them and any `--flag` after it overrides one. See README.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    DataCollatorWithFlattening,
    LlamaConfig,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from hf_slm.models.speech_lm import SpeechLMConfig, SpeechLMForCausalLM
from hf_slm.training import (
    CausalLMCollator,
    LaunchError,
    PackedSequenceCollator,
    ReadableCheckpoints,
    end_distributed,
    finished_results,
    last_complete_checkpoint,
    log_launch,
    pack_dataset,
    resumable_interrupt,
    train_resuming,
    widen_to_umask,
)
from hf_slm.training.arguments import SpeechDataArguments as SpeechSourceArguments
from hf_slm.training.arguments import load_speech_splits, parse_json_and_flags
from hf_slm.training.speech_units import load_or_fit_speech_tokenizer, tokenize_speech

logger = logging.getLogger("pretrain_speech_lm")
PACKING_MODES = ("bfd", "wrapped", "flatten", "none")


@dataclass
class SpeechDataArguments(SpeechSourceArguments):
    """The shared speech source (`hf_slm.training.arguments`) plus unit tokenisation, deduplication and packing."""

    pitches: str = field(default="35,50,65", metadata={"help": "Comma-separated base pitches (0-99)."})
    num_eval_utterances: int = field(
        default=20, metadata={"help": "Held-out utterances when the dataset has no eval split (at most a tenth)."}
    )
    tokenize_batch_size: int = field(default=16, metadata={"help": "Utterances per unit-tokenisation batch."})
    deduplicate_units: bool = field(
        default=False, metadata={"help": "Collapse runs of repeated units (GSLM 'deduplicated' units)."}
    )
    seq_length: int = field(default=2048, metadata={"help": "Tokens per training row (packed) / maximum length."})
    packing: str = field(
        default="bfd",
        metadata={"help": "'bfd' (best-fit-decreasing rows), 'wrapped' (cut the stream into full rows), 'flatten' "
                  "(transformers' DataCollatorWithFlattening: one row per batch, for flash-attention varlen), or "
                  "'none' (one utterance per row, padded; truncated at seq_length)."},
    )
    preprocessing_num_proc: int | None = field(default=None, metadata={"help": "Processes for the cheap maps."})

    def __post_init__(self):
        if self.packing not in PACKING_MODES:
            raise ValueError(f"packing must be one of {PACKING_MODES}, got {self.packing!r}")
        if self.seq_length < 8:
            raise ValueError(f"seq_length must be >= 8, got {self.seq_length}")


@dataclass
class SpeechModelArguments:
    speech_tokenizer_path: str | None = field(
        default=None,
        metadata={"help": "A fitted unit tokenizer (folder from `hf-slm fit-tokenizer`, a pipeline folder, or "
                  "'default'). Unset: fit MFCC k-means on the training audio (saved to output_dir/speech_tokenizer "
                  "and reused when the run resumes)."},
    )
    num_units: int = field(default=100, metadata={"help": "k-means units when fitting a tokenizer."})
    kmeans_max_frames: int = field(default=200_000, metadata={"help": "Frames used to fit k-means."})
    init_from_text_lm: str | None = field(
        default=None,
        metadata={"help": "TWIST warm start: a causal text LM folder / Hub id (SpeechLMForCausalLM.from_text_lm). "
                  "Unset: cold start (GSLM) from the Llama sizes below."},
    )
    hidden_size: int = field(default=256, metadata={"help": "Llama width (cold start)."})
    num_hidden_layers: int = field(default=4, metadata={"help": "Llama layers (cold start)."})
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads (cold start)."})
    num_key_value_heads: int | None = field(default=None, metadata={"help": "KV heads (GQA); default: all heads."})
    intermediate_size: int = field(default=704, metadata={"help": "MLP width (cold start)."})
    max_position_embeddings: int = field(default=4096, metadata={"help": "Longest position (cold start)."})
    attention_dropout: float = field(default=0.0, metadata={"help": "Attention dropout (cold start)."})
    tie_word_embeddings: bool = field(default=False, metadata={"help": "Tie input and output embeddings."})
    attn_implementation: str = field(
        default="sdpa", metadata={"help": "'sdpa', 'eager', 'flex_attention', 'flash_attention_2', ..."}
    )
    bf16_if_available: bool = field(
        default=True, metadata={"help": "Train in bf16 when a CUDA GPU supports it (unless bf16/fp16 is set)."}
    )
    resume: bool = field(default=True, metadata={"help": "Resume from the last complete checkpoint in output_dir."})


class _RunInfo(TrainerCallback):
    """Record the first optimiser step of this process (proves where a resumed run started)."""

    def __init__(self):
        self.first_step = None

    def on_step_end(self, args, state, control, **kwargs):
        if self.first_step is None:
            self.first_step = state.global_step


# ---------------------------------------------------------------------------------------------------- arguments
def parse_arguments(argv: list[str]):
    data_args, model_args, training_args = parse_json_and_flags(
        (SpeechDataArguments, SpeechModelArguments, TrainingArguments), argv
    )
    if (
        model_args.bf16_if_available
        and not (training_args.bf16 or training_args.fp16)
        and torch.cuda.is_available()
        and torch.cuda.is_bf16_supported()
        and not training_args.use_cpu
    ):
        training_args = dataclasses.replace(training_args, bf16=True)
    return data_args, model_args, training_args


# ---------------------------------------------------------------------------------------------------- data
@dataclass
class UnitsToInputIds:
    """`units` -> `input_ids` = `<s> [Speech] u_1 ... u_T </s>` (optionally deduplicated first)."""

    prefix: list[int]
    eos: int
    unit_offset: int
    num_units: int
    deduplicate: bool = False

    def __call__(self, row):
        units = torch.as_tensor(row["units"], dtype=torch.long)
        if self.deduplicate and units.numel():
            units = torch.unique_consecutive(units)
        if units.numel() and (int(units.min()) < 0 or int(units.max()) >= self.num_units):
            raise ValueError(f"a unit is outside [0, {self.num_units}): the tokenizer does not match the LM")
        return {"input_ids": self.prefix + (units + self.unit_offset).tolist() + [self.eos]}


def build_lm_dataset(ds, config: SpeechLMConfig, data_args: SpeechDataArguments, split: str):
    layout = config.vocab_layout
    to_ids = UnitsToInputIds(
        prefix=layout.speech_prefix_ids(), eos=layout.eos_token_id, unit_offset=layout.unit_token_offset,
        num_units=layout.num_units, deduplicate=data_args.deduplicate_units,
    )
    ds = ds.filter(lambda n: len(n) > 0, input_columns="units", desc=f"dropping empty utterances ({split})")
    ds = ds.map(to_ids, remove_columns=ds.column_names, num_proc=data_args.preprocessing_num_proc,
                desc=f"units -> token ids ({split})")  # fmt: skip
    if data_args.packing in ("bfd", "wrapped"):
        ds = pack_dataset(ds, data_args.seq_length, strategy=data_args.packing, num_proc=data_args.preprocessing_num_proc)
    return ds


def data_collator(data_args: SpeechDataArguments, config: SpeechLMConfig):
    pad = config.vocab_layout.pad_token_id
    if data_args.packing in ("bfd", "wrapped"):
        return PackedSequenceCollator(pad_token_id=pad)
    if data_args.packing == "flatten":
        flash = "flash" in str(config.text_config._attn_implementation)
        return _WithoutCache(DataCollatorWithFlattening(return_flash_attn_kwargs=flash))
    return CausalLMCollator(pad_token_id=pad, max_length=data_args.seq_length)


@dataclass
class _WithoutCache:
    """Add `use_cache=False` to a packing collator's batches (see `PackedSequenceCollator` for why)."""

    collator: object

    def __call__(self, features):
        return {**self.collator(features), "use_cache": False}


def _token_counts(ds) -> dict:
    import pyarrow.compute as pc

    if ds._indices is None:
        lengths = pc.list_value_length(ds.data.column("input_ids"))
        tokens, longest = pc.sum(lengths).as_py(), pc.max(lengths).as_py()
    else:
        lengths = [len(x) for x in ds["input_ids"]]
        tokens, longest = sum(lengths), max(lengths, default=0)
    return {"rows": len(ds), "tokens": int(tokens or 0), "max_row": int(longest or 0)}


# ---------------------------------------------------------------------------------------------------- model
def build_model(model_args: SpeechModelArguments, num_units: int) -> SpeechLMForCausalLM:
    if model_args.init_from_text_lm:
        return SpeechLMForCausalLM.from_text_lm(
            model_args.init_from_text_lm, num_units, attn_implementation=model_args.attn_implementation
        )
    backbone = LlamaConfig(
        hidden_size=model_args.hidden_size,
        intermediate_size=model_args.intermediate_size,
        num_hidden_layers=model_args.num_hidden_layers,
        num_attention_heads=model_args.num_attention_heads,
        num_key_value_heads=model_args.num_key_value_heads or model_args.num_attention_heads,
        max_position_embeddings=model_args.max_position_embeddings,
        attention_dropout=model_args.attention_dropout,
        tie_word_embeddings=model_args.tie_word_embeddings,
        attn_implementation=model_args.attn_implementation,
    )
    return SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, num_units=num_units))


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    data_args, model_args, training_args = parse_arguments(sys.argv[1:] if argv is None else argv)
    log_launch(training_args, "pretrain_speech_lm")
    set_seed(training_args.seed)
    output_dir = training_args.output_dir
    main_process = training_args.process_index == 0

    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and model_args.resume:
        checkpoint = last_complete_checkpoint(output_dir, remove_incomplete=training_args.should_save)
    finished = finished_results(checkpoint, training_args, Path(output_dir) / "all_results.json")
    if finished is not None:  # a rerun of a finished run: nothing to train, and its results stay as they are
        return finished
    if main_process:
        print(f"resuming from {checkpoint}" if checkpoint else "starting from step 0", flush=True)

    with training_args.main_process_first(desc="speech data, unit tokenizer and packing"):
        train, test = load_speech_splits(data_args, training_args.seed)
        # on the training device (a GPU when there is one: SSL encoders are slow on a CPU)
        feature_extractor, speech_tokenizer = load_or_fit_speech_tokenizer(
            model_args.speech_tokenizer_path, train, output_dir, audio_column=data_args.audio_column,
            num_units=model_args.num_units, kmeans_max_frames=model_args.kmeans_max_frames, seed=training_args.seed,
            device=training_args.device,
        )
        train, test = (
            tokenize_speech(
                ds, feature_extractor, speech_tokenizer, data_args.audio_column, data_args.tokenize_batch_size, split,
                cache_dir=data_args.units_cache_dir,
            )
            for ds, split in ((train, "train"), (test, "eval"))
        )
        model = build_model(model_args, speech_tokenizer.config.num_units)
        train_lm = build_lm_dataset(train, model.config, data_args, "train")
        test_lm = build_lm_dataset(test, model.config, data_args, "eval")
    counts = _token_counts(train_lm)
    if main_process:
        print(
            f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
            f"attention={model.config.text_config._attn_implementation}; train: {counts['rows']} rows, "
            f"{counts['tokens']} tokens, packing={data_args.packing}, seq_length={data_args.seq_length}",
            flush=True,
        )

    run_info = _RunInfo()
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_lm,
        eval_dataset=test_lm,
        data_collator=data_collator(data_args, model.config),
        callbacks=[run_info, ReadableCheckpoints()],
    )
    with resumable_interrupt(output_dir, is_main=main_process):
        train_result = train_resuming(trainer, checkpoint)  # a checkpoint at max_steps: loaded, not stepped past
    if trainer.is_fsdp_enabled:  # one consolidated safetensors file for the final model, whatever the checkpoints use
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(output_dir)
    eval_metrics = trainer.evaluate()
    eval_metrics["eval_perplexity"] = math.exp(min(eval_metrics["eval_loss"], 50.0))

    results = {
        **train_result.metrics,
        **eval_metrics,
        "global_step": trainer.state.global_step,
        "resumed_from": checkpoint,
        "first_step_of_this_run": run_info.first_step,
        "train_rows": counts["rows"],
        "train_tokens": counts["tokens"],
        "packing_efficiency": round(counts["tokens"] / max(1, counts["rows"] * data_args.seq_length), 4)
        if data_args.packing in ("bfd", "wrapped")
        else None,
        "bf16": training_args.bf16 or getattr(training_args, "mixed_precision", "no") == "bf16",  # flag or launcher
        "world_size": training_args.world_size,
        "train_batches_per_rank": len(trainer.get_train_dataloader()),  # one epoch of this rank's shard
    }
    if trainer.is_world_process_zero():
        trainer.save_metrics("all", results)
        trainer.save_state()
        widen_to_umask(output_dir)  # safetensors writes the weights private
        summary = ("global_step", "resumed_from", "first_step_of_this_run", "eval_loss")
        print(json.dumps({k: results[k] for k in summary}), flush=True)
    return results


if __name__ == "__main__":
    try:
        main()
        end_distributed()
    except LaunchError as error:  # a launch that would not be data-parallel: say so, no traceback
        sys.exit(f"error: {error}")
