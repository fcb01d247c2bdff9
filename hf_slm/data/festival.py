"""Festival voices beside espeak-ng's: speech concatenated from (diphone) or modelled on (HTS) human recordings.

Why: espeak-ng is a formant synthesiser; every model trained only on it fails on recordings (docs/evaluation.md, "Real
recordings"). Debian main ships Festival with three English voices made from real speakers: ``kal_diphone`` and
``ked_diphone`` (American English males, diphones cut from recordings) and ``cmu_us_slt_arctic_hts`` (a female HTS
voice trained on CMU ARCTIC). Adding them to the encoder's training speech moved its error on LibriVox clips more
than any augmentation of espeak-ng speech did (docs/speech_llm.md).

A Festival voice is named ``"festival:<name>"`` wherever hf_slm takes a voice for synthesis (`synthesize_dataset`,
`synthesize_corpus`, `synthesize_to_wav`, the recipes' ``voices``); `festival_voices()` lists the installed ones.

Why a batch process and not a binding: Festival has no C API we could load, and ``festival --pipe`` buffers its
answers until stdin closes. One ``festival -b`` run speaks a whole list of texts (about 0.25 s to start, then
50-100x real time on one core), writing each WAV and its word / segment times to a temporary folder.

The same text, voice, rate and pitch give the same waveform in any process (tested).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .espeak import MAX_PITCH, MAX_RATE, MIN_PITCH, MIN_RATE, SynthesisResult

#: Voices of this backend are named with this prefix: ``"festival:kal_diphone"``.
FESTIVAL_PREFIX = "festival:"
#: espeak-ng's default rate, the rate at which a Festival voice speaks at its own pace.
NATURAL_RATE = 175
#: Semitones of F0 shift per pitch step away from 50 (pitch 0 / 99: about an octave's half down / up).
SEMITONES_PER_PITCH_STEP = 6.0 / 50
#: Festival's voice folders that hold English voices (Debian: ``/usr/share/festival/voices/{english,us}``).
ENGLISH_FOLDERS = ("english", "us")

_INSTALL_HINT = (
    "Install Festival and its English voices (`apt-get install festival festvox-kallpc16k festvox-kdlpc16k "
    "festvox-us-slt-hts` on Debian/Ubuntu), or put a `festival` binary on PATH (HF_SLM_FESTIVAL names another)."
)


class FestivalError(RuntimeError):
    """Festival could not be run or failed to speak."""


def festival_binary() -> str:
    """Path of the ``festival`` program (``HF_SLM_FESTIVAL`` or PATH); `FestivalError` with an install hint if none."""
    name = os.environ.get("HF_SLM_FESTIVAL", "festival")
    path = shutil.which(name)
    if path is None:
        raise FestivalError(f"Festival is not installed ({name!r} is not on PATH). {_INSTALL_HINT}")
    return path


def is_festival_voice(voice) -> bool:
    """Whether ``voice`` names a Festival voice (``"festival:<name>"``)."""
    return isinstance(voice, str) and voice.startswith(FESTIVAL_PREFIX)


def _run(script: str, timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``script`` (Scheme) with ``festival -b``. Festival prints Scheme errors and goes on, so callers check what
    was written; it exits non-zero only when it crashes."""
    with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False, encoding="utf-8") as handle:
        handle.write(script)
    try:
        done = subprocess.run([festival_binary(), "-b", handle.name], capture_output=True, text=True, timeout=timeout,
                              errors="replace")  # fmt: skip
    finally:
        os.unlink(handle.name)
    if check and done.returncode != 0:
        raise FestivalError(f"festival exited with status {done.returncode}: {(done.stderr or done.stdout)[-500:]}")
    return done


@functools.lru_cache(maxsize=None)
def _installed() -> tuple[tuple[str, str], ...]:
    """(voice, language folder) of every voice Festival finds on its voice path."""
    out = _run('(mapcar (lambda (dir) (format t "DIR\\t%s\\n" dir)) voice-path)'
               '(mapcar (lambda (v) (format t "VOICE\\t%s\\n" v)) (voice.list))', timeout=60).stdout  # fmt: skip
    lines = [line.split("\t", 1) for line in out.splitlines() if "\t" in line]
    folders = [Path(value) for kind, value in lines if kind == "DIR"]
    voices = []
    for kind, name in lines:
        if kind != "VOICE":
            continue
        language = next((path.parent.name for folder in folders for path in folder.glob(f"*/{name}") if path.is_dir()), "")
        voices.append((name, language))
    return tuple(voices)


