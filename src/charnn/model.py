"""The seed's vanilla character RNN: forward pass and hand-derived backward pass through time.

Model (column-vector form, as in the seed document; x_t is the one-hot vector of character t):

    h_t = tanh(W h_{t-1} + U x_t + b)        W: (H, H)   U: (H, V)   b: (H,)
    o_t = V h_t + c                          V: (V, H)   c: (V,)
    ŷ_t = softmax(o_t)
    L   = (1 / (B T)) Σ_{b,t} -log ŷ_t[y_t]   mean cross-entropy, nats per predicted character

Backward pass (the seed's formulas, with the transposes written out correctly):

    dL/do_t = (ŷ_t − 1[y_t]) / (B T)                                softmax + cross-entropy
    dL/dh_t = Vᵀ dL/do_t + Wᵀ dz_{t+1}                              dz_{T+1} = 0
    dz_t    = (1 − h_t²) ⊙ dL/dh_t                                   through tanh
    dc = Σ_t dL/do_t     dV = Σ_t dL/do_t h_tᵀ
    db = Σ_t dz_t        dW = Σ_t dz_t h_{t-1}ᵀ     dU = Σ_t dz_t x_tᵀ   dL/dh_0 = Wᵀ dz_1

How it is computed fast (batch of B sequences, row-vector form, time-major):

    forward:   U x_t + b for all t at once is a row gather of (Uᵀ + b) by the input ids: a column
               lookup of U, never a one-hot product; then per step h_t = tanh(h_{t-1} Wᵀ + (U x_t + b)).
    backward:  stacked "augmented" rows turn the backward affine maps into single matrix products,
               with a_t = [h_{t-1} | x_tᵀ | 1]  (1 × (H+V+1)) stored alongside h for the gradients:
               g_t = [dL/do_{t-1} | dz_t]  (1 × (V+H))        R = [V; W]       ((V+H) × H)
               dL/dh_t = g_{t+1} R          Vᵀ do_t + Wᵀ dz_{t+1} in one GEMM
    gradients: Σ_t g_tᵀ a_t = [[dV, ·, dc], [dW, dU, db]]       all five in one GEMM over B(T+1) rows

(the a_t and g_t rows are indexed so that row k pairs dz_k and do_{k-1} with h_{k-1}; the block
marked · is unused). The rows live in two workspaces, hx (T+1, B, H+V+1) and g (T+1, B, V+H),
allocated once per (shapes, dtype) and reused across calls; the only Python loops run over T and
do one GEMM plus two (forward) or three (backward) in-place element-wise ops per step. The mean's
1/(B T) is applied once to the small gradient matrix instead of to every dL/do. With several BLAS
threads, a large batch is split into shards that run in parallel threads, each with
single-threaded BLAS, and their gradient matrices are added (see `_loss_grads_all`).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Mapping, MutableMapping

import numpy as np

from . import stack
from .parallel import blas_controllers as _blas_controllers  # noqa: F401 - used by tests and benchmarks
from .parallel import cuts, run_shards
from .parallel import executor as _executor
from .parallel import num_shards as _num_shards
from .parallel import single_threaded_blas as _single_threaded_blas
from .backend import fused_loss_and_grads, xp_of

PARAM_NAMES = ("W", "U", "V", "b", "c")
Params = MutableMapping[str, Any]


def param_shapes(vocab_size: int, hidden_size: int) -> dict[str, tuple[int, ...]]:
    """Shape of every parameter: W (H,H), U (H,V), V (V,H), b (H,), c (V,)."""
    H, Vs = hidden_size, vocab_size
    return {"W": (H, H), "U": (H, Vs), "V": (Vs, H), "b": (H,), "c": (Vs,)}


def init_params(vocab_size: int, hidden_size: int, *, seed: int, dtype: Any = np.float32,
                cell: str = "rnn", layers: int = 1) -> dict[str, np.ndarray]:
    """Initial parameters: W, U, V ~ Uniform(−1/√H, 1/√H); b = c = 0.

    cell="rnn", layers=1 (the default) is the seed's model with keys W, U, V, b, c. Any other cell
    ("lstm", "gru") or layer count gives a stacked model, `charnn.stack.init_params` (keys
    L{l}.W, L{l}.U, L{l}.b, V, c); every function of this module accepts both kinds.

    Why: the uniform bound 1/√H is PyTorch's default for nn.RNN and nn.Linear, so charnn and the
    PyTorch reference start from the same distribution. It gives W a spectral radius of about
    1/√3 ≈ 0.58, so at the start the hidden state neither explodes nor saturates tanh and
    gradients flow back a useful number of steps. Zero biases make the first prediction
    nearly uniform over the vocabulary (loss ≈ ln V), a clean known starting point.
    """
    if cell != "rnn" or layers != 1:
        return stack.init_params(vocab_size, hidden_size, seed=seed, dtype=dtype, cell=cell, layers=layers)
    if vocab_size < 1 or hidden_size < 1:
        raise ValueError("vocab_size and hidden_size must be >= 1")
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(hidden_size)
    shapes = param_shapes(vocab_size, hidden_size)
    params = {}
    for name in PARAM_NAMES:
        if name in ("b", "c"):
            params[name] = np.zeros(shapes[name], dtype=dtype)
        else:
            params[name] = rng.uniform(-k, k, size=shapes[name]).astype(dtype)
    return params


def dims(params: Mapping[str, Any]) -> tuple[int, int]:
    """(vocab_size, hidden_size) of a parameter set."""
    if "W" not in params:
        return stack.dims(params)
    return params["V"].shape[0], params["W"].shape[0]


# -- workspaces ------------------------------------------------------------------------------

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


_WS_MAX = 6
_workspaces: "OrderedDict[tuple, _Workspace]" = OrderedDict()
_ws_lock = threading.Lock()


def _workspace(xp: Any, B: int, T: int, H: int, Vs: int, dtype: Any, slot: int = 0) -> _Workspace:
    """The cached workspace for these shapes in this thread (a small LRU: a few shapes are live
    at once, e.g. full training batches, a shorter last batch and the evaluation chunks).

    slot: the shard index within one sharded call. A pool thread may run two shards of the same
    call one after the other (ThreadPoolExecutor hands queued work to whichever thread is free);
    with equal shard shapes they would share one workspace and the second would overwrite the
    first's M and h_last before they are summed (loss right, gradients and h_last wrong)."""
    key = (threading.get_ident(), slot, xp.__name__, B, T, H, Vs, np.dtype(dtype).str)
    with _ws_lock:
        ws = _workspaces.get(key)
        if ws is not None:
            _workspaces.move_to_end(key)
            return ws
    ws = _Workspace(xp, B, T, H, Vs, dtype)
    with _ws_lock:
        _workspaces[key] = ws
        while len(_workspaces) > _WS_MAX:
            _workspaces.popitem(last=False)
    return ws


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
    if "W" not in params:
        return stack.forward(params, inputs, targets, h0)
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
    if "W" not in params:
        return stack.backward(params, cache)
    ws = cache.ws if isinstance(cache.ws, _Workspace) else _ws_from_cache(params, cache)
    M, dh0 = _backward_ws(ws, params)
    scale = 1.0 / (ws.T * ws.B)
    return _grads_from(M, ws.H, ws.Vs, scale), dh0 * scale


