"""SpeechAugmentation: each step does what it says (measured on the signal), draws are seeded, bad configs are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_slm.training.augmentation import AUGMENTATION_STEPS, SpeechAugmentation

RATE = 16000


def tone(freq=440.0, seconds=1.0, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def speechlike(seconds=1.0, seed=0):
    """Harmonics of 150 Hz under a slow envelope, plus a little noise: energy up to ~7 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 48))
    wave = wave * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(t.size)
    return (0.2 * wave / np.abs(wave).max()).astype(np.float32)


def peak_hz(wave, rate=RATE):
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return np.fft.rfftfreq(wave.size, 1 / rate)[spectrum.argmax()]


def band_energy(wave, low, high, rate=RATE):
    spectrum = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(wave.size, 1 / rate)
    return spectrum[(freqs >= low) & (freqs < high)].sum()


def one(step: dict, seed=0) -> SpeechAugmentation:
    return SpeechAugmentation([{"p": 1.0, **step}], seed=seed)


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_speed_changes_duration_by_the_factor(factor):
    out = one({"name": "speed", "factor": factor})(tone(), RATE)
    assert abs(out.size - RATE / factor) <= 2
    assert abs(peak_hz(out) - 440 * factor) < 5  # resampling: the pitch moves with the speed


@pytest.mark.parametrize("semitones", [-3.0, 4.0])
def test_pitch_shifts_frequency_and_keeps_duration(semitones):
    out = one({"name": "pitch", "semitones": semitones})(tone(seconds=1.0), RATE)
    assert out.size == RATE
    expected = 440 * 2 ** (semitones / 12)
    assert abs(peak_hz(out[2000:-2000]) - expected) < 0.02 * expected


@pytest.mark.parametrize("alpha", [0.85, 1.15])
def test_vtlp_scales_frequencies_below_the_boundary(alpha):
    out = one({"name": "vtlp", "alpha": alpha, "boundary_hz": 4800})(tone(1000.0), RATE)
    assert out.size == RATE
    assert abs(peak_hz(out[1000:-1000]) - 1000 * alpha) < 40


def test_noise_reaches_the_requested_snr():
    clean = speechlike(2.0)
    for snr in (0.0, 10.0, 25.0):
        for color in ("white", "pink", "brown"):
            noisy = one({"name": "noise", "snr_db": snr, "colors": [color]})(clean, RATE, key=7)
            noise = noisy - clean
            measured = 10 * np.log10(np.mean(clean**2) / np.mean(noise**2))
            assert abs(measured - snr) < 0.1, (snr, color, measured)


def test_noise_colors_differ_in_spectral_tilt():
    clean = np.zeros(RATE, dtype=np.float32) + 1e-3
    tilt = {}
    for color in ("white", "pink", "brown"):
        noise = one({"name": "noise", "snr_db": 0.0, "colors": [color]})(clean, RATE) - clean
        tilt[color] = band_energy(noise, 50, 500) / band_energy(noise, 4000, 8000)
    assert tilt["white"] < tilt["pink"] < tilt["brown"]


def test_bandlimit_removes_energy_above_the_cutoff():
    wave = speechlike(1.0)
    out = one({"name": "bandlimit", "cutoff_hz": 3000})(wave, RATE)
    assert out.size == wave.size
    before, after = band_energy(wave, 3300, 8000), band_energy(out, 3300, 8000)
    assert after < 1e-3 * before
    assert band_energy(out, 100, 2500) > 0.9 * band_energy(wave, 100, 2500)  # the pass band stays


def test_codec_is_a_telephone_channel():
    wave = speechlike(1.0)
    out = one({"name": "codec", "rate": 8000, "channels": 64})(wave, RATE)
    assert out.size == wave.size
    assert band_energy(out, 4200, 8000) < 1e-3 * band_energy(wave, 4200, 8000)
    low = band_energy(out, 100, 3500)
    assert 0.8 * band_energy(wave, 100, 3500) < low < 1.2 * band_energy(wave, 100, 3500)
    assert np.mean((out - wave) ** 2) > 0  # quantisation error


def test_reverb_adds_a_decaying_tail_and_keeps_length_and_level():
    burst = np.zeros(RATE, dtype=np.float32)
    burst[1000:2600] = speechlike(0.1)
    out = one({"name": "reverb", "rt60": 0.6, "direct_ratio_db": 0.0})(burst, RATE)
    assert out.size == burst.size
    assert abs(np.sqrt(np.mean(out**2)) - np.sqrt(np.mean(burst**2))) < 1e-3
    windows = [np.mean(out[s : s + 800] ** 2) for s in (2700, 4300, 5900, 8700)]
    assert windows[0] > 1e-6, "no reverberant tail after the burst"
    assert windows[0] > windows[1] > windows[2] > windows[3], windows  # it decays
    short = one({"name": "reverb", "rt60": 0.1, "direct_ratio_db": 0.0})(burst, RATE)
    assert np.mean(short[5900:6700] ** 2) < 0.01 * windows[2]  # a shorter RT60 dies sooner


