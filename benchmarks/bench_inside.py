"""The Inside view of 10,000 characters: `charnn.apps.inside.analyze` and the HTML page, timed.

Two models, random initialisation (the weights do not change the work): the seed's H=256 vanilla
RNN and the best-CPU preset's size (configs/best-cpu.toml: GRU 2×1024), V = 65, float32. The text
is the first 10,000 characters of Tiny Shakespeare's validation split. For each: seconds for the
analysis (one read at batch 1 with every internal kept per chunk, the units table, the gate
saturation and the JSON-ready dict), seconds to write the page (JSON and HTML), the CPU seconds of
both (the process's own time: on a shared machine the wall time also counts waiting for a core),
the page's size, and how many characters the page draws (bounded by MAX_VALUES).

    python benchmarks/bench_inside.py [--chars 10000] [--reps 2] [--only rnn|gru]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from charnn import model
from charnn.apps import inside, inside_html
from charnn.data.corpus import Corpus

MODELS = [("seed RNN 1×256", "rnn", 1, 256), ("best-CPU size GRU 2×1024", "gru", 2, 1024)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--only", choices=("rnn", "gru"), default=None, help="time one of the two models")
    args = ap.parse_args()
    corpus = Corpus.load(None)
    _, val = corpus.split(0.9)
    text = corpus.vocab.decode(val[: args.chars])
    print(f"{datetime.now():%Y-%m-%d %H:%M}, load average {os.getloadavg()[0]:.1f}; "
          f"{len(text):,} characters of the validation split, best of {args.reps}")
    print("| model | analysis (s) | page (s) | total (s) | CPU (s) | chars/s | page size | characters drawn |")
    print("|---|---|---|---|---|---|---|---|")
    for label, cell, layers, H in MODELS:
        if args.only and cell != args.only:
            continue
        params = model.init_params(len(corpus.vocab), H, seed=0, dtype=np.float32, cell=cell, layers=layers)
        best_a = best_p = best_cpu = float("inf")
        for _ in range(args.reps):
            c0 = time.process_time()
            t0 = time.perf_counter()
            data = inside.analyze(params, corpus.vocab, text)
            t1 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                page = inside_html.write(Path(tmp) / "inside.html", data)
                size = page.stat().st_size
            t2 = time.perf_counter()
            best_a, best_p = min(best_a, t1 - t0), min(best_p, t2 - t1)
            best_cpu = min(best_cpu, time.process_time() - c0)
        total = best_a + best_p
        print(f"| {label} | {best_a:.2f} | {best_p:.2f} | {total:.2f} | {best_cpu:.1f} | {len(text) / total:,.0f} | "
              f"{size / 1e6:.1f} MB | {data['shown']:,} |", flush=True)


if __name__ == "__main__":
    main()
