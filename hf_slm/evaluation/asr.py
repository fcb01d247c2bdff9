"""Speech recognisers for the evaluations: one interface, ``transcribe(waveform, sampling_rate) -> str``.

- `PocketSphinxASR`: offline English, its model ships in the pocketsphinx wheel (open or closed vocabulary).
- `TransformersASR`: any CTC / seq2seq model that ``transformers.pipeline("automatic-speech-recognition")`` loads
  (Wav2Vec2, HuBERT-CTC, Whisper, ...), from a local folder or the HF cache; nothing is downloaded unless the user
  is online and names a Hub id.

`load_asr("pocketsphinx" | MODEL)` picks one. Transcripts are lower case; scoring normalises punctuation anyway.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

ASR_SAMPLING_RATE = 16000


@runtime_checkable
class SpeechRecognizer(Protocol):
    """What the evaluations need from an ASR: a `name` for the report and `transcribe`."""

    name: str

    def transcribe(self, waveform, sampling_rate: int) -> str: ...


def _mono_16k(waveform, sampling_rate: int) -> np.ndarray:
    """float32 mono at 16 kHz, scaled into [-1, 1] when it overshoots (vocoder output can)."""
    from ..models.unit_encoder import load_audio

    wave = load_audio({"array": np.asarray(waveform, dtype=np.float32), "sampling_rate": sampling_rate},
                      ASR_SAMPLING_RATE)  # fmt: skip
    peak = float(np.abs(wave).max())
    return wave / peak if peak > 1.0 else wave


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
        scope = f"closed vocabulary, {len(self.vocabulary)} words" if self.vocabulary else "open vocabulary"
        self.name = f"pocketsphinx en-us ({scope})"

    def transcribe(self, waveform, sampling_rate: int) -> str:
        """Transcript (lower case, no punctuation) of one mono waveform."""
        pcm = (_mono_16k(waveform, sampling_rate) * 32767).astype(np.int16).tobytes()
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


class TransformersASR:
    """A transformers ASR model (CTC or seq2seq) behind the `SpeechRecognizer` interface.

    Args:
        model: a local folder or a Hub id (found in the HF cache when offline) holding the model, its tokenizer and
            its feature extractor, as `save_pretrained` writes them.
        device: torch device for the model.
        chunk_length_s: split long audio into chunks of this many seconds (``transformers`` stitches them); ``None``
            transcribes each utterance whole.
    """

    def __init__(self, model: str, device: str | int = "cpu", chunk_length_s: float | None = None):
        from transformers import pipeline

        self.name = f"transformers {model}"
        try:
            self.pipe = pipeline("automatic-speech-recognition", model=str(model), device=device)
        except (OSError, ValueError, KeyError) as err:
            where = "local folder" if Path(str(model)).is_dir() else "Hub id (not in the local HF cache?)"
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"--asr {model!r}: this {where} is not an automatic-speech-recognition model that "
                             f"transformers can load (a CTC or seq2seq model with its tokenizer and feature "
                             f"extractor): {reason}") from err  # fmt: skip
        self.chunk_length_s = chunk_length_s

    def transcribe(self, waveform, sampling_rate: int) -> str:
        """Transcript (lower case) of one mono waveform."""
        inputs = {"raw": _mono_16k(waveform, sampling_rate), "sampling_rate": ASR_SAMPLING_RATE}
        kwargs = {"chunk_length_s": self.chunk_length_s} if self.chunk_length_s else {}
        return self.pipe(inputs, **kwargs)["text"].strip().lower()


def load_asr(spec: str | SpeechRecognizer = "pocketsphinx", vocabulary=None, device: str = "cpu") -> SpeechRecognizer:
    """``"pocketsphinx"`` (with a closed `vocabulary`), a transformers ASR folder / Hub id, or a recogniser."""
    if isinstance(spec, SpeechRecognizer):
        return spec
    if spec == "pocketsphinx":
        return PocketSphinxASR(vocabulary=vocabulary)
    if vocabulary is not None:
        raise ValueError("a closed vocabulary applies to pocketsphinx only; a transformers ASR uses its own decoder")
    return TransformersASR(spec, device=device)


__all__ = ["ASR_SAMPLING_RATE", "PocketSphinxASR", "SpeechRecognizer", "TransformersASR", "load_asr"]