def loss_and_grads(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any = None) -> tuple[float, dict[str, Any], Any]:
    """Mean cross-entropy (nats/char), gradients of every parameter, and the last hidden state.

    inputs, targets: integer arrays of shape (B, T). h0: (B, H) or None for zeros.
    Returns (loss, grads, h_last) with grads keyed like params and h_last of shape (B, H); the
    returned arrays are fresh (the reused workspace never leaks out).
    Stacked LSTM/GRU/RNN parameters go to `charnn.stack`: their state is (L, S, B, H), (h, c) per
    layer for an LSTM (S = 2) and h per layer for RNN/GRU (S = 1); h0=None means zeros.
    """
    if "W" not in params:
        return stack.loss_and_grads(params, inputs, targets, h0)
    fused = fused_loss_and_grads(params, inputs, targets, h0)   # CuPy float32: the fused CUDA kernels
    if fused is not None:
        return fused
    loss, grads, h_last, _ = _loss_grads_all(params, inputs, targets, h0)
    return loss, grads, h_last


def loss_grads_dh0(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any = None) -> tuple[float, dict[str, Any], Any]:
    """Like loss_and_grads but returns dL/dh0 (for gradient checks and truncated-BPTT studies)."""
    if "W" not in params:
        return stack.loss_grads_dh0(params, inputs, targets, h0)
    loss, grads, _, dh0 = _loss_grads_all(params, inputs, targets, h0)
    return loss, grads, dh0


