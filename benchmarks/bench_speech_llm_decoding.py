"""What each part of `speech-llm-default`'s transcription decoding costs and buys.

On espeak-ng speech (en-us, rate 175) of held-out `open-eval` sentences (seed 2: neither the report sentences nor
the ones the weights were chosen on), the same clips are transcribed in one process by:
  - greedy: the LM alone (transformers' greedy search);
  - beams: transformers' beam search (`num_beams`, no repeated 10-gram), the plain-library baseline;
  - + ctc: our `CTCPrefixScoreLogitsProcessor` (joint CTC / LM scores) inside that beam search;
  - + lexicon: + our `LexiconLogitsProcessor` (the variant's lexicon and unigram prior), no word LM;
  - shipped: + the look-ahead word trigram LM (`NgramLanguageModel`): the variant's defaults.
For each: WER / CER and CPU seconds per second of audio (one torch thread, batches of 8 clips), and the time
ratio to plain beam search. `--num-beams` defaults to the variant's `asr_num_beams`.

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
    for name, options in runs.items():
        start = time.process_time()
        hypotheses = pipe.transcribe(clips, sampling_rate=rate, **options)
        cpu = time.process_time() - start
        rows[name] = (error_rate(hypotheses, texts, unit="word")["wer"], error_rate(hypotheses, texts, unit="char")["cer"],
                      cpu / audio_seconds)  # fmt: skip
    print(f"{len(texts)} sentences, {audio_seconds:.0f} s of audio, {args.num_beams} beams, 1 thread")
    print(f"{'decoding':<10}{'WER':>8}{'CER':>8}{'CPU s / audio s':>18}{'x beams':>10}")
    for name, (wer, cer, rtf) in rows.items():
        print(f"{name:<10}{wer:>8.3f}{cer:>8.3f}{rtf:>18.3f}{rtf / rows['beams'][2]:>10.2f}")


if __name__ == "__main__":
    main()
