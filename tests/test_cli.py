"""`hf-slm` end to end on real espeak-ng speech: synth -> fit-tokenizer -> tokenize -> info -> demo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import datasets
import numpy as np
import pytest
import soundfile as sf

from hf_slm.cli import main
from tiny_components import tiny_pipeline


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    texts = root / "texts.txt"
    texts.write_text("the cat sleeps on the mat\n\nthe dogs run to the red house\na bird sings in the tree\n")
    assert main(["synth", "--texts", str(texts), "--voices", "en-us,en-us+f3", "--cache-dir", str(root / "cache"),
                 "--output", str(root / "speech")]) == 0
    return root


def test_synth_writes_dataset_with_word_timestamps(workdir):
    ds = datasets.load_from_disk(str(workdir / "speech"))
    assert len(ds) == 3 and ds["voice"] == ["en-us", "en-us+f3", "en-us"]
    row = ds[1]
    assert row["words"][0] == "the" and len(row["word_start"]) == len(row["words"])
    assert row["duration"] > 0.5


def test_fit_tokenize_info(workdir, capsys, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", workdir / "datasets_cache")
    input_files = sorted(p.name for p in (workdir / "speech").iterdir())
    tok_dir = workdir / "tok"
    assert main(["fit-tokenizer", "--dataset", str(workdir / "speech"), "--num-units", "8",
                 "--output", str(tok_dir)]) == 0
    config = json.loads((tok_dir / "config.json").read_text())
    assert config["num_units"] == 8 and (tok_dir / "preprocessor_config.json").exists()

    wav = workdir / "one.wav"
    ds = datasets.load_from_disk(str(workdir / "speech"))
    samples = ds[0]["audio"].get_all_samples()
    sf.write(wav, samples.data.numpy().T, samples.sample_rate)
    assert main(["tokenize", str(wav), str(wav), "--tokenizer", str(tok_dir), "--deduplicate",
                 "--output", str(workdir / "units.jsonl")]) == 0
    rows = [json.loads(line) for line in (workdir / "units.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["units"] == rows[1]["units"]
    assert all(0 <= u < 8 for u in rows[0]["units"])
    assert all(a != b for a, b in zip(rows[0]["units"], rows[0]["units"][1:])), "deduplicated units repeat"
    assert sum(rows[0]["durations"]) == 1 + (len(samples.data[0]) * 16000 // samples.sample_rate - 400) // 320

    assert main(["tokenize", "--dataset", str(workdir / "speech"), "--tokenizer", str(tok_dir),
                 "--output", str(workdir / "units_ds")]) == 0
    tokenised = datasets.load_from_disk(str(workdir / "units_ds"))
    assert "units" in tokenised.column_names and len(tokenised) == 3
    assert sorted(p.name for p in (workdir / "speech").iterdir()) == input_files  # no cache-*.arrow in the input
    assert list((workdir / "datasets_cache" / "hf_slm_units").glob("units-*.arrow"))

    capsys.readouterr()
    assert main(["info", str(tok_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["component"]["model_type"] == "hf_slm_unit_encoder"


def test_bad_inputs_exit_with_named_error(workdir, capsys):
    bogus = workdir / "notes.wav"
    bogus.write_text("this is not audio")
    assert main(["tokenize", str(bogus), "--tokenizer", str(workdir / "tok"), "--output", str(workdir / "x.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "notes.wav" in err
    assert not (workdir / "x.jsonl").exists()
    assert main(["info", str(workdir / "missing-folder")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_every_command_names_its_variant_with_pipeline_and_keeps_its_old_form(workdir, tmp_path, capsys):
    """`--pipeline` as in evaluate / demo / tts, beside chat's and info's positional and tokenize's --tokenizer."""
    capsys.readouterr()
    outputs = []
    for argv in (["info", "twist-default", "--json"], ["info", "--pipeline", "twist-default", "--json"],
                 ["info", "twist-default", "--pipeline", "twist-default", "--json"]):  # fmt: skip
        assert main(argv) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1] == outputs[2] and outputs[0]["path"].endswith("default_twist_pipeline")
    assert main(["info", "--json"]) == 0 and json.loads(capsys.readouterr().out)["path"].endswith("default_pipeline")
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "default", "--pipeline", "twist-default"])
    assert exit_info.value.code == 2 and "two variants given: 'default' and --pipeline 'twist-default'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["chat", "--text", "hello"])
    assert exit_info.value.code == 2 and "PIPELINE (or --pipeline)" in capsys.readouterr().err
    assert main(["chat", "--pipeline", "instruct-default", "--text", "what is two plus three",
                 "--max-new-tokens", "4"]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip()
    wav = _a_wav(workdir, tmp_path)
    units = []
    for option in ("--tokenizer", "--pipeline"):
        out = tmp_path / f"{option.strip('-')}.jsonl"
        assert main(["tokenize", str(wav), option, "default", "--output", str(out)]) == 0
        units.append([json.loads(line)["units"] for line in out.read_text().splitlines()])
    assert units[0] == units[1] and len(units[0][0]) > 10


def _a_wav(workdir, tmp_path):
    row = datasets.load_from_disk(str(workdir / "speech"))[0]["audio"]
    path = tmp_path / "a.wav"
    sf.write(path, np.asarray(row["array"]), row["sampling_rate"])
    return path


def test_demo_writes_wavs_and_png(tmp_path, capsys):
    folder = tiny_pipeline().save_pretrained(tmp_path / "tiny")
    out = tmp_path / "demo_out"
    assert main(["demo", "--pipeline", str(folder), "--max-new-tokens", "8", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("input.wav", "resynthesized.wav", "continuation.wav", "demo.png"):
        assert (out / name).exists() and f"wrote {out / name}" in printed
    audio, sr = sf.read(out / "resynthesized.wav")
    assert sr == 16000 and len(audio) > 16000 and np.isfinite(audio).all()
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_env_and_version_report_what_is_installed(capsys):
    import torch
    import transformers

    import hf_slm
    from hf_slm.data.espeak import espeak_version

    assert main(["env", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["hf_slm"] == hf_slm.__version__ and info["transformers"] == transformers.__version__
    assert torch.__version__.startswith(info["torch"]) and info["espeak-ng"] == espeak_version()
    assert info["festival"].startswith("Festival Speech Synthesis System") and "kal_diphone" in info["festival"]
    assert info["cuda"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available")
    assert main(["env"]) == 0 and f"- transformers: {transformers.__version__}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"hf-slm {hf_slm.__version__}"


def test_console_script_is_installed():
    exe = shutil.which("hf-slm") or str(__import__("pathlib").Path(sys.executable).with_name("hf-slm"))
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for command in ("synth", "fit-tokenizer", "tokenize", "info", "demo"):
        assert command in proc.stdout
