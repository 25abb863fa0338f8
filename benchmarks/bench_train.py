"""Training throughput: charnn against PyTorch's CPU nn.RNN(tanh) + nn.Linear, same configuration.

One full training step on both sides: forward, backward, clip every gradient element to ±5, Adam
(lr 5e-3) update; float32, H=256, V=65 (Tiny Shakespeare), T=100, h0 = 0. The two run alternately
in this one process (and the order flips every repetition), several repetitions per batch size;
the medians are reported with their ratio, plus the machine's sgemm rate for the recurrent GEMM
shape (B×H)@(H×H) and how much of it charnn reaches, counting the model's FLOPs.

    python benchmarks/bench_train.py                      # B = 1, 32, 128; 7 repetitions
    python benchmarks/bench_train.py --batch-sizes 128 --reps 11 --json out.json

Both libraries get the same thread count (--threads, default 2): torch.set_num_threads and
threadpoolctl's limit on NumPy's BLAS. Needs the test extra (torch, threadpoolctl).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import threadpoolctl
import torch
import torch.nn.functional as F

from charnn import data, model
from charnn.train.optim import Adam, clip_by_value

H, T, LR, CLIP = 256, 100, 5e-3, 5.0


def model_flops_per_char(H: int, V: int) -> float:
    """Multiply-adds ×2 of one training step per character: forward W h and V h, backward
    Wᵀ dz and Vᵀ do, and the weight gradients dW and dV: 6H² + 6HV (≈ 0.49 MFLOP at H=256, V=65).
    (The input projection is a row lookup and costs no FLOPs in this count.)"""
    return 6.0 * H * H + 6.0 * H * V


def blas_info() -> str:
    infos = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} "
                     f"threads={i.get('num_threads')}" for i in infos) or "unknown"


def torch_blas() -> str:
    cfg = torch.__config__.show()
    blas = next((part.split("=", 1)[1] for part in cfg.replace(",", " ").split() if part.startswith("BLAS_INFO=")), "?")
    return f"torch {torch.__version__} BLAS={blas} threads={torch.get_num_threads()}"


def describe_machine() -> list[str]:
    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    return [f"machine: {platform.machine()} {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
            f"numpy {np.__version__} BLAS: {blas_info()}",
            f"{torch_blas()}",
            f"env: OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE={env['OPENBLAS_L2_SIZE']}",
            "load average at start: %.2f %.2f %.2f" % os.getloadavg()]


def make_batches(B: int, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    _, ids = data.encode_corpus(data.load_text(None))
    batches = data.Batches(ids, B, T)
    return [batches.get(k % len(batches)) for k in range(n)]


def charnn_stepper(V: int, batches: list) -> Callable[[int], None]:
    params = model.init_params(V, H, seed=0, dtype=np.float32)
    opt = Adam(LR)

    def step(i: int) -> None:
        x, y = batches[i % len(batches)]
        _, grads, _ = model.loss_and_grads(params, x, y, None)
        clip_by_value(grads, -CLIP, CLIP)
        opt.step(params, grads)
    return step


def torch_stepper(V: int, batches: list) -> Callable[[int], None]:
    torch.manual_seed(0)
    rnn = torch.nn.RNN(V, H, nonlinearity="tanh", batch_first=True)
    lin = torch.nn.Linear(H, V)
    params = list(rnn.parameters()) + list(lin.parameters())
    opt = torch.optim.Adam(params, lr=LR)
    tb = [(torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))) for x, y in batches]

    def step(i: int) -> None:
        x, y = tb[i % len(tb)]
        out, _ = rnn(F.one_hot(x, V).float())
        loss = F.cross_entropy(lin(out).reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for p in params:
            p.grad.clamp_(-CLIP, CLIP)
        opt.step()
    return step


def time_steps(step: Callable[[int], None], n: int) -> float:
    """Seconds per step over n steps."""
    t0 = time.perf_counter()
    for i in range(n):
        step(i)
    return (time.perf_counter() - t0) / n


def sgemm_rate(B: int = 128, reps: int = 30) -> float:
    """GFLOP/s of NumPy float32 (B×H)@(H×H), the recurrent GEMM shape (median of `reps` timings)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((B, H), dtype=np.float32)
    w = rng.standard_normal((H, H), dtype=np.float32)
    out = np.empty((B, H), dtype=np.float32)
    inner = 50
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            np.matmul(a, w, out=out)
        times.append((time.perf_counter() - t0) / inner)
    return 2.0 * B * H * H / statistics.median(times) / 1e9


