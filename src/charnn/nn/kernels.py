"""Compiled kernels (Numba) for the loops NumPy cannot batch or fuse.

Sampling: at batch 1 a generation step is a few matrix-vector products, element-wise gates over H
numbers and a draw over V: microseconds of arithmetic that NumPy would spread over dozens of calls,
each with its own dispatch overhead. `generate` runs n steps of any cell and layer count in one
compiled loop. It computes what the NumPy path of `charnn.nn.generate` computes (same formulas,
same uniforms, same inverse-CDF rule), so the two agree up to float rounding in the products.

LSTM and GRU steps (`charnn.nn.cells`): the element-wise work of one gated time step is about ten
NumPy calls forward and fifteen backward over (B, G·H) and (B, H) blocks, many of them on strided
gate slices. `lstm_forward_steps`/`lstm_backward_step` and `gru_forward_steps`/`gru_backward_step`
do the same arithmetic in two or three compiled passes forward and one backward (the forward
passes keep NumPy's vectorised tanh, which Numba cannot match without SVML). Compiled with nogil, so the batch
shards of a training step run them in parallel threads. Results agree with the NumPy path to
rounding (tested, float32 and float64).

The vanilla RNN's training and evaluation stay NumPy: compiled recurrences were measured about 10%
faster at batch 1, but importing numba adds 60-100 MB to the process, which the vanilla
`charnn train` cannot afford (its peak memory is a target). The LSTM and GRU pay that import.
Every kernel is compiled with numba's on-disk cache, so only the first process pays the compile.

Optional: without numba installed, or with the environment variable CHARNN_NO_NUMBA=1,
`available()` is False and callers use their NumPy path. Numba is imported on first use only, so
importing charnn stays fast.
"""
from __future__ import annotations

import os
import threading
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


def _generate_py(cell: int, Wl: np.ndarray, U0b: np.ndarray, Uup: np.ndarray, bup: np.ndarray,
                 bn: np.ndarray, Rtop: np.ndarray, c: np.ndarray, state: np.ndarray, x: np.ndarray,
                 has_x: bool, u: np.ndarray, temperature: float, top_k: int, greedy: bool,
                 out: np.ndarray, top_p: float = 1.0) -> None:
    """n generation steps for B streams of any cell and layer count; state updated in place.

    cell 0 = RNN, 1 = LSTM, 2 = GRU. Wl (L, G·H, H): each layer's W (the top one also sits in
    Rtop); U0b = U⁰ᵀ + b⁰ (V × G·H; row x is U⁰ x + b⁰, the one-hot input's projection);
    Uup (L−1, G·H, H) and bup (L−1, G·H): the input weights and biases of layers 1..L−1;
    bn (L, H): the GRU's b_hn; Rtop = [W^{L−1}; V] ((G·H+V) × H), so one product gives the top
    layer's recurrent term and the logits; state (L, S, B, H). Per stream and step, reading id x:

        a^l = U^l in^l + b^l,  q^l = W^l h^l,  then the cell:
          RNN   h = tanh(a + q)
          LSTM  i, f, o = σ(a + q) blocks, g = tanh(a_g + q_g), c = f c + i g, h = o tanh(c)
          GRU   r, z = σ(a + q) blocks, n = tanh(a_n + r (q_n + b_hn)), h = n + z (h − n)
        o = V h^{L−1} + c,  z = o / temperature (top_k: all but the k largest set to −inf;
        top_p < 1: then all outside the nucleus, the rule of `charnn.nn.generate.nucleus_mask`)

    and the next id is the first with cdf ≥ u · cdf[V−1] (cdf = cumsum exp(z − max z)), or
    argmax o when greedy; σ(s) = ½ + ½ tanh(s/2) as in `charnn.nn.cells`. The first step reads
    x only when has_x; the last id drawn is not read, so the state returns as the state before
    reading out[:, n−1].
    """
    L, S, B, H = state.shape
    GH = Wl.shape[1]
    Vs = c.shape[0]
    n = out.shape[1]
    half = state.dtype.type(0.5)
    r = np.empty(GH + Vs, dtype=state.dtype)       # Rtop h: [W h | V h] of the top layer
    a = np.empty(GH, dtype=state.dtype)
    q = np.empty(GH, dtype=state.dtype)
    z = np.empty(Vs, dtype=np.float64)
    e = np.empty(Vs, dtype=np.float64)
    for s in range(B):
        xs = x[s]
        _matvec(Rtop, state[L - 1, 0, s], r)
        for i in range(n):
            if i > 0 or has_x:                           # read xs through every layer
                for l in range(L):
                    if l == 0:
                        for j in range(GH):
                            a[j] = U0b[xs, j]
                    else:
                        _matvec(Uup[l - 1], state[l - 1, 0, s], a)
                        for j in range(GH):
                            a[j] += bup[l - 1, j]
                    if l == L - 1:
                        for j in range(GH):
                            q[j] = r[j]
                    else:
                        _matvec(Wl[l], state[l, 0, s], q)
                    h = state[l, 0, s]
                    if cell == 0:
                        for j in range(H):
                            h[j] = np.tanh(a[j] + q[j])
                    elif cell == 1:
                        cs = state[l, 1, s]
                        for j in range(H):
                            ig = half + half * np.tanh(half * (a[j] + q[j]))
                            fg = half + half * np.tanh(half * (a[H + j] + q[H + j]))
                            og = half + half * np.tanh(half * (a[2 * H + j] + q[2 * H + j]))
                            gg = np.tanh(a[3 * H + j] + q[3 * H + j])
                            cs[j] = fg * cs[j] + ig * gg
                            h[j] = og * np.tanh(cs[j])
                    else:
                        for j in range(H):
                            rg = half + half * np.tanh(half * (a[j] + q[j]))
                            zg = half + half * np.tanh(half * (a[H + j] + q[H + j]))
                            ng = np.tanh(a[2 * H + j] + rg * (q[2 * H + j] + bn[l, j]))
                            h[j] = ng + zg * (h[j] - ng)
                _matvec(Rtop, state[L - 1, 0, s], r)
            if greedy:
                best = 0
                for v in range(Vs):
                    z[v] = np.float64(r[GH + v] + c[v])
                    if z[v] > z[best]:
                        best = v
                xs = best
            else:
                for v in range(Vs):
                    z[v] = np.float64(r[GH + v] + c[v]) / temperature
                if 0 < top_k < Vs:
                    kth = np.sort(z)[Vs - top_k]
                    for v in range(Vs):
                        if z[v] < kth:
                            z[v] = -np.inf
                m = z[0]
                for v in range(1, Vs):
                    if z[v] > m:
                        m = z[v]
                if top_p < 1.0:                              # the nucleus: same additions as NumPy's
                    for v in range(Vs):
                        e[v] = np.exp(z[v] - m)
                    srt = np.sort(e)
                    tot = 0.0
                    for j in range(Vs - 1, -1, -1):
                        tot += srt[j]
                    thr = top_p * tot
                    acc = 0.0
                    cut = srt[0]
                    for j in range(Vs - 1, -1, -1):
                        acc += srt[j]
                        if not acc < thr:
                            cut = srt[j]
                            break
                    for v in range(Vs):
                        if e[v] < cut:
                            z[v] = -np.inf
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


