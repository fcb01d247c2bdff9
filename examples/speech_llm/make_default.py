#!/usr/bin/env python
"""The parts of `speech-llm-default` that are not staged training: the text LM, the task data, the variant.

    python examples/speech_llm/make_default.py lm       OUT    # tokenizer + tiny Llama on the open-train text
    python examples/speech_llm/make_default.py lm-chars OUT    # the same with a character vocabulary (ctc_posterior)
    python examples/speech_llm/make_default.py spell    OUT    # + the spelling curriculum (ctc_posterior recipe)
    python examples/speech_llm/make_default.py data     OUT    # ASR / spoken QA / intent / spoken-answer rows
    python examples/speech_llm/make_default.py assemble OUT    # OUT/stage3 + the default's vocoder -> OUT/variant
    python examples/speech_llm/make_default.py export-encoder   OUT  # its encoder + CTC head -> OUT/encoder_variant
    python examples/speech_llm/make_default.py put-back-encoder OUT  # + OUT/encoder_robust -> OUT/variant_robust
    python examples/speech_llm/make_default.py ship     OUT    # + figures -> hf_slm/default_speech_llm_pipeline

`make_default.sh` runs them between the encoder pre-training and the three stages of `train.py`; each step skips
itself when its output exists (delete a folder to redo it), so a rerun resumes.

- **lm**: a byte-free BPE tokenizer (`tokenizers`, lower-case, `LM_VOCAB` tokens, the chat markers and `<|audio|>`
  built in) and a small `LlamaForCausalLM` trained with Trainer on the train side of `load_text_split` (ASR
  targets: `ctc_text`, lower-case words) plus the train-side QA answers and intent names, each framed as an
  assistant turn (`<|im_start|>assistant\\n...<|im_end|>`), so the frozen LM of stage 1 already ends its answers.
- **data**: `OUT/data/asr` (`{"audio", "text"}`: the encoder's training speech, reused from the synthesis cache,
  with `ctc_text` targets; the collator adds `ASR_PROMPT`), `OUT/data/instruct` (ASR rows + `build_spoken_qa` +
  `build_spoken_intent`), `OUT/data/spoken` (`build_spoken_answers` with `units`: the embedded `default`
  variant's unit ids of the spoken answer, `add_answer_units`).
- **assemble**: a `SpeechLLMPipeline` of OUT/stage3 whose vocoder is a reference to the embedded `default`'s
  (`UnitMelVocoder`, 100 units), saved to OUT/variant. Its `generation_config.json` holds `DECODING` (beam search,
  what `generate`, `transcribe` and `chat` use unless told otherwise, and the weights of joint CTC / LM
  transcription, read by `transcribe`), and its processor a lexicon (`read_wordnet_lexicon` + the train-side words,
  with their train-side counts for the unigram prior) and a word trigram LM (`fit_word_lm`, `WORD_LM`).
- **export-encoder** / **put-back-encoder** (not part of `make_default.sh`: measured, not shipped; docs/speech_llm.md):
  OUT/variant's encoder and its projector's CTC head as a transformers CTC model, for `pretrain_encoder_ctc.py
  config_encoder_robust.json` (or `config_encoder_festival.json`, with Festival's human-derived voices) to fine-tune
  on degraded speech, its output folder copied to OUT/encoder_robust; then that run's encoder and head back in place (the
  LM, the symbol table and the decoding unchanged) -> OUT/variant_robust.
- **ship**: OUT/variant + `eval_results.json` (from OUT/asr.json, OUT/tasks.json and OUT/asr_librivox.json, written by
  `hf-slm evaluate asr`, `hf-slm evaluate speech-llm-tasks` and `hf-slm evaluate asr --real-speech librivox`) + `training_summary.json` + the model card -> `hf_slm.DEFAULT_SPEECH_LLM_PIPELINE`.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrain_encoder_ctc import CtcDataArguments, ctc_text, select_texts, speech, vocabulary_processor  # noqa: E402

logger = logging.getLogger("make_default")
LM_VOCAB = 640
LM = {"hidden_size": 160, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
      "intermediate_size": 448, "max_position_embeddings": 512, "tie_word_embeddings": True}  # fmt: skip
ENCODER_CONFIG = Path(__file__).resolve().parent / "config_encoder_default.json"
NUM_QA, NUM_INTENT, NUM_SPOKEN = 1500, 600, 600
# the variant's decoding (docs/speech_llm.md has the measurements): 8 beams and no repeated 10-gram (a character LM
# that runs on repeats a stretch); transcription searches 16 beams, adds the CTC prefix score at `asr_ctc_weight`,
# spells from the processor's lexicon, adds `asr_unigram_weight` x each word's log unigram probability and
# `asr_word_lm_weight` x its look-ahead word-trigram log probability, and takes `asr_word_penalty` off each word
# boundary (chosen on 40 and 150 `open-eval` sentences drawn with seed 1, not the seed-0 sentences the figures are
# measured on)
DECODING = {"num_beams": 8, "no_repeat_ngram_size": 10, "asr_num_beams": 16, "asr_ctc_weight": 0.6,
            "asr_word_penalty": 1.0, "asr_unigram_weight": 0.6, "asr_word_lm_weight": 0.5}
# the word LM: Kneser-Ney trigrams of the train transcripts + WordNet's definitions (not its example sentences,
# which the held-out split is drawn from), n-grams seen fewer than 3 times pruned (2.3 MB compressed; pruning at 2
# gave 3.8 MB and the same WER within one word on 150 sentences)
WORD_LM = {"order": 3, "min_count": 3}
MAX_ANSWER_WORDS = 8  # spoken answers: short (the speech decoder's CTC needs ~2 frames per unit run)


def _answer_texts(limit_qa: int = 6000) -> list[str]:
    from hf_slm.instruct import wordnet_qa_pairs
    from hf_slm.instruct.data import SLU_INTENTS

    return [a.lower() for _, a in wordnet_qa_pairs(limit_qa, seed=7)] + [i.replace("_", " ") for i in SLU_INTENTS]


def train_lm_tokenizer(texts, vocab_size: int = LM_VOCAB):
    """Lower-case BPE over the plain texts, with the chat markers and `<|audio|>` as added tokens.

    Trained on the texts, not on chat-framed texts: BPE would otherwise spend merges on marker fragments
    (`<|im_start|>assistant\\nwh`) that encoding never produces, since added tokens are split off first (the
    released tokenizer lost 67 of its 640 entries so)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from hf_slm.models.speech_llm import AUDIO_TOKEN, add_speech_llm_tokens

    specials = ["<unk>", AUDIO_TOKEN, "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(list(texts) + ["assistant\n"] * 8,
                            trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                initial_alphabet=list("abcdefghijklmnopqrstuvwxyz'\n")))  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    add_speech_llm_tokens(tokenizer)
    return tokenizer


