"""Does an acoustic variant keep the prompt's voice? Speaker similarity of continuations and of zero-shot TTS, the TTS
output's intelligibility next to espeak-ng's own, and the codec's reconstruction quality.

- `evaluate_continuation_voice`: each prompt is the first ``prompt_seconds`` of an utterance; every pipeline continues
  it by ``new_seconds`` and the Resemblyzer embedding of the *new* audio only is compared with the prompt's (cosine).
  Two references frame the numbers: the rest of the same utterance (same voice: the ceiling) and the rest of another
  prompt's utterance (another voice: the floor).
- `evaluate_tts_voice`: each prompt (audio + transcript) is followed by another text; the TTS output is transcribed by
  pocketsphinx (closed vocabulary of the texts) and compared with the prompt's voice, next to espeak-ng's rendering
  of the same text in the prompt's own voice, rate and pitch.
- `evaluate_codec_quality`: resynthesis through the codec: bitrate, log-mel distance, STOI and speaker similarity.
- `text_conditioning`: does a VALL-E AR model read its phonemes? Its held-out loss with each utterance's own phonemes
  against another utterance's (a model that ignores the text scores both alike).
"""

from __future__ import annotations

import re

import numpy as np
from tqdm.auto import tqdm

from ..models.unit_encoder import decode_audio
from .metrics.error_rate.error_rate import error_rate, normalize_transcript
from .metrics.mel_distance.mel_distance import mel_distance
from .metrics.speaker_similarity.speaker_similarity import speaker_embedding
from .metrics.stoi.stoi import stoi

_WORD = re.compile(r"[a-z']+")


def _cosine(anchor: np.ndarray, waveform, sampling_rate: int) -> float:
    """Cosine of ``anchor`` with the waveform's speaker embedding; NaN where Resemblyzer's VAD finds no speech."""
    try:
        embedding = speaker_embedding(np.asarray(waveform, dtype=np.float32), int(sampling_rate))
    except ValueError:
        return float("nan")
    return float(embedding @ anchor / (np.linalg.norm(embedding) * np.linalg.norm(anchor)))


def _summary(values) -> dict:
    kept = [v for v in values if not np.isnan(v)]
    return {"speaker_similarity": float(np.mean(kept)) if kept else float("nan"),
            "std": float(np.std(kept)) if kept else float("nan"), "n": len(kept), "per_item": values}  # fmt: skip


def continuation_frame_rate(pipeline) -> float:
    """Tokens per second that ``continue_speech(max_new_tokens=...)`` counts: an AudioLM variant's semantic units, a
    `SpeechLMPipeline`'s units or codec frames."""
    owner = getattr(pipeline, "unit_encoder", None) or pipeline.speech_tokenizer
    return float(owner.config.frame_rate)


def continue_new_audio(pipeline, prompt: np.ndarray, sampling_rate: int, new_seconds: float, temperature: float,
                       seed: int) -> tuple[np.ndarray, int]:  # fmt: skip
    """``new_seconds`` of continuation after ``prompt``: the generated part of the waveform only (prompt cut off)."""
    tokens = max(1, round(new_seconds * continuation_frame_rate(pipeline)))
    out = pipeline.continue_speech({"array": prompt, "sampling_rate": sampling_rate}, max_new_tokens=tokens,
                                   min_new_tokens=tokens, temperature=temperature, seed=seed)  # fmt: skip
    waveform = np.asarray(out.waveforms[0], dtype=np.float32)
    new = getattr(out, "codes", None)  # AudioLM: codec frames of the continuation; otherwise its units / codes
    frames, rate = (new[0].shape[-1], pipeline.codec.config.frame_rate) if new else (out.units[0].shape[-1], None)
    rate = rate or continuation_frame_rate(pipeline)
    samples = min(len(waveform), round(frames / rate * out.sampling_rate))
    return waveform[len(waveform) - samples :], out.sampling_rate


