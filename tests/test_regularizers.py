"""Locked (variational) dropout and decoupled weight decay through the trainer and the CLI."""
from __future__ import annotations

import json
import numpy as np
import pytest

from charnn import model as stack, train
from charnn.train.config import Config, ConfigError
from clihelp import assert_user_error, charnn, write_corpus
from exact import assert_same_training_state


def test_locked_masks_are_one_mask_per_sequence():
    rng = np.random.default_rng(0)
    masks = stack.dropout_masks(rng, 0.3, 2, 50, 8, 64, np.float32, locked=True)
    assert len(masks) == 2
    for m in masks:
        assert m.shape == (50, 8, 64) and m.dtype == np.float32
        assert (m == m[0]).all()                         # the same units dropped at every step
        assert set(np.unique(m).tolist()) <= {0.0, np.float32(1 / 0.7)}
    assert not (masks[0][0] == masks[1][0]).all()        # but a different mask per layer
    kept = np.mean([(stack.dropout_masks(np.random.default_rng(s), 0.3, 1, 1, 64, 64, locked=True)[0] > 0).mean()
                    for s in range(20)])
    assert abs(kept - 0.7) < 0.02


def test_locked_masks_give_the_gradients_of_the_same_mask_materialised():
    """The broadcast view is only a storage trick: loss and grads equal those of a copied (T, B, H) mask."""
    params = stack.init_params(11, 16, seed=3, dtype=np.float64, cell="lstm", layers=2)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 11, size=(3, 12))
    y = rng.integers(0, 11, size=(3, 12))
    masks = stack.dropout_masks(np.random.default_rng(5), 0.4, 2, 12, 3, 16, np.float64, locked=True)
    loss_a, g_a, _ = stack.loss_and_grads(params, x, y, None, masks=masks)
    loss_b, g_b, _ = stack.loss_and_grads(params, x, y, None, masks=[np.array(m) for m in masks])
    assert loss_a == pytest.approx(loss_b, rel=1e-15)
    for k in g_a:
        np.testing.assert_allclose(g_a[k], g_b[k], rtol=1e-13, atol=1e-15)


def small_cfg(**kw) -> Config:
    base = dict(cell="gru", layers=2, hidden_size=16, batch_size=4, max_len=20, epochs=1, max_steps=12,
                lr=3e-3, dropout=0.3, dtype="float64", sample_length=10, log_every=4)
    return Config(**{**base, **kw})


TEXT = "the quick brown fox jumps over the lazy dog. " * 60


def test_weight_decay_and_locked_dropout_train_and_resume_exactly(tmp_path):
    cfg = small_cfg(weight_decay=0.1, locked_dropout=True)
    straight = train.train(cfg, tmp_path / "a", text=TEXT, progress=False, log=None)
    half = train.train(small_cfg(weight_decay=0.1, locked_dropout=True, max_steps=6), tmp_path / "b",
                       text=TEXT, progress=False, log=None)
    resumed = train.resume(tmp_path / "b", {"max_steps": 12}, text=TEXT, progress=False, log=None)
    assert np.isfinite(straight.val_loss)
    assert resumed.val_loss == straight.val_loss
    assert_same_training_state(tmp_path / "a", tmp_path / "b")
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert saved["config"]["weight_decay"] == 0.1 and saved["config"]["locked_dropout"] is True
    # and they change the run: without them the weights end elsewhere
    plain = train.train(small_cfg(), tmp_path / "c", text=TEXT, progress=False, log=None)
    assert plain.val_loss != straight.val_loss


@pytest.mark.parametrize("kw, msg", [(dict(weight_decay=-0.1), "weight-decay"), (dict(weight_decay=1.5), "weight-decay"),
                                     (dict(weight_decay=0.1, optimizer="sgd"), "adam"),
                                     (dict(locked_dropout="yes"), "locked-dropout")])
def test_bad_values_are_refused(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        small_cfg(**kw)


def test_cli_flags_reach_the_run_and_bad_ones_exit_2(tmp_path):
    corpus = write_corpus(tmp_path, 4000)
    small = ["--data", corpus, "--cell", "gru", "--hidden-size", "8", "--batch-size", "2", "--max-len", "10",
             "--max-steps", "3", "--no-progress"]
    ok = charnn("train", *small, "--out", tmp_path / "r", "--dropout", "0.2", "--locked-dropout",
                "--weight-decay", "0.05")
    assert ok.rc == 0, ok.err
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
    assert cfg["locked_dropout"] is True and cfg["weight_decay"] == 0.05
    assert_user_error(charnn("train", *small, "--out", tmp_path / "s", "--weight-decay", "0.1", "--optimizer", "sgd"),
                      "weight-decay")
    assert_user_error(charnn("train", *small, "--out", tmp_path / "t", "--weight-decay", "nan"), "weight-decay")
    assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists()


def test_random_offset_rotates_the_text_and_keeps_pairs_and_streams_contiguous():
    from charnn.data import Batches
    ids = np.arange(5000, dtype=np.int32)
    b = Batches(ids, 4, 10)
    plain = [b.get(k) for k in range(3)]
    b.offset = len(ids)                                  # a full turn is no rotation
    for k in range(3):
        np.testing.assert_array_equal(b.get(k)[0], plain[k][0])
    b.offset = 4990                                      # wraps past the end of the text
    L = b.streams.shape[1]
    x0, y0 = b.get(0)
    x1, _ = b.get(1)
    np.testing.assert_array_equal(x0[:, 1:], y0[:, :-1])                # targets = inputs shifted by one
    np.testing.assert_array_equal((x0[:, -1] + 1) % len(ids), x1[:, 0])  # chunk k+1 continues chunk k
    np.testing.assert_array_equal(x0[:, 0], ids[(4990 + np.arange(4) * L) % len(ids)])


def test_random_offset_differs_per_epoch_and_resumes_exactly(tmp_path):
    cfg = small_cfg(random_offset=True, epochs=3, max_steps=0, dropout=0.0, cell="rnn", layers=1)
    straight = train.train(cfg, tmp_path / "a", text=TEXT, progress=False, log=None)
    first = train.train(small_cfg(random_offset=True, epochs=1, max_steps=0, dropout=0.0, cell="rnn", layers=1),
                        tmp_path / "b", text=TEXT, progress=False, log=None)
    resumed = train.resume(tmp_path / "b", {"epochs": 3}, text=TEXT, progress=False, log=None)
    assert resumed.val_loss == straight.val_loss and resumed.samples == straight.samples[1:]
    assert_same_training_state(tmp_path / "a", tmp_path / "b")
    fixed = train.train(small_cfg(epochs=3, max_steps=0, dropout=0.0, cell="rnn", layers=1), tmp_path / "c",
                        text=TEXT, progress=False, log=None)
    assert fixed.val_loss != straight.val_loss
