"""Many voices over a large text: espeak-ng (and Festival) synthesis as a cached, resumable, parallel `datasets.map`.

`synthesize_dataset` (builder.py) writes one cache folder when the whole set is done; for tens of hours that is an
hour of work lost to a kill. `synthesize_corpus` splits the utterances into chunks, and each chunk is one
``datasets.map(num_proc=...)`` whose Arrow files are its cache: a rerun loads finished chunks (and the finished shards
of a half-done chunk, datasets' own per-shard cache) and synthesises only the rest. Rows are those of
`synthesize_dataset` (same columns, same audio for the same text / voice / rate / pitch).

`open_vocabulary_speech` speaks one side of the open-vocabulary split (`load_text_split`: WordNet examples +
fortunes, no evaluation sentence and no held-out word on the train side) over all English voices and variants.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .builder import (
    Resampler,
    make_synthesizer,
    synthesize_jobs,
    validate_texts,
    wav_bytes,
    assign_voices,
    cache_key,
    dataset_features,
    default_cache_dir,
)
from .espeak import list_variants, list_voices
from .festival import festival_voices

#: Bump when the chunk layout or the rows change.
CORPUS_FORMAT_VERSION = 1


def english_voices(variants="all", exclude_variants=()) -> list[str]:
    """Every installed English espeak-ng voice (``en-us``, ``en-gb``, ``en-gb-scotland``, ...), alone and with each
    variant: ``variants="all"`` (`list_variants()`), a list of variant names, or ``()`` for the base voices only."""
    bases = sorted({voice.languages[0] for voice in list_voices("en") if voice.languages})
    if not bases:
        raise ValueError("espeak-ng has no English voice installed (`espeak-ng --voices=en` lists none)")
    chosen = list_variants() if variants == "all" else list(variants)
    unknown = sorted(set(chosen) - set(list_variants()))
    if unknown:
        raise ValueError(f"unknown espeak-ng variant(s) {unknown}; `hf_slm.data.list_variants()` lists them")
    chosen = [v for v in chosen if v not in set(exclude_variants)]
    return [base + suffix for base in bases for suffix in ["", *(f"+{v}" for v in chosen)]]


#: Keywords that `corpus_voices` expands.
VOICE_KEYWORDS = ("english", "festival")


def corpus_voices(voices) -> list[str]:
    """A voice list from names and keywords, in order without repeats: ``"english"`` is `english_voices()` (espeak-ng:
    8 accents x 101 variants + the plain ones), ``"festival"`` is `festival_voices()` (Festival's English voices,
    made from human recordings; an error when none is installed). A str is split at commas (``"english,festival"``)."""
    if isinstance(voices, str):
        voices = [item.strip() for item in voices.split(",") if item.strip()]
    out: dict[str, None] = {}  # ordered, without repeats
    for voice in voices:
        if voice == "english":
            expanded = english_voices()
        elif voice == "festival":
            expanded = festival_voices()
            if not expanded:
                from .festival import festival_binary

                festival_binary()  # names the missing program with an install hint
                raise ValueError("`voices` asks for 'festival', but Festival has no English voice installed "
                                 "(`apt-get install festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts`).")  # fmt: skip
        else:
            expanded = [voice]
        out.update(dict.fromkeys(expanded))
    return list(out)


def _synthesize_rows(batch, sampling_rate: int):
    """`datasets.map` function: a batch of (index, text, voice, rate, pitch) jobs -> `synthesize_dataset` rows (the
    batch's Festival jobs in one Festival process)."""
    resample = Resampler(sampling_rate)
    rows = {name: [] for name in dataset_features(sampling_rate)}
    jobs = list(zip(batch["index"], batch["text"], batch["voice"], batch["rate"], batch["pitch"]))
    for job, (_, pcm, native_rate, words, starts, ends) in zip(jobs, synthesize_jobs(jobs)):
        waveform = resample(pcm.astype(np.float32) / 32768.0, native_rate)
        for name, value in (("audio", {"bytes": wav_bytes(waveform, sampling_rate), "path": None}),
                            ("text", job[1]), ("voice", job[2]), ("rate", job[3]), ("pitch", job[4]),
                            ("words", words), ("word_start", starts), ("word_end", ends),
                            ("duration", len(waveform) / sampling_rate)):  # fmt: skip
            rows[name].append(value)
    return rows


def voice_probabilities(voices, voice_weights) -> tuple[list[str], list[float]]:
    """Voices and the share of utterances each gets, from groups and their weights.

    ``voices`` is a list (or comma-separated str) of groups: a voice or a keyword (`corpus_voices`). ``voice_weights``
    maps some groups to a relative share of the utterances (``{"english": 3, "festival": 1}``: a quarter spoken by
    Festival voices, whatever the groups' sizes), or is a str ``"english=3,festival=1"``. A group without a weight
    weighs its number of voices (every voice as likely as in an unweighted corpus). Within a group voices are equally
    likely; a voice in two groups adds both shares."""
    groups = [item.strip() for item in voices.split(",") if item.strip()] if isinstance(voices, str) else list(voices)
    if isinstance(voice_weights, str):
        pairs = [item.partition("=") for item in voice_weights.split(",") if item.strip()]
        bad = [name + sep + value for name, sep, value in pairs if not sep]
        if bad:
            raise ValueError(f"`voice_weights` items are 'group=weight', got {bad} in {voice_weights!r}")
        try:
            voice_weights = {name.strip(): float(value) for name, _, value in pairs}
        except ValueError:
            raise ValueError(f"`voice_weights` weights must be numbers, got {voice_weights!r}") from None
    unknown = sorted(set(voice_weights) - set(groups))
    if unknown:
        raise ValueError(f"`voice_weights` names {unknown}, which are not among the voices' groups {groups}")
    bad = {name: weight for name, weight in voice_weights.items() if not (weight >= 0 and np.isfinite(weight))}
    if bad or not any(voice_weights.get(group, 1) > 0 for group in groups):
        raise ValueError(f"`voice_weights` must be finite, >= 0 and not all 0, got {dict(voice_weights)}")
    shares: dict[str, float] = {}
    for group in groups:
        members = corpus_voices([group])
        total = float(voice_weights.get(group, len(members)))
        for voice in members:
            shares[voice] = shares.get(voice, 0.0) + total / len(members)
    names = [voice for voice, share in shares.items() if share > 0]
    total = sum(shares[voice] for voice in names)
    return names, [shares[voice] / total for voice in names]


def corpus_jobs(num_texts: int, voices, rates, pitches, renditions: int = 1, seed: int = 0, voice_weights=None):
    """``(text index, voice, rate, pitch)`` for every utterance: each text spoken ``renditions`` times, each time
    with a combination drawn uniformly (`assign_voices` ``"random"``, seed ``seed + r``), text-major. With
    ``voice_weights`` (see `voice_probabilities`) the voice is drawn with its share, then rate and pitch uniformly."""
    if voice_weights:
        names, probabilities = voice_probabilities(voices, voice_weights)
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(names), size=(num_texts, renditions), p=probabilities)
        rate_picks = rng.integers(0, len(rates), size=(num_texts, renditions))
        pitch_picks = rng.integers(0, len(pitches), size=(num_texts, renditions))
        return [(i, names[picks[i, r]], rates[rate_picks[i, r]], pitches[pitch_picks[i, r]])
                for i in range(num_texts) for r in range(renditions)]  # fmt: skip
    draws = [assign_voices(num_texts, voices, rates, pitches, "random", seed + r) for r in range(renditions)]
    return [draw[i] for i in range(num_texts) for draw in draws]


