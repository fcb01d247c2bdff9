"""Real recorded speech with transcripts, for evaluations that synthetic speech cannot stand in for.

Sources that need no download at run time:
- ``librivox``: five LibriVox clips (one male reader, "Sense and Sensibility", 16 kHz, 3-7 s each) with transcripts,
  from Debian's ``pocketsphinx-testdata`` package (``/usr/share/pocketsphinx/test/data/librivox``).
- ``cards``: five short clips of another speaker naming playing cards ("ten of clubs", 16 kHz, 1-3.5 s each) from
  the same package (``.../data/cards``); resemblyzer's speaker similarity to the LibriVox reader is 0.65 (0.80 and
  0.85 within each set), so together they are two voices.
- ``alsa``: eight short clips of a female voice naming speaker positions ("front left", ...), from Debian's
  ``alsa-utils`` (``/usr/share/sounds/alsa``); the transcript is the file name.
- any folder of ``x.wav`` + ``x.txt`` pairs (`read_audio_dir`), and any local `datasets` data with an audio and a text
  column (`load_local_dataset` + `audio_text_columns`).

Every source returns ``(audio, texts)``: audio as file paths or ``{"array", "sampling_rate"}`` dicts, one per text.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

LIBRIVOX_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")
CARDS_DIR = Path("/usr/share/pocketsphinx/test/data/cards")
ALSA_SOUNDS_DIR = Path("/usr/share/sounds/alsa")
#: name -> (folder, the Debian package that installs it)
REAL_SPEECH_SOURCES = {
    "librivox": (LIBRIVOX_DIR, "pocketsphinx-testdata"),
    "cards": (CARDS_DIR, "pocketsphinx-testdata"),
    "alsa": (ALSA_SOUNDS_DIR, "alsa-utils"),
}
_TRANSCRIPTION_LINE = re.compile(r"^\s*(?:<s>)?\s*(.*?)\s*(?:</s>)?\s*\(([^()]+)\)\s*$")


def _require_folder(name: str) -> Path:
    folder, package = REAL_SPEECH_SOURCES[name]
    if not folder.is_dir():
        raise FileNotFoundError(f"the {name!r} real-speech clips are not installed ({folder} is missing): "
                                f"`sudo apt-get install {package}`")  # fmt: skip
    return folder


def librivox_clips(folder=None) -> tuple[list[str], list[str]]:
    """`(wav paths, transcripts)` of pocketsphinx-testdata's LibriVox clips (sorted by id)."""
    return _transcribed_clips(Path(folder) if folder is not None else _require_folder("librivox"), "transcription")


def cards_clips(folder=None) -> tuple[list[str], list[str]]:
    """`(wav paths, transcripts)` of pocketsphinx-testdata's playing-card clips (sorted by id)."""
    return _transcribed_clips(Path(folder) if folder is not None else _require_folder("cards"), "cards.transcription")


