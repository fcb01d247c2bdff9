"""File permissions of atomic writes: ``tempfile.mkdtemp`` / ``mkstemp`` make private (0700 / 0600) folders and files,
and so does safetensors (>= 0.8 writes through a temporary file), so anything written that way must get the mode a
plain write would have had under the umask, or colleagues on a shared machine cannot read it."""

from __future__ import annotations

import os
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


__all__ = ["current_umask", "plain_mode", "widen_to_umask"]
