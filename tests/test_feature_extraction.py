"""SpeechFeatureExtractor / load_audio: every input type, resampling, downmix, normalisation, and every bad input."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

import hf_slm  # noqa: F401  (registers the Auto classes)
from hf_slm.models.unit_encoder import AudioInputError, SpeechFeatureExtractor, load_audio


def _tone(seconds: float, rate: int, freq: float = 220.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)).astype(
        np.float32
    )
    return mono if channels == 1 else np.stack([mono * (c + 1) for c in range(channels)])  # [C, T]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    sf.write(d / "mono_22k.wav", _tone(1.0, 22050), 22050)
    sf.write(d / "stereo_16k.wav", _tone(0.5, 16000, channels=2).T, 16000)  # soundfile wants [T, C]
    sf.write(d / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    sf.write(d / "short.wav", _tone(0.005, 16000), 16000)  # 80 samples
    (d / "text.wav").write_text("this is not audio")
    if shutil.which("ffmpeg"):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(d / "mono_22k.wav"), str(d / "mono.mp3")], check=True)
    return d


@pytest.fixture
def fe():
    return SpeechFeatureExtractor()


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_gives_target_length(fe, rate):
    batch = fe(_tone(1.0, rate), sampling_rate=rate)
    assert batch["input_values"].shape == (1, 16000)
    assert batch["attention_mask"].sum() == 16000


def test_resampling_22050_to_16000_keeps_the_tone(fe):
    """Resampling is real (torchaudio), not a truncation: a 440 Hz tone stays at 440 Hz."""
    wave = fe(_tone(1.0, 22050, freq=440.0), sampling_rate=22050, return_tensors="np")["input_values"][0]
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 16000 / wave.size - 440.0) < 2.0


@pytest.mark.parametrize("layout", ["channels_first", "channels_last", "torch_channels_first"])
def test_stereo_is_averaged(layout):
    fe = SpeechFeatureExtractor(do_normalize=False)
    stereo = _tone(0.5, 16000, channels=2)  # [2, T], channel 1 = 2 * channel 0
    array = {"channels_first": stereo, "channels_last": stereo.T, "torch_channels_first": torch.from_numpy(stereo)}[layout]
    out = fe(array, sampling_rate=16000, return_tensors="np")["input_values"][0]
    np.testing.assert_allclose(out, stereo.mean(0), atol=1e-6)


def test_stereo_file_and_decoder_are_averaged(files):
    from torchcodec.decoders import AudioDecoder

    expected = _tone(0.5, 16000, channels=2).mean(0)
    from_file = load_audio(files / "stereo_16k.wav", 16000)
    from_decoder = load_audio(AudioDecoder(str(files / "stereo_16k.wav")), 16000)
    np.testing.assert_allclose(from_file, expected, atol=1e-4)  # 16-bit PCM rounding
    np.testing.assert_allclose(from_decoder, expected, atol=1e-4)
    assert from_file.dtype == np.float32


def test_normalisation_uses_valid_samples_only(fe):
    short, long = _tone(0.5, 16000) * 5 + 1, _tone(1.0, 16000, freq=330.0)
    batch = fe([short, long], sampling_rate=16000)
    alone = fe(short, sampling_rate=16000)["input_values"][0]
    values, mask = batch["input_values"], batch["attention_mask"]
    assert torch.equal(values[0, :8000], alone)
    assert torch.all(values[0, 8000:] == 0) and mask[0].sum() == 8000
    for row, n in zip(values, mask.sum(-1)):
        assert abs(row[:n].mean()) < 1e-4 and abs(row[:n].std(correction=0) - 1) < 1e-3


def test_every_input_type_gives_the_same_waveform(files):
    import datasets
    from torchcodec.decoders import AudioDecoder

    fe = SpeechFeatureExtractor()
    path = files / "mono_22k.wav"
    data, rate = sf.read(path, dtype="float32")
    reference = fe(data, sampling_rate=rate)["input_values"]
    ds = datasets.Dataset.from_dict({"audio": [str(path)]}).cast_column("audio", datasets.Audio())
    inputs = {
        "str": str(path),
        "Path": path,
        "dict": {"array": data, "sampling_rate": rate},
        "dict_path": {"path": str(path)},
        "dict_bytes": {"bytes": path.read_bytes()},
        "decoder": AudioDecoder(str(path)),
        "datasets_audio": ds[0]["audio"],
        "torch": None,
        "list_of_floats": None,
    }
    for name, item in inputs.items():
        if name == "torch":
            out = fe(torch.from_numpy(data), sampling_rate=rate)
        elif name == "list_of_floats":
            out = fe(data.tolist(), sampling_rate=rate)
        else:
            out = fe(item)
        assert torch.allclose(out["input_values"], reference, atol=1e-5), name


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is needed to write an mp3")
def test_compressed_file_falls_back_to_torchcodec(files):
    wave = load_audio(files / "mono.mp3", 16000)
    assert wave.ndim == 1 and abs(wave.size - 16000) < 1200  # mp3 adds encoder padding


def test_batch_of_mixed_inputs_pads_right(files):
    fe = SpeechFeatureExtractor()
    batch = fe([str(files / "mono_22k.wav"), {"array": _tone(0.25, 8000), "sampling_rate": 8000}])
    assert batch["input_values"].shape == (2, 16000)
    assert batch["attention_mask"].sum(-1).tolist() == [16000, 4000]
    assert batch["input_values"].dtype == torch.float32


BAD_INPUTS = [
    # (name, builder(files) -> (call kwargs), expected message fragments)
    ("no_rate", lambda f: {"raw_speech": _tone(0.5, 16000)}, ["needs `sampling_rate`"]),
    ("text_file", lambda f: {"raw_speech": str(f / "text.wav")}, ["text.wav", "not an audio file"]),
    ("missing_file", lambda f: {"raw_speech": str(f / "nope.wav")}, ["nope.wav", "no such file"]),
    ("empty_file", lambda f: {"raw_speech": str(f / "empty.wav")}, ["empty.wav", "empty audio"]),
    ("short_file", lambda f: {"raw_speech": str(f / "short.wav")}, ["short.wav", "80 samples", "400 samples"]),
    ("nan", lambda f: {"raw_speech": np.full(16000, np.nan, np.float32), "sampling_rate": 16000}, ["NaN/inf"]),
    ("inf_in_batch", lambda f: {"raw_speech": [_tone(0.5, 16000), np.array([0.0, np.inf] * 400)], "sampling_rate": 16000}, ["batch item 1", "NaN/inf"]),
    ("three_dims", lambda f: {"raw_speech": np.zeros((1, 2, 16000), np.float32), "sampling_rate": 16000}, ["shape (1, 2, 16000)"]),
    ("ambiguous_2d", lambda f: {"raw_speech": np.zeros((16, 16000), np.float32), "sampling_rate": 16000}, ["cannot tell channels"]),
    ("rate_conflict", lambda f: {"raw_speech": str(f / "mono_22k.wav"), "sampling_rate": 16000}, ["22050 Hz", "sampling_rate=16000"]),
    ("empty_batch", lambda f: {"raw_speech": []}, ["empty batch"]),
    ("dict_without_rate", lambda f: {"raw_speech": {"array": _tone(0.5, 16000)}}, ["no 'sampling_rate'"]),
]


@pytest.mark.parametrize("name,build,fragments", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_a_named_error(files, fe, name, build, fragments):
    with pytest.raises(AudioInputError) as info:
        fe(**build(files))
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_too_long_raises():
    fe = SpeechFeatureExtractor(max_duration_s=0.5)
    fe(_tone(0.5, 16000), sampling_rate=16000)  # exactly the limit is fine
    with pytest.raises(AudioInputError, match="longer than max_duration_s=0.5"):
        fe([_tone(0.5, 16000), _tone(0.6, 16000)], sampling_rate=16000)


def test_audio_input_error_is_a_value_error():
    assert issubclass(AudioInputError, ValueError)


def test_load_audio_refuses_raw_arrays():
    with pytest.raises(AudioInputError, match="raw arrays carry no rate"):
        load_audio(np.zeros(16000), 16000)


def test_save_and_load_through_auto_feature_extractor(tmp_path):
    from transformers import AutoFeatureExtractor

    fe = SpeechFeatureExtractor(sampling_rate=24000, do_normalize=False, max_duration_s=30.0)
    fe.save_pretrained(tmp_path)
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert type(loaded) is SpeechFeatureExtractor
    assert (loaded.sampling_rate, loaded.do_normalize, loaded.max_duration_s) == (24000, False, 30.0)
    wave = _tone(0.5, 16000)
    assert torch.equal(loaded(wave, sampling_rate=16000)["input_values"], fe(wave, sampling_rate=16000)["input_values"])
