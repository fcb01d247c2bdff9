"""Resynthesis: how much of the speech the units keep (GSLM's information-loss measure).

audio -> units -> vocoder -> audio, then both the original and the resynthesised audio are transcribed with an
offline ASR (pocketsphinx, whose English model ships in its wheel, or a transformers ASR model the user has; see
`asr.py`) and scored against the reference text (WER, CER),
and the resynthesis is compared to the original by log-mel distance. The gap between `wer_resynthesized` and
`wer_original` is the information the units (and the vocoder) lose; `wer_original` is the ASR's own floor.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..models.unit_encoder import decode_audio
from .asr import PocketSphinxASR, SpeechRecognizer, load_asr
from .metrics.error_rate.error_rate import error_rate, normalize_transcript
from .metrics.mel_distance.mel_distance import mel_distance

_WORD = re.compile(r"[a-z']+")


def evaluate_resynthesis(pipeline, texts=None, audio=None, voice: str = "en-us", rate: int = 175,
                         vocabulary: str | None = None, asr: str | SpeechRecognizer = "pocketsphinx",
                         dnsmos: bool = False, batch_size: int = 8, output_dir=None,
                         show_progress: bool = False) -> dict:  # fmt: skip
    """WER / CER of the original and the resynthesised audio, and their mel distance.

    Args:
        pipeline: a `SpeechLMPipeline` with a speech tokenizer and a vocoder.
        texts: reference transcripts; without `audio` each is synthesised with espeak-ng (`voice`, `rate`).
        audio: real recordings (paths or ``{"array", "sampling_rate"}`` dicts), one per text.
        vocabulary: pocketsphinx only: ``"closed"`` (the default; the ASR is restricted to the words of `texts`) or
            ``"open"`` (pocketsphinx's full LM).
        asr: ``"pocketsphinx"``, a transformers ASR model (folder or Hub id, see `TransformersASR`), or any object
            with ``name`` and ``transcribe(waveform, sampling_rate)``.
        dnsmos: also score both with DNSMOS (OVRL, a reference-free quality score, not naturalness; needs speechmos).
        output_dir: if given, the original and resynthesised wavs are written there (``000_original.wav``, ...).
        show_progress: a progress bar over the utterances (stderr).

    Returns a JSON-able dict: ``wer_original``, ``wer_resynthesized``, ``cer_original``, ``cer_resynthesized``,
    ``mel_distance`` (mean, log-mel L1), ``n``, ``asr``, and ``items`` (text, both transcripts, mel distance); with
    `dnsmos`, ``dnsmos_ovrl_original`` and ``dnsmos_ovrl_resynthesized`` (means, and per item).
    """
    if vocabulary not in (None, "closed", "open"):
        raise ValueError(f"vocabulary must be 'closed' or 'open', got {vocabulary!r}")
    if vocabulary is not None and asr != "pocketsphinx":
        name = getattr(asr, "name", asr)
        raise ValueError(f"vocabulary ('closed' / 'open') applies to pocketsphinx only, not to the ASR {name!r}")
    texts = list(texts or [])
    if not texts:
        raise ValueError("resynthesis needs reference texts (one per utterance)")
    if audio is None:
        from ..data import make_synthesizer

        spoken = make_synthesizer(voice=voice, rate=rate).synthesize_many(texts)
        audio = [{"array": speech.waveform, "sampling_rate": speech.sampling_rate} for speech in spoken]
    elif len(audio) != len(texts):
        raise ValueError(f"got {len(audio)} audio items for {len(texts)} texts")
    pipeline.require_decoder("resynthesis")
    words = sorted({w for t in texts for w in _WORD.findall(normalize_transcript(t))})
    if asr == "pocketsphinx":
        asr = PocketSphinxASR(vocabulary=None if vocabulary == "open" else words)
    else:
        asr = load_asr(asr)
    if dnsmos:
        from .metrics.dnsmos.dnsmos import dnsmos as dnsmos_scores
    originals = [decode_audio(a) for a in audio]
    from tqdm.auto import tqdm

    hyp_original, hyp_resynth, distances, items = [], [], [], []
    bar = tqdm(total=len(originals), desc="resynthesis", unit="utterance", disable=not show_progress)
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
            if dnsmos:
                items[-1]["dnsmos_ovrl_original"] = dnsmos_scores(wave, sr)["ovrl"]
                items[-1]["dnsmos_ovrl_resynthesized"] = dnsmos_scores(resynth, out.sampling_rate)["ovrl"]
            if output_dir is not None:
                from ..data.builder import write_wav

                write_wav(Path(output_dir) / f"{index:03d}_original.wav", wave, sr)
                write_wav(Path(output_dir) / f"{index:03d}_resynthesized.wav", resynth, out.sampling_rate)
            bar.update()
    bar.close()
    result = {
        "wer_original": error_rate(hyp_original, texts, unit="word")["wer"],
        "wer_resynthesized": error_rate(hyp_resynth, texts, unit="word")["wer"],
        "cer_original": error_rate(hyp_original, texts, unit="char")["cer"],
        "cer_resynthesized": error_rate(hyp_resynth, texts, unit="char")["cer"],
        "mel_distance": float(np.mean(distances)),
        "n": len(texts),
        "asr": asr.name,
        "items": items,
    }
    if dnsmos:
        for key in ("dnsmos_ovrl_original", "dnsmos_ovrl_resynthesized"):
            result[key] = float(np.mean([item[key] for item in items]))
    return result


__all__ = ["evaluate_resynthesis"]
