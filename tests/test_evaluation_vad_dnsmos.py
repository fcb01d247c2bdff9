"""Silero VAD (speech segments, splitting long audio) and DNSMOS (a quality score) on espeak-ng speech.

Both need optional packages from the `eval` extra (`make install` installs it): silero-vad, and speechmos with
onnxruntime + librosa. Each test skips, naming the package, only where it is missing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation_helpers import one_torch_thread, synthesize, tiny_pipeline  # noqa: F401

SENTENCES = ["the small dog runs to the red house", "many horses work quickly"]


def _silence(seconds, sampling_rate):
    return np.zeros(int(seconds * sampling_rate), dtype=np.float32)


def test_vad_finds_the_speech_between_silences():
    pytest.importorskip("silero_vad", reason="pip install silero-vad (hf_slm[eval])")
    from hf_slm.data.vad import speech_segments, split_utterances

    first, second = synthesize(SENTENCES)
    rate = first["sampling_rate"]  # 22.05 kHz: the detector resamples to 16 kHz and maps times back
    parts = [_silence(1.0, rate), first["array"], _silence(1.5, rate), second["array"], _silence(1.0, rate)]
    # where the speech is: espeak-ng's own output starts and ends with a little silence, so allow 0.2 s
    starts = np.cumsum([0] + [len(p) for p in parts])[:-1] / rate
    expected = [(starts[1], starts[2]), (starts[3], starts[4])]
    noise = np.random.default_rng(0).normal(0, 0.003, int(starts[-1] * rate + len(parts[-1]))).astype(np.float32)
    recording = np.concatenate(parts) + noise  # a quiet noise floor, as in a real recording
    segments = speech_segments(recording, rate)
    assert len(segments) == 2
    for (start, end), (want_start, want_end) in zip(segments, expected):
        assert abs(start - want_start) < 0.2 and abs(end - want_end) < 0.2
    utterances = split_utterances(recording, rate)
    assert [(u["start"], u["end"]) for u in utterances] == segments
    assert all(u["sampling_rate"] == rate for u in utterances)
    np.testing.assert_array_equal(utterances[0]["array"], recording[round(segments[0][0] * rate):
                                                                    round(segments[0][1] * rate)])  # fmt: skip
    # a long minimum pause keeps both sentences in one utterance; silence and white noise hold no speech
    assert len(speech_segments(recording, rate, min_silence_ms=2000)) == 1
    assert speech_segments(_silence(2.0, rate), rate) == []
    assert speech_segments(np.random.default_rng(1).normal(0, 0.3, 2 * rate).astype(np.float32), rate) == []
    with pytest.raises(ValueError, match="mono waveform"):
        speech_segments(np.zeros((2, rate)), rate)


def test_split_audio_cli_writes_an_audiofolder_of_utterances(tmp_path, capsys):
    pytest.importorskip("silero_vad", reason="pip install silero-vad (hf_slm[eval])")
    import soundfile as sf

    from hf_slm.cli import main
    from hf_slm.data import load_local_dataset

    first, second = synthesize(SENTENCES)
    rate = first["sampling_rate"]
    recording = np.concatenate([_silence(0.5, rate), first["array"], _silence(1.0, rate), second["array"]])
    sf.write(tmp_path / "long.wav", recording, rate)
    out = tmp_path / "utterances"
    assert main(["split-audio", str(tmp_path / "long.wav"), "--output", str(out)]) == 0
    assert "wrote 2 utterances" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.wav")) == ["long_000.wav", "long_001.wav"]
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["file_name"] for r in rows] == ["long_000.wav", "long_001.wav"] and rows[0]["start"] < rows[1]["start"]
    assert sf.info(out / "long_001.wav").duration == pytest.approx(rows[1]["end"] - rows[1]["start"], abs=0.01)
    ds = load_local_dataset(out)  # an audiofolder: fit-tokenizer / tokenize --dataset read it
    assert len(ds) == 2 and {"audio", "start", "end", "source"} <= set(ds.column_names)
    with pytest.raises(SystemExit) as refused:  # argparse checks the path: usage error, status 2
        main(["split-audio", str(tmp_path / "missing.wav"), "--output", str(tmp_path / "x")])
    assert refused.value.code == 2
    assert "no such file" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_dnsmos_ranks_clean_speech_above_noisy_speech():
    for package in ("speechmos", "onnxruntime", "librosa"):
        pytest.importorskip(package, reason=f"pip install {package} (hf_slm[eval])")
    from hf_slm.evaluation import load_metric
    from hf_slm.evaluation.metrics.dnsmos.dnsmos import dnsmos

    speech = synthesize([" ".join(SENTENCES)])[0]
    clean, rate = speech["array"], speech["sampling_rate"]
    rms = np.sqrt(np.mean(clean**2))
    noisy = clean + np.random.default_rng(0).normal(0, rms, len(clean)).astype(np.float32)  # white noise, 0 dB SNR
    result = load_metric("dnsmos").compute(predictions=[clean, noisy], sampling_rate=rate)
    clean_scores, noisy_scores = result["dnsmos_per_item"]
    assert all(1 <= v <= 5 for item in (clean_scores, noisy_scores) for v in item.values())  # ~1-5 (a fitted map)
    assert clean_scores["ovrl"] > noisy_scores["ovrl"] + 0.5  # measured 2.63 vs 1.55
    assert clean_scores["bak"] > noisy_scores["bak"] + 1.0  # background noise: 3.58 vs 1.33
    assert result["dnsmos_ovrl"] == pytest.approx((clean_scores["ovrl"] + noisy_scores["ovrl"]) / 2)
    with pytest.raises(ValueError, match="silent"):
        dnsmos(np.zeros(rate), rate)


def test_resynthesis_cli_adds_dnsmos_of_both_sides(tmp_path):
    for package in ("speechmos", "onnxruntime", "librosa"):
        pytest.importorskip(package, reason=f"pip install {package} (hf_slm[eval])")
    from hf_slm.cli import main

    tiny_pipeline(SENTENCES).save_pretrained(tmp_path / "pipe")
    (tmp_path / "texts.txt").write_text(SENTENCES[0] + "\n")
    out = tmp_path / "resynthesis.json"
    assert main(["evaluate", "resynthesis", "--pipeline", str(tmp_path / "pipe"), "--texts", str(tmp_path / "texts.txt"),
                 "--dnsmos", "--output", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    item = result["items"][0]
    assert result["dnsmos_ovrl_original"] == item["dnsmos_ovrl_original"]
    # the tiny vocoder is untrained (its output is noise-like): clearly worse than the espeak-ng original
    assert item["dnsmos_ovrl_resynthesized"] < item["dnsmos_ovrl_original"] - 0.5
    assert "dnsmos_ovrl_resynthesized" in out.with_suffix(".md").read_text()
