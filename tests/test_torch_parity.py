"""The hand-derived forward/backward against PyTorch autograd on the same weights.

The torch graph is nn.RNN(nonlinearity="tanh") + nn.Linear with
    weight_ih = U, weight_hh = W, bias_ih = b, bias_hh = 0, Linear.weight = V, Linear.bias = c,
fed one-hot inputs, batch_first, with mean cross-entropy: exactly the seed's model.
float64: loss equal to 1e-10 relative, every gradient and dL/dh0 to 1e-8.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from charnn import model
from reference import reference_loss_and_grads

torch.set_num_threads(1)

VOCAB, HIDDEN = 13, 17


def torch_loss_and_grads(problem, dtype: torch.dtype):
    """(loss, grads W/U/V/b/c, h_last, dL/dh0) from torch autograd, as float64 NumPy arrays."""
    p = problem.params
    H, Vs = p["W"].shape[0], p["V"].shape[0]
    rnn = torch.nn.RNN(Vs, H, nonlinearity="tanh", bias=True, batch_first=True).to(dtype)
    out = torch.nn.Linear(H, Vs).to(dtype)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p["U"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p["W"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p["b"]))
        rnn.bias_hh_l0.zero_()
        out.weight.copy_(torch.from_numpy(p["V"]))
        out.bias.copy_(torch.from_numpy(p["c"]))
    x = torch.nn.functional.one_hot(torch.from_numpy(problem.inputs).long(), Vs).to(dtype)   # (B, T, V)
    y = torch.from_numpy(problem.targets).long()
    h0 = torch.from_numpy(problem.h0).to(dtype).unsqueeze(0).requires_grad_(True)           # (1, B, H)
    hs, h_n = rnn(x, h0)
    logits = out(hs)                                                                          # (B, T, V)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, Vs), y.reshape(-1))          # mean over B·T
    loss.backward()
    grads = {"W": rnn.weight_hh_l0.grad, "U": rnn.weight_ih_l0.grad, "V": out.weight.grad,
             "b": rnn.bias_ih_l0.grad, "c": out.bias.grad}
    # bias_hh enters exactly like bias_ih, so its gradient must equal db as well (up to rounding).
    tight = dtype == torch.float64
    assert torch.allclose(rnn.bias_hh_l0.grad, rnn.bias_ih_l0.grad, rtol=1e-10 if tight else 1e-4,
                          atol=1e-15 if tight else 1e-7)
    as_np = lambda t: t.detach().double().numpy()  # noqa: E731
    return (float(loss.detach()), {k: as_np(g) for k, g in grads.items()}, as_np(h_n[0]), as_np(h0.grad[0]))


def ours(problem, impl: str):
    if impl == "reference":
        return reference_loss_and_grads(problem.params, problem.inputs, problem.targets, problem.h0)
    loss, grads, h_last = model.loss_and_grads(problem.params, problem.inputs, problem.targets, problem.h0)
    _, _, dh0 = model.loss_grads_dh0(problem.params, problem.inputs, problem.targets, problem.h0)
    return loss, grads, h_last, dh0


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """Element-wise relative error, |a − b| / max(|b|, 1e-12), worst element."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float((np.abs(a - b) / np.maximum(np.abs(b), 1e-12)).max())


@pytest.mark.parametrize("impl", ["model", "reference"])
@pytest.mark.parametrize("T", [1, 7, 100])
@pytest.mark.parametrize("B", [1, 3])
def test_float64_parity(make_problem, impl, B, T):
    problem = make_problem(VOCAB, HIDDEN, B, T, seed=100 * B + T)
    loss, grads, h_last, dh0 = ours(problem, impl)
    t_loss, t_grads, t_h_last, t_dh0 = torch_loss_and_grads(problem, torch.float64)
    assert abs(loss - t_loss) <= 1e-10 * abs(t_loss)
    for k in model.PARAM_NAMES:
        assert grads[k].shape == t_grads[k].shape
        np.testing.assert_allclose(grads[k], t_grads[k], rtol=1e-8, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(dh0, t_dh0, rtol=1e-8, atol=1e-12, err_msg="dL/dh0")
    np.testing.assert_allclose(h_last, t_h_last, rtol=1e-10, atol=1e-14, err_msg="h_last")


def test_float64_parity_saturated_and_zero_state(make_problem):
    """Large weights (tanh saturating, sharp softmax) and h0 = zeros: still torch's numbers."""
    problem = make_problem(VOCAB, HIDDEN, 3, 40, seed=77, scale=6.0)
    problem.h0[:] = 0
    loss, grads, h_last = model.loss_and_grads(problem.params, problem.inputs, problem.targets)
    t_loss, t_grads, t_h_last, _ = torch_loss_and_grads(problem, torch.float64)
    assert abs(loss - t_loss) <= 1e-10 * abs(t_loss)
    for k in model.PARAM_NAMES:
        np.testing.assert_allclose(grads[k], t_grads[k], rtol=1e-8, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(h_last, t_h_last, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("T", [1, 7, 100])
@pytest.mark.parametrize("B", [1, 3])
def test_float32_parity(make_problem, B, T):
    """float32 against torch float32 (and against torch float64) at a float32 tolerance."""
    p64 = make_problem(VOCAB, HIDDEN, B, T, seed=100 * B + T)
    p32 = p64.astype(np.float32)
    loss, grads, h_last, dh0 = ours(p32, "model")
    assert all(g.dtype == np.float32 for g in grads.values()) and dh0.dtype == np.float32
    for reference_dtype, problem in ((torch.float32, p32), (torch.float64, p64)):
        t_loss, t_grads, t_h_last, t_dh0 = torch_loss_and_grads(problem, reference_dtype)
        assert abs(loss - t_loss) <= 1e-5 * abs(t_loss)
        for k in model.PARAM_NAMES:
            scale = np.abs(t_grads[k]).max()
            np.testing.assert_allclose(grads[k], t_grads[k], rtol=1e-4, atol=1e-5 * scale, err_msg=k)
        np.testing.assert_allclose(dh0, t_dh0, rtol=1e-4, atol=1e-5 * np.abs(t_dh0).max())
        np.testing.assert_allclose(h_last, t_h_last, rtol=1e-5, atol=1e-6)
