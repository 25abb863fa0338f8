"""Validation loss vs training wall time on Tiny Shakespeare: charnn's best CPU preset vs the PyTorch twin.

Runs, one after the other on the same machine, each for the same training wall-clock budget:

  charnn   `charnn train --config configs/best-cpu.toml` (the real trainer, through `charnn.train.train`;
           a 2-layer GRU of 1024 units; what each setting does is written in the preset)
  pytorch  the PyTorch twin: nn.LSTM 2×512, dropout 0.2 (between the layers and before
           the output layer), Adam 2e-3 with cosine decay, B=64, T=100, random windows of the train
           split from a zero state, global-norm clipping at 5
  rnn      charnn's vanilla (seed) RNN cell, H=512, B=32, Adam 2e-3 cosine: the best-figure row for the RNN

Clock: only training counts (evaluation, checkpoints and epoch-end samples are excluded). A charnn
run gets the budget as its own time limit (Config.max_minutes), so its cosine schedule decays over
the training minutes and ends when the budget does (--no-fit keeps the preset's own max_steps); a
few timed steps first only space the evaluations. The twin times a few steps and sets its step
count from them (torch's scheduler counts steps). Validation is the whole 10%
split with the state carried, read as 32 parallel streams with a 500-character warm-up each
(`charnn.nn.reader.evaluate` / `charnn.nn.reader.stream_layout`, the same layout for the PyTorch model),
every 1/12 of the run; at the end the best checkpoint of each run is also scored exactly at
batch 1 in one pass.

    python benchmarks/bench_quality.py --minutes 30                  # the full measurement (~1.7 h)
    python benchmarks/bench_quality.py --minutes 30 --runs charnn --out benchmarks/results/quality/best-cpu
    python benchmarks/bench_quality.py --minutes 1 --runs charnn     # smoke test
Writes OUT/quality.json (curves and metadata), OUT/quality.png (the plot) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import tomllib
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_info

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from charnn.eval import calibrate  # noqa: E402
from charnn.train import checkpoint  # noqa: E402
from charnn import model, model as stack, train  # noqa: E402
from charnn.train.config import Config  # noqa: E402
from charnn.data.corpus import Corpus  # noqa: E402
from charnn.train.optim import clip_by_global_norm, clip_by_value, make_optimizer  # noqa: E402

STREAMS, BURN_IN = 32, 500
N_EVALS = 12                       # validations per run (--evals)
RNN_CFG = dict(cell="rnn", layers=1, hidden_size=512, batch_size=32, max_len=100, lr=2e-3, lr_schedule="cosine",
               warmup_steps=100, min_lr=2e-5, grad_clip=5.0, epochs=1000, eval_streams=STREAMS,
               sample_length=200, log_every=50)


def set_evals(n: int) -> None:
    global N_EVALS
    N_EVALS = max(1, n)


def blas_summary() -> str:
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} {i.get('num_threads')} threads" for i in info)


def load_avg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


# --------------------------------------------------------------------------------------------
# charnn runs (the real trainer)

def steps_per_s_charnn(cfg: Config, corpus: Corpus, n: int = 4) -> float:
    """Training steps per second of cfg's model, timed on n steps after one warm-up step."""
    params = model.init_params(len(corpus.vocab), cfg.hidden_size, seed=0, dtype=np.dtype(cfg.dtype),
                               cell=cfg.cell, layers=cfg.layers)
    opt = make_optimizer(cfg.optimizer, cfg.lr, beta1=cfg.beta1, beta2=cfg.beta2, eps=cfg.eps,
                         weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(0)
    ids = corpus.split(cfg.train_fraction)[0]
    B, T = cfg.batch_size, cfg.max_len
    x = ids[: B * T].reshape(B, T)
    y = ids[1: B * T + 1].reshape(B, T)
    _, L, _, H = stack.describe(params)
    times = []
    for i in range(n + 1):
        t = time.perf_counter()
        masks = (stack.dropout_masks(rng, cfg.dropout, L, T, B, H, np.dtype(cfg.dtype), locked=cfg.locked_dropout)
                 if cfg.dropout else None)
        _, grads, _ = (stack.loss_and_grads(params, x, y, masks=masks) if masks is not None
                       else model.loss_and_grads(params, x, y))
        clip_by_value(grads, -cfg.grad_clip, cfg.grad_clip)
        if cfg.clip_norm > 0:
            clip_by_global_norm(grads, cfg.clip_norm)
        opt.step(params, grads)
        times.append(time.perf_counter() - t)
    return 1.0 / float(np.median(times[1:]))


class Clock:
    """Training-only wall clock for the trainer's callbacks; stops the run when the budget is spent."""

    def __init__(self, budget_s: float):
        self.budget_s, self.train_s, self.mark = budget_s, 0.0, time.perf_counter()
        self.curve: list[dict] = []
        self.steps = 0

    def __call__(self, event: str, rec: dict) -> None:
        now = time.perf_counter()
        if event == "step":
            self.train_s += now - self.mark
            self.steps = rec["step"]
            self.mark = now
            if self.train_s >= self.budget_s:
                raise train.StopTraining
        elif event == "eval":
            self.curve.append({"train_s": round(self.train_s, 2), "step": rec["step"], "val_loss": rec["val_loss"],
                               "train_loss": rec["train_loss"],
                               **{k: rec[k] for k in ("val_loss_plain", "temperature") if k in rec}})
            self.mark = time.perf_counter()
        else:                          # log/epoch rows: whatever ran since the step is not training
            self.mark = now


def run_charnn(name: str, cfg: Config, corpus: Corpus, minutes: float, out: Path, fit: bool) -> dict:
    rate = steps_per_s_charnn(cfg, corpus)
    if fit:
        # The run's own time budget (Config.max_minutes): the cosine decays over the training minutes, so
        # it ends with the budget however fast this machine runs today. A step count fitted to a few
        # probe steps was off by up to 10% (4.9k-6.0k chars/s probed, 5.3k-5.4k sustained).
        cfg = cfg.replace(max_minutes=minutes, max_steps=0, epochs=1000,
                          eval_every=max(1, int(minutes * 60 * rate) // N_EVALS))
    else:
        cfg = cfg.replace(eval_every=max(1, cfg.max_steps // N_EVALS) if cfg.max_steps else cfg.eval_every)
    clock = Clock(minutes * 60)
    print(f"[{name}] {rate:.2f} steps/s ({rate * cfg.batch_size * cfg.max_len:,.0f} chars/s) before the run; "
          + (f"max_minutes {cfg.max_minutes:g}" if cfg.max_minutes else f"max_steps {cfg.max_steps}")
          + f", eval every {cfg.eval_every}", flush=True)
    t0 = time.perf_counter()
    res = train.train(cfg, out / name, corpus=corpus, overwrite=True, callbacks=[clock], progress=False,
                      log=lambda m: None)
    wall = time.perf_counter() - t0
    best = checkpoint.load(out / name / "checkpoints" / "best.safetensors")
    _, val_ids = corpus.split(cfg.train_fraction)
    # The network as evaluated and sampled: with a held-out text (calibration_fraction), V and c divided by
    # the temperature fitted on it (charnn.eval.calibrate); the loss at temperature 1 is kept beside it.
    extra = {}
    if best.temperature != 1.0:
        exact, plain = calibrate.mean_nll(best.params, val_ids, [best.temperature, 1.0])   # one pass, batch 1
        extra = {"temperature": best.temperature, "best_exact_plain": plain}
    else:
        total, n, _ = stack.evaluate(best.params, val_ids)
        exact = total / n
    return {**extra, "name": name, "config": cfg.to_dict(), "curve": clock.curve, "train_s": clock.train_s,
            "steps": clock.steps, "chars_per_s": clock.steps * cfg.batch_size * cfg.max_len / max(clock.train_s, 1e-9),
            "best_streamed": res.best_val_loss, "best_exact": exact, "best_step": best.step,
            "wall_s": wall, "params": int(sum(p.size for p in res.params.values()))}


# --------------------------------------------------------------------------------------------
# the PyTorch twin

class Twin(torch.nn.Module):
    def __init__(self, V: int, H: int = 512, layers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.V = V
        self.lstm = torch.nn.LSTM(V, H, layers, dropout=dropout)
        self.drop = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(H, V)

    def forward(self, x: torch.Tensor, state=None):
        out, state = self.lstm(torch.nn.functional.one_hot(x, self.V).float(), state)
        return self.head(self.drop(out)), state


@torch.no_grad()
def twin_to_charnn(m: Twin) -> dict[str, np.ndarray]:
    """The twin's weights in charnn's LSTM layout (exact: the layouts differ only in gate order).

    torch.nn.LSTM stacks its gates (i, f, g, o); charnn's are (i, f, o, g), and charnn has one
    bias per layer where PyTorch has b_ih + b_hh.
    """
    H = m.lstm.hidden_size
    perm = np.concatenate([np.arange(0, 2 * H), np.arange(3 * H, 4 * H), np.arange(2 * H, 3 * H)])
    out = {}
    for l in range(m.lstm.num_layers):
        g = lambda name: getattr(m.lstm, f"{name}_l{l}").detach().numpy().astype(np.float32)  # noqa: E731
        out[f"L{l}.W"] = np.ascontiguousarray(g("weight_hh")[perm])
        out[f"L{l}.U"] = np.ascontiguousarray(g("weight_ih")[perm])
        out[f"L{l}.b"] = np.ascontiguousarray((g("bias_ih") + g("bias_hh"))[perm])
    out["V"] = m.head.weight.detach().numpy().astype(np.float32).copy()
    out["c"] = m.head.bias.detach().numpy().astype(np.float32).copy()
    return out


@torch.no_grad()
def twin_eval(m: Twin, val: np.ndarray, streams: int, burn_in: int = BURN_IN, chunk: int = 1000) -> float:
    m.eval()
    if streams == 1:
        X, Y, Wt = val[:-1, None], val[1:, None], np.ones((len(val) - 1, 1), np.float32)
    else:
        X, Y, Wt = stack.stream_layout(val, streams, burn_in)
    total, state = 0.0, None
    for i in range(0, len(X), chunk):
        x = torch.from_numpy(X[i:i + chunk].astype(np.int64))
        logits, state = m(x, state)
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, m.V), torch.from_numpy(
            Y[i:i + chunk].astype(np.int64)).reshape(-1), reduction="none")
        total += float((nll.numpy() * Wt[i:i + chunk].reshape(-1)).sum())
    m.train()
    return total / (len(val) - 1)


def run_twin(corpus: Corpus, minutes: float, out: Path, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_ids, val_ids = corpus.split(0.9)
    V, B, T = len(corpus.vocab), 64, 100
    m = Twin(V)
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    tids = torch.from_numpy(train_ids.astype(np.int64))

    def batch():
        o = torch.from_numpy(rng.integers(0, len(train_ids) - T - 1, B))
        idx = o[None, :] + torch.arange(T + 1)[:, None]          # (T+1, B), time-major
        w = tids[idx]
        return w[:-1], w[1:]

    def one_step():
        x, y = batch()
        logits, _ = m(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 5.0)
        opt.step()
        return loss.item()

    probe = Twin(V)    # time steps on a throwaway copy so the measured run starts fresh
    popt = torch.optim.Adam(probe.parameters(), lr=2e-3)
    times = []
    for i in range(5):
        t = time.perf_counter()
        x, y = batch()
        lo, _ = probe(x)
        loss = torch.nn.functional.cross_entropy(lo.reshape(-1, V), y.reshape(-1))
        popt.zero_grad()
        loss.backward()
        popt.step()
        times.append(time.perf_counter() - t)
    rate = 1.0 / float(np.median(times[1:]))
    total_steps = max(5, int(0.97 * minutes * 60 * rate))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    every = max(1, total_steps // N_EVALS)
    print(f"[pytorch] {rate:.2f} steps/s ({rate * B * T:,.0f} chars/s) before the run; steps {total_steps}, "
          f"eval every {every}", flush=True)
    curve, train_s, step, best, best_state = [], 0.0, 0, math.inf, None
    t_wall = time.perf_counter()
    while train_s < minutes * 60 and step < total_steps:
        t = time.perf_counter()
        loss = one_step()
        sched.step()
        train_s += time.perf_counter() - t
        step += 1
        if step % every == 0 or step == total_steps or train_s >= minutes * 60:
            v = twin_eval(m, val_ids, STREAMS)
            curve.append({"train_s": round(train_s, 2), "step": step, "val_loss": v, "train_loss": loss})
            if v < best:
                best, best_state = v, {k: t_.clone() for k, t_ in m.state_dict().items()}
    m.load_state_dict(best_state)
    exact = twin_eval(m, val_ids, 1)
    # The best weights, in charnn's layout, for later scoring (benchmarks/bench_cache.py --params).
    from safetensors.numpy import save_file  # noqa: PLC0415
    (out / "pytorch").mkdir(parents=True, exist_ok=True)
    save_file(twin_to_charnn(m), str(out / "pytorch" / "best-params.safetensors"))
    return {"name": "pytorch", "config": {"cell": "lstm", "layers": 2, "hidden_size": 512, "dropout": 0.2,
                                          "lr": 2e-3, "lr_schedule": "cosine", "batch_size": B, "max_len": T,
                                          "clip_norm": 5.0, "batches": "random windows, zero state"},
            "curve": curve, "train_s": train_s, "steps": step, "chars_per_s": step * B * T / max(train_s, 1e-9),
            "best_streamed": best, "best_exact": exact, "wall_s": time.perf_counter() - t_wall,
            "params": int(sum(p.numel() for p in m.parameters()))}


# --------------------------------------------------------------------------------------------

def at_minute(curve: list[dict], minute: float) -> float | None:
    """Best validation loss reached within the first `minute` minutes of training.

    A run stops at the first step that ends past its budget, so 1% of slack admits that last point.
    """
    vals = [p["val_loss"] for p in curve if p["train_s"] <= minute * 60 * 1.01]
    return min(vals) if vals else None


def plot(results: list[dict], path: Path, minutes: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in results:
        xs = [p["train_s"] / 60 for p in r["curve"]]
        ys = [p["val_loss"] for p in r["curve"]]
        ax.plot(xs, ys, marker="o", ms=3, label=f"{r['name']} (best exact {r['best_exact']:.4f})")
    ax.axhline(1.40, color="grey", ls="--", lw=0.8, label="target 1.40")
    ax.set_xlabel("training wall time (minutes)")
    ax.set_ylabel("validation loss (nats/char)")
    longest = max([p["train_s"] / 60 for r in results for p in r["curve"]] + [minutes])
    ax.set_xlim(0, longest * 1.02)
    vals = [p["val_loss"] for r in results for p in r["curve"]] or [1.3, 2.0]
    ax.set_ylim(min(vals) - 0.05, min(max(vals), min(vals) + 0.8) + 0.05)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Tiny Shakespeare, 2-core CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="training wall time of each run [30]")
    ap.add_argument("--runs", default="charnn,pytorch,rnn", help="comma-separated: charnn, pytorch, rnn")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "best-cpu.toml")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality")
    ap.add_argument("--evals", type=int, default=12, help="validations per run [12]")
    ap.add_argument("--no-fit", action="store_true",
                    help="keep the preset's max_steps and schedule (default: the run gets max_minutes = --minutes, "
                         "so its cosine ends with the budget)")
    ap.add_argument("--include", type=Path, action="append", default=[], metavar="QUALITY.json",
                    help="also table and plot the runs of an earlier quality.json whose names are not measured "
                         "here or in an earlier --include (paired runs; each keeps the date it was measured)")
    args = ap.parse_args()
    set_evals(args.evals)
    torch.set_num_threads(max(1, int(next((i["num_threads"] for i in threadpool_info()
                                            if i.get("user_api") == "blas"), 2))))
    args.out.mkdir(parents=True, exist_ok=True)
    corpus = Corpus.load(None)
    with open(args.config, "rb") as f:
        best_cfg = Config.from_dict(tomllib.load(f))
    meta = {"date": datetime.now().isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "blas": blas_summary(), "torch": torch.__version__, "numpy": np.__version__,
            "minutes": args.minutes, "load_avg_start": load_avg()}
    print(f"# {meta['date']}, {meta['cpus']} CPUs, {meta['blas']}, torch {meta['torch']}, "
          f"load average {meta['load_avg_start']:.2f}", flush=True)
    results = []
    for name in [r.strip() for r in args.runs.split(",") if r.strip()]:
        if name == "charnn":
            results.append(run_charnn("charnn", best_cfg, corpus, args.minutes, args.out, not args.no_fit))
        elif name == "rnn":
            results.append(run_charnn("rnn", Config(**RNN_CFG), corpus, args.minutes, args.out, True))
        elif name == "pytorch":
            results.append(run_twin(corpus, args.minutes, args.out))
        else:
            raise SystemExit(f"unknown run {name!r}")
        r = results[-1]
        r["measured"] = {"date": datetime.now().isoformat(timespec="seconds"), "blas": meta["blas"],
                         "load_avg_end": load_avg()}
        print(f"[{name}] {r['steps']} steps, {r['chars_per_s']:,.0f} chars/s, best streamed {r['best_streamed']:.4f}, "
              f"best exact {r['best_exact']:.4f}"
              + (f" (temperature {r['temperature']:.4f}; {r['best_exact_plain']:.4f} at temperature 1)"
                 if "temperature" in r else ""), flush=True)
        meta["load_avg_end"] = load_avg()
        (args.out / "quality.json").write_text(json.dumps({"meta": meta, "runs": results}, indent=2) + "\n")
    for path in args.include:          # the first file that has a run name wins
        earlier = json.loads(path.read_text())
        for r in earlier["runs"]:
            if r["name"] not in {x["name"] for x in results}:
                r.setdefault("measured", {k: earlier["meta"].get(k) for k in ("date", "blas", "load_avg_start", "load_avg_end")})
                results.append(r)
                print(f"[{r['name']}] from {path} (measured {r['measured'].get('date')})", flush=True)
    if args.include:
        (args.out / "quality.json").write_text(json.dumps({"meta": meta, "runs": results}, indent=2) + "\n")
    plot(results, args.out / "quality.png", args.minutes)
    marks = [m for m in (5, 10, 15, 20, 25, 30) if m <= args.minutes] or [args.minutes]
    print("\n| run | params | chars/s | " + " | ".join(f"{m:g} min" for m in marks)
          + " | best (streamed) | best checkpoint, exact |")
    print("|---|---|---|" + "---|" * len(marks) + "---|---|")
    for r in results:
        cells_ = [at_minute(r["curve"], m) for m in marks]
        print(f"| {r['name']} | {r['params'] / 1e6:.2f}M | {r['chars_per_s']:,.0f} | "
              + " | ".join("–" if v is None else f"{v:.4f}" for v in cells_)
              + f" | {r['best_streamed']:.4f} | {r['best_exact']:.4f} |")
    print(f"\n(load average {meta['load_avg_start']:.2f} at start, {meta.get('load_avg_end', float('nan')):.2f} at end; "
          f"plot: {args.out / 'quality.png'})")


if __name__ == "__main__":
    main()
