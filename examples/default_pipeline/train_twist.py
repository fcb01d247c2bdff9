#!/usr/bin/env python
"""Train the embedded TWIST-style variant: a small text LM first, then a speech LM warm-started from it.

    python examples/default_pipeline/train_twist.py examples/default_pipeline/config_twist_cpu.json
    python examples/default_pipeline/train_twist.py --num_sentences 40 --text_lm_max_steps 2 --lm_max_steps 2 \\
        --output_dir /tmp/twist --work_dir /tmp/twist_runs

No pretrained text LM can be had offline here, so the script trains one (TWIST needs one to start from):
text corpus -> byte-level BPE tokenizer (`tokenizers`) -> small Llama text LM (HF Trainer) ->
`SpeechLMForCausalLM.from_text_lm` with the base variant's speech tokenizer (the GSLM default's MFCC k-means units) ->
continued training on the same espeak-ng unit data as the GSLM default (`train_default.py`'s data stages) -> a variant
whose feature extractor, speech tokenizer and vocoder are *references* to the base variant (nothing duplicated).
`--init cold` trains the same LM from a random init instead (the TWIST paper's baseline).
`--text_mix_ratio r` adds r of the text LM's sentences per speech utterance to the speech training rows: speech alone
took the shipped LM's held-out text NLL from 1.75 to 3.94-4.17 nats/token; with r = 1 it stays at 1.74 and the unit
loss falls 2.231 -> 2.081 (docs/default_pipeline.md).
New unit rows use ``new_embeddings_init="normal"``: with ``"mean"`` they start identical and the shipped recipe sat at
uniform over units (loss 7.23 / 4.72 / 4.59 at steps 20 / 40 / 60, ln 100 = 4.61; "normal": 6.54 / 4.57 / 3.86).
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM, PreTrainedTokenizerFast

from hf_slm import SpeechLMPipeline
from hf_slm.data import load_text_corpus
from hf_slm.models.speech_lm import SpeechLMConfig, SpeechLMForCausalLM
from hf_slm.pipelines.embedded import embedded_pipeline_name
from hf_slm.pipelines.model_card import save_embedded_variant
from hf_slm.training import CausalLMCollator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default import (  # noqa: E402  (the sibling script: its data stages, LM trainer and helpers)
    STAGE_TIME_FILE,
    DefaultPipelineArguments,
    cached_stage,
    lm_backbone_config,
    parse_arguments,
    prepare_unit_data,
    train_and_evaluate,
    train_language_model,
    write_summary,
)

SHARED_COMPONENTS = ("feature_extractor", "speech_tokenizer", "vocoder")
EOS, PAD = "<|endoftext|>", "<pad>"


@dataclass
class TwistPipelineArguments(DefaultPipelineArguments):
    """`DefaultPipelineArguments` (speech data, `lm_*` = the LM size and its speech training) plus the text stage.

    The speech tokenizer and vocoder are the base variant's, so `num_units`, `kmeans_*` and `vocoder_*` are unused.
    """

    output_dir: str = field(default="hf_slm/default_twist_pipeline", metadata={"help": "where the variant is written"})
    work_dir: str = field(default="runs/twist_pipeline", metadata={"help": "caches, Trainer checkpoints and logs"})
    base_pipeline: str = field(
        default="default",
        metadata={"help": "variant whose feature extractor, speech tokenizer and vocoder are referenced (not copied)"},
    )
    init: str = field(default="text_lm", metadata={"help": "'text_lm' (TWIST warm start) or 'cold' (random init)"})
    new_embeddings_init: str = field(
        default="normal",
        metadata={"help": "unit/special rows of the warm start: 'normal' (random, as TWIST) or 'mean' (Hewitt 2021; "
                  "near-identical unit rows, which kept our small LM at uniform over units, loss ln 100, for "
                  "60+ steps)"},
    )
    text_lm_source: str = field(
        default="builtin", metadata={"help": "text LM corpus: 'builtin', 'fortunes', 'wordnet' or a text file"}
    )
    text_lm_num_sentences: int = field(default=60_000, metadata={"help": "text LM training sentences"})
    text_lm_num_eval_sentences: int = field(default=500, metadata={"help": "held-out text LM sentences"})
    text_lm_seed: int = field(default=1, metadata={"help": "seed of the text corpus (the speech data uses `seed`)"})
    text_vocab_size: int = field(default=512, metadata={"help": "byte-level BPE vocabulary, special tokens included"})
    text_lm_epochs: float = 1.0
    text_lm_max_steps: int = field(default=-1, metadata={"help": "overrides text_lm_epochs when > 0"})
    text_lm_learning_rate: float = 2e-3
    text_lm_batch_size: int = 64
    text_mix_ratio: float = field(
        default=0.0,
        metadata={"help": "text rows (the text LM's training sentences, as it read them) added to the speech LM's "
                  "training, per speech utterance: keeps the warm start's text knowledge through speech training"},
    )

    def __post_init__(self):
        if self.init not in ("text_lm", "cold"):
            raise ValueError(f"--init must be 'text_lm' or 'cold', got {self.init!r}")
        if not (self.text_mix_ratio >= 0 and math.isfinite(self.text_mix_ratio)):
            raise ValueError(f"--text_mix_ratio must be a number >= 0, got {self.text_mix_ratio!r}")


def train_text_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE (any text encodes, decoding is exact) with `<|endoftext|>` and `<pad>`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=EOS, eos_token=EOS, pad_token=PAD)


def _text_splits(args):
    texts = load_text_corpus(
        args.text_lm_source, limit=args.text_lm_num_sentences + args.text_lm_num_eval_sentences, seed=args.text_lm_seed
    )
    n_eval = min(args.text_lm_num_eval_sentences, max(1, len(texts) // 10))
    return texts[n_eval:], texts[:n_eval]


def text_lm_rows(tokenizer, texts: list[str]) -> datasets.Dataset:
    """`<|endoftext|> sentence <|endoftext|>` rows: how the text LM reads text, and the warm start after it."""
    eos = tokenizer.eos_token_id
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return datasets.Dataset.from_dict({"input_ids": [[eos, *x, eos] for x in ids]})


def mixed_text_rows(args, tokenizer, train_texts: list[str], num_speech_rows: int) -> datasets.Dataset | None:
    """`text_mix_ratio` x `num_speech_rows` of the text LM's training sentences, for the speech LM's training."""
    count = round(args.text_mix_ratio * num_speech_rows)
    if count == 0:
        return None
    if count > len(train_texts):
        raise ValueError(f"--text_mix_ratio {args.text_mix_ratio} asks for {count} text rows; the text corpus has "
                         f"{len(train_texts)} (raise --text_lm_num_sentences)")  # fmt: skip
    return text_lm_rows(tokenizer, train_texts[:count])


def train_text_lm(args, tokenizer, train_texts: list[str], eval_texts: list[str]):
    """A Llama of the `lm_*` size on `<|endoftext|> sentence <|endoftext|>` rows (HF Trainer, resumable)."""
    eos = tokenizer.eos_token_id
    rows = functools.partial(text_lm_rows, tokenizer)
    backbone = lm_backbone_config(args, vocab_size=len(tokenizer))
    backbone.bos_token_id = backbone.eos_token_id = eos
    backbone.pad_token_id = tokenizer.pad_token_id
    model = LlamaForCausalLM(backbone)
    loss = train_and_evaluate(
        model, Path(args.work_dir) / "text_lm", args.text_lm_epochs, args.text_lm_max_steps,
        args.text_lm_learning_rate, args.text_lm_batch_size, args.seed, rows(train_texts), rows(eval_texts),
        CausalLMCollator(pad_token_id=tokenizer.pad_token_id, max_length=256),
    )
    return model.eval(), {"text_lm_eval_loss": loss, "text_lm_eval_perplexity": math.exp(loss)}


@torch.no_grad()
def text_eval_loss(model, tokenizer, texts: list[str]) -> float:
    """Mean per-token NLL of `<|endoftext|> text <|endoftext|>` over the text vocabulary only.

    Restricting the softmax to the text rows makes the text LM and the speech LM warm-started from it give the same
    number right after `from_text_lm` (the TWIST guarantee), so the figure after speech training shows what text
    knowledge survived.
    """
    eos = tokenizer.eos_token_id
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    batch = CausalLMCollator(pad_token_id=tokenizer.pad_token_id)([{"input_ids": [eos, *x, eos]} for x in ids])
    logits = model.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits[:, :-1, : len(tokenizer)].float()
    return float(torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["labels"][:, 1:], ignore_index=-100))


def build_language_model(args, tokenizer, num_units: int, summary: dict, eval_texts: list[str]):
    """TWIST: `from_text_lm` over a text LM trained here; `--init cold`: the same size and vocabulary, random init."""
    if args.init == "cold":
        backbone = lm_backbone_config(args)
        config = SpeechLMConfig(text_config=backbone, text_vocab_size=len(tokenizer), num_units=num_units)
        return SpeechLMForCausalLM(config)

    def write_text_lm(tmp: Path) -> None:
        started = time.time()
        text_lm, metrics = train_text_lm(args, tokenizer, *_text_splits(args))
        metrics["text_lm_minutes"] = round((time.time() - started) / 60, 1)
        text_lm.save_pretrained(tmp)
        (tmp / "metrics.json").write_text(json.dumps(metrics))

    text_lm_dir = cached_stage(Path(args.work_dir) / "text_lm_final", write_text_lm, lambda p: p)
    summary.update(json.loads((text_lm_dir / "metrics.json").read_text()))
    text_lm = AutoModelForCausalLM.from_pretrained(text_lm_dir)
    summary["text_eval_loss_text_lm"] = text_eval_loss(text_lm, tokenizer, eval_texts)
    model = SpeechLMForCausalLM.from_text_lm(
        text_lm, num_units, new_embeddings_init=args.new_embeddings_init, seed=args.seed
    )
    summary["text_eval_loss_after_warm_start"] = text_eval_loss(model, tokenizer, eval_texts)
    return model


def speech_lm_minutes(lm_dir: Path, started: float) -> float:
    """Minutes the speech LM took when it trained, kept in `lm_dir/stage_time.json` (written by the run that
    trained it, so a run that only loads the finished checkpoint still reports them)."""
    marker = lm_dir / STAGE_TIME_FILE
    checkpoints = sorted(p.name for p in lm_dir.glob("checkpoint-*"))
    kept = json.loads(marker.read_text()) if marker.is_file() else {}
    if kept.get("checkpoints") != checkpoints:  # trained (or resumed) here: this run's time
        kept = {"seconds": round(time.time() - started, 1), "checkpoints": checkpoints}
        marker.write_text(json.dumps(kept) + "\n")
    return round(kept["seconds"] / 60, 1)


def main(argv=None) -> int:
    args = parse_arguments(TwistPipelineArguments, argv)
    started = time.time()
    summary: dict = {"arguments": asdict(args)}
    base = SpeechLMPipeline.from_pretrained(args.base_pipeline)

    # text first: the tokenizer and the text LM do not depend on the speech data
    train_texts, eval_texts = _text_splits(args)
    tokenizer = cached_stage(
        Path(args.work_dir) / "text_tokenizer",
        lambda tmp: train_text_tokenizer(train_texts, args.text_vocab_size).save_pretrained(tmp),
        PreTrainedTokenizerFast.from_pretrained,
    )
    num_units = base.speech_tokenizer.config.num_units
    model = build_language_model(args, tokenizer, num_units, summary, eval_texts)

    # speech data: the GSLM default's stages, tokenised by the base variant's own speech tokenizer
    train, test, _, _, data_summary = prepare_unit_data(
        args, base.feature_extractor, base.speech_tokenizer, keep_waveform=False
    )
    summary.update(data_summary)
    text_rows = mixed_text_rows(args, tokenizer, train_texts, len(train))
    summary["text_mix_rows"] = 0 if text_rows is None else len(text_rows)
    run_name = f"speech_lm_{args.init}" + (f"_text{args.text_mix_ratio:g}" if text_rows is not None else "")
    lm_started = time.time()
    language_model, lm_metrics = train_language_model(args, train, test, model=model, run_name=run_name,
                                                      extra_train_rows=text_rows)  # fmt: skip
    summary.update(lm_metrics)
    summary["stage_minutes"] = {"text_lm": summary.get("text_lm_minutes"),
                                "speech_lm": speech_lm_minutes(Path(args.work_dir) / run_name, lm_started)}
    summary["text_eval_loss_after_speech_training"] = text_eval_loss(language_model, tokenizer, eval_texts)

    pipe = SpeechLMPipeline(
        feature_extractor=base.feature_extractor,
        speech_tokenizer=base.speech_tokenizer,
        language_model=language_model,
        vocoder=base.vocoder,
        tokenizer=tokenizer,
    )
    pipe.reference_components(args.base_pipeline, SHARED_COMPONENTS)  # saved as references: weights stay there
    embedded = embedded_pipeline_name(args.output_dir)
    if embedded is not None:  # a package folder: written atomically, without the model code the package serves
        out = save_embedded_variant(pipe, args.output_dir, repo_id=embedded)
    else:
        out = pipe.save_pretrained(args.output_dir)
    write_summary(out, summary, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
