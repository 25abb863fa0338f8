"""A continuous cache over the model's own recent states, for evaluation (Grave, Joulin & Usunier, 2017).

A recurrent model reads a text with its state carried, but it can only predict what its weights
know: a name it never saw in training (PROSPERO in Tiny Shakespeare's validation plays) costs
several nats per character every time it recurs. The cache lets the model look back at what
followed states like its current one earlier in the same text. For the prediction after x_t:

    p(y) = (1 − λ) ŷ_t[y] + λ Σ_{i ∈ window} a_i [x_{i+1} = y],   a = softmax_i(θ · cos(h_t, h_i))

h_t is the top layer's output after reading x_t (the state the output layer sees); the window holds
the K positions before t, each with the character that followed it — all of them already read, so
the prediction is causal. No weight changes and no training: θ (the sharpness of the lookup), λ
(the share of the cache) and K are the only parameters. Where the window is still empty (the first
character) p is the model's own ŷ.

This is a different model from the plain network (a network plus a memory of the text being read),
so its loss is reported next to the plain loss, never instead of it.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import model

# Defaults of `charnn eval --cache`: the choice of benchmarks/bench_cache.py for the preset's GRU
# 2×768 on the last 100,000 characters of Tiny Shakespeare's *training* split (K in {2k, 10k}, θ in
# {5 … 80}, λ in {0 … 0.6}); no validation text was used to choose them (BENCHMARKS.md).
DEFAULT_SIZE = 10_000
DEFAULT_THETA = 40.0
DEFAULT_LAMBDA = 0.05


def cache_probs(params: Any, ids: np.ndarray, *, size: int, thetas: Sequence[float],
                chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Read `ids` once at batch 1 with the state carried from zero.

    Returns (p_model (n,), p_cache (len(thetas), n)): for each of the n = len(ids) − 1 predictions,
    the model's probability of the true next character and the cache's, one row per θ. Where the
    window is empty the cache row holds p_model (so any mixture gives the model's own value).
    """
    if size < 1:
        raise ValueError(f"cache size must be >= 1, got {size}")
    ids = np.asarray(ids)
    n = len(ids) - 1
    if n < 1:
        raise ValueError("need at least 2 characters to evaluate")
    thetas = [float(t) for t in thetas]
    V, c = params["V"], params["c"]
    H = V.shape[1]
    p_model = np.empty(n)
    p_cache = np.empty((len(thetas), n))
    past_h = np.zeros((0, H))                      # normalised states of the window, oldest first
    past_y = np.zeros(0, dtype=np.int64)           # the character that followed each
    for ch in model.read(params, ids, chunk=chunk):
        i0 = ch.start
        e = i0 + len(ch.targets)
        y = np.asarray(ch.targets[:, 0], dtype=np.int64)
        h = np.asarray(ch.top[:, 0, :], dtype=np.float64)
        logits = h @ np.asarray(V, dtype=np.float64).T + np.asarray(c, dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        logz = np.log(np.exp(logits).sum(axis=1))
        T = e - i0
        pm = np.exp(logits[np.arange(T), y] - logz)
        p_model[i0:e] = pm
        hn = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
        all_h = np.concatenate([past_h, hn])
        all_y = np.concatenate([past_y, y])
        cols = np.arange(i0 - len(past_h), e)      # global position of each column
        rows = np.arange(i0, e)
        valid = (cols[None, :] < rows[:, None]) & (cols[None, :] >= rows[:, None] - size)
        hit = (all_y[None, :] == y[:, None]) & valid
        sims = hn @ all_h.T                        # cosines, in [−1, 1]
        empty = ~valid.any(axis=1)
        for k, theta in enumerate(thetas):
            z = np.where(valid, theta * sims, -np.inf)
            zmax = np.where(empty, 0.0, z.max(axis=1))
            w = np.exp(z - zmax[:, None])          # exp(−inf) = 0 outside the window
            tot = w.sum(axis=1)
            pc = np.where(empty, pm, np.where(hit, w, 0.0).sum(axis=1) / np.where(empty, 1.0, tot))
            p_cache[k, i0:e] = pc
        past_h, past_y = all_h[-size:], all_y[-size:]
    return p_model, p_cache


def mixture_nats(p_model: np.ndarray, p_cache: np.ndarray, lam: float) -> float:
    """Mean −ln((1 − λ) p_model + λ p_cache) over the predictions (nats/char)."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"cache lambda must be in [0, 1], got {lam}")
    p = (1.0 - lam) * p_model + lam * p_cache
    return float(-np.log(np.maximum(p, 1e-300)).mean())


def tune(p_model: np.ndarray, p_cache: np.ndarray, thetas: Sequence[float],
         lambdas: Sequence[float]) -> tuple[float, float, float]:
    """(θ, λ, nats) with the lowest mixture loss over the grid, from `cache_probs` of a tuning text."""
    best = (float(thetas[0]), 0.0, mixture_nats(p_model, p_cache[0], 0.0))
    for k, theta in enumerate(thetas):
        for lam in lambdas:
            nats = mixture_nats(p_model, p_cache[k], float(lam))
            if nats < best[2]:
                best = (float(theta), float(lam), nats)
    return best
