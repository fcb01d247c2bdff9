"""Turn a list of texts into a `datasets.Dataset` of synthetic speech (espeak-ng, or Festival for a
``"festival:<name>"`` voice) with word timestamps, cached on disk."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..utils import plain_mode
from .espeak import EspeakSynthesizer, SynthesisResult, espeak_version
from .festival import FestivalSynthesizer, festival_version, is_festival_voice, speak_requests

#: Bump when the rows written for the same inputs change (columns, encoding, alignment rule).
FORMAT_VERSION = 1
ASSIGNMENTS = ("cycle", "random", "product")


def default_cache_dir() -> Path:
    """``$HF_SLM_CACHE/speech`` if ``HF_SLM_CACHE`` is set, else ``~/.cache/hf_slm/speech``."""
    root = os.environ.get("HF_SLM_CACHE")
    return Path(root).expanduser() / "speech" if root else Path.home() / ".cache" / "hf_slm" / "speech"


def dataset_features(sampling_rate: int):
    """The columns of `synthesize_dataset`'s output."""
    from datasets import Audio, Features, List, Value

    return Features(
        {
            "audio": Audio(sampling_rate=sampling_rate),
            "text": Value("string"),
            "voice": Value("string"),
            "rate": Value("int32"),
            "pitch": Value("int32"),
            "words": List(Value("string")),
            "word_start": List(Value("float32")),
            "word_end": List(Value("float32")),
            "duration": Value("float32"),
        }
    )


def assign_voices(num_texts, voices, rates, pitches, assignment="cycle", seed=0) -> list[tuple[int, str, int, int]]:
    """Which (text index, voice, rate, pitch) to synthesise.

    - ``"cycle"``: text ``i`` gets combination ``i % n`` of ``product(voices, rates, pitches)``,
      so every combination is used equally often (within one).
    - ``"random"``: each text gets a combination drawn uniformly with ``numpy`` seeded by ``seed``.
    - ``"product"``: every text is spoken with every combination (``len(texts) * n`` rows, text-major).
    """
    combinations = list(itertools.product(voices, rates, pitches))
    if assignment == "cycle":
        return [(i, *combinations[i % len(combinations)]) for i in range(num_texts)]
    if assignment == "random":
        picks = np.random.default_rng(seed).integers(0, len(combinations), size=num_texts)
        return [(i, *combinations[int(pick)]) for i, pick in enumerate(picks)]
    if assignment == "product":
        return [(i, *combination) for i in range(num_texts) for combination in combinations]
    raise ValueError(f"`assignment` must be one of {ASSIGNMENTS}, got {assignment!r}.")


def _as_tuple(name, values):
    if isinstance(values, (str, int, np.integer)):
        values = (values,)
    values = tuple(values)
    if not values:
        raise ValueError(f"`{name}` must not be empty.")
    return values


def validate_texts(texts) -> list[str]:
    """`texts` as a list, refusing a bare str, an empty list or an empty item (named by index)."""
    if isinstance(texts, str):
        raise TypeError("`texts` must be a list of strings, got a single str (wrap it in a list).")
    texts = list(texts)
    if not texts:
        raise ValueError("`texts` is empty: there is nothing to synthesise.")
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"`texts[{index}]` must be a non-empty string, got {text!r}.")
    return texts


