"""Recurrent cells — vanilla tanh RNN, LSTM, GRU — each a hand-written forward/backward pair over T steps.

Every cell works in the engine's batched row form, time-major: a state is a row block (B, H),
the weights act from the right (W h becomes ``h @ W.T``), and a sequence is (T, B, ·).

The split of work between a cell and the layer stack (`charnn.nn.network`) is the same for every
cell, and `Cell` (at the end of this file) is that contract; `CELLS` holds one per kind:

* The stack computes the *input projection* of all T steps at once, ``a_t = U x_t + b`` — one GEMM
  (or one row gather for one-hot characters) — and hands the cell the buffer ``a`` of shape
  (T, B, G·H), G = number of gate blocks (RNN 1, GRU 3, LSTM 4).
* The cell runs the recurrence: per step exactly one GEMM W h_{t-1} with W of shape (G·H, H),
  computed feature-major as ``W @ h.T`` (faster than ``h @ W.T`` at a shard's batch size) and
  added to the gates transposed, plus element-wise work done in place (``out=``) in
  preallocated buffers. The buffer ``a`` is overwritten with the activated gates and later, in
  the backward pass, with dL/da — the pre-activation gradients the stack needs for dU, db and
  the layer below.
* The backward pass takes dL/dh_t for t = 1..T from above (the output projection or the next
  layer; the buffer is consumed in place), runs back through time with one GEMM per step for
  the recurrent gradient dL/dh_{t-1} += Wᵀ da_t (again feature-major, ``Wᵀ @ da.T``), and forms
  dW = Σ_t da_tᵀ h_{t-1} as a single (G·H × TB)·(TB × H) GEMM after the loop.
* Work buffers are named (``ws`` prefix) so that `charnn.nn.workspace` can keep them from one
  training step to the next; for NumPy float arrays with T > 4 the LSTM's and GRU's element-wise
  steps run as compiled kernels (`charnn.nn.kernels`, chosen in `_compiled_steps`), the same
  arithmetic in fewer passes.

Gate order within the G·H rows of W, U and b (ours vs PyTorch):

* LSTM: ours (i, f, o, g); ``torch.nn.LSTM`` uses (i, f, g, o). Our sigmoid gates are contiguous
  so one tanh call covers all four blocks (σ(x) = ½ + ½ tanh(x/2)). Our b is PyTorch's
  b_ih + b_hh permuted the same way.
* GRU: ours (r, z, n), the same as ``torch.nn.GRU``. PyTorch applies the reset gate to the
  recurrent projection *including its bias*, n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), so
  b_hn cannot be merged into b: we keep it as the separate H-vector ``bn``; the r and z parts
  of our b are b_ir + b_hr and b_iz + b_hz, the n part is b_in.

Sigmoid derivative: σ'(a) = σ(1 − σ); tanh'(a) = 1 − tanh². All derivations are written up in
docs/cells.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from . import kernels, workspace
from ..backend import xp_of



# Work buffers, kept between training steps by `charnn.nn.workspace` when one is active.
_empty, _zeros = workspace.empty, workspace.zeros


def _sigmoid_(xp: Any, a: Any) -> None:
    """a ← σ(a) in place, via σ(x) = ½ + ½ tanh(x/2) (one transcendental pass, never overflows)."""
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5


def _recurrent_into(xp: Any, W: Any, h: Any, out: Any) -> Any:
    """out ← W h_{t-1} for a row block h (B, H), computed feature-major: out is (G·H, B), read as out.T.

    Why feature-major: for the small batches of a training shard OpenBLAS runs W·hᵀ with W as the
    long (G·H × H) operand about 30% faster than the row-form h·Wᵀ (measured 0.33 vs 0.45 ms for
    H=512, G=4, B=32 on one core), and the transposed add that folds it into the gates costs ~0.03
    ms. No copy of W is needed.
    """
    return xp.matmul(W, h.T, out=out)


def _compiled_steps(xp: Any, T: int, kernels_of: Callable[[], Any]) -> Any:
    """The compiled step kernels `kernels_of()` gives, or None for the plain NumPy/CuPy loop.

    The one place the choice is made: NumPy arrays only (the kernels are CPU code), and more than
    four steps, so that short reads (a step of generation, a tiny test) stay on the plain loop and
    never import numba.
    """
    return kernels_of() if xp is np and T > 4 else None


def _backward_operand(xp: Any, W: Any, T: int) -> Any:
    """Wᵀ (H, G·H) for the per-step back-propagation Wᵀ·daᵀ: a contiguous copy when T is long enough.

    Why: with Wᵀ contiguous, Wᵀ·daᵀ (the recurrent gradient, feature-major) runs about 20% faster
    than the row-form da·W at a shard's batch size (0.34 vs 0.43 ms, H=512, G=4, B=32, one core);
    the copy is one pass over W, so it pays from a few steps on.
    """
    return xp.ascontiguousarray(W.T) if T > 4 else W.T


# --------------------------------------------------------------------------------------------
# Vanilla RNN
# --------------------------------------------------------------------------------------------

@dataclass
class RNNCache:
    hs: Any   # (T+1, B, H): hs[0] = h_0, hs[t] = h_t


def rnn_forward(a: Any, W: Any, h0: Any, *, ws: str = "") -> tuple[Any, RNNCache]:
    """h_t = tanh(a_t + W h_{t-1}), a_t = U x_t + b precomputed; returns (hs (T+1,B,H), cache).

    a: (T, B, H) is consumed (left holding the pre-activations).
    """
    xp = xp_of(W)
    T, B, H = a.shape
    hs = _empty(xp, ws + "hs", (T + 1, B, H), a.dtype)
    hs[0] = h0
    rec = _empty(xp, ws + "rec", (H, B), a.dtype)
    for t in range(T):
        at = a[t]
        at += _recurrent_into(xp, W, hs[t], rec).T
        xp.tanh(at, out=hs[t + 1])
    return hs, RNNCache(hs)


def rnn_backward(dhs: Any, W: Any, cache: RNNCache, *, ws: str = "") -> tuple[Any, Any, Any]:
    """Back through time: (da (T,B,H), dW, dh0) from dhs[t-1] = dL/dh_t coming from above.

    dz_t = (1 − h_t²) ⊙ (dL/dh_t + Wᵀ dz_{t+1});  dW = Σ_t dz_t h_{t-1}ᵀ;  dh_0 = Wᵀ dz_1.
    dhs is consumed: it is returned, holding da = dz.
    """
    xp = xp_of(W)
    hs = cache.hs
    T, B, H = dhs.shape
    dnT = _zeros(xp, ws + "dnT", (H, B), dhs.dtype)      # Wᵀ dz_{t+1}, feature-major: dL/dh_t from step t+1
    tmp = _empty(xp, ws + "tmp", (B, H), dhs.dtype)
    WT = _backward_operand(xp, W, T)
    for t in range(T - 1, -1, -1):
        dz = dhs[t]
        dz += dnT.T                                # dL/dh_t: from above + from step t+1
        h = hs[t + 1]
        xp.multiply(h, h, out=tmp)
        xp.subtract(1, tmp, out=tmp)
        dz *= tmp                                  # through tanh
        xp.matmul(WT, dz.T, out=dnT)               # Wᵀ dz_t: dL/dh_{t-1} from step t
    N = T * B
    dW = dhs.reshape(N, H).T @ hs[:-1].reshape(N, H)
    return dhs, dW, xp.ascontiguousarray(dnT.T)


# --------------------------------------------------------------------------------------------
# LSTM
# --------------------------------------------------------------------------------------------

@dataclass
class LSTMCache:
    gates: Any  # (T, B, 4H) activated gates (i, f, o, g); overwritten with da by the backward pass
    hs: Any     # (T+1, B, H)
    cs: Any     # (T+1, B, H): cs[0] = c_0
    tcs: Any    # (T, B, H): tanh(c_t)


def lstm_forward(a: Any, W: Any, h0: Any, c0: Any, *, ws: str = "") -> tuple[Any, LSTMCache]:
    """LSTM over T steps, gate order (i, f, ω, g); a_t = U x_t + b precomputed, a: (T, B, 4H) consumed.

        [â_i, â_f, â_ω, â_g] = a_t + W h_{t-1}
        i = σ(â_i)   f = σ(â_f)   ω = σ(â_ω)   g = tanh(â_g)
        C_t = f ⊙ C_{t-1} + i ⊙ g
        h_t = ω ⊙ tanh(C_t)                           docs/cells.md (C.3)

    (docs/derivation.md's notation: C the cell state, ω the output gate; the code's names are cs
    and the "o" block.) Returns (hs (T+1, B, H), cache); the final cell state is cache.cs[-1].
    """
    xp = xp_of(W)
    T, B, G = a.shape
    H = G // 4
    dt = a.dtype
    hs = _empty(xp, ws + "hs", (T + 1, B, H), dt)
    cs = _empty(xp, ws + "cs", (T + 1, B, H), dt)
    tcs = _empty(xp, ws + "tcs", (T, B, H), dt)
    hs[0] = h0
    cs[0] = c0
    rec = _empty(xp, ws + "rec", (G, B), dt)
    H3 = 3 * H
    fused = _compiled_steps(xp, T, kernels.lstm_forward_steps)
    if fused is not None:
        gates_in, cell = fused
    else:
        ig = _empty(xp, ws + "ig", (B, H), dt)
    for t in range(T):
        at = a[t]
        if fused is not None:                     # the same arithmetic below, in three passes
            gates_in(at, _recurrent_into(xp, W, hs[t], rec))
            xp.tanh(at, out=at)
            cell(at, cs[t], cs[t + 1])
            xp.tanh(cs[t + 1], out=tcs[t])
            xp.multiply(at[:, 2 * H:H3], tcs[t], out=hs[t + 1])
            continue
        at += _recurrent_into(xp, W, hs[t], rec).T
        # σ on (i, f, o) and tanh on g in one tanh pass: σ(x) = ½ + ½ tanh(x/2).
        s = at[:, :H3]
        s *= 0.5
        xp.tanh(at, out=at)
        s *= 0.5
        s += 0.5
        c = cs[t + 1]
        xp.multiply(at[:, H:2 * H], cs[t], out=c)             # f ⊙ c_{t-1}
        xp.multiply(at[:, :H], at[:, H3:], out=ig)            # i ⊙ g
        c += ig
        xp.tanh(c, out=tcs[t])
        xp.multiply(at[:, 2 * H:H3], tcs[t], out=hs[t + 1])   # o ⊙ tanh(c_t)
    return hs, LSTMCache(a, hs, cs, tcs)


def lstm_backward(dhs: Any, W: Any, cache: LSTMCache, *, ws: str = "") -> tuple[Any, Any, Any, Any]:
    """Back through time: (da (T, B, 4H), dW, dh0, dc0); dhs[t-1] = dL/dh_t from above (consumed).

    With dh = dL/dh_t (from above + W-path from step t+1) and dc = dL/dC_t carried from t+1
    (docs/cells.md (C.4)):

        dc  += dh ⊙ ω ⊙ (1 − tanh²(C_t))
        da_i = dc ⊙ g ⊙ i(1 − i)        da_f = dc ⊙ C_{t-1} ⊙ f(1 − f)
        da_ω = dh ⊙ tanh(C_t) ⊙ ω(1 − ω) da_g = dc ⊙ i ⊙ (1 − g²)
        dL/dC_{t-1} = dc ⊙ f            dL/dh_{t-1} (recurrent part) = Wᵀ da_t
        dW = Σ_t da_t h_{t-1}ᵀ

    The gate buffer of the cache is overwritten with da and returned.
    """
    xp = xp_of(W)
    gates, hs, cs, tcs = cache.gates, cache.hs, cache.cs, cache.tcs
    T, B, H = dhs.shape
    H2, H3 = 2 * H, 3 * H
    dt = dhs.dtype
    dnT = _zeros(xp, ws + "dnT", (H, B), dt)         # Wᵀ da_{t+1}, feature-major
    dc = _zeros(xp, ws + "dc", (B, H), dt)
    WT = _backward_operand(xp, W, T)
    fused = _compiled_steps(xp, T, kernels.lstm_backward_step)
    if fused is None:
        D = _empty(xp, ws + "D", (B, 4 * H), dt)   # upstream gradient of each gate's output
        tmp = _empty(xp, ws + "tmp", (B, H), dt)
        s2 = _empty(xp, ws + "s2", (B, H3), dt)
    for t in range(T - 1, -1, -1):
        at = gates[t]
        dh = dhs[t]
        dh += dnT.T
        if fused is not None:                     # the same products below, in one compiled pass
            fused(at, dh, dc, tcs[t], cs[t])
            xp.matmul(WT, at.T, out=dnT)
            continue
        i, f, o, g = at[:, :H], at[:, H:H2], at[:, H2:H3], at[:, H3:]
        tc = tcs[t]
        # dc = dL/dc_t = dc_next + dh ⊙ o ⊙ (1 − tanh²(c_t))
        xp.multiply(tc, tc, out=tmp)
        xp.subtract(1, tmp, out=tmp)
        tmp *= o
        tmp *= dh
        dc += tmp
        xp.multiply(dc, g, out=D[:, :H])          # ∂L/∂i
        xp.multiply(dc, cs[t], out=D[:, H:H2])    # ∂L/∂f
        xp.multiply(dh, tc, out=D[:, H2:H3])      # ∂L/∂o
        xp.multiply(dc, i, out=D[:, H3:])         # ∂L/∂g
        dc *= f                                   # dL/dc_{t-1}, before f is overwritten
        # Local derivatives in place: σ(1 − σ) for i, f, o and 1 − g² for g; then da = D ⊙ local.
        s = at[:, :H3]
        xp.multiply(s, s, out=s2)
        s -= s2
        xp.multiply(g, g, out=tmp)
        xp.subtract(1, tmp, out=g)
        at *= D
        xp.matmul(WT, at.T, out=dnT)              # Wᵀ da_t: dL/dh_{t-1} from step t
    N = T * B
    dW = gates.reshape(N, 4 * H).T @ hs[:-1].reshape(N, H)
    return gates, dW, xp.ascontiguousarray(dnT.T), dc


# --------------------------------------------------------------------------------------------
# GRU
# --------------------------------------------------------------------------------------------

@dataclass
class GRUCache:
    gates: Any  # (T, B, 3H) activated gates (r, z, n); overwritten with da by the backward pass
    hs: Any     # (T+1, B, H)
    hn: Any     # (T, B, H): W_n h_{t-1} + b_hn, the term the reset gate scales


def gru_forward(a: Any, W: Any, bn: Any, h0: Any, *, ws: str = "") -> tuple[Any, GRUCache]:
    """GRU over T steps in PyTorch's form, gate order (r, u, n); a: (T, B, 3H) consumed.

        [a_r, a_u, a_n] = a_t (= U x_t + b),   [q_r, q_u, q_n] = W h_{t-1}
        r = σ(a_r + q_r)   u = σ(a_u + q_u)
        n = tanh(a_n + r ⊙ (q_n + bn))
        h_t = (1 − u) ⊙ n + u ⊙ h_{t-1}  =  n + u ⊙ (h_{t-1} − n)      docs/cells.md (C.5)

    u is the update gate (PyTorch's and the code's z; docs/derivation.md keeps z for the tanh
    cell's pre-activation).
    """
    xp = xp_of(W)
    T, B, G = a.shape
    H = G // 3
    H2 = 2 * H
    dt = a.dtype
    hs = _empty(xp, ws + "hs", (T + 1, B, H), dt)
    hn = _empty(xp, ws + "hn", (T, B, H), dt)
    hs[0] = h0
    qT = _empty(xp, ws + "qT", (G, B), dt)
    fused = _compiled_steps(xp, T, kernels.gru_forward_steps)
    if fused is not None:
        gates_in, candidate, output = fused
    else:
        tmp = _empty(xp, ws + "tmp", (B, H), dt)
    for t in range(T):
        at = a[t]
        if fused is not None:                                 # the same arithmetic below, in three passes
            gates_in(at, _recurrent_into(xp, W, hs[t], qT), bn, hn[t])
            xp.tanh(at[:, :H2], out=at[:, :H2])
            candidate(at, hn[t])
            xp.tanh(at[:, H2:], out=at[:, H2:])
            output(at, hs[t], hs[t + 1])
            continue
        q = _recurrent_into(xp, W, hs[t], qT).T
        rz = at[:, :H2]
        rz += q[:, :H2]
        _sigmoid_(xp, rz)
        xp.add(q[:, H2:], bn, out=hn[t])                      # W_n h + b_hn
        n = at[:, H2:]
        xp.multiply(at[:, :H], hn[t], out=tmp)                # r ⊙ (W_n h + b_hn)
        n += tmp
        xp.tanh(n, out=n)
        xp.subtract(hs[t], n, out=tmp)                        # h_{t-1} − n
        tmp *= at[:, H:H2]
        xp.add(n, tmp, out=hs[t + 1])
    return hs, GRUCache(a, hs, hn)


def gru_backward(dhs: Any, W: Any, cache: GRUCache, *, ws: str = "") -> tuple[Any, Any, Any, Any]:
    """Back through time: (da (T, B, 3H), dW, dbn, dh0); dhs[t-1] = dL/dh_t from above (consumed).

    With dh = dL/dh_t (from above + recurrent path from step t+1):

        dn̂ = dh ⊙ (1 − u) ⊙ (1 − n²)                 gradient at n's pre-activation (= da_n)
        dû = dh ⊙ (h_{t-1} − n) ⊙ u(1 − u)            (= da_u = dq_u)
        dr̂ = dn̂ ⊙ (W_n h_{t-1} + b_hn) ⊙ r(1 − r)   (= da_r = dq_r)
        dq_n = dn̂ ⊙ r                                 gradient at W_n h_{t-1}, and at b_hn
        dL/dh_{t-1} = dh ⊙ u + Wᵀ [dr̂, dû, dq_n]      docs/cells.md (C.6)
        dW = Σ_t [dr̂, dû, dq_n]_t h_{t-1}ᵀ           dbn = Σ_t dq_n

    The input side (U, b, the layer below) sees da = [dr̂, dẑ, dn̂], returned in the gate buffer.
    """
    xp = xp_of(W)
    gates, hs, hn = cache.gates, cache.hs, cache.hn
    T, B, H = dhs.shape
    H2 = 2 * H
    dt = dhs.dtype
    dq = _empty(xp, ws + "dq", (T, B, 3 * H), dt)     # recurrent-side gradients [dr̂, dẑ, dq_n]
    dh_next = _zeros(xp, ws + "dh_next", (B, H), dt)
    WT = _backward_operand(xp, W, T)
    fused = _compiled_steps(xp, T, kernels.gru_backward_step)
    if fused is not None:                             # the loop below, its element-wise part in one pass
        recT = _zeros(xp, ws + "recT", (H, B), dt)    # Wᵀ dq_{t+1}, added inside the kernel
        for t in range(T - 1, -1, -1):
            fused(gates[t], dhs[t], dh_next, recT, hs[t], hn[t], dq[t])
            xp.matmul(WT, dq[t].T, out=recT)
        dh_next += recT.T
    else:
        _gru_backward_steps(xp, dhs, WT, gates, hs, hn, dq, dh_next, ws)
    N = T * B
    dW = dq.reshape(N, 3 * H).T @ hs[:-1].reshape(N, H)
    dbn = dq[:, :, H2:].reshape(N, H).sum(axis=0)
    return gates, dW, dbn, dh_next


def _gru_backward_steps(xp: Any, dhs: Any, WT: Any, gates: Any, hs: Any, hn: Any, dq: Any,
                        dh_next: Any, ws: str) -> None:
    """The per-step loop of `gru_backward` in NumPy/CuPy calls (the plain path)."""
    T, B, H = dhs.shape
    H2 = 2 * H
    dt = dhs.dtype
    dn = _empty(xp, ws + "dn", (B, H), dt)
    tmp = _empty(xp, ws + "tmp", (B, H), dt)
    s2 = _empty(xp, ws + "s2", (B, H2), dt)
    recT = _empty(xp, ws + "recT", (H, B), dt)
    for t in range(T - 1, -1, -1):
        at = gates[t]
        r, z, n = at[:, :H], at[:, H:H2], at[:, H2:]
        qt = dq[t]
        dh = dhs[t]
        dh += dh_next
        h = hs[t]
        # dn̂ = dh (1 − z)(1 − n²)
        xp.multiply(n, n, out=dn)
        xp.subtract(1, dn, out=dn)
        xp.subtract(1, z, out=tmp)
        dn *= tmp
        dn *= dh
        # ∂L/∂z = dh (h_{t-1} − n), into the z slot of dq
        xp.subtract(h, n, out=qt[:, H:H2])
        qt[:, H:H2] *= dh
        xp.multiply(dn, r, out=qt[:, H2:])            # dq_n
        xp.multiply(dn, hn[t], out=qt[:, :H])         # ∂L/∂r
        xp.multiply(dh, z, out=dh_next)               # direct path dh ⊙ z, before z is overwritten
        # σ(1 − σ) for r and z in place, then the r, z gradients through the sigmoid.
        s = at[:, :H2]
        xp.multiply(s, s, out=s2)
        s -= s2
        qrz = qt[:, :H2]
        qrz *= s
        at[:, :H2] = qrz
        at[:, H2:] = dn
        xp.matmul(WT, qt.T, out=recT)                 # Wᵀ dq_t, feature-major
        dh_next += recT.T


# --------------------------------------------------------------------------------------------
# The one cell interface the network runs
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """What the layer stack needs of a cell; `CELLS` holds one per kind.

    gates: G, the blocks of W (G·H, H); state_parts: S, the state arrays per layer (h, or h and c).
    forward(a, W, p, pre, s0) -> (h_1..h_T (T, B, H), cache, final state (S, B, H)), with a the input
    projection (T, B, G·H) and s0 the layer's (S, B, H) state; backward(dh, W, cache, p, pre, grads)
    -> (dL/da (T, B, G·H), dL/ds0 (S, B, H)), storing dW and any cell-specific gradient in grads.
    internals: what the text reader can show besides h: name -> (cache field, gate block or None).
    """

    name: str
    gates: int
    state_parts: int
    forward: Callable[..., tuple[Any, Any, Any]]
    backward: Callable[..., tuple[Any, Any]]
    internals: Mapping[str, tuple[str, int | None]] = field(default_factory=dict)


def _rnn_layer(a: Any, W: Any, p: Mapping[str, Any], pre: str, s0: Any) -> tuple[Any, Any, Any]:
    hs, cache = rnn_forward(a, W, s0[0], ws=pre)
    return hs[1:], cache, hs[-1][None]


def _rnn_layer_back(dh: Any, W: Any, cache: Any, p: Mapping[str, Any], pre: str, grads: dict) -> tuple[Any, Any]:
    da, grads[pre + "W"], dh0 = rnn_backward(dh, W, cache, ws=pre)
    return da, dh0[None]


def _lstm_layer(a: Any, W: Any, p: Mapping[str, Any], pre: str, s0: Any) -> tuple[Any, Any, Any]:
    hs, cache = lstm_forward(a, W, s0[0], s0[1], ws=pre)
    return hs[1:], cache, xp_of(a).stack([hs[-1], cache.cs[-1]])


def _lstm_layer_back(dh: Any, W: Any, cache: Any, p: Mapping[str, Any], pre: str, grads: dict) -> tuple[Any, Any]:
    da, grads[pre + "W"], dh0, dc0 = lstm_backward(dh, W, cache, ws=pre)
    return da, xp_of(dh).stack([dh0, dc0])


def _gru_layer(a: Any, W: Any, p: Mapping[str, Any], pre: str, s0: Any) -> tuple[Any, Any, Any]:
    hs, cache = gru_forward(a, W, p[pre + "bn"], s0[0], ws=pre)
    return hs[1:], cache, hs[-1][None]


def _gru_layer_back(dh: Any, W: Any, cache: Any, p: Mapping[str, Any], pre: str, grads: dict) -> tuple[Any, Any]:
    da, grads[pre + "W"], grads[pre + "bn"], dh0 = gru_backward(dh, W, cache, ws=pre)
    return da, dh0[None]


CELLS: dict[str, Cell] = {
    "rnn": Cell("rnn", 1, 1, _rnn_layer, _rnn_layer_back),
    "lstm": Cell("lstm", 4, 2, _lstm_layer, _lstm_layer_back,
                 {"c": ("cs", None), "i": ("gates", 0), "f": ("gates", 1), "o": ("gates", 2), "g": ("gates", 3)}),
    "gru": Cell("gru", 3, 1, _gru_layer, _gru_layer_back, {"r": ("gates", 0), "z": ("gates", 1), "n": ("gates", 2)}),
}
