"""STSP (speech-text sentiment preservation, SpiRit-LM §5): does the sentiment of a prompt survive into its
continuation?

For each direction (`speech->speech`, `text->speech`, `speech->text`), every labelled prompt is continued by an
expressive pipeline in the output modality, a sentiment classifier of that modality labels the continuation, and STSP
is the fraction of continuations whose label is the prompt's. SpiRit-LM's random baseline (a continuation of random
sentiment) is `1 / 3` with three balanced classes; `chance_given_predictions` is the agreement expected from the
classifier's own label frequencies alone (what a continuation unrelated to its prompt scores).

The prompts and both classifiers are ours: `hf_slm.data.build_sentiment_prompts` (templates + espeak-ng prosody by
sentiment), a speech classifier on utterance prosody statistics and a bag-of-words text classifier, each a small
logistic regression trained in seconds.
"""

from __future__ import annotations

import random
import re

import numpy as np
import torch

from ..data.sentiment import SENTIMENTS

DIRECTIONS = ("speech->speech", "text->speech", "speech->text")
_WORD = re.compile(r"[a-z']+")


# ---------------------------------------------------------------------------------------------------- features
def speech_sentiment_features(waveform, sampling_rate: int) -> torch.FloatTensor:
    """Utterance prosody statistics `[34]`: log2 F0 mean / std / 10th / 90th percentile and voiced fraction,
    voicing onsets per second (a syllable-rate proxy), log-energy mean / std, and the 24-band log-mel mean."""
    import torchaudio

    from ..models.speech_lm import estimate_f0

    wave = torch.as_tensor(np.asarray(waveform), dtype=torch.float32).flatten()
    if wave.numel() < sampling_rate // 10:
        raise ValueError(f"need at least 0.1 s of audio to classify, got {wave.numel()} samples")
    if sampling_rate != 16000:
        wave = torchaudio.functional.resample(wave, sampling_rate, 16000)
    f0 = estimate_f0(wave, 16000, frame_rate=50.0)
    voiced = f0 > 0
    log_f0 = torch.log2(f0[voiced] / 100.0) if int(voiced.sum()) >= 2 else torch.zeros(2)
    onsets = ((voiced[1:].int() - voiced[:-1].int()) == 1).sum().float() / (len(wave) / 16000)
    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=1024, hop_length=320, n_mels=24)(wave)
    log_mel = (mel + 1e-6).log()
    energy = mel.sum(0).clamp(min=1e-8).log()
    loud = energy > energy.max() - 6.0  # frames within ~26 dB of the loudest
    return torch.cat([
        torch.stack([log_f0.mean(), log_f0.std(), torch.quantile(log_f0, 0.1), torch.quantile(log_f0, 0.9),
                     voiced.float().mean(), onsets, energy[loud].mean(), energy[loud].std()]),
        log_mel[:, loud].mean(1),
    ])  # fmt: skip


class SentimentClassifier:
    """A multinomial logistic regression on standardised features (torch, full-batch Adam): the small sentiment
    classifier of STSP, for speech (`speech_sentiment_features`) or text (bag of words, [`TextSentimentClassifier`])."""

    def __init__(self, weight_decay: float = 1e-3, steps: int = 500, seed: int = 0):
        self.weight_decay, self.steps, self.seed = weight_decay, steps, seed
        self.linear = None

    def fit(self, features: torch.Tensor, labels) -> SentimentClassifier:
        features = torch.as_tensor(features, dtype=torch.float32)
        labels = torch.as_tensor(labels, dtype=torch.long)
        if features.dim() != 2 or len(features) != len(labels) or len(labels) == 0:
            raise ValueError(f"need features [N, D] and N labels, got {tuple(features.shape)} and {tuple(labels.shape)}")
        self.mean, self.std = features.mean(0), features.std(0).clamp(min=1e-4)
        torch.manual_seed(self.seed)
        self.linear = torch.nn.Linear(features.shape[1], len(SENTIMENTS))
        optimizer = torch.optim.Adam(self.linear.parameters(), lr=0.05, weight_decay=self.weight_decay)
        x = (features - self.mean) / self.std
        for _ in range(self.steps):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(self.linear(x), labels).backward()
            optimizer.step()
        return self

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.LongTensor:
        if self.linear is None:
            raise RuntimeError("the classifier is not fitted: call fit() first")
        x = (torch.as_tensor(features, dtype=torch.float32) - self.mean) / self.std
        return self.linear(x).argmax(-1)


class SpeechSentimentClassifier(SentimentClassifier):
    """Speech sentiment from prosody statistics; `fit_audio` / `predict_audio` take waveforms."""

    def fit_audio(self, waveforms, labels, sampling_rate: int) -> SpeechSentimentClassifier:
        return self.fit(torch.stack([speech_sentiment_features(w, sampling_rate) for w in waveforms]), labels)

    def predict_audio(self, waveforms, sampling_rate: int) -> torch.LongTensor:
        return self.predict(torch.stack([speech_sentiment_features(w, sampling_rate) for w in waveforms]))


class TextSentimentClassifier(SentimentClassifier):
    """Text sentiment from a bag of (lower-cased) words seen in training; `fit_text` / `predict_text` take strings."""

    def bag(self, texts) -> torch.FloatTensor:
        rows = torch.zeros(len(texts), len(self.vocabulary))
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                if word in self.vocabulary:
                    rows[i, self.vocabulary[word]] = 1.0
        return rows

    def fit_text(self, texts, labels) -> TextSentimentClassifier:
        words = sorted({w for t in texts for w in _WORD.findall(t.lower())})
        self.vocabulary = {w: i for i, w in enumerate(words)}
        return self.fit(self.bag(texts), labels)

    def predict_text(self, texts) -> torch.LongTensor:
        return self.predict(self.bag(texts))


