"""The embedded default variant ships inside the package, loads offline, fits the size budget, and works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import hf_slm

DEFAULT = Path(hf_slm.DEFAULT_PIPELINE)


def test_default_is_small_and_complete():
    size = sum(f.stat().st_size for f in DEFAULT.rglob("*") if f.is_file())
    assert size <= 30e6, f"embedded default is {size / 1e6:.1f} MB, over the 30 MB budget"
    index = json.loads((DEFAULT / "pipeline_index.json").read_text())
    for name in ("feature_extractor", "speech_tokenizer", "language_model", "vocoder"):
        assert index[name] is not None and (DEFAULT / name).is_dir(), name
    assert not list(DEFAULT.rglob("*.bin")) and not list(DEFAULT.rglob("*.pkl"))
    summary = json.loads((DEFAULT / "training_summary.json").read_text())
    assert summary["lm_eval_loss"] < np.log(summary["arguments"]["num_units"]), "the LM learned less than uniform"


def test_default_loads_offline_in_fresh_process_and_resynthesises(tmp_path):
    code = """
import sys, numpy as np
from hf_slm import SpeechLMPipeline
from hf_slm.data import EspeakSynthesizer
pipe = SpeechLMPipeline.from_pretrained("default")
speech = EspeakSynthesizer("en-us").synthesize("the red dog runs home")
out = pipe.resynthesize({"array": speech.waveform, "sampling_rate": speech.sampling_rate})
cont = pipe.continue_speech({"array": speech.waveform, "sampling_rate": speech.sampling_rate}, max_new_tokens=20, seed=0)
w = out.waveforms[0]
print(len(out.units[0]), len(w), float(np.abs(w).max()), len(cont.units[0]))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n_units, n_samples, peak, n_cont = proc.stdout.split()[-4:]
    assert int(n_units) > 50 and int(n_samples) == int(n_units) * 320
    assert 0.01 < float(peak) <= 1.5 and 0 < int(n_cont) <= 20
