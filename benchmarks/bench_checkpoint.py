"""Cost of the per-array sha256 digests in checkpoints: save and load of a 2×1024 GRU with Adam state.

The checkpoint holds the parameters (≈ 9.9 M float32 numbers for vocabulary 65), Adam's m and v and a
carried state: ≈ 119 MB. Each repetition saves it (digests computed), loads it (digests checked),
and times the same save and load with the digests left out (a file without `digests`, as older
checkpoints are, loads unchecked), and the hashing alone. Medians over --reps.

    python benchmarks/bench_checkpoint.py [--reps 5] [--hidden 1024] [--layers 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from charnn import model
from charnn.data.vocab import Vocab
from charnn.train import checkpoint
from charnn.train.config import Config


def build(hidden: int, layers: int) -> checkpoint.Checkpoint:
    text = "".join(chr(32 + i) for i in range(65))
    cfg = Config(cell="gru", hidden_size=hidden, layers=layers, batch_size=32)
    params = model.init_params(65, hidden, seed=0, dtype=np.float32, cell="gru", layers=layers)
    optim = {f"{slot}.{k}": np.random.default_rng(1).standard_normal(p.shape).astype(np.float32)
             for slot in ("m", "v") for k, p in params.items()}
    h = np.zeros((layers, 1, 32, hidden), np.float32)
    return checkpoint.Checkpoint(config=cfg, vocab=Vocab.from_text(text), params=params, optim_state=optim,
                                 optim_hyper={"kind": "adam", "lr": 5e-3, "t": 10, "beta1": 0.9, "beta2": 0.999,
                                              "eps": 1e-8, "weight_decay": 0.0}, h=h, step=10)


def timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=2)
    a = ap.parse_args()
    ck = build(a.hidden, a.layers)
    arrays = [*ck.params.values(), *ck.optim_state.values(), ck.h]
    real_digest = checkpoint.digest
    rows: dict[str, list[float]] = {k: [] for k in ("save", "load", "save_plain", "load_plain", "hash")}
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as d:
        with_d, without = Path(d) / "with.safetensors", Path(d) / "without.safetensors"
        for _ in range(a.reps):
            rows["save"].append(timed(lambda: checkpoint.save(with_d, ck)))
            rows["load"].append(timed(lambda: checkpoint.load(with_d)))
            checkpoint.digest = lambda arr: ""          # a file whose digests are all "": rewritten below
            try:
                rows["save_plain"].append(timed(lambda: checkpoint.save(without, ck)))
            finally:
                checkpoint.digest = real_digest
            strip_digests(without)
            rows["load_plain"].append(timed(lambda: checkpoint.load(without)))
            rows["hash"].append(timed(lambda: [real_digest(x) for x in arrays]))
        size = with_d.stat().st_size
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"GRU {a.layers}x{a.hidden}, file {size / 1e6:.1f} MB, median of {a.reps}")
    print(f"save: {med['save'] * 1e3:.0f} ms with digests, {med['save_plain'] * 1e3:.0f} ms without")
    print(f"load: {med['load'] * 1e3:.0f} ms with digests, {med['load_plain'] * 1e3:.0f} ms without")
    print(f"sha256 of every array alone: {med['hash'] * 1e3:.0f} ms ({size / med['hash'] / 1e9:.2f} GB/s)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def strip_digests(path: Path) -> None:
    """Rewrite `path` without its `digests` metadata (the layout of checkpoints written before them)."""
    import json
    import struct

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header["__metadata__"].pop("digests")
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + raw[8 + n:])


if __name__ == "__main__":
    main()