def cache_key(texts, voices, rates, pitches, sampling_rate, assignment, seed) -> str:
    """Hash of everything that determines the rows: inputs, espeak-ng (and, with its voices, Festival) version and
    `FORMAT_VERSION`."""
    digest = hashlib.sha256()
    header = {
        "voices": list(voices),
        "rates": [int(r) for r in rates],
        "pitches": [int(p) for p in pitches],
        "sampling_rate": int(sampling_rate),
        "assignment": assignment,
        "seed": int(seed),
        "espeak": espeak_version(),
        **({"festival": festival_version()} if any(map(is_festival_voice, voices)) else {}),
        "format": FORMAT_VERSION,
        "num_texts": len(texts),
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for text in texts:
        digest.update(b"\x00" + text.encode("utf-8"))
    return digest.hexdigest()[:24]


# ------------------------------------------------------------------------------------------------
# workers: synthesis only (torch only for a Festival HTS pitch shift, on one thread), so forking stays safe
_SYNTHESIZERS: dict[tuple, EspeakSynthesizer] = {}
#: Jobs a worker takes at once: one Festival process speaks all of a batch's Festival jobs.
JOB_BATCH = 64


def make_synthesizer(voice: str = "en-us", **settings):
    """`FestivalSynthesizer` for a ``"festival:<name>"`` voice, else `EspeakSynthesizer`, with ``settings`` (``rate``,
    ``pitch``; espeak-ng also ``word_gap``, ``pitch_range``, ``silence_threshold_db``); both check their arguments."""
    return (FestivalSynthesizer if is_festival_voice(voice) else EspeakSynthesizer)(voice, **settings)


def synthesize_jobs(jobs) -> list[tuple[int, np.ndarray, int, list, list, list]]:
    """`(index, text, voice, rate, pitch)` jobs -> int16 PCM and word times each, in order; a pool worker. espeak-ng
    jobs one by one, all Festival jobs in one Festival process."""
    jobs = list(jobs)
    results: dict[int, SynthesisResult] = {}
    festival = [(position, job) for position, job in enumerate(jobs) if is_festival_voice(job[2])]
    if festival:
        spoken = speak_requests([(text, voice.split(":", 1)[1], rate, pitch) for _, (_, text, voice, rate, pitch)
                                 in festival], labels=[f"texts[{job[0]}]" for _, job in festival])  # fmt: skip
        results.update({position: result for (position, _), result in zip(festival, spoken)})
    for position, (index, text, voice, rate, pitch) in enumerate(jobs):
        if position in results:
            continue
        key = (voice, rate, pitch)
        if key not in _SYNTHESIZERS:
            _SYNTHESIZERS[key] = EspeakSynthesizer(voice, rate=rate, pitch=pitch)
        try:
            results[position] = _SYNTHESIZERS[key].synthesize(text)
        except ValueError as error:
            raise ValueError(f"texts[{index}]: {error}") from None
    out = []
    for position, (index, *_) in enumerate(jobs):
        result = results[position]
        pcm = np.round(result.waveform * 32768.0).clip(-32768, 32767).astype(np.int16)  # exact: both give int16
        out.append((index, pcm, result.sampling_rate, result.words, result.word_start, result.word_end))
    return out


def synthesize_job(job) -> tuple[int, np.ndarray, int, list, list, list]:
    """One `(index, text, voice, rate, pitch)` job -> int16 PCM and word times."""
    return synthesize_jobs([job])[0]


def _results(jobs, num_proc):
    batches = [jobs[start : start + JOB_BATCH] for start in range(0, len(jobs), JOB_BATCH)]
    if num_proc == 1:
        for batch in batches:
            yield from synthesize_jobs(batch)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(num_proc) as pool:
        for results in pool.imap(synthesize_jobs, batches):
            yield from results


# ------------------------------------------------------------------------------------------------
class Resampler:
    """torchaudio resampling from espeak-ng's rate, one kernel per rate pair."""

    def __init__(self, target_rate):
        self.target_rate = target_rate
        self._transforms = {}

    def __call__(self, waveform: np.ndarray, rate: int) -> np.ndarray:
        if rate == self.target_rate:
            return waveform.astype(np.float32)
        import torch
        import torchaudio

        # One short 1-D signal gains nothing from intra-op threads; on a busy machine they cost 10-20x. Building the
        # kernel runs torch ops too: in a worker forked from a parent whose OpenMP pool ran, a multi-threaded op
        # deadlocks in libgomp (seen in `synthesize_corpus(num_proc=2)`), so both run on one thread.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            if rate not in self._transforms:
                self._transforms[rate] = torchaudio.transforms.Resample(rate, self.target_rate)
            with torch.no_grad():
                return self._transforms[rate](torch.from_numpy(waveform.astype(np.float32))).numpy()
        finally:
            torch.set_num_threads(threads)


def wav_bytes(waveform: np.ndarray, sampling_rate: int) -> bytes:
    """16-bit WAV file bytes, the form a `datasets.Audio` column stores."""
    import io

    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(waveform, -1.0, 1.0), sampling_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@contextlib.contextmanager
def _datasets_progress_bars(enabled: bool):
    import datasets

    was_enabled = not datasets.are_progress_bars_disabled()
    if not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled and not enabled:
            datasets.enable_progress_bars()


def synthesize_dataset(
    texts: Sequence[str],
    voices: Sequence[str] | str = ("en-us",),
    rates: Sequence[int] | int = (175,),
    pitches: Sequence[int] | int = (50,),
    sampling_rate: int = 16000,
    assignment: str = "cycle",
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    num_proc: int = 1,
    show_progress: bool = True,
):
    """Speak every text with espeak-ng and return a `datasets.Dataset`, cached on disk.

    Args:
        texts (`Sequence[str]`): the sentences to speak (plain text).
        voices, rates, pitches: espeak-ng voices (`list_voices()`) or Festival ones (``"festival:<name>"``,
            `festival_voices()`), rates in words per minute
            (80-450) and base pitches (0-99); see `assign_voices` for how they meet the texts.
        sampling_rate (`int`, defaults to 16000): rate of the stored audio (espeak-ng's 22050 Hz is
            resampled with torchaudio).
        assignment (`str`, defaults to `"cycle"`): `"cycle"`, `"random"` or `"product"`.
        seed (`int`): seed of the `"random"` assignment.
        cache_dir (`str`, *optional*): where finished datasets are kept, one folder per cache key
            (default `default_cache_dir()`). A second call with the same inputs loads that folder.
        num_proc (`int`, defaults to 1): worker processes for synthesis (espeak-ng is one per process).
        show_progress (`bool`, defaults to `True`): a tqdm bar over the utterances.

    Returns:
        `datasets.Dataset` with columns ``audio`` (`Audio(sampling_rate)`, stored as 16-bit WAV
        bytes), ``text``, ``voice``, ``rate``, ``pitch``, ``words`` (list of str), ``word_start`` and
        ``word_end`` (lists of float seconds) and ``duration`` (seconds), in the order of
        `assign_voices`.

    The folder is written by `save_to_disk` into a temporary folder beside the target and renamed
    into place, so an interrupted run never leaves a half-written cache.
    """
    from datasets import load_from_disk

    texts = validate_texts(texts)
    voices = _as_tuple("voices", voices)
    rates = _as_tuple("rates", rates)
    pitches = _as_tuple("pitches", pitches)
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
        raise ValueError(f"`sampling_rate` must be a positive integer, got {sampling_rate!r}.")
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"`assignment` must be one of {ASSIGNMENTS}, got {assignment!r}.")
    if isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1:
        raise ValueError(f"`num_proc` must be a positive integer, got {num_proc!r}.")
    for voice, rate, pitch in itertools.product(voices, rates, pitches):
        make_synthesizer(voice, rate=rate, pitch=pitch)  # bad voice/rate/pitch fails here, before any work

    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache_root / cache_key(texts, voices, rates, pitches, sampling_rate, assignment, seed)
    if (target / "state.json").is_file():
        return load_from_disk(str(target))

    cache_root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(cache_root)
    jobs = [(index, texts[index], voice, int(rate), int(pitch)) for index, voice, rate, pitch in
            assign_voices(len(texts), voices, rates, pitches, assignment, seed)]  # fmt: skip
    temporary = cache_root / f".{target.name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _build(jobs, sampling_rate, num_proc, show_progress, temporary)
        try:
            os.replace(temporary / "dataset", target)
        except OSError:
            if not (target / "state.json").is_file():  # not a concurrent builder that finished first
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return load_from_disk(str(target))


