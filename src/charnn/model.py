"""The seed's vanilla character RNN: forward pass and hand-derived backward pass through time.

Model (column-vector form, as in the seed document; x_t is the one-hot vector of character t):

    h_t = tanh(W h_{t-1} + U x_t + b)        W: (H, H)   U: (H, V)   b: (H,)
    o_t = V h_t + c                          V: (V, H)   c: (V,)
    ŷ_t = softmax(o_t)
    L   = (1 / (B T)) Σ_{b,t} -log ŷ_t[y_t]   mean cross-entropy, nats per predicted character

The code works on a batch of B sequences in row-vector form, time-major: a hidden state is a
row h_t of shape (B, H), so W h_{t-1} becomes ``h_{t-1} @ W.T`` and U x_t becomes a row gather
``U.T[x_t]`` (a column lookup of U: no one-hot matrix is ever built).

Backward pass (the seed's formulas, with the transposes written out correctly):

    dL/do_t = (ŷ_t − 1[y_t]) / (B T)                                softmax + cross-entropy
    dL/dh_t = Vᵀ dL/do_t + Wᵀ ((1 − h_{t+1}²) ⊙ dL/dh_{t+1})        the second term is dh_next
    dz_t    = (1 − h_t²) ⊙ dL/dh_t                                   through tanh
    dc = Σ_t dL/do_t     dV = Σ_t dL/do_t h_tᵀ
    db = Σ_t dz_t        dW = Σ_t dz_t h_{t-1}ᵀ     dU = Σ_t dz_t x_tᵀ   dL/dh_0 = Wᵀ dz_1
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, MutableMapping

import numpy as np

from . import stack
from .backend import scatter_add_rows, xp_of

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


@dataclass
class Cache:
    """What the backward pass needs from the forward pass."""

    x: Any        # (T, B) input ids, time-major
    y: Any        # (T*B,) target ids, time-major, flattened
    hs: Any       # (T+1, B, H): hs[0] = h0, hs[t] = h_t
    probs: Any    # (T*B, V) softmax outputs ŷ


def forward(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any = None) -> tuple[float, Cache]:
    """Forward pass over a (B, T) batch: mean cross-entropy loss (nats/char) and the cache."""
    if "W" not in params:
        return stack.forward(params, inputs, targets, h0)
    W, U, V, b, c = (params[k] for k in PARAM_NAMES)
    xp = xp_of(W)
    inputs, targets = xp.asarray(inputs), xp.asarray(targets)
    B, T = inputs.shape
    H = W.shape[0]
    x = inputs.T                                   # (T, B) time-major
    hs = xp.empty((T + 1, B, H), dtype=W.dtype)
    hs[0] = 0 if h0 is None else h0
    # Input projection of all T steps at once: U x_t is column x_t of U, i.e. row x_t of Uᵀ.
    z = xp.ascontiguousarray(U.T)[x]               # (T, B, H)
    z += b
    WT = W.T
    for t in range(T):                             # the only Python loop: the recurrence
        zt = z[t]
        zt += hs[t] @ WT                           # W h_{t-1} + U x_t + b
        xp.tanh(zt, out=hs[t + 1])
    logits = hs[1:].reshape(T * B, H) @ V.T        # o_t = V h_t + c, all steps in one GEMM
    logits += c
    # Stable softmax / log-softmax: subtract the row max so exp never overflows, and take
    # log ŷ[y] = (o[y] − max) − log Σ exp(o − max), which is finite even when ŷ[y] underflows.
    logits -= logits.max(axis=1, keepdims=True)
    probs = xp.exp(logits)
    sums = probs.sum(axis=1)
    probs /= sums[:, None]
    y = xp.ascontiguousarray(targets.T).reshape(-1)
    rows = xp.arange(T * B)
    loss = float(xp.mean(xp.log(sums) - logits[rows, y]))
    return loss, Cache(x=x, y=y, hs=hs, probs=probs)


def backward(params: Mapping[str, Any], cache: Cache) -> tuple[dict[str, Any], Any]:
    """Backward pass through time by the seed's formulas: (grads, dL/dh0)."""
    if "W" not in params:
        return stack.backward(params, cache)
    W, U, V = params["W"], params["U"], params["V"]
    xp = xp_of(W)
    hs, probs, x, y = cache.hs, cache.probs, cache.x, cache.y
    T, B = x.shape
    H = W.shape[0]
    N = T * B
    # dL/do_t = ŷ_t − 1[y_t], divided by N because the loss is a mean. Reuses the probs buffer.
    do = probs
    do[xp.arange(N), y] -= 1
    do /= N
    hs_out = hs[1:].reshape(N, H)
    grads: dict[str, Any] = {"c": do.sum(axis=0), "V": do.T @ hs_out}
    # Vᵀ dL/do_t for all t at once; the loop below adds the recurrent term dh_next.
    dz = (do @ V).reshape(T, B, H)
    dtanh = 1 - hs[1:] * hs[1:]                    # tanh'(z_t) = 1 − h_t²
    dh_next = xp.zeros((B, H), dtype=W.dtype)
    for t in range(T - 1, -1, -1):
        dzt = dz[t]
        dzt += dh_next                             # dL/dh_t
        dzt *= dtanh[t]                            # dz_t = (1 − h_t²) ⊙ dL/dh_t
        dh_next = dzt @ W                          # Wᵀ dz_t, as a row: dL/dh_{t-1} from step t
    dz2 = dz.reshape(N, H)
    grads["W"] = dz2.T @ hs[:-1].reshape(N, H)     # Σ_t dz_t h_{t-1}ᵀ as one GEMM
    grads["b"] = dz2.sum(axis=0)
    dUT = xp.zeros((U.shape[1], H), dtype=W.dtype)  # Σ_t dz_t x_tᵀ: scatter rows by input id
    scatter_add_rows(xp, dUT, x.reshape(-1), dz2)
    grads["U"] = dUT.T.copy()
    return {k: grads[k] for k in PARAM_NAMES}, dh_next


