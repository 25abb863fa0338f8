"""charnn.train.optim against torch.optim and torch.nn.utils on identical parameters and gradients (float64)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from charnn import model
from charnn.train import optim

torch.set_num_threads(1)

TIGHT = dict(rtol=1e-13, atol=1e-15)


def make_params(seed: int = 0) -> dict[str, np.ndarray]:
    params = model.init_params(7, 5, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    params["b"] = rng.normal(size=params["b"].shape)
    params["c"] = rng.normal(size=params["c"].shape)
    return params


def grad_sequence(params: dict[str, np.ndarray], steps: int, seed: int = 1, scale: float = 1.0) -> list[dict[str, np.ndarray]]:
    """A different random gradient for every step (so momentum and Adam state really matter)."""
    rng = np.random.default_rng(seed)
    return [{k: scale * rng.normal(size=p.shape) for k, p in params.items()} for _ in range(steps)]


def run_ours(opt: optim.Optimizer, params: dict[str, np.ndarray], grads: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Apply opt step by step; the parameters after each step."""
    params = {k: v.copy() for k, v in params.items()}
    history = []
    for g in grads:
        opt.step(params, {k: v.copy() for k, v in g.items()})
        history.append({k: v.copy() for k, v in params.items()})
    return history


def run_torch(make_opt, params: dict[str, np.ndarray], grads: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    tparams = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    opt = make_opt(list(tparams.values()))
    history = []
    for g in grads:
        for k, p in tparams.items():
            p.grad = torch.tensor(g[k], dtype=torch.float64)
        opt.step()
        history.append({k: p.detach().numpy().copy() for k, p in tparams.items()})
    return history


def assert_same_trajectory(ours, theirs, **tol) -> None:
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], err_msg=f"step {step + 1}, {k}", **(tol or TIGHT))


def test_one_sgd_step_equals_torch():
    params = make_params()
    grads = grad_sequence(params, 1)
    ours = run_ours(optim.SGD(lr=5e-3), params, grads)
    theirs = run_torch(lambda ps: torch.optim.SGD(ps, lr=5e-3), params, grads)
    assert_same_trajectory(ours, theirs)
    # and it is literally p − lr·g
    for k in params:
        np.testing.assert_allclose(ours[0][k], params[k] - 5e-3 * grads[0][k], **TIGHT)


def test_plain_sgd_several_steps_equals_torch():
    params = make_params(2)
    grads = grad_sequence(params, 4, seed=3)
    assert_same_trajectory(run_ours(optim.make_optimizer("sgd", 0.1), params, grads),
                           run_torch(lambda ps: torch.optim.SGD(ps, lr=0.1), params, grads))


@pytest.mark.parametrize("steps", [1, 5])
@pytest.mark.parametrize("momentum", [0.9, 0.5])
def test_momentum_sgd_equals_torch(steps, momentum):
    params = make_params(4)
    grads = grad_sequence(params, steps, seed=5)
    ours = run_ours(optim.SGD(lr=0.05, momentum=momentum), params, grads)
    theirs = run_torch(lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=momentum), params, grads)
    assert_same_trajectory(ours, theirs)


def test_momentum_first_step_is_plain_sgd_second_is_not():
    """torch's convention: the momentum buffer starts as g (not (1−μ)g or 0)."""
    params = make_params(6)
    grads = grad_sequence(params, 2, seed=7)
    ours = run_ours(optim.SGD(lr=0.1, momentum=0.9), params, grads)
    for k in params:
        np.testing.assert_allclose(ours[0][k], params[k] - 0.1 * grads[0][k], **TIGHT)
        expected = ours[0][k] - 0.1 * (0.9 * grads[0][k] + grads[1][k])
        np.testing.assert_allclose(ours[1][k], expected, **TIGHT)


@pytest.mark.parametrize("lr,betas,eps", [(5e-3, (0.9, 0.999), 1e-8), (1e-2, (0.8, 0.99), 1e-6)])
def test_three_adam_steps_equal_torch(lr, betas, eps):
    params = make_params(8)
    grads = grad_sequence(params, 3, seed=9)
    ours = run_ours(optim.Adam(lr, *betas, eps), params, grads)
    theirs = run_torch(lambda ps: torch.optim.Adam(ps, lr=lr, betas=betas, eps=eps), params, grads)
    assert_same_trajectory(ours, theirs)