def _build(jobs, sampling_rate, num_proc, show_progress, temporary: Path):
    from datasets import Dataset
    from tqdm.auto import tqdm

    resample = Resampler(sampling_rate)

    def rows():
        progress = tqdm(total=len(jobs), desc="synthesis", unit="utt", disable=not show_progress)
        with progress:
            for (_, text, voice, rate, pitch), (_, pcm, espeak_rate, words, starts, ends) in zip(
                jobs, _results(jobs, num_proc), strict=True
            ):  # imap keeps the order of the jobs
                waveform = resample(pcm.astype(np.float32) / 32768.0, espeak_rate)
                yield {
                    "audio": {"bytes": wav_bytes(waveform, sampling_rate), "path": None},
                    "text": text,
                    "voice": voice,
                    "rate": rate,
                    "pitch": pitch,
                    "words": words,
                    "word_start": starts,
                    "word_end": ends,
                    "duration": len(waveform) / sampling_rate,
                }
                progress.update(1)

    from datasets.exceptions import DatasetGenerationError

    temporary.mkdir(parents=True)
    with _datasets_progress_bars(False):
        try:
            dataset = Dataset.from_generator(
                rows, features=dataset_features(sampling_rate), cache_dir=str(temporary / "build"),
                fingerprint=uuid.uuid4().hex,
            )  # fmt: skip
        except DatasetGenerationError as error:  # show our error (which text, why), not datasets' wrapper
            raise (error.__cause__ or error) from None
        dataset.save_to_disk(str(temporary / "dataset"))
    del dataset


