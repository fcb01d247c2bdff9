"""A ctypes binding to libespeak-ng: waveform plus exact word timestamps, reproducibly.

Why ctypes and not the ``espeak-ng`` command line: the library reports a WORD event with the exact
sample at which each word starts, which the command line throws away.

Why the library is reloaded for every utterance: espeak-ng keeps synthesis state in C globals that
no API call resets (the pitch-flutter phase, the roughness cycle counter, the gain control, libc
``rand()`` for breath noise). Two calls with the same text therefore give slightly different
audio, even different lengths. Unloading the library (``dlclose``) and loading it again restores
every global to its initial value; with ``srand(0)`` before synthesis, the same text, voice, rate
and pitch give the identical waveform in any process, in any order. The reload costs about 4 ms
per utterance on one CPU core (synthesis itself is about 1000x real time).

Where the library and its data live:

- ``HF_SLM_ESPEAK_LIBRARY``: path of ``libespeak-ng.so.1`` (default: ``ctypes.util.find_library``).
- ``ESPEAK_DATA_PATH``: the ``espeak-ng-data`` folder or its parent (default: compiled into the
  library, ``/usr/lib/x86_64-linux-gnu/espeak-ng-data`` on Debian).
"""

from __future__ import annotations

import ctypes
import hashlib
import ctypes.util
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np

from .word_alignment import align_words

# --- constants from espeak-ng's speak_lib.h (API revision 12) ------------------------------------
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK, _EE_NOT_FOUND = 0, 2
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 3, 4, 7

#: espeak-ng's accepted speaking rates, in words per minute (``espeakRATE_MINIMUM/MAXIMUM``).
MIN_RATE, MAX_RATE = 80, 450
#: Base pitch range accepted here (espeak-ng's scale; 50 is the voice's normal pitch).
MIN_PITCH, MAX_PITCH = 0, 99
#: Largest word gap accepted, in units of 10 ms (a full second).
MAX_WORD_GAP = 100

