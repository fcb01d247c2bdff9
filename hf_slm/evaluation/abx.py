"""ABX items from synthesised speech, and the ABX error of a unit tokenizer's features or units (GSLM's
representation metric, within and between speakers; the metric itself is `metrics/abx`)."""

from __future__ import annotations

import numpy as np
import torch

from .metrics.abx.abx import abx

#: Words that differ by one phoneme (b/p/m/s/h onsets; a/e/i/u vowels): ABX then tests phone contrasts.
DEFAULT_ABX_WORDS = ("bat", "pat", "mat", "sat", "hat", "bet", "bit", "but")
#: espeak-ng voices used as "speakers" (a base voice and two variants: other pitch and formants).
DEFAULT_ABX_VOICES = ("en-us", "en-us+m3", "en-us+f2")
#: Speaking rates: two tokens of every word per voice, so that within-speaker triplets exist.
DEFAULT_ABX_RATES = (150, 200)


def build_abx_items(words=DEFAULT_ABX_WORDS, voices=DEFAULT_ABX_VOICES, rates=DEFAULT_ABX_RATES) -> list[dict]:
    """One item per (word, voice, rate): ``{"audio": {"array", "sampling_rate"}, "label": word, "speaker": voice}``."""
    from ..data import make_synthesizer

    if len(set(words)) < 2:
        raise ValueError(f"ABX needs at least 2 distinct words, got {list(words)}")
    items = []
    for voice in voices:
        for rate in rates:
            for word, speech in zip(words, make_synthesizer(voice=voice, rate=rate).synthesize_many(words)):
                items.append({"audio": {"array": speech.waveform, "sampling_rate": speech.sampling_rate},
                              "label": word, "speaker": voice, "rate": rate})  # fmt: skip
    return items


@torch.no_grad()
def item_representations(feature_extractor, tokenizer, audio, representation: str = "features", batch_size: int = 16,
                         speakers=None):  # fmt: skip
    """Per item, a `[frames, dim]` array: the tokenizer's standardised front-end features, or its units one-hot.

    `speakers` (one label per item) tokenises each speaker's items at one vocal tract length warp, searched over
    all of them (`UnitEncoderModel.choose_warp_factors`); needs a tokenizer with `config.vtln_warps`."""
    if representation not in ("features", "units"):
        raise ValueError(f"representation must be 'features' or 'units', got {representation!r}")
    device = tokenizer.cluster_centers.device
    batches = []
    for start in range(0, len(audio), batch_size):
        inputs = feature_extractor(audio[start : start + batch_size], return_tensors="pt")
        batches.append((inputs["input_values"].to(device), inputs["attention_mask"].to(device)))
    warps = [None] * len(batches)
    if speakers is not None:
        if getattr(tokenizer.config, "vtln_warps", None) is None:
            raise ValueError("speaker adaptation searches a vocal tract length warp per speaker: the tokenizer needs "
                             "vtln_warps (hf-slm fit-tokenizer --vtln)")  # fmt: skip
        if len(speakers) != len(audio):
            raise ValueError(f"speakers: one label per item ({len(audio)}), got {len(speakers)}")
        distortions, counts = zip(*(tokenizer.warp_distortions(values, mask) for values, mask in batches))
        chosen = tokenizer.choose_warp_factors(torch.cat(distortions), torch.cat(counts), list(speakers))
        warps = list(chosen.split(batch_size))
    out = []
    for (values, mask), warp in zip(batches, warps):
        features, frame_mask = tokenizer.extract_features(values, mask, warp_factors=warp)
        if representation == "features":
            standardised = (features.float() - tokenizer.feature_mean) / tokenizer.feature_std
            out += [f[m].cpu().numpy() for f, m in zip(standardised, frame_mask)]
        else:
            units = tokenizer.quantize(features)
            eye = np.eye(tokenizer.config.num_units, dtype=np.float32)
            out += [eye[u[m].cpu().numpy()] for u, m in zip(units, frame_mask)]
    return out


def evaluate_abx(pipeline, items=None, representation: str = "features", distance: str | None = None,
                 speaker_adaptation: bool = False) -> dict:  # fmt: skip
    """Within- and between-speaker ABX error (fractions) of a pipeline's (or tokenizer's) representation.

    Args:
        pipeline: a `SpeechLMPipeline` (its feature extractor and speech tokenizer are used).
        items: from `build_abx_items` (default: its defaults, 8 words x 3 voices x 2 rates).
        representation: ``"features"`` (front-end features, cosine/angular distance) or ``"units"`` (one-hot units,
            distance 0 when equal, else 1).
        speaker_adaptation: tokenise each speaker's items at one vocal tract length warp found over all of them
            (a tokenizer with `vtln_warps`); by default each item is tokenised alone, as a pipeline does.
    """
    items = build_abx_items() if items is None else items
    distance = distance or ("cosine" if representation == "features" else "hamming")
    speakers = [i["speaker"] for i in items]
    reps = item_representations(pipeline.feature_extractor, pipeline.speech_tokenizer, [i["audio"] for i in items],
                                representation, speakers=speakers if speaker_adaptation else None)  # fmt: skip
    result = abx(reps, [i["label"] for i in items], speakers, distance=distance)
    result.update(representation=representation, distance=distance, num_items=len(items),
                  num_categories=len({i["label"] for i in items}), speakers=sorted(set(speakers)),
                  speaker_adaptation=speaker_adaptation)  # fmt: skip
    return result


__all__ = ["DEFAULT_ABX_RATES", "DEFAULT_ABX_VOICES", "DEFAULT_ABX_WORDS", "build_abx_items", "evaluate_abx",
           "item_representations"]  # fmt: skip
