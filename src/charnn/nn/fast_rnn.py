"""The seed's one-layer RNN, trained fast: the same loss and gradients as `charnn.nn.network`, fewer passes.

Model (column-vector form, as in the seed document; x_t is the one-hot vector of character t):

    h_t = tanh(W h_{t-1} + U x_t + b)        W: (H, H)   U: (H, K)   b: (H,)
    o_t = V h_t + c                          V: (K, H)   c: (K,)
    ŷ_t = softmax(o_t)
    L   = (1 / (B T)) Σ_{j,t} -log ŷ_t[y_t]   mean over streams j and steps t, nats per character
(Notation of docs/derivation.md, section 1: K is the vocabulary size, V the output matrix.)

Backward pass (the seed's formulas, with the transposes written out correctly):

    dL/do_t = (ŷ_t − 1[y_t]) / (B T)                                softmax + cross-entropy (4.3)
    dL/dh_t = Vᵀ dL/do_t + Wᵀ dz_{t+1}                              dz_{T+1} = 0
    dz_t    = (1 − h_t²) ⊙ dL/dh_t                                   through tanh
    dc = Σ_t dL/do_t     dV = Σ_t dL/do_t h_tᵀ
    db = Σ_t dz_t        dW = Σ_t dz_t h_{t-1}ᵀ     dU = Σ_t dz_t x_tᵀ   dL/dh_0 = Wᵀ dz_1

How it is computed fast (batch of B sequences, row-vector form, time-major):

    forward:   U x_t + b for all t at once is a row gather of (Uᵀ + b) by the input ids: a column
               lookup of U, never a one-hot product; then per step h_t = tanh(h_{t-1} Wᵀ + (U x_t + b)).
    backward:  stacked "augmented" rows turn the backward affine maps into single matrix products,
               with, for rows k = 0..T (docs/derivation.md, appendix B; x_{T+1} = 0, do_0 = 0, dz_{T+1} = 0)
               ā_k = [h_k | x_{k+1}ᵀ | 1]  (1 × (H+K+1)) stored alongside h for the gradients,
               g_k = [dL/do_k | dz_{k+1}]  (1 × (K+H))        R = [V; W]       ((K+H) × H)
               dL/dh_k = g_k R              Vᵀ do_k + Wᵀ dz_{k+1} in one GEMM (k = 0: dL/dh_0)
    gradients: Σ_k g_kᵀ ā_k = [[dV, ·, dc], [dW, dU, db]]       all five in one GEMM over B(T+1) rows

(the block marked · is unused; in the 0-based arrays, x[k] is x_{k+1}). The rows live in hx (T+1, B, H+V+1) and g (T+1, B, V+H), kept between
training steps by `charnn.nn.workspace`; the only Python loops run over T and do one GEMM plus two
(forward) or three (backward) in-place element-wise ops per step. The mean's 1/(B T) is applied
once to the small gradient matrix instead of to every dL/do.

`charnn.model.loss_and_grads` chooses this path for the seed's W, U, V, b, c dict without dropout
masks (weight drop is applied to W before); the tests hold it equal to the generic path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from . import workspace
from ..backend import xp_of

PARAM_NAMES = ("W", "U", "V", "b", "c")


class _Workspace:
    """Preallocated buffers for one (B, T, H, V, dtype): the augmented rows hx and g, and scratch.

    hx[k] = [h_k | onehot(x_k) | 1] for k = 0..T (hs = hx[..., :H]; the one-hot block of row T
    stays zero), g[k] = [do_{k-1} | dz_k] with do_{-1} = 0 and dz_T = 0 (those blocks are never
    written, so they stay zero). Both are zeroed once at allocation.
    """

    def __init__(self, xp: Any, B: int, T: int, H: int, Vs: int, dtype: Any):
        self.xp, self.B, self.T, self.H, self.Vs = xp, B, T, H, Vs
        self.C = C = H + Vs + 1
        N = T * B
        self.hx = xp.zeros((T + 1, B, C), dtype=dtype)
        self.hx[:, :, C - 1] = 1
        self.g = xp.zeros((T + 1, B, Vs + H), dtype=dtype)
        self.WT = xp.empty((H, H), dtype=dtype)            # Wᵀ, contiguous for the per-step GEMM
        self.Ub = xp.empty((Vs, H), dtype=dtype)           # row v: U e_v + b (Uᵀ with b added)
        self.xu = xp.empty((T, B, H), dtype=dtype)         # U x_t + b for every step: rows of Ub
        self.R = xp.empty((Vs + H, H), dtype=dtype)        # [V; W]
        self.M = xp.empty((Vs + H, C), dtype=dtype)        # Σ g_kᵀ hx_k: every gradient
        self.logits = xp.empty((N, Vs), dtype=dtype)       # contiguous: the softmax runs here
        self.rowmax = xp.empty((N, 1), dtype=dtype)
        self.tmp = xp.empty((B, H), dtype=dtype)
        self.rows = xp.arange(N)
        self.onehot_base = self.rows * C + H               # flat index of x = 0 in row k*B + b
        self.onehot_at: Any = None                         # flat indices of the ones now set
        self.y: Any = None
        self.probs_are_do = False                          # g's do block holds ŷ − 1[y], not ŷ

    @property
    def hs(self) -> Any:
        return self.hx[:, :, : self.H]

    def do(self) -> Any:
        """The (N, V) block of g holding ŷ (after forward) or ŷ − 1[y] (after backward)."""
        return self.g.reshape(-1, self.Vs + self.H)[self.B:, : self.Vs]


def _check_ids(xp: Any, ids: Any, Vs: int, what: str) -> None:
    # Out-of-range ids would silently land in the wrong column of the augmented rows (or wrap in the gather).
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= Vs):
        raise IndexError(f"{what} ids must lie in [0, {Vs}), got [{int(ids.min())}, {int(ids.max())}]")


def _forward_ws(ws: _Workspace, params: Mapping[str, Any], x: Any, y: Any, h0: Any, *, keep_probs: bool) -> float:
    """Run the forward pass into ws; returns the summed cross-entropy (nats) over the T·B targets.

    x: (T, B) input ids, time-major; y: (T·B,) target ids, time-major. keep_probs=False skips
    writing ŷ into g (evaluation only needs the loss).
    """
    W, U, V, b, c = (params[k] for k in PARAM_NAMES)
    xp, B, T, H, Vs, C = ws.xp, ws.B, ws.T, ws.H, ws.Vs, ws.C
    hx, WT, xu = ws.hx, ws.WT, ws.xu
    WT[...] = W.T
    # U x_t is column x_t of U: a row gather of Uᵀ (+ b), for all T steps at once. The forward
    # pass never multiplies by a one-hot matrix.
    xp.add(U.T, b, out=ws.Ub)
    xp.take(ws.Ub, x, axis=0, out=xu)
    # The one-hot block of hx is only read by the backward pass, where Σ_t dz_t x_tᵀ (dU) rides
    # in the single gradient GEMM (measured faster than a scatter-add of rows).
    flat = hx.reshape(-1)
    if ws.onehot_at is not None:
        flat[ws.onehot_at] = 0                           # clear last call's ones
    ws.onehot_at = ws.onehot_base + x.reshape(-1)
    flat[ws.onehot_at] = 1
    hs = ws.hs
    if h0 is None:
        hs[0] = 0
    else:
        hs[0] = h0
    for k in range(T):                                   # the recurrence: one GEMM + tanh per step
        h = hs[k + 1]
        xp.matmul(hs[k], WT, out=h)                      # W h_{k-1}
        h += xu[k]                                       # + U x_k + b
        xp.tanh(h, out=h)
    # o_t = V h_t + c for all steps in one GEMM, then a stable log-softmax: subtract the row max
    # so exp never overflows; log ŷ[y] = (o[y] − max) − log Σ exp(o − max) stays finite.
    logits = ws.logits
    xp.matmul(hx.reshape(-1, C)[B:, :H], V.T, out=logits)
    logits += c
    xp.max(logits, axis=1, keepdims=True, out=ws.rowmax)
    logits -= ws.rowmax
    picked = logits[ws.rows, y]
    xp.exp(logits, out=logits)
    sums = logits.sum(axis=1)
    nats = float(xp.log(sums).sum(dtype=np.float64) - picked.sum(dtype=np.float64))
    if keep_probs:
        xp.reciprocal(sums, out=sums)
        xp.multiply(logits, sums[:, None], out=ws.do())  # ŷ, written straight into g
        ws.y = y
        ws.probs_are_do = False
    return nats


def _backward_ws(ws: _Workspace, params: Mapping[str, Any]) -> tuple[Any, Any]:
    """Backward pass through time from a forward-filled ws, without the mean's 1/N.

    Returns (M, dh0·N): M = Σ_k g_kᵀ hx_k ((V+H) × (H+V+1), ws.M itself) holds every gradient
    times N (see `_grads_from`); dh0·N is a fresh (B, H) array.
    """
    W, V = params["W"], params["V"]
    xp, T, H, Vs, C = ws.xp, ws.T, ws.H, ws.Vs, ws.C
    g, R, tmp = ws.g, ws.R, ws.tmp
    if not ws.probs_are_do:                              # do = ŷ − 1[y] (the 1/N comes at the end)
        ws.do()[ws.rows, ws.y] -= 1
        ws.probs_are_do = True
    R[:Vs] = V
    R[Vs:] = W
    hs = ws.hs
    for k in range(T - 1, -1, -1):
        dz = g[k, :, Vs:]
        xp.matmul(g[k + 1], R, out=dz)                   # dL/dh_k = Vᵀ do_k + Wᵀ dz_{k+1}
        h = hs[k + 1]
        xp.multiply(h, h, out=tmp)                       # dz_k = dL/dh_k − h² ⊙ dL/dh_k
        tmp *= dz
        dz -= tmp
    dh0 = g[0] @ R                                       # do block of g[0] is 0: Wᵀ dz_0
    xp.matmul(g.reshape(-1, Vs + H).T, ws.hx.reshape(-1, C), out=ws.M)
    return ws.M, dh0


def _grads_from(M: Any, H: int, Vs: int, scale: float) -> dict[str, Any]:
    """The five gradients, fresh arrays, from the blocks of M = [[dV, ·, dc], [dW, dU, db]] / scale."""
    C = H + Vs + 1
    return {"W": M[Vs:, :H] * scale, "U": M[Vs:, H:H + Vs] * scale, "V": M[:Vs, :H] * scale,
            "b": M[Vs:, C - 1] * scale, "c": M[:Vs, C - 1] * scale}


def _prepare(params: Mapping[str, Any], inputs: Any, targets: Any) -> tuple[Any, Any, Any, int, int, int, int]:
    W = params["W"]
    xp = xp_of(W)
    inputs, targets = xp.asarray(inputs), xp.asarray(targets)
    if inputs.ndim != 2 or inputs.shape != targets.shape:
        raise ValueError(f"inputs and targets must both be (B, T), got {inputs.shape} and {targets.shape}")
    B, T = inputs.shape
    Vs, H = params["V"].shape[0], W.shape[0]
    _check_ids(xp, inputs, Vs, "input")
    _check_ids(xp, targets, Vs, "target")
    x = xp.ascontiguousarray(inputs.T).astype(np.intp, copy=False)   # (T, B) time-major
    y = xp.ascontiguousarray(targets.T).reshape(-1).astype(np.intp, copy=False)
    return xp, x, y, B, T, H, Vs


@dataclass
class Cache:
    """What the backward pass needs from the forward pass."""

    x: Any        # (T, B) input ids, time-major
    y: Any        # (T*B,) target ids, time-major, flattened
    hs: Any       # (T+1, B, H): hs[0] = h0, hs[t] = h_t
    probs: Any    # (T*B, V) softmax outputs ŷ (backward turns them into ŷ − 1[y] in place)
    ws: Any = None  # the workspace these arrays are views of (None: built from the fields above)


def forward(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any = None) -> tuple[float, Cache]:
    """Forward pass over a (B, T) batch: mean cross-entropy loss (nats/char) and the cache.

    The cache owns fresh buffers (not the shared workspaces), so it stays valid across calls.
    """
    xp, x, y, B, T, H, Vs = _prepare(params, inputs, targets)
    ws = _Workspace(xp, B, T, H, Vs, params["W"].dtype)
    nats = _forward_ws(ws, params, x, y, h0, keep_probs=True)
    return nats / (T * B), Cache(x=x, y=y, hs=ws.hs, probs=ws.do(), ws=ws)


def _ws_from_cache(params: Mapping[str, Any], cache: Cache) -> _Workspace:
    """A workspace rebuilt from a Cache whose arrays came from elsewhere."""
    W = params["W"]
    xp = xp_of(W)
    x = xp.asarray(cache.x)
    T, B = x.shape
    H, Vs = W.shape[0], params["V"].shape[0]
    ws = _Workspace(xp, B, T, H, Vs, W.dtype)
    ws.hs[...] = cache.hs
    ws.onehot_at = ws.onehot_base + x.reshape(-1).astype(np.intp)
    ws.hx.reshape(-1)[ws.onehot_at] = 1
    ws.do()[...] = cache.probs
    ws.y = xp.asarray(cache.y).astype(np.intp)
    return ws


def backward(params: Mapping[str, Any], cache: Cache) -> tuple[dict[str, Any], Any]:
    """Backward pass through time by the seed's formulas: (grads, dL/dh0)."""
    ws = cache.ws if isinstance(cache.ws, _Workspace) else _ws_from_cache(params, cache)
    M, dh0 = _backward_ws(ws, params)
    scale = 1.0 / (ws.T * ws.B)
    return _grads_from(M, ws.H, ws.Vs, scale), dh0 * scale


def loss_and_grads_one(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any = None) -> tuple[float, dict[str, Any], Any]:
    """(mean loss, grads, h_last) of one (B, T) batch; fresh arrays (the kept buffers never leak out)."""
    with workspace.reusing():
        xp, x, y, B, T, H, Vs = _prepare(params, inputs, targets)
        dtype = params["W"].dtype
        ws = workspace.kept("fast_rnn", (xp.__name__, B, T, H, Vs, np.dtype(dtype).str),
                            lambda: _Workspace(xp, B, T, H, Vs, dtype))
        nats = _forward_ws(ws, params, x, y, h0, keep_probs=True)
        M, _ = _backward_ws(ws, params)
        scale = 1.0 / (T * B)
        return nats / (T * B), _grads_from(M, H, Vs, scale), ws.hs[-1].copy()
