"""Parameters and state of a network: their names, shapes, initial values and layout.

A network is L layers of one cell (RNN, LSTM or GRU) over one-hot characters and a softmax output:

    a^l_t = U^l in^l_t + b^l          in^0_t = x_t (one-hot),  in^l_t = h^{l−1}_t
    h^l_t = cell(a^l_t, state^l_{t−1}; W^l)
    o_t   = V h^{L−1}_t + c,   ŷ_t = softmax(o_t)

Parameters are a flat name → array dict, so optimizers and checkpoints treat every network alike:

    W, U, V, b, c            the seed's model: cell "rnn", one layer (no layer prefix)
    L{l}.W   (G·H, H)        recurrent weights of layer l    G = gate blocks: RNN 1, GRU 3, LSTM 4
    L{l}.U   (G·H, D_l)      input weights (D_0 = vocab size, D_l = H above)
    L{l}.b   (G·H,)          bias of the input projection
    L{l}.bn  (H,)            GRU only: b_hn, the recurrent bias inside the reset gate
    V (vocab, H), c (vocab,) output projection
    E        (vocab, D)      optional input embedding: the first layer reads E[x] (D_0 = D)

The cell and layer count are read back from the names and shapes (`describe`), so no string
travels with the arrays. State: one array (L, S, B, H), S = 1 for RNN/GRU (h) and 2 for LSTM
(h, c); for the seed's dict the state is its plain h of shape (B, H).
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import numpy as np

from ..backend import xp_of
from .cells import CELLS as _CELLS

CELLS = tuple(_CELLS)                                         # "rnn", "lstm", "gru"
GATES = {k: c.gates for k, c in _CELLS.items()}              # gate blocks G: W is (G·H, H)
STATE_PARTS = {k: c.state_parts for k, c in _CELLS.items()}  # per layer: h, or (h, c)
SEED_NAMES = ("W", "U", "V", "b", "c")         # the seed's one-layer RNN


class Spec(NamedTuple):
    """What a parameter set is: its cell, layer count and sizes."""

    cell: str
    layers: int
    vocab_size: int
    hidden_size: int


def prefixes(params: Mapping[str, Any]) -> list[str]:
    """Key prefix of every layer, bottom first: [''] for the seed's dict, else ['L0.', 'L1.', ...]."""
    if "W" in params:
        return [""]
    out = []
    while f"L{len(out)}.W" in params:
        out.append(f"L{len(out)}.")
    if not out:
        raise KeyError("not a charnn parameter set: no 'W' or 'L0.W'")
    return out


def is_seed_rnn(params: Mapping[str, Any]) -> bool:
    """True for the seed's one-layer RNN dict (keys W, U, V, b, c)."""
    return "W" in params


def cell_of(params: Mapping[str, Any]) -> str:
    """'rnn', 'lstm' or 'gru', read from the recurrent weight's shape (G·H, H)."""
    pre = prefixes(params)[0]
    W = params[pre + "W"]
    G = W.shape[0] // W.shape[1]
    if G == 4:
        return "lstm"
    if G == 3 and pre + "bn" in params:
        return "gru"
    if G == 1:
        return "rnn"
    raise KeyError(f"cannot tell the cell from {pre}W of shape {W.shape}")


def describe(params: Mapping[str, Any]) -> Spec:
    """The Spec of a parameter set."""
    pres = prefixes(params)
    return Spec(cell_of(params), len(pres), params["V"].shape[0], params[pres[0] + "W"].shape[1])


def param_shapes(vocab_size: int, hidden_size: int, *, cell: str = "rnn", layers: int = 1,
                 embed: int = 0) -> dict[str, tuple[int, ...]]:
    """Shape of every parameter, in initialisation (draw) order; the seed's names for a 1-layer RNN.

    embed = D > 0 adds the input embedding E (V, D) and the first layer's U becomes (G·H, D).
    """
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}: choose one of {', '.join(CELLS)}")
    if embed < 0:
        raise ValueError(f"embed must be >= 0, got {embed}")
    G, H, Vs = GATES[cell], hidden_size, vocab_size
    shapes: dict[str, tuple[int, ...]] = {"E": (Vs, embed)} if embed else {}
    for l in range(layers):
        pre = "" if (cell == "rnn" and layers == 1) else f"L{l}."
        D = (embed or Vs) if l == 0 else H
        shapes[pre + "W"] = (G * H, H)
        shapes[pre + "U"] = (G * H, D)
        shapes[pre + "b"] = (G * H,)
        if cell == "gru":
            shapes[pre + "bn"] = (H,)
    shapes["V"] = (Vs, H)
    shapes["c"] = (Vs,)
    if cell == "rnn" and layers == 1:       # the seed's order (the same draws: only W, U, V are drawn)
        return {**({"E": shapes["E"]} if embed else {}), **{k: shapes[k] for k in SEED_NAMES}}
    return shapes