# -- data parallelism over the batch (see charnn.parallel) --------------------------------------
# The shards' M matrices are added. The helpers keep their old private names here so that tests
# can swap them (monkeypatch model._num_shards / model._executor).
def _shard(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any, slot: int = 0) -> tuple[float, Any, Any, Any]:
    """Forward + backward of one (sub)batch in this thread's workspace for shard `slot`:
    (nats, M, dh0·N, h_last view)."""
    xp, x, y, B, T, H, Vs = _prepare(params, inputs, targets)
    ws = _workspace(xp, B, T, H, Vs, params["W"].dtype, slot)
    nats = _forward_ws(ws, params, x, y, h0, keep_probs=True)
    M, dh0 = _backward_ws(ws, params)
    return nats, M, dh0, ws.hs[-1]


def _loss_grads_all(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any) -> tuple[float, dict[str, Any], Any, Any]:
    """(mean loss, grads, h_last, dL/dh0), sharded over the batch when several threads are available."""
    W = params["W"]
    xp = xp_of(W)
    inputs, targets = xp.asarray(inputs), xp.asarray(targets)
    if inputs.ndim != 2:
        raise ValueError(f"inputs must be (B, T), got shape {inputs.shape}")
    B, T = inputs.shape
    H, Vs = W.shape[0], params["V"].shape[0]
    P = _num_shards(xp, B)
    if xp is not np:
        parts = [_shard(params, inputs, targets, h0)]
    elif P == 1:                                          # a small batch: BLAS threads cost more than they give
        with _single_threaded_blas():
            parts = [_shard(params, inputs, targets, h0)]
    else:
        if h0 is not None:
            h0 = xp.broadcast_to(xp.asarray(h0), (B, H))
        rows = cuts(B, P)

        def shard(i: int) -> tuple[float, Any, Any, Any]:
            a, b = rows[i]
            return _shard(params, inputs[a:b], targets[a:b], None if h0 is None else h0[a:b], i)

        parts = run_shards(shard, P, _executor(P - 1))
        if parts is None:                                 # another thread is sharding right now
            P, parts = 1, [_shard(params, inputs, targets, h0)]
    scale = 1.0 / (B * T)
    M = parts[0][1]
    if P > 1:
        M = M.copy()
        for part in parts[1:]:
            M += part[1]
    loss = sum(part[0] for part in parts) * scale
    h_last = xp.concatenate([part[3] for part in parts]) if P > 1 else parts[0][3].copy()
    dh0 = xp.concatenate([part[2] for part in parts]) if P > 1 else parts[0][2]
    dh0 *= scale
    return loss, _grads_from(M, H, Vs, scale), h_last, dh0


def step(params: Mapping[str, Any], h: Any, x: Any) -> tuple[Any, Any]:
    """One time step for generation: h = tanh(W h + U x + b), o = V h + c. x: (B,) ids, h: (B, H)."""
    if "W" not in params:
        return stack.step(params, h, x)
    W, U, V, b, c = (params[k] for k in PARAM_NAMES)
    h = xp_of(W).tanh(h @ W.T + U.T[x] + b)
    return h, h @ V.T + c


def evaluate(params: Mapping[str, Any], ids: Any, *, h0: Any = None, chunk: int = 1000) -> tuple[float, int, Any]:
    """Sum of −log ŷ[y] over a whole id sequence with the hidden state carried through it.

    Returns (total nats, number of predicted characters, final h (1, H)). Forward only, in chunks
    so memory stays bounded; batch size 1, so it is the exact loss of reading the text in order.
    """
    if "W" not in params:
        return stack.evaluate(params, ids, h0=h0, chunk=chunk)
    W = params["W"]
    xp = xp_of(W)
    ids = xp.asarray(ids).reshape(-1)
    n = len(ids) - 1
    if n < 1:
        raise ValueError("need at least 2 characters to evaluate")
    H, Vs = W.shape[0], params["V"].shape[0]
    _check_ids(xp, ids, Vs, "character")
    ids = ids.astype(np.intp, copy=False)
    h = h0
    total = 0.0
    with _single_threaded_blas() if xp is np else nullcontext():   # batch 1: threads only add hand-offs
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            ws = _workspace(xp, 1, e - s, H, Vs, W.dtype)
            total += _forward_ws(ws, params, ids[s:e, None], ids[s + 1:e + 1], h, keep_probs=False)
            h = ws.hs[-1]
    return total, n, h.copy()


