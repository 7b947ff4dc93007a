"""Atomic writes: a writer killed mid-write leaves the old file intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from simulator.errors import InputError
from simulator.io import atomic_write_json, atomic_write_text, safe_join


def test_write_and_replace(tmp_path):
    p = tmp_path / "out.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"a": 2})
    assert p.read_text().strip().replace(" ", "").replace("\n", "") == '{"a":2}'
    assert [f.name for f in tmp_path.iterdir()] == ["out.json"]  # no temp files left


def test_nan_is_refused_and_old_file_kept(tmp_path):
    p = tmp_path / "out.json"
    atomic_write_json(p, {"a": 1})
    with pytest.raises(ValueError):
        atomic_write_json(p, {"a": float("nan")})
    assert '"a": 1' in p.read_text()


def test_missing_directory(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        atomic_write_text(tmp_path / "no" / "such" / "file.txt", "x")


def test_killed_writer_leaves_old_file_intact(tmp_path):
    """A child process writes a 200 MB file through atomic_write_bytes and is SIGKILLed mid-write."""
    target = tmp_path / "profile.json"
    target.write_text("OLD CONTENT")
    code = (
        "import sys, simulator.io as io\n"
        "open(sys.argv[2], 'w').write('started')\n"
        "io.atomic_write_bytes(sys.argv[1], b'x' * (400 * 1024 * 1024))\n"
    )
    flag = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", code, str(target), str(flag)])
    deadline = time.time() + 30
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # the 400 MB buffer is being built / written
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.read_text() == "OLD CONTENT"
    leftovers = [f for f in os.listdir(tmp_path) if f not in ("profile.json", "started")]
    # A SIGKILL cannot run cleanup; at most one temp file, never a truncated target.
    assert all(f.startswith(".profile.json.") and f.endswith(".tmp") for f in leftovers)


def test_safe_join_refuses_escape(tmp_path):
    assert safe_join(tmp_path, "a/b.html") == (tmp_path / "a" / "b.html").resolve()
    for bad in ("../x.html", "/etc/passwd", "a/../../x"):
        with pytest.raises(InputError, match="escapes"):
            safe_join(tmp_path, bad)


def test_written_file_has_normal_permissions(tmp_path):
    p = tmp_path / "shared.json"
    atomic_write_json(p, {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~mask)