def test_adam_many_steps_and_tiny_gradients_equal_torch():
    """Ten steps, with gradients near eps in size so the eps term matters."""
    params = make_params(10)
    grads = grad_sequence(params, 10, seed=11, scale=1e-8)
    ours = run_ours(optim.make_optimizer("adam", 5e-3), params, grads)
    theirs = run_torch(lambda ps: torch.optim.Adam(ps, lr=5e-3), params, grads)
    assert_same_trajectory(ours, theirs, rtol=1e-12, atol=1e-15)


def test_adam_first_step_moves_each_element_by_about_lr():
    """Bias correction: after step 1, m̂ = g and √v̂ = |g|, so each element moves by lr·|g|/(|g| + eps)."""
    params = make_params(12)
    grads = grad_sequence(params, 1, seed=13)
    after = run_ours(optim.Adam(1e-3), params, grads)[0]
    for k in params:
        g = grads[0][k]
        np.testing.assert_allclose(params[k] - after[k], 1e-3 * g / (np.abs(g) + 1e-8), rtol=1e-9)


def test_updates_are_in_place_and_keep_float32():
    params = {k: v.astype(np.float32) for k, v in make_params(14).items()}
    grads = {k: v.astype(np.float32) for k, v in grad_sequence(params, 1, seed=15)[0].items()}
    for opt in (optim.SGD(0.1), optim.SGD(0.1, momentum=0.9), optim.Adam(1e-3)):
        ids = {k: id(v) for k, v in params.items()}
        before = {k: v.copy() for k, v in params.items()}
        opt.step(params, grads)
        assert {k: id(v) for k, v in params.items()} == ids
        assert all(v.dtype == np.float32 for v in params.values())
        assert all(v.dtype == np.float32 for v in opt.state_arrays().values())
        assert all(not np.array_equal(params[k], before[k]) for k in params)


# ---- clipping -----------------------------------------------------------------------------------

def torch_tensors(grads: dict[str, np.ndarray]) -> list[torch.Tensor]:
    ts = []
    for g in grads.values():
        p = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor(g, dtype=torch.float64)
        ts.append(p)
    return ts


def test_clip_by_value_equals_torch():
    grads = grad_sequence(make_params(), 1, seed=16, scale=6.0)[0]          # many elements beyond ±5
    assert any(np.abs(g).max() > 5 for g in grads.values())
    ts = torch_tensors(grads)
    torch.nn.utils.clip_grad_value_(ts, clip_value=5.0)
    optim.clip_by_value(grads, -5.0, 5.0)
    for g, t in zip(grads.values(), ts):
        np.testing.assert_array_equal(g, t.grad.numpy())
        assert np.abs(g).max() <= 5.0


def test_clip_by_value_asymmetric_bounds():
    grads = {"a": np.array([-3.0, -1.0, 0.5, 2.0, 9.0])}
    optim.clip_by_value(grads, -2.0, 1.0)
    np.testing.assert_array_equal(grads["a"], [-2.0, -1.0, 0.5, 1.0, 1.0])


@pytest.mark.parametrize("max_norm", [0.5, 5.0, 1e3])
def test_clip_by_global_norm_equals_torch(max_norm):
    grads = grad_sequence(make_params(), 1, seed=17)[0]
    expected_norm = np.sqrt(sum((g ** 2).sum() for g in grads.values()))
    ts = torch_tensors(grads)
    t_norm = float(torch.nn.utils.clip_grad_norm_(ts, max_norm=max_norm))
    norm = optim.clip_by_global_norm(grads, max_norm)
    assert norm == pytest.approx(t_norm, rel=1e-14)
    assert norm == pytest.approx(expected_norm, rel=1e-14)
    for g, t in zip(grads.values(), ts):
        np.testing.assert_allclose(g, t.grad.numpy(), **TIGHT)
    assert optim.global_norm(grads) <= max(max_norm, norm) * (1 + 1e-12)
    if norm > max_norm:
        assert optim.global_norm(grads) == pytest.approx(max_norm, rel=1e-5)