def evaluate_continuation_voice(pipelines: dict, audio, prompt_seconds: float = 3.0, new_seconds: float = 2.0,
                                temperature: float = 0.8, seed: int = 0, show_progress: bool = False) -> dict:  # fmt: skip
    """Speaker similarity between each prompt and each pipeline's continuation of it (``show_progress``: a bar per
    pipeline).

    Args:
        pipelines: ``{name: pipeline}``, each with ``continue_speech`` (a `SpeechLMPipeline` or `AudioLMPipeline`).
        audio: utterances (paths or ``{"array", "sampling_rate"}`` dicts) longer than ``prompt_seconds`` (+ 0.5 s of
            true continuation for the references); shorter ones are refused by name.
        prompt_seconds, new_seconds: prompt length and continuation length (seconds).

    Returns ``{"systems": {name: summary}, "references": {"same_voice": ..., "other_voice": ...}, ...}``; each summary
    holds the mean ``speaker_similarity``, its ``std``, ``n`` (items where Resemblyzer found speech) and ``per_item``.
    """
    if not pipelines:
        raise ValueError("evaluate_continuation_voice needs at least one pipeline")
    items = [decode_audio(a) for a in audio]
    if len(items) < 2:
        raise ValueError(f"evaluate_continuation_voice needs at least 2 utterances (one is another's floor), got {len(items)}")
    short = [i for i, (w, sr) in enumerate(items) if len(w) < (prompt_seconds + 0.5) * sr]
    if short:
        raise ValueError(f"utterances {short} are shorter than prompt_seconds + 0.5 = {prompt_seconds + 0.5} s")
    prompts = [(w[: round(prompt_seconds * sr)], sr) for w, sr in items]
    rests = [(w[round(prompt_seconds * sr) :], sr) for w, sr in items]
    anchors = [speaker_embedding(w, sr) for w, sr in prompts]
    systems = {}
    for name, pipe in pipelines.items():
        values = []
        rows = tqdm(list(zip(prompts, anchors)), desc=f"continuations: {name}", unit="prompt", disable=not show_progress)
        for index, ((prompt, sr), anchor) in enumerate(rows):
            new, rate = continue_new_audio(pipe, prompt, sr, new_seconds, temperature, seed + index)
            values.append(_cosine(anchor, new, rate))
        systems[name] = _summary(values)
    same = [_cosine(a, *rest) for a, rest in zip(anchors, rests)]
    other = [_cosine(a, *rests[(i + 1) % len(rests)]) for i, a in enumerate(anchors)]
    return {"systems": systems, "references": {"same_voice": _summary(same), "other_voice": _summary(other)},
            "n": len(items), "prompt_seconds": prompt_seconds, "new_seconds": new_seconds,
            "temperature": temperature, "seed": seed}  # fmt: skip


def evaluate_tts_voice(pipeline, prompts, texts, voices, rates, pitches, temperature: float = 1.0, top_p: float = 0.8,
                       seed: int = 0, language: str = "en-us", show_progress: bool = False) -> dict:  # fmt: skip
    """Zero-shot TTS: WER and speaker similarity of ``pipeline.text_to_speech`` next to espeak-ng's own rendering
    (``show_progress``: a progress bar over the prompts).

    Args:
        pipeline: a `VallEPipeline`.
        prompts: ``(audio, transcript)`` pairs: the acoustic prompts.
        texts: what to say after each prompt (one per prompt).
        voices, rates, pitches: the espeak-ng voice, rate and pitch of each prompt; espeak-ng says each text with them
            (the reference: the same voice, as intelligible as espeak-ng is).

    Returns ``{"tts": {...}, "espeak": {...}, "wer_ratio": tts WER / espeak WER, "asr": ..., "items": [...]}``, each
    side with ``wer``, ``cer`` and the speaker-similarity summary of `evaluate_continuation_voice`.
    """
    from ..data import make_synthesizer
    from .asr import PocketSphinxASR

    n = len(prompts)
    if n == 0 or not all(len(x) == n for x in (texts, voices, rates, pitches)):
        raise ValueError(f"got {n} prompts, {len(texts)} texts, {len(voices)} voices, {len(rates)} rates and "
                         f"{len(pitches)} pitches; need the same positive number of each")  # fmt: skip
    words = sorted({w for t in texts for w in _WORD.findall(normalize_transcript(t))})
    asr = PocketSphinxASR(vocabulary=words)
    hyps = {"tts": [], "espeak": []}
    sims = {"tts": [], "espeak": []}
    items = []
    rows = tqdm(list(zip(prompts, texts)), desc="zero-shot TTS", unit="prompt", disable=not show_progress)
    for index, ((audio, transcript), text) in enumerate(rows):
        wave, sr = decode_audio(audio)
        anchor = speaker_embedding(wave, sr)
        out = pipeline.text_to_speech(text, {"array": wave, "sampling_rate": sr}, prompt_text=transcript,
                                      language=language, temperature=temperature, top_p=top_p, seed=seed + index)  # fmt: skip
        speech = make_synthesizer(voice=voices[index], rate=int(rates[index]), pitch=int(pitches[index])).synthesize(text)
        item = {"text": text, "voice": voices[index], "rate": int(rates[index]), "pitch": int(pitches[index]),
                "tts_seconds": len(out.waveform) / out.sampling_rate}  # fmt: skip
        for side, (w, rate) in (("tts", (out.waveform, out.sampling_rate)), ("espeak", (speech.waveform, speech.sampling_rate))):
            hyp = asr.transcribe(w, rate)
            hyps[side].append(hyp)
            sims[side].append(_cosine(anchor, w, rate))
            item |= {f"{side}_transcript": hyp, f"{side}_speaker_similarity": sims[side][-1]}
        items.append(item)
    result = {}
    for side in ("tts", "espeak"):
        result[side] = {"wer": error_rate(hyps[side], texts)["wer"],
                        "cer": error_rate(hyps[side], texts, unit="char")["cer"], **_summary(sims[side])}  # fmt: skip
    result["wer_ratio"] = result["tts"]["wer"] / result["espeak"]["wer"] if result["espeak"]["wer"] > 0 else float("inf")
    return result | {"asr": asr.name, "n": n, "temperature": temperature, "top_p": top_p, "seed": seed, "items": items}