def test_same_seed_and_key_same_output_else_different():
    config = {"seed": 3, "steps": [{"name": name} for name in AUGMENTATION_STEPS]}
    wave = speechlike(0.5)
    a = SpeechAugmentation.from_config(config)(wave, RATE, key=(0, 5))
    b = SpeechAugmentation.from_config(config)(wave, RATE, key=(0, 5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, SpeechAugmentation.from_config(config)(wave, RATE, key=(1, 5)))
    assert not np.array_equal(a, SpeechAugmentation.from_config({**config, "seed": 4})(wave, RATE, key=(0, 5)))
    torch_out = SpeechAugmentation.from_config(config)(torch.from_numpy(wave), RATE, key=(0, 5))
    assert isinstance(torch_out, torch.Tensor) and np.allclose(torch_out.numpy(), a)


def test_probability_zero_is_the_identity_and_config_round_trips():
    aug = SpeechAugmentation([{"name": name, "p": 0.0} for name in AUGMENTATION_STEPS], seed=1)
    wave = speechlike(0.3)
    np.testing.assert_array_equal(aug(wave, RATE), wave)
    again = SpeechAugmentation.from_config(aug.to_config())
    assert again.to_config() == aug.to_config()


def test_map_function_in_a_cached_datasets_map(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"audio": [{"array": speechlike(0.2, seed=i), "sampling_rate": RATE} for i in range(3)]})
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=RATE))
    aug = SpeechAugmentation([{"name": "noise", "snr_db": 5.0}], seed=0)
    out = ds.map(aug.map_function(), batched=True, with_indices=True, batch_size=2,
                 cache_file_name=str(tmp_path / "aug.arrow"))  # fmt: skip
    first = out.with_format("numpy")[1]["audio"]
    direct = aug(speechlike(0.2, seed=1), RATE, key=(0, 1))
    np.testing.assert_allclose(np.asarray(first["array"]), direct, atol=1e-4)  # wav storage: 16-bit quantisation


@pytest.mark.parametrize(
    "config, message",
    [
        ([{"name": "echo"}], "unknown step 'echo'"),
        ([{"name": "speed", "factor": 3.0}], "`factor` must lie in [0.5, 2.0]"),
        ([{"name": "speed", "factor": [1.2, 0.9]}], "low <= high"),
        ([{"name": "noise", "snr_db": "loud"}], "`snr_db` must be a number"),
        ([{"name": "noise", "colors": ["blue"]}], "`colors`"),
        ([{"name": "reverb", "p": 1.5}], "`p` must be a probability"),
        ([{"name": "codec", "rate": 8000.5}], "`rate` must be an integer"),
        ([{"name": "gain", "volume": 3}], "unknown parameter(s) ['volume']"),
        (["speed"], "must be a dict with a 'name'"),
    ],
)
def test_bad_configs_are_refused_with_the_value(config, message):
    with pytest.raises(ValueError) as error:
        SpeechAugmentation(config)
    assert message in str(error.value)


def test_bad_inputs_are_refused():
    aug = SpeechAugmentation([{"name": "gain"}])
    with pytest.raises(ValueError, match="sampling_rate"):
        aug(tone(), 0)
    with pytest.raises(ValueError, match=r"shape \(0,\)"):
        aug(np.zeros(0, dtype=np.float32), RATE)
    with pytest.raises(ValueError, match="unknown key"):
        SpeechAugmentation.from_config({"seed": 0, "step": []})


def test_target_is_the_voice_changed_speech_without_the_channel():
    steps = [{"name": "speed", "factor": 1.2}, {"name": "noise", "snr_db": 0.0}, {"name": "codec"}]
    aug = SpeechAugmentation(steps, seed=0)
    wave = speechlike(0.5)
    noisy, target = aug(wave, RATE, key=1, return_target=True)
    np.testing.assert_array_equal(noisy, aug(wave, RATE, key=1))
    np.testing.assert_allclose(target, SpeechAugmentation(steps[:1])(wave, RATE), atol=1e-6)
    assert target.shape == noisy.shape
    with pytest.raises(ValueError, match=r"voice steps .* must come before channel steps; got the order \['noise', 'pitch'\]"):
        SpeechAugmentation([{"name": "noise"}, {"name": "pitch"}])(wave, RATE, return_target=True)
