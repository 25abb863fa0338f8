"""A stack of recurrent layers (RNN, LSTM or GRU cells) with dropout and a softmax output layer.

Model, for layers l = 0..L−1 and one-hot characters x_t (row form, time-major, as in `charnn.model`):

    a^l_t   = U^l in^l_t + b^l                in^0_t = x_t,  in^l_t = m^{l−1}_t ⊙ h^{l−1}_t
    h^l_t   = cell(a^l_t, state^l_{t−1}; W^l)  (`charnn.cells`)
    o_t     = V (m^{L−1}_t ⊙ h^{L−1}_t) + c,    ŷ_t = softmax(o_t),   L = mean_t −log ŷ_t[y_t]

m^l are inverted-dropout masks, entries 0 with probability p and 1/(1−p) otherwise, drawn fresh
for every element of every step while training (between layers and before the output
projection; never on the recurrent path); with p = 0, at evaluation and when sampling, m = 1.
The recurrent path has its own regulariser, weight drop (DropConnect on W^l, `weight_drop_masks`):
the step uses W̃^l = M^l ⊙ W^l with one mask M^l per batch, and ∂L/∂W^l = M^l ⊙ ∂L/∂W̃^l.

Parameters (a flat name → array dict, so optimizers and checkpoints treat every model alike):

    L{l}.W   (G·H, H)     recurrent weights of layer l        G = gate blocks: RNN 1, GRU 3, LSTM 4
    L{l}.U   (G·H, D_l)   input weights (D_0 = vocab size, D_l = H above)
    L{l}.b   (G·H,)       bias of the input projection
    L{l}.bn  (H,)         GRU only: b_hn, the recurrent bias inside the reset gate
    V (vocab, H), c (vocab,)   output projection

The cell is read from the shapes: G = L0.W.shape[0] // L0.W.shape[1] (with `L0.bn` present
for GRU), so no string travels with the arrays. The vanilla one-layer RNN of `charnn.model`,
keys W, U, V, b, c, is the same layout with an empty layer prefix, and every function here also
accepts it (that is how dropout works for the seed's model).

State layout: one array of shape (L, S, B, H), S = 1 for RNN/GRU (h) and 2 for LSTM (h, c):
``state[l, 0]`` is h of layer l, ``state[l, 1]`` is c of an LSTM layer. For the vanilla dict
the state is model.py's plain (B, H) h.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from . import cells, parallel, workspace
from .backend import xp_of

CELLS = ("rnn", "lstm", "gru")


# --------------------------------------------------------------------------------------------
# Parameters and state
# --------------------------------------------------------------------------------------------

def prefixes(params: Mapping[str, Any]) -> list[str]:
    """Key prefix of every layer, bottom first: [''] for the vanilla dict, else ['L0.', 'L1.', ...]."""
    if "W" in params:
        return [""]
    out = []
    while f"L{len(out)}.W" in params:
        out.append(f"L{len(out)}.")
    if not out:
        raise KeyError("not a charnn parameter set: no 'W' or 'L0.W'")
    return out


def cell_of(params: Mapping[str, Any]) -> str:
    """'rnn', 'lstm' or 'gru', read from the recurrent weight's shape (G·H, H)."""
    pre = prefixes(params)[0]
    W = params[pre + "W"]
    G = W.shape[0] // W.shape[1]
    if G == 4:
        return "lstm"
    if G == 3 and pre + "bn" in params:
        return "gru"
    if G == 1:
        return "rnn"
    raise KeyError(f"cannot tell the cell from {pre}W of shape {W.shape}")


def describe(params: Mapping[str, Any]) -> tuple[str, int, int, int]:
    """(cell, layers, vocab_size, hidden_size) of a parameter set."""
    pres = prefixes(params)
    W = params[pres[0] + "W"]
    return cell_of(params), len(pres), params["V"].shape[0], W.shape[1]


def is_vanilla(params: Mapping[str, Any]) -> bool:
    """True for the seed's one-layer RNN dict (keys W, U, V, b, c)."""
    return "W" in params


