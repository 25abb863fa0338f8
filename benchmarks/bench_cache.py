"""The continuous cache (charnn.eval.cache) on a trained checkpoint: tuned on training text, scored on validation.

The cache's three settings — window K, sharpness θ, weight λ — are chosen on the last
`--tune-chars` characters of the *training* split (text the model was trained on, so the choice
leans towards a small λ; no validation character is used for it), then the validation split is
scored once with that choice, exactly (batch 1, one pass, state carried). For information the
same grid is also scored on the validation split; that row is marked as an oracle, not a result.

    python benchmarks/bench_cache.py RUN_DIR/charnn/checkpoints/best.safetensors --json benchmarks/results/cache/gru-2x1024.json
    python benchmarks/bench_cache.py --params RUN_DIR/pytorch/best-params.safetensors --json benchmarks/results/cache/pytorch-twin.json
Writes --json (default: next to the checkpoint's run folder, cache.json) and prints a table. --params
takes bare weights in charnn's layout (the PyTorch twin's best weights as bench_quality.py saves
them) and the embedded corpus with the 0.9 split.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from charnn.train import checkpoint  # noqa: E402
from charnn.eval import cache as neural_cache  # noqa: E402
from charnn import model as stack  # noqa: E402
from charnn.data.corpus import Corpus  # noqa: E402

SIZES = [2_000, 10_000]
THETAS = [5.0, 10.0, 20.0, 40.0, 80.0]
LAMBDAS = [round(0.025 * i, 3) for i in range(0, 25)]   # 0 … 0.6


def grid(params, ids, sizes, thetas, lambdas):
    """{size: (p_model, p_cache)} and the best (K, θ, λ, nats) over the grid."""
    probs, best = {}, None
    for K in sizes:
        t0 = time.perf_counter()
        pm, pc = neural_cache.cache_probs(params, ids, size=K, thetas=thetas)
        probs[K] = (pm, pc)
        theta, lam, nats = neural_cache.tune(pm, pc, thetas, lambdas)
        print(f"  K={K:>6}: best theta {theta:g}, lambda {lam:g}: {nats:.4f} nats/char "
              f"(plain {neural_cache.mixture_nats(pm, pc[0], 0.0):.4f}; {time.perf_counter() - t0:.0f} s)", flush=True)
        if best is None or nats < best[3]:
            best = (K, theta, lam, nats)
    return probs, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path, nargs="?")
    ap.add_argument("--params", type=Path, help="bare weights (safetensors, charnn layout) instead of a checkpoint")
    ap.add_argument("--tune-chars", type=int, default=100_000, help="training-split characters to tune on [100000]")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if (args.checkpoint is None) == (args.params is None):
        raise SystemExit("give a checkpoint or --params FILE")
    if args.params is not None:
        from safetensors.numpy import load_file  # noqa: PLC0415
        params = load_file(str(args.params))
        source, step, corpus = args.params, None, Corpus.load(None)
        train_ids, val_ids = corpus.split(0.9)
        cell, layers = stack.cell_of(params), len(stack.prefixes(params))
        H = params["V"].shape[1]
    else:
        ckpt = checkpoint.load(checkpoint.resolve(args.checkpoint))
        cfg = ckpt.config
        params, source, step = ckpt.model_params, args.checkpoint, ckpt.step
        corpus = Corpus.load(cfg.data or None, encoding=cfg.encoding, byte_level=cfg.byte_level)
        train_ids, val_ids = corpus.split(cfg.train_fraction)
        cell, layers, H = cfg.cell, cfg.layers, cfg.hidden_size
    tune_ids = np.asarray(train_ids[-args.tune_chars:])
    val_ids = np.asarray(val_ids)
    print(f"# {datetime.now():%Y-%m-%d %H:%M}, {platform.processor() or platform.machine()}; "
          f"{source} (step {step}, {cell} {layers}x{H})", flush=True)
    print(f"tuning on the last {len(tune_ids):,} characters of the training split:", flush=True)
    _, (K, theta, lam, tune_nats) = grid(params, tune_ids, SIZES, THETAS, LAMBDAS)
    print(f"chosen: K={K}, theta {theta:g}, lambda {lam:g}", flush=True)
    print(f"validation split ({len(val_ids) - 1:,} predictions), same grid:", flush=True)
    val_probs, (oK, otheta, olam, onats) = grid(params, val_ids, SIZES, THETAS, LAMBDAS)
    pm, pc = val_probs[K]
    plain = neural_cache.mixture_nats(pm, pc[0], 0.0)
    cached = neural_cache.mixture_nats(pm, pc[THETAS.index(theta)], lam)
    print(f"\n{'':<40} {'val nats/char':>14}")
    print(f"{'plain model (exact, state carried)':<40} {plain:>14.4f}")
    print(f"{'model + cache, chosen on training text':<40} {cached:>14.4f}   K={K}, theta {theta:g}, lambda {lam:g}")
    print(f"{'(oracle: best on validation itself)':<40} {onats:>14.4f}   K={oK}, theta {otheta:g}, lambda {olam:g}")
    out = args.json or Path(source).resolve().parents[1] / "cache.json"
    out.write_text(json.dumps({
        "date": datetime.now().isoformat(timespec="seconds"), "weights": str(source), "step": step,
        "model": f"{cell} {layers}x{H}", "tune_chars": len(tune_ids),
        "grid": {"sizes": SIZES, "thetas": THETAS, "lambdas": LAMBDAS},
        "chosen": {"size": K, "theta": theta, "lambda": lam, "tune_nats": tune_nats},
        "val_plain": plain, "val_cached": cached,
        "oracle": {"size": oK, "theta": otheta, "lambda": olam, "val_nats": onats}}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