def split_prompts(prompts, train_fraction: float = 0.7, seed: int = 0) -> tuple[list, list]:
    """Stratified split of the prompt set into classifier-training and held-out (evaluation) prompts."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    rng = random.Random(seed)
    train, held_out = [], []
    for sentiment in SENTIMENTS:
        group = [p for p in prompts if p.sentiment == sentiment]
        rng.shuffle(group)
        cut = max(1, min(len(group) - 1, round(train_fraction * len(group)))) if len(group) > 1 else len(group)
        train += group[:cut]
        held_out += group[cut:]
    return train, held_out


def train_classifiers(train_prompts, held_out_prompts, seed: int = 0):
    """Fit the speech and text classifiers on `train_prompts`; returns them and their held-out accuracies."""
    labels = [p.label for p in train_prompts]
    speech = SpeechSentimentClassifier(seed=seed).fit_audio(
        [p.waveform for p in train_prompts], labels, train_prompts[0].sampling_rate
    )
    text = TextSentimentClassifier(seed=seed).fit_text([p.text for p in train_prompts], labels)
    truth = torch.tensor([p.label for p in held_out_prompts])
    accuracy = {
        "speech_classifier_accuracy": float(
            (speech.predict_audio([p.waveform for p in held_out_prompts], held_out_prompts[0].sampling_rate) == truth)
            .float().mean()
        ),
        "text_classifier_accuracy": float((text.predict_text([p.text for p in held_out_prompts]) == truth).float().mean()),
    }  # fmt: skip
    return speech, text, accuracy


# ---------------------------------------------------------------------------------------------------- STSP
def preservation(prompt_labels, predicted_labels) -> dict:
    """STSP of one direction: accuracy of `predicted_labels` (-1 = no usable continuation) against the prompts',
    with SpiRit-LM's random baseline and the agreement expected from the label frequencies alone."""
    truth = np.asarray(prompt_labels)
    predicted = np.asarray(predicted_labels)
    if truth.shape != predicted.shape or truth.size == 0:
        raise ValueError(f"need as many predictions as prompts (> 0), got {predicted.shape} and {truth.shape}")
    k = len(SENTIMENTS)
    p_truth = np.bincount(truth, minlength=k) / truth.size
    p_pred = np.bincount(predicted[predicted >= 0], minlength=k) / truth.size
    return {
        "stsp": float((truth == predicted).mean()),
        "random_baseline": 1.0 / k,
        "chance_given_predictions": float((p_truth * p_pred).sum()),
        "num_prompts": int(truth.size),
        "unusable_continuations": int((predicted < 0).sum()),
        "predicted_counts": {s: int((predicted == i).sum()) for i, s in enumerate(SENTIMENTS)},
    }


def evaluate_stsp(pipeline, prompts, speech_classifier, text_classifier, directions=DIRECTIONS, max_new_tokens: int = 100,
         min_new_tokens: int | None = None, temperature: float = 0.8, seed: int = 0) -> dict:  # fmt: skip
    """
    STSP of an `ExpressiveSpeechLMPipeline` on labelled prompts (`SentimentPrompt`s), one entry per direction.
    A speech continuation shorter than 0.1 s (or a text one without words) counts as not preserved.
    """
    unknown = [d for d in directions if d not in DIRECTIONS]
    if unknown or not directions:
        raise ValueError(f"directions must be a non-empty subset of {DIRECTIONS}, got {list(directions)}")
    if not prompts:
        raise ValueError("STSP needs at least one prompt")
    results = {}
    for direction in directions:
        source, target = direction.split("->")
        predicted = []
        for i, prompt in enumerate(prompts):
            prompt_kwargs = (
                {"audio": prompt.waveform, "sampling_rate": prompt.sampling_rate} if source == "speech" else {"text": prompt.text}
            )  # fmt: skip
            out = pipeline.continue_expressive(
                **prompt_kwargs, output_modality=target, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
                temperature=temperature, seed=seed + i,
            )  # fmt: skip
            if target == "speech":
                usable = out.waveform.size >= pipeline.sampling_rate // 10
                label = int(speech_classifier.predict_audio([out.waveform], pipeline.sampling_rate)[0]) if usable else -1
            else:
                usable = bool(_WORD.findall(out.text.lower()))
                label = int(text_classifier.predict_text([out.text])[0]) if usable else -1
            predicted.append(label)
        results[direction] = preservation([p.label for p in prompts], predicted)
    return results


def format_stsp_table(results: dict, accuracies: dict | None = None) -> str:
    lines = [f"{'direction':<16} {'STSP':>6} {'random':>7} {'chance|pred':>11} {'unusable':>8}"]
    for direction, r in results.items():
        lines.append(f"{direction:<16} {r['stsp']:>6.3f} {r['random_baseline']:>7.3f} "
                     f"{r['chance_given_predictions']:>11.3f} {r['unusable_continuations']:>8d}")  # fmt: skip
    for name, value in (accuracies or {}).items():
        lines.append(f"{name}: {value:.3f}")
    return "\n".join(lines)


__all__ = [
    "DIRECTIONS",
    "SentimentClassifier",
    "SpeechSentimentClassifier",
    "TextSentimentClassifier",
    "format_stsp_table",
    "preservation",
    "speech_sentiment_features",
    "split_prompts",
    "evaluate_stsp",
    "train_classifiers",
]