def _gru_gates_in_py(at: np.ndarray, q: np.ndarray, bn: np.ndarray, hn: np.ndarray) -> None:
    """at[:, :2H] ← (at + q_{r,u}ᵀ) / 2 and hn ← q_nᵀ + b_hn: the first pass of a GRU step.

    at (B, 3H) holds U x_t + b in row form, q (3H, B) holds W h_{t−1} feature-major (the per-step
    GEMM's output). The r and u blocks are halved because σ(x) = ½ + ½ tanh(x/2) follows as one
    NumPy tanh; hn = W_n h_{t−1} + b_hn is the term the reset gate scales (kept for the backward).
    """
    B, G = at.shape
    H = G // 3
    H2 = 2 * H
    half = at.dtype.type(0.5)
    for b in range(B):
        for j in range(H2):
            at[b, j] = (at[b, j] + q[j, b]) * half
        for j in range(H):
            hn[b, j] = q[H2 + j, b] + bn[j]


def _gru_candidate_py(at: np.ndarray, hn: np.ndarray) -> None:
    """After tanh over the r, u blocks: σ finished (½ + ½ tanh) and â_n ← a_n + r ⊙ hn, in place."""
    B, G = at.shape
    H = G // 3
    half = at.dtype.type(0.5)
    for b in range(B):
        for j in range(2 * H):
            at[b, j] = half + half * at[b, j]
        for j in range(H):
            at[b, 2 * H + j] = at[b, 2 * H + j] + at[b, j] * hn[b, j]


def _gru_output_py(at: np.ndarray, h_prev: np.ndarray, h: np.ndarray) -> None:
    """After tanh over the n block: h_t = n + u ⊙ (h_{t−1} − n)."""
    B, G = at.shape
    H = G // 3
    for b in range(B):
        for j in range(H):
            n = at[b, 2 * H + j]
            h[b, j] = n + (h_prev[b, j] - n) * at[b, H + j]


