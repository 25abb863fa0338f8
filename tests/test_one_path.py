"""One model, one path: the text reader, the generation loop and the model API for every cell and layer count."""
from __future__ import annotations

import numpy as np
import pytest

from charnn import model
from charnn.nn import generate as gen
from charnn.nn import kernels

CASES = [("rnn", 1), ("rnn", 2), ("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 3)]
V, H = 11, 7


def net(cell, layers, seed=0, dtype=np.float64):
    p = model.init_params(V, H, seed=seed, dtype=dtype, cell=cell, layers=layers)
    rng = np.random.default_rng(seed + 100)
    for k in p:
        if p[k].ndim == 1:                       # nonzero biases: every term of the cells matters
            p[k] = p[k] + rng.uniform(-0.5, 0.5, p[k].shape).astype(dtype)
    return p


@pytest.mark.parametrize("cell,layers", CASES)
def test_init_names_and_describe(cell, layers):
    p = model.init_params(V, H, seed=0, cell=cell, layers=layers)
    assert model.describe(p) == (cell, layers, V, H)
    if (cell, layers) == ("rnn", 1):
        assert list(p) == ["W", "U", "V", "b", "c"]          # the seed's model, the seed's names
    assert {k: v.shape for k, v in p.items()} == model.param_shapes(V, H, cell=cell, layers=layers)
    U0 = p[model.prefixes(p)[0] + "U"]
    assert np.abs(U0).max() > 0.5                              # one-hot input: bound 1, not 1/sqrt(H)


@pytest.mark.parametrize("cell,layers", CASES)
def test_reader_internals_are_the_states_of_step_by_step_reading(cell, layers):
    p = net(cell, layers)
    ids = np.random.default_rng(1).integers(0, V, 40)
    chunks = list(model.read(p, ids, chunk=13, internals=True))
    assert [c.start for c in chunks] == [0, 13, 26]          # 39 predictions
    got = {k: np.concatenate([c.internals[k] for c in chunks])[:, 0] for k in model.internal_names(p)}
    logits = np.concatenate([c.logits for c in chunks])[:, 0]
    state = model.internal_state(p, None, 1)
    for t in range(len(ids) - 1):
        state, o = model.step(p, state, np.array([ids[t]]))
        np.testing.assert_allclose(logits[t], o[0], rtol=1e-12, atol=1e-13)
        for l in range(layers):
            np.testing.assert_allclose(got[f"L{l}.h"][t], state[l, 0, 0], rtol=1e-12, atol=1e-13)
            if cell == "lstm":
                np.testing.assert_allclose(got[f"L{l}.c"][t], state[l, 1, 0], rtol=1e-12, atol=1e-13)
    for name, a in got.items():
        if name.split(".")[1] in ("i", "f", "o", "r", "z"):   # sigmoid gates
            assert 0 < a.min() and a.max() < 1, name
    assert np.concatenate([c.targets for c in chunks])[:, 0].tolist() == ids[1:].tolist()
    final = model.internal_state(p, chunks[-1].state, 1)
    np.testing.assert_allclose(final, state, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("cell,layers", CASES)
def test_evaluate_is_the_sum_over_the_reader_and_streams_count_each_prediction_once(cell, layers):
    p = net(cell, layers, seed=2)
    ids = np.random.default_rng(3).integers(0, V, 300)
    total, n, _ = model.evaluate(p, ids, chunk=50)
    ref = 0.0
    state = model.internal_state(p, None, 1)
    for t in range(len(ids) - 1):
        state, o = model.step(p, state, np.array([ids[t]]))
        z = o[0] - o[0].max()
        ref += np.log(np.exp(z).sum()) - z[ids[t + 1]]
    assert n == 299 and total == pytest.approx(ref, rel=1e-12)
    weights = sum(c.weights.sum() for c in model.read(p, ids, streams=4, burn_in=20))
    assert weights == 299
    streamed, _, _ = model.evaluate(p, ids, streams=4, burn_in=299)   # burn-in covers the text: exact
    assert streamed == pytest.approx(total, rel=1e-10)


@pytest.mark.parametrize("cell,layers", CASES)
def test_compiled_generation_equals_numpy_for_every_cell(monkeypatch, cell, layers):
    p = net(cell, layers, seed=4)
    s0 = model.init_state(p, 2)
    x = np.array([3, 5])
    monkeypatch.setattr(gen, "KERNEL_MIN_CHARS", 0)
    monkeypatch.delenv("CHARNN_NO_NUMBA", raising=False)
    a, sa = model.generate(p, s0, x, 200, rng=np.random.default_rng(0), temperature=1.3)
    monkeypatch.setenv("CHARNN_NO_NUMBA", "1")
    b, sb = model.generate(p, s0, x, 200, rng=np.random.default_rng(0), temperature=1.3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sa, sb, rtol=1e-12, atol=1e-13)


def test_kernel_loads_in_the_background_and_reports_when_ready(monkeypatch):
    monkeypatch.delenv("CHARNN_NO_NUMBA", raising=False)
    kernels.preload_generate(np.float32)
    assert kernels.wait_generate(np.float32)
    monkeypatch.setenv("CHARNN_NO_NUMBA", "1")
    assert not kernels.wait_generate(np.float32)


@pytest.mark.parametrize("cell,layers", [("rnn", 1), ("lstm", 2)])
def test_streamed_chunks_are_the_text_of_one_call(monkeypatch, cell, layers):
    """Chunks grow from a short first one; together they are model.generate's text, state included."""
    monkeypatch.setattr(gen, "KERNEL_MIN_CHARS", 0)
    p = net(cell, layers, seed=5)
    x = np.array([1])
    whole, s_whole = model.generate(p, None, x, 3000, rng=np.random.default_rng(9))
    g = model.Generation(p, None, x, 3000, rng=np.random.default_rng(9), first_chunk=100)
    parts = list(g)
    assert [q.shape[1] for q in parts[:3]] == [100, 200, 400] and sum(q.shape[1] for q in parts) == 3000
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    np.testing.assert_allclose(g.state, s_whole, rtol=1e-12, atol=1e-13)


def test_state_layout_follows_the_caller():
    """The seed's model takes its plain (B, H) h or the (1, 1, B, H) layout of every other network,
    and answers in the layout it was given."""
    p = net("rnn", 1, seed=6)
    x = np.random.default_rng(0).integers(0, V, (3, 8))
    h = np.random.default_rng(1).uniform(-0.5, 0.5, (3, H))
    l1, g1, s1 = model.loss_and_grads(p, x, x, h)
    l2, g2, s2 = model.loss_and_grads(p, x, x, h[None, None])
    assert s1.shape == (3, H) and s2.shape == (1, 1, 3, H) and l1 == l2
    np.testing.assert_array_equal(s1, s2[0, 0])
    _, _, d2 = model.loss_grads_dh0(p, x, x, h[None, None])
    assert d2.shape == (1, 1, 3, H)