_INSTALL_HINT = (
    "Install espeak-ng (`apt-get install espeak-ng` on Debian/Ubuntu, `brew install espeak-ng` on macOS), "
    "or point HF_SLM_ESPEAK_LIBRARY at libespeak-ng.so.1 and ESPEAK_DATA_PATH at its espeak-ng-data folder."
)


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or failed to synthesise."""


class _Event(ctypes.Structure):
    # espeak_EVENT: the union `id` is 8 bytes (char string[8] / pointer / int).
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character index into the text
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds (rounded)
        ("sample", ctypes.c_int),  # exact sample index from the start of this message
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte + NUL-terminated string)*, then NUL
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))

# espeak-ng is a process-wide singleton (C globals): every use goes through this lock.
_LOCK = threading.Lock()
_PRIVATE_COPY: str | None = None  # path of the private copy of the library (see _private_library_path)
_KEEP_LOADED: list = []
_VOICES_CACHE: list | None = None
_INFO_CACHE: tuple[str, str] | None = None
_LIBC = ctypes.CDLL(None)


def _reset_lock_after_fork():
    # A fork while another thread held the lock would leave the child's copy locked forever.
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


def _library_path() -> str:
    override = os.environ.get("HF_SLM_ESPEAK_LIBRARY")
    if override:
        if not os.path.isfile(override):
            raise EspeakError(f"HF_SLM_ESPEAK_LIBRARY={override!r} is not a file. {_INSTALL_HINT}")
        return override
    found = ctypes.util.find_library("espeak-ng")
    if found is None:
        raise EspeakError(f"libespeak-ng was not found on this machine. {_INSTALL_HINT}")
    return found


def _private_library_path() -> str:
    """A copy of the library that only this module opens, so ``dlclose`` really unloads it.

    If anything else in the process (another binding) held the shared library open, ``dlclose``
    would leave it loaded and synthesis would silently stop being reproducible. The copy lives in
    ``$TMPDIR/hf_slm_espeak-<uid>/``, named by the source's path, size and mtime, and is shared by
    all processes (worker processes exit without running clean-up handlers, so per-process copies
    would leak). The shared library itself is held open so that its dependencies (libpcaudio,
    libsonic, libpulse) stay loaded between utterances.
    """
    global _PRIVATE_COPY
    if _PRIVATE_COPY is not None and os.path.isfile(_PRIVATE_COPY):
        return _PRIVATE_COPY
    source = _library_path()
    try:
        _KEEP_LOADED.append(ctypes.CDLL(source))
    except OSError as error:
        raise EspeakError(f"Could not load {source}: {error}. {_INSTALL_HINT}") from error
    if os.sep not in source:  # a soname such as "libespeak-ng.so.1": find the file the loader chose
        source = _loaded_path() or source
    if os.sep not in source:  # no file to copy (no /proc): use the shared library
        _PRIVATE_COPY = source
        return source
    stat = os.stat(source)
    digest = hashlib.sha1(f"{os.path.realpath(source)}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), f"hf_slm_espeak-{getattr(os, 'getuid', lambda: 0)()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    target = os.path.join(folder, f"hf_slm-espeak-{digest}.so")
    if not os.path.isfile(target):
        temporary = f"{target}.{os.getpid()}.tmp"
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)  # atomic: concurrent processes never load a partial copy
    _PRIVATE_COPY = target
    return target


def _loaded_path() -> str | None:
    """The file behind a loaded library (Linux: from /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and os.path.basename(parts[5].strip()).startswith("libespeak-ng"):
                    return parts[5].strip()
    except OSError:
        pass
    return None


def _data_path() -> bytes | None:
    path = os.environ.get("ESPEAK_DATA_PATH")
    if not path:
        return None
    if not (os.path.isfile(os.path.join(path, "phontab")) or os.path.isfile(os.path.join(path, "espeak-ng-data", "phontab"))):
        raise EspeakError(
            f"ESPEAK_DATA_PATH={path!r} holds no espeak-ng data (no phontab in it or in its espeak-ng-data/). {_INSTALL_HINT}"
        )
    return os.fsencode(path)


class _Session:
    """One load-initialise-use-unload cycle of the library; use only under ``_LOCK``. ``phoneme_events`` asks the
    library for a PHONEME event at the start of every phoneme."""

    def __init__(self, phoneme_events: bool = False):
        self.options = _INITIALIZE_DONT_EXIT | (_INITIALIZE_PHONEME_EVENTS if phoneme_events else 0)

    def __enter__(self):
        path = _private_library_path()
        try:
            self.lib = ctypes.CDLL(path)
        except OSError as error:
            raise EspeakError(f"Could not load {path}: {error}. {_INSTALL_HINT}") from error
        lib = self.lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        self.sampling_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, _data_path(), self.options)
        if self.sampling_rate <= 0:
            self._unload()
            raise EspeakError(f"espeak_Initialize failed (espeak-ng data not found or unreadable). {_INSTALL_HINT}")
        return self

    def __exit__(self, *exc):
        self.lib.espeak_Terminate()
        self._unload()

    def _unload(self):
        import _ctypes

        handle = self.lib._handle
        del self.lib
        _ctypes.dlclose(handle)


@dataclass(frozen=True)
class VoiceInfo:
    """One espeak-ng voice: ``name`` or any of ``languages`` can be given to `EspeakSynthesizer`."""

    name: str
    identifier: str
    languages: tuple[str, ...]
    gender: str
    age: int


