"""Gradient flow ‖∂L_t/∂h_s‖ (charnn.eval.gradflow) against PyTorch autograd and finite differences,
and the `charnn gradflow` command."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from charnn import model
from charnn.eval import gradflow
from charnn.nn import network
from clihelp import SMALL, assert_user_error, charnn, write_corpus
from charnn.nn.params import prefixes
from test_cells_torch import H, torch_weights   # its H: torch_weights splits the GRU bias by it

K, T = 7, 6
CELL_MODULES = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}


def setup(cell: str, layers: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    p = model.init_params(K, H, seed=seed, dtype=np.float64, cell=cell, layers=layers)
    for k in p:                                  # nonzero biases, so every term is exercised
        if p[k].ndim == 1:
            p[k] = p[k] + rng.uniform(-0.4, 0.4, p[k].shape)
    S = 2 if cell == "lstm" else 1
    h0 = rng.uniform(-0.6, 0.6, (layers, S, 1, H))
    ids = rng.integers(0, K, T + 1)
    return p, h0, ids


def torch_norms(p: dict, h0: np.ndarray, ids: np.ndarray, cell: str, layers: int, layer: int) -> np.ndarray:
    """‖∂L_t/∂h_s‖ by autograd: the network unrolled step by step with torch's *Cell modules, and for
    each s a fresh graph from the state at s, the watched layer's h_s the leaf differentiated."""
    mods = []
    for l in range(layers):
        m = CELL_MODULES[cell](K if l == 0 else H, H, dtype=torch.float64)
        with torch.no_grad():
            for name, arr in torch_weights(p, prefixes(p)[l], cell).items():
                getattr(m, name).copy_(torch.from_numpy(np.ascontiguousarray(arr)))
        mods.append(m)
    Vt, ct = torch.from_numpy(p["V"]), torch.from_numpy(p["c"])

    def step(state: list, t: int) -> tuple[list, torch.Tensor, torch.Tensor]:
        """Step t (reads x_t): the new state, the top layer's h_t and L_t."""
        inp = torch.nn.functional.one_hot(torch.tensor([int(ids[t - 1])]), K).double()
        new = []
        for l in range(layers):
            out = mods[l](inp, tuple(state[l]) if cell == "lstm" else state[l][0])
            new.append(list(out) if cell == "lstm" else [out])
            inp = new[l][0]
        loss = torch.nn.functional.cross_entropy(inp @ Vt.T + ct, torch.tensor([int(ids[t])]))
        return new, inp, loss

    states = [[[torch.tensor(h0[l, j]) for j in range(h0.shape[1])] for l in range(layers)]]
    with torch.no_grad():
        for t in range(1, T + 1):
            states.append(step(states[-1], t)[0])
    G = np.full((T + 1, T + 1), np.nan)
    for s in range(T):
        state = [[x.clone() for x in part] for part in states[s]]
        leaf = state[layer][0].requires_grad_()
        for t in range(s + 1, T + 1):
            state, top, loss = step(state, t)
            (g,) = torch.autograd.grad(loss, [leaf], retain_graph=True)
            G[t, s] = float(g.norm())
            if s == t - 1 and layer == layers - 1:            # the immediate gradient at h_t itself
                (g,) = torch.autograd.grad(loss, [top], retain_graph=True)
                G[t, t] = float(g.norm())
    return G


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers,layer", [(1, 0), (2, 1), (2, 0)])
def test_grad_flow_matches_torch_autograd(cell, layers, layer):
    p, h0, ids = setup(cell, layers)
    flow = gradflow.grad_flow(p, ids, h0, layer=layer)
    ref = torch_norms(p, h0, ids, cell, layers, layer)
    below = np.tril_indices(T + 1, -1)
    below = (below[0][below[0] >= 1], below[1][below[0] >= 1])
    np.testing.assert_allclose(flow.norms[below], ref[below], rtol=1e-10, atol=1e-14)
    diag = np.arange(1, T + 1)
    if layer == layers - 1:                      # the top layer's immediate gradient Vᵀ(ŷ_t − 1)
        np.testing.assert_allclose(flow.norms[diag, diag], ref[diag, diag], rtol=1e-10)
    else:
        assert np.isnan(flow.norms[diag, diag]).all()
    assert np.isnan(flow.norms[np.triu_indices(T + 1, 1)]).all() and np.isnan(flow.norms[0]).all()
    assert flow.norms[T, 0] > 0 and flow.cell == cell and flow.layer == layer


def test_losses_and_summaries():
    p, h0, ids = setup("gru", 1)
    flow = gradflow.grad_flow(p, ids, h0)
    loss, _ = network.forward(p, ids[None, :-1], ids[None, 1:], h0)
    assert np.isclose(np.nanmean(flow.losses), loss, rtol=1e-12)       # L = (1/T) Σ_t L_t
    np.testing.assert_array_equal(flow.last_step(), flow.norms[T, ::-1])
    lag = flow.by_lag()
    assert lag.shape == (T,)
    k = 2
    vals = [flow.norms[t, t - k] for t in range(k, T + 1)]
    assert np.isclose(lag[k], np.exp(np.mean(np.log(vals))))


