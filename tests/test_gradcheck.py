"""The hand-written backward pass against finite differences, and the fast model against the plain reference.

1. float64 centred finite differences of every parameter and of h0 (charnn.eval.gradcheck) on random
   small models drawn from the init distribution, shapes varied down to V = H = B = T = 1:
   every max relative error < gradcheck.TOLERANCE (1e-6).
2. `charnn gradcheck` prints the table (a row per parameter and h0) and exits 0.
3. charnn.model equals charnn.reference (loss, every gradient, h_last, dL/dh0) to ~1e-12 in
   float64, and float32 stays close to float64.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charnn import cli, model
from charnn.eval import gradcheck
from reference import reference_loss_and_grads

CHECKED = ("W", "U", "V", "b", "c", "h0")

# (V, H, B, T): every dimension at 1 somewhere, alone and together.
SHAPES = [
    (1, 1, 1, 1),
    (1, 4, 2, 3),
    (6, 1, 2, 5),
    (5, 4, 1, 6),
    (5, 4, 3, 1),
    (2, 3, 1, 1),
    (9, 7, 3, 8),
]


def assert_gradcheck_passes(problem) -> list[gradcheck.GradCheckRow]:
    rows = gradcheck.gradcheck(problem.params, problem.inputs, problem.targets, problem.h0)
    assert [r.name for r in rows] == list(CHECKED)
    for r in rows:
        expected_shape = problem.h0.shape if r.name == "h0" else problem.params[r.name].shape
        assert r.shape == expected_shape
        assert r.checked == int(np.prod(expected_shape))         # every element, not a sample
        assert r.max_rel_error < gradcheck.TOLERANCE, (r.name, r.max_rel_error)
        assert r.passed
    return rows


@pytest.mark.parametrize("V,H,B,T", SHAPES)
def test_gradcheck_every_parameter_and_h0(make_problem, V, H, B, T):
    assert_gradcheck_passes(make_problem(V, H, B, T, seed=V * 1000 + H * 100 + B * 10 + T))


@settings(max_examples=40, deadline=None)
@given(V=st.integers(1, 8), H=st.integers(1, 6), B=st.integers(1, 3), T=st.integers(1, 10),
       seed=st.integers(0, 2**31 - 1))
def test_gradcheck_random_small_models(make_problem, V, H, B, T, seed):
    assert_gradcheck_passes(make_problem(V, H, B, T, seed=seed))


def test_gradcheck_with_zero_h0_and_init_params():
    """The plain training setting: init_params (b = c = 0) and h0 = None (zeros)."""
    rng = np.random.default_rng(3)
    params = model.init_params(7, 5, seed=3, dtype=np.float64)
    inputs, targets = rng.integers(0, 7, size=(2, 9)), rng.integers(0, 7, size=(2, 9))
    rows = gradcheck.gradcheck(params, inputs, targets)
    assert all(r.max_rel_error < gradcheck.TOLERANCE for r in rows), rows


def test_gradcheck_detects_a_wrong_gradient(make_problem):
    """The checker is not vacuous: a 1% error in one gradient, or a transposed one, fails."""
    p = make_problem(5, 4, 2, 6, seed=11)
    params, h0 = dict(p.params), p.h0.copy()
    _, grads, dh0 = model.loss_grads_dh0(params, p.inputs, p.targets, h0)
    analytic = {**grads, "h0": dh0}
    analytic["V"] = analytic["V"] * 1.01
    analytic["W"] = analytic["W"].T.copy()

    def f() -> float:
        return model.forward(params, p.inputs, p.targets, h0)[0]

    rows = {r.name: r for r in gradcheck.check_arrays(f, {**params, "h0": h0}, analytic)}
    assert not rows["V"].passed and rows["V"].max_rel_error > 1e-3
    assert not rows["W"].passed
    assert all(rows[k].passed for k in ("U", "b", "c", "h0"))


def test_gradcheck_refuses_float32(make_problem):
    p = make_problem(3, 2, 1, 2, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        gradcheck.check_arrays(lambda: 0.0, {"W": p.params["W"]}, {"W": p.params["W"]})


def test_format_table_has_a_row_per_parameter(make_problem):
    p = make_problem(4, 3, 2, 3)
    rows = gradcheck.gradcheck(p.params, p.inputs, p.targets, p.h0)
    lines = gradcheck.format_table(rows).splitlines()
    assert "parameter" in lines[0] and "max rel error" in lines[0]
    assert [ln.split()[0] for ln in lines[1:]] == list(CHECKED)
    assert all(ln.rstrip().endswith("pass") for ln in lines[1:])


# ---- the `charnn gradcheck` command -------------------------------------------------------------

def _table_rows(out: str) -> dict[str, str]:
    return {ln.split()[0]: ln for ln in out.splitlines() if ln.split() and ln.split()[0] in CHECKED}


def test_cli_gradcheck_prints_table_and_exits_0(capsys):
    rc = cli.main(["gradcheck", "--vocab-size", "5", "--hidden-size", "4", "--batch-size", "2",
                   "--max-len", "6", "--all", "--seed", "7"])
    out = capsys.readouterr().out
    assert rc == 0
    rows = _table_rows(out)
    assert set(rows) == set(CHECKED)
    shapes = {"W": "(4, 4)", "U": "(4, 5)", "V": "(5, 4)", "b": "(4,)", "c": "(5,)", "h0": "(2, 4)"}
    for name, line in rows.items():
        assert shapes[name] in line and line.rstrip().endswith("pass"), line
        rel = float(line.split()[-2])
        assert rel < gradcheck.TOLERANCE
    assert "all gradients match" in out


def test_cli_gradcheck_as_a_subprocess():
    res = subprocess.run([sys.executable, "-m", "charnn.cli", "gradcheck", "--checks", "8"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = _table_rows(res.stdout)
    assert set(rows) == set(CHECKED)
    assert all(line.rstrip().endswith("pass") for line in rows.values())


def test_cli_gradcheck_bad_argument_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["gradcheck", "--hidden-size", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "hidden-size" in err and "Traceback" not in err


# ---- the fast model against the plain reference -------------------------------------------------

def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| relative to the largest |b| (an array-wise relative error)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.abs(b).max(initial=0.0)), 1e-300)
    return float(np.abs(a - b).max(initial=0.0)) / scale


def assert_model_matches_reference(p, tol: float = 1e-12, per_array_tol: float | None = None) -> None:
    """model == reference: loss to `tol` relative; h_last, and all gradients with dL/dh0 taken
    together, to `tol` of their largest element; each gradient to `per_array_tol` of its own
    largest element (looser when given: a gradient that is a small sum of large terms of both
    signs, e.g. dW with H = 1, keeps only the absolute accuracy of its terms)."""
    per_array_tol = tol if per_array_tol is None else per_array_tol
    loss, grads, h_last = model.loss_and_grads(p.params, p.inputs, p.targets, p.h0)
    loss2, grads2, dh0 = model.loss_grads_dh0(p.params, p.inputs, p.targets, p.h0)
    r_loss, r_grads, r_h_last, r_dh0 = reference_loss_and_grads(p.params, p.inputs, p.targets, p.h0)
    assert isinstance(loss, float)
    assert loss == loss2
    assert abs(loss - r_loss) <= tol * max(abs(r_loss), 1e-300) or loss == r_loss == 0.0
    assert set(grads) == set(r_grads) == set(model.PARAM_NAMES)
    for k in model.PARAM_NAMES:
        assert grads[k].shape == r_grads[k].shape == p.params[k].shape
        assert max_rel_diff(grads[k], r_grads[k]) <= per_array_tol, k
        np.testing.assert_array_equal(grads[k], grads2[k])
    assert dh0.shape == r_dh0.shape == p.h0.shape
    assert max_rel_diff(dh0, r_dh0) <= per_array_tol
    ours = np.concatenate([grads[k].ravel() for k in model.PARAM_NAMES] + [dh0.ravel()])
    theirs = np.concatenate([r_grads[k].ravel() for k in model.PARAM_NAMES] + [r_dh0.ravel()])
    assert max_rel_diff(ours, theirs) <= tol
    assert h_last.shape == r_h_last.shape == p.h0.shape
    assert max_rel_diff(h_last, r_h_last) <= tol


@pytest.mark.parametrize("V,H,B,T", SHAPES + [(13, 17, 3, 100)])
def test_model_equals_reference_float64(make_problem, V, H, B, T):
    assert_model_matches_reference(make_problem(V, H, B, T, seed=T))


@settings(max_examples=30, deadline=None)
@given(V=st.integers(1, 12), H=st.integers(1, 10), B=st.integers(1, 4), T=st.integers(1, 20),
       seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([0.5, 1.0, 2.0]))
def test_model_equals_reference_random(make_problem, V, H, B, T, seed, scale):
    assert_model_matches_reference(make_problem(V, H, B, T, seed=seed, scale=scale), per_array_tol=1e-9)


def test_h0_none_means_zeros(make_problem):
    p = make_problem(6, 5, 2, 7, seed=4)
    zeros = np.zeros_like(p.h0)
    l_none, g_none, h_none = model.loss_and_grads(p.params, p.inputs, p.targets)
    l_zero, g_zero, h_zero = model.loss_and_grads(p.params, p.inputs, p.targets, zeros)
    r_loss, r_grads, r_h, _ = reference_loss_and_grads(p.params, p.inputs, p.targets)
    assert l_none == l_zero and abs(l_none - r_loss) < 1e-12 * r_loss
    np.testing.assert_array_equal(h_none, h_zero)
    for k in model.PARAM_NAMES:
        np.testing.assert_array_equal(g_none[k], g_zero[k])
        assert max_rel_diff(g_none[k], r_grads[k]) < 1e-12


def test_uniform_model_loss_is_log_vocab():
    """All-zero weights predict uniformly: loss = ln V exactly, in both implementations."""
    V, H = 11, 4
    params = {k: np.zeros(s) for k, s in model.param_shapes(V, H).items()}
    inputs, targets = np.arange(10).reshape(2, 5) % V, (np.arange(10).reshape(2, 5) + 3) % V
    assert model.loss_and_grads(params, inputs, targets)[0] == pytest.approx(np.log(V), rel=1e-14)
    assert reference_loss_and_grads(params, inputs, targets)[0] == pytest.approx(np.log(V), rel=1e-14)


def test_carrying_h_last_equals_one_long_sequence(make_problem):
    """Truncated BPTT's forward: two chunks with h carried give the loss and state of the whole."""
    p = make_problem(7, 6, 2, 24, seed=9)
    whole, _, h_whole = model.loss_and_grads(p.params, p.inputs, p.targets, p.h0)
    first, _, h_mid = model.loss_and_grads(p.params, p.inputs[:, :10], p.targets[:, :10], p.h0)
    second, _, h_end = model.loss_and_grads(p.params, p.inputs[:, 10:], p.targets[:, 10:], h_mid)
    assert (10 * first + 14 * second) / 24 == pytest.approx(whole, rel=1e-13)
    np.testing.assert_allclose(h_end, h_whole, rtol=0, atol=1e-14)


