"""Helpers for the reliability and security tests: craft damaged or hostile checkpoints by hand,
run the real `charnn` command line as a child process, and snapshot folders to prove nothing changed."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

# The smallest runs that still exercise everything: float64 so that resumes compare bit for bit.
TINY = ["--hidden-size", "8", "--max-len", "10", "--batch-size", "2", "--dtype", "float64",
        "--sample-length", "10", "--log-every", "2", "--no-progress"]


@dataclass
class Proc:
    rc: int
    out: str
    err: str

    def one_line_error(self, *needles: str) -> str:
        """Assert exit status 2 and exactly one stderr line (no traceback) holding every needle; return it."""
        assert self.rc == 2, (self.rc, self.err)
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert "Traceback" not in self.err and lines[0].startswith("charnn"), self.err
        for n in needles:
            assert n in lines[0], (n, lines[0])
        return lines[0]


def cli(*args: Any, cwd: Path | None = None, env: dict | None = None, timeout: float = 120,
        preexec_fn: Callable[[], None] | None = None) -> Proc:
    """Run `python -m charnn.cli ARGS` as a child process and wait for it."""
    r = subprocess.run([sys.executable, "-m", "charnn.cli", *map(str, args)], capture_output=True, text=True, errors="replace",
                       cwd=cwd, env=None if env is None else {**os.environ, **env}, timeout=timeout,
                       preexec_fn=preexec_fn)
    return Proc(r.returncode, r.stdout, r.stderr)


def cli_popen(*args: Any, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "charnn.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env=None if env is None else {**os.environ, **env})


def snapshot(root: Path) -> dict[str, Any]:
    """Every file's bytes and mtime, and every folder, under `root` (to prove a command changed nothing)."""
    snap: dict[str, Any] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        snap[rel] = (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else "dir"
    return snap


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Paths added, removed or modified between two snapshots."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def split_file(raw: bytes) -> tuple[dict, bytes]:
    """A safetensors file -> (header dict, data bytes)."""
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def join_file(header: dict, data: bytes) -> bytes:
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


def with_meta(raw: bytes, **changes: Any) -> bytes:
    """The same checkpoint with some metadata values replaced (JSON-encoded as charnn writes them)."""
    header, data = split_file(raw)
    header["__metadata__"].update({k: json.dumps(v) for k, v in changes.items()})
    return join_file(header, data)


def meta_of(raw: bytes) -> dict[str, Any]:
    header, _ = split_file(raw)
    return {k: json.loads(v) for k, v in header["__metadata__"].items()}
