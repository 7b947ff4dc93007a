"""Drop the compiled-kernel cache when a module the kernels inline has changed.

Numba's on-disk cache (``cache=True``) is keyed on the source file of each compiled function only. The
kernels inline :func:`simulator.service.service_time`, the sketch's bucket function and the cache
policies' heap helpers from other files, so an edit there would leave stale machine code in use (the
engines would silently disagree). At import, a digest of every file the kernels are built from is
compared with the one stored beside the cache; on a mismatch this package's cache files are removed and
the kernels compile afresh once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_SOURCES = [_HERE.parent / "service.py", _HERE.parent / "cachesim.py", _HERE / "sketch.py",
            _HERE / "kernels.py", _HERE / "cache.py"]


def drop_stale_cache() -> None:
    digest = hashlib.sha256()
    for path in _SOURCES:
        digest.update(path.read_bytes())
    stamp = digest.hexdigest()
    cache_dir = _HERE / "__pycache__"
    stamp_file = cache_dir / "kernels-sources.sha256"
    try:
        if stamp_file.read_text() == stamp:
            return
    except OSError:
        pass
    try:
        cache_dir.mkdir(exist_ok=True)
        for f in cache_dir.iterdir():
            if f.suffix in (".nbi", ".nbc"):
                f.unlink(missing_ok=True)
        tmp = stamp_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(stamp)
        os.replace(tmp, stamp_file)
    except OSError:  # a read-only install: numba then caches elsewhere or not at all
        pass