def list_voices(language: str | None = None) -> list[VoiceInfo]:
    """Voices installed with espeak-ng, optionally those whose language starts with ``language``.

    Variants are added with ``+``: ``"en-us+f3"`` (female 3), ``"en+m2"``, ``"en+whisper"``; their
    files are in ``espeak-ng-data/voices/!v``.

    >>> from hf_slm.data import list_voices
    >>> "en-us" in {lang for voice in list_voices("en") for lang in voice.languages}
    True
    """
    global _VOICES_CACHE
    if _VOICES_CACHE is None:
        with _LOCK, _Session() as session:
            voices = []
            array = session.lib.espeak_ListVoices(None)
            index = 0
            while array[index]:
                voice = array[index].contents
                voices.append(
                    VoiceInfo(
                        name=voice.name.decode("utf-8", "replace"),
                        identifier=(voice.identifier or b"").decode("utf-8", "replace"),
                        languages=_parse_languages(voice.languages),
                        gender={1: "male", 2: "female"}.get(voice.gender, "none"),
                        age=int(voice.age),
                    )
                )
                index += 1
        _VOICES_CACHE = voices
    if language is None:
        return list(_VOICES_CACHE)
    prefix = language.lower()
    return [voice for voice in _VOICES_CACHE if any(lang.lower().startswith(prefix) for lang in voice.languages)]


def _parse_languages(pointer: int | None) -> tuple[str, ...]:
    languages, offset = [], 0
    while pointer:
        if ctypes.string_at(pointer + offset, 1) == b"\x00":  # the priority byte of a terminator
            break
        name = ctypes.string_at(pointer + offset + 1)  # skip the priority byte
        languages.append(name.decode("utf-8", "replace"))
        offset += 2 + len(name)
    return tuple(languages)


def _library_info() -> tuple[str, str]:
    global _INFO_CACHE
    if _INFO_CACHE is None:
        with _LOCK, _Session() as session:
            data_path = ctypes.c_char_p()
            version = session.lib.espeak_Info(ctypes.byref(data_path)).decode()
            _INFO_CACHE = (version, os.fsdecode(data_path.value or b""))
    return _INFO_CACHE


def espeak_version() -> str:
    """The version string of the loaded libespeak-ng (``"1.51"``); part of the dataset cache key."""
    return _library_info()[0]


def list_variants() -> list[str]:
    """Voice variants (``"f3"``, ``"m2"``, ``"whisper"``...) that can follow a voice after ``+``."""
    folder = os.path.join(_library_info()[1], "voices", "!v")
    return sorted(name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name))) if os.path.isdir(folder) else []


def resolve_voice(voice: str) -> str:
    """The name to give espeak_SetVoiceByName for ``voice`` (a name, identifier or language, plus ``+variant``).

    espeak_SetVoiceByName knows names and identifiers ("en-us" matches "gmw/en-US") but not every
    language ("en-gb" is the language of "gmw/en"), and silently ignores an unknown variant.
    """
    base, _, variant = voice.partition("+")
    if variant and variant not in list_variants():
        raise ValueError(
            f"Unknown espeak-ng voice variant {variant!r} in {voice!r}. "
            "`hf_slm.data.list_variants()` lists them (e.g. 'f3', 'm2', 'whisper')."
        )
    base_lower = base.strip().lower()
    candidates = []
    for info in list_voices():
        identifier = info.identifier.lower()
        if base_lower in (info.name.lower(), identifier, identifier.rsplit("/", 1)[-1]):
            return info.identifier + (f"+{variant}" if variant else "")
        if base_lower in (language.lower() for language in info.languages):
            candidates.append(info)
    if candidates:  # the voice that lists this language first (espeak-ng's own preference)
        best = min(candidates, key=lambda info: [lang.lower() for lang in info.languages].index(base_lower))
        return best.identifier + (f"+{variant}" if variant else "")
    raise ValueError(
        f"Unknown espeak-ng voice {voice!r}. List the installed voices with `hf_slm.data.list_voices()` "
        "(or `espeak-ng --voices`); variants are added with '+', e.g. 'en-us+f3'."
    )


