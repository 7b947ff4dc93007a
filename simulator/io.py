"""Atomic file output: a reader sees the old file or the new one, never half of either.

Write to a temporary file in the destination's directory (same file system, so the rename is atomic),
flush and fsync it, then ``os.replace`` it over the target. A crash or kill mid-write leaves the old
file intact and at worst a stray ``.tmp`` file that the next write cleans up by overwriting nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import InputError

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "safe_join"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename); return the path."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"output directory {str(directory)!r} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            # mkstemp makes the file private (0600); give it the mode a plain open() would.
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        # The temp file is ours alone; removing it leaves the target exactly as it was.
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return target


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: object, *, indent: int | None = 1) -> Path:
    """Serialize ``obj`` (strict JSON: NaN/inf refused) and write it atomically."""
    text = json.dumps(obj, indent=indent, allow_nan=False, sort_keys=False) + "\n"
    return atomic_write_text(path, text)


def safe_join(root: str | os.PathLike, relative: str) -> Path:
    """Join ``relative`` under ``root``, refusing paths that escape it (``..``, absolute paths, links)."""
    base = Path(root).resolve()
    candidate = (base / relative).resolve()
    if candidate != base and base not in candidate.parents:
        raise InputError(f"output path {relative!r} escapes the output directory {str(base)!r}")
    return candidate