@functools.lru_cache(maxsize=None)
def festival_version() -> str:
    """Festival's version line, plus its installed voices (part of the synthesis cache key)."""
    binary = festival_binary()
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    out = out.removeprefix(binary + ": ")  # it prints its own path first
    return out + " voices=" + ",".join(sorted(name for name, _ in _installed()))


def festival_voices(language: str | None = "english") -> list[str]:
    """Installed Festival voices as ``"festival:<name>"``: English ones by default (the ``english`` and ``us``
    voice folders), ``language=None`` for all. Empty when Festival is not installed."""
    try:
        installed = _installed()
    except FestivalError:
        return []
    folders = ENGLISH_FOLDERS if language == "english" else (language,)
    return sorted(FESTIVAL_PREFIX + name for name, folder in installed if language is None or folder in folders)


def _scheme_string(text: str) -> str:
    return '"' + " ".join(text.split()).replace("\\", "\\\\").replace('"', '\\"') + '"'


class FestivalSynthesizer:
    """Text to speech with a Festival voice, with word (and segment) timestamps, as `EspeakSynthesizer` gives them.

    Args:
        voice (`str`, *optional*, defaults to `"festival:kal_diphone"`): ``"festival:<name>"``; `festival_voices()`
            lists the installed ones.
        rate (`int`, *optional*, defaults to 175): words per minute on espeak-ng's scale, 80 to 450; 175 is the voice's
            own pace, other rates scale every duration by ``175 / rate`` (``Duration_Stretch``; HTS: ``-r``).
        pitch (`int`, *optional*, defaults to 50): 0 to 99, 50 the voice's own F0; each step away from 50 shifts F0
            by `SEMITONES_PER_PITCH_STEP` semitones (diphone voices: the intonation model's target mean and spread;
            HTS voices, whose engine in Festival 2.5 ignores ``-fm``: `torchaudio.functional.pitch_shift` of the
            waveform, which moves the formants with F0).

    Words are Festival's tokens (``"42"`` is one entry spoken "forty two", ``"world,"`` is ``"world"``), each from
    its first spoken word's start to its last one's end. Phones (with ``phonemes=True``) are Festival's segment
    names (``"hh"``, ``"ax"``, ``"pau"``), not espeak-ng mnemonics.
    """

    def __init__(self, voice: str = "festival:kal_diphone", rate: int = NATURAL_RATE, pitch: int = 50):
        for name, value, low, high in (("rate", rate, MIN_RATE, MAX_RATE), ("pitch", pitch, MIN_PITCH, MAX_PITCH)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
                raise ValueError(f"`{name}` must be an integer in [{low}, {high}], got {value!r}.")
        if not is_festival_voice(voice):
            raise ValueError(f"A Festival voice is named 'festival:<name>', got {voice!r}.")
        self.voice, self.rate, self.pitch = voice, int(rate), int(pitch)
        self.name = voice[len(FESTIVAL_PREFIX):]
        installed = {name for name, _ in _installed()}
        if self.name not in installed:
            raise ValueError(f"Unknown Festival voice {voice!r}; installed: {sorted(installed) or 'none'}. "
                             f"`hf_slm.data.festival_voices()` lists them. {_INSTALL_HINT}")  # fmt: skip
        self._sampling_rate = None

    def __repr__(self):
        return f"{type(self).__name__}(voice={self.voice!r}, rate={self.rate}, pitch={self.pitch})"

    @property
    def sampling_rate(self) -> int:
        """The voice's native rate (16 kHz for the diphone voices, 32 kHz for slt HTS), found by speaking once."""
        if self._sampling_rate is None:
            self._sampling_rate = self.synthesize("a").sampling_rate
        return self._sampling_rate

    def synthesize(self, text: str, phonemes: bool = False) -> SynthesisResult:
        """Speak ``text``; `ValueError` for empty text or text in which Festival speaks no word."""
        return self.synthesize_many([text], phonemes=phonemes)[0]

    __call__ = synthesize

    def synthesize_many(self, texts: list[str], phonemes: bool = False) -> list[SynthesisResult]:
        """Speak every text in one Festival process (the way to speak many); results in order."""
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"`texts[{index}]` must be a str, got {type(text).__name__}.")
        return speak_requests([(text, self.name, self.rate, self.pitch) for text in texts], phonemes=phonemes)


