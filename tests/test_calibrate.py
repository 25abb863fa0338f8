"""Temperature calibration (charnn.eval.calibrate): the fit, the calibrated network, and the held-out text."""
from __future__ import annotations

import json

import numpy as np
import pytest

from charnn.eval import calibrate
from charnn.train import checkpoint
from charnn import model, model as stack
from charnn.train.config import Config, ConfigError
from charnn.data.corpus import Corpus
from charnn.data import DataError, default_corpus_path, hold_out
from charnn.apps.evaluate import evaluate_checkpoint
from charnn.train import train

from ckcraft import cli

TEXT = default_corpus_path().read_text(encoding="utf-8")[:8000]
CFG = Config(cell="gru", layers=2, hidden_size=12, max_len=16, batch_size=4, epochs=2, dtype="float64",
             sample_length=20, log_every=5, eval_every=20, calibration_fraction=0.05)


def synthetic(tau: float, n: int = 40_000, V: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and targets drawn from softmax(o / tau): the loss is smallest near temperature tau."""
    rng = np.random.default_rng(seed)
    o = rng.normal(0.0, 3.0, (n, V))
    p = np.exp(o / tau - (o / tau).max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return o, y


@pytest.mark.parametrize("true_tau", [0.6, 1.0, 1.7])
def test_fit_recovers_the_temperature_the_targets_were_drawn_at(true_tau):
    o, y = synthetic(true_tau)
    tau = calibrate.fit_temperature(o, y)
    assert tau == pytest.approx(true_tau, rel=0.03)


def test_the_fit_is_the_minimum_over_a_fine_grid_and_a_stationary_point():
    o, y = synthetic(1.3, n=5000)
    tau = calibrate.fit_temperature(o, y)
    best = calibrate.nll_at(o, y, 1 / tau)
    grid = min(calibrate.nll_at(o, y, b) for b in np.linspace(0.2, 5.0, 2401))
    assert best <= grid + 1e-9
    # dL/dβ = mean(E_softmax(βo)[o] − o_y) vanishes at the minimum
    z = o / tau
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert abs(np.mean((p * o).sum(axis=1) - o[np.arange(len(y)), y])) < 1e-3


def test_apply_divides_the_output_layer_only():
    p = stack.init_params(7, 5, seed=1, dtype=np.float64, cell="lstm", layers=2)
    q = calibrate.apply(p, 1.25)
    assert np.allclose(q["V"], p["V"] / 1.25) and np.allclose(q["c"], p["c"] / 1.25)
    assert all(q[k] is p[k] for k in p if k not in ("V", "c"))
    assert calibrate.apply(p, 1.0)["V"] is p["V"]
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            calibrate.apply(p, bad)


@pytest.mark.parametrize("cell,layers", [("rnn", 1), ("gru", 2), ("lstm", 1)])
@pytest.mark.parametrize("streams", [1, 4])
def test_mean_nll_is_the_calibrated_networks_evaluation(cell, layers, streams):
    p = model.init_params(9, 6, seed=3, dtype=np.float64, cell=cell, layers=layers)
    ids = np.random.default_rng(0).integers(0, 9, 700)
    got = calibrate.mean_nll(p, ids, [1.0, 1.4, 0.8], streams=streams)
    for tau, g in zip([1.0, 1.4, 0.8], got):
        q = calibrate.apply(p, tau)
        total, n, _ = (stack.evaluate(q, ids, streams=streams) if streams > 1 else model.evaluate(q, ids))
        assert g == pytest.approx(total / n, abs=1e-12)
    o, y = calibrate.holdout_logits(p, ids, streams=streams)
    assert o.shape == (699, 9) and sorted(y.tolist()) == sorted(ids[1:].tolist())


def test_hold_out_takes_the_start_of_the_training_split():
    ids = np.arange(1000)
    train_ids, val_ids = ids[:900], ids[900:]
    fit, held = hold_out(train_ids, len(ids), 0.02)
    assert fit.tolist() == list(range(20, 900)) and held.tolist() == list(range(20))
    with pytest.raises(DataError, match="calibration fraction"):
        hold_out(train_ids, len(ids), 0.001)             # 1 character


@pytest.mark.parametrize("bad", [-0.1, 0.45, float("nan"), True, "0.1"])
def test_config_refuses_a_bad_calibration_fraction(bad):
    with pytest.raises(ConfigError, match="calibration-fraction"):
        Config(calibration_fraction=bad)


def test_training_with_a_held_out_text(tmp_path):
    """The held-out text never trains; every validation fits τ on it; checkpoints, eval and samples use it."""
    out, data = tmp_path / "run", tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    res = train(CFG.replace(data=str(data)), out, progress=False, log=None)
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "val_loss" in r]
    assert evals and all("temperature" in r and "val_loss_plain" in r for r in evals)
    assert all(r["val_loss"] <= r["val_loss_plain"] + 0.05 for r in evals)
    best = checkpoint.load(out / "checkpoints" / "best.safetensors")
    last = checkpoint.load(out / "checkpoints" / "last.safetensors")
    assert last.temperature == res.temperature == evals[-1]["temperature"] != 1.0
    assert best.best_val_loss == min(r["val_loss"] for r in evals)
    # the calibrated network's loss, recomputed from the checkpoint, is what the run recorded
    r = evaluate_checkpoint(best)
    rec = next(r2 for r2 in evals if r2["val_loss"] == best.best_val_loss)
    assert r.temperature == best.temperature and r.nats_per_char == pytest.approx(rec["val_loss"], abs=1e-12)
    assert r.uncalibrated_nats_per_char == pytest.approx(rec["val_loss_plain"], abs=1e-12)
    assert "fitted on held-out text" in r.format()
    # τ is the minimiser of the held-out loss of the checkpoint's own weights
    n = len(TEXT)
    held = np.asarray(best.vocab.encode(TEXT[:int(n * 0.05)]))
    assert calibrate.fit(best.params, held) == pytest.approx(best.temperature, rel=1e-6)
    assert np.allclose(best.model_params["V"], best.params["V"] / best.temperature)


def test_the_held_out_text_is_not_trained_on():
    from charnn.train import Trainer

    corpus = Corpus.load(None)
    t = Trainer(Config(calibration_fraction=0.02, batch_size=8), corpus, progress=False, log=None)
    n = len(corpus.ids)
    k, cut = int(n * 0.02), int(n * 0.9)
    assert np.array_equal(t.calib_ids, corpus.ids[:k])
    assert len(t.batches.ids) == cut - k and np.array_equal(t.batches.ids, corpus.ids[k:cut])


def test_cli_refuses_a_bad_calibration_fraction(tmp_path):
    r = cli("train", "--calibration-fraction", "0.6", "--max-steps", "1", "--out", tmp_path / "r")
    r.one_line_error("calibration-fraction")
