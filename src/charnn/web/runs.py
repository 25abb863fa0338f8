"""What `charnn serve` serves: the run folders and checkpoints it was started with, by id.

A served path is a checkpoint file, a run folder (it holds config.json, metrics.jsonl or
checkpoints/), or a folder of run folders; the last is scanned again on every request, so a run
that `charnn train` starts under it later appears while it trains. A client names a run by the
id `Registry.runs` gives it, never by a path: ids are looked up in a table built from the served
paths only, so no request can reach a file outside them.

Loaded checkpoints are kept per (file, modification time): a run that is still training saves a
new best checkpoint now and then (an atomic rename), and the next request loads the new one. At
most `MAX_LOADED` models are held at once (least recently used first out).
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..train import BEST, LAST
from ..train import checkpoint as ckpt_io
from ..train.checkpoint import Checkpoint, CheckpointError

MAX_LOADED = 4                 # checkpoints held in memory at once
ACTIVE_S = 30.0                # a run whose metrics.jsonl changed this recently counts as training
MAX_METRICS_BYTES = 1 << 20    # one metrics request reads at most this much of metrics.jsonl
MAX_SAMPLES = 100              # the last this many epoch samples are served
ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SAMPLE_HEAD = re.compile(r"^=== (.*) ===$")


class UnknownRun(LookupError):
    """No served run or model has this id."""


def is_run_dir(p: Path) -> bool:
    """A folder that `charnn train` writes (or wrote)."""
    return p.is_dir() and any((p / name).exists() for name in ("config.json", "metrics.jsonl", "checkpoints"))


def _slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "run"
    return s[:100]


@dataclass(frozen=True)
class Run:
    """One served run: a run folder (`folder`) or a lone checkpoint file (`file`, folder None)."""

    id: str
    folder: Path | None
    file: Path | None = None

    def checkpoint_path(self) -> Path | None:
        """The checkpoint a model is read from: the file given, else the run's best, else its last."""
        if self.file is not None:
            return self.file if self.file.is_file() else None
        for name in (BEST, LAST):
            for cand in (self.folder / "checkpoints" / name, self.folder / name):
                if cand.is_file():
                    return cand
        return None

    def describe(self) -> dict[str, Any]:
        """What the pages show about a run (no paths: the served folders are the user's business)."""
        info: dict[str, Any] = {"id": self.id, "name": (self.folder or self.file).name,
                                "has_model": self.checkpoint_path() is not None,
                                "training": False, "config": None}
        if self.folder is not None:
            metrics = self.folder / "metrics.jsonl"
            try:
                info["training"] = time.time() - metrics.stat().st_mtime < ACTIVE_S
            except OSError:
                pass
            try:
                record = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
                cfg = record.get("config", {})
                info["config"] = {k: cfg.get(k) for k in ("cell", "layers", "hidden_size", "embed", "epochs",
                                                          "batch_size", "max_len", "lr")}
            except (OSError, ValueError, AttributeError):
                pass
        return info

    def metrics(self, offset: int = 0) -> dict[str, Any]:
        """The metrics.jsonl rows after byte `offset` (whole lines only) and the offset to ask from next.

        A file shorter than `offset` was replaced (a run started again with --overwrite): the rows
        then come from its start and "reset" is true. "more" is true when this answer stopped short
        of what the file held when it was read (MAX_METRICS_BYTES): a reader catching up asks again
        at once only then, since a run that is training appends rows faster than it could draw them.
        """
        path = None if self.folder is None else self.folder / "metrics.jsonl"
        if path is None or not path.is_file():
            return {"rows": [], "offset": 0, "reset": offset > 0, "more": False}
        reset = False
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if offset > size:
                offset, reset = 0, True
            f.seek(offset)
            data = f.read(MAX_METRICS_BYTES)
        end = data.rfind(b"\n") + 1          # a line still being written waits for the next request
        rows = []
        for line in data[:end].splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
        return {"rows": rows, "offset": offset + end, "reset": reset, "more": offset + len(data) < size}

    def samples(self) -> list[dict[str, str]]:
        """The epoch-end samples of samples.txt, oldest first: [{"head": ..., "text": ...}]."""
        path = None if self.folder is None else self.folder / "samples.txt"
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").split("\n") if path else []
        except OSError:
            return []
        out: list[dict[str, str]] = []
        for line in lines:
            m = _SAMPLE_HEAD.match(line)
            if m:
                out.append({"head": m.group(1), "text": ""})
            elif out:
                out[-1]["text"] += line + "\n"
        for s in out:
            s["text"] = s["text"].rstrip("\n")
        return out[-MAX_SAMPLES:]


class Registry:
    """The served paths, their runs by id, and a small cache of loaded checkpoints."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [Path(p).resolve() for p in paths]
        self._loaded: OrderedDict[tuple[str, int], Checkpoint] = OrderedDict()
        self._lock = threading.Lock()

    def runs(self) -> list[Run]:
        """Every served run now, in a stable order, each with a unique id."""
        found: list[tuple[Path | None, Path | None]] = []
        for p in self.paths:
            if p.is_file():
                found.append((None, p))
            elif is_run_dir(p):
                found.append((p, None))
            elif p.is_dir():
                try:
                    children = sorted(c for c in p.iterdir() if is_run_dir(c))
                except OSError:
                    children = []
                found.extend((c, None) for c in children)
        runs, taken = [], set()
        for folder, file in found:
            base = _slug(folder.name if folder is not None else file.stem)
            rid, i = base, 2
            while rid in taken:
                rid, i = f"{base}-{i}", i + 1
            taken.add(rid)
            runs.append(Run(rid, folder, file))
        return runs

    def run(self, run_id: str) -> Run:
        for r in self.runs():
            if r.id == run_id:
                return r
        raise UnknownRun(f"no served run has the id {run_id!r} (see /api/runs)")

    def models(self) -> list[dict[str, Any]]:
        """The runs that have a checkpoint to sample from, as /api/models lists them."""
        return [r.describe() for r in self.runs() if r.checkpoint_path() is not None]

    def load(self, model_id: str) -> Checkpoint:
        """The checkpoint of model `model_id` (loaded once per file version)."""
        run = self.run(model_id)
        path = run.checkpoint_path()
        if path is None:
            raise UnknownRun(f"run {model_id!r} has no checkpoint yet")
        try:
            key = (str(path), path.stat().st_mtime_ns)
        except OSError as exc:
            raise CheckpointError(f"cannot read the checkpoint of {model_id!r}: {exc.strerror}") from None
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        ckpt = ckpt_io.load(path)
        with self._lock:
            self._loaded[key] = ckpt
            for old in [k for k in self._loaded if k[0] == key[0] and k != key]:
                del self._loaded[old]          # an older version of the same file
            while len(self._loaded) > MAX_LOADED:
                self._loaded.popitem(last=False)
        return ckpt
