"""Resynthesis: how much of the speech the units keep (GSLM's information-loss measure).

audio -> units -> vocoder -> audio, then both the original and the resynthesised audio are transcribed with an
offline ASR (pocketsphinx, whose English model ships in its wheel) and scored against the reference text (WER, CER),
and the resynthesis is compared to the original by log-mel distance. The gap between `wer_resynthesized` and
`wer_original` is the information the units (and the vocoder) lose; `wer_original` is the ASR's own floor.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchaudio

from .metrics.error_rate.error_rate import error_rate, normalize_transcript
from .metrics.mel_distance.mel_distance import mel_distance

ASR_SAMPLING_RATE = 16000
_WORD = re.compile(r"[a-z']+")


class PocketSphinxASR:
    """Offline English ASR with pocketsphinx (``pip install pocketsphinx``; model included in the wheel).

    Args:
        vocabulary: ``None`` for pocketsphinx's open-vocabulary English LM, or a list of words for a closed-vocabulary
            recogniser (a uniform unigram LM over those words). Open-vocabulary pocketsphinx is weak on synthetic
            voices; the closed vocabulary of the evaluated texts makes it usable as an intelligibility probe (measured
            on espeak-ng en-us: see docs/evaluation.md). Words missing from its pronouncing dictionary are dropped.
    """

    def __init__(self, vocabulary=None):
        try:
            from pocketsphinx import Decoder, get_model_path
        except ImportError as err:
            raise ImportError("the resynthesis WER needs pocketsphinx: `pip install pocketsphinx`") from err
        kwargs = {"samprate": ASR_SAMPLING_RATE, "loglevel": "FATAL"}
        self.vocabulary = None
        self._tmp = None
        if vocabulary is not None:
            wanted = {w.lower() for w in vocabulary}
            dictionary = Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
            # entries of the wanted words, alternative pronunciations ("word(2)") included
            entries = [line for line in dictionary.read_text(encoding="utf-8").splitlines()
                       if line and line.split(" ", 1)[0].split("(", 1)[0] in wanted]  # fmt: skip
            words = sorted({line.split(" ", 1)[0].split("(", 1)[0] for line in entries})
            if not words:
                raise ValueError("none of the vocabulary words is in pocketsphinx's English dictionary")
            self.vocabulary = words
            self._tmp = tempfile.TemporaryDirectory(prefix="hf_slm_asr_")
            folder = Path(self._tmp.name)
            (folder / "closed_vocabulary.arpa").write_text(_unigram_arpa(words), encoding="utf-8")
            (folder / "closed_vocabulary.dict").write_text("\n".join(entries) + "\n", encoding="utf-8")
            kwargs.update(lm=str(folder / "closed_vocabulary.arpa"), dict=str(folder / "closed_vocabulary.dict"))
        self.decoder = Decoder(**kwargs)

    def transcribe(self, waveform, sampling_rate: int) -> str:
        """Transcript (lower case, no punctuation) of one mono waveform."""
        wave = torch.as_tensor(np.asarray(waveform, dtype=np.float32)).reshape(-1)
        if sampling_rate != ASR_SAMPLING_RATE:
            wave = torchaudio.functional.resample(wave, int(sampling_rate), ASR_SAMPLING_RATE)
        peak = float(wave.abs().max()) if wave.numel() else 0.0
        if peak > 1.0:  # ASR input is 16-bit PCM; vocoder output can overshoot
            wave = wave / peak
        pcm = (wave.numpy() * 32767).astype(np.int16).tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""


def _unigram_arpa(words: list[str]) -> str:
    logp = math.log10(1.0 / len(words))
    lines = ["\\data\\", f"ngram 1={len(words) + 2}", "", "\\1-grams:", "-99 <s>", f"{logp:.4f} </s>"]
    lines += [f"{logp:.4f} {word}" for word in words]
    return "\n".join(lines + ["", "\\end\\", ""])


def read_audio_dir(directory) -> tuple[list[str], list[str]]:
    """`(wav paths, transcripts)` of a folder holding ``x.wav`` + ``x.txt`` pairs (sorted by name)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"audio folder {str(directory)!r} does not exist")
    wavs = sorted(directory.glob("*.wav"))
    if not wavs:
        raise ValueError(f"audio folder {str(directory)!r} holds no .wav files")
    missing = [w.name for w in wavs if not w.with_suffix(".txt").is_file()]
    if missing:
        raise FileNotFoundError(f"{directory}: no transcript (.txt next to the .wav) for {missing[:5]}")
    texts = [w.with_suffix(".txt").read_text(encoding="utf-8").strip() for w in wavs]
    return [str(w) for w in wavs], texts