@dataclass
class SynthesisResult:
    """Audio of one utterance and where each spoken word lies in it.

    Attributes:
        waveform (`np.ndarray` of float32, shape `(num_samples,)`): mono audio in [-1, 1].
        sampling_rate (`int`): espeak-ng's native rate, 22050 Hz.
        words (`list[str]`): the written words espeak-ng spoke, one entry per espeak-ng word, in
            speaking order, without surrounding punctuation (``"don't"`` stays whole, ``"world."``
            becomes ``"world"``; a pair espeak-ng speaks as one word is one entry, ``"on the"``).
        word_start (`list[float]`): seconds where each word starts (espeak-ng's WORD event sample).
        word_end (`list[float]`): seconds where each word's audio ends (see `EspeakSynthesizer`).
        phones (`list[str]`): espeak-ng phoneme mnemonics in speaking order (``"k"``, ``"a"``, ``"@2"``; ``"_"`` and
            ``"_:"`` are pauses), when synthesised with ``phonemes=True``; else empty.
        phone_start (`list[float]`): seconds where each phoneme starts (its PHONEME event sample); a phoneme lasts
            until the next one starts, the last one until the end of the audio.
    """

    waveform: np.ndarray
    sampling_rate: int
    words: list[str] = field(default_factory=list)
    word_start: list[float] = field(default_factory=list)
    word_end: list[float] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    phone_start: list[float] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.waveform) / self.sampling_rate


