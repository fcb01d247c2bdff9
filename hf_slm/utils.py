"""Helpers every layer may use: writes that are atomic and end with the permissions of a plain write.

``tempfile.mkdtemp`` / ``mkstemp`` make private (0700 / 0600) folders and files, and so does safetensors (>= 0.8 writes
through a temporary file), so anything written that way must get the mode a plain write would have had under the
umask, or colleagues on a shared machine cannot read it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_mode(directory: bool) -> int:
    """The permission bits a plain ``mkdir`` (``directory=True``) or ``open(..., "w")`` gets under the umask."""
    return (0o777 if directory else 0o666) & ~current_umask()



def widen_to_umask(path: str | os.PathLike) -> None:
    """Give ``path`` (a file, or a folder and everything under it) at least a plain write's permissions under the
    umask: private files and folders become readable as ``open`` / ``mkdir`` would have made them. Modes are only
    widened, never narrowed; symbolic links are left alone."""
    path = Path(path)
    if path.is_symlink() or not path.exists():
        return
    entries = [path] if not path.is_dir() else [path, *path.rglob("*")]
    file_mode, dir_mode = plain_mode(directory=False), plain_mode(directory=True)
    for entry in entries:
        if entry.is_symlink():
            continue
        mode = entry.stat().st_mode & 0o7777
        wanted = mode | (dir_mode if entry.is_dir() else file_mode | (mode & 0o111 and dir_mode & 0o111))
        if wanted != mode:
            entry.chmod(wanted)


def atomic_save_directory(save_directory: str | os.PathLike, write) -> Path:
    """Write a folder through ``write(tmp_dir)`` into a temporary sibling, then swap it into place.

    An interrupted save never leaves a half-written variant, and what was there before is only removed once the new
    folder is complete. The folder and its files end with the permissions a plain ``mkdir`` / ``open`` would give them
    under the umask (``mkdtemp`` and safetensors' own atomic write make them private).
    """
    target = Path(save_directory).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        widen_to_umask(tmp)
        backup = None
        if target.exists():
            backup = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, backup)
        os.replace(tmp, target)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary sibling of ``path`` for writing and rename it onto ``path`` when the block succeeds.

    A failure or Ctrl-C inside the block removes the temporary file and leaves whatever was at ``path`` untouched:
    no partial output and no ``.tmp`` left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        with open(temporary, mode, encoding=None if "b" in mode else encoding) as file:
            yield file
        os.chmod(temporary, plain_mode(directory=False))  # mkstemp makes it private; a plain open would not
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def lazy_exports(package: str, table: dict[str, list[str]]):
    """PEP 562 ``__getattr__`` / ``__dir__`` for a package ``__init__`` whose public names live in submodules
    (``table``: submodule -> names), imported on first use so that importing the package stays cheap."""
    import importlib

    where = {name: module for module, names in table.items() for name in names}

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(importlib.import_module(package), name, value)  # later look-ups skip this function
        return value

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(where))

    return __getattr__, __dir__


class OneThreadInWorkers:
    """Wraps a `datasets.map` function so that, in a worker process of `map(num_proc=N)`, torch runs one intra-op
    thread before the function's first op. A worker is forked from a parent whose OpenMP pool may have run, and a
    multi-threaded op in it then deadlocks in libgomp; N workers share the cores anyway."""

    def __init__(self, function):
        self.function = function
        self.parent_pid = os.getpid()

    def __call__(self, *args, **kwargs):
        if os.getpid() != self.parent_pid:
            import torch

            if torch.get_num_threads() != 1:
                torch.set_num_threads(1)
        return self.function(*args, **kwargs)


__all__ = ["OneThreadInWorkers", "atomic_open", "atomic_save_directory", "current_umask", "lazy_exports", "plain_mode", "widen_to_umask"]
