"""Speech recognisers for the evaluations: one interface, ``transcribe(waveform, sampling_rate) -> str``.

- `PocketSphinxASR`: offline English, its model ships in the pocketsphinx wheel (open or closed vocabulary).
- `TransformersASR`: any CTC / seq2seq model that ``transformers.pipeline("automatic-speech-recognition")`` loads
  (Wav2Vec2, HuBERT-CTC, Whisper, ...), from a local folder or the HF cache; nothing is downloaded unless the user
  is online and names a Hub id.

- `PipelineASR`: any loaded pipeline with ``transcribe(waveforms, sampling_rate) -> list[str]`` (the speech LLM's).

`load_asr("pocketsphinx" | MODEL)` picks one. Transcripts are lower case; scoring normalises punctuation anyway.
`evaluate_asr` scores one on espeak-ng speech of reference texts or on recordings of them, next to pocketsphinx
(``hf-slm evaluate asr``).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import weakref
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
            # every utterance's decoder reads these files: they live as long as the recogniser, and go with it
            # quietly (a TemporaryDirectory left to the garbage collector warns with a ResourceWarning)
            folder = Path(tempfile.mkdtemp(prefix="hf_slm_asr_"))
            weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
            (folder / "closed_vocabulary.arpa").write_text(_unigram_arpa(words), encoding="utf-8")
            (folder / "closed_vocabulary.dict").write_text("\n".join(entries) + "\n", encoding="utf-8")
            kwargs.update(lm=str(folder / "closed_vocabulary.arpa"), dict=str(folder / "closed_vocabulary.dict"))
        self._decoder_class, self._decoder_kwargs = Decoder, kwargs
        Decoder(**kwargs)  # a bad model or dictionary fails here, not at the first utterance
        scope = f"closed vocabulary, {len(self.vocabulary)} words" if self.vocabulary else "open vocabulary"
        self.name = f"pocketsphinx en-us ({scope})"

    def transcribe(self, waveform, sampling_rate: int) -> str:
        """Transcript (lower case, no punctuation) of one mono waveform.

        Each utterance gets a fresh decoder (~0.04 s): a reused one carries state from the utterances before it
        (not only its CMN estimate), which changed 4 of 30 transcripts of the same audio depending on what was
        decoded in between, so an original's WER depended on the resynthesis decoded before it."""
        pcm = (_mono_16k(waveform, sampling_rate) * 32767).astype(np.int16).tobytes()
        decoder = self._decoder_class(**self._decoder_kwargs)
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
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


class PipelineASR:
    """A loaded pipeline that transcribes speech, behind the `SpeechRecognizer` interface.

    The hook for any pipeline (the speech LLM's, for one): it needs a method
    ``transcribe(waveforms: list[np.ndarray], sampling_rate: int) -> list[str]`` taking a batch of mono float waveforms
    at one rate and returning one transcript per waveform, in order.
    """

    def __init__(self, pipeline, name: str | None = None, transcribe_kwargs: dict | None = None):
        if not callable(getattr(pipeline, "transcribe", None)):
            raise TypeError(f"{type(pipeline).__name__} has no `transcribe(waveforms, sampling_rate)` method, so it "
                            "cannot be evaluated as an ASR")  # fmt: skip
        if transcribe_kwargs is not None and not isinstance(transcribe_kwargs, dict):
            raise TypeError(f"transcribe_kwargs must be a dict, got {type(transcribe_kwargs).__name__}")
        self.pipeline = pipeline
        self.name = name or type(pipeline).__name__
        self.transcribe_kwargs = dict(transcribe_kwargs or {})

    def transcribe_batch(self, waveforms, sampling_rate: int) -> list[str]:
        """Transcripts (lower case) of a batch of mono waveforms."""
        waveforms = list(waveforms)
        texts = self.pipeline.transcribe(waveforms, sampling_rate, **self.transcribe_kwargs)
        if isinstance(texts, str) or len(texts) != len(waveforms):
            raise ValueError(f"{self.name}.transcribe returned {texts!r} for {len(waveforms)} waveforms; it must "
                             "return one string per waveform")  # fmt: skip
        return [str(text).strip().lower() for text in texts]

    def transcribe(self, waveform, sampling_rate: int) -> str:
        return self.transcribe_batch([waveform], sampling_rate)[0]


