"""`benchmarks/gpu_figures.sh` (the GPU figures in one call) runs each of its rows at tiny sizes on the CPU: every
row's benchmark, with the options the CUDA call uses (profiles, padding bound, both baseline dtypes, variants),
finishes and leaves a log with its figures, so a short GPU lease is not spent finding a broken command."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_figures_script_runs_every_row_at_tiny_sizes(tmp_path):
    out = tmp_path / "figures"
    env = {**os.environ, "TINY": "1", "PYTHON": sys.executable, "OUT": str(out)}
    run = subprocess.run(["bash", "benchmarks/gpu_figures.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    logs = {path.stem: path.read_text() for path in out.glob("*.txt")}
    assert "python" in logs.pop("env")
    # every row with a CPU form ran (the FlexAttention row has none: no backward on CPU)
    assert set(logs) == {"generation", "pretraining", "tokenization", "tokenization_one_batch", "vocoder",
                         "vocoder_throughput"}  # fmt: skip
    for name, log in logs.items():
        assert log.rstrip().endswith("== exit status 0"), name
        assert "\nratio: " in log, name
    assert "profile of fast" in logs["generation"] and "profile of generate" in logs["generation"]
    assert "padding <= 50%" in logs["tokenization_one_batch"]
    assert "baseline-bfloat16" in logs["vocoder_throughput"] and "baseline-float32" in logs["vocoder_throughput"]


def test_gpu_figures_script_reports_a_failing_row(tmp_path):
    """A row whose benchmark fails keeps its log with the exit status, and the script's status says so."""
    env = {**os.environ, "TINY": "1", "PYTHON": sys.executable, "OUT": str(tmp_path), "ONLY": "tokenization",
           "PYTHONPATH": str(tmp_path / "nowhere")}  # fmt: skip
    broken = tmp_path / "bin"
    broken.mkdir()
    (broken / "python").write_text("#!/bin/sh\nexit 3\n")
    (broken / "python").chmod(0o755)
    env["PYTHON"] = str(broken / "python")
    run = subprocess.run(["bash", "benchmarks/gpu_figures.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 1
    assert (tmp_path / "tokenization.txt").read_text().rstrip().endswith("== exit status 3")
    assert "!! tokenization: exit status 3" in run.stdout
