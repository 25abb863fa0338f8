"""Evaluation speed: the exact loss over Tiny Shakespeare's 111,540-character validation split.

Times `charnn.model.evaluate` (batch 1, hidden state carried through the whole split, H=256,
float32) over several repetitions, and `charnn eval RUN_DIR` end to end (process start, checkpoint
load, corpus encoding, evaluation) on a run made with `charnn train --max-steps 1`.

    python benchmarks/bench_eval.py [--reps 5]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from charnn import data, model


def charnn_exe() -> list[str]:
    exe = Path(sys.executable).with_name("charnn")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from charnn.cli import main; main()"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg())
    vocab, ids = data.encode_corpus(data.load_text(None))
    _, val = data.split(ids, 0.9)
    params = model.init_params(len(vocab), 256, seed=0, dtype=np.float32)
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        total, n, _ = model.evaluate(params, val)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"model.evaluate over {n + 1:,} validation characters: median {med:.3f} s "
          f"({n / med:,.0f} chars/s; all: {', '.join(f'{t:.3f}' for t in times)})")
    tmp = Path(tempfile.mkdtemp(prefix="charnn-eval-"))
    try:
        run = tmp / "run"
        subprocess.run(charnn_exe() + ["train", "--out", str(run), "--max-steps", "1", "--no-progress"],
                       check=True, stdout=subprocess.DEVNULL)
        cli = []
        for _ in range(max(1, args.reps // 2)):
            t0 = time.perf_counter()
            subprocess.run(charnn_exe() + ["eval", str(run)], check=True, stdout=subprocess.DEVNULL)
            cli.append(time.perf_counter() - t0)
        print(f"`charnn eval RUN_DIR` end to end (new process each time): median {statistics.median(cli):.3f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
    return {"evaluate_s": med, "cli_s": statistics.median(cli)}


if __name__ == "__main__":
    main()