def test_clip_by_global_norm_leaves_small_gradients_untouched():
    grads = {"a": np.array([3.0, 4.0])}
    assert optim.clip_by_global_norm(grads, 10.0) == 5.0
    np.testing.assert_array_equal(grads["a"], [3.0, 4.0])


# ---- state round trip (checkpoint / resume) -----------------------------------------------------

@pytest.mark.parametrize("kind,momentum", [("adam", 0.0), ("sgd", 0.9), ("sgd", 0.0)])
def test_state_round_trip_continues_identically(kind, momentum):
    """Save state after 3 steps, load it into a fresh optimizer: the next steps are bit-identical."""
    params = make_params(18)
    grads = grad_sequence(params, 6, seed=19)
    a = optim.make_optimizer(kind, 1e-2, momentum=momentum)
    p_a = {k: v.copy() for k, v in params.items()}
    for g in grads[:3]:
        a.step(p_a, {k: v.copy() for k, v in g.items()})

    saved = {k: np.array(v, copy=True) for k, v in optim.state_to_numpy(a).items()}   # as a checkpoint would
    saved_t, saved_hyper = a.t, a.hyper()
    if kind == "adam":
        assert set(saved) == {f"{slot}.{k}" for slot in ("m", "v") for k in params}
    elif momentum:
        assert set(saved) == {f"buf.{k}" for k in params}
    else:
        assert saved == {}
    assert saved_t == 3 and saved_hyper["kind"] == kind and saved_hyper["t"] == 3

    b = optim.make_optimizer(kind, 1e-2, momentum=momentum)
    b.load_state_arrays(saved, saved_t)
    assert b.hyper() == saved_hyper
    p_b = {k: v.copy() for k, v in p_a.items()}
    for g in grads[3:]:
        a.step(p_a, {k: v.copy() for k, v in g.items()})
        b.step(p_b, {k: v.copy() for k, v in g.items()})
    for k in params:
        np.testing.assert_array_equal(p_a[k], p_b[k])
    assert a.t == b.t == 6


def test_adam_resume_equals_uninterrupted_torch_run():
    """Resumed Adam (state reloaded after 2 steps) follows torch's uninterrupted 5-step trajectory."""
    params = make_params(20)
    grads = grad_sequence(params, 5, seed=21)
    first = optim.Adam(5e-3)
    p = {k: v.copy() for k, v in params.items()}
    for g in grads[:2]:
        first.step(p, {k: v.copy() for k, v in g.items()})
    resumed = optim.Adam(5e-3)
    resumed.load_state_arrays({k: v.copy() for k, v in first.state_arrays().items()}, first.t)
    ours = run_ours(resumed, p, grads[2:])
    theirs = run_torch(lambda ps: torch.optim.Adam(ps, lr=5e-3), params, grads)[2:]
    assert_same_trajectory(ours, theirs)


def test_make_optimizer_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.make_optimizer("rmsprop", 1e-3)


def test_adamw_decays_weight_matrices_only_and_equals_torch_adamw():
    """weight_decay = torch.optim.AdamW's decoupled decay on the matrices; biases (1-D) are not decayed."""
    params = make_params(16)
    grads = grad_sequence(params, 6, seed=17)
    lr, wd = 3e-3, 0.1
    ours = run_ours(optim.make_optimizer("adam", lr, weight_decay=wd), params, grads)

    def make(ps):
        names = list(params)
        groups = [{"params": [p for k, p in zip(names, ps) if params[k].ndim >= 2], "weight_decay": wd},
                  {"params": [p for k, p in zip(names, ps) if params[k].ndim < 2], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr)
    theirs = run_torch(make, params, grads)
    assert_same_trajectory(ours, theirs)
    plain = run_ours(optim.make_optimizer("adam", lr), params, grads)
    for k in params:   # the decay really acted on W, U, V and left b, c alone
        if params[k].ndim >= 2:
            assert not np.allclose(plain[-1][k], ours[-1][k], rtol=1e-9, atol=0)
        else:
            np.testing.assert_array_equal(plain[-1][k], ours[-1][k])


def test_sgd_refuses_weight_decay():
    with pytest.raises(ValueError, match="adam only"):
        optim.make_optimizer("sgd", 0.1, weight_decay=0.1)
