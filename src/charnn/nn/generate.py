"""The one generation loop: read the last character, draw the next from softmax(o / τ), repeat.

    state ← cell(U x + b, state; W) through every layer,   o = V h^{L−1} + c
    next ~ softmax(o / temperature)  (restricted to the top_k largest when top_k > 0, then to the
                                      nucleus of mass top_p when top_p < 1; argmax when greedy)

The nucleus (top-p, Holtzman et al. 2020): with p = softmax(z) sorted descending, p_(1) ≥ p_(2) ≥ …,
m is the smallest count with p_(1) + … + p_(m) ≥ top_p, and every id with p ≥ p_(m) is kept (ties at
the boundary stay in, as top-k keeps ties with its k-th value); the draw renormalises over the kept
ids. `nucleus_mask` is that rule in NumPy; the compiled loop performs the same additions in the same
order (descending, in float64), so both keep the same ids.

Each draw is an inverse-CDF lookup of one uniform number per stream and step: the uniforms of a
chunk of m steps are rng.random((m, B)), so the same rng seed gives the same text however the
output is chunked. Two implementations of each chunk, chosen in `_steps` only: a compiled loop
(`charnn.nn.kernels`, for the few-stream case where per-step NumPy calls would dominate) and the
batched NumPy loop over `step`; the tests hold them equal.

Output streams in chunks (`Generation`), so a caller can print the first characters while the
rest is still being drawn and memory stays bounded for any length.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np

from ..backend import xp_of
from . import kernels
from .network import input_table, run_layers
from .params import cell_of, external_state, internal_state, prefixes

# Below this many characters (n × B) the compiled loop is not worth importing numba.
KERNEL_MIN_CHARS = 2048
# Above this batch the NumPy path's batched GEMMs beat the kernel's per-stream matrix-vector loop.
KERNEL_MAX_BATCH = 8
FIRST_CHUNK = 256          # the first chunk is short so that output starts at once; then doubling
MAX_CHUNK = 1 << 16


def step(params: Mapping[str, Any], state: Any, x: Any) -> tuple[Any, Any]:
    """One time step: (new state, logits (B, K)) after reading ids x (B,) from `state` (params' layout)."""
    xp = xp_of(params["V"])
    x = xp.asarray(x)
    s = internal_state(params, state, x.shape[0])
    top, sT, _, _ = run_layers(params, x[None], s, None, keep=False)
    return external_state(params, sT, like=state), top[0] @ params["V"].T + params["c"]


def draw(logits: np.ndarray, rng: np.random.Generator, *, temperature: float = 1.0, top_k: int = 0,
         top_p: float = 1.0, greedy: bool = False) -> np.ndarray:
    """Next ids (B,) from logits (B, K): argmax, or an inverse-CDF draw from softmax(logits / τ) (top-k, top-p)."""
    if greedy:
        return logits.argmax(axis=1)
    return draw_with(logits, rng.random(logits.shape[0]), temperature=temperature, top_k=top_k, top_p=top_p)


def nucleus_mask(e: np.ndarray, top_p: float) -> np.ndarray:
    """Which ids (B, V) the nucleus of mass top_p keeps, from unnormalised probabilities e (B, V) ≥ 0.

        s = e sorted descending,  S_j = s_1 + … + s_j (added in that order),
        m = min { j : S_j ≥ top_p · S_V },  keep e ≥ s_m
    """
    s = np.sort(e, axis=1)[:, ::-1]
    cs = np.cumsum(s, axis=1)
    m = (cs < top_p * cs[:, -1:]).sum(axis=1)
    m = np.minimum(m, e.shape[1] - 1)
    return e >= s[np.arange(e.shape[0]), m][:, None]


def filtered_logits(logits: np.ndarray, *, temperature: float = 1.0, top_k: int = 0,
                    top_p: float = 1.0) -> np.ndarray:
    """z = logits / T with every id outside the top-k and then outside the top-p nucleus set to −inf,
    shifted so that max z = 0 (float64, (B, V)): softmax(z) is the distribution `draw_with` draws from."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    if 0 < top_k < z.shape[1]:
        kth = np.partition(z, -top_k, axis=1)[:, -top_k][:, None]
        z = np.where(z >= kth, z, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    if top_p < 1.0:
        z = np.where(nucleus_mask(np.exp(z), top_p), z, -np.inf)
    return z


def draw_with(logits: np.ndarray, u: np.ndarray | None, *, temperature: float = 1.0, top_k: int = 0,
              top_p: float = 1.0, greedy: bool = False) -> np.ndarray:
    """`draw` with the uniforms u (B,) in [0, 1) given: the id whose CDF interval holds u."""
    if greedy:
        return logits.argmax(axis=1)
    z = filtered_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    cdf = np.cumsum(np.exp(z), axis=1)
    thr = u * cdf[:, -1]
    return np.minimum((cdf < thr[:, None]).sum(axis=1), z.shape[1] - 1)


def pack(params: Mapping[str, Any]) -> tuple:
    """The parameters as the compiled loop takes them (`charnn.nn.kernels._generate_py`)."""
    pres = prefixes(params)
    cell = cell_of(params)
    L = len(pres)
    W0 = params[pres[0] + "W"]
    GH, H = W0.shape
    dt = W0.dtype
    Wl = np.ascontiguousarray(np.stack([params[p + "W"] for p in pres]))
    U0b = np.ascontiguousarray(input_table(params) + params[pres[0] + "b"])
    if L > 1:
        Uup = np.ascontiguousarray(np.stack([params[p + "U"] for p in pres[1:]]))
        bup = np.ascontiguousarray(np.stack([params[p + "b"] for p in pres[1:]]))
    else:
        Uup, bup = np.zeros((1, 1, 1), dt), np.zeros((1, 1), dt)
    bn = (np.ascontiguousarray(np.stack([params[p + "bn"] for p in pres])) if cell == "gru"
          else np.zeros((L, H), dt))
    Rtop = np.ascontiguousarray(np.concatenate([params[pres[-1] + "W"], params["V"]], axis=0))
    c = np.ascontiguousarray(params["c"])
    return (kernels.CELL_CODES[cell], Wl, U0b, Uup, bup, bn, Rtop, c)


class Generation:
    """n characters for each of B streams, produced chunk by chunk: iterate for (B, m) id arrays.

    After the iteration `state` is the state before reading the last id drawn (the params'
    layout), so a later call can continue from (state, last id).
    """

    def __init__(self, params: Mapping[str, Any], state: Any, x: Any, n: int, *, rng: np.random.Generator,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, greedy: bool = False,
                 first_chunk: int = FIRST_CHUNK):
        self.params, self.n, self.rng = params, n, rng
        self.opts = dict(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
        self.xp = xp_of(params["V"])
        self.like = state                                   # the caller's layout of the state
        s = internal_state(params, state, 1 if x is None else len(x))
        self.s = self.xp.array(s, dtype=params["V"].dtype)   # our own copy: updated in place
        Vs = params["V"].shape[0]
        if x is not None:
            x = np.asarray(x if self.xp is np else self.xp.asnumpy(x)).astype(np.int64).reshape(-1)
            if x.size and (int(x.min()) < 0 or int(x.max()) >= Vs):   # the compiled loop does not bounds-check
                raise IndexError(f"prompt ids must lie in [0, {Vs}), got [{int(x.min())}, {int(x.max())}]")
        self.x = x
        self.first_chunk = max(1, first_chunk)
        B = self.s.shape[2]
        # The compiled loop pays numba's import and cache load once per process (most of a second):
        # it loads in a background thread while the first chunk is drawn by NumPy. Which steps each
        # loop draws depends on the chunk only, never on timing, so a seed always gives the same text.
        self.compiled = (self.xp is np and B <= KERNEL_MAX_BATCH and n * B >= KERNEL_MIN_CHARS
                         and not kernels.disabled_by_env())
        self.packed = None
        if self.compiled:
            self.packed = pack(params)
            kernels.preload_generate(self.s.dtype)

    @property
    def state(self) -> Any:
        return external_state(self.params, self.s, like=self.like)

    def __iter__(self) -> Iterator[np.ndarray]:
        self.done, m = 0, self.first_chunk
        while self.done < self.n:
            m = min(m, self.n - self.done)
            ids = self._steps(m)
            self.x = ids[:, -1].copy()
            self.done += m
            yield ids
            m = min(2 * m, MAX_CHUNK)

    def _steps(self, m: int) -> np.ndarray:
        """m more ids per stream from (self.s, self.x): the one choice between the two loops."""
        B = self.s.shape[2]
        greedy = self.opts["greedy"]
        u = None if greedy else self.rng.random((m, B))
        first = self.done == 0 and self.n > m                 # the first chunk of several: NumPy
        if self.compiled and not first and kernels.wait_generate(self.s.dtype):
            return kernels.generate(self.packed, self.s, self.x, u, m, **self.opts)
        return self._numpy_steps(u, m)

    def _numpy_steps(self, u: np.ndarray | None, m: int) -> np.ndarray:
        """The batched NumPy (or CuPy) loop; the draws run on the host."""
        params, xp = self.params, self.xp
        out = np.empty((self.s.shape[2], m), dtype=np.int64)
        x = self.x
        for i in range(m):
            if x is None:
                logits = self.s[-1, 0] @ params["V"].T + params["c"]
            else:
                top, self.s, _, _ = run_layers(params, xp.asarray(x)[None], self.s, None, keep=False)
                logits = top[0] @ params["V"].T + params["c"]
            logits = np.asarray(logits if xp is np else xp.asnumpy(logits), dtype=np.float64)
            x = draw_with(logits, None if u is None else u[i], **self.opts)
            out[:, i] = x
        return out


def generate(params: Mapping[str, Any], state: Any, x: Any, n: int, *, rng: np.random.Generator,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             greedy: bool = False) -> tuple[np.ndarray, Any]:
    """Generate n characters for each of B streams: (ids (B, n), final state).

    state: None (zeros, B = 1 or len(x)) or a state in the params' layout; x: (B,) ids of the last
    prompt character, or None to draw the first character from the state alone. The final state
    is the state before reading ids[:, -1].
    """
    g = Generation(params, state, x, n, rng=rng, temperature=temperature, top_k=top_k, top_p=top_p,
                   greedy=greedy, first_chunk=max(1, n))
    parts = list(g)
    B = g.s.shape[2]
    ids = np.concatenate(parts, axis=1) if parts else np.empty((B, 0), dtype=np.int64)
    return ids, g.state
