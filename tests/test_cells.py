"""LSTM, GRU and stacked RNN layers: float64 finite-difference gradient checks and consistency tests."""
from __future__ import annotations

import numpy as np
import pytest

from charnn.eval import gradcheck
from charnn import model, model as stack

CELLS = ("rnn", "lstm", "gru")
V, H, B, T = 7, 5, 3, 6


def random_stack(cell: str, layers: int, *, seed: int = 0, dtype=np.float64):
    """Params with nonzero biases, a nonzero initial state and a random batch."""
    rng = np.random.default_rng(seed)
    p = stack.init_params(V, H, seed=seed, dtype=np.float64, cell=cell, layers=layers)
    for k in p:
        if p[k].ndim == 1:
            p[k] = p[k] + rng.uniform(-0.4, 0.4, p[k].shape)
    S = 2 if cell == "lstm" else 1
    s0 = rng.uniform(-0.6, 0.6, (layers, S, B, H))
    x = rng.integers(0, V, (B, T))
    y = rng.integers(0, V, (B, T))
    return {k: v.astype(dtype) for k, v in p.items()}, x, y, s0.astype(dtype), rng


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("p_drop", [0.0, 0.3])
def test_gradcheck_every_cell(cell, layers, p_drop):
    params, x, y, s0, rng = random_stack(cell, layers, seed=layers)
    masks = stack.dropout_masks(rng, p_drop, layers, T, B, H, np.float64) if p_drop else None
    rows = gradcheck.gradcheck(params, x, y, s0, masks=masks, max_checks=25)
    assert {r.name for r in rows} == set(params) | {"h0"}
    assert all(r.passed for r in rows), gradcheck.format_table(rows)


def test_vanilla_dict_through_the_stack_equals_model():
    params = model.init_params(V, H, seed=3, dtype=np.float64)
    rng = np.random.default_rng(3)
    params["b"] += rng.uniform(-0.3, 0.3, H)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    h0 = rng.uniform(-0.5, 0.5, (B, H))
    l1, g1, h1 = model.loss_and_grads(params, x, y, h0)
    l2, g2, h2 = stack.loss_and_grads(params, x, y, h0)
    assert l1 == pytest.approx(l2, abs=1e-12)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], atol=1e-12)
    np.testing.assert_allclose(h1, h2, atol=1e-12)
    assert stack.init_state(params, B).shape == (B, H)


def test_vanilla_dict_with_dropout_gradchecks():
    params = model.init_params(V, H, seed=4, dtype=np.float64)
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    masks = stack.dropout_masks(rng, 0.5, 1, T, B, H, np.float64)
    rows = gradcheck.gradcheck(params, x, y, rng.uniform(-0.5, 0.5, (B, H)), masks=masks, max_checks=20)
    assert all(r.passed for r in rows), gradcheck.format_table(rows)


@pytest.mark.parametrize("cell", CELLS)
def test_model_api_dispatches_every_cell(cell):
    p = model.init_params(V, H, seed=1, dtype=np.float64, cell=cell, layers=2)
    assert stack.describe(p) == (cell, 2, V, H)
    x = np.arange(B * T).reshape(B, T) % V
    loss, grads, state = model.loss_and_grads(p, x, x)
    assert set(grads) == set(p) and np.isfinite(loss)
    assert state.shape == (2, 2 if cell == "lstm" else 1, B, H)
    loss2, _, _ = model.loss_and_grads(p, x, x, state)
    assert np.isfinite(loss2)


def test_model_init_params_default_is_unchanged():
    a = model.init_params(V, H, seed=5)
    b = model.init_params(V, H, seed=5, cell="rnn", layers=1)
    assert set(a) == {"W", "U", "V", "b", "c"} and a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_init_shapes_and_forget_bias():
    p = stack.init_params(V, H, seed=0, cell="lstm", layers=2)
    assert p["L0.W"].shape == (4 * H, H) and p["L0.U"].shape == (4 * H, V)
    assert p["L1.U"].shape == (4 * H, H) and p["V"].shape == (V, H)
    np.testing.assert_array_equal(p["L0.b"][H:2 * H], 1.0)      # forget gate (order i, f, o, g)
    np.testing.assert_array_equal(p["L0.b"][:H], 0.0)
    g = stack.init_params(V, H, seed=0, cell="gru", layers=1)
    assert g["L0.W"].shape == (3 * H, H) and g["L0.bn"].shape == (H,)
    assert stack.cell_of(g) == "gru" and stack.cell_of(p) == "lstm"
    with pytest.raises(ValueError):
        stack.init_params(V, H, seed=0, cell="transformer")