def _select_voice(name: str, rate: int, pitch: int) -> str:
    """Scheme that selects voice ``name`` at ``rate`` and ``pitch``; sets ``hf_slm_hts`` when it is an HTS voice."""
    semitones = (pitch - 50) * SEMITONES_PER_PITCH_STEP
    stretch = NATURAL_RATE / rate
    hts, base = f"{name}::hts_engine_params", f"hf_slm_base::{name}"
    # The voice's file loads on first selection; an HTS voice reads its engine parameters when selected, so it is
    # selected again after they are set (from a saved copy: selections do not accumulate). A diphone voice sets
    # int_lr_params when selected: scaled after.
    return f"""
(voice_{name})
(set! hf_slm_hts (symbol-bound? '{hts}))
(if hf_slm_hts
    (begin
      (if (not (symbol-bound? '{base})) (set! {base} {hts}))
      (set! {hts} (append {base} (list (list "-r" {1.0 / stretch:.6f}))))
      (voice_{name})
      (Parameter.set 'Duration_Stretch 1.0))
    (Parameter.set 'Duration_Stretch {stretch:.6f}))
(if (and (not hf_slm_hts) (symbol-bound? 'int_lr_params))
    (set! int_lr_params
          (mapcar (lambda (p) (if (member (car p) '(target_f0_mean target_f0_std))
                                  (list (car p) (* {2.0 ** (semitones / 12.0):.6f} (cadr p))) p))
                  int_lr_params)))
"""


def speak_requests(requests, phonemes: bool = False, labels=None) -> list[SynthesisResult]:
    """Speak ``(text, voice name, rate, pitch)`` requests, any mix of voices, in one Festival process; in order.
    Voices, rates and pitches are assumed checked (`FestivalSynthesizer` does); texts are checked here, and errors
    name a text by ``labels[i]`` (default ``texts[i]``)."""
    import soundfile

    requests = list(requests)
    labels = [f"texts[{index}]" for index in range(len(requests))] if labels is None else list(labels)
    for label, (text, *_) in zip(labels, requests):
        if not text.strip():
            raise ValueError(f"`{label}` is empty or whitespace only: there is nothing to synthesise.")
        if not any(character.isascii() and character.isalnum() for character in text):
            # Festival 2.5 crashes on "..." and on text in other scripts ("Привет", "日本語")
            raise ValueError(f"Festival speaks no word in `{label}` {text[:80]!r} (no ASCII letter or digit: its "
                             "English voices read Latin-script text).")
    if not requests:
        return []
    with tempfile.TemporaryDirectory(prefix="hf_slm_festival_") as folder:
        lines, selected = [_SPEAK_DEFINITION], None
        for index, (text, name, rate, pitch) in enumerate(requests):
            if (name, rate, pitch) != selected:
                lines.append(_select_voice(name, rate, pitch))
                selected = (name, rate, pitch)
            lines.append(f'(hf_slm_speak {_scheme_string(text)} "{folder}/{index}")')
        done = _run("\n".join(lines) + "\n", check=False)
        results = []
        for index, (label, (text, name, rate, pitch)) in enumerate(zip(labels, requests)):
            wav, times = Path(folder, f"{index}.wav"), Path(folder, f"{index}.txt")
            if not wav.is_file() or not times.is_file():
                how = f"crashed (status {done.returncode})" if done.returncode else "failed"
                raise FestivalError(f"Festival ({FESTIVAL_PREFIX}{name}) {how} speaking {label} {text[:80]!r}: "
                                    f"{(done.stderr or done.stdout)[-300:].strip()}")  # fmt: skip
            waveform, sampling_rate = soundfile.read(wav, dtype="float32")
            if pitch != 50 and Path(folder, f"{index}.hts").is_file():
                waveform = _pitch_shift(waveform, sampling_rate, (pitch - 50) * SEMITONES_PER_PITCH_STEP)
            results.append(_result(text, waveform, sampling_rate, times.read_text(encoding="utf-8"), phonemes))
    return results


