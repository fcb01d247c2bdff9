"""Raw audio -> padded, normalised waveforms for speech tokenizers (any input a user or `datasets` hands us)."""

from __future__ import annotations

import io
import math
import os
from typing import Any

import numpy as np
import torch
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature

#: A 2-D array whose shorter axis has at most this many entries is read as (channels, samples) or
#: (samples, channels); anything wider is ambiguous (a batch stacked into one array?) and raises.
MAX_CHANNELS = 8

#: Accepted sampling rates in Hz, for inputs and for the extractor itself. Below 4 kHz there is no speech band left
#: (and a typo such as ``sampling_rate=16`` would turn 2 s into 30 min after resampling); 384 kHz is the highest rate
#: audio interfaces record at.
MIN_SAMPLING_RATE, MAX_SAMPLING_RATE = 4000, 384_000

#: Integer PCM dtypes and how they map to [-1, 1): (offset, full scale). 8-bit WAV is unsigned (offset 128).
#: Other integer widths (int64, uint16, ...) are ambiguous and raise: convert them to float or one of these.
PCM_SCALES = {
    torch.uint8: (128.0, 128.0),
    torch.int8: (0.0, 128.0),
    torch.int16: (0.0, 32768.0),
    torch.int32: (0.0, 2.0**31),
}

#: With ``do_normalize=False`` the model sees the samples as they are, so floats must be in [-1, 1] (plus this
#: tolerance); larger values are almost always integer PCM stored as float. With normalisation the scale is removed.
MAX_FLOAT_PEAK = 1.0 + 1e-3


class AudioInputError(ValueError):
    """Audio that cannot be turned into a valid input; the message names the file or batch item and the problem."""


def check_sampling_rate(rate: Any, name: str = "audio input") -> int:
    """`rate` as an int when it is an integer in [`MIN_SAMPLING_RATE`, `MAX_SAMPLING_RATE`], else `AudioInputError`.

    Integral floats (``16000.0``) and numpy integers are accepted; bools, strings and fractional rates are not.
    """
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise AudioInputError(f"{name}: sampling_rate must be an integer number of Hz, got {rate!r}")
    if not math.isfinite(float(rate)) or float(rate) != int(rate):
        raise AudioInputError(f"{name}: sampling_rate must be an integer number of Hz, got {rate!r}")
    if not MIN_SAMPLING_RATE <= int(rate) <= MAX_SAMPLING_RATE:
        raise AudioInputError(
            f"{name}: sampling_rate={rate!r} Hz is outside the accepted range [{MIN_SAMPLING_RATE}, "
            f"{MAX_SAMPLING_RATE}] (the rate the audio was recorded at, e.g. 16000)"
        )
    return int(rate)


def _is_path(source: Any) -> bool:
    return isinstance(source, (str, os.PathLike))


def _is_decoder(source: Any) -> bool:
    """torchcodec `AudioDecoder` (what `datasets.Audio` decodes to) or anything with the same interface."""
    return hasattr(source, "get_all_samples") and callable(source.get_all_samples)


def _describe(source: Any, index: int | None) -> str:
    if _is_path(source):
        return f"audio file {str(source)!r}"
    path = None
    if _is_decoder(source):
        path = getattr(getattr(source, "metadata", None), "path", None)
    elif isinstance(source, dict):
        path = source.get("path")
    where = f"batch item {index}" if index is not None else "audio input"
    return f"{where} ({path})" if path else where


def _last_line(error: Exception) -> str:
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[-1].split(", ")[-1][:200]


def _read_encoded(data: str | bytes, name: str) -> tuple[np.ndarray, int]:
    """Decode a file or its bytes to ([channels, samples] float32, rate): soundfile first, torchcodec for the rest."""
    import soundfile as sf

    try:
        data_sf = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        samples, rate = sf.read(data_sf, dtype="float32", always_2d=True)  # [samples, channels]
        return np.ascontiguousarray(samples.T), int(rate)
    except Exception as sf_error:  # soundfile cannot read mp3/m4a/opus-in-mp4..., torchcodec (ffmpeg) can
        try:
            from torchcodec.decoders import AudioDecoder

            decoded = AudioDecoder(bytes(data) if isinstance(data, bytearray) else data).get_all_samples()
        except Exception as tc_error:
            raise AudioInputError(
                f"{name}: not an audio file or unknown format (soundfile: {_last_line(sf_error)}; "
                f"torchcodec: {_last_line(tc_error)})"
            ) from None
        return decoded.data.float().cpu().numpy(), int(decoded.sample_rate)


