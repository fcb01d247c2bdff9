"""What a user runs first prints no deprecation warning: `hf-slm demo` and an `hf-slm evaluate` command on the
embedded default, each in a fresh process where FutureWarning and DeprecationWarning are errors (with only the
third-party filters that pyproject.toml gives pytest)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def warning_options() -> list[str]:
    """pytest's filterwarnings as `python -W` options (pytest lists them lowest priority first, -W the other way)."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    filters = config["tool"]["pytest"]["ini_options"]["filterwarnings"]
    options = []
    for entry in reversed(filters):
        action, message, category = (entry.split(":") + ["", ""])[:3]
        options += ["-W", f"{action}:{message}:{category}"]  # -W: a literal message prefix (ours have no regex)
    return options


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *warning_options(), "-m", "hf_slm.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=600,
    )  # fmt: skip


def test_demo_and_evaluate_print_no_deprecation_warning(tmp_path):
    demo = run_cli(["demo", "--pipeline", "default", "--max-new-tokens", "8", "--output", str(tmp_path / "demo")],
                   tmp_path)  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "Warning" not in demo.stderr, demo.stderr[-3000:]
    pairs = tmp_path / "pairs.jsonl"
    built = run_cli(["evaluate", "build-pairs", "--output", str(pairs), "--num-lexical", "2",
                     "--num-per-phenomenon", "1"], tmp_path)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    scored = run_cli(["evaluate", "pairs", "--pipeline", "default", "--pairs", str(pairs),
                      "--output", str(tmp_path / "pairs.json")], tmp_path)  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert "Warning" not in built.stderr + scored.stderr, (built.stderr + scored.stderr)[-3000:]