def text_conditioning(model, phonemes, codes, batch_size: int = 16) -> dict:
    """Held-out codebook-1 loss of a `VallEARModel` with each utterance's own phonemes and with the next utterance's
    (rotated by one), per code (nats). ``gain`` is their difference: near 0 when the model ignores the text, large
    once it reads it (an ASR-free check of alignment, cheaper than `evaluate_tts_voice`).

    Args:
        model: a `VallEARModel`.
        phonemes, codes: one ``[P_i]`` phoneme-id and one ``[Q, T_i]`` (or ``[T_i]``) code sequence per utterance;
            at least two utterances.
    """
    import torch

    if len(phonemes) != len(codes) or len(codes) < 2:
        raise ValueError(f"need >= 2 utterances with one phoneme sequence each, got {len(phonemes)} and {len(codes)}")
    others = list(phonemes[1:]) + [phonemes[0]]
    totals = {}
    model.eval()
    for name, texts in (("loss", phonemes), ("loss_other_text", others)):
        nats, count = 0.0, 0
        for start in range(0, len(codes), batch_size):
            batch = model.prepare_inputs(texts[start : start + batch_size], codes[start : start + batch_size])
            batch = {key: value.to(model.device) for key, value in batch.items()}
            scored = int((batch["labels"][:, 1:] != -100).sum())  # the codes the model's mean loss is over
            with torch.no_grad():
                nats += float(model(**batch).loss) * scored
            count += scored
        totals[name] = nats / count
    return totals | {"gain": totals["loss_other_text"] - totals["loss"], "n": len(codes)}


def token_bitrate(tokenizer) -> float:
    """Bits per second of a tokenizer's output: a codec's levels x log2(codebook size) x frame rate, or a unit
    tokenizer's log2(units) x frame rate (before deduplication)."""
    config = tokenizer.config
    if hasattr(tokenizer, "num_codebooks"):
        return float(tokenizer.num_codebooks * np.log2(tokenizer.codebook_size) * tokenizer.frame_rate)
    return float(np.log2(config.num_units) * config.frame_rate)


def evaluate_codec_quality(pipeline, audio, show_progress: bool = False) -> dict:
    """Resynthesis (``pipeline.resynthesize``: a codec-LM or AudioLM variant's codec, or a unit variant's units +
    vocoder): the tokens' bitrate, log-mel distance, STOI and the speaker similarity of each resynthesis to its
    original (means, and per item). ``speaker_similarity_n`` counts the resyntheses where Resemblyzer's VAD found
    speech (the others are NaN and left out of the mean; NaN when none had any). ``show_progress``: a progress bar."""
    import torch
    import torchaudio

    tokenizer = getattr(pipeline, "codec", None) or pipeline.speech_tokenizer
    rows = {"mel_distance": [], "stoi": [], "speaker_similarity": []}
    for item in tqdm(audio, desc="codec resynthesis", unit="utterance", disable=not show_progress):
        wave, sr = decode_audio(item)
        out = pipeline.resynthesize({"array": wave, "sampling_rate": sr})
        resynth, rate = np.asarray(out.waveforms[0], dtype=np.float32), out.sampling_rate
        rows["mel_distance"].append(mel_distance(resynth, wave, sampling_rate=sr, prediction_sampling_rate=rate))
        # STOI compares at one rate: the original, resampled to the decoder's
        reference = wave if rate == sr else torchaudio.functional.resample(torch.from_numpy(wave), sr, rate).numpy()
        rows["stoi"].append(stoi(resynth, reference, rate))
        rows["speaker_similarity"].append(_cosine(speaker_embedding(wave, sr), resynth, rate))
    result = {name: float(np.nanmean(values)) if not np.all(np.isnan(values)) else float("nan")
              for name, values in rows.items()}  # fmt: skip
    return result | {"bitrate_bps": token_bitrate(tokenizer), "frame_rate": float(tokenizer.config.frame_rate),
                     "n": len(rows["stoi"]), "speaker_similarity_n": int(np.sum(~np.isnan(rows["speaker_similarity"]))),
                     "per_item": rows}  # fmt: skip


__all__ = [
    "continuation_frame_rate",
    "continue_new_audio",
    "evaluate_codec_quality",
    "evaluate_continuation_voice",
    "evaluate_tts_voice",
    "text_conditioning",
    "token_bitrate",
]