# Sampling: below this many characters (n × B) the compiled kernel is not worth importing numba.
_KERNEL_MIN_CHARS = 2048
# Above this batch the NumPy path's batched GEMM beats the kernel's per-stream matrix-vector loop.
_KERNEL_MAX_BATCH = 8


def generate(params: Mapping[str, Any], h: Any, x: Any, n: int, *, rng: np.random.Generator,
             temperature: float = 1.0, top_k: int = 0, greedy: bool = False) -> tuple[np.ndarray, Any]:
    """Generate n characters for each of B streams.

    h: (B, H) state before reading x; x: (B,) ids of the last prompt character, or None to start
    from h alone (the first character is then drawn from softmax(V h + c)). Each step draws the
    next id from softmax(o / temperature), restricted to the top_k most likely ids when top_k > 0,
    or takes the argmax when greedy. The draw is an inverse-CDF lookup of one uniform number per
    stream and step (all n·B drawn up front as rng.random((n, B))), so the same rng seed always
    gives the same text. Returns (ids (B, n), final h: the state before reading ids[:, -1]).
    For stacked models h is the (L, S, B, H) state (`charnn.stack.init_state`).

    Speed: one product per step gives both W h (for the next step) and V h (the logits), with
    R = [W; V]; Uᵀ + b is precomputed so reading x is a row lookup. Long runs at small batch go to
    a compiled loop (`charnn.kernels`, when numba is available and CHARNN_NO_NUMBA is unset),
    which computes the same numbers as the NumPy loop below.
    """
    if "W" not in params:
        return stack.generate(params, h, x, n, rng=rng, temperature=temperature, top_k=top_k, greedy=greedy)
    W, U, V, b, c = (params[k] for k in PARAM_NAMES)
    xp = xp_of(W)
    H, Vs = W.shape[0], V.shape[0]
    B = h.shape[0]
    h = xp.array(h, dtype=W.dtype)                       # our own copy: updated in place below
    if n <= 0:
        return np.empty((B, 0), dtype=np.int64), h
    if x is not None:
        x = xp.asarray(x)
        _check_ids(xp, x, Vs, "prompt")                  # the compiled loop does not bounds-check
    u = None if greedy else rng.random((n, B))           # same stream as n calls of rng.random(B)
    UTb = xp.ascontiguousarray(U.T) + b                  # (V, H): row x is U x + b
    R = xp.ascontiguousarray(xp.concatenate([W, V], axis=0))   # (H+V, H): R h = [W h | V h]
    if xp is np and B <= _KERNEL_MAX_BATCH and n * B >= _KERNEL_MIN_CHARS and _kernels_available():
        from . import kernels  # noqa: PLC0415
        out = kernels.generate(R, UTb, np.asarray(c), h, None if x is None else np.asarray(x), u, n,
                               temperature=temperature, top_k=top_k, greedy=greedy)
        return out, h
    return _generate_numpy(xp, R, UTb, c, h, x, u, n, temperature=temperature, top_k=top_k, greedy=greedy)


def _kernels_available() -> bool:
    from . import kernels  # noqa: PLC0415 - importing kernels is cheap; numba loads only if used
    return kernels.available()


def _generate_numpy(xp: Any, R: Any, UTb: Any, c: Any, h: Any, x: Any, u: Any, n: int, *,
                    temperature: float, top_k: int, greedy: bool) -> tuple[np.ndarray, Any]:
    """The batched NumPy (or CuPy) sampling loop; the draws themselves run on the host."""
    B, H = h.shape
    RT = R.T                                             # h @ RT = [W h | V h] as rows
    out = np.empty((B, n), dtype=np.int64)
    if x is not None:
        h = xp.tanh(h @ RT[:, :H] + UTb[x])
    r = h @ RT
    for i in range(n):
        logits = r[:, H:] + c
        logits = logits.astype(np.float64) if xp is np else xp.asnumpy(logits).astype(np.float64)
        nxt = stack.draw_with(logits, None if greedy else u[i], temperature=temperature, top_k=top_k, greedy=greedy)
        out[:, i] = nxt
        if i + 1 < n:                                    # read the drawn id: h ← tanh(W h + U x + b)
            xn = nxt if xp is np else xp.asarray(nxt)
            h = xp.tanh(r[:, :H] + UTb[xn])
            r = h @ RT
    return out, h