def build_lm(out: Path, minutes: float = 6.0, vocab_size: int = LM_VOCAB) -> Path:
    """Tokenizer + tiny Llama on the open-train text, framed as assistant turns."""
    from transformers import DataCollatorForLanguageModeling, LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    from hf_slm.training import WallClockLimit

    folder = out / "lm"
    if (folder / "lm_results.json").is_file():  # written last: a folder cut off mid-save is redone
        return folder
    texts = _train_transcripts() + _answer_texts()
    tokenizer = train_lm_tokenizer(texts, vocab_size)
    framed = [f"<|im_start|>assistant\n{t}<|im_end|>\n" for t in texts]
    ids = tokenizer(framed, add_special_tokens=False)["input_ids"]
    flat = [i for row in ids for i in row]
    block = 128
    blocks = [flat[i : i + block] for i in range(0, len(flat) - block, block)]
    logger.info("LM text: %d sequences, %d tokens, %d blocks; vocab %d", len(framed), len(flat), len(blocks),
                len(tokenizer))  # fmt: skip
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), bos_token_id=None, **LM)  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    args = TrainingArguments(output_dir=str(out / "lm_run"), per_device_train_batch_size=16, learning_rate=3e-3,
                             warmup_steps=50, lr_scheduler_type="cosine", max_steps=int(minutes * 120),
                             weight_decay=0.01, logging_steps=50, save_strategy="no", report_to="none",
                             use_cpu=True, seed=0)  # fmt: skip
    dataset = [{"input_ids": b} for b in blocks]
    trainer = Trainer(model=model, args=args, train_dataset=dataset,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
                      callbacks=[WallClockLimit(minutes, save=False)])  # fmt: skip
    _save_lm(trainer, trainer.train(), tokenizer, folder, parameters=model.num_parameters(), tokens=len(flat))
    return folder


