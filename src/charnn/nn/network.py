"""The network over layers: forward pass and hand-derived backward pass through time, any cell.

For layers l = 0..L−1 and one-hot characters x_t (row form, time-major):

    a^l_t   = U^l in^l_t + b^l                in^0_t = x_t,  in^l_t = m^{l−1}_t ⊙ h^{l−1}_t
    h^l_t   = cell(a^l_t, state^l_{t−1}; W^l)  (`charnn.nn.cells`)
    o_t     = V (m^{L−1}_t ⊙ h^{L−1}_t) + c,    ŷ_t = softmax(o_t),   L = mean_t −log ŷ_t[y_t]

m^l are dropout masks (`charnn.nn.masks`; m = 1 without dropout). The backward pass, from the top:

    do_t = (ŷ_t − 1[y_t]) / N                 softmax + cross-entropy, N = B·T
    dV = Σ_t do_t top_tᵀ,  dc = Σ_t do_t,    dh^{L−1}_t = m ⊙ Vᵀ do_t
    per layer, from the cell's da^l (`charnn.nn.cells`):
        db^l = Σ_t da^l_t,  dU^l = Σ_t da^l_t in^l_tᵀ,  dh^{l−1}_t = m ⊙ U^lᵀ da^l_t

With an input embedding E (V × D, torch-rnn's wordvec_size) the first layer reads E[x_t]
instead of the one-hot x_t. Then U⁰ E[x_t] is column x_t of U⁰ Eᵀ, and from the gradient
dUx = ∂L/∂(U⁰ Eᵀ) (G·H × V) of the one-hot path:  dU⁰ = dUx E,  dE = dUxᵀ U⁰.

Every cell and layer count, and the seed's W, U, V, b, c dict (one RNN layer without a prefix),
run through this one path; `charnn.nn.fast_rnn` is a faster implementation of the same
function for the seed's model, chosen in `charnn.model.loss_and_grads`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from . import cells, workspace
from ..backend import xp_of
from .masks import drop_weights
from .params import cell_of, external_state, internal_state, prefixes


@dataclass
class Cache:
    """What the backward pass needs from the forward pass."""

    x: Any                                        # (T, B) input ids
    y: Any                                        # (T·B,) targets, time-major
    ins: list = field(default_factory=list)       # input of each layer l >= 1: (T, B, H)
    caches: list = field(default_factory=list)    # each layer's cell cache
    masks: Sequence[Any] | None = None            # dropout masks (T, B, H) per layer, or None
    top: Any = None                               # (T, B, H): input of the output projection
    probs: Any = None                             # (T·B, K) softmax outputs
    state: Any = None                             # final state (L, S, B, H)
    h0: Any = None                                # the initial state as given (its layout is the answer's)


def _gather_rows(xp: Any, table: Any, x: Any, name: str) -> Any:
    """table[x] for ids x (T, B): rows of table, into a kept work buffer when one is active."""
    if xp is not np or not workspace.active():
        return table[x]
    if x.size and (int(x.min()) < 0 or int(x.max()) >= table.shape[0]):
        raise IndexError(f"character id out of range for a vocabulary of {table.shape[0]}")
    out = workspace.empty(xp, name, (*x.shape, table.shape[1]), table.dtype)
    return np.take(table, x, axis=0, out=out, mode="clip")   # ids checked above; "raise" would buffer


def input_table(params: Mapping[str, Any]) -> Any:
    """Row v: the first layer's input projection of character v without its bias, (K, G·H):
    Uᵀ for one-hot input, E Uᵀ with an input embedding E (V, D)."""
    xp = xp_of(params["V"])
    U = params[prefixes(params)[0] + "U"]
    if "E" in params:
        return params["E"] @ U.T
    return xp.ascontiguousarray(U.T)


def run_layers(params: Mapping[str, Any], x: Any, state0: Any, masks: Sequence[Any] | None = None,
               keep: bool = True) -> tuple[Any, Any, list, list]:
    """All layers over time-major ids x (T, B) from internal state0 (L, S, B, H).

    Returns (top (T, B, H): the (masked) input of the output layer, final state, layer inputs,
    layer caches); with keep=False the caches are not kept (forward-only evaluation).
    """
    xp = xp_of(params["V"])
    cell = cells.CELLS[cell_of(params)]
    T, B = x.shape
    ins, caches, finals = [], [], []
    inp = None
    for l, pre in enumerate(prefixes(params)):
        U, b = params[pre + "U"], params[pre + "b"]
        if l == 0:
            # One-hot input: U x_t is column x_t of U, i.e. a row gather of Uᵀ (no one-hot matrix).
            # With an embedding E the first layer reads E[x]: U E[x] = (E Uᵀ)[x], the same gather.
            a = _gather_rows(xp, input_table(params), x, pre + "a")
        else:
            a = workspace.empty(xp, pre + "a", (T, B, U.shape[0]), U.dtype)
            xp.matmul(inp.reshape(T * B, -1), U.T, out=a.reshape(T * B, -1))
        a += b
        out, cache, sT = cell.forward(a, params[pre + "W"], params, pre, state0[l])
        finals.append(sT)
        if masks is not None:
            out = xp.multiply(out, masks[l], out=workspace.empty(xp, pre + "dropped", out.shape, out.dtype))
        if keep:
            caches.append(cache)
            if l > 0:
                ins.append(inp)
        inp = out
    return inp, xp.stack(finals), ins, caches


def log_softmax_rows(xp: Any, logits: Any, out: Any = None) -> tuple[Any, Any]:
    """Row-wise stable softmax of logits (in place: logits ← logits − max); returns (probs, log Σ exp)."""
    logits -= logits.max(axis=1, keepdims=True)
    probs = xp.exp(logits, out=out)
    sums = probs.sum(axis=1)
    probs /= sums[:, None]
    return probs, xp.log(sums)


def forward(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any = None, *,
            masks: Sequence[Any] | None = None, weight_masks: Mapping[str, Any] | None = None) -> tuple[float, Cache]:
    """Mean cross-entropy (nats/char) over a (B, T) batch and the cache for `backward`.

    h0: initial state (see the module doc; None = zeros). masks: per-layer dropout masks
    (T, B, H) from `dropout_masks`, or None for no dropout. weight_masks: weight-drop masks from
    `weight_drop_masks` (the loss only: `loss_and_grads` also carries them through the gradients).
    """
    params = drop_weights(params, weight_masks)
    xp = xp_of(params["V"])
    inputs, targets = xp.asarray(inputs), xp.asarray(targets)
    B, T = inputs.shape
    x = inputs.T
    s0 = internal_state(params, h0, B)
    top, sT, ins, caches = run_layers(params, x, s0, masks)
    H = top.shape[-1]
    V = params["V"]
    logits = xp.matmul(top.reshape(T * B, H), V.T, out=workspace.empty(xp, "logits", (T * B, V.shape[0]), V.dtype))
    logits += params["c"]
    probs, logz = log_softmax_rows(xp, logits, out=workspace.empty(xp, "probs", logits.shape, logits.dtype))
    y = xp.ascontiguousarray(targets.T).reshape(-1)
    loss = float(xp.mean(logz - logits[xp.arange(T * B), y]))
    return loss, Cache(x=x, y=y, ins=ins, caches=caches, masks=masks, top=top, probs=probs, state=sT, h0=h0)


def backward(params: Mapping[str, Any], cache: Cache, dlogits: Any = None) -> tuple[dict[str, Any], Any]:
    """Backward pass through the output layer, every layer and time: (grads keyed like params, dL/dh0).

    Output layer: do = (ŷ − 1[y]) / N, dV = Σ do top_tᵀ, dc = Σ do, dtop = Vᵀ do.
    Through dropout: dh = m ⊙ dtop. Per layer, from the cell's da: db = Σ da,
    dU = Σ da inᵀ (a GEMM against the one-hot matrix for layer 0), d in = Uᵀ da for the layer below.

    dlogits: another ∂ℓ/∂o (T·B, K), time-major, to propagate instead of the mean cross-entropy's,
    e.g. nonzero at one step only for the gradient of that step's loss (`charnn.eval.gradflow`).
    """
    xp = xp_of(params["V"])
    V = params["V"]
    cell = cells.CELLS[cell_of(params)]
    x, y, probs = cache.x, cache.y, cache.probs
    T, B = x.shape
    N = T * B
    if dlogits is None:
        do = probs
        do[xp.arange(N), y] -= 1
        do /= N
    else:
        do = xp.asarray(dlogits, dtype=probs.dtype).reshape(N, -1)
    top = cache.top.reshape(N, -1)
    grads: dict[str, Any] = {"V": do.T @ top, "c": do.sum(axis=0)}
    dh = xp.matmul(do, V, out=workspace.empty(xp, "dtop", (N, V.shape[1]), do.dtype)).reshape(T, B, -1)
    pres = prefixes(params)
    ds0 = [None] * len(pres)
    for l in range(len(pres) - 1, -1, -1):
        pre = pres[l]
        if cache.masks is not None:
            dh *= cache.masks[l]
        da, ds0[l] = cell.backward(dh, params[pre + "W"], cache.caches[l], params, pre, grads)
        da2 = da.reshape(N, -1)
        grads[pre + "b"] = da2.sum(axis=0)
        U = params[pre + "U"]
        if l == 0:
            # dU = Σ_t da_t x_tᵀ with one-hot x: one (G·H × N)·(N × V) GEMM against the one-hot matrix,
            # several times faster than a scatter-add of N rows of width G·H.
            onehot = workspace.zeros(xp, "onehot", (N, V.shape[0]), da.dtype)
            onehot[xp.arange(N), x.reshape(-1)] = 1
            dUx = da2.T @ onehot                      # ∂L/∂(the V columns U x reads)
            if "E" in params:                         # through U E[x]: dU = dUx E, dE = dUxᵀ U
                grads[pre + "U"] = dUx @ params["E"]
                grads["E"] = dUx.T @ U
            else:
                grads[pre + "U"] = dUx
        else:
            grads[pre + "U"] = da2.T @ cache.ins[l - 1].reshape(N, -1)
            dh = xp.matmul(da2, U, out=workspace.empty(xp, pre + "dx", (N, U.shape[1]), da2.dtype)).reshape(T, B, -1)
    dstate = external_state(params, xp.stack(ds0), like=cache.h0)
    return {k: grads[k] for k in params}, dstate


def loss_and_grads_one(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any,
                        masks: Sequence[Any] | None) -> tuple[float, dict[str, Any], Any]:
    # Forward and backward in one block, returning fresh arrays only: safe to reuse the buffers.
    with workspace.reusing():
        loss, cache = forward(params, inputs, targets, h0, masks=masks)
        grads, _ = backward(params, cache)
        return loss, grads, external_state(params, cache.state, like=h0).copy()
