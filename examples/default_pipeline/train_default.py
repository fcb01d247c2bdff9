#!/usr/bin/env python
"""Train the embedded default pipeline variant (GSLM style) from scratch, on speech we synthesise ourselves.

    python examples/default_pipeline/train_default.py examples/default_pipeline/config_cpu.json
    python examples/default_pipeline/train_default.py --num_sentences 200 --lm_max_steps 2 --output_dir /tmp/p

Stages: corpus (espeak-ng speech of the text; ``--text_source open``: the open-vocabulary WordNet + fortunes split
over all English voices, `synthesize_corpus`) -> augment (optional, `SpeechAugmentation`) -> units (MFCC k-means
tokenizer + unit datasets) -> vocoder (HF Trainer) -> vocoder_gan (with `--vocoder_gan_steps`: the vocoder's
inverse-STFT head as a GAN, `VocoderGanTrainer`) -> LM (HF Trainer; with `--parallel_training` in a second process
beside the two vocoder stages) -> the pipeline variant -> evaluation. Each training stage seeds itself, so it trains
the same weights whether the stages before it ran in this process, were loaded from the cache, or ran elsewhere.
Each stage lives in ``<work_dir>/<stage>-<key>/``, the key a hash of the arguments it depends on and of the keys of the
stages before it: a rerun loads finished stages and redoes only what a changed argument touches; a killed run resumes
(data stages are written atomically, the speech corpus per chunk, the Trainers from their last checkpoint).
The shipped ``default`` is ``config_cpu.json``'s output: ~112 min on 2 CPU cores from scratch, one torch thread per
process (the stages' own times, 2026-12-06 / 07: data 26 min, vocoder 20, ``vocoder_gan`` 66, the LM's 39 beside them).
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import datasets
import torch
from transformers import HfArgumentParser, LlamaConfig, Trainer, TrainingArguments, set_seed

from hf_slm import SpeechLMPipeline
from hf_slm.data import (
    corpus_voices, load_text_corpus, load_text_split, normalize_sentence, synthesize_corpus, synthesize_dataset
)
from hf_slm.models.speech_lm import SpeechLMConfig, SpeechLMForCausalLM
from hf_slm.models.unit_encoder import (
    DEFAULT_VTLN_WARPS,
    VTLN_TOKENIZATIONS,
    SpeechFeatureExtractor,
    UnitEncoderConfig,
    UnitEncoderModel,
)
from hf_slm.models.unit_encoder.feature_extraction_unit_encoder import load_audio
from hf_slm.models.unit_vocoder import UnitMelVocoder, UnitMelVocoderConfig
from hf_slm.pipelines.embedded import embedded_pipeline_name
from hf_slm.training import (
    CausalLMCollator,
    SpeechAugmentation,
    ThreadSchedule,
    UnitVocoderCollator,
    VocoderGanTrainer,
    last_complete_checkpoint,
    train_resuming,
)
from hf_slm.training.arguments import read_json_config
from hf_slm.training.kmeans import fit_unit_tokenizer_on_dataset
from hf_slm.utils import OneThreadInWorkers


@dataclass
class DefaultPipelineArguments:
    output_dir: str = field(default="hf_slm/default_pipeline", metadata={"help": "where the variant is written"})
    work_dir: str = field(default="runs/default_pipeline", metadata={"help": "Trainer checkpoints and logs"})
    text_source: str = field(default="builtin", metadata={"help": "'builtin', 'fortunes', 'wordnet', a text file, or "
                             "'open': train on the open-vocabulary split's train side, evaluate on its eval side"})
    num_sentences: int = field(default=3000, metadata={"help": "training sentences"})
    num_eval_sentences: int = field(default=100, metadata={"help": "held-out sentences"})
    voices: str = field(default="en-us,en-us+f3,en-gb+m3,en-us+f2",
                        metadata={"help": "comma-separated voices ('festival:<name>' for a Festival one) or keywords: "
                                  "'english' (every espeak-ng English voice and variant), 'festival' (Festival's "
                                  "English voices, from human recordings)"})
    voice_weights: str = field(default="", metadata={"help": "'open' corpus: shares of the utterances per voice group, "
                               "'english=3,festival=1' (a quarter by Festival voices); default: every voice alike"})
    rates: str = field(default="150,175,200", metadata={"help": "comma-separated rates (words/min)"})
    pitches: str = field(default="35,50,65", metadata={"help": "comma-separated pitches (0-99)"})
    renditions: int = field(default=1, metadata={"help": "'open' corpus: times each text is spoken (random voices)"})
    chunk_size: int = field(default=2000, metadata={"help": "'open' corpus: utterances per cached chunk"})
    num_proc: int = field(default=2, metadata={"help": "worker processes of synthesis, augmentation and tokenisation"})
    augmentation: str = field(default="", metadata={"help": "SpeechAugmentation JSON file (or inline JSON); '' = none"})
    augment_copies: int = field(default=1, metadata={"help": "augmented copies of each training utterance"})
    num_units: int = field(default=100, metadata={"help": "k-means units"})
    kmeans_max_frames: int = field(default=300_000, metadata={"help": "frames used to fit k-means"})
    utterance_normalization: bool = field(
        default=False, metadata={"help": "k-means on per-utterance normalised MFCCs (less speaker-dependent units)"}
    )
    vtln: bool = field(
        default=False, metadata={"help": "vocal tract length normalised MFCC units (`UnitEncoderConfig.vtln_warps`)"}
    )
    vtln_tokenization: str = field(
        default="search", metadata={"help": "with --vtln true: `search` each utterance's warp or read it `unwarped` "
                                    "with the warp-normalised codebook (`UnitEncoderConfig.vtln_tokenization`)"},
    )
    lm_hidden_size: int = 256
    lm_num_layers: int = 4
    lm_num_heads: int = 4
    lm_intermediate_size: int = 704
    lm_dropout: float = field(default=0.1, metadata={"help": "attention dropout of the LM"})
    lm_epochs: float = 4.0
    lm_max_steps: int = field(default=-1, metadata={"help": "overrides lm_epochs when > 0"})
    lm_learning_rate: float = 1e-3
    lm_batch_size: int = 16
    lm_group_by_length: bool = field(default=False, metadata={
        "help": "batch utterances of similar length (Trainer's group_by_length sampling): less padding where lengths "
                "vary 10x (open vocabulary; benchmarks/bench_length_grouping.py)"})
    vocoder_epochs: float = 3.0
    vocoder_max_steps: int = -1
    vocoder_learning_rate: float = 2e-3
    vocoder_batch_size: int = 8
    vocoder_griffin_lim_iters: int = 32
    vocoder_segment_units: int = field(default=100, metadata={"help": "random 2 s training segments"})
    vocoder_gan_steps: int = field(default=0, metadata={
        "help": "> 0: then train the mel vocoder's inverse-STFT head as a GAN for this many steps (Griffin-Lim "
                "replaced; `UnitMelVocoder.with_istft_head`, `VocoderGanTrainer`); 0: keep Griffin-Lim"})
    vocoder_gan_learning_rate: float = 2e-4
    vocoder_gan_batch_size: int = 8
    vocoder_gan_segment_units: int = field(default=28, metadata={"help": "HiFi-GAN's 0.56 s training segments"})
    vocoder_gan_istft_layers: int = 2
    vocoder_gan_mpd_channels: str = field(default="16,32,64,128,128",
                                          metadata={"help": "CPU-sized period discriminators"})
    vocoder_gan_msd_channels: str = field(default="16,32,64,128,256,256,256",
                                          metadata={"help": "CPU-sized scale discriminators (8,16,32,64,128,128,128: "
                                                            "steps 1.62x faster, docs/default_pipeline.md)"})
    vocoder_gan_thread_schedule: str = field(default="", metadata={
        "help": "STEP:THREADS[,...]: torch threads of the GAN stage from those steps on (`ThreadSchedule`), e.g. "
                "'700:2' to take both cores once the LM beside it (--parallel_training) is done; fixed steps, so "
                "the weights do not depend on when it finishes"})
    eval_resynthesis_sentences: int = field(default=30, metadata={"help": "held-out sentences for resynthesis WER/CER"})
    eval_real_speech: str = field(default="", metadata={"help": "also resynthesise installed real speech ('librivox')"})
    float16_components: str = field(default="", metadata={
        "help": "comma-separated components stored in float16 that compute in float32 (`save_embedded_variant`: "
                "half the bytes in the package; the evaluation reads what was stored)"})
    device: str = field(default="cpu", metadata={"help": "'cpu' or 'cuda' (a bigger recipe where a GPU is at hand)"})
    torch_threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch's default); 1 is faster on a busy machine"})
    parallel_training: bool = field(default=False, metadata={
        "help": "train the LM in a second process (this script with --only_stage lm) while this one trains the "
                "vocoder and its GAN head: the two branches read only the units stage, so on 2 cores with "
                "--torch_threads 1 they take the longer branch's time instead of the sum; same weights as in turn"})
    only_stage: str = field(default="", metadata={
        "help": "'lm': run the data stages and the LM stage only (what --parallel_training starts), write no variant"})
    seed: int = 0


#: The arguments each stage depends on (its key also holds the keys of the stages it reads).
STAGE_ARGUMENTS = {
    "corpus": ("text_source", "num_sentences", "num_eval_sentences", "voices", "rates", "pitches", "renditions",
               "chunk_size", "seed"),
    "augment": ("augmentation", "augment_copies", "seed"),
    "units": ("num_units", "kmeans_max_frames", "utterance_normalization", "seed"),
    "lm": ("lm_hidden_size", "lm_num_layers", "lm_num_heads", "lm_intermediate_size", "lm_dropout", "lm_epochs",
           "lm_max_steps", "lm_learning_rate", "lm_batch_size", "lm_group_by_length", "seed"),
    "vocoder": ("vocoder_epochs", "vocoder_max_steps", "vocoder_learning_rate", "vocoder_batch_size",
                "vocoder_griffin_lim_iters", "vocoder_segment_units", "seed"),
    "vocoder_gan": ("vocoder_gan_steps", "vocoder_gan_learning_rate", "vocoder_gan_batch_size",
                    "vocoder_gan_segment_units", "vocoder_gan_istft_layers", "vocoder_gan_mpd_channels",
                    "vocoder_gan_msd_channels", "seed"),
    "evaluation": ("eval_resynthesis_sentences", "eval_real_speech"),
}  # fmt: skip
#: The components of the variant this script writes.
PIPELINE_COMPONENTS = ("feature_extractor", "speech_tokenizer", "language_model", "vocoder")
#: Bump a stage's version when its folder layout or what it computes changes: its key (and those after it) change.
STAGE_VERSIONS = {"augment": 2, "units": 2, "lm": 2, "vocoder": 2, "vocoder_gan": 2}  # 2: seeded per stage
#: Written into each stage folder when the stage runs: its seconds (a resumed stage: the resumed part).
STAGE_TIME_FILE = "stage_time.json"


def _csv(text: str, kind=str) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def _training_args(out: Path, epochs: float, max_steps: int, lr: float, batch: int, seed: int,
                   device: str = "cpu", group_by_length: bool = False, **overrides) -> TrainingArguments:  # fmt: skip
    """The recipe's Trainer arguments; `overrides` replace any of them (e.g. the GAN stage's optimiser)."""
    kwargs = dict(
        train_sampling_strategy="group_by_length" if group_by_length else "random",
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
        save_strategy="steps" if max_steps <= 0 or max_steps > 100 else "no",  # a smoke run saves nothing
        save_steps=100,  # resume after a kill loses at most 100 steps
        save_total_limit=1,
        report_to=[],
        seed=seed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        use_cpu=device == "cpu",
        bf16=device == "cuda",
        disable_tqdm=False,
    )
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def train_and_evaluate(model, out: Path, epochs, max_steps, lr, batch, seed, train, test, collator,
                       device: str = "cpu", group_by_length: bool = False) -> float:  # fmt: skip
    """One HF Trainer run that resumes from its last checkpoint in `out`; returns the held-out loss."""
    trainer = Trainer(
        model=model,
        args=_training_args(out, epochs, max_steps, lr, batch, seed, device, group_by_length),
        train_dataset=train,
        eval_dataset=test,
        data_collator=collator,
    )
    train_resuming(trainer, last_complete_checkpoint(trainer.args.output_dir, remove_incomplete=True))
    return trainer.evaluate()["eval_loss"]


def stage_key(args, name: str, *upstream: str) -> str:
    """12 hex digits: the arguments stage `name` depends on (`STAGE_ARGUMENTS`) and the keys of the stages it reads."""
    values = {key: getattr(args, key) for key in STAGE_ARGUMENTS[name]}
    if name == "units" and args.vtln:  # only when set: the keys of runs from before the options stay valid
        values["vtln"] = True
        if args.vtln_tokenization != "search":
            values["vtln_tokenization"] = args.vtln_tokenization
    if name == "corpus" and args.voice_weights:  # only when set, as vtln
        values["voice_weights"] = args.voice_weights
    if name == "vocoder_gan" and args.vocoder_gan_thread_schedule:  # threads may move the weights' last bits
        values["vocoder_gan_thread_schedule"] = str(ThreadSchedule.parse(args.vocoder_gan_thread_schedule).schedule)
    if name == "evaluation" and args.float16_components:  # evaluates the stored float16 weights
        values["float16_components"] = args.float16_components
    if STAGE_VERSIONS.get(name, 1) != 1:
        values["stage_version"] = STAGE_VERSIONS[name]
    if name == "augment" and args.augmentation:  # the configuration itself, not the name of its file
        values["augmentation"] = SpeechAugmentation.from_config(args.augmentation).to_config()
    return hashlib.sha256(json.dumps([name, values, list(upstream)], sort_keys=True).encode()).hexdigest()[:12]


class Stages:
    """The stage folders of one run (``<work_dir>/<name>-<key>``) and whether this run computed or loaded each."""

    def __init__(self, work_dir):
        self.work = Path(work_dir)
        self.record: dict = {}

    def path(self, name: str, key: str) -> Path:
        return self.work / f"{name}-{key}"

    def run(self, name: str, key: str, write, load, atomic: bool = True, done=None):
        """Unless the stage is done (`done(path)`, default: its folder exists), `write` fills it: into a temporary
        folder renamed into place (`atomic`), or in place for stages that keep their own resumable state (the
        Trainers' checkpoints, the corpus chunks). A value returned by `write` is the result; else `load(path)`."""
        path = self.path(name, key)
        cached = done(path) if done is not None else path.is_dir()
        print(f"[{len(self.record) + 1}] {name}: {'cached' if cached else 'running'} in {path}", flush=True)
        started, result = time.time(), None
        if not cached:
            if atomic:
                from hf_slm.utils import atomic_save_directory

                atomic_save_directory(path, write)
            else:
                path.mkdir(parents=True, exist_ok=True)
                result = write(path)
        if result is None:
            result = load(path)
        seconds = round(time.time() - started, 1)
        self.record[name] = {"key": key, "status": "cached" if cached else "ran", "seconds": seconds}
        marker = path / STAGE_TIME_FILE
        if not cached:  # kept with the stage, so a run that loads it can still say what it cost
            marker.write_text(json.dumps({"seconds": seconds}) + "\n")
        elif marker.is_file():
            self.record[name]["seconds_when_ran"] = json.loads(marker.read_text())["seconds"]
        return result

    def stage_minutes(self) -> dict:
        """Minutes each stage took when it ran (this run or the one that cached it); stages cached before the time
        was kept are left out."""
        return {name: round(entry.get("seconds_when_ran", entry["seconds"]) / 60, 1) for name, entry in self.record.items()
                if entry["status"] == "ran" or "seconds_when_ran" in entry}  # fmt: skip


def synthesise(args: DefaultPipelineArguments, cache_dir: Path | None = None):
    """`(train, test)` speech. `text_source="open"`: the train / eval sides of the open-vocabulary split, spoken by
    `synthesize_corpus` (cached per chunk under `cache_dir`); otherwise one text list split at random."""
    if args.text_source == "open":
        train_texts = load_text_split("train", limit=args.num_sentences, seed=args.seed)
        eval_texts = load_text_split("eval", limit=args.num_eval_sentences, seed=args.seed)
        leaked = {normalize_sentence(t) for t in train_texts} & {normalize_sentence(t) for t in eval_texts}
        if leaked:  # split_texts guarantees this; a check here keeps the evaluation honest whatever changes upstream
            raise RuntimeError(f"{len(leaked)} evaluation sentence(s) are in the training text, e.g. {sorted(leaked)[0]!r}")
        options = dict(voices=args.voices, voice_weights=args.voice_weights or None, rates=_csv(args.rates, int),
                       pitches=_csv(args.pitches, int), seed=args.seed, cache_dir=cache_dir, num_proc=args.num_proc,
                       chunk_size=args.chunk_size)  # fmt: skip
        return synthesize_corpus(train_texts, renditions=args.renditions, **options), synthesize_corpus(eval_texts, **options)
    texts = load_text_corpus(args.text_source, limit=args.num_sentences + args.num_eval_sentences, seed=args.seed)
    if len(texts) < 2:
        raise ValueError(f"text source {args.text_source!r} gave {len(texts)} sentences; need at least 2")
    ds = synthesize_dataset(
        texts,
        voices=corpus_voices(args.voices),
        rates=_csv(args.rates, int),
        pitches=_csv(args.pitches, int),
        assignment="random",
        seed=args.seed,
        num_proc=args.num_proc,
        cache_dir=cache_dir,
    )
    n_eval = min(args.num_eval_sentences, max(1, len(ds) // 10))
    split = ds.train_test_split(test_size=n_eval, seed=args.seed, shuffle=True)
    return split["train"], split["test"]


def augment_dataset(args, train, scratch: Path | None = None):
    """`augment_copies` augmented copies of the training speech: ``audio`` (degraded) and ``target`` (the speech after
    the voice steps only, what the vocoder should give back), seeded per (copy, row). The map's Arrow files go to
    `scratch` (default: datasets' cache beside the corpus, which would then hold a second copy)."""
    augmentation = SpeechAugmentation.from_config(args.augmentation)
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
    features = datasets.Features({"audio": datasets.Audio(sampling_rate=16000), "target": datasets.Audio(sampling_rate=16000)})
    copies = [
        train.select_columns(["audio"]).map(
            OneThreadInWorkers(augmentation.map_function(epoch=copy, target_column="target")), batched=True,
            batch_size=16, with_indices=True, features=features, num_proc=_processes(args.num_proc, len(train)),
            desc=f"augmenting, copy {copy + 1}/{args.augment_copies}",
            cache_file_name=None if scratch is None else str(scratch / f"augment-{copy}.arrow"),
        )
        for copy in range(args.augment_copies)
    ]  # fmt: skip
    return datasets.concatenate_datasets(copies)


def fit_speech_tokenizer(args, train):
    feature_extractor = SpeechFeatureExtractor(sampling_rate=16000)
    tokenizer = UnitEncoderModel(UnitEncoderConfig(frontend="mfcc", num_units=args.num_units,
                                                   utterance_normalization=args.utterance_normalization,
                                                   vtln_warps=list(DEFAULT_VTLN_WARPS) if args.vtln else None,
                                                   vtln_tokenization=args.vtln_tokenization))
    fit_unit_tokenizer_on_dataset(
        tokenizer, train, feature_extractor, max_frames=args.kmeans_max_frames, seed=args.seed
    )
    return feature_extractor, tokenizer.eval()


def _processes(num_proc: int, rows: int) -> int | None:
    """`datasets.map`'s `num_proc`: `None` (in this process) for one process or too few rows to share."""
    return num_proc if num_proc > 1 and rows >= 2 * num_proc else None


def add_units(ds, feature_extractor, tokenizer, keep_waveform: bool = True, target_column: str | None = None,
              cache_file_name: str | None = None, num_proc: int = 1):  # fmt: skip
    """A `units` column (50 Hz, no deduplication) and the waveform cut to the unit frames, for the vocoder: of the
    audio itself, or of `target_column` (augmented rows: the clean speech the vocoder should give back); in
    `num_proc` processes (one torch thread each)."""
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
        raw = [load_audio(a, feature_extractor.sampling_rate) for a in batch[target_column or "audio"]]
        waves = [raw[i][: min(int(lengths[i]), len(units[i]) * hop)].tolist() for i in range(len(units))]
        return {"units": units, "waveform": waves}

    drop = [c for c in ("audio", target_column) if c in ds.column_names]
    return ds.map(OneThreadInWorkers(tokenize), batched=True, batch_size=32, desc="tokenising speech",
                  remove_columns=drop, cache_file_name=cache_file_name, num_proc=_processes(num_proc, len(ds)))  # fmt: skip


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


def unit_lm_rows(ds, layout):
    """`ds` with its `units` as LM rows, `input_ids` = `<s> [Speech] units </s>` under `layout`, and no other column."""
    prefix, eos = layout.speech_prefix_ids(), [layout.eos_token_id]

    def to_ids(row):
        return {"input_ids": prefix + layout.units_to_token_ids(row["units"]).tolist() + eos}

    return ds.map(to_ids, remove_columns=[c for c in ds.column_names if c != "input_ids"])


def train_language_model(args, train, test, model: SpeechLMForCausalLM | None = None, run_name: str = "lm",
                         out_dir: Path | None = None, extra_train_rows: datasets.Dataset | None = None):  # fmt: skip
    """Train `model` (default: a cold-init GSLM unit LM) on `<s> [Speech] units </s>`; checkpoints in `out_dir`
    (default work_dir/run_name). `extra_train_rows` (`input_ids` in the model's vocabulary, e.g. text) join the
    training rows; the evaluation loss stays on the speech rows of `test`."""
    set_seed(args.seed)  # the stage's init and draws do not depend on what ran before it in this process
    if model is None:
        model = SpeechLMForCausalLM(SpeechLMConfig(text_config=lm_backbone_config(args), num_units=args.num_units))
    layout = model.config.vocab_layout
    train_ids, test_ids = unit_lm_rows(train, layout), unit_lm_rows(test, layout)
    if extra_train_rows is not None:
        train_ids = datasets.concatenate_datasets([train_ids, extra_train_rows.cast(train_ids.features)])
    loss = train_and_evaluate(
        model, out_dir or Path(args.work_dir) / run_name, args.lm_epochs, args.lm_max_steps, args.lm_learning_rate,
        args.lm_batch_size, args.seed, train_ids, test_ids, CausalLMCollator(layout.pad_token_id, max_length=2048),
        args.device, args.lm_group_by_length,
    )
    return model.cpu().eval(), {"lm_eval_loss": loss, "lm_eval_perplexity": math.exp(loss)}


def vocoder_pairs(ds):
    """The unit dataset as the vocoder collator's rows: `input_ids` (units) and `audio` (the target waveform)."""
    ds = ds.remove_columns([c for c in ds.column_names if c not in ("units", "waveform")])
    return ds.rename_columns({"units": "input_ids", "waveform": "audio"})


def train_vocoder(args, train, test, hop_length, out_dir: Path | None = None):
    set_seed(args.seed)
    config = UnitMelVocoderConfig(num_units=args.num_units, griffin_lim_iters=args.vocoder_griffin_lim_iters)
    model = UnitMelVocoder(config)
    train, test = vocoder_pairs(train), vocoder_pairs(test)
    loss = train_and_evaluate(
        model, out_dir or Path(args.work_dir) / "vocoder", args.vocoder_epochs, args.vocoder_max_steps,
        args.vocoder_learning_rate, args.vocoder_batch_size, args.seed, train, test,
        UnitVocoderCollator(hop_length=hop_length, segment_units=args.vocoder_segment_units), args.device,
    )
    return model.cpu().eval(), {"vocoder_eval_mel_l1": loss}


def train_vocoder_gan(args, vocoder: UnitMelVocoder, train, hop_length, out_dir: Path):
    """The trained mel vocoder with an inverse-STFT head in place of Griffin-Lim, trained on HiFi-GAN's objective
    (`VocoderGanTrainer`: MPD + MSD, 45 x mel L1, 2 x feature matching; Adam 0.8 / 0.99 at a constant rate) for
    `vocoder_gan_steps` steps of `vocoder_gan_segment_units`-unit crops; resumes from its last checkpoint."""
    set_seed(args.seed)
    model = vocoder.with_istft_head(
        istft_num_layers=args.vocoder_gan_istft_layers,
        mpd_channels=_csv(args.vocoder_gan_mpd_channels, int),
        msd_channels=_csv(args.vocoder_gan_msd_channels, int),
    ).train()
    training_args = _training_args(out_dir, 1, args.vocoder_gan_steps, args.vocoder_gan_learning_rate,
                                   args.vocoder_gan_batch_size, args.seed, args.device, adam_beta1=0.8,
                                   adam_beta2=0.99, lr_scheduler_type="constant", warmup_steps=0,
                                   weight_decay=0.0)  # HiFi-GAN's optimiser  # fmt: skip
    schedule = args.vocoder_gan_thread_schedule
    trainer = VocoderGanTrainer(
        model=model, args=training_args, train_dataset=vocoder_pairs(train),
        data_collator=UnitVocoderCollator(hop_length=hop_length, segment_units=args.vocoder_gan_segment_units),
        callbacks=[ThreadSchedule.parse(schedule)] if schedule else None,
    )  # fmt: skip
    train_resuming(trainer, last_complete_checkpoint(trainer.args.output_dir, remove_incomplete=True))
    mel = [h["loss_mel"] for h in trainer.state.log_history if "loss_mel" in h]
    return model.cpu().eval(), {"vocoder_gan_steps": trainer.state.global_step,
                                "vocoder_gan_train_mel_l1": mel[-1] if mel else None}  # fmt: skip


def trained_stage(stages: Stages, name: str, key: str, train, model_class):
    """A Trainer stage: checkpoints in ``<stage>/trainer`` (a kill resumes there), the result in ``<stage>/final``
    (written atomically with its metrics); a finished stage is loaded."""
    from hf_slm.utils import atomic_save_directory

    def write(path: Path):
        model, metrics = train(path / "trainer")

        def save(tmp: Path) -> None:
            model.save_pretrained(tmp)
            (tmp / "metrics.json").write_text(json.dumps(metrics) + "\n")

        atomic_save_directory(path / "final", save)
        return model, metrics

    def load(path: Path):
        return model_class.from_pretrained(path / "final").eval(), json.loads((path / "final" / "metrics.json").read_text())

    return stages.run(name, key, write, load, atomic=False, done=trained_stage_done)


def trained_stage_done(path: Path) -> bool:
    """Whether the Trainer stage in `path` finished (its result and metrics written)."""
    return (path / "final" / "metrics.json").is_file()


def corpus_stage(args, stages: Stages):
    """`(train, test)` speech of the corpus stage: synthesised into ``corpus-<key>/`` (resumable per chunk), or
    loaded from it once its ``done.json`` is written."""

    def write_corpus(path: Path):
        result = synthesise(args, path)
        (path / "done.json").write_text(json.dumps({"train": len(result[0]), "eval": len(result[1])}) + "\n")
        return result

    return stages.run("corpus", stage_key(args, "corpus"), write_corpus, lambda p: synthesise(args, p), atomic=False,
                      done=lambda p: (p / "done.json").is_file())  # fmt: skip


def prepare_unit_data(args, feature_extractor=None, speech_tokenizer=None, keep_waveform: bool = True,
                      stages: Stages | None = None):  # fmt: skip
    """The corpus, augment (with `--augmentation`) and units stages (speech tokenizer fitted here unless given).

    `keep_waveform=False` drops the vocoder's target column (an LM-only run).

    Returns `(train, test, feature_extractor, speech_tokenizer, summary)`; a rerun loads the finished stages.
    """
    stages = stages if stages is not None else Stages(args.work_dir)
    summary = {}
    with _single_thread():
        corpus_key = stage_key(args, "corpus")
        train, test = corpus_stage(args, stages)
        summary["train_utterances"], summary["eval_utterances"] = len(train), len(test)
        summary["train_hours"] = round(sum(train["duration"]) / 3600, 3)
        augmented, upstream = None, [corpus_key]
        if args.augmentation:
            augment_key = stage_key(args, "augment", corpus_key)
            augmented = stages.run("augment", augment_key,
                                   lambda tmp: _save(augment_dataset(args, train, tmp / ".scratch"), tmp, "data"),
                                   lambda p: datasets.load_from_disk(str(p / "data")))  # fmt: skip
            upstream.append(augment_key)
            summary["augmented_utterances"] = len(augmented)
        fitted_here = speech_tokenizer is None
        if not fitted_here:  # a given tokenizer (the TWIST variant): its weights are part of the key
            upstream.append(_fingerprint(speech_tokenizer))
        units_key = stage_key(args, "units", *upstream, f"waveform={keep_waveform}")

        def write_units(tmp: Path) -> None:
            fe, tokenizer = feature_extractor, speech_tokenizer
            if fitted_here:
                audio = train.select_columns(["audio"])
                if augmented is not None:
                    audio = datasets.concatenate_datasets([audio, augmented.select_columns(["audio"])])
                fe, tokenizer = fit_speech_tokenizer(args, audio)
                fe.save_pretrained(tmp / "speech_tokenizer")
                tokenizer.save_pretrained(tmp / "speech_tokenizer")
            scratch = tmp / ".scratch"
            for name, ds, target in (("train", train, None), ("test", test, None), ("augmented", augmented, "target")):
                if ds is not None:
                    scratch.mkdir(parents=True, exist_ok=True)
                    units = add_units(ds, fe, tokenizer, keep_waveform, target, str(scratch / f"{name}.arrow"),
                                      num_proc=args.num_proc)
                    _save(units, tmp, name)

        def load_units(path: Path):
            parts = {name: datasets.load_from_disk(str(path / name)) for name in ("train", "test", "augmented")
                     if (path / name).is_dir()}  # fmt: skip
            if fitted_here:
                tokenizer_dir = path / "speech_tokenizer"
                fe, tokenizer = SpeechFeatureExtractor.from_pretrained(tokenizer_dir), UnitEncoderModel.from_pretrained(tokenizer_dir)
                return parts, fe, tokenizer.eval()
            return parts, feature_extractor, speech_tokenizer

        parts, feature_extractor, speech_tokenizer = stages.run("units", units_key, write_units, load_units)
    train = parts["train"]
    if "augmented" in parts:
        columns = ["units", "waveform"] if keep_waveform else ["units"]
        train = datasets.concatenate_datasets([train.select_columns(columns), parts["augmented"].select_columns(columns)])
    summary["train_unit_tokens"] = int(sum(len(u) for u in train["units"]))
    return train, parts["test"], feature_extractor, speech_tokenizer, summary


def _save(ds, folder: Path, name: str) -> None:
    """`save_to_disk` into `folder/name`, then drop the map's scratch Arrow files (`folder/.scratch`): one copy on disk."""
    import shutil

    ds.save_to_disk(str(folder / name))
    del ds
    shutil.rmtree(folder / ".scratch", ignore_errors=True)


def _fingerprint(model) -> str:
    digest = hashlib.sha256(model.config.to_json_string().encode())
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def evaluate_variant(args, pipe, test, folder: Path) -> None:
    """Resynthesis WER/CER (pocketsphinx, closed vocabulary) of held-out sentences and, with `eval_real_speech`, of
    installed real recordings; written to ``results.json``."""
    from hf_slm.data import load_real_speech
    from hf_slm.evaluation.resynthesis import evaluate_resynthesis

    keys = ("wer_original", "wer_resynthesized", "cer_original", "cer_resynthesized", "mel_distance", "n")
    results = {}
    texts = list(dict.fromkeys(test["text"]))[: args.eval_resynthesis_sentences]
    if texts:
        scores = evaluate_resynthesis(pipe, texts=texts)
        results["resynthesis_heldout"] = {key: scores[key] for key in keys}
    if args.eval_real_speech:
        audio, references = load_real_speech(args.eval_real_speech)
        scores = evaluate_resynthesis(pipe, texts=references, audio=audio)
        results[f"resynthesis_{args.eval_real_speech}"] = {key: scores[key] for key in keys}
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def cached_stage(path: Path, write, load):
    """Run a data stage once: `write(tmp)` fills a temporary folder renamed to `path`; a rerun after a kill loads it."""
    from hf_slm.utils import atomic_save_directory

    if not path.is_dir():
        atomic_save_directory(path, write)
    return load(path)


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
    if argv and not argv[0].startswith("-"):
        config = read_json_config(argv.pop(0))  # names the file when it is missing or not a JSON object
        unknown = sorted(set(config) - {f.name for f in fields(dataclass_type)})
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in the JSON configuration of {dataclass_type.__name__}")
        parser.set_defaults(**config)
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    if args.device not in ("cpu", "cuda"):
        raise ValueError(f"--device must be 'cpu' or 'cuda', got {args.device!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but torch sees no CUDA device here")
    if args.augmentation:
        SpeechAugmentation.from_config(args.augmentation)  # a bad configuration fails now, not after the synthesis
    if args.voice_weights and args.text_source != "open":
        raise ValueError("--voice_weights needs --text_source open (the chunked multi-voice corpus)")
    if "english" in _csv(args.voices) and args.text_source != "open":
        raise ValueError("--voices english needs --text_source open (the chunked multi-voice corpus)")
    if args.vtln_tokenization not in VTLN_TOKENIZATIONS:  # refused now, not when the units stage builds the config
        raise ValueError(f"--vtln_tokenization must be {' or '.join(map(repr, VTLN_TOKENIZATIONS))}, "
                         f"got {args.vtln_tokenization!r}")
    if args.vtln_tokenization != "search" and not args.vtln:
        raise ValueError("--vtln_tokenization unwarped reads speech with a warp-normalised codebook: "
                         "it needs --vtln true")
    unknown = sorted(set(_csv(args.float16_components)) - set(PIPELINE_COMPONENTS))
    if unknown:
        raise ValueError(f"--float16_components names no component of the variant: {unknown} "
                         f"(it has {', '.join(PIPELINE_COMPONENTS)})")
    if args.only_stage not in ("", "lm"):
        raise ValueError(f"--only_stage must be 'lm' (or empty: every stage), got {args.only_stage!r}")
    if args.only_stage and args.parallel_training:
        raise ValueError("--parallel_training trains the vocoder beside the LM, --only_stage lm the LM alone: "
                         "choose one")
    if args.vocoder_gan_thread_schedule:  # refused now, not when the GAN stage starts
        ThreadSchedule.parse(args.vocoder_gan_thread_schedule)
    if args.augment_copies < 1:
        raise ValueError(f"--augment_copies must be at least 1, got {args.augment_copies}")
    set_seed(args.seed)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    return args


def main(argv=None) -> int:
    args = parse_arguments(DefaultPipelineArguments, argv)
    started = time.time()
    summary: dict = {"arguments": asdict(args)}
    stages = Stages(args.work_dir)

    train, test, feature_extractor, speech_tokenizer, data_summary = prepare_unit_data(args, stages=stages)
    summary.update(data_summary)
    units_key = stages.record["units"]["key"]
    lm_key, vocoder_key = stage_key(args, "lm", units_key), stage_key(args, "vocoder", units_key)

    def lm_stage():
        return trained_stage(stages, "lm", lm_key, lambda out: train_language_model(args, train, test, out_dir=out),
                             SpeechLMForCausalLM)  # fmt: skip

    if args.only_stage == "lm":
        lm_stage()
        print(f"trained the LM stage in {stages.path('lm', lm_key)}")
        return 0
    lm_process = start_lm_process(args, stages.path("lm", lm_key)) if args.parallel_training else None
    try:
        hop = speech_tokenizer.config.hop_length
        vocoder, voc_metrics = trained_stage(
            stages, "vocoder", vocoder_key, lambda out: train_vocoder(args, train, test, hop, out_dir=out),
            UnitMelVocoder,
        )  # fmt: skip
        summary.update(voc_metrics)
        if args.vocoder_gan_steps > 0:
            vocoder_key = stage_key(args, "vocoder_gan", vocoder_key)
            vocoder, gan_metrics = trained_stage(
                stages, "vocoder_gan", vocoder_key,
                lambda out: train_vocoder_gan(args, vocoder, train, hop, out_dir=out), UnitMelVocoder,
            )  # fmt: skip
            summary.update(gan_metrics)
        lm_seconds = finish_lm_process(lm_process)
    finally:
        stop_lm_process(lm_process)
    language_model, lm_metrics = lm_stage()
    if lm_seconds is not None:  # trained beside the vocoder: this process only loaded it
        stages.record["lm"].pop("seconds_when_ran", None)  # the child's own figure: this one counts its start too
        stages.record["lm"].update(status="ran", seconds=lm_seconds, process="parallel")
    summary.update(lm_metrics)

    pipe = SpeechLMPipeline(**dict(zip(PIPELINE_COMPONENTS, (feature_extractor, speech_tokenizer, language_model,
                                                             vocoder))))
    embedded = embedded_pipeline_name(args.output_dir)
    if args.float16_components or embedded is not None:  # a package folder never holds the model code
        from hf_slm.pipelines.model_card import save_embedded_variant

        # the card's snippets name what loads it: the embedded name for a package folder, else the folder's name
        repo_id = embedded or Path(args.output_dir).name
        out = save_embedded_variant(pipe, args.output_dir, repo_id=repo_id, float16=_csv(args.float16_components))
        pipe = SpeechLMPipeline.from_pretrained(out)  # evaluate what is stored, as users load it
    else:
        out = pipe.save_pretrained(args.output_dir)
    evaluation_key = stage_key(args, "evaluation", lm_key, vocoder_key)
    summary["evaluation"] = stages.run("evaluation", evaluation_key, lambda tmp: evaluate_variant(args, pipe, test, tmp),
                                       lambda p: json.loads((p / "results.json").read_text()))  # fmt: skip
    summary["stages"] = stages.record
    summary["stage_minutes"] = stages.stage_minutes()
    write_summary(out, summary, started)
    return 0


def start_lm_process(args, lm_folder: Path):
    """`--parallel_training`: this script with `--only_stage lm` in a second process (None if that stage is done).
    Its arguments are this run's, in ``<work_dir>/lm-<key>.arguments.json``; it loads the finished data stages."""
    if trained_stage_done(lm_folder):
        return None
    config = lm_folder.parent / f"{lm_folder.name}.arguments.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({**asdict(args), "parallel_training": False, "only_stage": "lm"}, indent=2) + "\n")
    command = [sys.executable, str(Path(__file__).resolve()), str(config)]
    print(f"[lm] training in a second process: {' '.join(command)}", flush=True)
    started, process, outcome = time.time(), subprocess.Popen(command), []
    # (exit code, seconds) when it exits, not when this process, busy with the vocoder, gets round to waiting for it
    watcher = threading.Thread(target=lambda: outcome.append((process.wait(), round(time.time() - started, 1))),
                               daemon=True)  # fmt: skip
    watcher.start()
    return process, watcher, outcome


def finish_lm_process(lm_process) -> float | None:
    """Wait for the LM process; its seconds (None without one). A failed one stops the run, naming its command."""
    if lm_process is None:
        return None
    process, watcher, outcome = lm_process
    watcher.join()
    ((code, seconds),) = outcome
    if code != 0:
        raise RuntimeError(f"the LM training process failed with exit code {code} (its output is above): "
                           f"{' '.join(process.args)}; a rerun resumes it from its last checkpoint")
    return seconds


def stop_lm_process(lm_process) -> None:
    """If this run stops early (an error, Ctrl-C), the LM process stops too; its checkpoints stay for a rerun."""
    if lm_process is not None and lm_process[0].poll() is None:
        lm_process[0].terminate()
        lm_process[0].wait()


def write_summary(out: Path, summary: dict, started: float) -> None:
    """Size, time and threads into `training_summary.json` of the written variant, and its card rendered again to
    describe that training (the variant was saved, with its card, before the summary existed)."""
    from hf_slm.evaluation.report import write_json
    from hf_slm.pipelines.model_card import TRAINING_SUMMARY_FILE, update_model_card

    summary["size_mb"] = round(sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6, 2)
    summary["minutes"] = round((time.time() - started) / 60, 1)
    summary["torch_threads"] = torch.get_num_threads()
    write_json(summary, out / TRAINING_SUMMARY_FILE)  # atomically, as tune.py writes its variant's
    update_model_card(SpeechLMPipeline.from_pretrained(out))
    print(json.dumps({k: v for k, v in summary.items() if k != "arguments"}, indent=2))
    print(f"wrote the pipeline variant to {out}")


if __name__ == "__main__":
    sys.exit(main())