def synthesize_corpus(
    texts,
    voices="english",
    rates=(150, 175, 200),
    pitches=(35, 50, 65),
    renditions: int = 1,
    sampling_rate: int = 16000,
    seed: int = 0,
    cache_dir=None,
    num_proc: int = 1,
    chunk_size: int = 2000,
    show_progress: bool = True,
    voice_weights=None,
):
    """Speak every text ``renditions`` times, each with a random (voice, rate, pitch), into a `datasets.Dataset`.

    Args:
        texts: the sentences.
        voices: voices (a list, or one name; ``"festival:<name>"`` for a Festival one) or keywords, see `corpus_voices`.
        rates, pitches, sampling_rate, seed: as in `synthesize_dataset`; see `corpus_jobs` for the draws.
        cache_dir: root of the caches (default `default_cache_dir()`); this corpus lives in
            ``corpus-<key>/`` (key: texts, voices, rates, pitches, rate, seed, renditions, chunk size, espeak-ng).
        num_proc: synthesis processes per chunk (``datasets.map(num_proc=...)``).
        chunk_size: utterances per chunk, the unit of work a kill can lose.
        voice_weights: shares of the utterances per voice group, ``{"english": 3, "festival": 1}`` or
            ``"english=3,festival=1"`` (`voice_probabilities`); default: every voice equally likely.

    Returns the dataset (`synthesize_dataset`'s columns) in `corpus_jobs` order; finished chunks are memory-mapped.
    """
    import datasets

    texts = validate_texts(texts)
    groups = voices
    voices = corpus_voices(voices)
    rates, pitches = [int(r) for r in rates], [int(p) for p in pitches]
    for name, value, low in (("renditions", renditions, 1), ("num_proc", num_proc, 1), ("chunk_size", chunk_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    if not voices or not rates or not pitches:
        raise ValueError(f"voices, rates and pitches must not be empty (got {len(voices)}, {len(rates)}, {len(pitches)})")
    for voice in voices:  # a bad voice, rate or pitch fails here, before any work
        make_synthesizer(voice)
    for rate, pitch in zip(rates + rates[-1:] * len(pitches), pitches + pitches[-1:] * len(rates)):
        make_synthesizer(voices[0], rate=rate, pitch=pitch)

    layout = f"corpus-v{CORPUS_FORMAT_VERSION}-x{renditions}-chunk{chunk_size}"
    if voice_weights:
        names, probabilities = voice_probabilities(groups, voice_weights)  # a bad weight fails here, before any work
        layout += "-weighted-" + ",".join(f"{name}:{p:.6g}" for name, p in zip(names, probabilities))
    key = cache_key(texts, voices, rates, pitches, sampling_rate, layout, seed)
    folder = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / f"corpus-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = corpus_jobs(len(texts), groups if voice_weights else voices, rates, pitches, renditions, seed, voice_weights)
    features = dataset_features(sampling_rate)
    chunks = []
    num_chunks = -(-len(jobs) // chunk_size)
    with _progress_bars(show_progress):
        for number, start in enumerate(range(0, len(jobs), chunk_size)):
            part = jobs[start : start + chunk_size]
            table = datasets.Dataset.from_dict({
                "index": [i for i, *_ in part], "text": [texts[i] for i, *_ in part], "voice": [v for _, v, _, _ in part],
                "rate": [r for *_, r, _ in part], "pitch": [p for *_, p in part],
            })  # fmt: skip
            chunks.append(table.map(
                _synthesize_rows, batched=True, batch_size=64, fn_kwargs={"sampling_rate": sampling_rate},
                num_proc=num_proc if num_proc > 1 and len(part) > 1 else None, features=features,
                remove_columns=table.column_names, cache_file_name=str(folder / f"chunk-{number:05d}.arrow"),
                new_fingerprint=f"{key}-{number:05d}", desc=f"speech chunk {number + 1}/{num_chunks}",
            ))  # fmt: skip
    dataset = datasets.concatenate_datasets(chunks)
    summary = {"utterances": len(dataset), "texts": len(texts), "voices": len(voices), "chunks": num_chunks,
               "hours": round(float(np.sum(dataset["duration"])) / 3600, 3)}  # fmt: skip
    from ..utils import atomic_open

    with atomic_open(folder / "corpus.json", "w") as handle:
        handle.write(json.dumps(summary, indent=2) + "\n")
    return dataset


class _progress_bars:
    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        import datasets

        self.was = not datasets.are_progress_bars_disabled()
        (datasets.enable_progress_bars if self.enabled else datasets.disable_progress_bars)()

    def __exit__(self, *exc):
        import datasets

        (datasets.enable_progress_bars if self.was else datasets.disable_progress_bars)()


def open_vocabulary_speech(split: str = "train", limit: int | None = None, text_seed: int = 0,
                           sources=("wordnet", "fortunes"), split_options=None, **corpus_kwargs):  # fmt: skip
    """One side of the open-vocabulary split (`load_text_split` over ``sources``) spoken by `synthesize_corpus`.

    ``limit`` sentences drawn with ``text_seed``; ``split_options`` go to `split_texts`, ``corpus_kwargs`` to
    `synthesize_corpus` (``voices`` defaults to all English voices and variants). The train side holds no evaluation
    sentence and no held-out word.
    """
    from .corpus import load_text_split

    texts = load_text_split(split, sources=sources, limit=limit, seed=text_seed, **(split_options or {}))
    return synthesize_corpus(texts, **corpus_kwargs)


__all__ = [
    "CORPUS_FORMAT_VERSION", "VOICE_KEYWORDS", "corpus_jobs", "corpus_voices", "english_voices", "open_vocabulary_speech",
    "synthesize_corpus", "voice_probabilities",
]
