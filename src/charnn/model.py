"""The model: one entry point per operation, for every cell and layer count.

The seed's model, and the default (`init_params(vocab_size, hidden_size, seed=...)`):

    h_t = tanh(W h_{t-1} + U x_t + b)        W: (H, H)   U: (H, K)   b: (H,)
    o_t = V h_t + c                          V: (K, H)   c: (K,)
    ŷ_t = softmax(o_t)
    L   = (1 / (B T)) Σ_{j,t} -log ŷ_t[y_t]   mean over streams j and steps t, nats per character
(Notation of docs/derivation.md, section 1: K is the vocabulary size, V the output matrix.)

with the backward pass through time (the seed's formulas, transposes written out):

    dL/do_t = (ŷ_t − 1[y_t]) / (B T)
    dL/dh_t = Vᵀ dL/do_t + Wᵀ dz_{t+1}       dz_{T+1} = 0
    dz_t    = (1 − h_t²) ⊙ dL/dh_t
    dc = Σ_t dL/do_t     dV = Σ_t dL/do_t h_tᵀ
    db = Σ_t dz_t        dW = Σ_t dz_t h_{t-1}ᵀ     dU = Σ_t dz_t x_tᵀ   dL/dh_0 = Wᵀ dz_1

`cell="lstm"` or `"gru"` and `layers=L` give the stacked network of `charnn.nn.network` (the
cells' equations are in `charnn.nn.cells` and docs/cells.md); a parameter set says what it is
(`describe`), so every function here takes any of them. The parts live in `charnn.nn`:

    params      names, shapes, initialisation, state layout
    network     forward and backward over layers (the one path every network runs)
    fast_rnn    the seed's model trained faster, the same numbers (chosen in `loss_and_grads` only)
    reader      a long text read with the state carried: logits and internals, chunk by chunk
    generate    the generation loop (compiled, streamed in chunks; temperature, top-k, top-p)
    beam        beam search for the most likely continuation
    masks       dropout and weight-drop masks
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .backend import fused_loss_and_grads, xp_of
from .nn import fast_rnn, network, parallel
from .nn.beam import beam_search  # noqa: F401 - the model's API
from .nn.generate import Generation, draw, draw_with, filtered_logits, generate, step  # noqa: F401
from .nn.masks import drop_weights, dropout_masks, mask_grads, weight_drop_masks  # noqa: F401
from .nn.network import Cache, backward, forward  # noqa: F401
from .nn.params import (CELLS, SEED_NAMES, Spec, cell_of, describe, dims, embed_size, external_state,  # noqa: F401
                        init_params, init_state, internal_state, is_seed_rnn, param_shapes, prefixes)
from .nn.reader import Chunk, evaluate, internal_names, read, stream_layout  # noqa: F401

PARAM_NAMES = SEED_NAMES


def _fast_rnn_applies(params: Mapping[str, Any], masks: Sequence[Any] | None) -> bool:
    """`charnn.nn.fast_rnn` computes the seed's one-hot model without dropout masks."""
    return is_seed_rnn(params) and masks is None and "E" not in params


def loss_and_grads(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any = None, *,
                   masks: Sequence[Any] | None = None,
                   weight_masks: Mapping[str, Any] | None = None) -> tuple[float, dict[str, Any], Any]:
    """Mean cross-entropy (nats/char), gradients of every parameter, and the final state.

    inputs, targets: integer arrays of shape (B, T). h0: the state before the batch (None for
    zeros): (B, H) for the seed's dict, (L, S, B, H) otherwise; the final state has the same
    layout. masks: dropout masks (`dropout_masks`), weight_masks: weight-drop masks
    (`weight_drop_masks`): the batch then runs on W̃ = M ⊙ W and the gradients are those of the
    unmasked W, M ⊙ ∂L/∂W̃. Returns fresh arrays.

    This is the one place an implementation is chosen: the fused CUDA kernels for CuPy float32
    seed models, `charnn.nn.fast_rnn` for the seed's model on the CPU without dropout masks, and
    `charnn.nn.network` for everything else (dropout, an input embedding, other cells, layers). All three compute the same function (tested). The
    batch is cut into parallel shards by `charnn.nn.parallel.over_batch`.
    """
    if weight_masks:
        loss, grads, state = loss_and_grads(drop_weights(params, weight_masks), inputs, targets, h0, masks=masks)
        mask_grads(grads, weight_masks)
        return loss, grads, state
    seed = _fast_rnn_applies(params, masks)
    if seed:
        fused = fused_loss_and_grads(params, inputs, targets, h0)
        if fused is not None:
            return fused
    xp = xp_of(params["V"])
    inputs, targets = xp.asarray(inputs), xp.asarray(targets)
    if inputs.ndim != 2 or inputs.shape != targets.shape:
        raise ValueError(f"inputs and targets must both be (B, T), got {inputs.shape} and {targets.shape}")
    B = inputs.shape[0]
    s0 = internal_state(params, h0, B)                      # (L, S, B, H): shards cut axis 2

    def rows(a: int, b: int) -> parallel.Shard:
        st = s0[:, :, a:b]
        if seed:
            loss, grads, h = fast_rnn.loss_and_grads_one(params, inputs[a:b], targets[a:b], st[0, 0])
            return loss, grads, h[None, None]
        shard_masks = None if masks is None else [m[:, a:b] for m in masks]
        loss, grads, s = network.loss_and_grads_one(params, inputs[a:b], targets[a:b], st, shard_masks)
        return loss, grads, internal_state(params, s, b - a)

    loss, grads, states = parallel.over_batch(rows, B, xp)
    state = states[0] if len(states) == 1 else xp.concatenate(states, axis=2)
    return loss, grads, external_state(params, state, like=h0)


def loss_grads_dh0(params: Mapping[str, Any], inputs: Any, targets: Any, h0: Any = None, *,
                   masks: Sequence[Any] | None = None,
                   weight_masks: Mapping[str, Any] | None = None) -> tuple[float, dict[str, Any], Any]:
    """Like loss_and_grads but returns dL/dh0 (the state's layout) instead of the final state, in one
    piece (no shards): for gradient checks and truncated-BPTT studies. Runs the implementation
    `loss_and_grads` would run, so a gradient check checks what training uses."""
    dropped = drop_weights(params, weight_masks)
    if _fast_rnn_applies(params, masks) and xp_of(params["V"]) is np:
        stacked = h0 is not None and getattr(h0, "ndim", 2) == 4
        loss, cache = fast_rnn.forward(dropped, inputs, targets, h0[0, 0] if stacked else h0)
        grads, dh0 = fast_rnn.backward(dropped, cache)
        if stacked:
            dh0 = dh0[None, None]
    else:
        loss, cache = forward(dropped, inputs, targets, h0, masks=masks)
        grads, dh0 = backward(dropped, cache)
    mask_grads(grads, weight_masks)
    return loss, grads, dh0


__all__ = ["CELLS", "PARAM_NAMES", "Spec", "describe", "dims", "init_params", "init_state", "param_shapes",
           "forward", "backward", "Cache", "loss_and_grads", "loss_grads_dh0", "step", "read", "evaluate",
           "generate", "Generation", "draw", "draw_with", "filtered_logits", "beam_search", "dropout_masks", "weight_drop_masks",
           "internal_names", "Chunk"]
