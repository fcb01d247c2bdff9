"""Load a script of `examples/` or `spaces/` as a module: those scripts are no package, so the tests import them
from their file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: str | Path, name: str | None = None, keep_registered: bool = False,
                monkeypatch=None) -> ModuleType:
    """The script at `path` (absolute, or relative to the repository root) run as module `name` (default: its stem).

    The module sits in `sys.modules` while it runs (dataclasses resolve string annotations through it) and is taken
    out afterwards unless `keep_registered` (for scripts whose classes look their module up again later), or, given
    pytest's `monkeypatch`, when the test ends (`HfArgumentParser` reads the dataclasses' annotations at each parse).
    """
    path = ROOT / path
    if not path.is_file():
        raise FileNotFoundError(f"no script at {path}")
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    if monkeypatch is not None:
        monkeypatch.setitem(sys.modules, name, module)
    else:
        sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        if not keep_registered and monkeypatch is None:
            sys.modules.pop(name, None)
    return module
