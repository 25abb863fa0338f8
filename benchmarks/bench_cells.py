"""Training throughput of charnn's LSTM and GRU stacks vs PyTorch's CPU nn.LSTM / nn.GRU, same run.

One full training step each: forward, backward through time, element-wise clipping and Adam, on a
(B, T) batch of one-hot characters (vocabulary 65), float32, PyTorch limited to the same thread
count as our BLAS. charnn and PyTorch run alternately, several repetitions; medians and the ratio
are printed (target: charnn / PyTorch >= 1.2).

    python benchmarks/bench_cells.py                       # default grid
    python benchmarks/bench_cells.py --cells lstm --hidden 512 --layers 2 --batch 64 --reps 5
    python benchmarks/bench_cells.py --json results.json   # also write the rows as JSON
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_info

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from charnn import model as stack  # noqa: E402
from charnn.train.optim import Adam, clip_by_value  # noqa: E402

VOCAB = 65


def blas_summary() -> str:
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                     f"{i.get('num_threads')} threads" for i in info) or "unknown"


def blas_threads() -> int:
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return int(info[0]["num_threads"]) if info else 1


class Ours:
    def __init__(self, cell: str, H: int, L: int, B: int, T: int, dropout: float):
        self.params = stack.init_params(VOCAB, H, seed=0, cell=cell, layers=L)
        self.opt = Adam(2e-3)
        self.rng = np.random.default_rng(0)
        self.cell, self.L, self.B, self.T, self.H, self.p = cell, L, B, T, H, dropout
        self.state = None

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        masks = (stack.dropout_masks(self.rng, self.p, self.L, self.T, self.B, self.H)
                 if self.p > 0 else None)
        loss, grads, self.state = stack.loss_and_grads(self.params, x, y, self.state, masks=masks)
        clip_by_value(grads, -5.0, 5.0)
        self.opt.step(self.params, grads)
        return loss


class Theirs:
    def __init__(self, cell: str, H: int, L: int, B: int, T: int, dropout: float):
        torch.manual_seed(0)
        mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
        self.rnn = mod(VOCAB, H, num_layers=L, dropout=dropout if L > 1 else 0.0)
        self.drop = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(H, VOCAB)
        self.params = list(self.rnn.parameters()) + list(self.head.parameters())
        self.opt = torch.optim.Adam(self.params, lr=2e-3)
        self.state = None

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        xt = torch.nn.functional.one_hot(torch.from_numpy(x.T.astype(np.int64)), VOCAB).float()
        out, st = self.rnn(xt, self.state)
        self.state = tuple(s.detach() for s in st) if isinstance(st, tuple) else st.detach()
        logits = self.head(self.drop(out))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB),
                                                 torch.from_numpy(y.T.astype(np.int64)).reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_value_(self.params, 5.0)
        self.opt.step()
        return loss.item()


def bench(cell: str, H: int, L: int, B: int, T: int, dropout: float, reps: int, steps: int) -> dict:
    rng = np.random.default_rng(1)
    ids = rng.integers(0, VOCAB, size=(steps + 2, B, T + 1))
    impls = {"charnn": Ours(cell, H, L, B, T, dropout), "pytorch": Theirs(cell, H, L, B, T, dropout)}
    for impl in impls.values():   # warm-up: allocations, thread pools, first-touch of buffers
        impl.step(ids[0, :, :-1], ids[0, :, 1:])
    times: dict[str, list[float]] = {k: [] for k in impls}
    for _ in range(reps):
        for name, impl in impls.items():
            t0 = time.perf_counter()
            for s in range(steps):
                impl.step(ids[s + 1, :, :-1], ids[s + 1, :, 1:])
            times[name].append((time.perf_counter() - t0) / steps)
    cps = {k: B * T / statistics.median(v) for k, v in times.items()}
    return {"cell": cell, "hidden": H, "layers": L, "batch": B, "T": T, "dropout": dropout,
            "charnn_chars_per_s": cps["charnn"], "pytorch_chars_per_s": cps["pytorch"],
            "ratio": cps["charnn"] / cps["pytorch"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru", "rnn"])
    ap.add_argument("--hidden", nargs="+", type=int, default=[256, 512])
    ap.add_argument("--layers", nargs="+", type=int, default=[2])
    ap.add_argument("--batch", nargs="+", type=int, default=[32, 64])
    ap.add_argument("--max-len", type=int, default=100)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="training steps timed per repetition")
    ap.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(blas_threads())
    print(f"# {datetime.now():%Y-%m-%d %H:%M}, {platform.processor() or platform.machine()}, "
          f"numpy {np.__version__} ({blas_summary()}), torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"# float32, T={args.max_len}, vocab {VOCAB}, Adam + clip ±5, dropout {args.dropout}, "
          f"median of {args.reps} × {args.steps} steps")
    print(f"{'cell':<5} {'H':>4} {'L':>2} {'B':>4} {'charnn chars/s':>15} {'pytorch chars/s':>16} {'ratio':>6}")
    rows = []
    for cell in args.cells:
        for H in args.hidden:
            for L in args.layers:
                for B in args.batch:
                    r = bench(cell, H, L, B, args.max_len, args.dropout, args.reps, args.steps)
                    rows.append(r)
                    print(f"{cell:<5} {H:>4} {L:>2} {B:>4} {r['charnn_chars_per_s']:>15,.0f} "
                          f"{r['pytorch_chars_per_s']:>16,.0f} {r['ratio']:>6.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"blas": blas_summary(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