def _train_transcripts() -> list[str]:
    """The train side of the held-out text split as ASR targets (`ctc_text`: lower-case words)."""
    from hf_slm.data import load_text_split

    return [t for t in (ctc_text(s) for s in load_text_split("train")) if t]


def _save_lm(trainer, result, tokenizer, folder: Path, **fields) -> None:
    """The trained LM and its tokenizer, then `lm_results.json` last: its presence marks the folder complete."""
    trainer.model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    loss = next((e["loss"] for e in reversed(trainer.state.log_history) if "loss" in e), result.training_loss)
    (folder / "lm_results.json").write_text(json.dumps({"steps": trainer.state.global_step, "final_loss": loss,
                                                        **fields}, indent=2))  # fmt: skip


def build_character_lm(out: Path) -> Path:
    """`build_lm` with a character vocabulary (no merges: the letters, `▁`, the markers) for 8 minutes: the LM of the
    `ctc_posterior` recipe, where reading a transcript off spelled frames is letter-for-letter copying."""
    return build_lm(out, minutes=8.0, vocab_size=40)


#: The spelling curriculum (`SpelledFramesCollator`): the plain copy task, then CTC-like frames (blanks, errors).
SPELL_PHASES = (("lm_copy", {"blank": 0.0, "repeat": 0.0, "deletion": 0.0, "substitution": 0.0}, 4000),
                ("lm_spelled", {}, 1500))  # fmt: skip


def build_spelled_lm(out: Path) -> Path:
    """OUT/lm taught to read spelled frames, in two Trainer runs (`SPELL_PHASES`), each resumable and skipped once
    saved: a small LM copied nothing in 1,000 steps of the full task but learns the plain copy task first."""
    from transformers import AutoTokenizer, LlamaForCausalLM, Trainer, TrainingArguments

    from hf_slm.training import last_complete_checkpoint, train_resuming
    from hf_slm.training.speech_llm import SpelledFramesCollator

    rows = [{"text": t} for t in _train_transcripts() if len(t.split()) <= 12]
    source = out / "lm"
    for seed, (name, options, steps) in enumerate(SPELL_PHASES):
        folder = out / name
        if not (folder / "lm_results.json").is_file():  # written last: a folder cut off mid-save is redone
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = LlamaForCausalLM.from_pretrained(source)
            args = TrainingArguments(output_dir=str(out / f"{name}_run"), per_device_train_batch_size=16,
                                     learning_rate=2e-3, warmup_steps=100, lr_scheduler_type="cosine",
                                     max_steps=steps, weight_decay=0.01, logging_steps=50, save_steps=250,
                                     save_total_limit=1, report_to="none", use_cpu=True, seed=seed,
                                     remove_unused_columns=False)  # fmt: skip
            trainer = Trainer(model=model, args=args, train_dataset=rows,
                              data_collator=SpelledFramesCollator(tokenizer, seed=seed, **options))  # fmt: skip
            result = train_resuming(trainer, last_complete_checkpoint(args.output_dir, remove_incomplete=True))
            _save_lm(trainer, result, tokenizer, folder, **options)
        source = folder
    return source


