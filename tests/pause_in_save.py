"""Run the `charnn` command with its first overwrite of a checkpoint stopped half-way.

    python tests/pause_in_save.py MARKER train ...

Fault injection for test_faults, kept out of the production code: the real
`charnn.train.checkpoint.atomic_write_bytes` runs unchanged, but the file it writes a replacement
checkpoint into writes half its bytes, syncs them to disk, creates MARKER and then waits (up to
5 minutes), so that a test can kill -9 or signal the process in the middle of the write.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from charnn.cli import main
from charnn.train import checkpoint

MARKER = Path(sys.argv.pop(1))
_real_write, _real_fdopen = checkpoint.atomic_write_bytes, os.fdopen
_armed = False


class _HalfThenWait:
    """A binary file whose first write stops half-way and waits."""

    def __init__(self, f: Any):
        self.f = f

    def write(self, data: Any) -> int:
        global _armed
        if not _armed:
            return self.f.write(data)
        _armed = False
        cut = len(data) // 2
        self.f.write(data[:cut])
        self.f.flush()
        os.fsync(self.f.fileno())            # the half-written temp file is really on disk
        MARKER.write_text(str(os.getpid()))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(0.05)
        return cut + self.f.write(data[cut:])

    def __enter__(self) -> "_HalfThenWait":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.f.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


def _write(path: Path, data: bytes) -> None:
    global _armed
    _armed = path.suffix == ".safetensors" and path.exists() and not MARKER.exists()
    _real_write(path, data)


def _fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
    f = _real_fdopen(fd, *args, **kwargs)
    return _HalfThenWait(f) if _armed else f


checkpoint.atomic_write_bytes = _write
checkpoint.os.fdopen = _fdopen
sys.exit(main(sys.argv[1:]))
