"""What each part of `speech-llm-default`'s transcription decoding costs and buys.

On espeak-ng speech (en-us, rate 175) of held-out `open-eval` sentences (seed 2: neither the report sentences nor
the ones the weights were chosen on), the same clips are transcribed in one process by:
  - greedy: the LM alone (transformers' greedy search);
  - generate: `model.generate(**processor_inputs)` with those beams, the plain-library baseline: the audio encoder
    runs inside beam search, on every beam's copy of the prompt;
  - beams: the same beam search through `transcribe`, whose `embed_prompt` encodes each clip once (the same
    transcripts, checked);
  - + ctc: our `CTCPrefixScoreLogitsProcessor` (joint CTC / LM scores) inside that beam search;
  - + lexicon: + our `LexiconLogitsProcessor` (the variant's lexicon and unigram prior), no word LM;
  - shipped: + the look-ahead word trigram LM (`NgramLanguageModel`): the variant's defaults.
For each: WER / CER and CPU seconds per second of audio (one torch thread, batches of 8 clips), and the time
ratio to the plain `generate`. Absolute times vary by ~30 % between runs on the shared VM; ratios within a run hold. `--num-beams` defaults to the variant's `asr_num_beams`.

    python benchmarks/bench_speech_llm_decoding.py --sentences 24
"""

from __future__ import annotations

import argparse
import time

import torch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=24)
    parser.add_argument("--num-beams", type=int, default=None)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    from hf_slm.data import EspeakSynthesizer, load_text_corpus
    from hf_slm.evaluation.metrics.error_rate.error_rate import error_rate
    from hf_slm.pipelines import SpeechLLMPipeline

    pipe = SpeechLLMPipeline.from_pretrained("speech-llm-default")
    args.num_beams = args.num_beams or pipe.language_model.generation_config.asr_num_beams
    texts = load_text_corpus("open-eval", limit=args.sentences, seed=2)
    synth = EspeakSynthesizer(voice="en-us", rate=175)
    speech = [synth.synthesize(text) for text in texts]
    clips = [s.waveform for s in speech]
    audio_seconds = sum(len(s.waveform) / s.sampling_rate for s in speech)
    rate = speech[0].sampling_rate
    runs = {
        "greedy": {"num_beams": 1, "no_repeat_ngram_size": 0, "ctc_weight": 0, "use_lexicon": False},
        "beams": {"num_beams": args.num_beams, "ctc_weight": 0, "use_lexicon": False},
        "+ ctc": {"num_beams": args.num_beams, "use_lexicon": False},
        "+ lexicon": {"num_beams": args.num_beams, "word_lm_weight": 0},
        "shipped": {"num_beams": args.num_beams},
    }
    pipe.transcribe(clips[:1], sampling_rate=rate)  # builds the lexicon's prefix set once, outside the timing
    rows = {}
    start = time.process_time()
    plain = plain_generate(pipe, clips, rate, args.num_beams)
    cpu = time.process_time() - start
    rows["generate"] = (error_rate(plain, texts, unit="word")["wer"], error_rate(plain, texts, unit="char")["cer"],
                        cpu / audio_seconds)  # fmt: skip
    for name, options in runs.items():
        start = time.process_time()
        hypotheses = pipe.transcribe(clips, sampling_rate=rate, **options)
        cpu = time.process_time() - start
        rows[name] = (error_rate(hypotheses, texts, unit="word")["wer"], error_rate(hypotheses, texts, unit="char")["cer"],
                      cpu / audio_seconds)  # fmt: skip
        if name == "beams":
            print(f"transcribe's beams give the plain generate's transcripts: {hypotheses == plain}")
    print(f"{len(texts)} sentences, {audio_seconds:.0f} s of audio, {args.num_beams} beams, 1 thread")
    print(f"{'decoding':<10}{'WER':>8}{'CER':>8}{'CPU s / audio s':>18}{'x generate':>12}")
    for name, (wer, cer, rtf) in rows.items():
        print(f"{name:<10}{wer:>8.3f}{cer:>8.3f}{rtf:>18.3f}{rtf / rows['generate'][2]:>12.2f}")


def plain_generate(pipe, clips, rate, num_beams: int, batch_size: int = 8) -> list[str]:
    """`transcribe`'s prompts and answer lengths, decoded by a plain `model.generate(**inputs)` (no logits
    processors of ours)."""
    import math

    from hf_slm.pipelines.speech_llm_pipeline import ASR_PROMPT

    import torchaudio

    model, texts = pipe.language_model, []
    target = pipe.processor.feature_extractor.sampling_rate
    clips = [torchaudio.functional.resample(torch.from_numpy(clip), rate, target).numpy() for clip in clips]
    for start in range(0, len(clips), batch_size):
        conversations = [[{"role": "user", "content": [{"type": "audio", "audio": clip},
                                                       {"type": "text", "text": ASR_PROMPT}]}]
                         for clip in clips[start : start + batch_size]]  # fmt: skip
        inputs = pipe.processor.apply_chat_template(conversations, add_generation_prompt=True, padding_side="left")
        limits = [math.ceil(n) + 4 for n in (inputs["input_ids"] == pipe.processor.audio_token_id).sum(-1).tolist()]
        with torch.no_grad():
            sequences = model.generate(**inputs, max_new_tokens=min(256, max(limits)), num_beams=num_beams,
                                       do_sample=False)  # fmt: skip
        prompt = inputs["input_ids"].shape[1]
        texts += [pipe.processor.tokenizer.decode(row[prompt : prompt + min(256, limit)], skip_special_tokens=True)
                  .strip() for row, limit in zip(sequences, limits)]  # fmt: skip
    return texts


if __name__ == "__main__":
    main()