def build_data(out: Path) -> Path:
    from datasets import concatenate_datasets

    from hf_slm.instruct import (
        add_answer_units,
        build_spoken_answers,
        build_spoken_intent,
        build_spoken_qa,
        synthetic_slu_commands,
        wordnet_qa_pairs,
    )
    from hf_slm.instruct import speech_llm_features
    from hf_slm.pipelines import ASR_PROMPT
    from hf_slm.training.arguments import csv_list

    data = out / "data"
    config = json.loads(ENCODER_CONFIG.read_text())
    data_args = CtcDataArguments(**{k: v for k, v in config.items() if k in CtcDataArguments.__dataclass_fields__})
    columns = ["audio", "messages"]
    features = speech_llm_features()
    if not (data / "asr" / "dataset_info.json").is_file():
        train_texts, _ = select_texts(data_args, seed=0)  # the encoder's sentences: their speech is cached
        asr = speech(train_texts, csv_list(data_args.voices), csv_list(data_args.rates, int),
                     csv_list(data_args.pitches, int), data_args, 0)  # fmt: skip
        asr = asr.map(lambda row: {"messages": _chat(ASR_PROMPT, row["labels_text"])})
        asr = asr.cast_column("messages", features["messages"]).cast_column("audio", features["audio"])
        asr.select_columns(columns).save_to_disk(str(data / "asr"))
    if not (data / "instruct" / "dataset_info.json").is_file():
        from datasets import load_from_disk

        asr = load_from_disk(str(data / "asr")).shuffle(seed=0).select(range(3000))
        qa = build_spoken_qa(wordnet_qa_pairs(NUM_QA, seed=3))
        intent = build_spoken_intent(synthetic_slu_commands(NUM_INTENT, seed=4))
        tasks = concatenate_datasets([qa, intent]).map(_audio_first_lower_answer).select_columns(columns)
        concatenate_datasets([asr, tasks.cast(asr.features)]).shuffle(seed=0).save_to_disk(str(data / "instruct"))
    if not (data / "spoken" / "dataset_info.json").is_file():
        pairs = [p for p in wordnet_qa_pairs(4 * NUM_SPOKEN, seed=5) if len(p[1].split()) <= MAX_ANSWER_WORDS]
        spoken = add_answer_units(build_spoken_answers(pairs[:NUM_SPOKEN]), pipeline="default")
        spoken.map(_audio_first_lower_answer).select_columns([*columns, "units"]).save_to_disk(str(data / "spoken"))
    return data


