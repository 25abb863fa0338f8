"""The seed model's fast path (charnn.nn.fast_rnn, chosen by charnn.model.loss_and_grads) against the
plain per-step reference and the generic network path, and the compiled generation loop against its
NumPy fallback. Correctness only: no timing thresholds here (see benchmarks/)."""
from __future__ import annotations

import numpy as np
import pytest

from charnn import model
from charnn.nn import fast_rnn, kernels, network, parallel
from charnn.nn import generate as gen
from reference import reference_loss_and_grads

SHAPES = [  # (V, H, B, T)
    (5, 3, 1, 1),
    (7, 4, 1, 13),
    (11, 6, 3, 9),
    (65, 16, 4, 20),
]


def assert_matches_reference(p, loss, grads, h_last=None, dh0=None, *, rtol=1e-10, atol=1e-12):
    ref_loss, ref_grads, ref_h, ref_dh0 = reference_loss_and_grads(p.params, p.inputs, p.targets, p.h0)
    assert loss == pytest.approx(ref_loss, rel=rtol, abs=atol)
    for k in model.PARAM_NAMES:
        assert grads[k].shape == p.params[k].shape, k
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=rtol, atol=atol, err_msg=k)
    if h_last is not None:
        np.testing.assert_allclose(h_last, ref_h, rtol=rtol, atol=atol)
    if dh0 is not None:
        np.testing.assert_allclose(dh0, ref_dh0, rtol=rtol, atol=atol)


@pytest.fixture
def kernel_mode(monkeypatch):
    """Choose the sampling path: 'kernel' (the compiled loop, at any length) or 'numpy' (the
    pure-NumPy fallback, as with CHARNN_NO_NUMBA=1)."""
    def use(mode):
        if mode == "kernel":
            monkeypatch.delenv("CHARNN_NO_NUMBA", raising=False)
            monkeypatch.setattr(gen, "KERNEL_MIN_CHARS", 0)
            assert kernels.available(), "numba is a runtime dependency: the compiled path must load"
        else:
            monkeypatch.setenv("CHARNN_NO_NUMBA", "1")
            assert not kernels.available()
    return use


@pytest.mark.parametrize("V,H,B,T", SHAPES)
def test_loss_and_grads_equals_reference_float64(make_problem, V, H, B, T):
    p = make_problem(V, H, B, T, seed=V + T)
    loss, grads, h_last = model.loss_and_grads(p.params, p.inputs, p.targets, p.h0)
    assert all(g.dtype == np.float64 for g in grads.values())
    _, _, dh0 = model.loss_grads_dh0(p.params, p.inputs, p.targets, p.h0)
    assert_matches_reference(p, loss, grads, h_last, dh0)


@pytest.mark.parametrize("V,H,B,T", SHAPES)
def test_fast_path_equals_the_generic_network_path(make_problem, V, H, B, T):
    """The one place that chooses fast_rnn (model.loss_and_grads) must not change a number."""
    p = make_problem(V, H, B, T, seed=V + 2 * T)
    loss, grads, h_last = fast_rnn.loss_and_grads_one(p.params, p.inputs, p.targets, p.h0)
    ref_loss, cache = network.forward(p.params, p.inputs, p.targets, p.h0)
    ref_grads, _ = network.backward(p.params, cache)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for k in model.PARAM_NAMES:
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=1e-10, atol=1e-13, err_msg=k)
    np.testing.assert_allclose(h_last, cache.state[0, 0], rtol=1e-12, atol=1e-14)


def test_model_chooses_the_fast_path_only_for_the_seed_model_without_dropout(make_problem, monkeypatch):
    calls = []
    real = fast_rnn.loss_and_grads_one
    monkeypatch.setattr(fast_rnn, "loss_and_grads_one", lambda *a: calls.append(1) or real(*a))
    p = make_problem(11, 6, 2, 7, seed=12)
    model.loss_and_grads(p.params, p.inputs, p.targets, p.h0)
    assert calls == [1]
    masks = model.dropout_masks(np.random.default_rng(0), 0.5, 1, 7, 2, 6, np.float64)
    model.loss_and_grads(p.params, p.inputs, p.targets, p.h0, masks=masks)
    lstm = model.init_params(11, 6, seed=0, dtype=np.float64, cell="lstm")
    model.loss_and_grads(lstm, p.inputs, p.targets)
    assert calls == [1]


def test_zero_initial_state_and_saturated_weights(make_problem):
    p = make_problem(9, 5, 2, 12, seed=3, scale=6.0)          # tanh saturates: 1 − h² near 0
    p.h0[...] = 0
    loss, grads, h_last = model.loss_and_grads(p.params, p.inputs, p.targets, None)
    assert_matches_reference(p, loss, grads, h_last)


