"""Speed machinery of the stacks must not change results: kept work buffers (charnn.nn.workspace) and
the compiled LSTM and GRU step kernels (charnn.nn.kernels) against the plain NumPy path."""
from __future__ import annotations

import numpy as np
import pytest

from charnn.nn import cells, kernels, workspace
from charnn import model as stack

def _lstm_run(dtype, T, B, H, rng):
    W = (rng.standard_normal((4 * H, H)) * 0.4).astype(dtype)
    a = rng.standard_normal((T, B, 4 * H)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    c0 = rng.standard_normal((B, H)).astype(dtype)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    hs, cache = cells.lstm_forward(a, W, h0, c0)
    hs, cs, tcs = hs.copy(), cache.cs.copy(), cache.tcs.copy()
    da, dW, dh0, dc0 = cells.lstm_backward(dhs, W, cache)
    return {"hs": hs, "cs": cs, "tanh c": tcs, "da": da.copy(), "dW": dW, "dh0": dh0, "dc0": dc0}


def _gru_run(dtype, T, B, H, rng):
    W = (rng.standard_normal((3 * H, H)) * 0.4).astype(dtype)
    bn = rng.standard_normal(H).astype(dtype)
    a = rng.standard_normal((T, B, 3 * H)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    hs, cache = cells.gru_forward(a, W, bn, h0)
    hs, gates, hn = hs.copy(), cache.gates.copy(), cache.hn.copy()
    da, dW, dbn, dh0 = cells.gru_backward(dhs, W, cache)
    return {"hs": hs, "gates": gates, "hn": hn, "da": da.copy(), "dW": dW, "dbn": dbn, "dh0": dh0}


_RUNS = {"lstm": _lstm_run, "gru": _gru_run}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-14), (np.float32, 2e-6)])
def test_compiled_steps_match_numpy(monkeypatch, cell, dtype, tol):
    """Forward and backward through T = 12 steps (compiled when T > 4) against the NumPy path."""
    run = lambda: _RUNS[cell](dtype, T=12, B=5, H=7, rng=np.random.default_rng(0))
    monkeypatch.setenv("CHARNN_NO_NUMBA", "1")
    assert not kernels.available()
    plain = run()
    monkeypatch.setenv("CHARNN_NO_NUMBA", "0")
    assert kernels.available()
    fused = run()
    for name, p in plain.items():
        f = fused[name]
        assert f.dtype == dtype, name
        err = np.abs(p - f).max() / max(np.abs(p).max(), 1e-30)
        assert err < tol, (name, err)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("T,compiled", [(12, True), (4, False)])
def test_cells_take_the_compiled_steps_for_numpy_sequences(monkeypatch, cell, T, compiled):
    """The forward and backward of each gated cell run its kernels for NumPy arrays when T > 4, and
    the plain loop otherwise (so the equality above is a comparison with the kernels, not of the
    NumPy path with itself)."""
    asked = []
    for name in (f"{cell}_forward_steps", f"{cell}_backward_step"):
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda real=real, name=name: asked.append(name) or real())
    monkeypatch.setenv("CHARNN_NO_NUMBA", "0")
    _RUNS[cell](np.float64, T=T, B=3, H=4, rng=np.random.default_rng(1))
    assert asked == ([f"{cell}_forward_steps", f"{cell}_backward_step"] if compiled else [])


def test_compiled_backward_step_is_the_formula():
    """One step of the kernel against the equations written out in float64."""
    rng = np.random.default_rng(3)
    B, H = 4, 6
    i, f, o = (1 / (1 + np.exp(-rng.standard_normal((B, H)))) for _ in range(3))
    g = np.tanh(rng.standard_normal((B, H)))
    at = np.concatenate([i, f, o, g], axis=1)
    dh, dc, c_prev = (rng.standard_normal((B, H)) for _ in range(3))
    tc = np.tanh(rng.standard_normal((B, H)))
    dc_t = dc + dh * o * (1 - tc ** 2)
    want = np.concatenate([dc_t * g * i * (1 - i), dc_t * c_prev * f * (1 - f),
                           dh * tc * o * (1 - o), dc_t * i * (1 - g ** 2)], axis=1)
    got_dc = dc.copy()
    kernels.lstm_backward_step()(at, dh, got_dc, tc, c_prev)
    np.testing.assert_allclose(at, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got_dc, dc_t * f, rtol=1e-14, atol=1e-15)