def _chat(instruction: str, answer: str) -> list[dict]:
    """The pipeline's turn layout (`SpeechLLMPipeline.chat(audio=..., text=...)`): the audio, then the instruction."""
    user = {"role": "user", "content": [{"type": "audio", "text": None}, {"type": "text", "text": instruction}]}
    return [user, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def _audio_first_lower_answer(row: dict) -> dict:
    user, answer = row["messages"]
    instruction = next(i["text"] for i in user["content"] if i["type"] == "text")
    return {"messages": _chat(instruction, "".join(i["text"] for i in answer["content"]).lower())}


def assemble(out: Path) -> Path:
    """OUT/stage3 + a reference to the embedded ``default``'s vocoder (not a copy: 7.8 MB) -> OUT/variant."""
    from hf_slm.models.speech_llm import SpeechLLMForConditionalGeneration, SpeechLLMProcessor
    from hf_slm.pipelines import INDEX_FILE, SpeechLLMPipeline

    target = out / "variant"
    if (target / INDEX_FILE).is_file():
        return target
    from collections import Counter

    from transformers import GenerationConfig

    from hf_slm.data import read_wordnet_definitions, read_wordnet_lexicon
    from hf_slm.training import fit_word_lm

    processor = SpeechLLMProcessor.from_pretrained(out / "stage3")
    texts = _train_transcripts()
    counts = Counter(word for text in texts for word in text.split())
    processor.set_lexicon({word: counts[word] for word in read_wordnet_lexicon(texts=texts)})
    processor.set_word_lm(fit_word_lm(texts + read_wordnet_definitions(), vocabulary=processor.lexicon, **WORD_LM))
    model = SpeechLLMForConditionalGeneration.from_pretrained(out / "stage3").eval()
    kept = {k: v for k, v in model.generation_config.to_diff_dict().items() if k != "_from_model_config"}
    model.generation_config = GenerationConfig(**(kept | DECODING))  # a config "from the model" drops asr_* keys
    draft = out / "variant_draft"
    SpeechLLMPipeline(processor, model).save_pretrained(draft)
    index = json.loads((draft / INDEX_FILE).read_text())
    index["vocoder"] = {"library": "hf_slm", "class": "UnitMelVocoder", "repo": "default", "subfolder": "vocoder"}
    (draft / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    SpeechLLMPipeline.from_pretrained(draft).save_pretrained(target)  # the loader checks the vocoder's unit count
    return target


def export_encoder(out: Path) -> Path:
    """OUT/variant's audio encoder and its projector's CTC head (trained on in stages 1-2) as a CTC model with its
    character processor -> OUT/encoder_variant: what `config_encoder_robust.json` fine-tunes. Its vocabulary is read
    back from the projector's symbol table (blank -> `[PAD]`, the LM's word boundary -> `|`, no LM token -> `[UNK]`)."""
    from transformers import AutoModelForCTC

    from hf_slm.models.speech_llm import SpeechLLMForConditionalGeneration, SpeechLLMProcessor, symbol_token_ids
    from hf_slm.utils import atomic_save_directory

    target = out / "encoder_variant"
    if (target / "config.json").is_file():
        return target
    model = SpeechLLMForConditionalGeneration.from_pretrained(out / "variant" / "language_model")
    tokenizer = SpeechLLMProcessor.from_pretrained(out / "variant" / "processor").tokenizer
    projector = model.config.projector_config
    if projector.projector_type != "ctc_posterior":
        raise ValueError(f"{out / 'variant'}: only a ctc_posterior projector holds a CTC head, not {projector.projector_type!r}")
    boundary = symbol_token_ids(" ", tokenizer)
    vocab = {}
    for symbol, ids in enumerate(projector.ctc_symbol_token_ids):
        name = ("[PAD]" if symbol == projector.ctc_blank_id else "[UNK]" if not ids else "|" if ids == boundary
                else tokenizer.convert_ids_to_tokens(ids[0]))  # fmt: skip
        vocab[name] = symbol
    if len(vocab) != projector.ctc_vocab_size:
        raise ValueError(f"{out / 'variant'}: its CTC symbols do not map to {projector.ctc_vocab_size} distinct names")
    ctc = AutoModelForCTC.from_config(model.config.audio_config)
    ctc.base_model.load_state_dict(model.audio_tower.state_dict())
    ctc.lm_head.load_state_dict(model.projector.ctc_head.state_dict())

    def write(tmp):  # the features of the encoder's own architecture (log-mel for wav2vec2-bert, else waveform)
        vocabulary_processor(vocab, Path(tmp), model.config.audio_config.model_type).save_pretrained(tmp)
        ctc.save_pretrained(tmp)

    return atomic_save_directory(target, write)


def put_back_encoder(out: Path) -> Path:
    """OUT/variant with the encoder and CTC head of OUT/encoder_robust (the fine-tuned `encoder_variant`: same
    vocabulary, same architecture) in place of its own -> OUT/variant_robust. The LM and the symbol table are kept:
    the projector still reads a posterior over the same characters."""
    import shutil

    from transformers import AutoModelForCTC, AutoTokenizer

    from hf_slm.models.speech_llm import SpeechLLMForConditionalGeneration
    from hf_slm.utils import atomic_save_directory

    target, source = out / "variant_robust", out / "encoder_robust"
    if (target / "language_model" / "config.json").is_file():
        return target
    if not (source / "results.json").is_file():
        raise FileNotFoundError(f"{source}: no finished run (pretrain_encoder_ctc.py config_encoder_robust.json writes it)")
    if AutoTokenizer.from_pretrained(source).get_vocab() != AutoTokenizer.from_pretrained(out / "encoder_variant").get_vocab():
        raise ValueError(f"{source}: its CTC vocabulary is not the variant's ({out / 'encoder_variant'})")
    model = SpeechLLMForConditionalGeneration.from_pretrained(out / "variant" / "language_model")
    ctc = AutoModelForCTC.from_pretrained(source)
    model.audio_tower.load_state_dict(ctc.base_model.state_dict())
    model.projector.ctc_head.load_state_dict(ctc.lm_head.state_dict())

    def write(tmp):
        shutil.copytree(out / "variant", tmp, dirs_exist_ok=True)
        model.save_pretrained(Path(tmp) / "language_model")

    return atomic_save_directory(target, write)


#: The figures the ship step puts on the card, as make_default.sh writes them (`hf-slm evaluate asr` on held-out
#: espeak-ng speech, `speech-llm-tasks`, and `asr --real-speech librivox`, which older runs may lack).
EVAL_FILES = ("asr.json", "tasks.json", "asr_librivox.json")


def ship(out: Path) -> Path:
    """OUT/variant + its figures (`EVAL_FILES`) + the training results -> the embedded folder."""
    import shutil

    import hf_slm
    from hf_slm.pipelines import SpeechLLMPipeline
    from hf_slm.pipelines.model_card import collect_eval_results
    from hf_slm.utils import atomic_save_directory

    missing = [name for name in EVAL_FILES[:2] if not (out / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{out}: {missing} missing (make_default.sh writes them with `hf-slm evaluate`)")
    eval_results = collect_eval_results([out / name for name in EVAL_FILES if (out / name).is_file()])
    summary = {name: json.loads((out / folder / "results.json").read_text())
               for name, folder in (("encoder", "encoder_long"), ("stage1", "stage1"), ("stage2", "stage2"),
                                    ("stage3", "stage3"))}  # fmt: skip
    summary["encoder"] = {k: v for k, v in summary["encoder"].items() if k != "items"}
    for name in ("lm", *(phase for phase, _, _ in SPELL_PHASES)):
        summary[name] = json.loads((out / name / "lm_results.json").read_text())
    lexicon = out / "variant" / "processor" / "lexicon.txt"
    summary["decoding"] = DECODING | WORD_LM | {
        "lexicon_words": len(lexicon.read_text().splitlines()) if lexicon.is_file() else 0}
    target = Path(hf_slm.DEFAULT_SPEECH_LLM_PIPELINE)
    if (target / "eval_results.json").is_file():  # the release this one replaces: its figures go on the card
        summary["previous_release"] = json.loads((target / "eval_results.json").read_text())
    staging = out / "ship"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(out / "variant", staging)
    (staging / "eval_results.json").write_text(json.dumps(eval_results, indent=2) + "\n")
    (staging / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    pipe = SpeechLLMPipeline.from_pretrained(staging)
    (staging / "README.md").write_text(pipe.model_card(eval_results=eval_results, repo_id="speech-llm-default",
                                                              embedded=True))
    # swapped in whole (a kill here leaves the shipped variant as it was), without the modelling code that
    # save_pretrained wrote: the package serves it, as for every embedded variant (save_embedded_variant)
    copy = shutil.ignore_patterns("*.py", "__pycache__")
    return atomic_save_directory(target, lambda tmp: shutil.copytree(staging, tmp, dirs_exist_ok=True, ignore=copy))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    steps = {"lm": build_lm, "lm-chars": build_character_lm, "spell": build_spelled_lm, "data": build_data, "assemble": assemble,
             "export-encoder": export_encoder, "put-back-encoder": put_back_encoder, "ship": ship}
    if len(argv) != 2 or argv[0] not in steps:
        raise SystemExit(f"usage: make_default.py {{{','.join(steps)}}} OUT_FOLDER (got {argv!r})")
    print(steps[argv[0]](Path(argv[1])))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