def _transcribed_clips(folder: Path, name: str) -> tuple[list[str], list[str]]:
    """A pocketsphinx test folder: ``name`` lists ``<s> words </s> (id)``, one line a clip ``id.wav``."""
    transcription = folder / name
    if not transcription.is_file():
        raise FileNotFoundError(f"{folder}: no {name!r} file (expected pocketsphinx-testdata's layout)")
    texts = {}
    for number, line in enumerate(transcription.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        match = _TRANSCRIPTION_LINE.match(line)
        if match is None:
            raise ValueError(f"{transcription}:{number}: expected '<s> words </s> (id)', got {line!r}")
        texts[match.group(2)] = match.group(1)
    missing = [key for key in texts if not (folder / f"{key}.wav").is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: transcribed clips without a .wav file: {missing}")
    keys = sorted(texts)
    return [str(folder / f"{key}.wav") for key in keys], [texts[key] for key in keys]


def alsa_clips(folder=None) -> tuple[list[str], list[str]]:
    """`(wav paths, transcripts)` of alsa-utils' spoken speaker positions ("Front_Left.wav" -> "front left")."""
    folder = Path(folder) if folder is not None else _require_folder("alsa")
    wavs = sorted(p for p in folder.glob("*.wav") if p.stem.lower() != "noise")
    if not wavs:
        raise FileNotFoundError(f"{folder} holds no spoken .wav clips")
    return [str(p) for p in wavs], [p.stem.replace("_", " ").lower() for p in wavs]


def load_real_speech(name: str) -> tuple[list[str], list[str]]:
    """`(wav paths, transcripts)` of an installed real-speech source: ``"librivox"``, ``"cards"`` or ``"alsa"``."""
    if name not in REAL_SPEECH_SOURCES:
        raise ValueError(f"unknown real-speech source {name!r}; choose from {sorted(REAL_SPEECH_SOURCES)}")
    return {"librivox": librivox_clips, "cards": cards_clips, "alsa": alsa_clips}[name]()


def read_audio_dir(directory) -> tuple[list[str], list[str]]:
    """`(wav paths, transcripts)` of a folder holding ``x.wav`` + ``x.txt`` pairs (sorted by name)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"audio folder {str(directory)!r} does not exist")
    wavs = sorted(directory.glob("*.wav"))
    if not wavs:
        raise ValueError(f"audio folder {str(directory)!r} holds no .wav files")
    missing = [w.name for w in wavs if not w.with_suffix(".txt").is_file()]
    if missing:
        raise FileNotFoundError(f"{directory}: no transcript (.txt next to the .wav) for {missing[:5]}")
    from .corpus import read_text_file  # names a transcript that is not UTF-8 text, or is empty

    texts = [" ".join(read_text_file(w.with_suffix(".txt"))) for w in wavs]
    return [str(w) for w in wavs], texts


def write_audio_dir(audio_files, texts, directory) -> Path:
    """Copy wav files and their transcripts into the ``x.wav`` + ``x.txt`` layout of `read_audio_dir`."""
    from ..utils import atomic_save_directory

    if len(audio_files) != len(texts):
        raise ValueError(f"got {len(audio_files)} audio files for {len(texts)} texts")

    def write(tmp):
        tmp = Path(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        for source, text in zip(audio_files, texts):
            if Path(source).suffix.lower() != ".wav":
                raise ValueError(f"{source}: only .wav files can be copied into an audio folder")
            shutil.copyfile(source, tmp / Path(source).name)
            (tmp / Path(source).with_suffix(".txt").name).write_text(text.strip() + "\n", encoding="utf-8")

    atomic_save_directory(directory, write)
    return Path(directory)


_DATA_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def load_local_dataset(spec, split: str | None = None):
    """A local `datasets.Dataset`: a `save_to_disk` folder, a data file (csv/json/jsonl/parquet) or a folder that
    `load_dataset` reads (audiofolder with ``metadata.csv``, ...). Of a DatasetDict, `split` (default: the first)."""
    import datasets

    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"dataset {spec} does not exist")
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        ds = datasets.load_from_disk(str(path))
    elif path.is_file():
        builder = _DATA_FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise ValueError(f"dataset file {spec}: unsupported type {path.suffix!r} ({sorted(_DATA_FILE_BUILDERS)})")
        kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        ds = datasets.load_dataset(builder, data_files=str(path), **kwargs)
    else:
        ds = datasets.load_dataset("audiofolder", data_dir=str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split is not None and split not in ds:
            raise ValueError(f"dataset {spec} has no split {split!r} (splits: {list(ds)})")
        ds = ds[split or next(iter(ds))]
    return ds


def audio_text_columns(ds, audio_column: str = "audio", text_column: str = "text", base_dir=None):
    """`(audio, texts)` of a dataset: audio as ``{"array", "sampling_rate"}`` dicts (an `Audio` column) or file paths
    (a string column; relative paths are taken from `base_dir`)."""
    for column in (audio_column, text_column):
        if column not in ds.column_names:
            raise ValueError(f"the dataset has no column {column!r} (columns: {ds.column_names})")
    texts = [str(t) for t in ds[text_column]]
    if isinstance(ds.features[audio_column], str) or getattr(ds.features[audio_column], "dtype", None) == "string":
        base = Path(base_dir) if base_dir is not None else Path(".")
        audio = [str(p if Path(p).is_absolute() else base / p) for p in ds[audio_column]]
        missing = [p for p in audio if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"audio files in column {audio_column!r} do not exist: {missing[:3]}")
        return audio, texts
    return [_decoded(item) for item in ds[audio_column]], texts


def _decoded(item) -> dict:
    """``{"array", "sampling_rate"}`` of a decoded `datasets.Audio` value (a torchcodec decoder or a dict)."""
    from ..models.unit_encoder import decode_audio

    array, rate = decode_audio(item)
    return {"array": array, "sampling_rate": rate}


__all__ = [
    "ALSA_SOUNDS_DIR",
    "LIBRIVOX_DIR",
    "REAL_SPEECH_SOURCES",
    "alsa_clips",
    "audio_text_columns",
    "librivox_clips",
    "load_local_dataset",
    "load_real_speech",
    "read_audio_dir",
    "write_audio_dir",
]
