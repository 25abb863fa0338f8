"""Training, resume, checkpoints, sampling and evaluation with LSTM/GRU stacks, dropout and LR schedules."""
from __future__ import annotations

import numpy as np
import pytest

from charnn.train import checkpoint
from charnn import train
from charnn.train.config import Config
from charnn.sample import generate_text

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 12


def small(cell: str, **kw) -> Config:
    base = dict(cell=cell, layers=2, dropout=0.2, hidden_size=12, batch_size=4, max_len=20, epochs=1,
                dtype="float64", sample_length=10, eval_every=7, log_every=5, prompt="Fi")
    base.update(kw)
    return Config(**base)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_resume_is_exact_with_dropout_and_schedule(cell, tmp_path):
    (tmp_path / "c.txt").write_text(TEXT)
    cfg = small(cell, data=str(tmp_path / "c.txt"), lr_schedule="step", lr_decay=0.5, lr_decay_every=0.25,
                max_steps=20)
    train.train(cfg.replace(max_steps=9), tmp_path / "a", progress=False, log=None)
    ck = checkpoint.load(tmp_path / "a" / "checkpoints" / "last.safetensors")
    assert ck.h is not None and ck.h.shape == (2, 2 if cell == "lstm" else 1, 4, 12)
    resumed = train.resume(tmp_path / "a", {"max_steps": 20}, progress=False, log=None)
    straight = train.train(cfg, tmp_path / "b", progress=False, log=None)
    for k in straight.params:
        np.testing.assert_array_equal(resumed.params[k], straight.params[k])


def test_cosine_schedule_and_best_checkpoint(tmp_path):
    cfg = small("lstm", lr=1e-2, lr_schedule="cosine", warmup_steps=3, min_lr=1e-3, eval_streams=3)
    r = train.train(cfg, tmp_path / "run", text=TEXT, progress=False, log=None)
    lrs = [row["lr"] for row in r.history]
    assert lrs[-1] < lrs[1] and min(lrs) >= 1e-3 - 1e-12
    best = checkpoint.load(tmp_path / "run" / "checkpoints" / "best.safetensors")
    assert best.best_val_loss == pytest.approx(min(row["val_loss"] for row in r.history if "val_loss" in row))
    assert r.best_val_loss < np.log(len(set(TEXT)))
    (text,) = generate_text(best.params, best.vocab, "Fi", 25, rng=np.random.default_rng(0), temperature=0.7)
    assert len(text) == 25 and set(text) <= set(TEXT)


def test_dropout_on_the_vanilla_rnn(tmp_path):
    r = train.train(small("rnn", layers=1, dropout=0.3, max_steps=6), None, text=TEXT, progress=False, log=None)
    assert set(r.params) == {"W", "U", "V", "b", "c"} and np.isfinite(r.best_val_loss)


def test_cli_gradcheck_lstm_two_layers(capsys):
    from charnn.cli import main

    assert main(["gradcheck", "--cell", "lstm", "--layers", "2", "--checks", "8"]) == 0
    out = capsys.readouterr().out
    assert "L1.W" in out and "h0" in out and "all gradients match" in out


def test_cli_gradcheck_fails_on_a_wrong_gradient(capsys, monkeypatch):
    from charnn.nn import cells
    from charnn.cli import main

    real = cells.gru_backward

    def broken(dhs, W, cache, **kw):
        da, dW, dbn, dh0 = real(dhs, W, cache, **kw)
        return da, dW * 1.01, dbn, dh0

    monkeypatch.setattr(cells, "gru_backward", broken)
    assert main(["gradcheck", "--cell", "gru", "--layers", "2", "--dropout", "0.2", "--checks", "5"]) != 0
    assert "FAIL" in capsys.readouterr().out


def test_cli_train_sample_eval_gru(tmp_path, capsys):
    from charnn.cli import main

    (tmp_path / "c.txt").write_text(TEXT)
    run = str(tmp_path / "run")
    assert main(["train", "--data", str(tmp_path / "c.txt"), "--out", run, "--cell", "gru", "--layers", "2",
                 "--dropout", "0.1", "--hidden-size", "8", "--batch-size", "2", "--max-len", "16",
                 "--max-steps", "6", "--lr-schedule", "cosine", "--warmup-steps", "2", "--eval-streams", "2",
                 "--prompt", "Fi", "--sample-length", "5", "--no-progress"]) == 0
    assert main(["sample", run, "--prompt", "Fi", "--length", "12", "--seed", "3"]) == 0
    assert main(["eval", run, "--json"]) == 0
    out = capsys.readouterr().out
    assert '"nats_per_char"' in out


def test_best_cpu_preset_is_a_valid_config():
    import tomllib
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "configs" / "best-cpu.toml"
    with open(path, "rb") as f:
        cfg = Config.from_dict(tomllib.load(f))
    assert cfg.cell in ("lstm", "gru") and cfg.layers == 2 and cfg.lr_schedule == "cosine" and 0 < cfg.dropout < 1
    assert cfg.max_minutes == 30 and cfg.max_steps == 0 and cfg.eval_streams > 1
