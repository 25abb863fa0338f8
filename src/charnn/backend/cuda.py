"""The fused CUDA fast path: the engine's maths (model.py) in a dozen launches instead of ~1000.

Same forward/backward as model.py (see its docstring for the equations), on float32 CuPy arrays:

    h_{t+1} = tanh(W h_t + U x_t + b)          one persistent kernel for all T steps (rnn_fwd)
    o = V h + c, ŷ = softmax(o), L, dL/do       one GEMM over all T·B rows + one fused kernel (xent)
    dV = dL/doᵀ h, dc = Σ dL/do, dh_out = V dL/do   GEMMs over all rows
    dz_t = (dh_out_t + Wᵀ dz_{t+1}) ⊙ (1 − h²)  one persistent kernel for all T steps (rnn_bwd)
    dW = Σ dz_t h_tᵀ (GEMM), dU by a shared-memory scatter, db = Σ_v dUᵀ[v]

and, for training, clipping ±clip and Adam fused over one flat parameter buffer: about fifteen
launches per training step, whatever T is. The kernels are in cuda_src.py.

On GPUs without thread-block clusters (before Hopper) the recurrences run one launch per time
step (rnn_fwd_step / rnn_bwd_step); those T launches are captured once in a CUDA graph (CuPy
stream capture) and replayed, so they cost next to nothing to issue. The rest of the step cannot
be captured: CuPy refuses cuBLAS calls during stream capture, and the persistent path needs no
graph (one launch per direction).

This module imports CuPy at the top: only the backend package imports it, and only once CuPy
arrays are in hand (or `get_xp("cuda")` found a working GPU).
"""
from __future__ import annotations

import functools
import os
from typing import Any, Mapping

import cupy as cp
import numpy as np

from .cuda_src import Layout, pick_layout, source

NAMES = ("W", "U", "V", "b", "c")


def device_info() -> dict[str, Any]:
    """Name, compute capability and multiprocessor count of the current GPU."""
    return _device_info(cp.cuda.Device().id)


@functools.lru_cache(maxsize=None)
def _device_info(dev_id: int) -> dict[str, Any]:
    dev = cp.cuda.Device(dev_id)
    props = cp.cuda.runtime.getDeviceProperties(dev_id)
    name = props["name"]
    return {"name": name.decode() if isinstance(name, bytes) else str(name),
            "cc": int(dev.compute_capability), "sms": int(props["multiProcessorCount"])}


def choose_layout(H: int, VS: int, B: int, *, split: tuple[int, int] | None = None,
                  persistent: bool | None = None, ri: int | None = None) -> Layout | None:
    """The layout for these shapes on this GPU, or None when the fused path does not apply."""
    if persistent is None:
        persistent = device_info()["cc"] >= 90 and os.environ.get("CHARNN_CUDA_PERSISTENT", "1") != "0"
    return _choose_layout(cp.cuda.Device().id, H, VS, B, split, persistent, ri)


@functools.lru_cache(maxsize=256)
def _choose_layout(dev_id: int, H: int, VS: int, B: int, split: tuple[int, int] | None,
                   persistent: bool, ri: int | None) -> Layout | None:
    info = _device_info(dev_id)
    if persistent and info["cc"] < 90:
        return None
    return pick_layout(H, VS, B, sms=info["sms"], split=split, persistent=persistent, ri=ri)


_modules: dict[Layout, Any] = {}


def _kernels(lay: Layout) -> dict[str, Any]:
    """Compile (once per layout; CuPy also caches on disk) and return the kernels by name."""
    if lay not in _modules:
        mod = cp.RawModule(code=source(**lay.defines()), options=("--std=c++17",))
        names = ["xent", "xent_finish", "scatter_rows", "reduce_rows", "finish_dU", "adam", "bump"]
        names += ["rnn_fwd", "rnn_bwd"] if lay.persistent else ["rnn_fwd_step", "rnn_bwd_step"]
        ks = {n: mod.get_function(n) for n in names}
        smem = lay.smem_bytes()
        for n in ("rnn_fwd", "rnn_bwd", "rnn_fwd_step", "rnn_bwd_step"):
            if n in ks and smem > 48 * 1024:
                ks[n].max_dynamic_shared_size_bytes = smem
        _modules[lay] = ks
    return _modules[lay]


