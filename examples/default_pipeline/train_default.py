#!/usr/bin/env python
"""Train the embedded default pipeline variant (GSLM style) from scratch, on speech we synthesise ourselves.

    python examples/default_pipeline/train_default.py examples/default_pipeline/config_cpu.json
    python examples/default_pipeline/train_default.py --num_sentences 200 --lm_max_steps 2 --output_dir /tmp/p

Steps: built-in grammar sentences -> espeak-ng speech (several voices, rates, pitches) -> MFCC k-means unit tokenizer
-> unit LM trained with the HF Trainer -> units->mel vocoder trained with the HF Trainer -> one pipeline variant.
The shipped ``default`` is ``config_cpu.json``: 26.1 min on one torch thread of a shared 2-core CPU, 2026-11-23
(one thread was ~4x faster than two there). Data stages are cached under the work dir; the Trainers resume.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import datasets
import torch
from transformers import HfArgumentParser, LlamaConfig, Trainer, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from hf_slm import SpeechLMPipeline
from hf_slm.data import load_text_corpus, synthesize_dataset
from hf_slm.models.speech_lm import SpeechLMConfig, SpeechLMForCausalLM
from hf_slm.models.unit_encoder import SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel
from hf_slm.models.unit_encoder.feature_extraction_unit_encoder import load_audio
from hf_slm.models.unit_vocoder import UnitMelVocoder, UnitMelVocoderConfig
from hf_slm.training import CausalLMCollator, UnitVocoderCollator
from hf_slm.training.kmeans import fit_unit_tokenizer_on_dataset


@dataclass
class DefaultPipelineArguments:
    output_dir: str = field(default="hf_slm/default_pipeline", metadata={"help": "where the variant is written"})
    work_dir: str = field(default="runs/default_pipeline", metadata={"help": "Trainer checkpoints and logs"})
    text_source: str = field(default="builtin", metadata={"help": "'builtin', 'fortunes', 'wordnet' or a text file"})
    num_sentences: int = field(default=3000, metadata={"help": "training sentences"})
    num_eval_sentences: int = field(default=100, metadata={"help": "held-out sentences"})
    voices: str = field(default="en-us,en-us+f3,en-gb+m3,en-us+f2", metadata={"help": "comma-separated voices"})
    rates: str = field(default="150,175,200", metadata={"help": "comma-separated rates (words/min)"})
    pitches: str = field(default="35,50,65", metadata={"help": "comma-separated pitches (0-99)"})
    num_proc: int = field(default=2, metadata={"help": "espeak-ng worker processes"})
    num_units: int = field(default=100, metadata={"help": "k-means units"})
    kmeans_max_frames: int = field(default=300_000, metadata={"help": "frames used to fit k-means"})
    lm_hidden_size: int = 256
    lm_num_layers: int = 4
    lm_num_heads: int = 4
    lm_intermediate_size: int = 704
    lm_dropout: float = field(default=0.1, metadata={"help": "attention dropout of the LM"})
    lm_epochs: float = 4.0
    lm_max_steps: int = field(default=-1, metadata={"help": "overrides lm_epochs when > 0"})
    lm_learning_rate: float = 1e-3
    lm_batch_size: int = 16
    vocoder_epochs: float = 3.0
    vocoder_max_steps: int = -1
    vocoder_learning_rate: float = 2e-3
    vocoder_batch_size: int = 8
    vocoder_griffin_lim_iters: int = 32
    vocoder_segment_units: int = field(default=100, metadata={"help": "random 2 s training segments"})
    torch_threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch's default); 1 is faster on a busy machine"})
    seed: int = 0


def _csv(text: str, kind=str) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def _training_args(out: Path, epochs: float, max_steps: int, lr: float, batch: int, seed: int) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(out),
        num_train_epochs=epochs,
        max_steps=max_steps,
        learning_rate=lr,
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=batch,
        warmup_steps=0.05,  # a float below 1 is a ratio of the total steps (transformers 5)
        lr_scheduler_type="cosine",
        weight_decay=0.01,
        logging_steps=20,
        eval_strategy="epoch" if max_steps <= 0 else "no",
        save_strategy="steps" if max_steps <= 0 else "no",
        save_steps=100,  # resume after a kill loses at most 100 steps
        save_total_limit=1,
        report_to=[],
        seed=seed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
        disable_tqdm=False,
    )


def train_and_evaluate(model, out: Path, epochs, max_steps, lr, batch, seed, train, test, collator) -> float:
    """One HF Trainer run that resumes from its last checkpoint in `out`; returns the held-out loss."""
    trainer = Trainer(
        model=model,
        args=_training_args(out, epochs, max_steps, lr, batch, seed),
        train_dataset=train,
        eval_dataset=test,
        data_collator=collator,
    )
    trainer.train(resume_from_checkpoint=_last_checkpoint(trainer.args.output_dir))
    return trainer.evaluate()["eval_loss"]


def synthesise(args: DefaultPipelineArguments):
    texts = load_text_corpus(args.text_source, limit=args.num_sentences + args.num_eval_sentences, seed=args.seed)
    if len(texts) < 2:
        raise ValueError(f"text source {args.text_source!r} gave {len(texts)} sentences; need at least 2")
    ds = synthesize_dataset(
        texts,
        voices=_csv(args.voices),
        rates=_csv(args.rates, int),
        pitches=_csv(args.pitches, int),
        assignment="random",
        seed=args.seed,
        num_proc=args.num_proc,
    )
    n_eval = min(args.num_eval_sentences, max(1, len(ds) // 10))
    split = ds.train_test_split(test_size=n_eval, seed=args.seed, shuffle=True)
    return split["train"], split["test"]


def fit_speech_tokenizer(args, train):
    feature_extractor = SpeechFeatureExtractor(sampling_rate=16000)
    tokenizer = UnitEncoderModel(UnitEncoderConfig(frontend="mfcc", num_units=args.num_units))
    fit_unit_tokenizer_on_dataset(
        tokenizer, train, feature_extractor, max_frames=args.kmeans_max_frames, seed=args.seed
    )
    return feature_extractor, tokenizer.eval()


def add_units(ds, feature_extractor, tokenizer, keep_waveform: bool = True):
    """A `units` column (50 Hz, no deduplication) and the waveform cut to the unit frames, for the vocoder."""
    hop = tokenizer.config.hop_length

    def tokenize(batch):
        inputs = feature_extractor(batch["audio"], return_tensors="pt")
        with torch.no_grad():
            out = tokenizer(input_values=inputs["input_values"], attention_mask=inputs["attention_mask"])
        units = [u[m].tolist() for u, m in zip(out.units, out.units_mask)]
        if not keep_waveform:
            return {"units": units}
        lengths = inputs["attention_mask"].sum(-1).tolist()
        # the raw (un-normalised) waveform, cut to whole unit frames: the vocoder's target
        raw = [load_audio(a, feature_extractor.sampling_rate) for a in batch["audio"]]
        waves = [raw[i][: min(int(lengths[i]), len(units[i]) * hop)].tolist() for i in range(len(units))]
        return {"units": units, "waveform": waves}

    return ds.map(tokenize, batched=True, batch_size=32, desc="tokenising speech", remove_columns=["audio"])


def lm_backbone_config(args, vocab_size: int | None = None) -> LlamaConfig:
    """The Llama backbone of the unit LM (and of the TWIST variant's text LM) from the `lm_*` arguments."""
    extra = {} if vocab_size is None else {"vocab_size": vocab_size}
    return LlamaConfig(
        hidden_size=args.lm_hidden_size,
        intermediate_size=args.lm_intermediate_size,
        num_hidden_layers=args.lm_num_layers,
        num_attention_heads=args.lm_num_heads,
        num_key_value_heads=args.lm_num_heads,
        max_position_embeddings=2048,
        attention_dropout=args.lm_dropout,
        tie_word_embeddings=True,
        **extra,
    )


def train_language_model(args, train, test, model: SpeechLMForCausalLM | None = None, run_name: str = "lm"):
    """Train `model` (default: a cold-init GSLM unit LM) on `<s> [Speech] units </s>`; checkpoints in work_dir/run_name.
    """
    if model is None:
        model = SpeechLMForCausalLM(SpeechLMConfig(text_config=lm_backbone_config(args), num_units=args.num_units))
    layout = model.config.vocab_layout
    prefix, eos = layout.speech_prefix_ids(), [layout.eos_token_id]

    def to_ids(row):
        return {"input_ids": prefix + layout.units_to_token_ids(row["units"]).tolist() + eos}

    keep = ["input_ids"]
    train_ids = train.map(to_ids, remove_columns=[c for c in train.column_names if c not in keep])
    test_ids = test.map(to_ids, remove_columns=[c for c in test.column_names if c not in keep])
    loss = train_and_evaluate(
        model, Path(args.work_dir) / run_name, args.lm_epochs, args.lm_max_steps, args.lm_learning_rate,
        args.lm_batch_size, args.seed, train_ids, test_ids, CausalLMCollator(layout.pad_token_id, max_length=2048),
    )
    return model.eval(), {"lm_eval_loss": loss, "lm_eval_perplexity": math.exp(loss)}


def train_vocoder(args, train, test, hop_length):
    config = UnitMelVocoderConfig(num_units=args.num_units, griffin_lim_iters=args.vocoder_griffin_lim_iters)
    model = UnitMelVocoder(config)
    def as_pairs(ds):
        ds = ds.remove_columns([c for c in ds.column_names if c not in ("units", "waveform")])
        return ds.rename_columns({"units": "input_ids", "waveform": "audio"})

    train, test = as_pairs(train), as_pairs(test)
    loss = train_and_evaluate(
        model, Path(args.work_dir) / "vocoder", args.vocoder_epochs, args.vocoder_max_steps,
        args.vocoder_learning_rate, args.vocoder_batch_size, args.seed, train, test,
        UnitVocoderCollator(hop_length=hop_length, segment_units=args.vocoder_segment_units),
    )
    return model.eval(), {"vocoder_eval_mel_l1": loss}


def prepare_unit_data(args, feature_extractor=None, speech_tokenizer=None, keep_waveform: bool = True):
    """Synthesise the speech, fit the speech tokenizer (unless given) and add `units`; each stage cached in work_dir.

    `keep_waveform=False` drops the vocoder's target column (an LM-only run).

    Returns `(train, test, feature_extractor, speech_tokenizer, summary)`; a rerun after a kill reloads the caches.
    """
    work, summary = Path(args.work_dir), {}
    with _single_thread():
        train, test = synthesise(args)
        summary["train_utterances"], summary["eval_utterances"] = len(train), len(test)
        summary["train_hours"] = round(sum(train["duration"]) / 3600, 3)
        if speech_tokenizer is None:

            def fit(tmp: Path) -> None:
                fitted = fit_speech_tokenizer(args, train)
                for component in fitted:
                    component.save_pretrained(tmp)

            feature_extractor, speech_tokenizer = cached_stage(
                work / "speech_tokenizer",
                fit,
                lambda p: (SpeechFeatureExtractor.from_pretrained(p), UnitEncoderModel.from_pretrained(p).eval()),
            )
        train, test = (
            cached_stage(
                work / f"units_{name}",
                lambda tmp, ds=ds: add_units(ds, feature_extractor, speech_tokenizer, keep_waveform).save_to_disk(
                    str(tmp)
                ),
                lambda p: datasets.load_from_disk(str(p)),
            )
            for name, ds in (("train", train), ("test", test))
        )
    summary["train_unit_tokens"] = int(sum(len(u) for u in train["units"]))
    return train, test, feature_extractor, speech_tokenizer, summary


def cached_stage(path: Path, write, load):
    """Run a data stage once: `write(tmp)` fills a temporary folder renamed to `path`; a rerun after a kill loads it."""
    from hf_slm.utils import atomic_save_directory

    if not path.is_dir():
        atomic_save_directory(path, write)
    return load(path)


def _last_checkpoint(output_dir: str) -> str | None:
    return get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None


class _single_thread:
    """Data preparation is many small tensor ops; on a busy machine one torch thread is faster than two."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)


def parse_arguments(dataclass_type, argv=None):
    """`script.py [config.json] [--flag value ...]`: a JSON file gives the whole configuration, flags override it."""
    parser = HfArgumentParser(dataclass_type)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".json"):
        config = json.loads(Path(argv.pop(0)).read_text(encoding="utf-8"))
        unknown = sorted(set(config) - {f.name for f in fields(dataclass_type)})
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in the JSON configuration of {dataclass_type.__name__}")
        parser.set_defaults(**config)
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    set_seed(args.seed)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    return args


def main(argv=None) -> int:
    args = parse_arguments(DefaultPipelineArguments, argv)
    started = time.time()
    summary: dict = {"arguments": asdict(args)}

    train, test, feature_extractor, speech_tokenizer, data_summary = prepare_unit_data(args)
    summary.update(data_summary)

    language_model, lm_metrics = train_language_model(args, train, test)
    vocoder, voc_metrics = train_vocoder(args, train, test, speech_tokenizer.config.hop_length)
    summary.update(lm_metrics, **voc_metrics)

    pipe = SpeechLMPipeline(
        feature_extractor=feature_extractor,
        speech_tokenizer=speech_tokenizer,
        language_model=language_model,
        vocoder=vocoder,
    )
    out = pipe.save_pretrained(args.output_dir)
    write_summary(out, summary, started)
    return 0


def write_summary(out: Path, summary: dict, started: float) -> None:
    """Size, time and threads into `training_summary.json` of the written variant (the model card reads it)."""
    summary["size_mb"] = round(sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6, 2)
    summary["minutes"] = round((time.time() - started) / 60, 1)
    summary["torch_threads"] = torch.get_num_threads()
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "arguments"}, indent=2))
    print(f"wrote the pipeline variant to {out}")


if __name__ == "__main__":
    sys.exit(main())
