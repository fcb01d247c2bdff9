"""LoRA instruction tuning of a speech LM pipeline variant (HfArgumentParser + Trainer), saved as an instruct variant.

    python examples/instruction_tuning/tune.py examples/instruction_tuning/config_tiny.json
    python examples/instruction_tuning/tune.py --base_pipeline path/to/base --output_dir runs/it --max_steps 500

Steps: load the base variant (folder / Hub repo / ``"default"``; ``"tiny-random"`` builds a seeded tiny base, for
smoke tests) -> add the chat and task tags to its LM -> build the instruction sets (ASR/TTS, chain of modality, SLU,
silence mode) from espeak-ng speech -> chat template (loss on assistant tokens only) -> LoRA through PEFT ->
`Trainer` -> save an instruct variant: adapter only, pointing at the base (default), or merged (``--merge``).

Data parallel: `accelerate launch --config_file examples/pretraining/accelerate_ddp.yaml --num_processes N tune.py
...` (or `torchrun --nproc_per_node N`; gloo on a CPU machine). The adapter's gradients are averaged over the ranks
by DDP, each rank reads its shard of every global batch, and rank 0 alone builds the tiny base and writes.

instruct-default was built with ``config_default.json`` over ``twist-default``: 16.6 min of training on one thread
of a 2-core CPU (17.2 min wall with the espeak-ng speech cached), 2026-11-23.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import concatenate_datasets
from transformers import HfArgumentParser, LlamaConfig, TrainingArguments

from hf_slm import (
    SpeechChatTemplate,
    SpeechLMConfig,
    SpeechLMForCausalLM,
    SpeechLMPipeline,
    SpeechLMProcessor,
    SpokenChatPipeline,
)
from hf_slm.data import generate_sentences
from hf_slm.instruct import (
    INSTRUCT_TOKENS,
    attach_adapter,
    build_chain_of_modality,
    build_cross_modal,
    build_silence_mode,
    build_slu,
    default_lora_config,
    espeak_speaker,
    instruction_words,
    noise_waveforms,
    save_instruct_variant,
    synthetic_qa_pairs,
    synthetic_slu_commands,
    word_level_tokenizer,
)
from hf_slm.evaluation.instruct_tasks import TUNING_TEXTS_FILE
from hf_slm.evaluation.report import write_json
from hf_slm.pipelines.adapters import add_task_tokens
from hf_slm.pipelines.model_card import TRAINING_SUMMARY_FILE, update_model_card
from hf_slm.training import (
    AdapterTrainer,
    ReadableCheckpoints,
    WallClockLimit,
    finished_results,
    last_complete_checkpoint,
    resumable_interrupt,
    train_resuming,
)
from hf_slm.training.arguments import read_json_config
from hf_slm.training.launch import LaunchError, data_parallel_defaults, end_distributed, log_launch
from hf_slm.utils import atomic_open

logger = logging.getLogger(__name__)
TASKS = ("cross_modal", "chain_of_modality", "slu", "silence")


@dataclass
class ModelArguments:
    base_pipeline: str = field(
        default="tiny-random",
        metadata={"help": "Base variant: a folder, a Hub repo id, 'default', or 'tiny-random' (a seeded tiny base "
                          "written to <output_dir>/base, for smoke tests). It needs a text tokenizer."},
    )  # fmt: skip
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    train_embeddings: bool = field(
        default=True, metadata={"help": "Train the embedding and head (modules_to_save): needed for the new tags."}
    )
    merge: bool = field(default=False, metadata={"help": "Merge the adapter into the weights and save a plain variant."})
    variant_dir: str | None = field(
        default=None, metadata={"help": "Where the instruct variant goes (default: <output_dir>/instruct_variant)."}
    )
    max_train_minutes: float | None = field(
        default=None, metadata={"help": "Stop training after this many minutes (wall clock) and save what it has."}
    )


@dataclass
class DataArguments:
    tasks: list[str] = field(default_factory=lambda: list(TASKS), metadata={"help": f"Instruction sets: {TASKS}."})
    num_utterances: int = field(default=64, metadata={"help": "Sentences (per builder) to synthesise."})
    voices: list[str] = field(default_factory=lambda: ["en-us"], metadata={"help": "espeak-ng voices."})
    max_length: int = field(default=1024, metadata={"help": "Truncate tokenised conversations to this length."})
    data_seed_offset: int = field(default=0, metadata={"help": "Added to --seed for the data draws."})
    synth_cache_dir: str | None = field(default=None, metadata={"help": "Cache of the synthesised speech."})


def build_tiny_base_pipeline(texts, noise, seed: int = 0, num_units: int = 16, cache_dir=None) -> SpeechLMPipeline:
    """A seeded tiny base variant: MFCC k-means units fitted on ``texts`` spoken by espeak-ng plus ``noise``, a
    2-layer Llama speech LM with a word-level text vocabulary, a tiny mel vocoder. For smoke tests only."""
    from hf_slm.data import synthesize_dataset
    from hf_slm.instruct.data import decode_audio_value
    from hf_slm.models.unit_encoder import SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel
    from hf_slm.models.unit_vocoder import UnitMelVocoder, UnitMelVocoderConfig
    from hf_slm.training.kmeans import fit_unit_tokenizer

    torch.manual_seed(seed)
    feature_extractor = SpeechFeatureExtractor()
    speech = synthesize_dataset(list(texts)[:16], show_progress=False, cache_dir=cache_dir)
    audio = [decode_audio_value(a) for a in speech["audio"]] + list(noise)
    tokenizer_units = UnitEncoderModel(UnitEncoderConfig(frontend="mfcc", num_units=num_units)).eval()
    inputs = feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        features, mask = tokenizer_units.extract_features(inputs["input_values"], inputs["attention_mask"])
    fit_unit_tokenizer(tokenizer_units, features[mask], seed=seed, max_steps=20, show_progress=False)
    text_tokenizer = word_level_tokenizer(texts, extra_words=instruction_words())
    backbone = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2)  # fmt: skip
    lm = SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, text_vocab_size=len(text_tokenizer),
                                            num_units=num_units)).eval()  # fmt: skip
    vocoder = UnitMelVocoder(UnitMelVocoderConfig(num_units=num_units, hidden_size=32, num_unit_layers=1,
                                                  num_mel_layers=1, griffin_lim_iters=4)).eval()  # fmt: skip
    return SpeechLMPipeline(feature_extractor=feature_extractor, speech_tokenizer=tokenizer_units,
                            language_model=lm, vocoder=vocoder, tokenizer=text_tokenizer)  # fmt: skip


def instruction_draws(tasks, n: int, seed: int) -> dict:
    """The seeded text draws of each chosen instruction set: `build_instruction_data` speaks them, and
    `instruction_texts` lists them again without any speech (the texts a tuning saw, to hold out of evaluation)."""
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; choose from {TASKS}")
    draws = {}
    if "cross_modal" in tasks:
        draws["cross_modal"] = generate_sentences(n, seed=seed)
    if "chain_of_modality" in tasks:
        draws["chain_of_modality"] = synthetic_qa_pairs(n, seed=seed)
    if "slu" in tasks:
        draws["slu"] = synthetic_slu_commands(n, seed=seed)
    if "silence" in tasks:  # questions with answers, and side talk: speech not addressed to the model
        draws["silence"] = (synthetic_qa_pairs(n, seed=seed + 1), generate_sentences(n - n // 2, seed=seed + 1))
    return draws


def instruction_texts(draws: dict) -> list[str]:
    """Every text of ``draws`` (`instruction_draws`), once each, in draw order."""
    texts = list(draws.get("cross_modal", []))
    texts += [t for pair in draws.get("chain_of_modality", []) for t in pair]
    texts += [c["text"] for c in draws.get("slu", [])]
    if "silence" in draws:
        pairs, side_talk = draws["silence"]
        texts += [t for pair in pairs for t in pair] + side_talk
    return list(dict.fromkeys(texts))


def build_instruction_data(pipe, chat, data_args: DataArguments, seed: int):
    """The chosen instruction sets, tokenised by the chat template (assistant-only labels), and every text they hold
    (so that an evaluation can hold its sentences out)."""
    n = data_args.num_utterances
    draws = instruction_draws(data_args.tasks, n, seed)
    speak = espeak_speaker(pipe, voices=data_args.voices, cache_dir=data_args.synth_cache_dir)
    parts = []
    if "cross_modal" in draws:
        parts.append(build_cross_modal(speak(draws["cross_modal"]), draws["cross_modal"], seed=seed))
    if "chain_of_modality" in draws:
        parts.append(build_chain_of_modality(draws["chain_of_modality"], speak))
    if "slu" in draws:
        parts.append(build_slu(draws["slu"], speak, seed=seed))
    if "silence" in draws:
        pairs, side_talk = draws["silence"]
        noise_units = [u.tolist() for u in pipe.encode(noise_waveforms(n // 2, seed=seed), sampling_rate=16000)]
        parts.append(build_silence_mode(speak([q for q, _ in pairs]), [a for _, a in pairs],
                                        noise_units + speak(side_talk)))  # fmt: skip
    rows = concatenate_datasets(parts).shuffle(seed=seed)
    tokenised = rows.map(chat.map_function(data_args.max_length), remove_columns=rows.column_names)
    return rows, tokenised, instruction_texts(draws)


def _json_to_argv(config: dict) -> list[str]:
    argv = []
    for key, value in config.items():
        values = value if isinstance(value, list) else [value]
        argv += [f"--{key}", *(str(v).lower() if isinstance(v, bool) else str(v) for v in values)]
    return argv


def main(argv=None):
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    parser.set_defaults(**data_parallel_defaults())  # gloo DDP when several processes start without CUDA
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):  # a JSON config, then optional --flag overrides (the last value wins)
        argv = _json_to_argv(read_json_config(argv[0])) + argv[1:]
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    log_launch(training_args, "tune")
    main_process = training_args.process_index == 0
    seed = training_args.seed + data_args.data_seed_offset
    output_dir = Path(training_args.output_dir)
    last_checkpoint = last_complete_checkpoint(output_dir, remove_incomplete=training_args.should_save)
    finished = finished_results(last_checkpoint, training_args, output_dir / "instruct_summary.json")
    if finished is not None:  # the same command again: the Trainer would step past max_steps and save over it
        return finished

    base = model_args.base_pipeline
    with training_args.main_process_first(desc="tiny base and instruction data"):  # the others read rank 0's files
        if base == "tiny-random":
            if main_process:
                texts = generate_sentences(data_args.num_utterances, seed=seed) + generate_sentences(
                    data_args.num_utterances - data_args.num_utterances // 2, seed=seed + 1
                )
                pipe = build_tiny_base_pipeline(texts, noise_waveforms(8, seed=seed + 7), seed=training_args.seed,
                                                cache_dir=data_args.synth_cache_dir)  # fmt: skip
                pipe.save_pretrained(output_dir / "base")
            base = str(output_dir / "base")
        pipe = SpokenChatPipeline.from_pretrained(base)  # so the saved variant's index names the chat pipeline
        if pipe.tokenizer is None:
            raise ValueError(f"the base variant {base} has no text tokenizer: instruction tuning needs text")
        lm = add_task_tokens(pipe.language_model, INSTRUCT_TOKENS, seed=training_args.seed)
        processor = SpeechLMProcessor.from_config(lm, tokenizer=pipe.tokenizer)
        chat = SpeechChatTemplate(processor)
        rows, train_dataset, texts = build_instruction_data(pipe, chat, data_args, seed)
    if main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / TUNING_TEXTS_FILE).write_text("\n".join(texts) + "\n", encoding="utf-8")  # for held-out eval
    logger.info("instruction rows per task: %s", {t: rows["task"].count(t) for t in sorted(set(rows["task"]))})

    peft_lm = attach_adapter(lm, default_lora_config(
        lm, r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
        train_embeddings=model_args.train_embeddings))  # fmt: skip
    if main_process:
        peft_lm.print_trainable_parameters()
    lora_config = peft_lm.peft_config["default"]
    embedding_training = "frozen"
    if lora_config.trainable_token_indices:
        embedding_training = "the non-text rows of the tied table, as PEFT trainable tokens"
    elif lora_config.modules_to_save:
        embedding_training = "embedding and head in modules_to_save"
    training_args.remove_unused_columns = False
    limit = [ReadableCheckpoints()]
    if model_args.max_train_minutes:
        limit.append(WallClockLimit(model_args.max_train_minutes))
    trainer = AdapterTrainer(model=peft_lm, args=training_args, train_dataset=train_dataset, data_collator=processor.pad,
                      callbacks=limit)  # fmt: skip
    if main_process:  # a killed run picks up where it stopped (the data and its caches are deterministic)
        print(f"resuming from {last_checkpoint}" if last_checkpoint else "starting from step 0", flush=True)
    with resumable_interrupt(output_dir, is_main=main_process):
        result = train_resuming(trainer, last_checkpoint)  # a checkpoint at max_steps: loaded, not stepped past
    if not main_process:  # rank 0 saves the variant and the summary
        return {"steps": result.global_step, "train_loss": result.training_loss}
    pipe.register_modules(language_model=peft_lm.eval())
    variant_dir = Path(model_args.variant_dir or output_dir / "instruct_variant")
    saved = save_instruct_variant(pipe, variant_dir, base=base, merge=model_args.merge)
    summary = {"variant": str(saved), "base": base, "merged": model_args.merge, "train_loss": result.training_loss,
               "steps": result.global_step, "rows": len(rows), "embedding_training": embedding_training,
               "world_size": training_args.world_size,
               "train_runtime_s": result.metrics["train_runtime"],
               "rows_per_task": {t: rows["task"].count(t) for t in sorted(set(rows["task"]))},
               "arguments": {**asdict(model_args), **asdict(data_args), "learning_rate": training_args.learning_rate,
                             "max_steps": training_args.max_steps, "seed": training_args.seed,
                             "batch_size": training_args.per_device_train_batch_size}}  # fmt: skip
    (output_dir / "instruct_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with atomic_open(saved / TUNING_TEXTS_FILE) as f:  # the variant carries them: `hf-slm evaluate instruct-tasks` holds them out
        f.write("\n".join(texts) + "\n")
    if not model_args.merge:  # the card of the variant describes its training
        write_json({k: v for k, v in summary.items() if k != "variant"}, saved / TRAINING_SUMMARY_FILE)  # it is there
        update_model_card(SpokenChatPipeline.from_pretrained(saved))  # named as instruct-default's: its embedded name
    logger.info("saved %s", summary)
    return summary


if __name__ == "__main__":
    np.seterr(all="ignore")
    try:
        main()
        end_distributed()
    except LaunchError as error:  # a launch that would not be data-parallel: say so, no traceback
        sys.exit(f"error: {error}")
