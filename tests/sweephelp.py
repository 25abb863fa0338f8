"""Helpers for the sweep tests: tiny base configs, space files, workers as subprocesses, the study."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

# A tiny model: 8 hidden units, 16-character sequences, validated every 5 steps.
BASE = {"hidden_size": 8, "max_len": 16, "batch_size": 4, "dtype": "float64", "sample_length": 20,
        "log_every": 5, "eval_every": 5, "max_steps": 15}


def toml(values: dict) -> str:
    out = []
    for k, v in values.items():
        if isinstance(v, dict):
            out.append(f"[{k}]")
            out += [f"{kk} = {json.dumps(vv)}" for kk, vv in v.items()]
        else:
            out.append(f"{k} = {json.dumps(v)}")
    return "\n".join(out) + "\n"


def write(path: Path, values: dict) -> Path:
    path.write_text(toml(values), encoding="utf-8")
    return path


def base_config(folder: Path, **changes) -> Path:
    return write(folder / f"base-{len(list(folder.glob('base-*')))}.toml", {**BASE, **changes})


def worker(*args, **kw) -> subprocess.Popen:
    """A `charnn sweep` worker in its own process."""
    return subprocess.Popen([sys.executable, "-m", "charnn.cli", "sweep", "--no-progress", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def wait_for(predicate, what: str, limit_s: float = 120.0) -> None:
    """Poll until `predicate()` holds (a deadline against a hang, not a speed check)."""
    end = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def load(sweep_dir: Path | None = None, study: str | None = None, storage: str | None = None):
    """The study of a sweep folder (journal file) or of a database URL."""
    from charnn.sweep.storage import open_store
    from charnn.sweep.study import SWEEP_FILE, open_study

    if study is None:
        study = json.loads((sweep_dir / SWEEP_FILE).read_text())["study"]
    return open_study(open_store(storage, sweep_dir), study, create=False)


def finished(proc: subprocess.Popen, limit_s: float = 300.0) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=limit_s)
    return proc.returncode, out, err
