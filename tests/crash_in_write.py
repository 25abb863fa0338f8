"""Run the `charnn` command and crash it half-way through its first rewrite of a named file.

    python tests/crash_in_write.py NAME train ...

Fault injection for test_stops_and_resume, kept out of the production code (like pause_in_save.py):
the real `charnn.train.checkpoint.atomic_write_bytes` runs unchanged, but when it replaces an
existing file called NAME, the temp file it writes gets half the bytes, synced to disk, and then the
process kills itself with SIGKILL: no handler, no cleanup, as in a power cut.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from charnn.cli import main
from charnn.train import checkpoint

NAME = sys.argv.pop(1)
_real_write, _real_fdopen = checkpoint.atomic_write_bytes, os.fdopen
_armed = False


class _HalfThenCrash:
    def __init__(self, f: Any):
        self.f = f

    def write(self, data: Any) -> int:
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        os.fsync(self.f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    def __enter__(self) -> "_HalfThenCrash":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.f.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


def _write(path: Path, data: bytes, *args: Any, **kwargs: Any) -> None:
    global _armed
    _armed = path.name == NAME and path.exists()
    _real_write(path, data, *args, **kwargs)


def _fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
    f = _real_fdopen(fd, *args, **kwargs)
    return _HalfThenCrash(f) if _armed else f


checkpoint.atomic_write_bytes = _write
checkpoint.os.fdopen = _fdopen
sys.exit(main(sys.argv[1:]))