def init_params(vocab_size: int, hidden_size: int, *, seed: int, dtype: Any = np.float32,
                cell: str = "rnn", layers: int = 1, embed: int = 0) -> dict[str, np.ndarray]:
    """Initial parameters: matrices ~ Uniform(−1/√fan_in, 1/√fan_in) (PyTorch's rule), biases 0.

    fan_in is H for W, V and the input weights of layers above the first. The first layer's U
    reads one-hot characters: U x_t is one column of U, a character embedding with a fan-in of 1,
    so its bound is 1 (nn.Embedding starts at N(0, 1) for the same reason). With the dense-input
    bound 1/√H instead (±0.044 at H=512) the characters are nearly indistinguishable to the
    gates and a 2-layer LSTM sits at the unigram loss for a hundred steps and more.

    The bound 1/√H gives W a spectral radius of about 1/√3 ≈ 0.58, so at the start the state
    neither explodes nor saturates and gradients flow back a useful number of steps. Zero biases
    make the first prediction nearly uniform (loss ≈ ln V). The LSTM forget-gate bias starts at 1:
    with f ≈ σ(1) ≈ 0.73 the cell state is kept from the start, so gradients reach back many steps
    before the network has learnt to keep it (Gers et al. 2000; Jozefowicz et al. 2015).
    With an input embedding (embed = D > 0) the network is the one a PyTorch user writes,
    nn.Embedding + nn.RNN/LSTM/GRU + nn.Linear, and starts from the same distributions: E ~ N(0, 1),
    every matrix ~ U(±1/√H), c ~ U(±1/√H), and each recurrent bias the sum of PyTorch's two,
    b = b_ih + b_hh with both ~ U(±1/√H) (the GRU's b_hn is its own U(±1/√H): `bn`); no forget-gate
    offset. Measured on two corpora (benchmarks/bench_learn.py) that is what learns as fast per
    step as the PyTorch script: the factored input path U E[x] lets Adam, which moves every
    parameter by about lr per step, change a character's projection through both factors at once.
    Matrices are drawn in `param_shapes` order from one `default_rng(seed)`.
    """
    if vocab_size < 1 or hidden_size < 1 or layers < 1:
        raise ValueError("vocab_size, hidden_size and layers must be >= 1")
    rng = np.random.default_rng(seed)
    H = hidden_size
    k = 1.0 / np.sqrt(H)
    first_U = "U" if (cell == "rnn" and layers == 1) else "L0.U"
    params = {}
    for name, shape in param_shapes(vocab_size, H, cell=cell, layers=layers, embed=embed).items():
        if name == "E":
            p = rng.standard_normal(shape).astype(dtype)
        elif embed and (name == "c" or name.endswith("bn")):
            p = rng.uniform(-k, k, size=shape).astype(dtype)
        elif embed and len(shape) == 1:               # b = b_ih + b_hh, the GRU's n block without b_hn
            p = rng.uniform(-k, k, size=shape).astype(dtype)
            rec = rng.uniform(-k, k, size=shape).astype(dtype)
            if cell == "gru":
                rec[2 * H:] = 0
            p += rec
        elif len(shape) == 1:
            p = np.zeros(shape, dtype=dtype)
            if cell == "lstm" and name.endswith("b"):
                p[H:2 * H] = 1.0                         # forget gate (order i, f, o, g)
        else:
            bound = 1.0 if (name == first_U and not embed) else k   # one-hot input: fan-in 1
            p = rng.uniform(-bound, bound, size=shape).astype(dtype)
        params[name] = p
    return params


def init_state(params: Mapping[str, Any], batch_size: int) -> Any:
    """The zero state: (L, S, B, H), or (B, H) for the seed's dict."""
    spec = describe(params)
    xp = xp_of(params["V"])
    if is_seed_rnn(params):
        return xp.zeros((batch_size, spec.hidden_size), dtype=params["V"].dtype)
    return xp.zeros((spec.layers, STATE_PARTS[spec.cell], batch_size, spec.hidden_size), dtype=params["V"].dtype)


def internal_state(params: Mapping[str, Any], state: Any, B: int) -> Any:
    """(L, S, B, H) view of a user's state (None = zeros; the seed's (B, H) gets two leading axes)."""
    if state is None:
        state = init_state(params, B)
    xp = xp_of(params["V"])
    state = xp.asarray(state, dtype=params["V"].dtype)
    if state.ndim == 2 and is_seed_rnn(params):
        return state.reshape((1, 1) + state.shape)
    return state


def external_state(params: Mapping[str, Any], state: Any, like: Any = None) -> Any:
    """An internal (L, S, B, H) state in the layout of `like` (the state the caller gave), or by
    default in the params' layout: (B, H) for the seed's dict, which also takes (1, 1, B, H)."""
    plain = is_seed_rnn(params) if like is None else getattr(like, "ndim", 4) == 2
    return state[0, 0] if plain else state


def embed_size(params: Mapping[str, Any]) -> int:
    """D of the input embedding E, 0 for one-hot input."""
    return int(params["E"].shape[1]) if "E" in params else 0


def dims(params: Mapping[str, Any]) -> tuple[int, int]:
    """(vocab_size, hidden_size) of a parameter set."""
    spec = describe(params)
    return spec.vocab_size, spec.hidden_size