def param_shapes(vocab_size: int, hidden_size: int, *, cell: str, layers: int) -> dict[str, tuple[int, ...]]:
    """Shape of every parameter of a stacked model, in initialisation (draw) order."""
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}: choose one of {', '.join(CELLS)}")
    G, H, Vs = cells.GATES[cell], hidden_size, vocab_size
    shapes: dict[str, tuple[int, ...]] = {}
    for l in range(layers):
        D = Vs if l == 0 else H
        shapes[f"L{l}.W"] = (G * H, H)
        shapes[f"L{l}.U"] = (G * H, D)
        shapes[f"L{l}.b"] = (G * H,)
        if cell == "gru":
            shapes[f"L{l}.bn"] = (H,)
    shapes["V"] = (Vs, H)
    shapes["c"] = (Vs,)
    return shapes


def init_params(vocab_size: int, hidden_size: int, *, seed: int, dtype: Any = np.float32,
                cell: str = "lstm", layers: int = 1) -> dict[str, np.ndarray]:
    """Initial parameters: matrices ~ Uniform(−1/√fan_in, 1/√fan_in) (PyTorch's rule), biases 0.

    fan_in is H for W, V and the input weights of layers above the first. The first layer's U
    reads one-hot characters: U x_t is one column of U, a character embedding with a fan-in of 1,
    so its bound is 1 (PyTorch's rule for the true fan-in; nn.Embedding starts at N(0, 1) for the
    same reason). With the dense-input bound 1/√H instead (±0.044 at H=512) the characters are
    nearly indistinguishable to the gates and a 2-layer LSTM sits at the unigram loss (≈3.3
    nats/char) for a hundred steps and more; with bound 1 it leaves it within a few dozen
    (measured at H=256, B=32, Adam 3e-3: loss 3.22 vs 2.40 after 60 steps).

    The LSTM forget-gate bias starts at 1: with f ≈ σ(1) ≈ 0.73 the cell state is kept across
    steps from the start, so gradients reach back many steps before the model has learnt to keep
    it (Gers et al. 2000; Jozefowicz et al. 2015).
    Matrices are drawn in `param_shapes` order from one `default_rng(seed)`.
    """
    if vocab_size < 1 or hidden_size < 1 or layers < 1:
        raise ValueError("vocab_size, hidden_size and layers must be >= 1")
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(hidden_size)
    H = hidden_size
    params = {}
    for name, shape in param_shapes(vocab_size, hidden_size, cell=cell, layers=layers).items():
        if len(shape) == 1:
            p = np.zeros(shape, dtype=dtype)
            if cell == "lstm" and name.endswith(".b"):
                p[H:2 * H] = 1.0                     # forget gate (order i, f, o, g)
        else:
            bound = 1.0 if name == "L0.U" else k      # one-hot input: fan-in 1
            p = rng.uniform(-bound, bound, size=shape).astype(dtype)
        params[name] = p
    return params


def init_state(params: Mapping[str, Any], batch_size: int) -> Any:
    """The zero state: (L, S, B, H), or (B, H) for the vanilla dict."""
    cell, L, _, H = describe(params)
    xp = xp_of(params["V"])
    if is_vanilla(params):
        return xp.zeros((batch_size, H), dtype=params["V"].dtype)
    return xp.zeros((L, cells.STATE_PARTS[cell], batch_size, H), dtype=params["V"].dtype)


def _internal_state(params: Mapping[str, Any], state: Any, B: int) -> Any:
    """(L, S, B, H) view of a user state (None = zeros; a vanilla (B, H) gets two leading axes)."""
    if state is None:
        state = init_state(params, B)
    xp = xp_of(params["V"])
    state = xp.asarray(state, dtype=params["V"].dtype)
    if is_vanilla(params):
        return state.reshape((1, 1) + state.shape)
    return state


def _external_state(params: Mapping[str, Any], state: Any) -> Any:
    return state[0, 0] if is_vanilla(params) else state


# --------------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------------