def _remove_stale_temporaries(cache_root: Path):
    """Remove temporary folders of builds on this host whose process is gone (killed mid-build)."""
    host = socket.gethostname()
    for path in cache_root.glob(".*.tmp-*"):
        try:
            rest = path.name.split(".tmp-", 1)[1]
            owner_host, pid, _ = rest.rsplit("-", 2)
            if owner_host != host:
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


def write_wav(path: str | os.PathLike, waveform, sampling_rate: int) -> Path:
    """Write a float waveform as 16-bit PCM wav next to ``path`` under a temporary name, then rename it: a crash
    never leaves a truncated file. The one wav writer of the package (CLI, demo, evaluation reports use it)."""
    import soundfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.wav", dir=path.parent)
    os.close(handle)
    try:
        soundfile.write(temporary, np.clip(np.asarray(waveform, dtype=np.float32), -1.0, 1.0), int(sampling_rate), subtype="PCM_16")
        os.chmod(temporary, plain_mode(directory=False))  # mkstemp makes it private; a wav is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def synthesize_to_wav(text: str, path: str | os.PathLike, sampling_rate: int | None = None, **voice) -> SynthesisResult:
    """Speak ``text`` into a WAV file (16-bit PCM) and return the `SynthesisResult`.

    ``voice`` takes `EspeakSynthesizer`'s arguments (``voice``, ``rate``, ``pitch``, ``word_gap``), or for a
    ``"festival:<name>"`` voice `FestivalSynthesizer`'s (``voice``, ``rate``, ``pitch``).
    ``sampling_rate`` resamples from espeak-ng's 22050 Hz. The file is written next to ``path``
    under a temporary name and renamed, so a crash never leaves a truncated file.
    """
    result = make_synthesizer(**voice).synthesize(text)
    if sampling_rate is not None and sampling_rate != result.sampling_rate:
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
            raise ValueError(f"`sampling_rate` must be a positive integer, got {sampling_rate!r}.")
        result.waveform = Resampler(int(sampling_rate))(result.waveform, result.sampling_rate)
        result.sampling_rate = int(sampling_rate)
    write_wav(path, result.waveform, result.sampling_rate)
    return result


__all__ = [
    "write_wav",
    "ASSIGNMENTS",
    "FORMAT_VERSION",
    "assign_voices",
    "cache_key",
    "dataset_features",
    "default_cache_dir",
    "make_synthesizer",
    "synthesize_dataset",
    "synthesize_to_wav",
]