def _gru_backward_step_py(at: np.ndarray, dh: np.ndarray, dh_next: np.ndarray, rec: np.ndarray,
                          h_prev: np.ndarray, hn: np.ndarray, dq: np.ndarray) -> None:
    """One GRU step back through its gates, in place (the element-wise part of `cells.gru_backward`).

    In: at (B, 3H) the activated gates (r, u, n) of step t; dh = dL/dh_t from above (B, H); dh_next
    (B, H) the direct path dh_{t+1} ⊙ u_{t+1} and rec (H, B) the recurrent path Wᵀ dq_{t+1}, so that
    d = dh + dh_next + recᵀ is the whole dL/dh_t; h_prev = h_{t−1}; hn = W_n h_{t−1} + b_hn.
    Out: dq ← [dr̂, dû, dq_n], at ← [dr̂, dû, dn̂], dh_next ← d ⊙ u:

        dn̂ = d ⊙ (1 − u) ⊙ (1 − n²)       dû = d ⊙ (h_{t−1} − n) ⊙ u(1 − u)
        dq_n = dn̂ ⊙ r                     dr̂ = dn̂ ⊙ hn ⊙ r(1 − r)

    One pass instead of about fifteen NumPy calls; the same products in the same dtype.
    """
    B, G = at.shape
    H = G // 3
    one = at.dtype.type(1)
    for b in range(B):
        for j in range(H):
            r = at[b, j]
            u = at[b, H + j]
            n = at[b, 2 * H + j]
            d = dh[b, j] + (dh_next[b, j] + rec[j, b])
            dn = (one - n * n) * (one - u) * d
            du = (h_prev[b, j] - n) * d * (u - u * u)
            dr = dn * hn[b, j] * (r - r * r)
            dq[b, j] = dr
            dq[b, H + j] = du
            dq[b, 2 * H + j] = dn * r
            at[b, j] = dr
            at[b, H + j] = du
            at[b, 2 * H + j] = dn
            dh_next[b, j] = d * u


def _build(name: str) -> None:
    nb = _numba
    # cache=True: compiled once, kept in numba's on-disk cache beside this file (__pycache__), so
    # a new process loads the machine code instead of spending seconds compiling it again.
    if name == "generate":
        # reassoc/contract only: lets the dot products vectorise without assuming away inf/NaN
        # (top-k masking relies on −inf).
        globals()["_matvec"] = nb.njit(cache=True, fastmath={"reassoc", "contract"})(_matvec_py)
        _compiled["generate"] = nb.njit(cache=True)(_generate_py)
    elif name in ("lstm_backward_step", "lstm_gates_in", "lstm_cell",
                  "gru_gates_in", "gru_candidate", "gru_output", "gru_backward_step"):
        # nogil: the batch shards of a training step run these in parallel threads.
        _compiled[name] = nb.njit(cache=True, nogil=True)(globals()[f"_{name}_py"])
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


def gru_forward_steps() -> tuple[Callable[..., None], Callable[..., None], Callable[..., None]] | None:
    """The compiled (`_gru_gates_in_py`, `_gru_candidate_py`, `_gru_output_py`), or None when numba
    is unavailable or disabled."""
    if not available():
        return None
    return _kernel("gru_gates_in"), _kernel("gru_candidate"), _kernel("gru_output")


def gru_backward_step() -> Callable[..., None] | None:
    """The compiled `_gru_backward_step_py`, or None when numba is unavailable or disabled."""
    return _kernel("gru_backward_step") if available() else None


CELL_CODES = {"rnn": 0, "lstm": 1, "gru": 2}
_loading: dict[str, threading.Thread] = {}
_load_lock = threading.Lock()


def _warm_generate(dtype: Any) -> None:
    """Import numba and load (or compile) the generation loop for `dtype` with a one-step dummy call."""
    if not available():
        return
    dt = np.dtype(dtype)
    one = lambda *shape: np.zeros(shape, dt)  # noqa: E731
    packed = (0, one(1, 1, 1), one(1, 1), one(1, 1, 1), one(1, 1), one(1, 1), one(2, 1), one(1))
    _kernel("generate")(*packed, one(1, 1, 1, 1), np.zeros(1, np.int64), True, np.zeros((1, 1)), 1.0, 0, False,
                        np.zeros((1, 1), np.int64), 1.0)


def preload_generate(dtype: Any) -> None:
    """Start loading the generation loop for `dtype` in a background thread (numba's import and its
    cache cost most of a second), so the caller can draw its first characters with NumPy meanwhile."""
    key = np.dtype(dtype).str
    with _load_lock:
        if key not in _loading:
            t = threading.Thread(target=_warm_generate, args=(dtype,), name="charnn-kernels", daemon=True)
            _loading[key] = t
            t.start()


def wait_generate(dtype: Any) -> bool:
    """Wait for `preload_generate(dtype)`; whether the compiled loop can be used."""
    t = _loading.get(np.dtype(dtype).str)
    if t is not None:
        t.join()
    return available()


def generate(packed: tuple, state: np.ndarray, x: np.ndarray | None, u: np.ndarray | None, n: int, *,
             temperature: float, top_k: int, greedy: bool, top_p: float = 1.0) -> np.ndarray:
    """Compiled sampling loop (see `_generate_py`); returns ids (B, n) and updates state in place.

    Call only when `available()`. packed: `charnn.nn.generate.pack` of the parameters;
    state: (L, S, B, H) C-contiguous; u: (n, B) uniforms in [0, 1) (ignored when greedy).
    """
    B = state.shape[2]
    out = np.empty((B, n), dtype=np.int64)
    xs = np.zeros(B, dtype=np.int64) if x is None else np.ascontiguousarray(x, dtype=np.int64)
    uu = np.zeros((n, B)) if u is None else np.ascontiguousarray(u, dtype=np.float64)
    _kernel("generate")(*packed, state, xs, x is not None, uu, float(temperature), int(top_k), bool(greedy), out,
                        float(top_p))
    return out