def dropout_masks(rng: np.random.Generator, p: float, layers: int, T: int, B: int, H: int,
                  dtype: Any = np.float32, *, locked: bool = False) -> list[np.ndarray]:
    """Inverted-dropout masks, one (T, B, H) per layer output: 0 w.p. p, else 1/(1−p).

    From u ~ Uniform[0, 1): m = ceil(u − p) / (1 − p), i.e. kept where u > p — three in-place
    passes over one buffer (a third of the time of a comparison and a select).

    locked=True draws one (1, B, H) mask per layer and shares it across the T steps (a read-only
    broadcast view): "variational" dropout (Gal & Ghahramani, 2016), which drops the same units
    of a sequence at every step instead of fresh ones per step.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    dtype = np.dtype(dtype)
    if p == 0.0:
        return [np.ones((T, B, H), dtype=dtype) for _ in range(layers)]
    out = []
    for _ in range(layers):
        m = _inverted_mask(rng, p, (1 if locked else T, B, H), dtype)
        out.append(np.broadcast_to(m, (T, B, H)) if locked else m)
    return out


def _inverted_mask(rng: np.random.Generator, p: float, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """One array of `shape`: 0 w.p. p, else 1/(1−p), drawn as ceil(u − p) / (1 − p) from u ~ U[0, 1)."""
    dtype = np.dtype(dtype)
    m = rng.random(shape, dtype=np.float32 if dtype == np.float32 else np.float64)
    m -= p
    np.ceil(m, out=m)                            # 1 where u > p, ±0 elsewhere
    m *= 1.0 / (1.0 - p)
    return m.astype(dtype, copy=False)


def weight_drop_masks(rng: np.random.Generator, p: float, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """DropConnect masks for every layer's recurrent weights: name -> (G·H, H) array, 0 w.p. p, else 1/(1−p).

    Weight drop (Wan et al., 2013; the AWD-LSTM's regulariser of the recurrent path) zeroes single
    weights of W^l rather than units, once per batch: every step of every stream in the batch then
    runs on the same thinned recurrence W̃^l = M^l ⊙ W^l, so the hidden-to-hidden path is regularised
    without breaking the memory a unit carries from step to step. E[W̃^l] = W^l, so evaluation and
    sampling use W^l unchanged. Drawn in float32 or float64 as the weights are.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"weight drop must be in [0, 1), got {p}")
    return {pre + "W": _inverted_mask(rng, p, params[pre + "W"].shape, params[pre + "W"].dtype)
            for pre in prefixes(params)}