def _load(item) -> tuple[np.ndarray, int]:
    if isinstance(item, dict):
        return np.asarray(item["array"], dtype=np.float32), int(item["sampling_rate"])
    import soundfile as sf

    data, rate = sf.read(str(item), dtype="float32", always_2d=True)
    return data.mean(1), int(rate)


def evaluate_resynthesis(pipeline, texts=None, audio=None, voice: str = "en-us", rate: int = 175,
                         vocabulary: str = "closed", batch_size: int = 8, output_dir=None) -> dict:  # fmt: skip
    """WER / CER of the original and the resynthesised audio, and their mel distance.

    Args:
        pipeline: a `SpeechLMPipeline` with a speech tokenizer and a vocoder.
        texts: reference transcripts; without `audio` each is synthesised with espeak-ng (`voice`, `rate`).
        audio: real recordings (paths or ``{"array", "sampling_rate"}`` dicts), one per text.
        vocabulary: ``"closed"`` (ASR restricted to the words of `texts`) or ``"open"`` (pocketsphinx's full LM).
        output_dir: if given, the original and resynthesised wavs are written there (``000_original.wav``, ...).

    Returns a JSON-able dict: ``wer_original``, ``wer_resynthesized``, ``cer_original``, ``cer_resynthesized``,
    ``mel_distance`` (mean, log-mel L1), ``n``, ``asr``, and ``items`` (text, both transcripts, mel distance).
    """
    if vocabulary not in ("closed", "open"):
        raise ValueError(f"vocabulary must be 'closed' or 'open', got {vocabulary!r}")
    texts = list(texts or [])
    if not texts:
        raise ValueError("resynthesis needs reference texts (one per utterance)")
    if audio is None:
        from ..data import EspeakSynthesizer

        synthesizer = EspeakSynthesizer(voice=voice, rate=rate)
        audio = []
        for text in texts:
            speech = synthesizer.synthesize(text)
            audio.append({"array": speech.waveform, "sampling_rate": speech.sampling_rate})
    elif len(audio) != len(texts):
        raise ValueError(f"got {len(audio)} audio items for {len(texts)} texts")
    pipeline._require("vocoder", "resynthesis")
    words = sorted({w for t in texts for w in _WORD.findall(normalize_transcript(t))})
    asr = PocketSphinxASR(vocabulary=words if vocabulary == "closed" else None)
    originals = [_load(a) for a in audio]
    hyp_original, hyp_resynth, distances, items = [], [], [], []
    for start in range(0, len(originals), batch_size):
        chunk = originals[start : start + batch_size]
        out = pipeline.resynthesize([{"array": w, "sampling_rate": r} for w, r in chunk])
        for k, ((wave, sr), resynth) in enumerate(zip(chunk, out.waveforms)):
            index = start + k
            hyp_original.append(asr.transcribe(wave, sr))
            hyp_resynth.append(asr.transcribe(resynth, out.sampling_rate))
            distances.append(mel_distance(resynth, wave, sampling_rate=sr, prediction_sampling_rate=out.sampling_rate))
            items.append({"text": texts[index], "asr_original": hyp_original[-1], "asr_resynthesized": hyp_resynth[-1],
                          "mel_distance": distances[-1], "num_units": int(len(out.units[k]))})  # fmt: skip
            if output_dir is not None:
                from ..data.builder import write_wav

                write_wav(Path(output_dir) / f"{index:03d}_original.wav", wave, sr)
                write_wav(Path(output_dir) / f"{index:03d}_resynthesized.wav", resynth, out.sampling_rate)
    return {
        "wer_original": error_rate(hyp_original, texts, unit="word")["wer"],
        "wer_resynthesized": error_rate(hyp_resynth, texts, unit="word")["wer"],
        "cer_original": error_rate(hyp_original, texts, unit="char")["cer"],
        "cer_resynthesized": error_rate(hyp_resynth, texts, unit="char")["cer"],
        "mel_distance": float(np.mean(distances)),
        "n": len(texts),
        "asr": f"pocketsphinx en-us ({vocabulary} vocabulary" + (f", {len(asr.vocabulary)} words)" if asr.vocabulary else ")"),
        "items": items,
    }


__all__ = ["PocketSphinxASR", "evaluate_resynthesis", "read_audio_dir"]
