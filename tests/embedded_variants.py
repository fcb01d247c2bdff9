"""What every embedded variant must pass: found by name from any folder, within its weight budget, no model code or
pickles, float16 storage where it says so, and a load by name in a fresh process with the Hub unreachable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open

from hf_slm.pipelines.pipeline_utils import resolve_pipeline_path

PROMPT_TEXT = "the old man walks to the river"


def voice_prompt() -> dict:
    """A prompt in a voice none of the embedded variants trained on (espeak-ng `en-gb+f2` at pitch 70)."""
    from hf_slm.data import EspeakSynthesizer

    speech = EspeakSynthesizer(voice="en-gb+f2", pitch=70).synthesize(PROMPT_TEXT)
    return {"array": speech.waveform, "sampling_rate": speech.sampling_rate}


def check_embedded_folder(name: str, folder: Path, budget_mb: float, float16=()) -> None:
    """Run from a folder of its own (`monkeypatch.chdir`), so that `name` cannot resolve to a local folder."""
    assert resolve_pipeline_path(name) == folder
    size = sum(f.stat().st_size for f in folder.rglob("*.safetensors")) / 1e6
    assert size <= budget_mb, f"{name} weights {size:.1f} MB over the {budget_mb} MB budget"
    assert not list(folder.rglob("*.py")) and not list(folder.rglob("*.bin"))
    for component in float16:
        with safe_open(str(folder / component / "model.safetensors"), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}, component  # half the bytes


def run_offline(code: str, tmp_path: Path) -> list[str]:
    """`code`'s printed words, run by a fresh interpreter with no Hub (offline, a dead endpoint, an empty cache)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()
