"""PyTorch parity of the stacked cells (float64): nn.RNN / nn.LSTM / nn.GRU with their gate order mapped
onto ours, 1 to 3 layers, and dropout with a fixed mask against a torch graph that applies the same mask."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from charnn import model as stack

V, H, B, T = 7, 6, 3, 5
CELLS = ("rnn", "lstm", "gru")
TORCH = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def lstm_rows(a: np.ndarray) -> np.ndarray:
    """Our LSTM gate blocks (i, f, o, g) <-> PyTorch's (i, f, g, o): swap the last two blocks (self-inverse)."""
    i, f, o, g = np.split(a, 4, axis=0)
    return np.concatenate([i, f, g, o], axis=0)


def torch_weights(params: dict, pre: str, cell: str) -> dict[str, np.ndarray]:
    """weight_ih, weight_hh, bias_ih, bias_hh of one torch layer holding our layer `pre`."""
    U, W, b = params[pre + "U"], params[pre + "W"], params[pre + "b"]
    if cell == "lstm":
        return {"weight_ih": lstm_rows(U), "weight_hh": lstm_rows(W), "bias_ih": lstm_rows(b),
                "bias_hh": np.zeros_like(b)}
    bias_hh = np.zeros_like(b)
    if cell == "gru":
        bias_hh[2 * H:] = params[pre + "bn"]        # b_hn stays inside the reset gate
    return {"weight_ih": U, "weight_hh": W, "bias_ih": b, "bias_hh": bias_hh}


def load_layer(mod: torch.nn.Module, params: dict, pre: str, cell: str, index: int = 0) -> None:
    with torch.no_grad():
        for name, arr in torch_weights(params, pre, cell).items():
            getattr(mod, f"{name}_l{index}").copy_(torch.from_numpy(np.ascontiguousarray(arr)))


TORCH_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def torch_grads_to_ours(mod: torch.nn.Module, pre: str, cell: str, index: int = 0) -> dict[str, np.ndarray]:
    return grads_to_ours({n: getattr(mod, f"{n}_l{index}").grad.numpy() for n in TORCH_NAMES}, pre, cell)


def grads_to_ours(g: dict[str, np.ndarray], pre: str, cell: str) -> dict[str, np.ndarray]:
    """One torch layer's gradients, keyed weight_ih, weight_hh, bias_ih, bias_hh, as ours of layer `pre`."""
    if cell == "lstm":
        return {pre + "U": lstm_rows(g["weight_ih"]), pre + "W": lstm_rows(g["weight_hh"]),
                pre + "b": lstm_rows(g["bias_ih"])}
    out = {pre + "U": g["weight_ih"], pre + "W": g["weight_hh"], pre + "b": g["bias_ih"]}
    if cell == "gru":
        out[pre + "bn"] = g["bias_hh"][2 * H:]
    return out


def setup(cell: str, layers: int, seed: int):
    rng = np.random.default_rng(seed)
    p = stack.init_params(V, H, seed=seed, dtype=np.float64, cell=cell, layers=layers)
    for k in p:
        if p[k].ndim == 1:
            p[k] = p[k] + rng.uniform(-0.4, 0.4, p[k].shape)
    S = 2 if cell == "lstm" else 1
    s0 = rng.uniform(-0.6, 0.6, (layers, S, B, H))
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    return p, s0, x, y, rng


def torch_state(cell: str, s0: np.ndarray, sl: slice = slice(None)):
    h = torch.tensor(s0[sl, 0], requires_grad=True)
    if cell == "lstm":
        return (h, torch.tensor(s0[sl, 1], requires_grad=True))
    return h


def state_grad(cell: str, st) -> np.ndarray:
    parts = st if cell == "lstm" else (st,)
    return np.stack([t.grad.numpy() for t in parts], axis=1)


def torch_head(params: dict, top: torch.Tensor, y: np.ndarray):
    Vt = torch.tensor(params["V"], requires_grad=True)
    ct = torch.tensor(params["c"], requires_grad=True)
    logits = top @ Vt.T + ct                       # (T, B, V)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y.T.reshape(-1)))
    return loss, Vt, ct


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_parity_with_torch_stack(cell, layers):
    """Our L-layer stack == torch's own num_layers=L module (no dropout): loss, every gradient, dh0, final state."""
    p, s0, x, y, _ = setup(cell, layers, seed=layers)
    mod = TORCH[cell](V, H, num_layers=layers).double()
    for l in range(layers):
        load_layer(mod, p, stack.prefixes(p)[l], cell, index=l)
    st = torch_state(cell, s0)
    onehot = torch.nn.functional.one_hot(torch.from_numpy(x.T), V).double()
    out, stT = mod(onehot, st)
    loss_t, Vt, ct = torch_head(p, out, y)
    loss_t.backward()

    loss, grads, ds0 = stack.loss_grads_dh0(p, x, y, s0)
    _, _, sT = stack.loss_and_grads(p, x, y, s0)
    assert loss == pytest.approx(loss_t.item(), abs=1e-12)
    want = {"V": Vt.grad.numpy(), "c": ct.grad.numpy()}
    for l in range(layers):
        want.update(torch_grads_to_ours(mod, stack.prefixes(p)[l], cell, index=l))
    assert set(want) == set(grads)
    for k in want:
        np.testing.assert_allclose(grads[k], want[k], atol=1e-11, err_msg=k)
    np.testing.assert_allclose(ds0, state_grad(cell, st), atol=1e-11)
    final = np.stack([t.detach().numpy() for t in (stT if cell == "lstm" else (stT,))], axis=1)
    np.testing.assert_allclose(sT, final, atol=1e-12)


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_parity_with_torch_dropout_fixed_mask(cell, layers):
    """Dropout between layers and before the output layer: the same masks multiplied into a torch graph."""
    p, s0, x, y, rng = setup(cell, layers, seed=10 + layers)
    masks = stack.dropout_masks(rng, 0.4, layers, T, B, H, np.float64)
    mods, states = [], []
    inp = torch.nn.functional.one_hot(torch.from_numpy(x.T), V).double()
    for l in range(layers):
        mod = TORCH[cell](V if l == 0 else H, H).double()
        load_layer(mod, p, stack.prefixes(p)[l], cell)
        st = torch_state(cell, s0, slice(l, l + 1))
        out, _ = mod(inp, st)
        inp = out * torch.from_numpy(masks[l])
        mods.append(mod)
        states.append(st)
    loss_t, Vt, ct = torch_head(p, inp, y)
    loss_t.backward()

    loss, grads, ds0 = stack.loss_grads_dh0(p, x, y, s0, masks=masks)
    assert loss == pytest.approx(loss_t.item(), abs=1e-12)
    want = {"V": Vt.grad.numpy(), "c": ct.grad.numpy()}
    for l, mod in enumerate(mods):
        want.update(torch_grads_to_ours(mod, stack.prefixes(p)[l], cell))
    for k in want:
        np.testing.assert_allclose(grads[k], want[k], atol=1e-11, err_msg=k)
    want_ds0 = np.concatenate([state_grad(cell, st) for st in states], axis=0)
    np.testing.assert_allclose(ds0, want_ds0, atol=1e-11)
