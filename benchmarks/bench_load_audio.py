"""Audio file decoding: our `load_audio` (soundfile, torchcodec for what soundfile cannot read; torchaudio resampling)
vs transformers' `audio_utils.load_audio`, in one process, runs interleaved, on the same files.

Files (written to a temporary folder): an espeak-ng utterance (22.05 kHz mono 16-bit WAV) and `--seconds` of noise
as 44.1 kHz stereo 16-bit WAV, 48 kHz mono 24-bit WAV and 16 kHz mono FLAC; all loaded at 16 kHz mono.
  (a) ours                      - `hf_slm.models.unit_encoder.load_audio(path, 16000)` (with its input checks);
  (b) transformers torchaudio   - `load_audio(path, 16000, backend="torchaudio")`: `torchaudio.load` (torchcodec in
                                  torchaudio >= 2.9) + `torchaudio.functional.resample`, the same samples as (a);
  (c) transformers auto         - `load_audio(path, 16000)`: torchcodec decoding with ffmpeg's resampler (different
                                  samples where a file is resampled).
Prints per file the best of `--repeats` milliseconds, whether (b) and (c) give (a)'s samples bit for bit, and last
`ratio: X` = (b) / (a) summed over files (> 1: ours is faster).

    python benchmarks/bench_load_audio.py --seconds 10 --repeats 20
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from transformers.audio_utils import load_audio as transformers_load_audio

from hf_slm.models.unit_encoder import load_audio


def write_files(folder: Path, seconds: float) -> list[Path]:
    rng = np.random.default_rng(0)
    files = []
    for rate, channels, subtype, suffix in [(44100, 2, "PCM_16", "wav"), (48000, 1, "PCM_24", "wav"),
                                            (16000, 1, "PCM_16", "flac")]:  # fmt: skip
        noise = (0.3 * rng.standard_normal((int(rate * seconds), channels))).clip(-1, 1).astype(np.float32)
        files.append(folder / f"noise_{rate}_{channels}ch_{subtype}.{suffix}")
        sf.write(files[-1], noise, rate, subtype=subtype)
    files.append(folder / "espeak_22050.wav")
    subprocess.run(["espeak-ng", "-w", str(files[-1]), "the quick brown fox jumps over the lazy dog"], check=True)
    return files


def best_ms(load, path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        load(path)
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaders = {
        "ours": lambda p: load_audio(str(p), 16000),
        "torchaudio": lambda p: transformers_load_audio(str(p), 16000, backend="torchaudio"),
        "auto": lambda p: transformers_load_audio(str(p), 16000),
    }
    print(f"{platform.processor() or platform.machine()}, torch threads 1, best of {args.repeats}, ms per file")
    totals = dict.fromkeys(loaders, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_files(Path(tmp), args.seconds):
            ours = loaders["ours"](path)
            same = {k: bool(np.array_equal(ours, f(path))) for k, f in loaders.items() if k != "ours"}
            ms = {k: best_ms(f, path, args.repeats) for k, f in loaders.items()}
            for k in totals:
                totals[k] += ms[k]
            print(f"{path.name}: " + ", ".join(f"{k} {v:.1f}" for k, v in ms.items())
                  + f"; same samples as ours: {same}")  # fmt: skip
    print(f"ratio: {totals['torchaudio'] / totals['ours']:.2f}")


if __name__ == "__main__":
    main()
