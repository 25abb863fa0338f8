"""`charnn train` end to end: run folder, exact resume, config files, refusals, NaN stop, SIGINT."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from charnn.train import checkpoint
from charnn.train.config import Config

from clihelp import SMALL, assert_user_error, charnn, charnn_subprocess, metrics, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def run2(tmp_path_factory, corpus) -> Path:
    """A 2-epoch float64 run, validated every 40 steps."""
    out = tmp_path_factory.mktemp("runs") / "two"
    res = charnn("train", "--data", corpus, "--out", out, "--epochs", "2", "--eval-every", "40", *SMALL)
    assert res.rc == 0, res.err
    return out


def test_resolved_config_is_printed_and_saved(run2, corpus):
    saved = json.loads((run2 / "config.json").read_text())
    cfg = Config.from_dict(saved["config"])
    assert (cfg.hidden_size, cfg.epochs, cfg.dtype, cfg.eval_every) == (16, 2, "float64", 40)
    assert cfg.data == str(corpus.resolve())          # absolute: the run finds its corpus from anywhere
    text = corpus.read_text(encoding="utf-8")
    assert saved["corpus"]["chars"] == len(text)
    assert saved["corpus"]["path"] == str(corpus.resolve())
    assert len(saved["corpus"]["sha256"]) == 64
    # the seed's values that were not overridden
    assert (cfg.lr, cfg.grad_clip, cfg.train_fraction, cfg.seed, cfg.beta1, cfg.beta2) == (5e-3, 5.0, 0.9, 42, 0.9, 0.999)


def test_run_folder_metrics_samples_and_checkpoints(run2):
    rows = metrics(run2)
    keys = {"step", "epoch", "chars_seen", "train_loss", "lr", "chars_per_s", "wall_s"}
    assert all(keys <= set(r) for r in rows)
    steps = [r["step"] for r in rows]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    per_epoch = steps[-1] // 2
    val_steps = [r["step"] for r in rows if "val_loss" in r]
    # every 40 steps and at both epoch ends
    assert set(val_steps) == set(range(40, steps[-1] + 1, 40)) | {per_epoch, 2 * per_epoch}
    assert rows[-1]["chars_seen"] == steps[-1] * 4 * 20
    first, last = rows[0]["train_loss"], rows[-1]["train_loss"]
    assert last < first                                  # it learns
    best = min(r["val_loss"] for r in rows if "val_loss" in r)
    ck_best = checkpoint.load(run2 / "checkpoints" / "best.safetensors")
    ck_last = checkpoint.load(run2 / "checkpoints" / "last.safetensors")
    assert ck_best.best_val_loss == pytest.approx(best) and ck_last.best_val_loss == pytest.approx(best)
    assert (ck_last.step, ck_last.epoch, ck_last.batch_index) == (steps[-1], 2, 0)
    samples = (run2 / "samples.txt").read_text()
    assert samples.count("=== epoch") == 2 and samples.count("ROMEO:") >= 2


def test_resume_to_more_epochs_is_bit_identical(tmp_path, run2, corpus):
    one = tmp_path / "one"
    assert charnn("train", "--data", corpus, "--out", one, "--epochs", "1", "--eval-every", "40", *SMALL).rc == 0
    assert checkpoint.load(one / "checkpoints" / "last.safetensors").epoch == 1
    res = charnn("train", "--resume", one, "--epochs", "2", "--no-progress")
    assert res.rc == 0, res.err
    a = checkpoint.load(run2 / "checkpoints" / "last.safetensors")
    b = checkpoint.load(one / "checkpoints" / "last.safetensors")
    assert a.params.keys() == b.params.keys()
    for k in a.params:
        assert a.params[k].dtype == np.float64 and np.array_equal(a.params[k], b.params[k]), k
    for k in a.optim_state:
        assert np.array_equal(a.optim_state[k], b.optim_state[k]), k
    assert (a.step, a.epoch, a.rng_state) == (b.step, b.epoch, b.rng_state)
    # the resumed run's metrics continue the first session's
    assert [r["step"] for r in metrics(one)] == [r["step"] for r in metrics(run2)]


def test_resume_mid_epoch_carries_h_and_position(tmp_path, run2, corpus):
    part = tmp_path / "part"
    assert charnn("train", "--data", corpus, "--out", part, "--epochs", "2", "--eval-every", "40",
                  "--max-steps", "57", *SMALL).rc == 0
    ck = checkpoint.load(part / "checkpoints" / "last.safetensors")
    assert (ck.step, ck.epoch, ck.batch_index) == (57, 0, 57) and ck.h is not None and ck.h.shape == (4, 16)
    assert charnn("train", "--resume", part, "--max-steps", "0", "--no-progress").rc == 0
    a = checkpoint.load(run2 / "checkpoints" / "last.safetensors")
    b = checkpoint.load(part / "checkpoints" / "last.safetensors")
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k


def test_resume_a_finished_run_changes_nothing(tmp_path, run2):
    before = {p: p.read_bytes() for p in run2.rglob("*") if p.is_file()}
    res = charnn("train", "--resume", run2, "--no-progress")
    assert res.rc == 0 and "already finished" in res.out
    assert {p: p.read_bytes() for p in run2.rglob("*") if p.is_file()} == before


def test_resume_refuses_to_change_the_model(run2):
    assert_user_error(charnn("train", "--resume", run2, "--hidden-size", "32"), "hidden-size", "resum")
    assert_user_error(charnn("train", "--resume", run2 / "nope"), "not found")


def test_config_file_with_flag_overrides(tmp_path, corpus):
    toml = tmp_path / "c.toml"
    toml.write_text(f'data = "{corpus.as_posix()}"\nhidden_size = 12\nmax-len = 15\nbatch_size = 2\n'
                    'lr = 0.01\nepochs = 1\nmax_steps = 6\nsample_length = 10\n')
    res = charnn("train", "--config", toml, "--out", tmp_path / "r", "--lr", "0.02", "--no-progress")
    assert res.rc == 0, res.err
    assert "hidden_size = 12" in res.out and "lr = 0.02" in res.out      # printed at start
    cfg = Config.from_dict(json.loads((tmp_path / "r" / "config.json").read_text())["config"])
    assert (cfg.hidden_size, cfg.max_len, cfg.batch_size, cfg.lr, cfg.max_steps) == (12, 15, 2, 0.02, 6)
    assert checkpoint.load(tmp_path / "r" / "checkpoints" / "last.safetensors").step == 6


@pytest.mark.parametrize("text, needle", [
    ("hiden_size = 3\n", "hiden_size"),            # unknown key
    ("hidden_size = \n", "TOML"),                  # malformed
    ("hidden_size = \"big\"\n", "hidden_size"),    # wrong type
])
def test_bad_config_file(tmp_path, text, needle):
    toml = tmp_path / "bad.toml"
    toml.write_text(text)
    assert_user_error(charnn("train", "--config", toml, "--out", tmp_path / "r"), needle)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flags, needle", [
    (["--lr", "0"], "lr"), (["--lr", "nan"], "lr"), (["--hidden-size", "0"], "hidden-size"),
    (["--train-fraction", "1"], "train-fraction"), (["--optimizer", "rmsprop"], "optimizer"),
    (["--grad-clip", "-1"], "grad-clip"), (["--beta1", "1"], "beta1"), (["--epochs", "two"], "epochs"),
    (["--max-minutes", "-1"], "max-minutes"), (["--max-minutes", "inf"], "max-minutes"),
])
def test_bad_hyperparameters(tmp_path, corpus, flags, needle):
    assert_user_error(charnn("train", "--data", corpus, "--out", tmp_path / "r", *flags), needle)
    assert not (tmp_path / "r").exists()


def test_missing_corpus_and_busy_output_folder(tmp_path, corpus, run2):
    assert_user_error(charnn("train", "--data", tmp_path / "none.txt", "--out", tmp_path / "r"), "not found")
    before = sorted(p.name for p in run2.rglob("*"))
    assert_user_error(charnn("train", "--data", corpus, "--out", run2, *SMALL), "not empty", "--overwrite")
    assert sorted(p.name for p in run2.rglob("*")) == before


def test_overwrite_replaces_only_run_files(tmp_path, corpus):
    out = tmp_path / "r"
    assert charnn("train", "--data", corpus, "--out", out, "--max-steps", "3", *SMALL).rc == 0
    (out / "notes.md").write_text("mine")
    assert charnn("train", "--data", corpus, "--out", out, "--max-steps", "2", "--overwrite", *SMALL).rc == 0
    assert (out / "notes.md").read_text() == "mine"
    assert [r["step"] for r in metrics(out)] == [2]
    assert checkpoint.load(out / "checkpoints" / "last.safetensors").step == 2


def test_default_run_folder_is_dated(tmp_path, corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert charnn("train", "--data", corpus, "--max-steps", "2", *SMALL).rc == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert len(run.name) == len("20250101-120000") and run.name[8] == "-"
    assert (run / "checkpoints" / "last.safetensors").is_file()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, corpus):
    out = tmp_path / "nan"
    res = charnn("train", "--data", corpus, "--out", out, "--eval-every", "2", *SMALL,
                 "--lr", "1e30", "--dtype", "float32", "--epochs", "1")   # float32 overflows to inf, then NaN
    assert res.rc == 3
    line = res.err.strip().splitlines()[-1]
    assert "nan" in line.lower() or "inf" in line.lower()
    failed_at = int(line.split(" at step ")[1].split(";")[0])
    ck = checkpoint.load(out / "checkpoints" / "last.safetensors")
    assert ck.step < failed_at and f"step {ck.step})" in line
    assert all(np.isfinite(p).all() for p in ck.params.values())


def test_sigint_saves_last_and_says_how_to_resume(tmp_path, corpus):
    out = tmp_path / "sig"
    proc = charnn_subprocess("train", "--data", corpus, "--out", out, "--epochs", "100000", *SMALL)
    try:
        deadline = time.monotonic() + 60
        while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out_text, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"charnn train --resume {out}" in err
    stopped = int(err.split("stopped at step ")[1].split(",")[0])
    ck = checkpoint.load(out / "checkpoints" / "last.safetensors")
    assert ck.step == stopped >= 5
    assert charnn("train", "--resume", out, "--epochs", str(ck.epoch + 1), "--no-progress").rc == 0
    assert checkpoint.load(out / "checkpoints" / "last.safetensors").epoch == ck.epoch + 1
