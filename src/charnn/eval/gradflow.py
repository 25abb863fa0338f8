"""Gradient flow through time: how much the loss at step t depends on the hidden state at step s.

For a window of text x_1..x_T read from the state h_0, with L_t = −log ŷ_t[y_t] the loss of the
prediction made at step t, this computes for one layer the norms

    G[t, s] = ‖∂L_t/∂h_s‖₂        0 ≤ s ≤ t ≤ T   (t = 1..T; NaN above the diagonal)

where ∂L_t/∂h_s is the gradient of L_t with respect to the state carried at s: every path from h_s
to L_t through the steps s+1..t (for the LSTM also through its cell state c), with the rest of the
state at s (c, the other layers) held fixed, exactly what truncated BPTT's ∂L/∂h_0 is for a window
starting at s. For the top layer that is all of ∂L_t/∂h_s; a lower layer's h_s also reaches L_t
through the layers above it at step s itself, which this leaves out. For the
seed's RNN the chain rule gives the ordered product (docs/derivation.md, "Vanishing and exploding
gradients")

    ∂L_t/∂h_s = (∂h_{s+1}/∂h_s)ᵀ ⋯ (∂h_t/∂h_{t−1})ᵀ Vᵀ (ŷ_t − 1_{y_t}),   ∂h_k/∂h_{k−1} = diag(1 − h_k²) W

How it is computed: only with the engine's hand-written backward pass (`charnn.nn.network.backward`),
never by differentiating anything here. For each s < T the window's steps s+1..T are run again
from the state at s, as T − s copies side by side (a batch); copy k back-propagates the output
gradient ŷ_t − 1_{y_t} of the single step t = s + 1 + k (`dlogits` nonzero at that step only), and
the gradient the backward pass returns for its initial state is ∂L_t/∂h_s for every layer at once.
The diagonal t = s of the top layer is the output layer alone, Vᵀ(ŷ_t − 1_{y_t}); a lower
layer's is left NaN (it would be the path through the layers above). Cost: Σ_s (T − s)² ≈ T³/3 cell steps of batch ≤ T.

No dropout (evaluation): the masks are 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..nn import network
from ..nn.params import cell_of, describe, internal_state, prefixes


@dataclass
class GradFlow:
    """The norms of one layer's state gradients over a window, and what they were computed on."""

    norms: np.ndarray      # (T + 1, T + 1): norms[t, s] = ‖∂L_t/∂h_s‖, NaN where s > t, row 0 NaN (no L_0)
    losses: np.ndarray     # (T + 1,): losses[t] = L_t in nats, losses[0] NaN
    ids: np.ndarray        # (T + 1,): the window's character ids; x_t = ids[t − 1], y_t = ids[t]
    layer: int             # which layer's h (0 = the first)
    cell: str              # "rnn", "lstm" or "gru"

    @property
    def T(self) -> int:
        return len(self.ids) - 1

    def last_step(self) -> np.ndarray:
        """‖∂L_T/∂h_t‖ against the lag T − t = 0..T: entry k is ‖∂L_T/∂h_{T−k}‖."""
        return self.norms[self.T, ::-1].copy()

    def by_lag(self) -> np.ndarray:
        """The geometric mean over t of ‖∂L_t/∂h_{t−k}‖, for lags k = 0..T−1 (NaN where nothing is finite).

        A typical size at each distance back, less noisy than the single row of the last step.
        """
        T = self.T
        out = np.full(T, np.nan)
        for k in range(T):
            vals = np.array([self.norms[t, t - k] for t in range(max(k, 1), T + 1)])
            vals = vals[np.isfinite(vals) & (vals > 0)]
            if len(vals):
                out[k] = float(np.exp(np.mean(np.log(vals))))
        return out


def _states(params: Mapping[str, Any], x: Any, s0: Any) -> Any:
    """The internal state (L, S, T+1, H) at every step 0..T of reading x (T, 1) from s0 (L, S, 1, H)."""
    _, _, _, caches = network.run_layers(params, x, s0)
    parts = []
    for c in caches:
        layer = [c.hs[:, 0]]                      # (T+1, H): hs[0] = h_0
        if hasattr(c, "cs"):                      # the LSTM's cell state
            layer.append(c.cs[:, 0])
        parts.append(np.stack(layer))
    return np.stack(parts)


def grad_flow(params: Mapping[str, Any], ids: Any, h0: Any = None, *, layer: int = -1) -> GradFlow:
    """‖∂L_t/∂h_s‖ for 0 ≤ s ≤ t ≤ T over the window ids (T + 1 character ids), read from state h0.

    params: any parameter set of `charnn.model` (NumPy arrays; no dropout). h0: the state before the
    window in the params' layout, None for zeros. layer: which layer's h (negative counts from the
    top). Everything is computed in the params' dtype.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) < 2:
        raise ValueError(f"need a 1-D window of at least 2 character ids, got shape {ids.shape}")
    spec = describe(params)
    if int(ids.min()) < 0 or int(ids.max()) >= spec.vocab_size:
        raise ValueError(f"character id out of range for a vocabulary of {spec.vocab_size}")
    L = len(prefixes(params))
    if not -L <= layer < L:
        raise ValueError(f"layer must be in [{-L}, {L - 1}] for a {L}-layer network, got {layer}")
    layer %= L
    T = len(ids) - 1
    V = params["V"]
    s0 = internal_state(params, h0, 1)            # (L, S, 1, H)
    states = _states(params, ids[:-1, None], s0)  # (L, S, T+1, H)
    norms = np.full((T + 1, T + 1), np.nan)
    losses = np.full(T + 1, np.nan)
    for s in range(T):
        n = T - s                                 # steps s+1..T, one copy per target step
        x = np.broadcast_to(ids[s:T], (n, n))     # (B = n copies, T' = n steps)
        y = np.broadcast_to(ids[s + 1:], (n, n))
        start = np.ascontiguousarray(np.repeat(states[:, :, s:s + 1], n, axis=2))   # (L, S, n, H)
        _, cache = network.forward(params, x, y, start)
        probs = cache.probs.reshape(n, n, -1)    # (step j, copy k, K), time-major
        k = np.arange(n)
        dlogits = np.zeros_like(probs)
        dlogits[k, k] = probs[k, k]               # copy k: only its own step t = s + 1 + k
        dlogits[k, k, ids[s + 1 + k]] -= 1.0      # ŷ_t − 1_{y_t}
        if s == 0:
            losses[1:] = -np.log(probs[k, k, ids[1 + k]])
        grads, dstate = network.backward(params, cache, dlogits.reshape(n * n, -1))
        norms[s + 1:, s] = np.linalg.norm(dstate[layer, 0], axis=-1)   # copy k: t = s + 1 + k
    if layer == L - 1:
        top = states[layer, 0, 1:]                # h_t of the top layer, t = 1..T
        logits = top @ V.T + params["c"]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(T), ids[1:]] -= 1.0
        norms[np.arange(1, T + 1), np.arange(1, T + 1)] = np.linalg.norm(p @ V, axis=1)   # ‖Vᵀ(ŷ_t − 1)‖
    return GradFlow(norms=norms, losses=losses, ids=ids.copy(), layer=layer, cell=cell_of(params))