def test_large_logits_stay_finite():
    """Stable softmax: logits of ±1e4 give a finite loss (no overflow, no log(0))."""
    V, H = 5, 3
    params = {k: np.zeros(s) for k, s in model.param_shapes(V, H).items()}
    params["c"] = np.array([1e4, -1e4, 0.0, 5e3, -5e3])
    inputs, targets = np.zeros((1, 4), dtype=np.int64), np.array([[1, 0, 4, 2]])
    loss, grads, _ = model.loss_and_grads(params, inputs, targets)
    r_loss, r_grads, _, _ = reference_loss_and_grads(params, inputs, targets)
    assert np.isfinite(loss) and loss == pytest.approx((2e4 + 0 + 1.5e4 + 1e4) / 4, rel=1e-12)
    assert loss == pytest.approx(r_loss, rel=1e-14)
    assert all(np.isfinite(g).all() for g in grads.values())
    assert max_rel_diff(grads["c"], r_grads["c"]) < 1e-14


@pytest.mark.parametrize("V,H,B,T", [(9, 7, 3, 8), (13, 17, 3, 100), (1, 1, 1, 1)])
def test_float32_close_to_float64(make_problem, V, H, B, T):
    p64 = make_problem(V, H, B, T, seed=5)
    p32 = p64.astype(np.float32)
    loss64, grads64, h64 = model.loss_and_grads(p64.params, p64.inputs, p64.targets, p64.h0)
    loss32, grads32, h32 = model.loss_and_grads(p32.params, p32.inputs, p32.targets, p32.h0)
    _, _, dh0_64 = model.loss_grads_dh0(p64.params, p64.inputs, p64.targets, p64.h0)
    _, _, dh0_32 = model.loss_grads_dh0(p32.params, p32.inputs, p32.targets, p32.h0)
    r_loss32, r_grads32, r_h32, r_dh0_32 = reference_loss_and_grads(p32.params, p32.inputs, p32.targets, p32.h0)
    assert abs(loss32 - loss64) <= 1e-5 * max(loss64, 1e-30) or loss32 == loss64 == 0.0
    assert h32.dtype == dh0_32.dtype == np.float32
    assert max_rel_diff(h32, h64) < 1e-5 and max_rel_diff(dh0_32, dh0_64) < 1e-4
    for k in model.PARAM_NAMES:
        assert grads32[k].dtype == np.float32 and r_grads32[k].dtype == np.float32
        assert max_rel_diff(grads32[k], grads64[k]) < 1e-4, k
        assert max_rel_diff(r_grads32[k], grads64[k]) < 1e-4, k
    assert abs(r_loss32 - loss64) <= 1e-5 * max(loss64, 1e-30) or r_loss32 == loss64 == 0.0
    assert max_rel_diff(r_h32, h64) < 1e-5 and max_rel_diff(r_dh0_32, dh0_64) < 1e-4