def _read_file(path: str, name: str) -> tuple[np.ndarray, int]:
    """Decode a file to ([channels, samples] float32, rate), after the checks that name what is wrong with it."""
    if os.path.isdir(path):
        raise AudioInputError(f"{name}: is a directory, not an audio file")
    if not os.path.isfile(path):
        raise AudioInputError(f"{name}: no such file")
    if os.path.getsize(path) == 0:
        raise AudioInputError(f"{name}: empty file (0 bytes)")
    return _read_encoded(path, name)


def _decode(source: Any, name: str) -> tuple[np.ndarray | torch.Tensor, int | None, str]:
    """Any supported source -> (array, rate or None, layout) with layout "cf" (channels first) or "guess"."""
    if _is_path(source):
        data, rate = _read_file(os.fspath(source), name)
        return data, rate, "cf"
    if _is_decoder(source):
        try:
            samples = source.get_all_samples()
        except Exception as error:
            raise AudioInputError(f"{name}: cannot decode audio ({error})") from None
        return samples.data, int(samples.sample_rate), "cf"
    if isinstance(source, dict):
        if source.get("array") is not None:
            if source.get("sampling_rate") is None:
                raise AudioInputError(f"{name}: dict has an 'array' but no 'sampling_rate'")
            return source["array"], int(source["sampling_rate"]), "guess"
        if source.get("bytes") is not None:
            data, rate = _read_encoded(source["bytes"], f"{name} 'bytes'")
            return data, rate, "cf"
        if source.get("path") is not None:
            data, rate = _read_file(source["path"], f"audio file {source['path']!r}")
            return data, rate, "cf"
        raise AudioInputError(f"{name}: dict needs 'array'+'sampling_rate', 'bytes' or 'path'; got {sorted(source)}")
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise AudioInputError(f"{name}: empty bytes (0 bytes)")
        data, rate = _read_encoded(source, f"{name} (bytes)")
        return data, rate, "cf"
    if isinstance(source, (np.ndarray, torch.Tensor, list, tuple)):
        return source, None, "guess"
    raise AudioInputError(f"{name}: unsupported audio type {type(source).__name__}")


def _as_float_tensor(array: Any, name: str) -> torch.Tensor:
    """Samples as a float32 CPU tensor; integer PCM (`PCM_SCALES`) is mapped to [-1, 1)."""
    try:
        tensor = torch.as_tensor(np.asarray(array) if isinstance(array, (list, tuple)) else array)
    except (TypeError, ValueError, RuntimeError) as error:
        raise AudioInputError(f"{name}: cannot read the samples as numbers ({_last_line(error)})") from None
    if tensor.dtype in PCM_SCALES:
        offset, scale = PCM_SCALES[tensor.dtype]
        return (tensor.detach().to("cpu", torch.float32) - offset) / scale
    if tensor.is_complex() or not tensor.is_floating_point():
        raise AudioInputError(
            f"{name}: expected float samples or integer PCM ({', '.join(str(d).split('.')[-1] for d in PCM_SCALES)}), "
            f"got dtype {str(tensor.dtype).split('.')[-1]}"
        )
    return tensor.detach().to("cpu", torch.float32)


