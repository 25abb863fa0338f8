"""Whole training steps on the GPU in a few fused launches: a benchmark of how fast the seed's model
can train when clipping and Adam also run as one kernel over every parameter.

`charnn train --device cuda` runs the ordinary trainer on CuPy arrays (the fused loss-and-gradient
kernels of `charnn.backend.cuda`, then `charnn.train.optim` on the device); this class goes
further for the benchmark only (`benchmarks/gpu_check.py`).
"""
from __future__ import annotations

from typing import Any, Mapping

import cupy as cp
import numpy as np

from charnn.backend.cuda import NAMES, Layout, Plan, choose_layout, device_info


class FusedTrainer:
    """Training steps on the GPU: loss, BPTT, clip to ±clip, Adam, in about fifteen launches.

    Parameters live in one flat float32 buffer (`params` holds views of it, keyed W, U, V, b, c),
    so clipping and Adam are one kernel over every parameter; gradients and Adam's m, v likewise.
    Adam's step counter lives on the device. Semantics are optim.Adam's after optim.clip_by_value.
    graph=False issues the per-step launches of the stepwise layout directly (no CUDA graph).
    """

    def __init__(self, params: Mapping[str, Any], batch_size: int, seq_len: int, *, lr: float = 5e-3,
                 beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, clip: float = 5.0,
                 layout: Layout | None = None, graph: bool = True):
        H, VS = params["W"].shape[0], params["V"].shape[0]
        self.lay = layout or choose_layout(H, VS, batch_size)
        if self.lay is None:
            raise ValueError(f"the fused CUDA path does not support H={H}, V={VS}, B={batch_size}")
        sizes = [int(np.prod(params[n].shape)) for n in NAMES]
        self.n = sum(sizes)
        self.flat = cp.empty(self.n, dtype=np.float32)
        self.gflat = cp.zeros(self.n, dtype=np.float32)
        self.m = cp.zeros(self.n, dtype=np.float32)
        self.v = cp.zeros(self.n, dtype=np.float32)
        self.params: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        off = 0
        for name, size in zip(NAMES, sizes):
            shape = params[name].shape
            self.params[name] = self.flat[off:off + size].reshape(shape)
            self.grads[name] = self.gflat[off:off + size].reshape(shape)
            self.params[name][...] = cp.asarray(params[name], dtype=np.float32)
            off += size
        self.hyper = (float(lr), float(beta1), float(beta2), float(eps), float(clip))
        self.t_dev = cp.zeros((1,), dtype=np.int32)
        self.t = 0
        self.plan = Plan(batch_size, seq_len, self.lay)
        self.plan.use_graphs = graph

    def step(self, inputs: Any, targets: Any, h0: Any = None) -> Any:
        """One training step on a (B, T) batch; returns the loss as a device scalar (float64).

        h0: (B, H) initial state or None for zeros; after the call `h_last` is h_T.
        """
        self.plan.load(inputs, targets, h0)
        self.plan.enqueue(self.params, self.grads)
        lr, b1, b2, eps, clip = self.hyper
        blocks = min(4 * device_info()["sms"], -(-self.n // 256))
        k = self.plan.k
        k["adam"]((blocks,), (256,), (self.flat, self.gflat, self.m, self.v, np.int32(self.n), np.float64(lr),
                                      np.float64(b1), np.float64(b2), np.float64(eps), np.float32(clip),
                                      self.t_dev))
        k["bump"]((1,), (1,), (self.t_dev,))
        self.t += 1
        return self.plan.loss[0]

    @property
    def h_last(self) -> Any:
        """h_T of the last step, (B, H) (a view: copy it to keep it)."""
        return self.plan.hs[self.plan.T]

    def host_params(self) -> dict[str, np.ndarray]:
        """A NumPy copy of the parameters (for checkpoints and CPU sampling)."""
        return {n: cp.asnumpy(a) for n, a in self.params.items()}

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """Adam's m and v per parameter as NumPy arrays, keyed like optim.Adam.state_arrays()."""
        out = {}
        for slot, buf in (("m", self.m), ("v", self.v)):
            off = 0
            for n in NAMES:
                size = int(np.prod(self.params[n].shape))
                out[f"{slot}.{n}"] = cp.asnumpy(buf[off:off + size].reshape(self.params[n].shape))
                off += size
        return out