# Token-level word times (first daughter word's start, last one's end) and segment starts, tab separated; a mark when
# the voice is an HTS one (its pitch is shifted afterwards); the WAV last, so a text that failed leaves no WAV.
_SPEAK_DEFINITION = r"""
(define (hf_slm_speak text stem)
  (let ((u (SynthText text)) (fd nil))
    (set! fd (fopen (string-append stem ".txt") "w"))
    (mapcar (lambda (tok)
              (let ((ws (item.relation.daughters tok 'Token)))
                (if ws (format fd "W\t%s\t%s\t%s\n" (item.name tok) (item.feat (car ws) "word_start")
                               (item.feat (car (reverse ws)) "word_end")))))
            (utt.relation.items u 'Token))
    (mapcar (lambda (s) (format fd "S\t%s\t%s\n" (item.name s) (item.feat s "segment_start")))
            (utt.relation.items u 'Segment))
    (fclose fd)
    (if hf_slm_hts (fclose (fopen (string-append stem ".hts") "w")))
    (utt.save.wave u (string-append stem ".wav") 'riff)))
"""


def _pitch_shift(waveform: np.ndarray, sampling_rate: int, semitones: float) -> np.ndarray:
    """``waveform`` shifted by ``semitones`` at the same length: `torchaudio.functional.pitch_shift`'s method (phase
    vocoder, then resampling), with the resampling ratio rounded to a multiple of 400 Hz: pitch_shift's own ratio
    (``2 ** (steps / bins)``) shares no factor with the rate, and its sinc kernel takes minutes to build."""
    import math

    import torch
    import torchaudio

    source_rate = round(sampling_rate * 2.0 ** (semitones / 12.0) / 400) * 400
    if source_rate == sampling_rate:
        return waveform
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a pool worker forked from a process whose OpenMP pool ran (see builder.Resampler)
    try:
        with torch.no_grad():
            signal, n_fft, hop = torch.from_numpy(waveform), 1024, 256
            window = torch.hann_window(n_fft)
            spectrum = torch.stft(signal, n_fft, hop, window=window, return_complex=True)
            rate = sampling_rate / source_rate
            advance = torch.linspace(0, math.pi * hop, spectrum.shape[-2])[..., None]
            stretched = torchaudio.functional.phase_vocoder(spectrum, rate, advance)
            signal = torch.istft(stretched, n_fft, hop, window=window, length=round(len(waveform) / rate))
            shifted = torchaudio.functional.resample(signal, source_rate, sampling_rate)
        shifted = shifted.numpy().astype(np.float32)[: len(waveform)]
        return np.pad(shifted, (0, len(waveform) - len(shifted)))
    finally:
        torch.set_num_threads(threads)


def _result(text: str, waveform: np.ndarray, sampling_rate: int, times: str, phonemes: bool) -> SynthesisResult:
    duration = len(waveform) / sampling_rate
    words, starts, ends, phones, phone_start = [], [], [], [], []
    for line in times.splitlines():
        fields = line.split("\t")
        if fields[0] == "W" and len(fields) == 4:
            start = min(max(float(fields[2]), 0.0), duration)
            words.append(fields[1])
            starts.append(start)
            ends.append(min(max(float(fields[3]), start), duration))
        elif fields[0] == "S" and len(fields) == 3:
            phones.append(fields[1])
            phone_start.append(min(max(float(fields[2]), 0.0), duration))
    if not words or not len(waveform):
        raise ValueError(f"Festival spoke no words for {text[:80]!r} (punctuation only?): nothing to synthesise.")
    for index in range(1, len(starts)):  # keep espeak-ng's contract: starts non-decreasing, end <= next start
        starts[index] = max(starts[index], starts[index - 1])
        ends[index - 1] = min(ends[index - 1], starts[index])
    return SynthesisResult(waveform.astype(np.float32), int(sampling_rate), words, starts, ends,
                           phones if phonemes else [], phone_start if phonemes else [])  # fmt: skip


__all__ = [
    "FESTIVAL_PREFIX",
    "FestivalError",
    "FestivalSynthesizer",
    "festival_binary",
    "festival_version",
    "festival_voices",
    "is_festival_voice",
    "speak_requests",
]
