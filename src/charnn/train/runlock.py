"""One training session per run folder: an advisory lock on the folder while a session writes it.

Two sessions writing one run folder (`train --resume RUN` started twice, or `--overwrite` of a folder
that is still training) would interleave metrics.jsonl and overwrite each other's checkpoints. A
session therefore holds an exclusive flock(2) on the folder itself (no lock file to leave behind);
the kernel drops it when the process ends in any way, kill -9 included, so a crash never leaves a
stale lock. Platforms without fcntl (Windows) train unlocked.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:            # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class RunInUseError(ValueError):
    """Another charnn process is training in this run folder right now."""


@contextmanager
def hold(run_dir: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of `run_dir` (an existing folder) for the duration of the block."""
    if fcntl is None:
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUseError(f"run folder {run_dir} is in use by another charnn training session: "
                                f"wait for it to finish or stop it (Ctrl-C) first") from None
        yield
    finally:
        os.close(fd)          # closing the descriptor releases the lock


def ensure_free(run_dir: str | Path) -> None:
    """Raise RunInUseError now if another session holds `run_dir` (a quick check before slow work)."""
    if Path(run_dir).is_dir():
        with hold(run_dir):
            pass
