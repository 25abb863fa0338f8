"""The continuous cache (charnn.eval.cache) against a literal per-position transcription."""
from __future__ import annotations

import math

import numpy as np
import pytest

from charnn.eval import cache as neural_cache
from charnn import model as stack


def _model(cell="gru", layers=2, V=7, H=6, seed=0):
    return stack.init_params(V, H, seed=seed, cell=cell, layers=layers, dtype=np.float64)


def _reference(params, ids, size, theta):
    """One position at a time: states from stack.step, the window searched by a Python loop."""
    state = stack.internal_state(params, None, 1)
    hs, pm = [], []
    for t in range(len(ids) - 1):
        state, logits = stack.step(params, state, np.array([ids[t]]))
        z = logits[0] - logits[0].max()
        pm.append(math.exp(z[ids[t + 1]]) / np.exp(z).sum())
        hs.append(np.asarray(state[-1, 0, 0], dtype=np.float64))
    pc = []
    for t in range(len(ids) - 1):
        window = range(max(0, t - size), t)
        if not window:
            pc.append(pm[t])
            continue
        cos = lambda a, b: a @ b / (np.linalg.norm(a) * np.linalg.norm(b))  # noqa: E731
        w = {i: math.exp(theta * cos(hs[t], hs[i])) for i in window}
        pc.append(sum(v for i, v in w.items() if ids[i + 1] == ids[t + 1]) / sum(w.values()))
    return np.array(pm), np.array(pc)


@pytest.mark.parametrize("cell,layers", [("rnn", 1), ("gru", 2), ("lstm", 2)])
def test_cache_matches_the_per_position_definition(cell, layers):
    params = _model(cell, layers)
    ids = np.random.default_rng(1).integers(0, 7, 40)
    pm, pc = neural_cache.cache_probs(params, ids, size=9, thetas=[0.0, 3.0, 20.0], chunk=7)
    for k, theta in enumerate([0.0, 3.0, 20.0]):
        ref_m, ref_c = _reference(params, ids, 9, theta)
        np.testing.assert_allclose(pm, ref_m, rtol=1e-10)
        np.testing.assert_allclose(pc[k], ref_c, rtol=1e-9, atol=1e-14)


def test_vanilla_model_and_chunking_do_not_matter():
    from charnn import model

    params = model.init_params(7, 5, seed=3, dtype=np.float64)
    ids = np.random.default_rng(2).integers(0, 7, 50)
    a = neural_cache.cache_probs(params, ids, size=12, thetas=[5.0], chunk=4)
    b = neural_cache.cache_probs(params, ids, size=12, thetas=[5.0], chunk=256)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-12)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12)
    # the plain model's loss is charnn.model.evaluate's
    total, n, _ = model.evaluate(params, ids)
    assert neural_cache.mixture_nats(a[0], a[1][0], 0.0) == pytest.approx(total / n, rel=1e-12)


def test_cache_is_causal():
    params = _model()
    ids = np.random.default_rng(4).integers(0, 7, 30)
    other = ids.copy()
    other[20:] = (other[20:] + 3) % 7
    pm, pc = neural_cache.cache_probs(params, ids, size=50, thetas=[10.0])
    qm, qc = neural_cache.cache_probs(params, other, size=50, thetas=[10.0])
    # predictions of ids[1..19] read only ids[0..19]
    np.testing.assert_array_equal(pm[:19], qm[:19])
    np.testing.assert_array_equal(pc[:, :19], qc[:, :19])


def test_cache_learns_a_repeated_unknown_word():
    """A text that repeats one pattern: the cache's share of the truth grows on every repeat."""
    params = _model(seed=5)
    ids = np.tile(np.array([1, 4, 2, 6, 3]), 12)
    pm, pc = neural_cache.cache_probs(params, ids, size=100, thetas=[50.0])
    assert pc[0, -10:].min() > 0.85
    plain = neural_cache.mixture_nats(pm, pc[0], 0.0)
    mixed = neural_cache.mixture_nats(pm, pc[0], 0.5)
    assert mixed < plain - 0.3


def test_tune_and_bad_values():
    pm = np.array([0.5, 0.25, 0.5])
    pc = np.array([[0.5, 0.25, 0.5], [1.0, 1.0, 1.0]])
    theta, lam, nats = neural_cache.tune(pm, pc, [1.0, 2.0], [0.0, 0.5, 1.0])
    assert (theta, lam, nats) == (2.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        neural_cache.mixture_nats(pm, pc[0], 1.5)
    with pytest.raises(ValueError):
        neural_cache.cache_probs(_model(), np.array([1, 2, 3]), size=0, thetas=[1.0])
