"""Weight drop (DropConnect on the recurrent weights W^l): masks, float64 gradchecks, PyTorch parity
through a torch graph that multiplies the same mask into weight_hh, and the trainer and CLI (issue 9)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from charnn.eval import gradcheck
from charnn import model, model as stack, train
from charnn.data.corpus import Corpus
from charnn.train.config import Config, ConfigError
from clihelp import assert_user_error, charnn, write_corpus
from exact import assert_same_training_state
from test_cells import random_stack
from test_cells_torch import (TORCH, TORCH_NAMES, grads_to_ours, lstm_rows, setup, state_grad, torch_head,
                              torch_state, torch_weights)

CELLS = ("rnn", "lstm", "gru")


def test_masks_thin_each_layer_w_and_keep_its_expectation():
    params = stack.init_params(11, 64, seed=0, dtype=np.float32, cell="gru", layers=3)
    masks = stack.weight_drop_masks(np.random.default_rng(1), 0.25, params)
    assert set(masks) == {"L0.W", "L1.W", "L2.W"}                 # the recurrent weights only
    for k, m in masks.items():
        assert m.shape == params[k].shape == (192, 64) and m.dtype == np.float32
        assert set(np.unique(m).tolist()) == {0.0, np.float32(1 / 0.75)}
        assert abs((m == 0).mean() - 0.25) < 0.02
        assert abs(m.mean() - 1.0) < 0.03                          # E[M ⊙ W] = W
    assert not (masks["L0.W"] == masks["L1.W"]).all()
    again = stack.weight_drop_masks(np.random.default_rng(1), 0.25, params)
    assert all((again[k] == masks[k]).all() for k in masks)       # a function of the generator
    vanilla = model.init_params(11, 8, seed=0, dtype=np.float64)
    (m,) = stack.weight_drop_masks(np.random.default_rng(2), 0.5, vanilla).values()
    assert m.dtype == np.float64 and set(np.unique(m).tolist()) == {0.0, 2.0}
    zero = stack.weight_drop_masks(np.random.default_rng(3), 0.0, params)
    assert all((m == 1).all() for m in zero.values())
    for p in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="weight drop"):
            stack.weight_drop_masks(np.random.default_rng(0), p, params)


def test_the_loss_is_that_of_the_masked_weights_and_dropped_weights_get_no_gradient():
    params, x, y, s0, rng = random_stack("lstm", 2, seed=5)
    wm = stack.weight_drop_masks(rng, 0.5, params)
    dropped = {**params, **{k: params[k] * m for k, m in wm.items()}}
    loss, grads, state = stack.loss_and_grads(params, x, y, s0, weight_masks=wm)
    loss_d, grads_d, state_d = stack.loss_and_grads(dropped, x, y, s0)
    assert loss == loss_d and (state == state_d).all()
    for k in params:
        want = grads_d[k] * wm[k] if k in wm else grads_d[k]
        np.testing.assert_array_equal(grads[k], want, err_msg=k)
        if k in wm:
            assert (grads[k][wm[k] == 0] == 0).all() and (grads[k][wm[k] > 0] != 0).any()
    for k in params:                                              # the caller's weights are untouched
        assert not np.shares_memory(grads[k], params[k])
    assert stack.forward(params, x, y, s0, weight_masks=wm)[0] == loss


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_every_cell_with_weight_drop(cell, layers):
    params, x, y, s0, rng = random_stack(cell, layers, seed=20 + layers)
    wm = stack.weight_drop_masks(rng, 0.4, params)
    masks = stack.dropout_masks(rng, 0.3, layers, x.shape[1], x.shape[0], params["L0.W"].shape[1],
                                np.float64) if layers == 2 else None   # and combined with dropout once per cell
    rows = gradcheck.gradcheck(params, x, y, s0, masks=masks, weight_masks=wm, max_checks=25)
    assert {r.name for r in rows} == set(params) | {"h0"}
    assert all(r.passed for r in rows), gradcheck.format_table(rows)


def test_gradcheck_of_the_seeds_vanilla_dict_with_weight_drop():
    params = model.init_params(7, 5, seed=4, dtype=np.float64)
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 7, (3, 6)), rng.integers(0, 7, (3, 6))
    wm = stack.weight_drop_masks(rng, 0.3, params)
    assert set(wm) == {"W"}
    rows = gradcheck.gradcheck(params, x, y, rng.uniform(-0.5, 0.5, (3, 5)), weight_masks=wm, max_checks=30)
    assert all(r.passed for r in rows), gradcheck.format_table(rows)
    with_mask = stack.loss_and_grads(params, x, y, None, weight_masks=wm)[0]
    assert with_mask != model.loss_and_grads(params, x, y, None)[0]


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_parity_with_torch_weight_hh_times_the_same_mask(cell, layers):
    """torch: one module per layer called with weight_hh = W_leaf ⊙ M (torch.func.functional_call), so
    autograd differentiates through the mask; its gradients of the leaves must equal ours."""
    p, s0, x, y, rng = setup(cell, layers, seed=30 + layers)
    wm = stack.weight_drop_masks(rng, 0.35, p)
    H = p[stack.prefixes(p)[0] + "W"].shape[1]
    order = lstm_rows if cell == "lstm" else (lambda a: a)
    inp = torch.nn.functional.one_hot(torch.from_numpy(x.T), p["V"].shape[0]).double()
    leaves, states = [], []
    for l in range(layers):
        mod = TORCH[cell](inp.shape[-1], H).double()
        w = {f"{n}_l0": torch.tensor(np.ascontiguousarray(a), requires_grad=True)
             for n, a in torch_weights(p, stack.prefixes(p)[l], cell).items()}
        used = {**w, "weight_hh_l0": w["weight_hh_l0"] * torch.from_numpy(order(wm[stack.prefixes(p)[l] + "W"]))}
        st = torch_state(cell, s0, slice(l, l + 1))
        inp, _ = torch.func.functional_call(mod, used, (inp, st))
        leaves.append(w)
        states.append(st)
    loss_t, Vt, ct = torch_head(p, inp, y)
    loss_t.backward()

    loss, grads, ds0 = stack.loss_grads_dh0(p, x, y, s0, weight_masks=wm)
    assert loss == pytest.approx(loss_t.item(), abs=1e-12)
    want = {"V": Vt.grad.numpy(), "c": ct.grad.numpy()}
    for l, w in enumerate(leaves):
        want.update(grads_to_ours({n: w[f"{n}_l0"].grad.numpy() for n in TORCH_NAMES}, stack.prefixes(p)[l], cell))
    assert set(want) == set(grads)
    for k in want:
        np.testing.assert_allclose(grads[k], want[k], atol=1e-11, err_msg=k)
    np.testing.assert_allclose(ds0, np.concatenate([state_grad(cell, st) for st in states], axis=0), atol=1e-11)
    # the same loss through the batch shards of the threaded path (float64 sums in another order)
    loss_sharded, grads_sharded, _ = stack.loss_and_grads(p, np.tile(x, (8, 1)), np.tile(y, (8, 1)),
                                                          np.tile(s0, (1, 1, 8, 1)), weight_masks=wm)
    assert loss_sharded == pytest.approx(loss, rel=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads_sharded[k], grads[k], rtol=1e-9, atol=1e-13, err_msg=k)


def small_cfg(**kw) -> Config:
    base = dict(cell="gru", layers=2, hidden_size=16, batch_size=4, max_len=20, epochs=1, max_steps=12,
                lr=3e-3, weight_drop=0.3, dtype="float64", sample_length=10, log_every=4)
    return Config(**{**base, **kw})


TEXT = "the quick brown fox jumps over the lazy dog. " * 60


def test_the_trainer_draws_one_mask_per_step_and_resumes_exactly(tmp_path):
    straight = train.train(small_cfg(), tmp_path / "a", text=TEXT, progress=False, log=None)
    train.train(small_cfg(max_steps=5), tmp_path / "b", text=TEXT, progress=False, log=None)
    resumed = train.resume(tmp_path / "b", {"max_steps": 12}, text=TEXT, progress=False, log=None)
    assert np.isfinite(straight.val_loss) and resumed.val_loss == straight.val_loss
    assert_same_training_state(tmp_path / "a", tmp_path / "b")
    assert json.loads((tmp_path / "a" / "config.json").read_text())["config"]["weight_drop"] == 0.3
    plain = train.train(small_cfg(weight_drop=0.0), None, text=TEXT, progress=False, log=None)
    assert plain.val_loss != straight.val_loss
    # with dropout too, and for the seed's one-layer RNN (which otherwise takes model.loss_and_grads)
    both = train.train(small_cfg(dropout=0.2, locked_dropout=True), None, text=TEXT, progress=False, log=None)
    rnn = train.train(small_cfg(cell="rnn", layers=1), None, text=TEXT, progress=False, log=None)
    rnn_plain = train.train(small_cfg(cell="rnn", layers=1, weight_drop=0.0), None, text=TEXT, progress=False, log=None)
    assert np.isfinite(both.val_loss) and both.val_loss not in (straight.val_loss, plain.val_loss)
    assert np.isfinite(rnn.val_loss) and rnn.val_loss != rnn_plain.val_loss


def test_trainer_masks_follow_the_step():
    trainer = train.Trainer(small_cfg(), Corpus.from_text(TEXT), progress=False, log=None)
    first = trainer.weight_masks()
    assert set(first) == {"L0.W", "L1.W"}
    again = trainer.weight_masks()
    trainer.step += 1
    nxt = trainer.weight_masks()
    assert all((first[k] == again[k]).all() for k in first)
    assert not (first["L0.W"] == nxt["L0.W"]).all()


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan"), float("inf"), True, "0.2"])
def test_bad_values_are_refused(value):
    with pytest.raises(ConfigError, match="weight-drop"):
        small_cfg(weight_drop=value)


def test_cli_flags_reach_the_run_and_bad_ones_exit_2(tmp_path):
    corpus = write_corpus(tmp_path, 4000)
    small = ["--data", corpus, "--cell", "lstm", "--hidden-size", "8", "--batch-size", "2", "--max-len", "10",
             "--max-steps", "3", "--no-progress"]
    ok = charnn("train", *small, "--out", tmp_path / "r", "--weight-drop", "0.25")
    assert ok.rc == 0, ok.err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["config"]["weight_drop"] == 0.25
    for bad in ("1", "-0.5", "nan"):
        assert_user_error(charnn("train", *small, "--out", tmp_path / "s", "--weight-drop", bad), "weight-drop")
    assert not (tmp_path / "s").exists()
    check = charnn("gradcheck", "--cell", "lstm", "--layers", "2", "--weight-drop", "0.25", "--checks", "8")
    assert check.rc == 0, check.out + check.err
    assert "weight drop 0.25" in check.out and "all gradients match" in check.out
    assert_user_error(charnn("gradcheck", "--weight-drop", "1.2"), "--weight-drop")
