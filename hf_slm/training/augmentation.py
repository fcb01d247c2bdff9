"""Waveform augmentation that moves synthetic (espeak-ng) speech toward recorded human speech.

`SpeechAugmentation` applies a list of steps in order, each with probability ``p`` and parameters drawn from its
ranges. Every draw comes from a `torch.Generator` seeded by ``(seed, key)``, so the same seed and key (a row index, or
``(epoch, index)``) give the same output in any process: it can run inside a cached ``datasets.map``
(`SpeechAugmentation.map_function`) or inside a collator.

Steps (``name``: parameters; a pair ``[low, high]`` is a uniform range, a single number a fixed value):

- ``speed``: ``factor`` (0.5-2.0; >1 is faster: the duration is divided by it; torchaudio ``speed``).
- ``pitch``: ``semitones`` (-12-12), duration kept (phase-vocoder stretch, then a resampling whose ratio is a
  fraction with a small denominator: torchaudio's ``pitch_shift`` takes minutes for some shifts).
- ``vtlp``: vocal-tract-length perturbation, ``alpha`` (0.7-1.4): the spectrum's frequencies are scaled by ``alpha``
  up to a boundary and linearly mapped above it (Jaitly & Hinton 2013), duration kept.
- ``reverb``: a simulated room impulse response, exponentially decaying Gaussian noise, ``rt60`` seconds (0.05-2.0),
  ``direct_ratio_db`` (energy of the direct path over the tail); the output keeps the input's length and RMS.
- ``noise``: additive ``white`` / ``pink`` / ``brown`` noise (``colors``) at ``snr_db`` (torchaudio ``add_noise``).
- ``bandlimit``: a low-pass at ``cutoff_hz`` (resampling down to twice the cutoff and back).
- ``codec``: a telephone channel, ``rate`` Hz (default 8000) and ``mu``-law with ``channels`` levels (default 256).
- ``gain``: ``db`` (-40-20); the result is clipped to [-1, 1].

>>> aug = SpeechAugmentation.from_config({"seed": 0, "steps": [{"name": "noise", "snr_db": [10, 20]}]})
>>> import numpy as np
>>> out = aug(np.zeros(1600, dtype=np.float32) + 0.1, 16000, key=3)
>>> out.shape, bool(np.allclose(out, aug(np.zeros(1600, dtype=np.float32) + 0.1, 16000, key=3)))
((1600,), True)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction

import numpy as np
import torch

__all__ = ["AUGMENTATION_STEPS", "SpeechAugmentation", "simulate_rir"]


def _range(step: str, name: str, value, low: float, high: float) -> tuple[float, float]:
    """A ``[low, high]`` pair or a single number, checked against ``[low, high]``."""
    pair = (value, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    try:
        a, b = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise ValueError(f"augmentation step {step!r}: `{name}` must be a number or a [low, high] pair, got {value!r}") from None
    if not (low <= a <= b <= high) or math.isnan(a) or math.isnan(b):
        raise ValueError(f"augmentation step {step!r}: `{name}` must lie in [{low}, {high}] with low <= high, got {value!r}")
    return a, b


def _uniform(generator: torch.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return low + (high - low) * float(torch.rand((), generator=generator))


@dataclass
class _Step:
    name = ""
    changes_voice = False  # speed / pitch / vtlp make a new speaker; the rest degrade the channel
    p: float = 1.0

    def __post_init__(self):
        if isinstance(self.p, bool) or not isinstance(self.p, (int, float)) or not 0.0 <= self.p <= 1.0:
            raise ValueError(f"augmentation step {self.name!r}: `p` must be a probability in [0, 1], got {self.p!r}")

    def apply(self, wave: torch.Tensor, rate: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


@dataclass
class Speed(_Step):
    name = "speed"
    changes_voice = True
    factor: object = (0.9, 1.1)

    def __post_init__(self):
        super().__post_init__()
        self.bounds = _range(self.name, "factor", self.factor, 0.5, 2.0)

    def apply(self, wave, rate, generator):
        factor = round(_uniform(generator, self.bounds), 2)  # 1/100 steps keep torchaudio's resampling kernel small
        if factor == 1.0:
            return wave
        ratio = Fraction(int(round(factor * 100)), 100)
        import torchaudio.functional as F

        return F.resample(wave, ratio.numerator, ratio.denominator)


def _stretch(wave: torch.Tensor, rate: float, n_fft: int = 512, hop: int = 128) -> torch.Tensor:
    """Phase-vocoder time stretch by ``rate`` (> 1 shortens), pitch kept."""
    import torchaudio.functional as F

    window = torch.hann_window(n_fft)
    spec = torch.stft(wave, n_fft, hop, window=window, return_complex=True)
    advance = torch.linspace(0, math.pi * hop, spec.shape[-2])[..., None]
    stretched = F.phase_vocoder(spec, rate, advance)
    return torch.istft(stretched, n_fft, hop, window=window, length=int(round(wave.shape[-1] / rate)))


def _sharp_resample(wave: torch.Tensor, rate: int, new_rate: int) -> torch.Tensor:
    """Resampling with a Kaiser-windowed sinc of >60 dB stop band (torchaudio's default leaks ~-26 dB)."""
    import torchaudio.functional as F

    return F.resample(wave, rate, new_rate, lowpass_filter_width=16, rolloff=0.945,
                      resampling_method="sinc_interp_kaiser", beta=8.6)  # fmt: skip


def _fit(wave: torch.Tensor, length: int) -> torch.Tensor:
    return wave[..., :length] if wave.shape[-1] >= length else torch.nn.functional.pad(wave, (0, length - wave.shape[-1]))


@dataclass
class Pitch(_Step):
    name = "pitch"
    changes_voice = True
    semitones: object = (-2.0, 2.0)

    def __post_init__(self):
        super().__post_init__()
        self.bounds = _range(self.name, "semitones", self.semitones, -12.0, 12.0)

    def apply(self, wave, rate, generator):
        ratio = Fraction(2.0 ** (_uniform(generator, self.bounds) / 12.0)).limit_denominator(64)
        if ratio == 1:
            return wave
        import torchaudio.functional as F

        # stretch to ratio x the duration, then play it ratio x faster: same duration, pitch x ratio
        stretched = _stretch(wave, 1.0 / float(ratio))
        return _fit(F.resample(stretched, ratio.numerator, ratio.denominator), wave.shape[-1])


@dataclass
class VocalTractLength(_Step):
    name = "vtlp"
    changes_voice = True
    alpha: object = (0.9, 1.1)
    boundary_hz: float = 4800.0
    n_fft: int = 512

    def __post_init__(self):
        super().__post_init__()
        self.bounds = _range(self.name, "alpha", self.alpha, 0.7, 1.4)
        if not isinstance(self.boundary_hz, (int, float)) or self.boundary_hz <= 0:
            raise ValueError(f"augmentation step 'vtlp': `boundary_hz` must be positive, got {self.boundary_hz!r}")

    def apply(self, wave, rate, generator):
        alpha = _uniform(generator, self.bounds)
        if alpha == 1.0:
            return wave
        hop, window = self.n_fft // 4, torch.hann_window(self.n_fft)
        spec = torch.stft(wave, self.n_fft, hop, window=window, return_complex=True)  # [..., F, T]
        nyquist, bins = rate / 2, spec.shape[-2]
        freqs = torch.linspace(0, nyquist, bins)
        knee = min(self.boundary_hz, 0.9 * nyquist) * min(alpha, 1.0) / alpha
        # the warp f -> alpha f below the knee, a line to the Nyquist above it; target bin g reads source warp^-1(g)
        warped_knee = alpha * knee
        source = torch.where(
            freqs <= warped_knee,
            freqs / alpha,
            knee + (freqs - warped_knee) * (nyquist - knee) / (nyquist - warped_knee),
        )
        position = (source / nyquist * (bins - 1)).clamp(0, bins - 1)
        lower = position.floor().long().clamp(max=bins - 2)
        weight = (position - lower)[..., None]
        magnitude = spec.abs()
        warped = magnitude[..., lower, :] * (1 - weight) + magnitude[..., lower + 1, :] * weight
        phase = torch.angle(spec)[..., position.round().long(), :]
        return torch.istft(torch.polar(warped, phase), self.n_fft, hop, window=window, length=wave.shape[-1])


def simulate_rir(rt60: float, sampling_rate: int, generator: torch.Generator, direct_ratio_db: float = 0.0) -> torch.Tensor:
    """A room impulse response: a direct path (1 at t=0) and a tail of Gaussian noise decaying 60 dB in ``rt60`` s,
    scaled so that direct / tail energy is ``direct_ratio_db``."""
    length = max(2, int(rt60 * sampling_rate))
    t = torch.arange(1, length) / sampling_rate
    tail = torch.randn(length - 1, generator=generator) * torch.exp(-3.0 * math.log(10.0) * t / rt60)
    tail = tail / tail.pow(2).sum().sqrt() * 10.0 ** (-direct_ratio_db / 20.0)
    return torch.cat([torch.ones(1), tail])


@dataclass
class Reverb(_Step):
    name = "reverb"
    rt60: object = (0.2, 0.8)
    direct_ratio_db: object = (0.0, 10.0)

    def __post_init__(self):
        super().__post_init__()
        self.bounds = _range(self.name, "rt60", self.rt60, 0.05, 2.0)
        self.ratio_bounds = _range(self.name, "direct_ratio_db", self.direct_ratio_db, -20.0, 40.0)

    def apply(self, wave, rate, generator):
        import torchaudio.functional as F

        rir = simulate_rir(_uniform(generator, self.bounds), rate, generator, _uniform(generator, self.ratio_bounds))
        out = F.fftconvolve(wave, rir)[..., : wave.shape[-1]]
        return out * (wave.pow(2).mean().sqrt() / out.pow(2).mean().sqrt().clamp_min(1e-12))


_COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f^exponent


def colored_noise(length: int, color: str, generator: torch.Generator) -> torch.Tensor:
    spectrum = torch.fft.rfft(torch.randn(length, generator=generator))
    f = torch.arange(spectrum.shape[-1], dtype=torch.float32).clamp_min(1.0)
    noise = torch.fft.irfft(spectrum / f ** (_COLORS[color] / 2), n=length)
    return noise / noise.pow(2).mean().sqrt().clamp_min(1e-12)


@dataclass
class Noise(_Step):
    name = "noise"
    snr_db: object = (5.0, 30.0)
    colors: list = field(default_factory=lambda: ["white", "pink", "brown"])

    def __post_init__(self):
        super().__post_init__()
        self.bounds = _range(self.name, "snr_db", self.snr_db, -20.0, 80.0)
        bad = [c for c in self.colors if c not in _COLORS] if isinstance(self.colors, (list, tuple)) else [self.colors]
        if bad or not self.colors:
            raise ValueError(f"augmentation step 'noise': `colors` must be a non-empty list of {sorted(_COLORS)}, got {self.colors!r}")

    def apply(self, wave, rate, generator):
        import torchaudio.functional as F

        color = self.colors[int(torch.randint(len(self.colors), (), generator=generator))]
        noise = colored_noise(wave.shape[-1], color, generator).expand_as(wave)
        snr = torch.full(wave.shape[:-1], _uniform(generator, self.bounds))
        return F.add_noise(wave, noise, snr)


@dataclass
class BandLimit(_Step):
    name = "bandlimit"
    cutoff_hz: object = (3000.0, 7000.0)

    def __post_init__(self):
        super().__post_init__()
        self.bounds = _range(self.name, "cutoff_hz", self.cutoff_hz, 500.0, 48000.0)

    def apply(self, wave, rate, generator):
        low_rate = int(round(2 * _uniform(generator, self.bounds) / 100.0)) * 100  # 100 Hz steps: short kernels
        if low_rate >= rate:
            return wave
        return _fit(_sharp_resample(_sharp_resample(wave, rate, low_rate), low_rate, rate), wave.shape[-1])


@dataclass
class Codec(_Step):
    name = "codec"
    rate: int = 8000
    channels: int = 256

    def __post_init__(self):
        super().__post_init__()
        for key, low in (("rate", 1000), ("channels", 2)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"augmentation step 'codec': `{key}` must be an integer >= {low}, got {value!r}")

    def apply(self, wave, rate, generator):
        import torchaudio.functional as F

        low = _sharp_resample(wave, rate, self.rate) if self.rate < rate else wave
        peak = low.abs().max().clamp_min(1e-12)  # mu-law wants [-1, 1]
        coded = F.mu_law_decoding(F.mu_law_encoding(low / peak, self.channels), self.channels) * peak
        return _fit(_sharp_resample(coded, self.rate, rate), wave.shape[-1]) if self.rate < rate else coded


@dataclass
class Gain(_Step):
    name = "gain"
    db: object = (-6.0, 6.0)

    def __post_init__(self):
        super().__post_init__()
        self.bounds = _range(self.name, "db", self.db, -40.0, 20.0)

    def apply(self, wave, rate, generator):
        return (wave * 10.0 ** (_uniform(generator, self.bounds) / 20.0)).clamp(-1.0, 1.0)


#: name -> step class; a step's config is ``{"name": ..., "p": ..., **parameters}``.
AUGMENTATION_STEPS = {cls.name: cls for cls in (Speed, Pitch, VocalTractLength, Reverb, Noise, BandLimit, Codec, Gain)}


class SpeechAugmentation:
    """Seeded, composable waveform augmentation: ``steps`` (step configs, applied in order) and ``seed``.

    Call it as ``aug(waveform, sampling_rate, key=...)`` (1-D or ``[channels, samples]``, numpy or torch; the same
    type comes back); ``key`` (an int or a tuple of ints, e.g. the row index or ``(epoch, index)``) picks the random
    draws together with ``seed``. ``speed`` changes the length; every other step keeps it.
    """

    def __init__(self, steps=(), seed: int = 0):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"augmentation `seed` must be an integer, got {seed!r}")
        if isinstance(steps, (str, dict)):
            raise TypeError(f"augmentation `steps` must be a list of step configs, got {type(steps).__name__}")
        self.seed = seed
        self.steps = [self._build(index, step) for index, step in enumerate(steps)]

    @staticmethod
    def _build(index: int, step) -> _Step:
        if isinstance(step, _Step):
            return step
        if not isinstance(step, dict) or "name" not in step:
            raise ValueError(f"augmentation steps[{index}] must be a dict with a 'name', got {step!r}")
        config = dict(step)
        name = config.pop("name")
        if name not in AUGMENTATION_STEPS:
            raise ValueError(f"augmentation steps[{index}]: unknown step {name!r}; choose from {sorted(AUGMENTATION_STEPS)}")
        cls = AUGMENTATION_STEPS[name]
        unknown = sorted(set(config) - {f.name for f in fields(cls)})
        if unknown:
            allowed = sorted(f.name for f in fields(cls))
            raise ValueError(f"augmentation step {name!r}: unknown parameter(s) {unknown}; it takes {allowed}")
        return cls(**config)

    @classmethod
    def from_config(cls, config) -> SpeechAugmentation:
        """From ``{"seed": 0, "steps": [...]}``, a JSON string of it, or a path to such a JSON file."""
        if isinstance(config, str):
            from pathlib import Path

            text = Path(config).read_text(encoding="utf-8") if not config.lstrip().startswith("{") else config
            config = json.loads(text)
        if not isinstance(config, dict):
            raise TypeError(f"augmentation config must be a dict, got {type(config).__name__}")
        unknown = sorted(set(config) - {"seed", "steps"})
        if unknown:
            raise ValueError(f"augmentation config: unknown key(s) {unknown}; it takes 'seed' and 'steps'")
        return cls(config.get("steps", ()), seed=config.get("seed", 0))

    def to_config(self) -> dict:
        steps = [{"name": s.name, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(s).items()}}
                 for s in self.steps]  # fmt: skip
        return {"seed": self.seed, "steps": steps}

    def __repr__(self):
        return f"SpeechAugmentation({json.dumps(self.to_config())})"

    def generator(self, key=0) -> torch.Generator:
        parts = key if isinstance(key, (tuple, list)) else (key,)
        digest = hashlib.sha256(json.dumps([self.seed, *[int(p) for p in parts]]).encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") >> 1)

    def __call__(self, waveform, sampling_rate: int, key=0, return_target: bool = False):
        """The augmented waveform; with ``return_target``, ``(augmented, target)`` where ``target`` is the waveform
        after the voice steps (speed, pitch, vtlp) only: the clean speech a denoising vocoder should give back for
        the augmented input (same length). Voice steps must then come before channel steps."""
        if return_target:
            kinds = [step.changes_voice for step in self.steps]
            if any(voice and not earlier for earlier, voice in zip(kinds, kinds[1:])):
                names = [step.name for step in self.steps]
                raise ValueError(f"augmentation: with a target, voice steps (speed, pitch, vtlp) must come before "
                                 f"channel steps; got the order {names}")  # fmt: skip
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
            raise ValueError(f"augmentation: `sampling_rate` must be a positive integer, got {sampling_rate!r}")
        is_numpy = not isinstance(waveform, torch.Tensor)
        wave = torch.as_tensor(np.asarray(waveform, dtype=np.float32) if is_numpy else waveform).float()
        if wave.ndim not in (1, 2) or wave.shape[-1] == 0:
            raise ValueError(f"augmentation: expected a non-empty 1-D or [channels, samples] waveform, got shape {tuple(wave.shape)}")
        generator = self.generator(key)
        target = wave
        with torch.no_grad():
            for step in self.steps:
                if float(torch.rand((), generator=generator)) < step.p:
                    wave = step.apply(wave, int(sampling_rate), generator)
                if step.changes_voice:
                    target = wave
        if not return_target:
            return wave.numpy() if is_numpy else wave
        return (wave.numpy(), target.numpy()) if is_numpy else (wave, target)

    def map_function(self, audio_column: str = "audio", epoch: int = 0, target_column: str | None = None):
        """``fn(batch, indices)`` for ``dataset.map(fn, batched=True, with_indices=True)``: each row's audio augmented
        with key ``(epoch, index)`` and written back as ``{"array", "sampling_rate"}``; with ``target_column``, the
        target of ``return_target`` goes there too."""
        from ..models.unit_encoder import decode_audio

        def augment(batch, indices):
            out, targets = [], []
            for item, index in zip(batch[audio_column], indices):
                array, rate = decode_audio(item)
                result = self(array, rate, key=(epoch, index), return_target=target_column is not None)
                wave, target = result if target_column is not None else (result, None)
                out.append({"array": wave, "sampling_rate": rate})
                targets.append({"array": target, "sampling_rate": rate})
            return {audio_column: out, **({target_column: targets} if target_column is not None else {})}

        return augment
