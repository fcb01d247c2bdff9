"""A labelled sentiment prompt set we make ourselves (for STSP): template sentences with positive, negative or neutral
content, spoken by espeak-ng with prosody that differs by sentiment (rate, pitch, pitch range)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

SENTIMENTS = ("negative", "neutral", "positive")

_SUBJECTS = (
    "the meeting", "the garden", "this morning", "the trip", "our dinner", "the new house", "the movie", "the report",
    "the weekend", "the train ride", "the concert", "my exam", "the party", "the lesson", "the walk home",
    "the phone call", "the visit", "the game", "the interview", "the holiday",
)  # fmt: skip
_WORDS = {
    "positive": {
        "adjective": ("wonderful", "lovely", "delightful", "amazing", "great", "beautiful", "fantastic", "excellent",
                      "brilliant", "perfect", "charming", "joyful"),
        "feeling": ("happy", "grateful", "excited", "proud", "glad", "thrilled", "cheerful", "delighted"),
    },
    "negative": {
        "adjective": ("terrible", "awful", "horrible", "dreadful", "miserable", "painful", "disgusting", "hopeless",
                      "tragic", "ruined", "nasty", "cruel"),
        "feeling": ("sad", "angry", "upset", "lonely", "afraid", "furious", "hurt", "disappointed"),
    },
    "neutral": {
        "adjective": ("ordinary", "scheduled", "standard", "usual", "planned", "average", "typical", "routine",
                      "regular", "listed", "normal", "expected"),
        "feeling": ("informed", "ready", "seated", "present", "aware", "done", "here", "available"),
    },
}  # fmt: skip
_TEMPLATES = (
    "{subject} was {adjective}, and I feel {feeling}.",
    "I think {subject} was {adjective}.",
    "Honestly, {subject} seemed {adjective} to me, so I am {feeling}.",
    "Everyone said {subject} was {adjective}.",
    "After {subject}, I was {feeling}.",
    "It is true that {subject} was {adjective}, and now I am {feeling}.",
)
#: espeak-ng prosody ranges per sentiment: (rate wpm, base pitch 0-99, pitch range 0-99), each drawn uniformly.
PROSODY = {
    "positive": {"rate": (185, 215), "pitch": (60, 75), "pitch_range": (75, 95)},
    "negative": {"rate": (120, 145), "pitch": (20, 35), "pitch_range": (5, 25)},
    "neutral": {"rate": (160, 180), "pitch": (42, 55), "pitch_range": (40, 55)},
}


@dataclass
class SentimentPrompt:
    """One prompt: its text, sentiment label, the espeak-ng settings and the audio (`waveform` at `sampling_rate`)."""

    text: str
    sentiment: str
    voice: str
    rate: int
    pitch: int
    pitch_range: int
    waveform: np.ndarray | None = None
    sampling_rate: int | None = None

    @property
    def label(self) -> int:
        return SENTIMENTS.index(self.sentiment)


def sentiment_texts(num_per_class: int, seed: int = 0) -> list[tuple[str, str]]:
    """`num_per_class` distinct `(text, sentiment)` pairs per sentiment, drawn from the templates (seeded)."""
    if not isinstance(num_per_class, int) or isinstance(num_per_class, bool) or num_per_class < 1:
        raise ValueError(f"num_per_class must be a positive int, got {num_per_class!r}")
    rng = random.Random(seed)
    out = []
    for sentiment in SENTIMENTS:
        words = _WORDS[sentiment]
        combos = len(_TEMPLATES) * len(_SUBJECTS) * len(words["adjective"]) * len(words["feeling"])
        if num_per_class > combos:
            raise ValueError(f"num_per_class={num_per_class} exceeds the {combos} distinct {sentiment} sentences")
        seen: set[str] = set()
        while len(seen) < num_per_class:
            text = rng.choice(_TEMPLATES).format(
                subject=rng.choice(_SUBJECTS), adjective=rng.choice(words["adjective"]),
                feeling=rng.choice(words["feeling"]),
            )  # fmt: skip
            text = text[0].upper() + text[1:]
            if text not in seen:
                seen.add(text)
                out.append((text, sentiment))
    return out


def build_sentiment_prompts(
    num_per_class: int,
    seed: int = 0,
    voices: tuple[str, ...] = ("en-us", "en-us+m3", "en-us+f2", "en-gb"),
    sampling_rate: int = 16000,
    synthesize: bool = True,
) -> list[SentimentPrompt]:
    """
    The STSP prompt set: `num_per_class` sentences per sentiment (`SENTIMENTS`), each spoken by a voice drawn from
    `voices` with rate, pitch and pitch range drawn from that sentiment's `PROSODY` ranges, resampled to
    `sampling_rate`. `synthesize=False` leaves `waveform` empty (text-only use).
    """
    import torch
    import torchaudio

    from .espeak import EspeakSynthesizer

    if not voices:
        raise ValueError("voices must name at least one espeak-ng voice")
    rng = random.Random(seed + 1)
    prompts = []
    for text, sentiment in sentiment_texts(num_per_class, seed):
        ranges = PROSODY[sentiment]
        settings = {name: rng.randint(*ranges[name]) for name in ("rate", "pitch", "pitch_range")}
        prompt = SentimentPrompt(text=text, sentiment=sentiment, voice=rng.choice(voices), **settings)
        if synthesize:
            result = EspeakSynthesizer(prompt.voice, **settings).synthesize(text)
            wave = torch.from_numpy(np.asarray(result.waveform, dtype=np.float32))
            if result.sampling_rate != sampling_rate:
                wave = torchaudio.functional.resample(wave, result.sampling_rate, sampling_rate)
            prompt.waveform, prompt.sampling_rate = wave.numpy(), sampling_rate
        prompts.append(prompt)
    return prompts


__all__ = ["PROSODY", "SENTIMENTS", "SentimentPrompt", "build_sentiment_prompts", "sentiment_texts"]
