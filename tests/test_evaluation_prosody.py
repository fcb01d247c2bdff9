"""F0 back-ends on hand-checkable signals, and `hf-slm evaluate prosody` (pGSLM's metrics) on the embedded default."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from hf_slm.cli import main
from hf_slm.evaluation.metrics.prosody.prosody import F0_METHODS, f0_from_audio
from hf_slm.evaluation.prosody import evaluate_prosody

from evaluation_helpers import synthesize

_PACKAGE = {"harvest": "pyworld", "dio": "pyworld", "parselmouth": "parselmouth"}


def _needs(method: str) -> None:
    package = _PACKAGE.get(method)
    if package and importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is optional (hf_slm[eval])")


def _voiced_median(contour) -> float:
    contour = np.asarray(contour)
    return float(np.median(contour[contour > 0]))


@pytest.mark.parametrize("method", F0_METHODS)
def test_f0_of_a_150_hz_harmonic_tone(method):
    _needs(method)
    sr = 16000
    t = np.arange(sr // 2) / sr
    tone = 0.2 * sum(np.sin(2 * np.pi * 150.0 * k * t) / k for k in range(1, 11))  # a sawtooth-like voiced sound
    contour = np.asarray(f0_from_audio(tone, sr, method=method))
    assert len(contour) == 25  # 50 frames per second, the same frames for every tracker
    assert (contour > 0).mean() >= 0.9
    assert _voiced_median(contour) == pytest.approx(150.0, rel=0.01)
    silent = np.asarray(f0_from_audio(np.zeros(sr // 2), sr, method=method))
    assert len(silent) == 25 and not silent.any()


@pytest.mark.parametrize("method", F0_METHODS)
def test_f0_follows_espeak_pitch(method):
    _needs(method)
    text = "The quick brown fox jumps over the lazy dog."
    low, high = (synthesize([text], pitch=p)[0] for p in (20, 80))
    f0_low, f0_high = (_voiced_median(f0_from_audio(a["array"], a["sampling_rate"], method=method))
                       for a in (low, high))  # fmt: skip
    assert 60 < f0_low < 100 and 120 < f0_high < 170  # en-us at espeak pitch 20 vs 80 (~79 Hz vs ~139 Hz)
    assert f0_high / f0_low > 1.5


def test_f0_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown F0 method 'yin'"):
        f0_from_audio(np.ones(1600), 16000, method="yin")
    with pytest.raises(ValueError, match="mono"):
        f0_from_audio(np.zeros((2, 100)), 16000, method="parselmouth")


def test_evaluate_prosody_checks_its_inputs():
    from hf_slm.pipelines import SpeechLMPipeline

    pipe = SpeechLMPipeline.from_pretrained("default")
    audio = synthesize(["The dog runs."])
    with pytest.raises(ValueError, match="prompt_fraction"):
        evaluate_prosody(pipe, audio, prompt_fraction=1.0)
    with pytest.raises(ValueError, match="unknown F0 method"):
        evaluate_prosody(pipe, audio, f0_method="yin")
    with pytest.raises(ValueError, match="dicts"):
        evaluate_prosody(pipe, ["/no/such.wav"])
    no_vocoder = SpeechLMPipeline(**(pipe.components | {"vocoder": None}))
    with pytest.raises(ValueError, match="needs a vocoder"):
        evaluate_prosody(no_vocoder, audio)


def test_prosody_command_on_the_default(tmp_path, capsys):
    out = tmp_path / "prosody.json"
    assert main(["evaluate", "prosody", "--pipeline", "default", "--limit", "3", "--num-samples", "2",
                 "--f0", "autocorrelation", "--output", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert (tmp_path / "prosody.md").is_file() and (tmp_path / "prosody.f0.png").stat().st_size > 1000
    assert result["n"] + len(result["skipped"]) == 3 and result["n"] >= 1
    assert result["min_mae"] >= 0 and result["expressiveness"] > 0
    assert set(result["voiced_fraction"]) == {"reference", "resynthesis", "samples"}
    pitches = [item["espeak_pitch"] for item in result["items"]]
    assert pitches == [[20, 50, 80][item["index"]] for item in result["items"]]
    for item in result["items"]:  # min-MAE recomputed from the contours in the JSON
        assert len(item["sample_f0"]) <= 2 and item["prompt_units"] > 0
        maes = [_log_f0_mae(sample, item["reference_f0"]) for sample in item["sample_f0"]]
        assert item["min_mae"] == pytest.approx(np.nanmin(maes))
    # espeak's pitch 20 < 50 < 80 shows in the prompts' own F0 (the prompts are not vocoded)
    by_pitch = {item["espeak_pitch"]: item["prompt_mean_f0"] for item in result["items"]}
    ordered = [by_pitch[p] for p in sorted(by_pitch)]
    assert ordered == sorted(ordered)
    assert "min_mae" in capsys.readouterr().out


def _log_f0_mae(a, b) -> float:
    n = min(len(a), len(b))
    a, b = np.asarray(a[:n]), np.asarray(b[:n])
    both = (a > 0) & (b > 0)
    return float(np.mean(np.abs(np.log(a[both]) - np.log(b[both])))) if both.any() else float("nan")


def test_speaker_similarity_of_continuations():
    pytest.importorskip("resemblyzer", reason="resemblyzer is optional (hf_slm[eval])")
    from hf_slm.pipelines import SpeechLMPipeline

    pipe = SpeechLMPipeline.from_pretrained("default")
    texts = ["The small dog runs to the red house near the river.", "Many horses work quickly in the big green field."]
    result = evaluate_prosody(pipe, synthesize(texts, voice="en-us+m3"), num_samples=2, speaker_similarity=True)
    similarity = result["speaker_similarity"]
    assert set(similarity) == {"reference", "resynthesis", "samples"}
    assert all(-1 <= v <= 1 for v in similarity.values())
    # the true rest of the utterance is the prompt's own voice; the vocoded continuations are not quite
    assert similarity["reference"] > 0.75 and similarity["reference"] > similarity["samples"]
    assert all("speaker_similarity" in item for item in result["items"])
