#!/usr/bin/env python3
"""gpu_check's parity case B=37, T=13, H=128, V=50 over many seeds: sharded reference and both kernels.

For several seeds: the NumPy float64 reference sharded over threads (as gpu_check computes it on
the 16-core device host) against the same reference single-threaded, and the fused kernels
(stepwise and persistent, cs=2 nt=512 ri=4) against the single-threaded reference. Run from the
repository root:  PYTHONPATH=src python3 benchmarks/gpu_parity_b37.py
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("CUPY_TF32", "0")
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
try:
    from threadpoolctl import threadpool_limits
except ImportError:  # then model.py does not shard either
    from contextlib import nullcontext

    def threadpool_limits(*a, **kw):
        return nullcontext()

from charnn import model  # noqa: E402

B, T, HS, VS, TOL = 37, 13, 128, 50, 1e-4


def problem(seed: int):
    rng = np.random.default_rng(seed)
    p = model.init_params(VS, HS, seed=seed, dtype=np.float64)
    p["b"], p["c"] = rng.normal(0, 0.1, HS), rng.normal(0, 0.1, VS)
    return p, rng.integers(0, VS, (B, T)), rng.integers(0, VS, (B, T)), rng.uniform(-0.5, 0.5, (B, HS))


def rel(a, r) -> float:
    a, r = (np.asarray(v.get() if hasattr(v, "get") else v, dtype=np.float64) for v in (a, r))
    return float(np.linalg.norm(a - r) / max(np.linalg.norm(r), 1e-300))


def worst(res, ref) -> float:
    loss, g, h = res
    return max([abs(loss - ref[0]) / abs(ref[0]), rel(h, ref[2])] + [rel(g[k], ref[1][k]) for k in ref[1]])


def main() -> int:
    import cupy as cp
    from charnn.backend import cuda
    print("device", cuda.device_info(), "cpus", os.cpu_count(), "shards", model._num_shards(np, B), flush=True)
    lays = {f"{'persistent' if per else 'stepwise'} cs=2 nt=512 ri=4":
            cuda.choose_layout(HS, VS, B, split=(2, 512), persistent=per, ri=4) for per in (False, True)}
    fails = 0
    for seed in range(50, 62):
        p64, x, y, h0 = problem(seed)
        sharded = model.loss_and_grads(p64, x, y, h0)              # P threads on this host
        with threadpool_limits(1, user_api="blas"):
            ref = model.loss_and_grads(p64, x, y, h0)              # one shard
        line = [f"seed {seed}: sharded ref vs 1-thread ref {worst(sharded, ref):.1e}"]
        p32 = {k: cp.asarray(v, dtype=np.float32) for k, v in p64.items()}
        for name, lay in lays.items():
            e = worst(cuda.loss_and_grads(p32, cp.asarray(x), cp.asarray(y), cp.asarray(h0, dtype=np.float32),
                                          layout=lay), ref)
            fails += e > TOL
            line.append(f"{name} {e:.1e}")
        fails += worst(sharded, ref) > 1e-9
        print("  ".join(line), flush=True)
    print("RESULT", "PASS" if fails == 0 else f"FAIL ({fails})")
    return 0 if fails == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