def _to_mono(array: np.ndarray | torch.Tensor, layout: str, name: str) -> torch.Tensor:
    """Downmix to one channel by averaging channels.

    Decoded files and decoders are channels-first by construction. For user arrays, 1-D is mono; for 2-D, the
    channel axis is the shorter one, and it must have at most `MAX_CHANNELS` entries (a (2, 48000) or a
    (48000, 2) array is stereo; a (16, 16000) array is rejected as ambiguous: pass a batch as a list).
    """
    tensor = _as_float_tensor(array, name)
    if tensor.ndim == 1:
        return tensor
    if tensor.ndim != 2:
        raise AudioInputError(
            f"{name}: expected 1-D (samples) or 2-D (channels x samples) audio, got shape {tuple(tensor.shape)}"
        )
    if layout == "cf":
        return tensor.mean(dim=0)
    channel_axis = 0 if tensor.shape[0] <= tensor.shape[1] else 1
    if tensor.shape[channel_axis] > MAX_CHANNELS:
        raise AudioInputError(
            f"{name}: cannot tell channels from samples in shape {tuple(tensor.shape)} (the shorter axis has more "
            f"than {MAX_CHANNELS} entries); pass a batch as a list of 1-D arrays"
        )
    return tensor.mean(dim=channel_axis)


def _decode_mono(
    source: Any, sampling_rate: int | None, target_rate: int | None, index: int | None, check_rate: bool
) -> tuple[torch.Tensor, int]:
    """Decode, check and downmix one source: (mono float32 samples, their own rate)."""
    name = _describe(source, index)
    array, rate, layout = _decode(source, name)
    if rate is None:
        if sampling_rate is None:
            raise AudioInputError(
                f"{name}: a raw array needs `sampling_rate` (the rate it was recorded at); refusing to guess "
                f"{target_rate} Hz"
            )
        rate = sampling_rate
    elif check_rate and sampling_rate is not None and check_sampling_rate(sampling_rate, name) != rate:
        raise AudioInputError(f"{name}: carries {rate} Hz audio but sampling_rate={sampling_rate} was passed")
    rate = check_sampling_rate(rate, name)  # before anything is resampled: a wrong rate must not allocate first
    mono = _to_mono(array, layout, name)
    if mono.numel() == 0:
        raise AudioInputError(f"{name}: empty audio (0 samples)")
    finite = np.isfinite(mono.numpy())  # numpy: per-utterance reductions are slow through torch's thread pool
    if not finite.all():
        bad = int((~finite).sum())
        raise AudioInputError(f"{name}: {bad} NaN/inf samples")
    return mono, rate


def _resample(mono: torch.Tensor, rate: int, target_rate: int) -> torch.Tensor:
    if rate == target_rate:
        return mono
    import torchaudio.functional as AF

    return AF.resample(mono, rate, target_rate)


def _prepare(
    source: Any, sampling_rate: int | None, target_rate: int, index: int | None, check_rate: bool
) -> torch.Tensor:
    mono, rate = _decode_mono(source, sampling_rate, target_rate, index, check_rate)
    return _resample(mono, rate, target_rate)


def load_audio(source: Any, sampling_rate: int) -> np.ndarray:
    """Decode `source` to mono float32 at `sampling_rate`.

    `source` is a file path (wav/flac/ogg via soundfile; mp3/m4a/... via torchcodec), a torchcodec `AudioDecoder`
    (what `datasets.Audio` returns), or a dict with `array`+`sampling_rate`, `bytes` or `path`. Multi-channel audio
    is averaged to mono. Raises `AudioInputError` naming the file for unreadable, empty or non-finite audio.
    Ours, not `transformers.audio_utils.load_audio`: the same samples as its torchaudio backend, 2.5x faster on WAV
    (soundfile decoding; benchmarks/bench_load_audio.py), and it takes bytes, dicts and decoders too.

    >>> import numpy as np
    >>> load_audio({"array": np.zeros(22050), "sampling_rate": 22050}, 16000).shape
    (16000,)
    """
    if isinstance(source, (np.ndarray, torch.Tensor)):
        raise AudioInputError("load_audio needs a self-describing source (path, decoder or dict); raw arrays carry no rate")
    return _prepare(source, None, check_sampling_rate(sampling_rate, "load_audio target"), None, check_rate=False).numpy()


