"""Unit-to-phone purity and PNMI (HuBERT's tokenizer metrics, Hsu et al. 2021 section IV-E), on espeak-ng speech
whose phone alignment espeak-ng itself reports (PHONEME events, `EspeakSynthesizer.synthesize(phonemes=True)`).

Every frame of a tokenizer gets the phone whose interval holds the frame's centre. From the joint frame counts of
(phone y, unit z): phone purity = E_z[max_y p(y | z)] (how well a unit predicts a phone), cluster purity =
E_y[max_z p(z | y)] (how concentrated a phone is on one unit), and PNMI = I(y; z) / H(y) (the fraction of the phone
uncertainty a unit removes). Pauses (espeak-ng's ``_``, ``_:``, ...) and frames before the first phone are ``"sil"``.
"""

from __future__ import annotations

import numpy as np
import torch

SILENCE = "sil"


def build_phone_items(texts, voices=("en-us", "en-us+m3", "en-us+f2"), rates=(150, 200)) -> list[dict]:
    """One item per (text, voice, rate): ``{"audio": {"array", "sampling_rate"}, "phones", "phone_start",
    "speaker"}`` with espeak-ng's phoneme mnemonics and their start times (seconds)."""
    from ..data import EspeakSynthesizer

    if not texts:
        raise ValueError("build_phone_items needs at least one text")
    items = []
    for voice in voices:
        for rate in rates:
            synthesizer = EspeakSynthesizer(voice=voice, rate=rate)
            for text in texts:
                speech = synthesizer.synthesize(text, phonemes=True)
                items.append({"audio": {"array": speech.waveform, "sampling_rate": speech.sampling_rate},
                              "phones": speech.phones, "phone_start": speech.phone_start, "speaker": voice})  # fmt: skip
    return items


def frame_phone_labels(phones, phone_start, num_frames: int, hop_length: int, window: int,
                       sampling_rate: int) -> list[str]:  # fmt: skip
    """The phone at the centre of each of `num_frames` frames (frame i covers samples [i * hop, i * hop + window))."""
    if len(phones) != len(phone_start):
        raise ValueError(f"{len(phones)} phones but {len(phone_start)} start times")
    names = [SILENCE if name.startswith("_") or not name else name for name in phones]
    centres = (np.arange(num_frames) * hop_length + window / 2) / sampling_rate
    index = np.searchsorted(np.asarray(phone_start, dtype=np.float64), centres, side="right") - 1
    return [names[i] if i >= 0 else SILENCE for i in index]


def unit_phone_statistics(units, labels, exclude_silence: bool = False) -> dict:
    """Phone purity, cluster purity and PNMI from per-utterance unit ids and frame phone labels (same lengths)."""
    pairs_units, pairs_phones = [], []
    for i, (u, y) in enumerate(zip(units, labels, strict=True)):
        u = np.asarray(u).reshape(-1)
        if len(u) != len(y):
            raise ValueError(f"utterance {i}: {len(u)} units but {len(y)} phone labels")
        pairs_units.append(u)
        pairs_phones += list(y)
    z = np.concatenate(pairs_units) if pairs_units else np.zeros(0, dtype=np.int64)
    y = np.asarray(pairs_phones)
    if exclude_silence:
        keep = y != SILENCE
        z, y = z[keep], y[keep]
    if len(z) == 0:
        raise ValueError("no frames to score")
    phone_names, y_index = np.unique(y, return_inverse=True)
    unit_ids, z_index = np.unique(z, return_inverse=True)
    counts = np.zeros((len(phone_names), len(unit_ids)))
    np.add.at(counts, (y_index, z_index), 1)
    joint = counts / counts.sum()
    p_y, p_z = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nonzero = joint > 0
    mutual = float((joint[nonzero] * np.log(joint[nonzero] / (p_y @ p_z)[nonzero])).sum())
    entropy = float(-(p_y[p_y > 0] * np.log(p_y[p_y > 0])).sum())
    return {
        "phone_purity": float(joint.max(0).sum()),
        "cluster_purity": float(joint.max(1).sum()),
        "pnmi": mutual / entropy if entropy > 0 else 0.0,
        "num_frames": int(len(z)),
        "num_phones": int(len(phone_names)),
        "num_units_used": int(len(unit_ids)),
    }


@torch.no_grad()
def evaluate_unit_purity(feature_extractor, tokenizer, items=None, batch_size: int = 16,
                         exclude_silence: bool = False) -> dict:  # fmt: skip
    """Phone purity, cluster purity and PNMI of a unit tokenizer's units on `build_phone_items` items."""
    if items is None:
        from ..data import load_text_corpus

        items = build_phone_items(load_text_corpus("builtin", limit=20, seed=1))
    config = tokenizer.config
    device = tokenizer.cluster_centers.device
    units, labels = [], []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        inputs = feature_extractor([item["audio"] for item in chunk], return_tensors="pt")
        out = tokenizer(inputs["input_values"].to(device), attention_mask=inputs["attention_mask"].to(device))
        for item, row, mask in zip(chunk, out.units, out.units_mask):
            row = row[mask].cpu().numpy()
            units.append(row)
            labels.append(frame_phone_labels(item["phones"], item["phone_start"], len(row), config.hop_length,
                                             config.receptive_field, config.sampling_rate))  # fmt: skip
    return unit_phone_statistics(units, labels, exclude_silence=exclude_silence)


__all__ = ["SILENCE", "build_phone_items", "evaluate_unit_purity", "frame_phone_labels", "unit_phone_statistics"]
