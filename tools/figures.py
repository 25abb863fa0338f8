"""Render the figures of docs/derivation.md into docs/img (or --out DIR), from charnn itself.

    python tools/figures.py              # the committed figures: three small models trained (~1 minute)
    python tools/figures.py --quick      # tiny settings, a few seconds: what the test suite runs

unrolled.png        the unrolled graph of the seed's RNN, forward (black) and backward (red) flows
vanishing.png       ‖∂L_t/∂h_{t−k}‖ / ‖∂L_t/∂h_t‖ of the seed's RNN at charnn's initialisation and after
                    training, against σ_max(W)^k (the bound) and ρ(W)^k (the spectral radius)
gradflow-cells.png  `charnn gradflow`'s figure for an RNN, an LSTM and a GRU trained the same way
gradflow-lag.png    the three cells' typical ‖∂L_t/∂h_{t−k}‖ against k on one axis

Every number the figures show is also printed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from charnn import model  # noqa: E402
from charnn.apps import gradflow as gradflow_app  # noqa: E402
from charnn.data import load_text  # noqa: E402
from charnn.data.vocab import Vocab  # noqa: E402
from charnn.eval.gradflow import grad_flow  # noqa: E402
from charnn.train import train  # noqa: E402
from charnn.train.config import Config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
FULL = {"hidden": 64, "steps": 300, "window": 60, "chars": 200_000, "init_hidden": 256}
QUICK = {"hidden": 8, "steps": 4, "window": 12, "chars": 20_000, "init_hidden": 16}


def unrolled(out: Path) -> None:
    """Three steps of h_t = tanh(W h_{t−1} + U x_t + b), o_t = V h_t + c, L_t = −log ŷ_t[y_t]."""
    fig, ax = plt.subplots(figsize=(10, 4.6))
    ax.set_xlim(-0.8, 9.2)
    ax.set_ylim(-0.9, 4.1)
    ax.axis("off")
    xs = {0: 0.0, 1: 2.8, 2: 5.6, 3: 8.4}
    box = dict(boxstyle="round,pad=0.3", fc="white", ec="black")

    def node(x: float, y: float, label: str, **kw) -> None:
        ax.text(x, y, label, ha="center", va="center", fontsize=13, bbox={**box, **kw}, zorder=3)

    def arrow(a: tuple, b: tuple, color: str = "black", label: str = "", style: str = "-", off=(0.0, 0.0),
              rad: float = 0.0) -> None:
        ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="-|>", color=color, lw=1.4, ls=style,
                                                        shrinkA=16, shrinkB=16,
                                                        connectionstyle=f"arc3,rad={rad}"), zorder=2)
        if label:
            ax.text((a[0] + b[0]) / 2 + off[0], (a[1] + b[1]) / 2 + off[1], label, color=color, fontsize=10,
                    ha="center", va="center")

    node(xs[0], 1.5, r"$h_0$")
    for t in (1, 2, 3):
        x = xs[t]
        node(x, 0.0, rf"$x_{t}$", fc="#eef")
        node(x, 1.5, rf"$h_{t}$")
        node(x, 2.7, rf"$o_{t}$")
        node(x, 3.7, rf"$L_{t}$", fc="#fee")
        arrow((x, 0.0), (x, 1.5), label=r"$U$", off=(-0.25, 0))
        arrow((x, 1.5), (x, 2.7), label=r"$V$", off=(-0.25, 0))
        arrow((x, 2.7), (x, 3.7))
        arrow((xs[t - 1], 1.5), (x, 1.5), label=r"$W$", off=(0, -0.22))
        # backward: from the loss down the output path, then back along the recurrence
        arrow((x + 0.35, 3.7), (x + 0.35, 2.7), color="crimson", style="--",
              label=r"$\hat y_t-\mathbf{1}_{y_t}$".replace("_t", f"_{t}"), off=(0.75, 0))
        arrow((x + 0.35, 2.7), (x + 0.35, 1.5), color="crimson", style="--", label=r"$V^\top$", off=(0.3, 0))
        arrow((x, 1.5), (xs[t - 1], 1.5), color="crimson", style="--", rad=0.35,
              label=rf"$W^\top \delta_{t}$", off=(0, 0.62))
    ax.text(-0.7, -0.75, "black: forward (the same W, U, V at every step)    red, dashed: backward "
            r"($\partial L/\partial h_t = V^\top \delta^o_t + W^\top \delta_{t+1}$,  "
            r"$\delta_t = (1-h_t^2)\odot\partial L/\partial h_t$)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def _train(cell: str, text: str, s: dict) -> dict:
    cfg = Config(cell=cell, hidden_size=s["hidden"], batch_size=16, max_len=50, lr=3e-3, epochs=100,
                 max_steps=s["steps"], seed=0, dtype="float64", eval_every=0)
    return train(cfg, out=None, text=text, progress=False, log=None).params


def _ratio_by_lag(flow) -> np.ndarray:
    """Geometric mean over t of ‖∂L_t/∂h_{t−k}‖ / ‖∂L_t/∂h_t‖, k = 0..T−1."""
    T = flow.T
    out = np.full(T, np.nan)
    for k in range(T):
        r = [flow.norms[t, t - k] / flow.norms[t, t] for t in range(max(k, 1), T + 1)]
        out[k] = np.exp(np.mean(np.log(r)))
    return out


def vanishing(out: Path, ids: np.ndarray, K: int, trained: dict, s: dict) -> dict:
    """The seed's RNN at charnn's initialisation (H = init_hidden) and the trained small RNN."""
    T = s["window"]
    window = ids[:T + 1]
    init = model.init_params(K, s["init_hidden"], seed=42, dtype=np.float64)
    rows = {}
    fig, ax = plt.subplots(figsize=(7, 4))
    k = np.arange(T)
    for label, p in ((f"RNN H={s['init_hidden']} at initialisation", init), (f"RNN H={s['hidden']} trained", trained)):
        W = p["W"]
        sigma = float(np.linalg.svd(W, compute_uv=False)[0])
        rho = float(np.abs(np.linalg.eigvals(W)).max())
        ratio = _ratio_by_lag(grad_flow(p, window))
        rows[label] = {"sigma_max": sigma, "rho": rho, "ratio_10": float(ratio[min(10, T - 1)])}
        line, = ax.semilogy(k, ratio, lw=2, label=f"{label}: measured")
        ax.semilogy(k, sigma ** k, ls="--", color=line.get_color(), label=rf"$\sigma_{{max}}(W)^k$ = {sigma:.2f}$^k$")
        ax.semilogy(k, rho ** k, ls=":", color=line.get_color(), label=rf"$\rho(W)^k$ = {rho:.2f}$^k$")
    ax.set_xlabel("k = t − s (steps back)")
    ax.set_ylabel(r"$\|\partial L_t/\partial h_{t-k}\| \,/\, \|\partial L_t/\partial h_t\|$")
    ax.set_ylim(1e-12, 1e3)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return rows


def cells(out_map: Path, out_lag: Path, ids: np.ndarray, nets: dict, s: dict) -> dict:
    T = s["window"]
    offset = 1000 if len(ids) > 1000 + T + 1 else 0
    flows = [(f"{c} 1x{s['hidden']}", gradflow_app.window_flow(p, ids, T, offset)) for c, p in nets.items()]
    gradflow_app.plot(flows, out_map, title=f"{s['steps']} Adam steps each, the same data and settings")
    fig, ax = plt.subplots(figsize=(7, 4))
    rows = {}
    for label, flow in flows:
        lag = flow.by_lag()
        ax.semilogy(np.arange(T), lag, lw=2, label=label)
        rows[label] = {f"lag {k}": float(lag[k]) for k in (0, 1, 5, 10, 20, 40) if k < T}
    ax.set_xlabel("k = t − s (steps back)")
    ax.set_ylabel(r"geometric mean over t of $\|\partial L_t/\partial h_{t-k}\|$")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_lag, dpi=90)
    plt.close(fig)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=IMG)
    ap.add_argument("--quick", action="store_true", help="tiny settings, for the tests")
    args = ap.parse_args(argv)
    s = QUICK if args.quick else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    text = load_text()[:s["chars"]]
    vocab = Vocab.from_text(text)
    train_text, val_text = text[:int(0.9 * len(text))], text[int(0.9 * len(text)):]
    ids = np.asarray(vocab.encode(val_text))
    unrolled(args.out / "unrolled.png")
    nets = {c: _train(c, text, s) for c in ("rnn", "lstm", "gru")}
    rows = vanishing(args.out / "vanishing.png", ids, len(vocab), nets["rnn"], s)
    rows.update(cells(args.out / "gradflow-cells.png", args.out / "gradflow-lag.png", ids, nets, s))
    for label, vals in rows.items():
        print(f"{label}: " + ", ".join(f"{k} {v:.3g}" for k, v in vals.items()))
    print(f"wrote {', '.join(sorted(p.name for p in args.out.glob('*.png')))} to {args.out}")
    del train_text
    return 0


if __name__ == "__main__":
    sys.exit(main())
