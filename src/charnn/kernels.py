"""Compiled kernels (Numba) for the loops NumPy cannot batch or fuse.

Sampling: at batch 1 a generation step is a (H+V)×H matrix-vector product, a tanh over H numbers
and a draw over V: microseconds of arithmetic that NumPy would spread over a dozen calls, each with
its own dispatch overhead. `generate` runs all n steps in one compiled loop. It computes exactly
what the NumPy path in `charnn.model.generate` computes (same formulas, same uniforms, same
inverse-CDF rule), so the two agree up to float rounding in the products.

LSTM steps (`charnn.cells`): the element-wise work of one LSTM time step is about ten NumPy calls
forward and fifteen backward over (B, 4H) and (B, H) blocks. `lstm_forward_steps` and
`lstm_backward_step` do the same arithmetic in two and one compiled passes (the forward pass keeps
NumPy's vectorised tanh, which Numba cannot match without SVML). Compiled with nogil, so the batch
shards of a training step run them in parallel threads. Results agree with the NumPy path to
rounding (tested, float32 and float64).

The vanilla RNN's training and evaluation stay NumPy: compiled recurrences were measured about 10%
faster at batch 1, but importing numba adds 60-100 MB to the process, which the vanilla
`charnn train` cannot afford (its peak memory is a target). The LSTM pays that import.

Optional: without numba installed, or with the environment variable CHARNN_NO_NUMBA=1,
`available()` is False and callers use their NumPy path. Numba is imported on first use only, so
importing charnn stays fast.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

_numba: Any = None          # the numba module once imported; False when it cannot be
_compiled: dict[str, Callable[..., Any]] = {}


def disabled_by_env() -> bool:
    """CHARNN_NO_NUMBA set to anything but '' or '0' forces the NumPy paths."""
    return os.environ.get("CHARNN_NO_NUMBA", "").strip() not in ("", "0")


def available() -> bool:
    """Whether the compiled kernels can be used now (numba importable and not disabled)."""
    global _numba
    if disabled_by_env():
        return False
    if _numba is None:
        try:
            import numba  # noqa: PLC0415 - deliberately lazy: ~0.3 s, only paid when sampling
            _numba = numba
        except Exception:  # ImportError, or an llvmlite that fails to load
            _numba = False
    return _numba is not False


def _generate_py(R: np.ndarray, UTb: np.ndarray, c: np.ndarray, h: np.ndarray, x: np.ndarray,
                 has_x: bool, u: np.ndarray, temperature: float, top_k: int, greedy: bool,
                 out: np.ndarray) -> None:
    """n generation steps for B streams; h (B, H) is updated in place, ids go to out (B, n).

    R = [W; V] ((H+V) × H), UTb = Uᵀ + b (V × H; row x is U x + b). For each stream and step:
    h ← tanh(W h + U x + b) (skipped on the first step when has_x is False), o = V h + c,
    z = o / temperature, restricted to the top_k largest when 0 < top_k < V, and the next id is
    the first with cdf ≥ u · cdf[V−1] (cdf = cumsum exp(z − max z)), or argmax o when greedy.
    The last id drawn is not read: h returns as the state before reading out[:, n−1].
    """
    B, H = h.shape
    Vs = c.shape[0]
    n = out.shape[1]
    r = np.empty(H + Vs, dtype=R.dtype)
    z = np.empty(Vs, dtype=np.float64)
    for s in range(B):
        hs = h[s]
        xs = x[s]
        if has_x:
            _matvec(R, hs, r)                                # r[:H] = W h before reading x
        for i in range(n):
            if i > 0 or has_x:                               # h ← tanh(W h + U x + b)
                for j in range(H):
                    hs[j] = np.tanh(r[j] + UTb[xs, j])
            _matvec(R, hs, r)                                # [W h | V h]
            if greedy:
                best = 0
                for v in range(Vs):
                    z[v] = np.float64(r[H + v] + c[v])
                    if z[v] > z[best]:
                        best = v
                xs = best
            else:
                for v in range(Vs):
                    z[v] = np.float64(r[H + v] + c[v]) / temperature
                if 0 < top_k < Vs:
                    kth = np.sort(z)[Vs - top_k]
                    for v in range(Vs):
                        if z[v] < kth:
                            z[v] = -np.inf
                m = z[0]
                for v in range(1, Vs):
                    if z[v] > m:
                        m = z[v]
                tot = 0.0
                for v in range(Vs):
                    tot += np.exp(z[v] - m)
                    z[v] = tot                               # z now holds the cdf
                thr = u[i, s] * tot
                xs = Vs - 1
                for v in range(Vs):
                    if not z[v] < thr:
                        xs = v
                        break
            out[s, i] = xs


def _matvec_py(R: np.ndarray, h: np.ndarray, r: np.ndarray) -> None:
    """r = R h, accumulated in R's dtype (reassociated so the compiler can vectorise it)."""
    for j in range(R.shape[0]):
        acc = R.dtype.type(0)
        for k in range(R.shape[1]):
            acc += R[j, k] * h[k]
        r[j] = acc


_matvec = _matvec_py   # replaced by the compiled version in _build()