def load_asr_pipeline(spec, device: str = "cpu", transcribe_kwargs: dict | None = None) -> SpeechRecognizer:
    """What ``hf-slm evaluate asr --pipeline SPEC`` transcribes with.

    - ``"pocketsphinx"``: pocketsphinx's open-vocabulary English;
    - a pipeline variant (folder, Hub id or embedded name with ``pipeline_index.json``) whose class, named by the
      index's ``_class_name`` and found in `hf_slm.pipelines`, has ``transcribe(waveforms, sampling_rate)``:
      `PipelineASR`;
    - any other folder or Hub id: a transformers ASR model (a CTC model with its processor, or a seq2seq model):
      `TransformersASR`;
    - an object: a `SpeechRecognizer` as it is, else a pipeline with ``transcribe`` (`PipelineASR`).

    ``transcribe_kwargs`` go to a pipeline's ``transcribe`` (e.g. ``{"num_beams": 1, "ctc_weight": 0}``); other
    recognisers take none.
    """
    if transcribe_kwargs and (isinstance(spec, SpeechRecognizer) or str(spec) == "pocketsphinx"):
        raise ValueError(f"transcribe options {sorted(transcribe_kwargs)} are for pipelines with transcribe(); "
                         f"{spec!s:.60} takes none")  # fmt: skip
    if not isinstance(spec, (str, Path)):
        return spec if isinstance(spec, SpeechRecognizer) else PipelineASR(spec, transcribe_kwargs=transcribe_kwargs)
    if str(spec) == "pocketsphinx":
        return PocketSphinxASR()
    from ..pipelines.pipeline_utils import INDEX_FILE, embedded_pipeline_path

    folder = Path(embedded_pipeline_path(str(spec)) or spec).expanduser()
    if not (folder / INDEX_FILE).is_file():
        if transcribe_kwargs:
            raise ValueError(f"transcribe options {sorted(transcribe_kwargs)} are for pipeline variants; {spec!s} "
                             "is not one (no pipeline_index.json)")  # fmt: skip
        return TransformersASR(str(spec), device=device)
    import json

    from .. import pipelines

    class_name = json.loads((folder / INDEX_FILE).read_text(encoding="utf-8")).get("_class_name", "SpeechLMPipeline")
    pipeline_class = getattr(pipelines, class_name, None)
    if pipeline_class is None:
        raise ValueError(f"--pipeline {str(spec)!r}: its {INDEX_FILE} names the class {class_name!r}, which "
                         "hf_slm.pipelines does not have (a newer hf_slm?)")  # fmt: skip
    if not callable(getattr(pipeline_class, "transcribe", None)):
        raise ValueError(f"--pipeline {str(spec)!r} is a {class_name}, which has no transcribe(waveforms, "
                         "sampling_rate) method; give a pipeline that transcribes speech, a CTC / seq2seq ASR model "
                         "folder, or 'pocketsphinx'")  # fmt: skip
    return PipelineASR(pipeline_class.from_pretrained(str(folder)).to(device), name=f"{class_name} {spec}",
                       transcribe_kwargs=transcribe_kwargs)  # fmt: skip


BASELINE_VOCABULARIES = ("open", "closed")