@pytest.mark.parametrize("cell", CELLS)
def test_state_carry_equals_one_long_pass(cell):
    params, x, y, s0, _ = random_stack(cell, 2, seed=7)
    full, _ = stack.forward(params, x, y, s0)
    la, _, s_mid = stack.loss_and_grads(params, x[:, :2], y[:, :2], s0)
    lb, _, _ = stack.loss_and_grads(params, x[:, 2:], y[:, 2:], s_mid)
    assert full == pytest.approx((2 * la + (T - 2) * lb) / T, abs=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_step_matches_forward(cell):
    params, x, y, s0, _ = random_stack(cell, 2, seed=8)
    _, cache = stack.forward(params, x, y, s0)
    logp_seq = np.log(cache.probs.reshape(T, B, V))
    s = s0
    for t in range(T):
        s, logits = stack.step(params, s, x[:, t])
        ref = logits - logits.max(axis=1, keepdims=True)
        ref -= np.log(np.exp(ref).sum(axis=1, keepdims=True))
        np.testing.assert_allclose(ref, logp_seq[t], atol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
def test_evaluate_exact_and_streams(cell):
    params, _, _, _, rng = random_stack(cell, 2, seed=9)
    ids = rng.integers(0, V, 200)
    total, n, _ = stack.evaluate(params, ids, chunk=37)
    ref, _ = stack.forward(params, ids[None, :-1], ids[None, 1:])
    assert n == 199 and total == pytest.approx(ref * n, rel=1e-12)
    # Streams that all read from the start (burn-in >= n) reproduce the exact pass.
    tot_s, n_s, _ = stack.evaluate(params, ids, streams=4, burn_in=200, chunk=29)
    assert n_s == n and tot_s == pytest.approx(total, rel=1e-10)
    tot_short, _, _ = stack.evaluate(params, ids, streams=4, burn_in=10)
    assert np.isfinite(tot_short)


@pytest.mark.parametrize("cell", CELLS)
def test_generate_is_deterministic(cell):
    params, _, _, _, _ = random_stack(cell, 2, seed=10)
    st = stack.init_state(params, 2)
    a, sa = stack.generate(params, st, np.array([1, 2]), 15, rng=np.random.default_rng(0), temperature=0.8)
    b, sb = stack.generate(params, st, np.array([1, 2]), 15, rng=np.random.default_rng(0), temperature=0.8)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 15) and a.max() < V and sa.shape == st.shape
    g, _ = stack.generate(params, st, None, 5, rng=np.random.default_rng(0), greedy=True)
    assert g.shape == (2, 5)


def test_dropout_masks():
    rng = np.random.default_rng(0)
    (m,) = stack.dropout_masks(rng, 0.25, 1, 50, 20, 30, np.float32)
    assert m.dtype == np.float32 and set(np.unique(m)) == {0.0, np.float32(1 / 0.75)}
    assert abs((m == 0).mean() - 0.25) < 0.03
    (one,) = stack.dropout_masks(rng, 0.0, 1, 2, 2, 2)
    assert (one == 1).all()
    with pytest.raises(ValueError):
        stack.dropout_masks(rng, 1.0, 1, 2, 2, 2)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_matches_float64(cell):
    p64, x, y, s0, _ = random_stack(cell, 2, seed=11)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    l64, g64, _ = stack.loss_and_grads(p64, x, y, s0)
    l32, g32, s32 = stack.loss_and_grads(p32, x, y, s0.astype(np.float32))
    assert l32 == pytest.approx(l64, rel=1e-5)
    assert s32.dtype == np.float32 and all(g.dtype == np.float32 for g in g32.values())
    for k in g64:
        np.testing.assert_allclose(g32[k], g64[k], atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_training_reduces_loss(cell):
    from charnn.train.optim import Adam

    rng = np.random.default_rng(0)
    text = np.tile(np.array([0, 1, 2, 3, 4, 5, 6, 2, 4]), 40)
    p = stack.init_params(V, 16, seed=0, cell=cell, layers=2)
    opt = Adam(1e-2)
    x, y = text[:240].reshape(4, 60), text[1:241].reshape(4, 60)
    first = None
    for i in range(60):
        masks = stack.dropout_masks(rng, 0.1, 2, 60, 4, 16)
        loss, grads, _ = stack.loss_and_grads(p, x, y, masks=masks)
        first = loss if first is None else first
        opt.step(p, grads)
    assert loss < 0.5 * first


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_stack_batch_shards_equal_one_pass(monkeypatch, cell):
    """Shards in threads (charnn.nn.parallel) give the loss, gradients and final state of one pass."""
    from charnn.nn import parallel
    params = stack.init_params(17, 12, seed=5, dtype=np.float64, cell=cell, layers=2)
    rng = np.random.default_rng(6)
    B, T = 37, 9
    x, y = rng.integers(0, 17, size=(B, T)), rng.integers(0, 17, size=(B, T))
    h0 = rng.normal(size=stack.init_state(params, B).shape)
    masks = stack.dropout_masks(rng, 0.3, 2, T, B, 12, np.float64)
    monkeypatch.setattr(parallel, "num_shards", lambda xp, B: 1)
    loss1, g1, s1 = stack.loss_and_grads(params, x, y, h0, masks=masks)
    monkeypatch.setattr(parallel, "num_shards", lambda xp, B: 3)
    loss3, g3, s3 = stack.loss_and_grads(params, x, y, h0, masks=masks)
    assert loss3 == pytest.approx(loss1, rel=1e-14)
    for k in g1:
        np.testing.assert_allclose(g3[k], g1[k], rtol=1e-12, atol=1e-16, err_msg=k)
    np.testing.assert_array_equal(s3, s1)
