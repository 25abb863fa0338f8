"""Beam search: the most likely continuation of a given length, approximately.

The score of a continuation y_1..y_n after a state is its log-probability under the model itself
(temperature 1, no top-k or top-p):

    log p(y_1..y_n) = Σ_t log softmax(o_t)[y_t],   o_t = V h^{L−1}_t + c after reading y_{t−1}

Beam search keeps the K best prefixes at every length: each is extended by every character, and
the K highest scores of the K·V extensions survive (ties go to the lower beam, then the lower id,
so a search is deterministic). With K ≥ V^(n−1) it keeps every prefix of length n − 1 and so
returns the exact best continuation; with K = 1 it is greedy decoding.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..backend import xp_of
from .network import run_layers
from .params import internal_state


def log_softmax(o: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, in float64: o − max o − log Σ exp(o − max o)."""
    o = np.asarray(o, dtype=np.float64)
    o = o - o.max(axis=-1, keepdims=True)
    return o - np.log(np.exp(o).sum(axis=-1, keepdims=True))


def beam_search(params: Mapping[str, Any], state: Any, x: Any, n: int, beam: int) -> list[tuple[np.ndarray, float]]:
    """The `beam` best continuations of length n found: [(ids (n,), log-probability in nats)], best first.

    state: the state before reading x (the params' layout, batch 1; None = zeros); x: the id (1,)
    read first, or None to predict the first character from the state alone.
    """
    xp = xp_of(params["V"])
    Vs = params["V"].shape[0]
    s = internal_state(params, state, 1)
    x = None if x is None else np.asarray(x, dtype=np.int64).reshape(1)
    scores = np.zeros(1)
    seqs = np.zeros((1, 0), dtype=np.int64)
    for _ in range(n):
        if x is None:
            top = s[-1, 0]
        else:
            top, s, _, _ = run_layers(params, xp.asarray(x)[None], s, None, keep=False)
            top = top[0]
        logits = top @ params["V"].T + params["c"]
        logits = logits if xp is np else xp.asnumpy(logits)
        cand = (scores[:, None] + log_softmax(logits)).ravel()
        order = np.argsort(-cand, kind="stable")[:beam]       # stable: ties keep the lower flat index
        b, v = order // Vs, order % Vs
        scores = cand[order]
        seqs = np.concatenate([seqs[b], v[:, None]], axis=1)
        s = s[:, :, xp.asarray(b)]
        x = v
    return [(seqs[i], float(scores[i])) for i in range(len(scores))]