def sgemm_rate_threads(B: int = 128, threads: int = 2, reps: int = 5) -> float:
    """GFLOP/s of the same (B×H)@(H×H) work split into `threads` row blocks that run in parallel
    Python threads with single-threaded BLAS: the machine limit for charnn's sharded batches."""
    rng = np.random.default_rng(0)
    rows = B // threads
    blocks = [(rng.standard_normal((rows, H), dtype=np.float32), rng.standard_normal((H, H), dtype=np.float32),
               np.empty((rows, H), dtype=np.float32)) for _ in range(threads)]
    inner = 200

    def work(i: int) -> None:
        a, w, out = blocks[i]
        for _ in range(inner):
            np.matmul(a, w, out=out)
    times = []
    with threadpoolctl.threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        for _ in range(reps):
            t0 = time.perf_counter()
            list(pool.map(work, range(threads)))
            times.append((time.perf_counter() - t0) / inner)
    return 2.0 * rows * threads * H * H / statistics.median(times) / 1e9


def bench_batch(B: int, reps: int, seconds: float, V: int, threads: int) -> dict:
    batches = make_batches(B, 8)
    sides = {"charnn": charnn_stepper(V, batches), "torch": torch_stepper(V, batches)}
    n_steps = {}
    for name, step in sides.items():                       # warm up, then size a repetition
        for i in range(2):
            step(i)
        n_steps[name] = max(2, int(seconds / max(time_steps(step, 2), 1e-6)))
    rates: dict[str, list[float]] = {name: [] for name in sides}
    gemm: list[float] = []
    gemm_threads: list[float] = []
    for r in range(reps):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in order:
            rates[name].append(B * T / time_steps(sides[name], n_steps[name]))
        if B == 128:
            gemm.append(sgemm_rate(B, reps=5))
            gemm_threads.append(sgemm_rate_threads(B, threads, reps=5))
    res = {"B": B, "reps": reps, "steps_per_rep": n_steps,
           "charnn_chars_per_s": statistics.median(rates["charnn"]),
           "torch_chars_per_s": statistics.median(rates["torch"]),
           "ratio_of_medians": statistics.median(rates["charnn"]) / statistics.median(rates["torch"]),
           "median_of_ratios": statistics.median(c / t for c, t in zip(rates["charnn"], rates["torch"])),
           "charnn_all": rates["charnn"], "torch_all": rates["torch"]}
    if gemm:
        flops = model_flops_per_char(H, V)
        res["sgemm_gflops"] = statistics.median(gemm)
        res["charnn_model_gflops"] = res["charnn_chars_per_s"] * flops / 1e9
        res["pct_of_sgemm"] = 100.0 * res["charnn_model_gflops"] / res["sgemm_gflops"]
        res["pct_of_sgemm_per_rep_median"] = statistics.median(
            100.0 * c * flops / 1e9 / g for c, g in zip(rates["charnn"], gemm))
        res["sgemm_threads_gflops"] = statistics.median(gemm_threads)
        res["pct_of_sgemm_threads"] = 100.0 * res["charnn_model_gflops"] / res["sgemm_threads_gflops"]
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-sizes", default="1,32,128")
    ap.add_argument("--reps", type=int, default=7, help="alternating repetitions per batch size [7]")
    ap.add_argument("--seconds", type=float, default=1.0, help="target seconds per side per repetition [1]")
    ap.add_argument("--threads", type=int, default=2, help="threads for both libraries [2]")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    threadpoolctl.threadpool_limits(args.threads, user_api="blas")
    V = 65
    lines = describe_machine()
    for line in lines:
        print(line)
    print(f"config: float32, H={H}, V={V}, T={T}, Adam lr={LR} + clip ±{CLIP:g}, full step; "
          f"{args.reps} alternating repetitions, medians")
    results = []
    for B in (int(b) for b in args.batch_sizes.split(",")):
        res = bench_batch(B, args.reps, args.seconds, V, args.threads)
        results.append(res)
        print(f"B={B:<4d} charnn {res['charnn_chars_per_s']:>9,.0f} chars/s   torch {res['torch_chars_per_s']:>9,.0f}"
              f" chars/s   ratio {res['ratio_of_medians']:.2f} (median of per-rep ratios {res['median_of_ratios']:.2f})",
              flush=True)
        if "sgemm_gflops" in res:
            print(f"       sgemm (128x{H})@({H}x{H}): {res['sgemm_gflops']:.0f} GFLOP/s; charnn at B=128: "
                  f"{res['charnn_model_gflops']:.0f} GFLOP/s of model FLOPs "
                  f"({model_flops_per_char(H, V) / 1e6:.3f} MFLOP/char) = {res['pct_of_sgemm']:.0f}% of sgemm "
                  f"(per-rep median {res['pct_of_sgemm_per_rep_median']:.0f}%)", flush=True)
            print(f"       the same GEMM as {args.threads} row blocks in parallel threads, 1 BLAS thread each: "
                  f"{res['sgemm_threads_gflops']:.0f} GFLOP/s; charnn = {res['pct_of_sgemm_threads']:.0f}% of that", flush=True)
    print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
    out = {"machine": lines, "results": results, "date": time.strftime("%Y-%m-%d %H:%M")}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