def evaluate_asr(asr, texts, voice: str = "en-us", rate: int = 175, baselines=BASELINE_VOCABULARIES,
                 batch_size: int = 8, audio=None, show_progress: bool = False) -> dict:  # fmt: skip
    """WER / CER of an ASR on espeak-ng speech of ``texts`` (or on recordings of them), next to pocketsphinx on the
    same audio.

    Args:
        asr: anything `load_asr_pipeline` takes (a model folder, a pipeline, a `SpeechRecognizer`).
        texts: the reference sentences; without ``audio`` each is spoken with espeak-ng (``voice``, ``rate``).
        audio: recordings of ``texts`` instead (paths, or ``{"array", "sampling_rate"}`` dicts; any rate, mono or
            not), one per text: real speech. ``voice`` and ``rate`` are then recorded as None.
        baselines: pocketsphinx vocabularies for the reference figures: ``"open"`` (its full English LM) and / or
            ``"closed"`` (the words of ``texts`` only: an intelligibility probe, not a fair rival); ``()`` for none.
        batch_size: waveforms per call of a batch recogniser (`PipelineASR`).
        show_progress: progress bars (stderr) over the recogniser's and each baseline's transcripts.

    Returns a JSON-able dict: ``wer``, ``cer``, ``n``, ``asr``, ``voice``, ``rate``, ``items`` (one per text, in
    order: ``text``, ``hypothesis``, ``wer``, ``cer``, and ``pocketsphinx``: ``{vocabulary: transcript}``) and
    ``pocketsphinx``: ``{vocabulary: {"asr", "wer", "cer"}}``. Scores are corpus rates of `error_rate` (normalised
    text: lower case, no punctuation).
    """
    from ..data import make_synthesizer
    from .metrics.error_rate.error_rate import error_rate, normalize_transcript

    baselines = tuple(baselines or ())
    unknown = [b for b in baselines if b not in BASELINE_VOCABULARIES]
    if unknown:
        raise ValueError(f"baselines must be among {BASELINE_VOCABULARIES}, got {unknown}")
    texts = list(texts)
    if not texts:
        raise ValueError("evaluate_asr needs at least one reference text")
    if audio is not None and len(audio) != len(texts):
        raise ValueError(f"evaluate_asr got {len(audio)} audio items for {len(texts)} texts: give one per text")
    recognizer = load_asr_pipeline(asr)
    if audio is None:
        spoken = make_synthesizer(voice=voice, rate=rate).synthesize_many(texts)
        waveforms = [_mono_16k(speech.waveform, speech.sampling_rate) for speech in spoken]
    else:
        from ..models.unit_encoder import decode_audio

        waveforms = [_mono_16k(*decode_audio(item)) for item in audio]
        voice = rate = None  # not espeak-ng speech

    def scores(hypotheses):
        return {"wer": error_rate(hypotheses, texts, unit="word")["wer"],
                "cer": error_rate(hypotheses, texts, unit="char")["cer"]}  # fmt: skip

    from tqdm.auto import tqdm

    if hasattr(recognizer, "transcribe_batch"):
        hypotheses = []
        with tqdm(total=len(waveforms), desc=recognizer.name[:40], unit="utterance", disable=not show_progress) as bar:
            for start in range(0, len(waveforms), batch_size):
                hypotheses += recognizer.transcribe_batch(waveforms[start : start + batch_size], ASR_SAMPLING_RATE)
                bar.update(len(waveforms[start : start + batch_size]))
    else:
        hypotheses = [recognizer.transcribe(wave, ASR_SAMPLING_RATE)
                      for wave in tqdm(waveforms, desc=recognizer.name[:40], unit="utterance", disable=not show_progress)]  # fmt: skip
    items = [{"text": text, "hypothesis": hypothesis,
              "wer": error_rate([hypothesis], [text], unit="word")["wer"],
              "cer": error_rate([hypothesis], [text], unit="char")["cer"], "pocketsphinx": {}}
             for text, hypothesis in zip(texts, hypotheses, strict=True)]  # fmt: skip
    result = {**scores(hypotheses), "n": len(texts), "asr": recognizer.name, "voice": voice, "rate": rate,
              "pocketsphinx": {}}  # fmt: skip
    words = sorted({w for t in texts for w in normalize_transcript(t).split()})
    for vocabulary in baselines:
        sphinx = PocketSphinxASR(vocabulary=words if vocabulary == "closed" else None)
        sphinx_hypotheses = [sphinx.transcribe(wave, ASR_SAMPLING_RATE) for wave in
                             tqdm(waveforms, desc=f"pocketsphinx {vocabulary}", unit="utterance", disable=not show_progress)]  # fmt: skip
        for item, hypothesis in zip(items, sphinx_hypotheses):
            item["pocketsphinx"][vocabulary] = hypothesis
        result["pocketsphinx"][vocabulary] = {"asr": sphinx.name, **scores(sphinx_hypotheses)}
    result["items"] = items
    return result


def load_asr(spec: str | SpeechRecognizer = "pocketsphinx", vocabulary=None, device: str = "cpu") -> SpeechRecognizer:
    """``"pocketsphinx"`` (with a closed `vocabulary`), a transformers ASR folder / Hub id, or a recogniser."""
    if isinstance(spec, SpeechRecognizer):
        return spec
    if spec == "pocketsphinx":
        return PocketSphinxASR(vocabulary=vocabulary)
    if vocabulary is not None:
        raise ValueError("a closed vocabulary applies to pocketsphinx only; a transformers ASR uses its own decoder")
    return TransformersASR(spec, device=device)


__all__ = [
    "ASR_SAMPLING_RATE",
    "BASELINE_VOCABULARIES",
    "PipelineASR",
    "PocketSphinxASR",
    "SpeechRecognizer",
    "TransformersASR",
    "evaluate_asr",
    "load_asr",
    "load_asr_pipeline",
]