def _gemm(transa: str, transb: str, a: Any, b: Any, out: Any) -> None:
    """out = op(a) @ op(b) with cuBLAS, written straight into `out` (no temporary)."""
    from cupy import cublas  # noqa: PLC0415 - loads libcublas on first use only

    cublas.gemm(transa, transb, a, b, out=out)


class Plan:
    """Static device buffers and the launch sequence for one (B, T, H, V) shape.

    Fill `x`, `y` (T, B) int32 and `hs[0]` (= h0), then `enqueue(params, grads)`; the loss lands in
    `loss` (float64, on the device) and h_T in `hs[T]`.
    """

    def __init__(self, B: int, T: int, lay: Layout):
        self.B, self.T, self.lay = B, T, lay
        H, VS = lay.H, lay.VS
        N = T * B
        self.N = N
        self.k = _kernels(lay)
        self.x = cp.zeros((T, B), dtype=np.int32)
        self.y = cp.zeros((T, B), dtype=np.int32)
        self.hs = cp.zeros((T + 1, B, H), dtype=np.float32)
        self.d = cp.empty((N, VS), dtype=np.float32)          # logits − c, then dL/do
        self.dz = cp.empty((N, H), dtype=np.float32)          # Vᵀ dL/do, then dz
        self.g1 = max(1, min(4 * device_info()["sms"], -(-N // 64)))
        vsp = -(-VS // 32) * 32
        self.part_c = cp.empty((self.g1, vsp), dtype=np.float32)
        self.part_loss = cp.empty((self.g1,), dtype=np.float32)
        self.loss = cp.zeros((1,), dtype=np.float64)
        self.rows = max(32, -(-N // 256))                     # rows per scatter block
        self.g2 = -(-N // self.rows)
        self.part_u = cp.empty((self.g2, VS, H), dtype=np.float32)
        self.dUT = cp.empty((VS, H), dtype=np.float32)
        self.clusters = -(-B // lay.bg)
        self.use_graphs = True
        self.graph_error: str | None = None
        self._graphs: dict[tuple, Any] = {}

    def _steps(self, key: tuple, launch_all: Any) -> None:
        """The T per-step launches of one recurrence, replayed from a CUDA graph.

        The graph is captured on first use for these parameter pointers (the static buffers never
        move); if capture is refused, the launches run directly from then on.
        """
        g = self._graphs.get(key) if self.use_graphs else None
        if g is None and self.use_graphs:
            s = cp.cuda.Stream(non_blocking=True)
            try:
                with s:
                    s.begin_capture()
                    try:
                        launch_all()
                    finally:
                        g = s.end_capture()
            except Exception as exc:  # capture refused: issue the launches one by one instead
                self.use_graphs, self.graph_error, g = False, f"{type(exc).__name__}: {exc}", None
            else:
                if len(self._graphs) >= 8:
                    self._graphs.clear()
                self._graphs[key] = g
        if g is None:
            launch_all()
        else:
            g.launch(cp.cuda.get_current_stream())

    def load(self, inputs: Any, targets: Any, h0: Any) -> None:
        """Copy a (B, T) batch and the initial state into the static buffers (time-major)."""
        for dst, src in ((self.x, inputs), (self.y, targets)):
            if isinstance(src, cp.ndarray):
                dst[...] = src.T
            else:
                dst.set(np.ascontiguousarray(np.asarray(src).T, dtype=np.int32))
        if h0 is None:
            self.hs[0].fill(0)
        else:
            self.hs[0] = h0

    def enqueue(self, p: Mapping[str, Any], g: Mapping[str, Any]) -> None:
        """Launch forward, loss and backward; write every gradient into g's arrays."""
        B, T, N, lay, k = self.B, self.T, self.N, self.lay, self.k
        i32 = np.int32
        W, U, V, b, c = (p[n] for n in NAMES)
        hs_out = self.hs[1:].reshape(N, lay.H)
        hs_prev = self.hs[:T].reshape(N, lay.H)
        grid = (self.clusters * lay.cs,)
        smem = lay.smem_bytes()
        if lay.persistent:
            k["rnn_fwd"](grid, (lay.nt,), (W, U, b, self.x, self.hs, i32(B), i32(T)), shared_mem=smem)
        else:
            def forward_steps() -> None:
                for t in range(T):
                    k["rnn_fwd_step"](grid, (lay.nt,), (W, U, b, self.x, self.hs, i32(B), i32(T), i32(t)),
                                      shared_mem=smem)
            self._steps(("fwd", W.data.ptr, U.data.ptr, b.data.ptr), forward_steps)
        _gemm("N", "T", hs_out, V, self.d)                            # o − c = h Vᵀ
        k["xent"]((self.g1,), (256,), (self.d, c, self.y, i32(N), np.float32(1.0 / N), self.part_c,
                                       self.part_loss))
        k["xent_finish"]((1,), (256,), (self.part_c, self.part_loss, i32(self.g1), i32(N), g["c"], self.loss))
        _gemm("T", "N", self.d, hs_out, g["V"])                        # dV = dL/doᵀ h
        _gemm("N", "N", self.d, V, self.dz)                            # Vᵀ dL/do, as rows
        if lay.persistent:
            k["rnn_bwd"](grid, (lay.nt,), (W, self.hs, self.dz, i32(B), i32(T)), shared_mem=smem)
        else:
            def backward_steps() -> None:
                for t in range(T - 1, -1, -1):
                    k["rnn_bwd_step"](grid, (lay.nt,), (W, self.hs, self.dz, i32(B), i32(T), i32(t)),
                                      shared_mem=smem)
            self._steps(("bwd", W.data.ptr), backward_steps)
        _gemm("T", "N", self.dz, hs_prev, g["W"])                      # dW = Σ_t dz_t h_{t-1}ᵀ
        k["scatter_rows"]((self.g2, lay.H // lay.cw), (lay.cw,), (self.dz, self.x, i32(N), i32(self.rows),
                                                                  self.part_u))
        k["reduce_rows"]((-(-lay.VS * lay.H // 256),), (256,), (self.part_u, i32(self.g2), self.dUT))
        k["finish_dU"]((-(-lay.H // 128),), (128,), (self.dUT, g["U"], g["b"]))


_plans: dict[tuple[int, int, Layout], Plan] = {}


def _plan(B: int, T: int, lay: Layout) -> Plan:
    key = (B, T, lay)
    if key not in _plans:
        if len(_plans) > 8:     # shapes change rarely (last batch, evaluation); keep memory bounded
            _plans.clear()
        _plans[key] = Plan(B, T, lay)
    return _plans[key]


def supported(params: Mapping[str, Any]) -> bool:
    """Whether the fused path handles these parameters (CuPy float32; shapes the kernels fit)."""
    return set(params) == set(NAMES) and all(
        isinstance(params[n], cp.ndarray) and params[n].dtype == np.float32 for n in NAMES)


def loss_and_grads(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any = None,
                   *, layout: Layout | None = None) -> tuple[float, dict[str, Any], Any] | None:
    """model.loss_and_grads on the GPU through the fused kernels; None when they do not apply.

    Returns (mean cross-entropy in nats/char, grads keyed like params, h_T (B, H)), fresh arrays.
    """
    if not supported(params):
        return None
    H, VS = params["W"].shape[0], params["V"].shape[0]
    B, T = np.shape(inputs)
    lay = layout or choose_layout(H, VS, B)
    if lay is None or T < 1:
        return None
    plan = _plan(B, T, lay)
    p = {n: cp.ascontiguousarray(params[n]) for n in NAMES}
    grads = {n: cp.empty_like(p[n]) for n in NAMES}
    plan.load(inputs, targets, h0)
    plan.enqueue(p, grads)
    return float(plan.loss[0]), grads, plan.hs[T].copy()


def rel_err(a: Any, ref: Any) -> float:
    """‖a − ref‖ / ‖ref‖ in float64 (host)."""
    a64 = np.asarray(cp.asnumpy(a) if isinstance(a, cp.ndarray) else a, dtype=np.float64)
    r64 = np.asarray(cp.asnumpy(ref) if isinstance(ref, cp.ndarray) else ref, dtype=np.float64)
    den = float(np.linalg.norm(r64))
    return float(np.linalg.norm(a64 - r64)) / (den if den > 0 else 1.0)


__all__ = ["Layout", "Plan", "choose_layout", "device_info", "loss_and_grads", "supported",
           "rel_err"]
