"""Helpers for the end-to-end CLI tests: a small corpus and running `charnn` in-process or as a subprocess."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from charnn import cli
from charnn.data import default_corpus_path

# Small and fast: a 16-unit float64 model on 12k characters of Tiny Shakespeare (~135 steps an epoch).
SMALL = ["--hidden-size", "16", "--max-len", "20", "--batch-size", "4", "--dtype", "float64",
         "--sample-length", "40", "--log-every", "5", "--no-progress"]


@dataclass
class Result:
    rc: int
    out: str
    err: str


def write_corpus(folder: Path, chars: int = 12_000) -> Path:
    """The first `chars` characters of the embedded corpus, as a file in `folder`."""
    path = folder / "tiny.txt"
    path.write_text(default_corpus_path().read_text(encoding="utf-8")[:chars], encoding="utf-8")
    return path


def charnn(*args: str | os.PathLike) -> Result:
    """Run `charnn ARGS` in this process (cli.main) and capture its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main([str(a) for a in args])
        except SystemExit as exc:      # argparse errors and --help
            rc = int(exc.code or 0)
    return Result(rc, out.getvalue(), err.getvalue())


def charnn_subprocess(*args: str | os.PathLike, **kw) -> subprocess.Popen:
    """Start the real command line (`python -m charnn.cli ARGS`) as a child process."""
    return subprocess.Popen([sys.executable, "-m", "charnn.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_user_error(res: Result, *needles: str) -> None:
    """Exit status 2, exactly one line on stderr that mentions every needle, no traceback."""
    assert res.rc == 2, (res.rc, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert "Traceback" not in res.err
    for n in needles:
        assert n in lines[0], (n, lines[0])