def test_grad_flow_matches_finite_differences():
    """The seed's RNN (its plain W, U, V, b, c dict), H = 2, T = 3: central differences of L_t in h_s,
    perturbing h_s inside a step-by-step forward written out here."""
    rng = np.random.default_rng(0)
    p = model.init_params(3, 2, seed=1, dtype=np.float64)
    p["b"] += rng.uniform(-0.5, 0.5, 2)
    ids = np.array([0, 2, 1, 2])
    h0 = rng.uniform(-0.5, 0.5, (1, 2))

    def loss_t(t: int, s: int, dh: np.ndarray) -> float:
        h = h0[0] + (dh if s == 0 else 0)
        for k in range(1, t + 1):
            h = np.tanh(p["W"] @ h + p["U"][:, ids[k - 1]] + p["b"])
            if k == s:
                h = h + dh
        o = p["V"] @ h + p["c"]
        return float(np.log(np.exp(o).sum()) - o[ids[t]])

    flow = gradflow.grad_flow(p, ids, h0)
    r = 1e-6
    for t in range(1, 4):
        for s in range(t + 1):
            g = [(loss_t(t, s, r * e) - loss_t(t, s, -r * e)) / (2 * r) for e in np.eye(2)]
            assert np.isclose(flow.norms[t, s], np.linalg.norm(g), rtol=1e-7), (t, s)


def test_bad_arguments():
    p, h0, ids = setup("rnn", 1)
    with pytest.raises(ValueError, match="layer"):
        gradflow.grad_flow(p, ids, h0, layer=1)
    with pytest.raises(ValueError, match="out of range"):
        gradflow.grad_flow(p, np.array([0, K]), h0)
    with pytest.raises(ValueError, match="at least 2"):
        gradflow.grad_flow(p, np.array([1]), h0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("gradflow")
    corpus = write_corpus(d, 4000)
    res = charnn("train", "--data", corpus, "--out", d / "run", "--cell", "gru", "--max-steps", "3", *SMALL)
    assert res.rc == 0, res.err
    return d


def test_cli_writes_the_figure(run, tmp_path):
    text = tmp_path / "window.txt"
    text.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n", encoding="utf-8")
    out = tmp_path / "flow.png"
    res = charnn("gradflow", run / "run", "--text", text, "--length", "20", "--out", out)
    assert res.rc == 0, res.err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "‖∂L_T/∂h_t‖" in res.out and "gru" in res.out


def test_cli_reads_the_validation_text_by_default(run, tmp_path):
    res = charnn("gradflow", run / "run", "--length", "8", "--out", tmp_path / "f.png")
    assert res.rc == 0, res.err
    assert (tmp_path / "f.png").stat().st_size > 1000


@pytest.mark.parametrize("extra,needle", [
    (["--length", "0"], "--length"),
    (["--layer", "5"], "--layer"),
    (["--layer", "top"], "--layer"),
    (["--text", "MISSING"], "MISSING"),
    (["--offset", "-1"], "--offset"),
    (["--offset", "999999"], "offset"),
])
def test_cli_bad_input_is_one_line_and_exit_2(run, tmp_path, extra, needle):
    extra = [str(tmp_path / a) if a == "MISSING" else a for a in extra]
    res = charnn("gradflow", run / "run", "--out", tmp_path / "f.png", *extra)
    assert_user_error(res, needle)
    assert not (tmp_path / "f.png").exists()


def test_cli_text_with_unknown_characters(run, tmp_path):
    text = tmp_path / "odd.txt"
    text.write_text("ab€cd" * 10, encoding="utf-8")
    res = charnn("gradflow", run / "run", "--text", text, "--out", tmp_path / "f.png")
    assert_user_error(res)


@pytest.mark.parametrize("name,needle", [("flow.jpg", ".png"), ("nowhere/flow.png", "no such folder")])
def test_cli_bad_out_is_refused_before_any_work(run, tmp_path, name, needle):
    res = charnn("gradflow", run / "run", "--out", tmp_path / name)
    assert_user_error(res, needle)


def test_float32_parameters():
    p, h0, ids = setup("lstm", 2)
    p32 = {k: v.astype(np.float32) for k, v in p.items()}
    f64 = gradflow.grad_flow(p, ids, h0)
    f32 = gradflow.grad_flow(p32, ids, h0.astype(np.float32))
    finite = np.isfinite(f64.norms)
    np.testing.assert_allclose(f32.norms[finite], f64.norms[finite], rtol=1e-4)


def test_cli_every_layer_of_a_stacked_lstm(tmp_path):
    corpus = write_corpus(tmp_path, 3000)
    res = charnn("train", "--data", corpus, "--out", tmp_path / "run", "--cell", "lstm", "--layers", "2",
                 "--max-steps", "2", *SMALL)
    assert res.rc == 0, res.err
    res = charnn("gradflow", tmp_path / "run", "--layer", "all", "--length", "6", "--out", tmp_path / "f.png")
    assert res.rc == 0, res.err
    assert "lstm 2x16: layer 0" in res.out and "lstm 2x16: layer 1" in res.out
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
