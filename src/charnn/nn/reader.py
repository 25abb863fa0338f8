"""The one text reader: a network reads a long text with its state carried, chunk by chunk.

For every position t of the text it yields the output logits o_t = V h^{L−1}_t + c and the target
y_t = ids[t+1]; on request also every layer's internals at t (h, the LSTM cell state c and gates
(i, f, o, g), the GRU gates (r, z, n)). Evaluation, temperature calibration, the neural cache and
the look-inside views all read text through `read`.

Two layouts:

* streams = 1: the text in one pass at batch 1 from the given state (zeros by default): the exact
  loss of reading the text in order.
* streams = S > 1: the n = len(ids) − 1 predictions are cut into S contiguous segments read in
  parallel, each stream starting `burn_in` characters before its segment (from a zero state) so
  it enters the segment with a warmed-up state. Only the segment's own predictions have weight 1,
  so every prediction counts exactly once: a faster approximation for progress curves.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

from ..backend import xp_of
from .cells import CELLS
from .network import run_layers
from .params import cell_of, external_state, internal_state, prefixes

@dataclass
class Chunk:
    """One stretch of the text as the network read it: arrays with time first, then stream.

    Every array is fresh: a consumer may change it in place.
    """

    start: int                 # row of the layout this chunk starts at (position in the text when streams = 1)
    logits: Any                # (T, S, K)  o_t = V h_t + c
    targets: Any               # (T, S)     the character that follows
    weights: Any               # (T, S)     1 where a prediction counts, 0 on burn-in and padding
    top: Any                   # (T, S, H)  h of the top layer (the output projection's input)
    internals: dict[str, Any] | None   # "L{l}.h", "L{l}.c", "L{l}.f", ... each (T, S, H), when asked
    state: Any                 # the state after the chunk (the params' layout), None when streams > 1


def internal_names(params: Mapping[str, Any]) -> list[str]:
    """The names `read(..., internals=True)` yields, e.g. ['L0.h', 'L0.c', 'L0.i', ...]."""
    cell = CELLS[cell_of(params)]
    return [f"L{l}.{k}" for l in range(len(prefixes(params))) for k in ("h", *cell.internals)]


def stream_layout(ids: Any, streams: int, burn_in: int, *, dtype: Any = np.float32) -> tuple[Any, Any, Any]:
    """Time-major inputs X, targets Y and 0/1 weights Wt, each (Lmax, streams), for a streamed read.

    Stream k reads from `burn_in` characters before its segment (or the start) to the segment's
    end, and its weight is 1 exactly on its own segment's predictions, so Σ Wt = n. Padding has
    weight 0.
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


def read(params: Mapping[str, Any], ids: Any, *, state: Any = None, chunk: int = 1000, streams: int = 1,
         burn_in: int = 500, internals: bool = False) -> Iterator[Chunk]:
    """Read ids (n + 1 characters) and yield `Chunk`s covering its n predictions in order.

    state: the state to start from (streams = 1 only; None = zeros). internals=True adds each
    layer's h and its cell's gates (and the LSTM's c) at every position.
    """
    xp = xp_of(params["V"])
    ids = xp.asarray(ids).reshape(-1)
    if len(ids) < 2:
        raise ValueError("need at least 2 characters to read")
    Vs = params["V"].shape[0]
    if int(ids.min()) < 0 or int(ids.max()) >= Vs:
        raise IndexError(f"character ids must lie in [0, {Vs}), got [{int(ids.min())}, {int(ids.max())}]")
    if streams <= 1:
        X, Y = ids[:-1, None], ids[1:, None]
        Wt = xp.ones(X.shape, dtype=params["V"].dtype)
        s = internal_state(params, state, 1)
    else:
        X, Y, Wt = stream_layout(ids, streams, burn_in, dtype=params["V"].dtype)
        chunk = max(16, min(chunk, 4096 // streams))   # bounds the (chunk, streams, G·H) buffers
        s = internal_state(params, None, streams)
    cell = CELLS[cell_of(params)]
    for i in range(0, X.shape[0], chunk):
        e = min(i + chunk, X.shape[0])
        top, s, _, caches = run_layers(params, X[i:e], s, None, keep=internals)
        logits = top @ params["V"].T
        logits += params["c"]
        inside = None
        if internals:
            inside = {}
            for l, cache in enumerate(caches):
                inside[f"L{l}.h"] = cache.hs[1:].copy()
                for name, (field, block) in cell.internals.items():
                    a = getattr(cache, field)
                    if block is None:
                        inside[f"L{l}.{name}"] = a[1:].copy()
                    else:
                        H = a.shape[-1] // cell.gates
                        inside[f"L{l}.{name}"] = a[..., block * H:(block + 1) * H].copy()
        yield Chunk(start=i, logits=logits, targets=Y[i:e].copy(), weights=Wt[i:e].copy(),
                    top=top.copy(), internals=inside,
                    state=external_state(params, s, like=state) if streams <= 1 else None)


def evaluate(params: Mapping[str, Any], ids: Any, *, h0: Any = None, chunk: int = 1000,
             streams: int = 1, burn_in: int = 500) -> tuple[float, int, Any]:
    """Total −log ŷ[y] over the n predictions of ids, read in order with the state carried: (nats, n, state).

    streams = 1 is exact at batch 1 and returns the final state; streams > 1 is the faster
    streamed approximation (`read`) and returns None for the state.
    """
    xp = xp_of(params["V"])
    total, state = 0.0, None
    for ch in read(params, ids, state=h0, chunk=chunk, streams=streams, burn_in=burn_in):
        o = ch.logits
        o -= o.max(axis=-1, keepdims=True)
        logz = xp.log(xp.exp(o).sum(axis=-1))
        picked = xp.take_along_axis(o, ch.targets[..., None].astype(np.intp), axis=-1)[..., 0]
        total += float(((logz - picked) * ch.weights).sum(dtype=np.float64))
        state = ch.state
    return total, len(ids) - 1, state