def loss_and_grads(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any = None) -> tuple[float, dict[str, Any], Any]:
    """Mean cross-entropy (nats/char), gradients of every parameter, and the last hidden state.

    inputs, targets: integer arrays of shape (B, T). h0: (B, H) or None for zeros.
    Returns (loss, grads, h_last) with grads keyed like params and h_last of shape (B, H).
    Stacked LSTM/GRU/RNN parameters go to `charnn.stack`: their state is (L, S, B, H), (h, c) per
    layer for an LSTM (S = 2) and h per layer for RNN/GRU (S = 1); h0=None means zeros.
    """
    if "W" not in params:
        return stack.loss_and_grads(params, inputs, targets, h0)
    loss, cache = forward(params, inputs, targets, h0)
    grads, _ = backward(params, cache)
    return loss, grads, cache.hs[-1].copy()


def loss_grads_dh0(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any = None) -> tuple[float, dict[str, Any], Any]:
    """Like loss_and_grads but returns dL/dh0 (for gradient checks and truncated-BPTT studies)."""
    if "W" not in params:
        return stack.loss_grads_dh0(params, inputs, targets, h0)
    loss, cache = forward(params, inputs, targets, h0)
    grads, dh0 = backward(params, cache)
    return loss, grads, dh0


def step(params: Mapping[str, Any], h: Any, x: Any) -> tuple[Any, Any]:
    """One time step for generation: h = tanh(W h + U x + b), o = V h + c. x: (B,) ids, h: (B, H)."""
    if "W" not in params:
        return stack.step(params, h, x)
    W, U, V, b, c = (params[k] for k in PARAM_NAMES)
    h = xp_of(W).tanh(h @ W.T + U.T[x] + b)
    return h, h @ V.T + c


def evaluate(params: Mapping[str, Any], ids: Any, *, h0: Any = None, chunk: int = 1000) -> tuple[float, int, Any]:
    """Sum of −log ŷ[y] over a whole id sequence with the hidden state carried through it.

    Returns (total nats, number of predicted characters, final h). Forward only, in chunks so
    memory stays bounded; batch size 1, so it is the exact loss of reading the text in order.
    """
    if "W" not in params:
        return stack.evaluate(params, ids, h0=h0, chunk=chunk)
    xp = xp_of(params["W"])
    ids = xp.asarray(ids)
    n = len(ids) - 1
    if n < 1:
        raise ValueError("need at least 2 characters to evaluate")
    h = h0
    total = 0.0
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        loss, cache = forward(params, ids[None, s:e], ids[None, s + 1:e + 1], h)
        total += loss * (e - s)
        h = cache.hs[-1]
    return total, n, h


def generate(params: Mapping[str, Any], h: Any, x: Any, n: int, *, rng: np.random.Generator,
             temperature: float = 1.0, top_k: int = 0, greedy: bool = False) -> tuple[np.ndarray, Any]:
    """Generate n characters for each of B streams.

    h: (B, H) state before reading x; x: (B,) ids of the last prompt character, or None to start
    from h alone (the first character is then drawn from softmax(V h + c)). Each step draws the
    next id from softmax(o / temperature), restricted to the top_k most likely ids when top_k > 0,
    or takes the argmax when greedy. The draw is an inverse-CDF lookup of one uniform number per
    stream, so the same rng seed always gives the same text. Returns (ids (B, n), final h).
    For stacked models h is the (L, S, B, H) state (`charnn.stack.init_state`).
    """
    if "W" not in params:
        return stack.generate(params, h, x, n, rng=rng, temperature=temperature, top_k=top_k, greedy=greedy)
    W, V, c = params["W"], params["V"], params["c"]
    xp = xp_of(W)
    B = h.shape[0]
    out = np.empty((B, n), dtype=np.int64)
    for i in range(n):
        if x is None:
            logits = h @ V.T + c
        else:
            h, logits = step(params, h, x)
        logits = np.asarray(logits, dtype=np.float64) if xp is np else xp.asnumpy(logits).astype(np.float64)
        if greedy:
            nxt = logits.argmax(axis=1)
        else:
            z = logits / temperature
            if 0 < top_k < z.shape[1]:
                kth = np.partition(z, -top_k, axis=1)[:, -top_k][:, None]
                z = np.where(z >= kth, z, -np.inf)
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            cdf = np.cumsum(p, axis=1)
            u = rng.random(B) * cdf[:, -1]
            nxt = np.minimum((cdf < u[:, None]).sum(axis=1), z.shape[1] - 1)
        out[:, i] = nxt
        x = nxt if xp is np else xp.asarray(nxt)
    return out, h