class EspeakSynthesizer:
    """Text to speech with espeak-ng, with exact word timestamps.

    Args:
        voice (`str`, *optional*, defaults to `"en-us"`):
            A voice name, a language (``"en-us"``, ``"en-gb"``, ``"fr"``) or a language plus variant
            (``"en-us+f3"``). `list_voices()` lists them.
        rate (`int`, *optional*, defaults to 175):
            Speaking rate in words per minute, 80 to 450 (espeak-ng's default is 175).
        pitch (`int`, *optional*, defaults to 50):
            Base pitch, 0 to 99; 50 is the voice's normal pitch.
        pitch_range (`int`, *optional*, defaults to 50):
            Pitch range (intonation), 0 to 99: 0 is monotone, 50 the voice's normal range.
        word_gap (`int`, *optional*, defaults to 0):
            Extra pause between words in units of 10 ms (at the default rate), 0 to 100.
        silence_threshold_db (`float`, *optional*, defaults to -40.0):
            Where a word's audio ends: the end of the last 5 ms frame (frames counted from the
            word's start, up to the next word's start) whose RMS is within this many dB of the
            loudest frame of the utterance. Trailing silence (pauses at commas and sentence ends)
            is thus not counted as part of the word.

    Timestamps: espeak-ng emits a WORD event holding the exact output sample where the word starts;
    that sample is the word's start. One entry per WORD event: a written token that espeak-ng
    speaks as several words (``"42"`` -> "forty two") is one entry starting at its first spoken
    word, and frequent pairs that espeak-ng speaks as one word (``"on the"``, ``"in the"``,
    ``"of the"``) are one entry holding both. Tokens espeak-ng does not speak (a lone dash) are not
    listed. Starts are non-decreasing, ``start <= end <= next start``, and every value lies inside
    the audio.

    Example:

    ```python
    >>> from hf_slm.data import EspeakSynthesizer
    >>> result = EspeakSynthesizer("en-us", rate=175).synthesize("Hello world.")
    >>> result.words, result.sampling_rate
    (['Hello', 'world'], 22050)

    ```
    """

    def __init__(self, voice="en-us", rate=175, pitch=50, word_gap=0, silence_threshold_db=-40.0, pitch_range=50):
        if not isinstance(voice, str) or not voice.strip():
            raise ValueError(f"`voice` must be a non-empty string, got {voice!r}.")
        for name, value, low, high in (
            ("rate", rate, MIN_RATE, MAX_RATE),
            ("pitch", pitch, MIN_PITCH, MAX_PITCH),
            ("pitch_range", pitch_range, MIN_PITCH, MAX_PITCH),
            ("word_gap", word_gap, 0, MAX_WORD_GAP),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
                raise ValueError(f"`{name}` must be an integer in [{low}, {high}], got {value!r}.")
        if not silence_threshold_db < 0:
            raise ValueError(f"`silence_threshold_db` must be negative, got {silence_threshold_db!r}.")
        self.voice = voice
        self.rate = int(rate)
        self.pitch = int(pitch)
        self.pitch_range = int(pitch_range)
        self.word_gap = int(word_gap)
        self.silence_threshold_db = float(silence_threshold_db)
        self._espeak_name = resolve_voice(voice)
        with _LOCK, _Session() as session:
            self._select_voice(session)  # fail now, not on the first utterance
            self.sampling_rate = session.sampling_rate

    def __repr__(self):
        return (
            f"{type(self).__name__}(voice={self.voice!r}, rate={self.rate}, pitch={self.pitch}, word_gap={self.word_gap})"
        )

    def _select_voice(self, session: _Session):
        status = session.lib.espeak_SetVoiceByName(self._espeak_name.encode("utf-8"))
        if status != _EE_OK:
            raise EspeakError(f"espeak_SetVoiceByName({self._espeak_name!r}) failed for voice {self.voice!r}.")
        for parameter, value in (
            (_PARAM_RATE, self.rate),
            (_PARAM_PITCH, self.pitch),
            (_PARAM_RANGE, self.pitch_range),
            (_PARAM_WORDGAP, self.word_gap),
        ):
            if session.lib.espeak_SetParameter(parameter, value, 0) != _EE_OK:
                raise EspeakError(f"espeak_SetParameter({parameter}, {value}) failed.")

    def synthesize(self, text: str, phonemes: bool = False) -> SynthesisResult:
        """Speak ``text`` (plain UTF-8 text, no SSML) and return the audio with word timestamps (and, with
        ``phonemes=True``, phoneme timestamps from espeak-ng's PHONEME events; the audio is the same).

        Raises `ValueError` for empty text and for text in which espeak-ng speaks no word ("...").
        """
        if not isinstance(text, str):
            raise TypeError(f"`text` must be a str, got {type(text).__name__}.")
        if not text.strip():
            raise ValueError("`text` is empty or whitespace only: there is nothing to synthesise.")
        if "\x00" in text:
            raise ValueError("`text` contains a NUL character, which espeak-ng would treat as the end of the text.")
        chunks: list[np.ndarray] = []
        events: list[tuple[int, int]] = []  # (text_position, sample) of WORD events
        phone_events: list[tuple[str, int]] = []  # (mnemonic, sample) of PHONEME events

        def on_audio(wav, num_samples, event_pointer):
            if wav and num_samples > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
            index = 0
            while event_pointer[index].type != _EVENT_LIST_TERMINATED:
                event = event_pointer[index]
                if event.type == _EVENT_WORD:
                    events.append((event.text_position, event.sample))
                elif event.type == _EVENT_PHONEME:
                    phone_events.append((bytes(event.id).split(b"\0")[0].decode("utf-8", "replace"), event.sample))
                index += 1
            return 0

        callback = _SynthCallback(on_audio)  # keep a reference while espeak-ng may call it
        encoded = text.encode("utf-8")
        with _LOCK, _Session(phoneme_events=phonemes) as session:
            session.lib.espeak_SetSynthCallback(callback)
            self._select_voice(session)
            _LIBC.srand(0)  # espeak-ng draws breath noise from libc rand()
            status = session.lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            sampling_rate = session.sampling_rate
        if status != _EE_OK:
            raise EspeakError(f"espeak_Synth failed with status {status} for text {text[:80]!r}.")
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        waveform = pcm.astype(np.float32) / 32768.0
        words, starts, ends = align_words(text, events, waveform, sampling_rate, self.silence_threshold_db)
        if not words:
            raise ValueError(f"espeak-ng spoke no words for {text[:80]!r} (punctuation only?): nothing to synthesise.")
        phones = [name for name, _ in phone_events]
        phone_start = [min(sample, len(waveform)) / sampling_rate for _, sample in phone_events]
        return SynthesisResult(waveform, sampling_rate, words, starts, ends, phones, phone_start)

    __call__ = synthesize

    def synthesize_many(self, texts, phonemes: bool = False) -> list[SynthesisResult]:
        """`synthesize` for each text, in order (the interface `FestivalSynthesizer` speaks many with)."""
        return [self.synthesize(text, phonemes=phonemes) for text in texts]


#: The token `phonemize` puts between words (and clauses).
WORD_BOUNDARY = "|"
_PHONEME_MODE_IPA = 0x02  # espeak_TextToPhonemes: IPA output; bits 8-23 hold the separator character


def phonemize(text: str, voice: str = "en-us") -> list[str]:
    """IPA phonemes of ``text`` as espeak-ng's phonemizer gives them (``espeak-ng -q -x --ipa``, through the library's
    ``espeak_TextToPhonemes``): one string per phoneme, a stress mark kept with its vowel (``"ˈoʊ"``), and
    `WORD_BOUNDARY` between words and clauses.

    >>> phonemize("Hello world.")
    ['h', 'ə', 'l', 'ˈoʊ', '|', 'w', 'ˈɜː', 'l', 'd']

    Raises `ValueError` for text without a spoken phoneme.
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str, got {type(text).__name__}.")
    if "\x00" in text:
        raise ValueError("`text` contains a NUL character, which espeak-ng would treat as the end of the text.")
    name = resolve_voice(voice)
    buffer = ctypes.create_string_buffer(text.encode("utf-8"))
    pointer = ctypes.c_void_p(ctypes.addressof(buffer))
    clauses = []
    with _LOCK, _Session() as session:
        lib = session.lib
        if lib.espeak_SetVoiceByName(name.encode("utf-8")) != _EE_OK:
            raise EspeakError(f"espeak_SetVoiceByName({name!r}) failed for voice {voice!r}.")
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        while pointer.value:  # one clause per call; the library advances the pointer, NULL at the end
            clause = lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEME_MODE_IPA | (ord("_") << 8))
            clauses.append((clause or b"").decode("utf-8", "replace"))
    words = [word.split("_") for clause in clauses for word in clause.split()]
    phonemes = []
    for word in words:
        phonemes += ([WORD_BOUNDARY] if phonemes else []) + [p for p in word if p]
    if not phonemes:
        raise ValueError(f"espeak-ng gives no phonemes for {text[:80]!r}: nothing to say.")
    return phonemes


_STRESS_MARKS = str.maketrans("", "", "ˈˌ")


def phoneme_stream(text: str, voice: str = "en-us") -> list[str]:
    """`phonemize` as a unit LM hears speech: no stress marks and no word boundaries, one string per phoneme.

    >>> phoneme_stream("Hello world.")
    ['h', 'ə', 'l', 'oʊ', 'w', 'ɜː', 'l', 'd']

    What the phone-LM topline of the spoken minimal pairs reads (`hf-slm evaluate pairs-topline`)."""
    phonemes = [p.translate(_STRESS_MARKS) for p in phonemize(text, voice) if p != WORD_BOUNDARY]
    return [p for p in phonemes if p]


__all__ = [
    "EspeakError",
    "EspeakSynthesizer",
    "SynthesisResult",
    "VoiceInfo",
    "espeak_version",
    "list_variants",
    "list_voices",
    "MIN_RATE",
    "MAX_RATE",
    "MIN_PITCH",
    "MAX_PITCH",
    "WORD_BOUNDARY",
    "phonemize",
    "phoneme_stream",
]
