"""Sampling throughput at batch 1: charnn.model.generate against a PyTorch generation loop.

H=256, V=65, float32, temperature 1.5, one stream. charnn runs its default path (the compiled
loop of charnn.nn.kernels when numba is available) and its pure-NumPy fallback (CHARNN_NO_NUMBA=1);
PyTorch runs the usual loop: nn.RNN + nn.Linear one step at a time under no_grad, softmax and
torch.multinomial. They alternate, several repetitions; medians and ratios are printed.

    python benchmarks/bench_sample.py [--reps 7] [--chars 50000] [--torch-chars 3000]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import threadpoolctl
import torch
import torch.nn.functional as F

from charnn.nn import kernels
from charnn import model

H, V, TEMPERATURE = 256, 65, 1.5


def charnn_rate(params: dict, n: int, *, numpy_only: bool) -> float:
    old = os.environ.get("CHARNN_NO_NUMBA")
    if numpy_only:
        os.environ["CHARNN_NO_NUMBA"] = "1"
    try:
        h = np.zeros((1, H), dtype=np.float32)
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        model.generate(params, h, np.array([0]), n, rng=rng, temperature=TEMPERATURE)
        return n / (time.perf_counter() - t0)
    finally:
        if old is None:
            os.environ.pop("CHARNN_NO_NUMBA", None)
        else:
            os.environ["CHARNN_NO_NUMBA"] = old


def torch_rate(rnn: torch.nn.RNN, lin: torch.nn.Linear, n: int) -> float:
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    with torch.no_grad():
        h = torch.zeros(1, 1, H)
        x = torch.zeros(1, dtype=torch.int64)
        out = []
        for _ in range(n):
            o, h = rnn(F.one_hot(x, V).float().view(1, 1, V), h)
            p = torch.softmax(lin(o[0, -1]) / TEMPERATURE, dim=-1)
            x = torch.multinomial(p, 1, generator=gen)
            out.append(int(x))
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--chars", type=int, default=50_000, help="characters per charnn repetition [50000]")
    ap.add_argument("--torch-chars", type=int, default=3_000, help="characters per PyTorch repetition [3000]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    threadpoolctl.threadpool_limits(args.threads, user_api="blas")
    params = model.init_params(V, H, seed=0, dtype=np.float32)
    torch.manual_seed(0)
    rnn, lin = torch.nn.RNN(V, H, nonlinearity="tanh"), torch.nn.Linear(H, V)
    blas = [f"{i['internal_api']} kernel={i['architecture']}" for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    print(f"numpy {np.__version__} ({', '.join(blas)}), torch {torch.__version__} threads={torch.get_num_threads()}, "
          f"compiled kernel available: {kernels.available()}")
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg())
    charnn_rate(params, 1000, numpy_only=False)             # compile (or load the cached kernel)
    torch_rate(rnn, lin, 100)
    rates: dict[str, list[float]] = {"charnn": [], "charnn_numpy": [], "torch": []}
    for r in range(args.reps):
        order = ["charnn", "charnn_numpy", "torch"]
        for name in order if r % 2 == 0 else order[::-1]:
            if name == "torch":
                rates[name].append(torch_rate(rnn, lin, args.torch_chars))
            else:
                n = args.chars if name == "charnn" else args.chars // 4
                rates[name].append(charnn_rate(params, n, numpy_only=name == "charnn_numpy"))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"batch 1, H={H}, V={V}, float32, temperature {TEMPERATURE}, {args.reps} alternating repetitions, medians:")
    print(f"  charnn (default path)   {med['charnn']:>10,.0f} chars/s   {med['charnn'] / med['torch']:6.1f}x PyTorch")
    print(f"  charnn (NumPy fallback) {med['charnn_numpy']:>10,.0f} chars/s   {med['charnn_numpy'] / med['torch']:6.1f}x PyTorch")
    print(f"  PyTorch loop            {med['torch']:>10,.0f} chars/s")
    print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
    out = {"medians": med, "all": rates, "date": time.strftime("%Y-%m-%d %H:%M")}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
