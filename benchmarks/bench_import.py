"""Start-up cost: `import hf_slm` against `import transformers`, and `hf-slm --help`, each in fresh processes.

Every figure is the median wall time of `--repeats` new Python processes started one after the other in this run
(so both sides see the same disk cache and machine load), after one warm-up process each. `import hf_slm` must stay
within 1.5x `import transformers` (it defers torch and the model classes to first use), and `hf-slm --help` under 2 s.
Also reports whether `import hf_slm` imported torch, and the peak resident memory of each import (ru_maxrss).

Before the lazy imports (same machine, 2026-12-03): `import hf_slm` took 10 s (6.5x `import transformers`, about
1 GB) and `hf-slm --help` 13-22 s.

    python benchmarks/bench_import.py --repeats 7
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROBE = (
    "import resource, sys, time; t = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - t, 'torch' in sys.modules, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


def time_import(module: str, repeats: int) -> tuple[float, bool, float]:
    """Median seconds of the import alone (interpreter start excluded), torch imported?, median peak RSS in MB."""
    runs = []
    for _ in range(repeats + 1):
        out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"import {module} failed:\n{out.stderr}")
        seconds, torch_loaded, rss_kb = out.stdout.split()
        runs.append((float(seconds), torch_loaded == "True", float(rss_kb) / 1024))
    runs = runs[1:]  # the first process warms the disk cache
    return statistics.median(r[0] for r in runs), runs[0][1], statistics.median(r[2] for r in runs)


def time_command(argv: list[str], repeats: int) -> float:
    """Median wall seconds of a whole command (interpreter start included), as a user waits for it."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        out = subprocess.run(argv, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if out.returncode:
            raise SystemExit(f"{' '.join(argv)} failed:\n{out.stderr}")
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args()

    transformers_s, _, transformers_mb = time_import("transformers", args.repeats)
    ours_s, torch_loaded, ours_mb = time_import("hf_slm", args.repeats)
    cli = shutil.which("hf-slm", path=str(Path(sys.executable).parent)) or shutil.which("hf-slm")
    help_s = time_command([cli, "--help"] if cli else [sys.executable, "-m", "hf_slm.cli", "--help"], args.repeats)
    ratio = ours_s / transformers_s
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"import transformers: {transformers_s:.3f} s, {transformers_mb:.0f} MB peak RSS")
    print(f"import hf_slm:       {ours_s:.3f} s, {ours_mb:.0f} MB peak RSS, torch imported: {torch_loaded}")
    print(f"hf-slm --help:       {help_s:.3f} s (whole process; goal < 2 s)")
    print(f"ratio: {ratio:.2f} (import hf_slm / import transformers; goal <= 1.5)")
    if args.output:
        figures = {
            "import_transformers_s": transformers_s, "import_hf_slm_s": ours_s, "ratio": ratio,
            "hf_slm_help_s": help_s, "torch_imported": torch_loaded,
            "import_transformers_rss_mb": transformers_mb, "import_hf_slm_rss_mb": ours_mb,
        }  # fmt: skip
        args.output.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