def test_public_forward_backward_equal_reference_and_backward_is_repeatable(make_problem):
    p = make_problem(11, 6, 3, 9, seed=1)
    loss, cache = fast_rnn.forward(p.params, p.inputs, p.targets, p.h0)
    np.testing.assert_allclose(cache.probs.sum(axis=1), 1.0, rtol=1e-12)
    g1, d1 = fast_rnn.backward(p.params, cache)
    g2, d2 = fast_rnn.backward(p.params, cache)                  # the cache is not consumed twice
    assert_matches_reference(p, loss, g1, cache.hs[-1], d1)
    assert_matches_reference(p, loss, g2, cache.hs[-1], d2)


def test_backward_from_a_hand_built_cache(make_problem):
    p = make_problem(7, 4, 2, 5, seed=2)
    loss, cache = fast_rnn.forward(p.params, p.inputs, p.targets, p.h0)
    plain = fast_rnn.Cache(x=np.array(cache.x), y=np.array(cache.y), hs=np.array(cache.hs), probs=np.array(cache.probs))
    grads, dh0 = fast_rnn.backward(p.params, plain)
    assert_matches_reference(p, loss, grads, None, dh0)


def test_forward_caches_stay_valid_across_calls(make_problem):
    a, b = make_problem(7, 4, 2, 5, seed=4), make_problem(7, 4, 2, 5, seed=5)
    la, ca = fast_rnn.forward(a.params, a.inputs, a.targets, a.h0)
    fast_rnn.forward(b.params, b.inputs, b.targets, b.h0)       # same shapes: must not overwrite ca
    ga, _ = fast_rnn.backward(a.params, ca)
    assert_matches_reference(a, la, ga)


def test_reused_workspace_does_not_leak_between_calls(make_problem):
    """loss_and_grads reuses buffers per shape: results must be fresh and independent of history."""
    a, b = make_problem(13, 8, 3, 10, seed=6), make_problem(13, 8, 3, 10, seed=7)
    first = model.loss_and_grads(a.params, a.inputs, a.targets, a.h0)
    kept = {k: v.copy() for k, v in first[1].items()}
    model.loss_and_grads(b.params, b.inputs, b.targets, None)
    again = model.loss_and_grads(a.params, a.inputs, a.targets, a.h0)
    assert again[0] == first[0]
    for k in model.PARAM_NAMES:
        np.testing.assert_array_equal(first[1][k], kept[k])    # not overwritten by later calls
        np.testing.assert_array_equal(again[1][k], kept[k])
    np.testing.assert_array_equal(again[2], first[2])