def drop_weights(params: Mapping[str, Any], weight_masks: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """θ with each masked W^l replaced by W̃^l = M^l ⊙ W^l (a new dict; the other arrays are shared)."""
    if not weight_masks:
        return params
    return {**params, **{k: params[k] * m for k, m in weight_masks.items()}}


def _mask_grads(grads: dict[str, Any], weight_masks: Mapping[str, Any] | None) -> None:
    """The chain rule through W̃ = M ⊙ W, in place: ∂L/∂W = M ⊙ ∂L/∂W̃."""
    for k, m in (weight_masks or {}).items():
        grads[k] *= m


# --------------------------------------------------------------------------------------------
# Forward and backward
# --------------------------------------------------------------------------------------------

@dataclass
class Cache:
    """What the backward pass needs from the forward pass."""

    x: Any                                        # (T, B) input ids
    y: Any                                        # (T·B,) targets, time-major
    ins: list = field(default_factory=list)       # input of each layer l >= 1: (T, B, H)
    caches: list = field(default_factory=list)    # each layer's cell cache
    masks: Sequence[Any] | None = None            # dropout masks (T, B, H) per layer, or None
    top: Any = None                               # (T, B, H): input of the output projection
    probs: Any = None                             # (T·B, V) softmax outputs
    state: Any = None                             # final state (L, S, B, H)


def _layer_forward(cell: str, p: Mapping[str, Any], pre: str, a: Any, s0: Any) -> tuple[Any, Any, Any]:
    """Run one layer's recurrence on the input projection a; returns (outputs (T,B,H), cache, final state (S,B,H))."""
    xp = xp_of(a)
    W = p[pre + "W"]
    if cell == "lstm":
        hs, cache = cells.lstm_forward(a, W, s0[0], s0[1], ws=pre)
        sT = xp.stack([hs[-1], cache.cs[-1]])
    elif cell == "gru":
        hs, cache = cells.gru_forward(a, W, p[pre + "bn"], s0[0], ws=pre)
        sT = hs[-1][None]
    else:
        hs, cache = cells.rnn_forward(a, W, s0[0], ws=pre)
        sT = hs[-1][None]
    return hs[1:], cache, sT


def _layer_backward(cell: str, p: Mapping[str, Any], pre: str, dh: Any, cache: Any,
                    grads: dict[str, Any]) -> tuple[Any, Any]:
    """dL/da (T,B,G·H) and dL/dstate0 (S,B,H) of one layer; stores dW (and dbn) in grads."""
    xp = xp_of(dh)
    W = p[pre + "W"]
    if cell == "lstm":
        da, dW, dh0, dc0 = cells.lstm_backward(dh, W, cache, ws=pre)
        ds0 = xp.stack([dh0, dc0])
    elif cell == "gru":
        da, dW, dbn, dh0 = cells.gru_backward(dh, W, cache, ws=pre)
        grads[pre + "bn"] = dbn
        ds0 = dh0[None]
    else:
        da, dW, dh0 = cells.rnn_backward(dh, W, cache, ws=pre)
        ds0 = dh0[None]
    grads[pre + "W"] = dW
    return da, ds0


def _gather_rows(xp: Any, table: Any, x: Any, name: str) -> Any:
    """table[x] for ids x (T, B): rows of table, into a kept work buffer when one is active."""
    if xp is not np or not workspace.active():
        return table[x]
    if x.size and (int(x.min()) < 0 or int(x.max()) >= table.shape[0]):
        raise IndexError(f"character id out of range for a vocabulary of {table.shape[0]}")
    out = workspace.empty(xp, name, (*x.shape, table.shape[1]), table.dtype)
    return np.take(table, x, axis=0, out=out, mode="clip")   # ids checked above; "raise" would buffer


def run_layers(params: Mapping[str, Any], x: Any, state0: Any, masks: Sequence[Any] | None = None,
               keep: bool = True) -> tuple[Any, Any, list, list]:
    """All layers over time-major ids x (T, B) from internal state0 (L, S, B, H).

    Returns (top (T, B, H): the (masked) input of the output layer, final state, layer inputs,
    layer caches); with keep=False the caches are not kept (forward-only evaluation).
    """
    xp = xp_of(params["V"])
    cell = cell_of(params)
    T, B = x.shape
    ins, caches, finals = [], [], []
    inp = None
    for l, pre in enumerate(prefixes(params)):
        U, b = params[pre + "U"], params[pre + "b"]
        if l == 0:
            # One-hot input: U x_t is column x_t of U, i.e. a row gather of Uᵀ (no one-hot matrix).
            a = _gather_rows(xp, xp.ascontiguousarray(U.T), x, pre + "a")
        else:
            a = workspace.empty(xp, pre + "a", (T, B, U.shape[0]), U.dtype)
            xp.matmul(inp.reshape(T * B, -1), U.T, out=a.reshape(T * B, -1))
        a += b
        out, cache, sT = _layer_forward(cell, params, pre, a, state0[l])
        finals.append(sT)
        if masks is not None:
            out = xp.multiply(out, masks[l], out=workspace.empty(xp, pre + "dropped", out.shape, out.dtype))
        if keep:
            caches.append(cache)
            if l > 0:
                ins.append(inp)
        inp = out
    return inp, xp.stack(finals), ins, caches


def _log_softmax_rows(xp: Any, logits: Any, out: Any = None) -> tuple[Any, Any]:
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
    s0 = _internal_state(params, h0, B)
    top, sT, ins, caches = run_layers(params, x, s0, masks)
    H = top.shape[-1]
    V = params["V"]
    logits = xp.matmul(top.reshape(T * B, H), V.T, out=workspace.empty(xp, "logits", (T * B, V.shape[0]), V.dtype))
    logits += params["c"]
    probs, logz = _log_softmax_rows(xp, logits, out=workspace.empty(xp, "probs", logits.shape, logits.dtype))
    y = xp.ascontiguousarray(targets.T).reshape(-1)
    loss = float(xp.mean(logz - logits[xp.arange(T * B), y]))
    return loss, Cache(x=x, y=y, ins=ins, caches=caches, masks=masks, top=top, probs=probs, state=sT)


def backward(params: Mapping[str, Any], cache: Cache) -> tuple[dict[str, Any], Any]:
    """Backward pass through the output layer, every layer and time: (grads keyed like params, dL/dh0).

    Output layer: do = (ŷ − 1[y]) / N, dV = Σ do top_tᵀ, dc = Σ do, dtop = Vᵀ do.
    Through dropout: dh = m ⊙ dtop. Per layer, from the cell's da: db = Σ da,
    dU = Σ da inᵀ (a row scatter by character id for layer 0), d in = Uᵀ da for the layer below.
    """
    xp = xp_of(params["V"])
    V = params["V"]
    cell = cell_of(params)
    x, y, probs = cache.x, cache.y, cache.probs
    T, B = x.shape
    N = T * B
    do = probs
    do[xp.arange(N), y] -= 1
    do /= N
    top = cache.top.reshape(N, -1)
    grads: dict[str, Any] = {"V": do.T @ top, "c": do.sum(axis=0)}
    dh = xp.matmul(do, V, out=workspace.empty(xp, "dtop", (N, V.shape[1]), do.dtype)).reshape(T, B, -1)
    pres = prefixes(params)
    ds0 = [None] * len(pres)
    for l in range(len(pres) - 1, -1, -1):
        pre = pres[l]
        if cache.masks is not None:
            dh *= cache.masks[l]
        da, ds0[l] = _layer_backward(cell, params, pre, dh, cache.caches[l], grads)
        da2 = da.reshape(N, -1)
        grads[pre + "b"] = da2.sum(axis=0)
        U = params[pre + "U"]
        if l == 0:
            # dU = Σ_t da_t x_tᵀ with one-hot x: one (G·H × N)·(N × V) GEMM against the one-hot matrix,
            # several times faster than a scatter-add of N rows of width G·H.
            onehot = workspace.zeros(xp, "onehot", (N, U.shape[1]), da.dtype)
            onehot[xp.arange(N), x.reshape(-1)] = 1
            grads[pre + "U"] = da2.T @ onehot
        else:
            grads[pre + "U"] = da2.T @ cache.ins[l - 1].reshape(N, -1)
            dh = xp.matmul(da2, U, out=workspace.empty(xp, pre + "dx", (N, U.shape[1]), da2.dtype)).reshape(T, B, -1)
    dstate = _external_state(params, xp.stack(ds0))
    return {k: grads[k] for k in params}, dstate


def _loss_and_grads_one(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any,
                        masks: Sequence[Any] | None) -> tuple[float, dict[str, Any], Any]:
    # Forward and backward in one block, returning fresh arrays only: safe to reuse the buffers.
    with workspace.reusing():
        loss, cache = forward(params, inputs, targets, h0, masks=masks)
        grads, _ = backward(params, cache)
        return loss, grads, _external_state(params, cache.state).copy()


def loss_and_grads(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any = None, *,
                   masks: Sequence[Any] | None = None,
                   weight_masks: Mapping[str, Any] | None = None) -> tuple[float, dict[str, Any], Any]:
    """(loss, grads, final state) for one (B, T) batch; the final state has h0's layout.

    With P > 1 BLAS threads (NumPy only, B >= 16) the batch runs as P shards in parallel threads,
    each with single-threaded BLAS (`charnn.parallel`): the loss is a mean over B·T, so

        L = Σ_s (B_s / B) L_s,    ∇L = Σ_s (B_s / B) ∇L_s,    final state = the shards' states stacked.

    weight_masks (`weight_drop_masks`): the batch runs on W̃ = M ⊙ W and the gradients are those of
    the unmasked W, M ⊙ ∂L/∂W̃.
    """
    if weight_masks:
        loss, grads, state = loss_and_grads(drop_weights(params, weight_masks), inputs, targets, h0, masks=masks)
        _mask_grads(grads, weight_masks)
        return loss, grads, state
    xp = xp_of(params["V"])
    inputs, targets = xp.asarray(inputs), xp.asarray(targets)
    B = inputs.shape[0]
    P = parallel.num_shards(xp, B)
    if P == 1:
        return _loss_and_grads_one(params, inputs, targets, h0, masks)
    s0 = _internal_state(params, h0, B)                    # (L, S, B, H): shards cut axis 2
    vanilla = is_vanilla(params)

    rows = parallel.cuts(B, P)

    def shard(i: int) -> tuple[float, dict[str, Any], Any]:
        a, b = rows[i]
        st = s0[:, :, a:b]
        return _loss_and_grads_one(params, inputs[a:b], targets[a:b], st[0, 0] if vanilla else st,
                                   None if masks is None else [m[:, a:b] for m in masks])

    parts = parallel.run_shards(shard, P)
    if parts is None:                                       # another thread is sharding right now
        return _loss_and_grads_one(params, inputs, targets, h0, masks)
    weights = [(b - a) / B for a, b in rows]
    loss = sum(w * part[0] for w, part in zip(weights, parts))
    grads = {}
    for k in parts[0][1]:
        g = parts[0][1][k]
        g *= weights[0]
        for w, part in zip(weights[1:], parts[1:]):
            gp = part[1][k]
            gp *= w                                         # in place: no temporary per parameter
            g += gp
        grads[k] = g
    state = xp.concatenate([part[2] for part in parts], axis=0 if vanilla else 2)
    return loss, grads, state


def loss_grads_dh0(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any = None, *,
                   masks: Sequence[Any] | None = None,
                   weight_masks: Mapping[str, Any] | None = None) -> tuple[float, dict[str, Any], Any]:
    """Like loss_and_grads but returns dL/dh0 (same layout as the state) instead of the final state."""
    dropped = drop_weights(params, weight_masks)
    loss, cache = forward(dropped, inputs, targets, h0, masks=masks)
    grads, dh0 = backward(dropped, cache)
    _mask_grads(grads, weight_masks)
    return loss, grads, dh0


def dims(params: Mapping[str, Any]) -> tuple[int, int]:
    """(vocab_size, hidden_size)."""
    _, _, Vs, H = describe(params)
    return Vs, H


# --------------------------------------------------------------------------------------------
# Evaluation and generation (no dropout)
# --------------------------------------------------------------------------------------------

def _nll(params: Mapping[str, Any], x: Any, y: Any, s0: Any) -> tuple[Any, Any]:
    """Per-position −log ŷ[y] (T, B) for time-major ids and the final internal state."""
    xp = xp_of(params["V"])
    T, B = x.shape
    top, sT, _, _ = run_layers(params, x, s0, None, keep=False)
    logits = top.reshape(T * B, -1) @ params["V"].T
    logits += params["c"]
    _, logz = _log_softmax_rows(xp, logits)
    nll = logz - logits[xp.arange(T * B), y.reshape(-1)]
    return nll.reshape(T, B), sT


def evaluate(params: Mapping[str, Any], ids: Any, *, h0: Any = None, chunk: int = 1000,
             streams: int = 1, burn_in: int = 500) -> tuple[float, int, Any]:
    """Total −log ŷ[y] over a whole id sequence read in order with the state carried; (nats, n, state).

    streams = 1 is the exact loss of reading the text in one pass at batch 1. streams = S > 1 is a
    faster approximation for progress curves: the n predictions are cut into S contiguous
    segments read in parallel, each stream starting `burn_in` characters before its segment (from a
    zero state) so that it enters the segment with a warmed-up state; only the segment's own
    predictions count, so every character is counted exactly once. The returned state is None then.
    """
    xp = xp_of(params["V"])
    ids = xp.asarray(ids)
    n = len(ids) - 1
    if n < 1:
        raise ValueError("need at least 2 characters to evaluate")
    if streams <= 1:
        s = _internal_state(params, h0, 1)
        total = 0.0
        for i in range(0, n, chunk):
            e = min(i + chunk, n)
            nll, s = _nll(params, ids[None, i:e].T, ids[None, i + 1:e + 1].T, s)
            total += float(nll.sum())
        return total, n, _external_state(params, s)
    X, Y, Wt = stream_layout(ids, streams, burn_in, dtype=params["V"].dtype)
    Lmax = X.shape[0]
    state = _internal_state(params, None, streams)
    total = 0.0
    chunk = max(16, min(chunk, 4096 // streams))   # bounds the (chunk, streams, G·H) buffers (~30 MB at H=512)
    for i in range(0, Lmax, chunk):
        e = min(i + chunk, Lmax)
        nll, state = _nll(params, X[i:e], Y[i:e], state)
        total += float((nll * Wt[i:e]).sum())
    return total, n, None


def _step(params: Mapping[str, Any], s: Any, x: Any) -> tuple[Any, Any]:
    top, sT, _, _ = run_layers(params, x[None], s, None, keep=False)
    return sT, top[0] @ params["V"].T + params["c"]


def stream_layout(ids: Any, streams: int, burn_in: int, *, dtype: Any = np.float32) -> tuple[Any, Any, Any]:
    """Time-major inputs X, targets Y and 0/1 weights Wt, each (Lmax, streams), for a streamed evaluation.

    The n = len(ids) − 1 predictions are cut into `streams` contiguous segments; stream k reads from
    `burn_in` characters before its segment (or the start) to the segment's end, and its weight is 1
    exactly on its own segment's predictions, so Σ Wt = n. Padding has weight 0.
    """
    xp = xp_of(ids)
    n = len(ids) - 1
    seg = -(-n // streams)
    starts = [min(k * seg, n) for k in range(streams)]
    reads = [max(0, s - burn_in) for s in starts]
    ends = [min(s + seg, n) for s in starts]
    Lmax = max(e - r for r, e in zip(reads, ends))
    X = xp.zeros((Lmax, streams), dtype=ids.dtype)
    Y = xp.zeros((Lmax, streams), dtype=ids.dtype)
    Wt = xp.zeros((Lmax, streams), dtype=dtype)
    for k, (r, s, e) in enumerate(zip(reads, starts, ends)):
        X[: e - r, k] = ids[r:e]
        Y[: e - r, k] = ids[r + 1:e + 1]
        Wt[s - r: e - r, k] = 1
    return X, Y, Wt


def step(params: Mapping[str, Any], state: Any, x: Any) -> tuple[Any, Any]:
    """One time step for generation: (new state, logits (B, V)) after reading ids x (B,)."""
    x = xp_of(params["V"]).asarray(x)
    sT, logits = _step(params, _internal_state(params, state, x.shape[0]), x)
    return _external_state(params, sT), logits


def generate(params: Mapping[str, Any], state: Any, x: Any, n: int, *, rng: np.random.Generator,
             temperature: float = 1.0, top_k: int = 0, greedy: bool = False) -> tuple[np.ndarray, Any]:
    """Generate n characters for each of B streams from `state` (B from its layout); see model.generate.

    state: None (zeros, B = 1) or a state as returned by `forward`/`step`. x: (B,) ids of the last
    prompt character, or None to draw the first character from the state alone. Each draw is an
    inverse-CDF lookup of one uniform number per stream (same rng seed, same text).
    """
    xp = xp_of(params["V"])
    s = _internal_state(params, state, 1)
    B = s.shape[2]
    out = np.empty((B, n), dtype=np.int64)
    for i in range(n):
        if x is None:
            logits = s[-1, 0] @ params["V"].T + params["c"]
        else:
            s, logits = _step(params, s, xp.asarray(x))
        logits = np.asarray(logits, dtype=np.float64) if xp is np else xp.asnumpy(logits).astype(np.float64)
        nxt = draw(logits, rng, temperature=temperature, top_k=top_k, greedy=greedy)
        out[:, i] = nxt
        x = nxt
    return out, _external_state(params, s)


def draw(logits: np.ndarray, rng: np.random.Generator, *, temperature: float = 1.0, top_k: int = 0,
         greedy: bool = False) -> np.ndarray:
    """Next ids (B,) from logits (B, V): argmax, or an inverse-CDF draw from softmax(logits / T) (top-k)."""
    if greedy:
        return logits.argmax(axis=1)
    return draw_with(logits, rng.random(logits.shape[0]), temperature=temperature, top_k=top_k)


def draw_with(logits: np.ndarray, u: np.ndarray | None, *, temperature: float = 1.0, top_k: int = 0,
              greedy: bool = False) -> np.ndarray:
    """`draw` with the uniforms u (B,) in [0, 1) given: the id whose CDF interval holds u."""
    if greedy:
        return logits.argmax(axis=1)
    z = logits / temperature
    if 0 < top_k < z.shape[1]:
        kth = np.partition(z, -top_k, axis=1)[:, -top_k][:, None]
        z = np.where(z >= kth, z, -np.inf)
    z -= z.max(axis=1, keepdims=True)
    cdf = np.cumsum(np.exp(z), axis=1)
    thr = u * cdf[:, -1]
    return np.minimum((cdf < thr[:, None]).sum(axis=1), z.shape[1] - 1)