def _gru_step_inputs(B=4, H=6, seed=5):
    rng = np.random.default_rng(seed)
    r, u = (1 / (1 + np.exp(-rng.standard_normal((B, H)))) for _ in range(2))
    n = np.tanh(rng.standard_normal((B, H)))
    dh, dh_next, h_prev, hn = (rng.standard_normal((B, H)) for _ in range(4))
    rec = rng.standard_normal((H, B))
    return r, u, n, dh, dh_next, rec, h_prev, hn


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python-source"])
def test_gru_backward_step_is_the_formula(compiled):
    """One step of the kernel (compiled, and its Python source) against docs/cells.md (C.6) in float64."""
    r, u, n, dh, dh_next, rec, h_prev, hn = _gru_step_inputs()
    d = dh + dh_next + rec.T
    dn = d * (1 - u) * (1 - n ** 2)
    du = d * (h_prev - n) * u * (1 - u)
    dr = dn * hn * r * (1 - r)
    at = np.concatenate([r, u, n], axis=1)
    dq = np.empty_like(at)
    got_next = dh_next.copy()
    step = kernels.gru_backward_step() if compiled else kernels._gru_backward_step_py
    step(at, dh, got_next, rec, h_prev, hn, dq)
    np.testing.assert_allclose(at, np.concatenate([dr, du, dn], axis=1), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dq, np.concatenate([dr, du, dn * r], axis=1), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(got_next, d * u, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python-source"])
def test_gru_forward_passes_are_the_formula(compiled):
    """gates_in, tanh, candidate, tanh, output: one GRU step (docs/cells.md (C.5)) in float64."""
    rng = np.random.default_rng(6)
    B, H = 4, 6
    a = rng.standard_normal((B, 3 * H))
    q = rng.standard_normal((3 * H, B))
    bn, h_prev = rng.standard_normal(H), rng.standard_normal((B, H))
    sig = lambda x: 1 / (1 + np.exp(-x))
    r, u = sig(a[:, :H] + q[:H].T), sig(a[:, H:2 * H] + q[H:2 * H].T)
    hn_want = q[2 * H:].T + bn
    n = np.tanh(a[:, 2 * H:] + r * hn_want)
    if compiled:
        gates_in, candidate, output = kernels.gru_forward_steps()
    else:
        gates_in, candidate, output = kernels._gru_gates_in_py, kernels._gru_candidate_py, kernels._gru_output_py
    at, hn, h = a.copy(), np.empty((B, H)), np.empty((B, H))
    gates_in(at, q, bn, hn)
    np.tanh(at[:, :2 * H], out=at[:, :2 * H])
    candidate(at, hn)
    np.tanh(at[:, 2 * H:], out=at[:, 2 * H:])
    output(at, h_prev, h)
    np.testing.assert_allclose(hn, hn_want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(at, np.concatenate([r, u, n], axis=1), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(h, (1 - u) * n + u * h_prev, rtol=1e-13, atol=1e-15)


def _batch(V=11, B=6, T=9, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_reused_buffers_never_leak_into_results(cell):
    """Results are fresh arrays: a second call (same shapes, so the same kept buffers) leaves
    the first call's gradients and state untouched, and equal inputs give equal outputs."""
    params = stack.init_params(11, 8, seed=0, cell=cell, layers=2, dtype=np.float64)
    x, y = _batch()
    loss1, g1, s1 = stack.loss_and_grads(params, x, y)
    snap = {k: v.copy() for k, v in g1.items()}
    s1c = s1.copy()
    x2, y2 = _batch(seed=2)
    stack.loss_and_grads(params, x2, y2, s1)
    for k in g1:
        np.testing.assert_array_equal(g1[k], snap[k])
    np.testing.assert_array_equal(s1, s1c)
    loss3, g3, s3 = stack.loss_and_grads(params, x, y)
    assert loss3 == loss1
    for k in g1:
        np.testing.assert_array_equal(g3[k], snap[k])
    np.testing.assert_array_equal(s3, s1c)


def test_loss_and_grads_equals_forward_backward_without_workspace():
    params = stack.init_params(11, 8, seed=4, cell="lstm", layers=2, dtype=np.float64)
    x, y = _batch(seed=5)
    masks = stack.dropout_masks(np.random.default_rng(0), 0.3, 2, x.shape[1], x.shape[0], 8, np.float64)
    loss, grads, _ = stack.loss_and_grads(params, x, y, masks=masks)
    assert not workspace.active()
    loss2, cache = stack.forward(params, x, y, masks=masks)
    grads2, _ = stack.backward(params, cache)
    assert loss == loss2
    for k in grads:
        np.testing.assert_array_equal(grads[k], grads2[k])


def test_forward_outside_the_block_allocates_fresh_caches():
    """stack.forward is public: two caches alive at once must not share memory."""
    params = stack.init_params(11, 8, seed=0, cell="gru", layers=2, dtype=np.float64)
    x, y = _batch()
    _, c1 = stack.forward(params, x, y)
    probs = c1.probs.copy()
    stack.forward(params, *_batch(seed=9))
    np.testing.assert_array_equal(c1.probs, probs)


def test_workspace_keeps_one_buffer_per_name():
    with workspace.reusing() as ws:
        a = workspace.empty(np, "t.x", (3, 4), np.float32)
        assert workspace.empty(np, "t.x", (3, 4), np.float32) is a
        b = workspace.empty(np, "t.x", (5, 4), np.float32)          # new shape replaces
        assert b is not a and b.shape == (5, 4)
        assert ws.arrays["t.x"] is b
        c = workspace.empty(np, "t.x", (5, 4), np.float64)          # new dtype replaces
        assert c.dtype == np.float64
        with workspace.reusing():                                  # nesting keeps the same one
            assert workspace.empty(np, "t.x", (5, 4), np.float64) is c
        assert workspace.active()
    assert not workspace.active()
    fresh = workspace.empty(np, "t.x", (5, 4), np.float64)          # outside: always new
    assert fresh is not c
    workspace.release()
    with workspace.reusing() as ws:
        assert "t.x" not in ws.arrays


def test_each_thread_has_its_own_workspace():
    import threading

    seen = {}

    def work(name):
        with workspace.reusing():
            seen[name] = workspace.empty(np, "t.y", (2,), np.float64)

    threads = [threading.Thread(target=work, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["a"] is not seen["b"]


def test_take_path_refuses_out_of_range_ids():
    params = stack.init_params(11, 8, seed=0, cell="lstm", layers=1, dtype=np.float64)
    x, y = _batch()
    x[0, 0] = 11
    with pytest.raises(IndexError):
        stack.loss_and_grads(params, x, y)