def decode_audio(source: Any) -> tuple[np.ndarray, int]:
    """Like `load_audio`, but at the source's own rate: ``(mono float32 samples, sampling_rate)``.

    >>> import numpy as np
    >>> samples, rate = decode_audio({"array": np.zeros((2, 22050)), "sampling_rate": 22050})
    >>> samples.shape, rate
    ((22050,), 22050)
    """
    if isinstance(source, (np.ndarray, torch.Tensor)):
        raise AudioInputError(
            "decode_audio needs a self-describing source (path, decoder or dict); raw arrays carry no rate"
        )
    mono, rate = _decode_mono(source, None, None, None, check_rate=False)
    return mono.numpy(), rate


class SpeechFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Turns any audio a user or `datasets` hands over into a padded batch of normalised mono waveforms at
    `sampling_rate`, ready for [`UnitEncoderModel`] (or any wav2vec2-style encoder).

    Per utterance: decode -> downmix (mean over channels) -> resample (torchaudio) -> check -> normalise to zero mean /
    unit variance over its own samples -> pad. Normalising before padding means padding never changes an utterance.

    Args:
        feature_size (`int`, *optional*, defaults to 1):
            Feature dimension of `input_values` (1: raw waveform).
        sampling_rate (`int`, *optional*, defaults to 16000):
            Rate every input is resampled to.
        padding_value (`float`, *optional*, defaults to 0.0):
            Value of padded samples.
        do_normalize (`bool`, *optional*, defaults to `True`):
            Zero-mean / unit-variance normalisation per utterance (as wav2vec2/HuBERT-large; fairseq HuBERT-base was
            pre-trained on raw waveforms: use `do_normalize=False` with such weights).
        return_attention_mask (`bool`, *optional*, defaults to `True`):
            Return the sample-level mask; the tokenizer needs it for padding-invariant batches.
        min_samples (`int`, *optional*, defaults to 400):
            Shortest accepted utterance after resampling: one analysis window (25 ms at 16 kHz, the receptive field of
            both the MFCC and the HuBERT front end). Shorter audio would give zero frames.
        max_duration_s (`float`, *optional*):
            Longest accepted utterance in seconds; `None` accepts any length.

    Inputs to `__call__`: one item or a list of items, each a 1-D/2-D numpy array or torch tensor (needs
    `sampling_rate`), a dict `{"array", "sampling_rate"}` (or `{"path"}` / `{"bytes"}`), a torchcodec `AudioDecoder`, or a
    file path. A 2-D array is one multi-channel utterance, not a batch (see `_to_mono` for the channel axis rule).

    Example:

    ```python
    >>> import numpy as np
    >>> from hf_slm import SpeechFeatureExtractor
    >>> fe = SpeechFeatureExtractor()
    >>> batch = fe([np.random.randn(22050), np.random.randn(2, 8000)], sampling_rate=22050)
    >>> batch["input_values"].shape, batch["attention_mask"].sum(-1).tolist()
    (torch.Size([2, 16000]), [16000, 5805])

    ```
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(
        self,
        feature_size: int = 1,
        sampling_rate: int = 16000,
        padding_value: float = 0.0,
        do_normalize: bool = True,
        return_attention_mask: bool = True,
        min_samples: int = 400,
        max_duration_s: float | None = None,
        **kwargs,
    ):
        sampling_rate = check_sampling_rate(sampling_rate, f"{type(self).__name__}")
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        if max_duration_s is not None and not max_duration_s > 0:
            raise ValueError(f"max_duration_s must be positive or None, got {max_duration_s!r}")
        if not isinstance(min_samples, int) or min_samples < 1:
            raise ValueError(f"min_samples must be a positive int, got {min_samples!r}")
        self.do_normalize = do_normalize
        self.return_attention_mask = return_attention_mask
        self.min_samples = min_samples
        self.max_duration_s = max_duration_s
        # Saved into preprocessor_config.json: `AutoProcessor` on this folder then finds the class (registered as the
        # processor of the unit tokenizer) instead of trying AutoImageProcessor, which asks y/N on a terminal.
        self.processor_class = type(self).__name__

    @property
    def produces(self) -> dict:
        """What this extractor hands on (see `hf_slm.pipelines.check_compatibility`): audio at `sampling_rate`, at
        least `min_samples` long."""
        return {"audio.sampling_rate": self.sampling_rate, "audio.min_samples": self.min_samples}

    @staticmethod
    def _is_single(raw_speech: Any) -> bool:
        if isinstance(raw_speech, (np.ndarray, torch.Tensor, dict, str, os.PathLike)) or _is_decoder(raw_speech):
            return True
        if isinstance(raw_speech, (list, tuple)):
            return len(raw_speech) > 0 and isinstance(raw_speech[0], (int, float, np.number))
        return True

    def _check_length(self, num_samples: int, rate: int, name: str) -> None:
        """Refuse audio shorter than `min_samples` or longer than `max_duration_s` once at `self.sampling_rate`.

        Runs on the decoded samples at their own `rate`, before resampling, so a wrong rate never allocates a huge
        resampled copy first."""
        resampled = math.ceil(num_samples * self.sampling_rate / rate)
        if resampled < self.min_samples:
            at = f"{self.sampling_rate} Hz" if rate == self.sampling_rate else f"{rate} Hz (~{resampled} at {self.sampling_rate} Hz)"
            raise AudioInputError(
                f"{name}: {num_samples} samples ({num_samples / rate * 1000:.1f} ms) at {at} is shorter than one "
                f"analysis window of {self.min_samples} samples ({self.min_samples / self.sampling_rate * 1000:.1f} ms, "
                f"the tokenizer's receptive field)"
            )
        if self.max_duration_s is not None and num_samples / rate > self.max_duration_s + 0.5 / rate:
            raise AudioInputError(
                f"{name}: {num_samples / rate:.2f} s is longer than max_duration_s={self.max_duration_s}"
            )

    def _check_amplitude(self, mono: torch.Tensor, name: str) -> None:
        if self.do_normalize or mono.numel() == 0:
            return
        peak = float(np.abs(mono.numpy()).max())
        if peak > MAX_FLOAT_PEAK:
            raise AudioInputError(
                f"{name}: float samples reach {peak:.4g}, outside [-1, 1] (integer PCM stored as float? divide by "
                f"32768 for 16-bit); this extractor has do_normalize=False, so the model would see them as they are"
            )

    def __call__(
        self,
        raw_speech: Any,
        sampling_rate: int | None = None,
        padding: bool | str = True,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = "pt",
        **kwargs,
    ) -> BatchFeature:
        """Prepare one utterance or a list of them; returns `input_values` [B, T] and `attention_mask` [B, T]."""
        if sampling_rate is not None:
            sampling_rate = check_sampling_rate(sampling_rate, "sampling_rate argument")
        single = self._is_single(raw_speech)
        items = [raw_speech] if single else list(raw_speech)
        if not items:
            raise AudioInputError("empty batch: no audio given")
        waves = []
        for i, item in enumerate(items):
            index = None if single else i
            mono, rate = _decode_mono(item, sampling_rate, self.sampling_rate, index, check_rate=True)
            name = _describe(item, index)
            self._check_length(mono.numel(), rate, name)
            self._check_amplitude(mono, name)
            wave = _resample(mono, rate, self.sampling_rate).numpy()
            if self.do_normalize:
                wave = (wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)
            waves.append(wave.astype(np.float32, copy=False))

        return_attention_mask = self.return_attention_mask if return_attention_mask is None else return_attention_mask
        padded = self.pad(
            BatchFeature({"input_values": waves}),
            padding=padding,
            max_length=max_length,
            truncation=truncation,
            pad_to_multiple_of=pad_to_multiple_of,
            return_attention_mask=return_attention_mask,
        )
        values = padded["input_values"]
        padded["input_values"] = (
            np.stack(values).astype(np.float32) if isinstance(values, list) and padding else values
        )
        if "attention_mask" in padded:
            padded["attention_mask"] = np.asarray(padded["attention_mask"], dtype=np.int32)
        return padded.convert_to_tensors(return_tensors) if return_tensors else padded


__all__ = [
    "MAX_SAMPLING_RATE",
    "MIN_SAMPLING_RATE",
    "AudioInputError",
    "SpeechFeatureExtractor",
    "check_sampling_rate",
    "decode_audio",
    "load_audio",
]
