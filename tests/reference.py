"""A deliberately plain transcription of the seed's equations: the yardstick for the fast model.

Everything here follows the seed document literally: one sequence at a time, one time step at a
time, column vectors throughout, explicit Python loops over the batch and over time, and a dense
one-hot x_t. It is slow on purpose; its only job is to be obviously right, so that tests can
prove `charnn.model` (batched, row-vector, gathered) computes exactly the same numbers.

Shapes (column vectors): x_t is the one-hot (V, 1) vector of input character t, h_t is (H, 1),
W (H, H), U (H, V), V (V, H), b (H, 1), c (V, 1).

Forward pass, for t = 1..T (h_0 given, zeros by default):

    h_t = tanh(W h_{t-1} + U x_t + b)
    o_t = V h_t + c
    ŷ_t = softmax(o_t)
    L   = (1 / (B T)) Σ_sequences Σ_t −log ŷ_t[y_t]          mean cross-entropy, nats per character

Backward pass, the seed's boxed results, for t = T..1 (the 1/(B T) of the mean folded in):

    ∂L/∂o_t = ŷ_t − 1[y_t]
    ∂L/∂h_T = Vᵀ ∂L/∂o_T                                     last time step
    ∂L/∂h_t = Vᵀ ∂L/∂o_t + (∂h_{t+1}/∂h_t)ᵀ ∂L/∂h_{t+1}
            = Vᵀ ∂L/∂o_t + Wᵀ ((1 − h_{t+1}²) ⊙ ∂L/∂h_{t+1})
    ∂L/∂c = Σ_t ∂L/∂o_t
    ∂L/∂V = Σ_t ∂L/∂o_t h_tᵀ
    ∂L/∂b = Σ_t (1 − h_t²) ⊙ ∂L/∂h_t
    ∂L/∂W = Σ_t ((1 − h_t²) ⊙ ∂L/∂h_t) h_{t-1}ᵀ
    ∂L/∂U = Σ_t ((1 − h_t²) ⊙ ∂L/∂h_t) x_tᵀ
    ∂L/∂h_0 = Wᵀ ((1 − h_1²) ⊙ ∂L/∂h_1)
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

PARAM_NAMES = ("W", "U", "V", "b", "c")


def _one_hot(index: int, size: int, dtype: Any) -> np.ndarray:
    """x_t: the (size, 1) column with a single 1 at `index`."""
    x = np.zeros((size, 1), dtype=dtype)
    x[index, 0] = 1
    return x


def _softmax(o: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ŷ = softmax(o) and log ŷ for a (V, 1) column; the max is subtracted so exp cannot overflow."""
    shifted = o - o.max()
    e = np.exp(shifted)
    total = e.sum()
    return e / total, shifted - np.log(total)


def reference_loss_and_grads(params: Mapping[str, Any], inputs: Any, targets: Any,
                             h0: Any = None) -> tuple[float, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Loss, gradients, last hidden state and dL/dh0, computed one sequence and one step at a time.

    Same semantics as `charnn.model.loss_and_grads`: inputs and targets are integer arrays of shape
    (B, T); h0 is (B, H) or None for zeros; loss is the mean cross-entropy over all B·T predicted
    characters. Returns (loss, grads keyed W/U/V/b/c with the parameters' shapes, h_last (B, H),
    dL/dh0 (B, H)). Works in the parameters' dtype.
    """
    W, U, V = (np.asarray(params[k]) for k in ("W", "U", "V"))
    dtype = W.dtype
    H, vocab_size = W.shape[0], V.shape[0]
    b = np.asarray(params["b"]).reshape(H, 1)
    c = np.asarray(params["c"]).reshape(vocab_size, 1)
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    B, T = inputs.shape
    N = B * T
    h0 = np.zeros((B, H), dtype=dtype) if h0 is None else np.asarray(h0, dtype=dtype)

    dW, dU, dV = np.zeros_like(W), np.zeros_like(U), np.zeros_like(V)
    db, dc = np.zeros((H, 1), dtype=dtype), np.zeros((vocab_size, 1), dtype=dtype)
    h_last = np.zeros((B, H), dtype=dtype)
    dh0 = np.zeros((B, H), dtype=dtype)
    total_nats = 0.0

    for s in range(B):                                   # one sequence at a time
        # Forward: keep x_t, h_t and ŷ_t of every step for the backward pass (index 0 = h_0).
        xs: dict[int, np.ndarray] = {}
        hs: dict[int, np.ndarray] = {0: h0[s].reshape(H, 1).copy()}
        ys: dict[int, np.ndarray] = {}
        for t in range(1, T + 1):
            xs[t] = _one_hot(int(inputs[s, t - 1]), vocab_size, dtype)
            hs[t] = np.tanh(W @ hs[t - 1] + U @ xs[t] + b)          # h_t = tanh(W h_{t-1} + U x_t + b)
            o = V @ hs[t] + c                                       # o_t = V h_t + c
            ys[t], log_y = _softmax(o)                              # ŷ_t = softmax(o_t)
            total_nats -= float(log_y[int(targets[s, t - 1]), 0])   # −log ŷ_t[y_t]
        h_last[s] = hs[T].ravel()

        # Backward through time: dh_next carries (∂h_{t+1}/∂h_t)ᵀ ∂L/∂h_{t+1} down to step t.
        dh_next = np.zeros((H, 1), dtype=dtype)
        for t in range(T, 0, -1):
            do = ys[t].copy()                                       # ∂L/∂o_t = ŷ_t − 1[y_t]
            do[int(targets[s, t - 1]), 0] -= 1
            do /= N                                                 # the loss is a mean over N
            dc += do                                                # ∂L/∂c = Σ_t ∂L/∂o_t
            dV += do @ hs[t].T                                      # ∂L/∂V = Σ_t ∂L/∂o_t h_tᵀ
            dh = V.T @ do + dh_next                                 # ∂L/∂h_t
            dz = (1 - hs[t] ** 2) * dh                              # through tanh: 1 − h_t²
            db += dz
            dW += dz @ hs[t - 1].T
            dU += dz @ xs[t].T
            dh_next = W.T @ dz                                      # Wᵀ((1 − h_t²) ⊙ ∂L/∂h_t)
        dh0[s] = dh_next.ravel()                                    # ∂L/∂h_0

    grads = {"W": dW, "U": dU, "V": dV, "b": db.ravel(), "c": dc.ravel()}
    return total_nats / N, {k: grads[k] for k in PARAM_NAMES}, h_last, dh0
