#!/usr/bin/env python3
"""GPU check of charnn's CUDA path: parity, training, speed and sampling in one short run (< 5 min).

  1. parity: loss, every gradient and h_T of the fused kernels (float32) against the NumPy
     float64 engine on random inputs, ‖Δ‖/‖ref‖ < 1e-4, TF32 off; the plain CuPy port too
  2. training: 200 Adam steps on Tiny Shakespeare on the GPU against the CPU float32 run, with the
     CPU float32 − float64 gap as the measure of float32 noise; then `charnn train --device cuda`
  3. speed: one training step (forward, BPTT, clip, Adam) at B=128 and B=1024 (H=256, V=65,
     T=100, fp32) for charnn-cuda (several kernel layouts; the stepwise one with and without CUDA
     graphs), the plain CuPy port, and PyTorch nn.RNN
     (cuDNN, TF32 off; foreach and fused Adam), all in this run; chars/s and charnn / cuDNN
  4. sampling: batch-1 generation on the GPU against the CPU copy of the weights

Every phase runs in try/except and the script goes on; a summary block comes last, and the full
results go to $OUT/gpu_check.json when OUT is set. Run from the repository root:
    PYTHONPATH=src python3 benchmarks/gpu_check.py
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("CUPY_TF32", "0")            # CuPy: no TF32 in float32 matmuls
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")  # cuBLAS/cuDNN: never TF32, whatever a library asks
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402

T0 = float(os.environ.setdefault("GPU_CHECK_T0", str(time.time())))   # children log on the parent's clock
R: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "phases": {}}
H, V_SIZE, T_LEN = 256, 65, 100
PARITY_TOL = 1e-4


def log(msg: str) -> None:
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


def phase(name: str):
    def wrap(fn):
        def run(*a, **kw):
            log(f"== {name}")
            t = time.perf_counter()
            try:
                R["phases"][name] = {"ok": True, **(fn(*a, **kw) or {})}
            except Exception as exc:  # keep going: a later phase may still tell us something
                traceback.print_exc()
                R["phases"][name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            R["phases"][name]["seconds"] = round(time.perf_counter() - t, 1)
            return R["phases"][name]
        return run
    return wrap


# ----------------------------------------------------------------------------------------------------
@phase("info")
def info():
    import cupy as cp
    from charnn import backend
    from charnn.backend import cuda
    backend.get_xp("cuda")
    out = {"cupy": cp.__version__, "numpy": np.__version__, "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
           "driver": cp.cuda.runtime.driverGetVersion(), **cuda.device_info(),
           "CUPY_TF32": os.environ.get("CUPY_TF32"), "cpu_count": os.cpu_count()}
    try:
        import torch
        out.update(torch=torch.__version__, cudnn=torch.backends.cudnn.version())
    except Exception as exc:
        out["torch"] = f"unavailable: {exc}"
    for k, v in out.items():
        log(f"   {k}: {v}")
    return out


def random_problem(B: int, T: int, Hs: int, Vs: int, seed: int):
    from charnn import model
    rng = np.random.default_rng(seed)
    p = model.init_params(Vs, Hs, seed=seed, dtype=np.float64)
    p["b"] = rng.normal(0, 0.1, Hs)
    p["c"] = rng.normal(0, 0.1, Vs)
    x = rng.integers(0, Vs, (B, T))
    y = rng.integers(0, Vs, (B, T))
    h0 = rng.uniform(-0.5, 0.5, (B, Hs))
    return p, x, y, h0


def errors(loss, grads, hT, ref):
    from charnn.backend.cuda import rel_err
    rloss, rgrads, rh = ref
    e = {"loss": abs(loss - rloss) / abs(rloss)}
    e.update({k: rel_err(grads[k], rgrads[k]) for k in rgrads})
    e["h_T"] = rel_err(hT, rh)
    return e


def parity(stepwise: bool):
    import cupy as cp
    from charnn import model
    from charnn.backend import cuda
    rows, worst = [], 0.0
    if stepwise:
        cases = [("B64 T100 H256 V65", 64, 100, 256, 65, [("stepwise", None, None)]),
                 ("B37 T13 H128 V50", 37, 13, 128, 50, [("stepwise", None, None)])]
    else:
        cases = [("B64 T100 H256 V65", 64, 100, 256, 65, [None, ("persistent", (2, 512), 1), ("persistent", (4, 256), None),
                                                          ("persistent", (8, 256), None)]),
                 ("B37 T13 H128 V50", 37, 13, 128, 50, [None]),
                 ("B1024 T6 H256 V65", 1024, 6, 256, 65, [None, ("persistent", (2, 512), 1), ("persistent", (4, 256), None)]),
                 ("B3 T5 H32 V7", 3, 5, 32, 7, [None])]
    for name, B, T, Hs, Vs, variants in cases:
        p64, x, y, h0 = random_problem(B, T, Hs, Vs, seed=B + T)
        ref = model.loss_and_grads(p64, x, y, h0)          # NumPy float64, the engine itself
        p32 = {k: cp.asarray(v, dtype=np.float32) for k, v in p64.items()}
        xd, yd, hd = cp.asarray(x), cp.asarray(y), cp.asarray(h0, dtype=np.float32)
        for var in variants:
            try:
                if var is None:
                    lay = cuda.choose_layout(Hs, Vs, B)
                else:
                    lay = cuda.choose_layout(Hs, Vs, B, split=var[1], persistent=var[0] == "persistent", ri=var[2])
                res = cuda.loss_and_grads(p32, xd, yd, hd, layout=lay)
                e = errors(*res, ref)
                # a second call on fresh inputs through the same static buffers must also be right
                p64b, xb, yb, h0b = random_problem(B, T, Hs, Vs, seed=B + T + 1)
                refb = model.loss_and_grads(p64b, xb, yb, h0b)
                resb = cuda.loss_and_grads({k: cp.asarray(v, dtype=np.float32) for k, v in p64b.items()},
                                           cp.asarray(xb), cp.asarray(yb), cp.asarray(h0b, dtype=np.float32), layout=lay)
                eb = errors(*resb, refb)
                e = {k: max(e[k], eb[k]) for k in e}
                label = (f"fused {'persistent' if lay.persistent else 'stepwise'} cs={lay.cs} nt={lay.nt} ri={lay.ri} "
                         f"bg={lay.bg}")
            except Exception as exc:
                traceback.print_exc()
                rows.append({"case": name, "path": str(var), "error": f"{type(exc).__name__}: {exc}"})
                log(f"   {name:20s} {str(var):28s} ERROR {exc}")
                worst = float("inf")
                continue
            m = max(e.values())
            worst = max(worst, m)
            rows.append({"case": name, "path": label, "max_rel_err": m, "errors": e})
            log(f"   {name:20s} {label:46s} max rel err {m:.2e}  " + " ".join(f"{k}={v:.1e}" for k, v in e.items()))
        if stepwise:
            continue
        # the portable engine itself on CuPy arrays (the plain per-step port), and the model dispatch
        if B <= 64:
            loss, cache = model.forward(p32, xd, yd, hd)
            grads, _ = model.backward(p32, cache)
            e = errors(loss, grads, cache.hs[-1], ref)
            rows.append({"case": name, "path": "plain CuPy port", "max_rel_err": max(e.values()), "errors": e})
            log(f"   {name:20s} {'plain CuPy port (model.forward/backward)':46s} max rel err {max(e.values()):.2e}")
        e = errors(*model.loss_and_grads(p32, xd, yd, hd), ref)
        rows.append({"case": name, "path": "model.loss_and_grads dispatch", "max_rel_err": max(e.values())})
        log(f"   {name:20s} {'model.loss_and_grads (dispatch)':46s} max rel err {max(e.values()):.2e}")
        worst = max(worst, max(e.values()))
    return {"rows": rows, "worst": worst, "pass": worst < PARITY_TOL}


@phase("parity")
def parity_persistent():
    return parity(False)


@phase("parity_stepwise")
def parity_stepwise():
    return parity(True)


# ----------------------------------------------------------------------------------------------------
def corpus_batches(B: int, T: int):
    from charnn.data import Batches, encode_corpus, load_text, split
    vocab, ids = encode_corpus(load_text(None))
    train, _ = split(ids, 0.9)
    return vocab, Batches(train, B, T)


def cpu_curve(batches, Vs, steps, dtype):
    from charnn import model
    from charnn.train.optim import Adam, clip_by_value
    p = model.init_params(Vs, H, seed=42, dtype=dtype)
    opt, h, out = Adam(5e-3), None, []
    for k in range(steps):
        x, y = batches.get(k % len(batches))
        loss, g, hT = model.loss_and_grads(p, x, y, h)
        clip_by_value(g, -5.0, 5.0)
        opt.step(p, g)
        h, out = hT, out + [loss]
    return out


STEPS, TRAIN_B = int(os.environ.get("GPU_CHECK_STEPS", "200")), 32


def cpu_curves(dest: str) -> None:
    """The CPU reference curves (float32 and float64), written to `dest` as JSON.

    Started in the background at the beginning on half of the cores (the GPU phases keep the
    other half, so launch-bound timings are not disturbed) and collected by the training phase.
    """
    vocab, batches = corpus_batches(TRAIN_B, T_LEN)
    t = time.perf_counter()
    c32 = cpu_curve(batches, len(vocab), STEPS, np.float32)
    c64 = cpu_curve(batches, len(vocab), STEPS, np.float64)
    Path(dest + ".tmp").write_text(json.dumps({"cpu32": c32, "cpu64": c64, "cpu_s": time.perf_counter() - t}))
    os.replace(dest + ".tmp", dest)


@phase("training")
def training(steps: int = STEPS, B: int = TRAIN_B):
    import cupy as cp
    from charnn import model
    from charnn.backend import cuda
    from charnn.train.optim import Adam, clip_by_value
    from fused_trainer import FusedTrainer
    vocab, batches = corpus_batches(B, T_LEN)
    Vs = len(vocab)
    # the fused trainer (what is timed below)
    tr = FusedTrainer(model.init_params(Vs, H, seed=42, dtype=np.float32), B, T_LEN, lr=5e-3, clip=5.0)
    g32, h = [], None
    for k in range(steps):
        x, y = batches.get(k % len(batches))
        g32.append(float(tr.step(x, y, h)))
        h = tr.h_last
    # the engine unchanged on CuPy arrays: model.loss_and_grads (fused dispatch) + optim.Adam,
    # and the same with the dispatch off (CHARNN_FUSED=0): the plain per-step CuPy port
    def engine_curve() -> list:
        p = {k: cp.asarray(v) for k, v in model.init_params(Vs, H, seed=42, dtype=np.float32).items()}
        opt, h, out = Adam(5e-3), None, []
        for k in range(steps):
            x, y = batches.get(k % len(batches))
            loss, g, h = model.loss_and_grads(p, x, y, h)
            clip_by_value(g, -5.0, 5.0)
            opt.step(p, g)
            out.append(loss)
        return out
    e32 = engine_curve()
    try:
        os.environ["CHARNN_FUSED"] = "0"
        p32 = engine_curve()
    except Exception as exc:
        traceback.print_exc()
        p32 = None
        log(f"   plain port curve failed: {type(exc).__name__}: {exc}")
    finally:
        del os.environ["CHARNN_FUSED"]
    dest = Path(os.environ["GPU_CHECK_CURVES"])
    for _ in range(600):                       # the background CPU run (see cpu_curves)
        if dest.exists():
            break
        time.sleep(0.1)
    ref = json.loads(dest.read_text())
    c32, c64, cpu_s = ref["cpu32"], ref["cpu64"], ref["cpu_s"]
    c32a, c64a, g32a, e32a = map(np.asarray, (c32, c64, g32, e32))
    noise = float(np.abs(c32a - c64a).max())
    dev_fused = float(np.abs(g32a - c32a).max())
    dev_engine = float(np.abs(e32a - c32a).max())
    dev_plain = None if p32 is None else float(np.abs(np.asarray(p32) - c32a).max())
    tol = max(5e-3, 3 * noise)
    out = {"steps": steps, "batch": B, "cpu_s": round(cpu_s, 1), "layout": str(tr.lay),
           "first_last_cpu32": [c32[0], c32[-1]], "first_last_gpu": [g32[0], g32[-1]],
           "max_abs_cpu32_vs_cpu64": noise, "max_abs_gpu_fused_vs_cpu32": dev_fused,
           "max_abs_gpu_engine_vs_cpu32": dev_engine, "max_abs_gpu_plain_vs_cpu32": dev_plain, "tolerance": tol,
           "pass": dev_fused <= tol and dev_engine <= tol,
           "curve_every_20": {"cpu32": c32[::20], "cpu64": c64[::20], "gpu_fused": g32[::20], "gpu_engine": e32[::20],
                              "gpu_plain": None if p32 is None else p32[::20]}}
    log(f"   loss {c32[0]:.4f} -> {c32[-1]:.4f} (CPU f32); {g32[0]:.4f} -> {g32[-1]:.4f} (GPU fused)")
    log(f"   max |GPU fused − CPU f32| {dev_fused:.2e}, |GPU engine − CPU f32| {dev_engine:.2e}, "
        f"|GPU plain port − CPU f32| {dev_plain}, float32 noise |CPU f32 − CPU f64| {noise:.2e}; tolerance {tol:.1e}")
    return out


@phase("train_cli")
def train_cli():
    from charnn.train import checkpoint
    from charnn import cli
    from charnn.data import default_corpus_path
    with tempfile.TemporaryDirectory() as d:
        corpus = Path(d) / "c.txt"
        corpus.write_text(default_corpus_path().read_text(encoding="utf-8")[:60_000], encoding="utf-8")
        rc = cli.main(["train", "--data", str(corpus), "--out", str(Path(d) / "run"), "--device", "cuda",
                       "--max-steps", "60", "--batch-size", "32", "--sample-length", "100", "--no-progress"])
        ck = checkpoint.load(Path(d) / "run" / "checkpoints" / "last.safetensors")
        types = sorted({type(a).__module__.split(".")[0] for a in ck.params.values()})
        rows = [json.loads(line) for line in (Path(d) / "run" / "metrics.jsonl").read_text().splitlines()]
    log(f"   rc={rc}, checkpoint arrays from {types}, last row {rows[-1]}")
    return {"rc": rc, "checkpoint_array_modules": types, "last_metrics": rows[-1], "pass": rc == 0 and types == ["numpy"]}


# ----------------------------------------------------------------------------------------------------
def time_steps(step, n: int, reps: int = 5, warm: int = 3, sync=None) -> float:
    """Median milliseconds per call of step(i) over `reps` runs of n calls (CUDA events)."""
    import cupy as cp
    for i in range(warm):
        step(i)
    cp.cuda.get_current_stream().synchronize()
    if sync is not None:
        sync()
    per = []
    for r in range(reps):
        a, b = cp.cuda.Event(), cp.cuda.Event()
        a.record()
        for i in range(n):
            step(i)
        if sync is not None:
            sync()
        b.record()
        b.synchronize()
        per.append(cp.cuda.get_elapsed_time(a, b) / n)
    return statistics.median(per)


def torch_step_ms(B: int, fused_adam: bool, n: int) -> float:
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    torch.manual_seed(0)
    rnn = torch.nn.RNN(V_SIZE, H, nonlinearity="tanh").to(dev)
    out = torch.nn.Linear(H, V_SIZE).to(dev)
    params = list(rnn.parameters()) + list(out.parameters())
    opt = torch.optim.Adam(params, lr=5e-3, fused=True) if fused_adam else torch.optim.Adam(params, lr=5e-3)
    xs = [torch.randint(0, V_SIZE, (T_LEN, B), device=dev) for _ in range(4)]
    ys = [torch.randint(0, V_SIZE, (T_LEN, B), device=dev) for _ in range(4)]

    def step(i):
        x, y = xs[i % 4], ys[i % 4]
        hseq, _ = rnn(torch.nn.functional.one_hot(x, V_SIZE).float())
        loss = torch.nn.functional.cross_entropy(out(hseq).reshape(-1, V_SIZE), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_value_(params, 5.0)
        opt.step()

    for i in range(3):
        step(i)
    torch.cuda.synchronize()
    per = []
    for r in range(5):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for i in range(n):
            step(i)
        b.record()
        b.synchronize()
        per.append(a.elapsed_time(b) / n)
    return statistics.median(per)


@phase("speed")
def speed():
    import cupy as cp
    from charnn import model
    from charnn.backend import cuda
    from charnn.train.optim import Adam, clip_by_value
    from fused_trainer import FusedTrainer
    out = {}
    for B in (128, 1024):
        chars = B * T_LEN
        rows = {}
        rng = np.random.default_rng(B)
        xs = [cp.asarray(rng.integers(0, V_SIZE, (B, T_LEN))) for _ in range(4)]
        ys = [cp.asarray(rng.integers(0, V_SIZE, (B, T_LEN))) for _ in range(4)]
        p0 = model.init_params(V_SIZE, H, seed=1, dtype=np.float32)
        # stepwise first: a fault in the persistent kernels would end this process (see main)
        variants = [("charnn-cuda stepwise cs2 nt512 CUDA graph", dict(split=(2, 512), persistent=False), True),
                    ("charnn-cuda stepwise cs2 nt512 no graph", dict(split=(2, 512), persistent=False), False),
                    ("charnn-cuda persistent cs2 nt512 ri4", dict(split=(2, 512), persistent=True, ri=4), True),
                    ("charnn-cuda persistent cs2 nt512 ri1", dict(split=(2, 512), persistent=True, ri=1), True),
                    ("charnn-cuda persistent cs4 nt256 ri4", dict(split=(4, 256), persistent=True, ri=4), True),
                    ("charnn-cuda persistent cs8 nt256 ri4", dict(split=(8, 256), persistent=True, ri=4), True)]
        # the plain per-step port: the portable engine on CuPy arrays, optim.Adam
        try:
            p = {k: cp.asarray(v) for k, v in p0.items()}
            opt = Adam(5e-3)

            def plain(i):
                loss, cache = model.forward(p, xs[i % 4], ys[i % 4])
                g, _ = model.backward(p, cache)
                clip_by_value(g, -5.0, 5.0)
                opt.step(p, g)
            ms = time_steps(plain, n=3, reps=3, warm=1)
            rows["plain CuPy port"] = {"ms": ms, "chars_per_s": chars / ms * 1e3}
            log(f"   B={B:5d} {'plain CuPy port':42s} {ms:8.3f} ms/step {chars / ms / 1e3:8.2f} M chars/s")
        except Exception as exc:
            traceback.print_exc()
            rows["plain CuPy port"] = {"error": f"{type(exc).__name__}: {exc}"}
        for label, kw, graph in variants:
            try:
                lay = cuda.choose_layout(H, V_SIZE, B, **kw)
                tr = FusedTrainer(p0, B, T_LEN, lr=5e-3, clip=5.0, layout=lay, graph=graph)
                ms = time_steps(lambda i: tr.step(xs[i % 4], ys[i % 4]), n=20)
                rows[label] = {"ms": ms, "chars_per_s": chars / ms * 1e3, "graphs": len(tr.plan._graphs),
                               "layout": str(lay), "finite": bool(np.isfinite(float(tr.step(xs[0], ys[0]))))}
                log(f"   B={B:5d} {label:42s} {ms:8.3f} ms/step {chars / ms / 1e3:8.2f} M chars/s"
                    f" graphs={len(tr.plan._graphs)} {tr.plan.graph_error or ''}")
            except Exception as exc:
                traceback.print_exc()
                rows[label] = {"error": f"{type(exc).__name__}: {exc}"}
        out[str(B)] = {"rows": rows}
    return out


@phase("speed_torch")
def speed_torch():
    out = {}
    for B in (128, 1024):
        rows = {}
        for fused in (False, True):
            label = f"torch nn.RNN cuDNN, Adam {'fused' if fused else 'foreach'}"
            try:
                ms = torch_step_ms(B, fused, n=20)
                rows[label] = {"ms": ms, "chars_per_s": B * T_LEN / ms * 1e3}
                log(f"   B={B:5d} {label:42s} {ms:8.3f} ms/step {B * T_LEN / ms / 1e3:8.2f} M chars/s")
            except Exception as exc:
                traceback.print_exc()
                rows[label] = {"error": f"{type(exc).__name__}: {exc}"}
        out[str(B)] = {"rows": rows}
    return out


def ratios() -> dict:
    """Best charnn-cuda row over the best cuDNN row at each batch size (both from this run)."""
    out = {}
    for B in ("128", "1024"):
        ours = [(r["chars_per_s"], k) for k, r in R["phases"].get("speed", {}).get(B, {}).get("rows", {}).items()
                if k.startswith("charnn") and "chars_per_s" in r]
        theirs = [(r["chars_per_s"], k) for k, r in R["phases"].get("speed_torch", {}).get(B, {}).get("rows", {}).items()
                  if "chars_per_s" in r]
        if ours and theirs:
            (a, ka), (b, kb) = max(ours), max(theirs)
            target = 1.5 if B == "128" else 1.0
            out[B] = {"best_charnn": ka, "charnn_chars_per_s": a, "best_torch": kb, "torch_chars_per_s": b,
                      "ratio": a / b, "target": target, "pass": a / b >= target}
    R["ratios"] = out
    return out


@phase("profile")
def profile():
    """Where the time of one fused step goes (default layout), to steer further kernel work."""
    import cupy as cp
    from charnn import model
    from charnn.backend import cuda
    out = {}
    for B in (128, 1024):
        lay = cuda.choose_layout(H, V_SIZE, B)
        plan = cuda.Plan(B, T_LEN, lay)
        p = {k: cp.asarray(v) for k, v in model.init_params(V_SIZE, H, seed=1, dtype=np.float32).items()}
        g = {k: cp.empty_like(v) for k, v in p.items()}
        rng = np.random.default_rng(0)
        plan.load(rng.integers(0, V_SIZE, (B, T_LEN)), rng.integers(0, V_SIZE, (B, T_LEN)), None)
        i32, smem, grid = np.int32, lay.smem_bytes(), (plan.clusters * lay.cs,)
        k = plan.k
        parts = {
            "whole loss+grads (eager)": lambda i: plan.enqueue(p, g),
            "rnn_fwd": lambda i: k["rnn_fwd"](grid, (lay.nt,), (p["W"], p["U"], p["b"], plan.x, plan.hs, i32(B), i32(T_LEN)),
                                              shared_mem=smem),
            "rnn_bwd": lambda i: k["rnn_bwd"](grid, (lay.nt,), (p["W"], plan.hs, plan.dz, i32(B), i32(T_LEN)),
                                              shared_mem=smem),
            "gemm dW": lambda i: cuda._gemm("T", "N", plan.dz, plan.hs[:T_LEN].reshape(-1, H), g["W"]),
            "gemm logits": lambda i: cuda._gemm("N", "T", plan.hs[1:].reshape(-1, H), p["V"], plan.d),
        }
        row = {}
        for name, fn in parts.items():
            try:
                row[name] = time_steps(fn, n=20)
            except Exception as exc:
                row[name] = f"{type(exc).__name__}: {exc}"
        out[str(B)] = row
        log(f"   B={B}: " + ", ".join(f"{n} {v:.3f} ms" if isinstance(v, float) else f"{n} {v}" for n, v in row.items()))
    return out


@phase("sampling")
def sampling(n: int = 2000):
    import cupy as cp
    from charnn import model
    from charnn.backend import host_copy
    p = {k: cp.asarray(v) for k, v in model.init_params(V_SIZE, H, seed=1, dtype=np.float32).items()}
    out = {}
    for where, params in (("gpu", p), ("cpu copy", host_copy(p))):
        xp = cp if where == "gpu" else np
        h = xp.zeros((1, H), dtype=np.float32)
        model.generate(params, h, xp.zeros(1, dtype=np.int64), 50, rng=np.random.default_rng(0))
        t = time.perf_counter()
        model.generate(params, h, xp.zeros(1, dtype=np.int64), n, rng=np.random.default_rng(0))
        out[where] = n / (time.perf_counter() - t)
        log(f"   batch-1 sampling on the {where}: {out[where]:,.0f} chars/s")
    return out


def summary():
    P = R["phases"]
    lines = ["", "=" * 30 + " SUMMARY " + "=" * 30]
    inf = P.get("info", {})
    lines.append(f"device {inf.get('name')} (cc {inf.get('cc')}, {inf.get('sms')} SMs), CuPy {inf.get('cupy')}, "
                 f"torch {inf.get('torch')}, cuDNN {inf.get('cudnn')}, date {R['date']}")
    par = P.get("parity", {})
    lines.append(f"parity   : {'PASS' if par.get('pass') else 'FAIL'} worst rel err {par.get('worst', float('nan')):.2e}"
                 f" (tol {PARITY_TOL:g}) {par.get('error', '')}")
    ps = P.get("parity_stepwise", {})
    lines.append(f"parity stepwise: {'PASS' if ps.get('pass') else 'FAIL'} worst {ps.get('worst', float('nan')):.2e} {ps.get('error', '')}")
    tr = P.get("training", {})
    lines.append(f"training : {'PASS' if tr.get('pass') else 'FAIL'} max|GPU−CPU32| {tr.get('max_abs_gpu_fused_vs_cpu32', float('nan')):.2e}"
                 f" engine {tr.get('max_abs_gpu_engine_vs_cpu32', float('nan')):.2e}, plain port"
                 f" {tr.get('max_abs_gpu_plain_vs_cpu32')}, noise(CPU32−CPU64)"
                 f" {tr.get('max_abs_cpu32_vs_cpu64', float('nan')):.2e} {tr.get('error', '')}")
    cl = P.get("train_cli", {})
    lines.append(f"train cli: {'PASS' if cl.get('pass') else 'FAIL'} {cl.get('error', '')}")
    rat = ratios()
    for B in ("128", "1024"):
        for ph in ("speed", "speed_torch"):
            for k, r in P.get(ph, {}).get(B, {}).get("rows", {}).items():
                if "chars_per_s" in r:
                    lines.append(f"  B={B:>4} {k:42s} {r['ms']:8.3f} ms {r['chars_per_s'] / 1e6:7.2f} M chars/s")
                else:
                    lines.append(f"  B={B:>4} {k:42s} {r.get('error')}")
        if B in rat:
            s_ = rat[B]
            lines.append(f"  B={B:>4} ratio charnn/cuDNN = {s_['ratio']:.2f} (target >= {s_['target']}) "
                         f"{'PASS' if s_['pass'] else 'FAIL'}")
        else:
            lines.append(f"  B={B:>4} ratio n/a {P.get('speed', {}).get('error', '')} {P.get('speed_torch', {}).get('error', '')}")
    sa = P.get("sampling", {})
    if "gpu" in sa:
        lines.append(f"sampling : batch-1 GPU {sa['gpu']:,.0f} chars/s, CPU copy {sa['cpu copy']:,.0f} chars/s")
    lines.append(f"total {time.time() - T0:.0f} s")
    print("\n".join(lines), flush=True)
    R["total_s"] = round(time.time() - T0, 1)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(json.dumps(R, indent=1, default=str))


# Each phase runs in a child process with a time limit: a kernel fault (which poisons the CUDA
# context for the rest of a process) or a hang then costs that phase only.
PHASES = {"info": (info, 40), "parity_stepwise": (parity_stepwise, 45), "parity": (parity_persistent, 75),
          "speed_torch": (speed_torch, 50), "speed": (speed, 110), "training": (training, 80),
          "train_cli": (train_cli, 50), "profile": (profile, 30), "sampling": (sampling, 20)}


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "--phase":      # child: run one phase, write its result
        name, dest = argv[1], argv[2]
        PHASES[name][0]()
        Path(dest).write_text(json.dumps(R["phases"][name], default=str))
        return
    if len(argv) == 2 and argv[0] == "--cpu-curves":
        cpu_curves(argv[1])
        return
    import subprocess
    cores = sorted(os.sched_getaffinity(0))
    half = max(1, len(cores) // 2)
    curves = tempfile.mkdtemp()
    os.environ["GPU_CHECK_CURVES"] = str(Path(curves) / "curves.json")
    bg = None
    if not argv or "training" in argv:
        env = {**os.environ, **{v: str(len(cores) - half) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                                   "MKL_NUM_THREADS")}}
        bg = subprocess.Popen([sys.executable, __file__, "--cpu-curves", os.environ["GPU_CHECK_CURVES"]], env=env,
                              preexec_fn=lambda: os.sched_setaffinity(0, cores[half:] or cores))
        os.sched_setaffinity(0, cores[:half])          # the GPU phases (children inherit this)
    for name, (_, limit) in PHASES.items():
        if argv and name not in argv:
            continue
        with tempfile.TemporaryDirectory() as d:
            dest = Path(d) / "r.json"
            t = time.perf_counter()
            try:
                rc = subprocess.run([sys.executable, __file__, "--phase", name, str(dest)], timeout=limit).returncode
                R["phases"][name] = json.loads(dest.read_text()) if dest.exists() else \
                    {"ok": False, "error": f"phase process exited with status {rc} and no result"}
            except subprocess.TimeoutExpired:
                R["phases"][name] = {"ok": False, "error": f"timed out after {limit} s"}
                log(f"   {name}: timed out after {limit} s")
            R["phases"][name].setdefault("seconds", round(time.perf_counter() - t, 1))
    if bg is not None and bg.poll() is None:
        bg.kill()
    summary()


if __name__ == "__main__":
    main(sys.argv[1:])