def test_float32_fast_path_close_to_float64_reference(make_problem):
    p64 = make_problem(65, 32, 4, 30, seed=8)
    p32 = p64.astype(np.float32)
    loss, grads, h_last = model.loss_and_grads(p32.params, p32.inputs, p32.targets, p32.h0)
    assert all(g.dtype == np.float32 for g in grads.values()) and h_last.dtype == np.float32
    assert_matches_reference(p64, loss, grads, h_last, rtol=2e-4, atol=2e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_any_integer_id_dtype(make_problem, dtype):
    p = make_problem(11, 6, 2, 7, seed=9)
    p.inputs, p.targets = p.inputs.astype(dtype), p.targets.astype(dtype)
    loss, grads, h_last = model.loss_and_grads(p.params, p.inputs, p.targets, p.h0)
    assert_matches_reference(p, loss, grads, h_last)


@pytest.mark.parametrize("bad", [-1, 11])
def test_out_of_range_ids_raise(make_problem, bad):
    p = make_problem(11, 6, 2, 7, seed=10)
    x = p.inputs.copy()
    x[1, 3] = bad
    with pytest.raises(IndexError):
        model.loss_and_grads(p.params, x, p.targets, p.h0)
    with pytest.raises(IndexError):
        model.loss_and_grads(p.params, p.inputs, x, p.h0)


def test_evaluate_is_the_loss_of_reading_the_text_in_order(make_problem):
    p = make_problem(9, 5, 1, 1, seed=11)
    ids = np.random.default_rng(0).integers(0, 9, size=58).astype(np.uint8)
    total, n, h = model.evaluate(p.params, ids, h0=p.h0, chunk=1000)
    ref_loss, _, ref_h, _ = reference_loss_and_grads(p.params, ids[None, :-1], ids[None, 1:], p.h0)
    assert n == 57
    assert total == pytest.approx(ref_loss * n, rel=1e-12)
    np.testing.assert_allclose(h, ref_h, rtol=1e-12, atol=1e-14)
    for chunk in (1, 7, 57):                                   # chunking changes nothing
        t2, n2, h2 = model.evaluate(p.params, ids, h0=p.h0, chunk=chunk)
        assert n2 == n and t2 == pytest.approx(total, rel=1e-12)
        np.testing.assert_allclose(h2, h, rtol=1e-12, atol=1e-14)


# -- generation ---------------------------------------------------------------------------

def plain_generate(params, h, x, n, rng, temperature=1.0, top_k=0, greedy=False):
    """The definition, one model.step at a time with one rng.random(B) per step."""
    B = h.shape[0]
    out = np.empty((B, n), dtype=np.int64)
    for i in range(n):
        if x is None:
            logits = h @ params["V"].T + params["c"]
        else:
            h, logits = model.step(params, h, x)
        if greedy:
            nxt = logits.argmax(axis=1)
        else:
            z = logits.astype(np.float64) / temperature
            if 0 < top_k < z.shape[1]:
                kth = np.sort(z, axis=1)[:, -top_k][:, None]
                z = np.where(z >= kth, z, -np.inf)
            cdf = np.cumsum(np.exp(z - z.max(axis=1, keepdims=True)), axis=1)
            u = rng.random(B) * cdf[:, -1]
            nxt = np.array([min(int(np.searchsorted(row, ui, side="left")), z.shape[1] - 1)
                            for row, ui in zip(cdf, u)])
        out[:, i] = nxt
        x = nxt
    return out, h


GEN_CASES = [  # (B, x given, options)
    (1, False, {}),
    (1, True, {"temperature": 1.5}),
    (3, True, {"top_k": 4}),
    (2, False, {"greedy": True}),
    (2, True, {"temperature": 0.5, "top_k": 1}),
]


def gen_problem(B, with_x, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = model.init_params(17, 12, seed=seed, dtype=np.float64)
    params["W"] *= 2.0
    params["b"] = rng.uniform(-0.5, 0.5, 12)
    params["c"] = rng.uniform(-1, 1, 17)
    params = {k: v.astype(dtype) for k, v in params.items()}
    h = rng.uniform(-0.5, 0.5, (B, 12)).astype(dtype)
    x = rng.integers(0, 17, B) if with_x else None
    return params, h, x


@pytest.mark.parametrize("mode", ["numpy", "kernel"])
@pytest.mark.parametrize("B,with_x,opts", GEN_CASES)
def test_generate_equals_the_plain_definition(kernel_mode, mode, B, with_x, opts):
    kernel_mode(mode)
    params, h, x = gen_problem(B, with_x, seed=B)
    ids, h_end = model.generate(params, h.copy(), x, 60, rng=np.random.default_rng(3), **opts)
    ref, ref_h = plain_generate(params, h.copy(), x, 60, np.random.default_rng(3), **opts)
    assert ids.shape == (B, 60) and ids.dtype == np.int64
    np.testing.assert_array_equal(ids, ref)
    np.testing.assert_allclose(h_end, ref_h, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("B,with_x,opts", GEN_CASES)
def test_compiled_kernel_equals_numpy_fallback(kernel_mode, B, with_x, opts):
    params, h, x = gen_problem(B, with_x, seed=10 + B)
    kernel_mode("kernel")
    a, ha = model.generate(params, h, x, 300, rng=np.random.default_rng(4), **opts)
    kernel_mode("numpy")
    b, hb = model.generate(params, h, x, 300, rng=np.random.default_rng(4), **opts)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ha, hb, rtol=1e-12, atol=1e-13)


def test_compiled_kernel_float32(kernel_mode):
    params, h, x = gen_problem(1, True, seed=20, dtype=np.float32)
    kernel_mode("kernel")
    a, ha = model.generate(params, h, x, 40, rng=np.random.default_rng(5), temperature=1.5)
    kernel_mode("numpy")
    b, hb = model.generate(params, h, x, 40, rng=np.random.default_rng(5), temperature=1.5)
    assert ha.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ha, hb, rtol=1e-4, atol=1e-5)


def test_kernel_source_runs_as_plain_python():
    """The kernel's Python source is itself correct (what numba compiles), checked uncompiled."""
    params, h, x = gen_problem(2, True, seed=30)
    u = np.random.default_rng(6).random((25, 2))
    out = np.empty((2, 25), dtype=np.int64)
    state = h.copy()[None, None]
    kernels._generate_py(*gen.pack(params), state, x, True, u, 1.2, 0, False, out)
    ref, ref_h = plain_generate(params, h.copy(), x, 25, np.random.default_rng(6), temperature=1.2)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_allclose(state[0, 0], ref_h, rtol=1e-12, atol=1e-13)


def test_no_numba_env_var_forces_the_numpy_path(monkeypatch):
    calls = []
    monkeypatch.setattr(gen, "KERNEL_MIN_CHARS", 0)
    monkeypatch.setattr(kernels, "generate", lambda *a, **k: calls.append(1) or np.zeros((1, 5), np.int64))
    params, h, x = gen_problem(1, True)
    monkeypatch.setenv("CHARNN_NO_NUMBA", "1")
    model.generate(params, h, x, 5, rng=np.random.default_rng(0))
    assert calls == []
    monkeypatch.setenv("CHARNN_NO_NUMBA", "0")
    model.generate(params, h, x, 5, rng=np.random.default_rng(0))
    assert calls == [1]


@pytest.mark.parametrize("mode", ["numpy", "kernel"])
def test_generate_is_deterministic_per_seed_and_continues_seamlessly(kernel_mode, mode):
    kernel_mode(mode)
    params, h, x = gen_problem(2, True, seed=40)
    a, ha = model.generate(params, h, x, 50, rng=np.random.default_rng(7))
    b, hb = model.generate(params, h, x, 50, rng=np.random.default_rng(7))
    c, _ = model.generate(params, h, x, 50, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ha, hb)
    assert not np.array_equal(a, c)
    # 50 characters in one call == 20 then 30 from the returned state and last id (one rng).
    rng = np.random.default_rng(7)
    first, h1 = model.generate(params, h, x, 20, rng=rng)
    second, h2 = model.generate(params, h1, first[:, -1], 30, rng=rng)
    np.testing.assert_array_equal(np.concatenate([first, second], axis=1), a)
    np.testing.assert_allclose(h2, ha, rtol=1e-12, atol=1e-13)


def test_generate_does_not_modify_the_callers_state():
    params, h, x = gen_problem(2, True)
    h_before = h.copy()
    model.generate(params, h, x, 10, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(h, h_before)


# -- batch sharding over threads ------------------------------------------------------------

@pytest.mark.parametrize("shards", [2, 3])
def test_sharded_batch_equals_reference(make_problem, monkeypatch, shards):
    monkeypatch.setattr(parallel, "num_shards", lambda xp, B: shards)
    p = make_problem(13, 8, 7, 11, seed=50 + shards)            # 7 rows: uneven shards
    loss, grads, h_last = model.loss_and_grads(p.params, p.inputs, p.targets, p.h0)
    _, _, dh0 = model.loss_grads_dh0(p.params, p.inputs, p.targets, p.h0)
    assert h_last.shape == (7, 8) and dh0.shape == (7, 8)
    assert_matches_reference(p, loss, grads, h_last, dh0)
    loss0, grads0, h0_last = model.loss_and_grads(p.params, p.inputs, p.targets, None)
    p.h0[...] = 0
    assert_matches_reference(p, loss0, grads0, h0_last)


def test_sharding_restores_blas_threads_and_reports_errors(make_problem, monkeypatch):
    monkeypatch.setattr(parallel, "num_shards", lambda xp, B: 2)
    before = [lc.num_threads for lc in parallel.blas_controllers()]
    p = make_problem(13, 8, 6, 5, seed=60)
    bad = p.targets.copy()
    bad[5, 0] = 13                                               # in the second shard
    with pytest.raises(IndexError):
        model.loss_and_grads(p.params, p.inputs, bad, p.h0)
    assert [lc.num_threads for lc in parallel.blas_controllers()] == before


def test_shard_count_follows_the_blas_thread_limit():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    assert parallel.num_shards(np, 4) == 1                         # too few rows to split
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert parallel.num_shards(np, 128) == 1
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        threads = min(lc.num_threads for lc in parallel.blas_controllers())
        assert parallel.num_shards(np, 128) == min(threads, 2)


def test_concurrent_callers_restore_blas_threads(make_problem):
    """Several threads training at once (each sharding or single-threading BLAS) leave the BLAS
    thread counts as they found them, and each gets its own correct result."""
    from concurrent.futures import ThreadPoolExecutor

    before = [lc.num_threads for lc in parallel.blas_controllers()]
    problems = [make_problem(13, 8, 16 + 3 * i, 6, seed=70 + i) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda p: model.loss_and_grads(p.params, p.inputs, p.targets, p.h0), problems * 3))
    assert [lc.num_threads for lc in parallel.blas_controllers()] == before
    for p, (loss, grads, h_last) in zip(problems * 3, results):
        assert_matches_reference(p, loss, grads, h_last)


@pytest.mark.parametrize("mode", ["numpy", "kernel"])
def test_generate_rejects_out_of_range_prompt_ids(kernel_mode, mode):
    kernel_mode(mode)
    params, h, _ = gen_problem(1, True)
    with pytest.raises(IndexError):
        model.generate(params, h, np.array([17]), 10, rng=np.random.default_rng(0))