def _lstm_backward_step_py(at: np.ndarray, dh: np.ndarray, dc: np.ndarray, tc: np.ndarray,
                           c_prev: np.ndarray) -> None:
    """One LSTM step back through its gates, in place (the element-wise part of `cells.lstm_backward`).

    In: at (B, 4H) the activated gates (i, f, o, g) of step t; dh = dL/dh_t (B, H); dc = dL/dc_t
    from step t+1 (B, H); tc = tanh(c_t); c_prev = c_{t−1}. Out: at ← da_t, dc ← dL/dc_{t−1}:

        dc  += dh ⊙ o ⊙ (1 − tanh²(c_t))
        da_i = dc ⊙ g ⊙ i(1 − i)        da_f = dc ⊙ c_{t−1} ⊙ f(1 − f)
        da_o = dh ⊙ tanh(c_t) ⊙ o(1 − o) da_g = dc ⊙ i ⊙ (1 − g²)        dc ← dc ⊙ f

    One pass instead of about fifteen NumPy calls; the same products in the same dtype.
    """
    B, G = at.shape
    H = G // 4
    one = at.dtype.type(1)
    for b in range(B):
        for j in range(H):
            i = at[b, j]
            f = at[b, H + j]
            o = at[b, 2 * H + j]
            g = at[b, 3 * H + j]
            d = dh[b, j]
            t = tc[b, j]
            dcj = dc[b, j] + d * o * (one - t * t)
            at[b, j] = dcj * g * (i * (one - i))
            at[b, H + j] = dcj * c_prev[b, j] * (f * (one - f))
            at[b, 2 * H + j] = d * t * (o * (one - o))
            at[b, 3 * H + j] = dcj * i * (one - g * g)
            dc[b, j] = dcj * f


def _lstm_gates_in_py(at: np.ndarray, rec: np.ndarray) -> None:
    """at ← (at + recᵀ) ⊙ [½ … ½ 1 … 1]: the recurrent term added, the σ-gates pre-halved for tanh.

    at (B, 4H) holds U x_t + b in row form, rec (4H, B) holds W h_{t−1} feature-major (the
    per-step GEMM's output). The three sigmoid blocks (i, f, o) are halved because the forward pass
    evaluates σ(x) = ½ + ½ tanh(x/2) with one tanh over all four blocks.
    """
    B, G = at.shape
    H3 = 3 * (G // 4)
    half = at.dtype.type(0.5)
    for b in range(B):
        for j in range(H3):
            at[b, j] = (at[b, j] + rec[j, b]) * half
        for j in range(H3, G):
            at[b, j] = at[b, j] + rec[j, b]


def _lstm_cell_py(at: np.ndarray, c_prev: np.ndarray, c: np.ndarray) -> None:
    """After tanh over the gates: σ-gates finished (½ + ½ tanh) in place, c_t = f ⊙ c_{t−1} + i ⊙ g."""
    B, G = at.shape
    H = G // 4
    half = at.dtype.type(0.5)
    for b in range(B):
        for j in range(3 * H):
            at[b, j] = half + half * at[b, j]
        for j in range(H):
            c[b, j] = at[b, H + j] * c_prev[b, j] + at[b, j] * at[b, 3 * H + j]


def _build(name: str) -> None:
    nb = _numba
    # cache=False: Numba's on-disk cache stores pickled index files, and charnn reads no pickle
    # from disk anywhere; compiling costs about a second once per process.
    if name == "generate":
        # reassoc/contract only: lets the dot products vectorise without assuming away inf/NaN
        # (top-k masking relies on −inf).
        matvec = nb.njit(cache=False, fastmath={"reassoc", "contract"})(_matvec_py)
        globals()["_matvec"] = matvec
        _compiled["generate"] = nb.njit(cache=False)(_generate_py)
    elif name in ("lstm_backward_step", "lstm_gates_in", "lstm_cell"):
        # nogil: the batch shards of a training step run these in parallel threads.
        _compiled[name] = nb.njit(cache=False, nogil=True)(globals()[f"_{name}_py"])
    else:
        raise KeyError(name)


def _kernel(name: str) -> Callable[..., Any]:
    if name not in _compiled:
        _build(name)
    return _compiled[name]


def lstm_backward_step() -> Callable[..., None] | None:
    """The compiled `_lstm_backward_step_py`, or None when numba is unavailable or disabled."""
    return _kernel("lstm_backward_step") if available() else None


def lstm_forward_steps() -> tuple[Callable[..., None], Callable[..., None]] | None:
    """The compiled (`_lstm_gates_in_py`, `_lstm_cell_py`), or None when numba is unavailable or disabled."""
    return (_kernel("lstm_gates_in"), _kernel("lstm_cell")) if available() else None


def generate(R: np.ndarray, UTb: np.ndarray, c: np.ndarray, h: np.ndarray, x: np.ndarray | None,
             u: np.ndarray | None, n: int, *, temperature: float, top_k: int, greedy: bool) -> np.ndarray:
    """Compiled sampling loop (see `_generate_py`); returns ids (B, n) and updates h in place.

    Call only when `available()`. u: (n, B) uniforms in [0, 1) (ignored when greedy).
    """
    B = h.shape[0]
    out = np.empty((B, n), dtype=np.int64)
    xs = np.zeros(B, dtype=np.int64) if x is None else np.ascontiguousarray(x, dtype=np.int64)
    uu = np.zeros((n, B)) if u is None else np.ascontiguousarray(u, dtype=np.float64)
    _kernel("generate")(R, UTb, c, h, xs, x is not None, uu, float(temperature), int(top_k), bool(greedy), out)
    return out
