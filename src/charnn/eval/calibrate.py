"""Temperature calibration: one number, fitted on text the network did not train on.

A network that has read its training text ten times is sure of itself on it; on a new text it is
as sure, and it is wrong more often — above all inside words it has never seen (docs/cells.md).
Temperature scaling (Guo et al., 2017) fixes the sharpness of every prediction with one scalar
τ > 0, fitted on held-out text:

    ŷ_t = softmax((V h_t + c) / τ)

which is the same network with V and c divided by τ (`apply`). τ > 1 flattens the predictions,
τ < 1 sharpens them; the ranking of the characters never changes. With β = 1/τ the held-out loss

    L(β) = mean_t [ log Σ_k exp(β o_tk) − β o_t,y_t ]

is convex in β (a log-sum-exp of functions linear in β, minus a linear one), so a golden-section
search over β finds its minimum (`fit_temperature`). The trainer holds the start of the training
split out of training for this (Config.calibration_fraction, `charnn.data.hold_out`), so neither τ
nor any weight ever sees the validation text.
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .. import model
from ..backend import to_numpy

BETA_RANGE = (0.2, 5.0)          # τ between 0.2 and 5: far outside anything a trained network needs


def logit_chunks(params: Mapping[str, Any], ids: Any, *, streams: int = 1, burn_in: int = 500,
                 chunk: int = 1000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The output logits o_t = V h_t + c and the targets of ids[1:], chunk by chunk (float64, int64),
    read with the state carried by `charnn.model.read` (streams > 1: every prediction once)."""
    for ch in model.read(params, ids, streams=streams, burn_in=burn_in, chunk=chunk):
        keep = np.asarray(to_numpy(ch.weights)).reshape(-1) > 0
        o = to_numpy(ch.logits).reshape(-1, ch.logits.shape[-1]).astype(np.float64)[keep]
        y = np.asarray(to_numpy(ch.targets)).reshape(-1).astype(np.int64)[keep]
        if len(y):
            yield o, y


def holdout_logits(params: Mapping[str, Any], ids: Any, *, streams: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """All logits (n, V) and targets (n,) of a (short) held-out text: what `fit_temperature` fits on."""
    parts = list(logit_chunks(params, ids, streams=streams))
    return np.concatenate([o for o, _ in parts]), np.concatenate([y for _, y in parts])


def mean_nll(params: Mapping[str, Any], ids: Any, temperatures: Sequence[float], *,
             streams: int = 1) -> list[float]:
    """The mean loss (nats/char) of ids[1:] at each temperature, from one pass over the text."""
    totals, n = [0.0] * len(temperatures), 0
    for o, y in logit_chunks(params, ids, streams=streams):
        for k, tau in enumerate(temperatures):
            totals[k] += nll_at(o, y, 1.0 / tau) * len(y)
        n += len(y)
    return [t / n for t in totals]


def nll_at(logits: np.ndarray, targets: np.ndarray, beta: float) -> float:
    """Mean −log softmax(β o)[y] over the rows: the held-out loss at temperature 1/β."""
    z = beta * logits
    z = z - z.max(axis=1, keepdims=True)
    logz = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(logz - z[np.arange(len(targets)), targets]))


def fit_temperature(logits: np.ndarray, targets: np.ndarray, *, tol: float = 1e-5) -> float:
    """τ = 1/β* with β* = argmin L(β) on [0.2, 5] by golden-section search (L is convex in β)."""
    lo, hi = BETA_RANGE
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll_at(logits, targets, a), nll_at(logits, targets, b)
    while hi - lo > tol:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll_at(logits, targets, a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll_at(logits, targets, b)
    return 1.0 / ((lo + hi) / 2.0)


def fit(params: Mapping[str, Any], ids: Any, *, streams: int = 1) -> float:
    """The temperature τ that minimises the loss of `params` on the held-out ids."""
    return fit_temperature(*holdout_logits(params, ids, streams=streams))


def apply(params: Mapping[str, Any], tau: float) -> dict[str, Any]:
    """The calibrated network: V/τ and c/τ (new arrays), every other parameter shared; τ = 1 returns a copy
    of the mapping only."""
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {tau!r}")
    out = dict(params)
    if tau != 1.0:
        out["V"] = params["V"] / params["V"].dtype.type(tau)
        out["c"] = params["c"] / params["c"].dtype.type(tau)
    return out
