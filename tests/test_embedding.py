"""The optional input embedding E (--embed D): the first layer reads E[x] instead of one-hot x.

Gradient checks in float64, PyTorch parity against nn.Embedding + nn.RNN/LSTM/GRU + the same head,
the trainer end to end with an exact resume, and refusals.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from charnn import model, train
from charnn.data.corpus import Corpus
from charnn.eval import gradcheck
from charnn.nn import generate as gen
from charnn.train import checkpoint
from charnn.train.config import Config, ConfigError
from clihelp import assert_user_error, charnn, write_corpus
from test_cells_torch import TORCH, load_layer, state_grad, torch_grads_to_ours, torch_head, torch_state

V, H, B, T, D = 7, 6, 3, 5, 4
CASES = [("rnn", 1), ("rnn", 2), ("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 2)]


def setup(cell, layers, seed=0):
    rng = np.random.default_rng(seed)
    p = model.init_params(V, H, seed=seed, dtype=np.float64, cell=cell, layers=layers, embed=D)
    for k in p:
        if p[k].ndim == 1:
            p[k] = p[k] + rng.uniform(-0.4, 0.4, p[k].shape)
    s0 = rng.uniform(-0.6, 0.6, (layers, 2 if cell == "lstm" else 1, B, H))
    return p, s0, rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


@pytest.mark.parametrize("cell,layers", CASES)
def test_shapes_and_initialisation(cell, layers):
    p = model.init_params(V, H, seed=1, cell=cell, layers=layers, embed=D)
    first = model.prefixes(p)[0] + "U"
    assert p["E"].shape == (V, D) and p[first].shape[1] == D and model.embed_size(p) == D
    assert {k: v.shape for k, v in p.items()} == model.param_shapes(V, H, cell=cell, layers=layers, embed=D)
    assert np.abs(p[first]).max() <= 1 / np.sqrt(H)            # a dense input: bound 1/sqrt(H)
    assert model.embed_size(model.init_params(V, H, seed=1, cell=cell, layers=layers)) == 0


@pytest.mark.parametrize("cell,layers", CASES)
def test_gradcheck_with_embedding(cell, layers):
    p, s0, x, y = setup(cell, layers, seed=layers)
    h0 = s0[0, 0] if (cell, layers) == ("rnn", 1) else s0
    rows = gradcheck.gradcheck(p, x, y, h0)
    assert {r.name for r in rows} >= {"E", "h0"}
    assert all(r.passed for r in rows), gradcheck.format_table(rows)


@pytest.mark.parametrize("cell,layers", CASES)
def test_parity_with_torch_embedding_and_cells(cell, layers):
    p, s0, x, y = setup(cell, layers, seed=10 + layers)
    loss, grads, dh0 = model.loss_grads_dh0(p, x, y, s0)
    emb = torch.nn.Embedding(V, D).double()
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(p["E"]))
    mods, states = [], []
    inp = emb(torch.from_numpy(x.T))
    for l in range(layers):
        mod = TORCH[cell](D if l == 0 else H, H).double()
        load_layer(mod, p, model.prefixes(p)[l], cell)
        st = torch_state(cell, s0, slice(l, l + 1))
        inp, _ = mod(inp, st)
        mods.append(mod)
        states.append(st)
    tloss, Vt, ct = torch_head(p, inp, y)
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    want = {"E": emb.weight.grad.numpy(), "V": Vt.grad.numpy(), "c": ct.grad.numpy()}
    for l, mod in enumerate(mods):
        want.update(torch_grads_to_ours(mod, model.prefixes(p)[l], cell))
    assert set(want) == set(grads)
    for k in grads:
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-9, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(dh0, np.concatenate([state_grad(cell, st) for st in states]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cell,layers", [("rnn", 1), ("gru", 2)])
def test_reading_and_generation_use_the_embedding(monkeypatch, cell, layers):
    p, _, _, _ = setup(cell, layers, seed=3)
    ids = np.random.default_rng(4).integers(0, V, 30)
    total, n, _ = model.evaluate(p, ids)
    loss, _ = model.forward(p, ids[None, :-1], ids[None, 1:])
    assert total / n == pytest.approx(loss, rel=1e-12)
    monkeypatch.setattr(gen, "KERNEL_MIN_CHARS", 0)
    a, _ = model.generate(p, None, np.array([2]), 300, rng=np.random.default_rng(0))
    monkeypatch.setenv("CHARNN_NO_NUMBA", "1")
    b, _ = model.generate(p, None, np.array([2]), 300, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)


def test_the_seed_model_with_an_embedding_leaves_the_fast_path_and_trains_the_same_function():
    p, _, x, y = setup("rnn", 1, seed=5)
    loss, grads, _ = model.loss_and_grads(p, x, y)
    ref_loss, cache = model.forward(p, x, y)
    ref, _ = model.backward(p, cache)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for k in p:
        np.testing.assert_allclose(grads[k], ref[k], rtol=1e-10, atol=1e-13, err_msg=k)


TEXT = "the quick brown fox jumps over the lazy dog. " * 120


def test_trainer_with_embedding_saves_and_resumes_exactly(tmp_path):
    cfg = Config(hidden_size=16, batch_size=4, max_len=20, epochs=1, max_steps=6, cell="lstm", embed=5,
                 eval_every=3, sample_length=20)
    corpus = Corpus.from_text(TEXT)
    straight = train.train(cfg, tmp_path / "a", corpus=corpus, progress=False, log=None)
    assert straight.params["E"].shape == (len(corpus.vocab), 5)
    half = Config(**{**cfg.to_dict(), "max_steps": 3})
    train.train(half, tmp_path / "b", corpus=corpus, progress=False, log=None)
    resumed = train.resume(tmp_path / "b", {"max_steps": 6}, corpus=corpus, progress=False, log=None)
    for k in straight.params:
        np.testing.assert_array_equal(resumed.params[k], straight.params[k], err_msg=k)
    ck = checkpoint.load(tmp_path / "a" / "checkpoints" / "last.safetensors")
    assert ck.config.embed == 5 and ck.params["E"].shape == (len(corpus.vocab), 5)


@pytest.mark.parametrize("bad", [-1, True, 2.5, 10**6])
def test_config_refuses_a_bad_embed(bad):
    with pytest.raises(ConfigError, match="embed"):
        Config(embed=bad)


def test_cli_refuses_a_bad_embed(tmp_path):
    corpus = write_corpus(tmp_path)
    assert_user_error(charnn("train", "--data", corpus, "--out", tmp_path / "r", "--embed", "-2"), "embed")
    assert_user_error(charnn("gradcheck", "--embed", "-1"), "embed")
