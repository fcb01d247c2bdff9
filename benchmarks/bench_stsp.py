"""STSP of a tiny SpiRit-LM Expressive pipeline trained for a couple of CPU minutes, next to the random baseline.

Steps (one process, `torch.set_num_threads(1)`):
  1. the sentiment prompt set (`hf_slm.data.build_sentiment_prompts`, `--per-class` sentences per sentiment, espeak-ng
     prosody by sentiment, 4 voices), split 70 / 30 into classifier-training and held-out prompts;
  2. the speech classifier (prosody statistics) and the text classifier (bag of words): accuracy on held-out prompts;
  3. MFCC k-means units (50), the expressive encoder (32 pitch tokens at 12.5 Hz, 8 style tokens at 1 Hz) and a
     word-level text tokenizer, fitted on the training prompts;
     Token probes on the held-out prompts: the pitch VQ's F0 error (median |cents| on frames voiced in both the
     tracker's contour and the decoded one) and the sentiment accuracy of a logistic regression on token histograms
     (pitch + style tokens vs units alone): how much sentiment prosody the LM's input stream carries;
  4. a 2-layer Llama (width 64) trained by the HF `Trainer` (`CausalLMCollator`) on the interleaved sequences of the
     training prompts (speech, text, text->speech, speech->text; `expressive_sequences`) for `--train-minutes`;
  5. an UNTRAINED tiny HiFi-GAN conditioned on F0 (from pitch tokens) and style tokens: speech continuations are
     vocoded by it, so speech-output STSP measures the chain with a random vocoder (expected near chance);
  6. STSP of the held-out prompts in the three directions (`hf_slm.evaluation.stsp.evaluate_stsp`).

    python benchmarks/bench_stsp.py --per-class 40 --train-minutes 2 --output /tmp/issue-17-expressive/stsp.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def token_probes(encoder, units_encoder, fe, train, held_out, seed) -> dict:
    from hf_slm.evaluation.stsp import SentimentClassifier

    def histograms(prompts):
        rows, cents = [], []
        for p in prompts:
            wave = torch.from_numpy(p.waveform)
            tokens = encoder.encode([wave])
            pitch, style = tokens["pitch"][0], tokens["style"][0]
            inputs = fe(p.waveform, sampling_rate=16000, return_tensors="pt")
            units = units_encoder.encode(inputs["input_values"], inputs["attention_mask"]).unpadded()[0]
            rows.append(torch.cat([
                torch.bincount(pitch, minlength=encoder.config.num_pitch_tokens) / len(pitch),
                torch.bincount(style, minlength=encoder.config.num_style_tokens) / len(style),
                torch.bincount(units, minlength=units_encoder.config.num_units) / len(units),
            ]))  # fmt: skip
            f0 = encoder.frame_f0(wave)
            decoded = encoder.pitch_to_f0(pitch)[: len(f0)]
            both = (f0 > 0) & (decoded > 0)
            cents.append((1200 * torch.log2(decoded[both] / f0[both])).abs())
        return torch.stack(rows), torch.cat(cents)

    x_train, _ = histograms(train)
    x_test, cents = histograms(held_out)
    y_train, y_test = torch.tensor([p.label for p in train]), torch.tensor([p.label for p in held_out])
    expressive = encoder.config.num_pitch_tokens + encoder.config.num_style_tokens

    def accuracy(columns):
        clf = SentimentClassifier(seed=seed).fit(x_train[:, columns], y_train)
        return float((clf.predict(x_test[:, columns]) == y_test).float().mean())

    return {
        "pitch_vq_median_abs_cents": float(cents.median()),
        "sentiment_from_pitch_style_tokens": accuracy(slice(0, expressive)),
        "sentiment_from_units": accuracy(slice(expressive, None)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--train-minutes", type=float, default=2.0)
    parser.add_argument("--max-new-tokens", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, PreTrainedTokenizerFast, Trainer, TrainingArguments

    from hf_slm.data.sentiment import build_sentiment_prompts
    from hf_slm.evaluation.stsp import evaluate_stsp, format_stsp_table, split_prompts, train_classifiers
    from hf_slm.models.speech_lm import ExpressiveEncoderConfig, ExpressiveEncoderModel, SpeechLMConfig, SpeechLMForCausalLM
    from hf_slm.models.unit_encoder import SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel
    from hf_slm.models.unit_vocoder import UnitHifiGanVocoder, UnitHifiGanVocoderConfig
    from hf_slm.pipelines import ExpressiveSpeechLMPipeline
    from hf_slm.training import CausalLMCollator, WallClockLimit
    from hf_slm.training.expressive import expressive_sequences, fit_expressive_encoder
    from hf_slm.training.kmeans import fit_unit_tokenizer

    started = time.time()
    prompts = build_sentiment_prompts(args.per_class, seed=args.seed)
    train, held_out = split_prompts(prompts, 0.7, seed=args.seed)
    speech_clf, text_clf, accuracy = train_classifiers(train, held_out, seed=args.seed)
    print("classifiers", accuracy, f"{time.time() - started:.0f}s", flush=True)

    fe = SpeechFeatureExtractor()
    units_encoder = UnitEncoderModel(UnitEncoderConfig(num_units=50)).eval()
    features = []
    for p in train:
        inputs = fe(p.waveform, sampling_rate=16000, return_tensors="pt")
        feats, mask = units_encoder.extract_features(inputs["input_values"], inputs["attention_mask"])
        features.append(feats[mask])
    fit_unit_tokenizer(units_encoder, torch.cat(features), seed=args.seed, show_progress=False, max_steps=100)
    encoder = ExpressiveEncoderModel(ExpressiveEncoderConfig(num_pitch_tokens=32, num_style_tokens=8))
    fit_expressive_encoder(encoder, [torch.from_numpy(p.waveform) for p in train], seed=args.seed)
    probes = token_probes(encoder, units_encoder, fe, train, held_out, args.seed)
    print("token probes", probes, flush=True)
    words = sorted({w for p in prompts for w in p.text.replace(",", " ").replace(".", " ").split()})
    word_model = models.WordLevel(vocab={"<unk>": 0, **{w: i + 1 for i, w in enumerate(words)}}, unk_token="<unk>")
    tok = Tokenizer(word_model)
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")

    torch.manual_seed(args.seed)
    backbone = LlamaConfig(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=4, max_position_embeddings=1024)  # fmt: skip
    lm = SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, text_vocab_size=len(tokenizer), num_units=50,
                                            num_pitch_tokens=32, num_style_tokens=8))  # fmt: skip
    vocoder = UnitHifiGanVocoder(UnitHifiGanVocoderConfig(
        num_units=50, embedding_dim=32, upsample_rates=(10, 8, 4), upsample_kernel_sizes=(20, 16, 8),
        upsample_initial_channel=64, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),), use_f0=True,
        f0_embedding_dim=16, f0_normalize=False, num_styles=8, style_embedding_dim=16,
    )).eval()  # fmt: skip
    pipe = ExpressiveSpeechLMPipeline(feature_extractor=fe, speech_tokenizer=units_encoder, expressive_encoder=encoder,
                                      language_model=lm, vocoder=vocoder, tokenizer=tokenizer)  # fmt: skip
    items = pipe.encode_expressive([p.waveform for p in train], sampling_rate=16000)
    sequences = expressive_sequences(pipe.processor, [i["units"] for i in items], [i["pitch"] for i in items],
                                     [i["style"] for i in items], texts=[p.text for p in train])  # fmt: skip
    out_dir = Path(args.output).parent
    training_args = TrainingArguments(
        output_dir=str(out_dir / "lm"), max_steps=100000, per_device_train_batch_size=8, learning_rate=2e-3,
        warmup_steps=20, report_to=[], save_strategy="no", logging_steps=25, use_cpu=True, disable_tqdm=True,
        seed=args.seed,
    )  # fmt: skip
    trainer = Trainer(model=lm, args=training_args, train_dataset=[{"input_ids": s} for s in sequences],
                      data_collator=CausalLMCollator(pad_token_id=pipe.processor.layout.pad_token_id),
                      callbacks=[WallClockLimit(args.train_minutes, save=False)])  # fmt: skip
    result = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    lm.eval()
    print(f"trained {result.global_step} steps, loss {losses[0]:.2f} -> {losses[-1]:.2f}", flush=True)

    scores = evaluate_stsp(pipe, held_out, speech_clf, text_clf, max_new_tokens=args.max_new_tokens, min_new_tokens=25,
                  seed=args.seed)  # fmt: skip
    print(format_stsp_table(scores, accuracy))
    report = {"stsp": scores, **accuracy, "token_probes": probes, "train_prompts": len(train), "held_out_prompts": len(held_out),
              "lm_steps": result.global_step, "lm_loss_first_last": [losses[0], losses[-1]],
              "lm_parameters": sum(p.numel() for p in lm.parameters()), "sequences": len(sequences),
              "seconds": round(time.time() - started)}  # fmt: skip
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output} in {report['seconds']} s")


if __name__ == "__main__":
    main()
