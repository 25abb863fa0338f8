"""Sampling from the command line: `charnn sample RUN --length 200000` end to end, in new processes.

A run folder with an H=256 vanilla RNN (one training step on Tiny Shakespeare: the weights do not
change the speed) is made in a temporary folder. Then `charnn sample` runs as a new process
several times: the first run may compile the generation loop into numba's on-disk cache, the later
ones load it. For each run: seconds until the first generated character reaches the pipe, total
wall time, and characters per second end to end. In-process, `charnn.model.generate` of the same
length is timed after a warm-up.

    python benchmarks/bench_sample_cli.py [--runs 5] [--length 200000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from charnn import model
from charnn.train import checkpoint

PROMPT = "ROMEO:"


def one_run(run: Path, length: int) -> tuple[float, float]:
    """(seconds to the first generated character, total seconds) of one `charnn sample` process."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "charnn.cli", "sample", str(run), "--length", str(length),
                          "--prompt", PROMPT], stdout=subprocess.PIPE)
    got = p.stdout.read(len(PROMPT) + 1)           # the prompt, then the first generated character
    first = time.perf_counter() - t0
    rest = p.stdout.read()
    p.wait()
    total = time.perf_counter() - t0
    if p.returncode != 0 or len(got) + len(rest) < length:
        raise SystemExit(f"charnn sample failed (exit {p.returncode})")
    return first, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--length", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        subprocess.run([sys.executable, "-m", "charnn.cli", "train", "--hidden-size", "256", "--max-steps", "1",
                        "--out", str(run), "--no-progress"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        print(f"# {datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, H=256, V=65, float32, "
              f"{args.length} characters, temperature 1.5")
        rows = [one_run(run, args.length) for _ in range(args.runs)]
        for i, (first, total) in enumerate(rows, 1):
            print(f"process {i}: first character after {first:.3f} s, total {total:.3f} s, "
                  f"{args.length / total / 1e3:.0f}k chars/s end to end")
        later = rows[1:] or rows
        print(f"second process onward, median: first character {statistics.median(r[0] for r in later):.3f} s, "
              f"{args.length / statistics.median(r[1] for r in later) / 1e3:.0f}k chars/s end to end")
        params = checkpoint.load(checkpoint.resolve(run)).model_params
        x = np.array([0])
        model.generate(params, None, x, 5000, rng=np.random.default_rng(0), temperature=1.5)   # warm-up
        rates = []
        for _ in range(3):
            t0 = time.perf_counter()
            model.generate(params, None, x, args.length, rng=np.random.default_rng(0), temperature=1.5)
            rates.append(args.length / (time.perf_counter() - t0))
        print(f"in-process model.generate: {statistics.median(rates) / 1e3:.0f}k chars/s (median of 3)")


if __name__ == "__main__":
    main()
