"""--reg-ramp: dropout, weight drop and weight decay rising from 0 to their value over a share of the run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from charnn import train
from charnn.data.corpus import Corpus
from charnn.train.config import Config, ConfigError
from charnn.train import checkpoint
from charnn.train.trainer import StopTraining
from clihelp import assert_user_error, charnn, write_corpus
from exact import assert_same_training_state

TEXT = "the quick brown fox jumps over the lazy dog. " * 60
REGS = dict(dropout=0.3, weight_drop=0.2, weight_decay=0.1)


def small_cfg(**kw) -> Config:
    base = dict(cell="gru", layers=2, hidden_size=16, batch_size=4, max_len=20, epochs=1, max_steps=12,
                lr=3e-3, dtype="float64", sample_length=10, log_every=4, locked_dropout=True)
    return Config(**{**base, **kw})


def trainer(**kw) -> train.Trainer:
    return train.Trainer(small_cfg(**kw), Corpus.from_text(TEXT), progress=False, log=None)


def test_the_scale_rises_linearly_over_the_share_of_the_steps_or_of_the_budget():
    t = trainer(reg_ramp=0.5, **REGS)                    # 12 steps: full strength from step 6
    scales = []
    for step in (0, 3, 6, 11):
        t.step = step
        scales.append(t.reg_scale())
    assert scales == [0.0, 0.5, 1.0, 1.0]
    assert trainer(**REGS).reg_scale() == 1.0            # no ramp: full strength from the first step
    timed = trainer(reg_ramp=0.25, max_minutes=2.0, **REGS)
    timed.step = 11                                      # with a budget the time counts, not the step
    timed.train_before = 15.0
    assert timed.reg_scale() == pytest.approx(0.5)
    timed.train_before = 45.0
    assert timed.reg_scale() == 1.0


@pytest.mark.parametrize("step, rates", [(0, dict(dropout=0.0, weight_drop=0.0, weight_decay=0.0)),
                                         (3, dict(dropout=0.15, weight_drop=0.1, weight_decay=0.05)),
                                         (9, REGS)])
def test_a_ramped_step_is_the_step_at_the_scaled_rates(step, rates):
    """The same weights and batch: a step of the ramped run equals one of a run given rate × scale."""
    ramped, fixed = trainer(reg_ramp=0.5, **REGS), trainer(**rates)
    start = {k: v.copy() for k, v in ramped.params.items()}
    for k in fixed.params:
        fixed.params[k][...] = start[k]
    x, y = next(iter(ramped.batches))
    ramped.step = fixed.step = step
    assert ramped.train_step(x, y) == fixed.train_step(x, y)
    for k in fixed.params:
        np.testing.assert_array_equal(ramped.params[k], fixed.params[k], err_msg=k)
    if step == 3:                                        # and each of the three counts at that step:
        for name in REGS:                                # that one at full strength moves the weights elsewhere
            other = trainer(**{**rates, name: REGS[name]})
            for k in other.params:
                other.params[k][...] = start[k]
            other.step = step
            other.train_step(x, y)
            assert any(not np.array_equal(other.params[k], fixed.params[k]) for k in fixed.params), name


def test_a_ramped_run_resumes_exactly_and_differs_from_one_without_the_ramp(tmp_path):
    cfg = small_cfg(reg_ramp=0.5, **REGS)
    straight = train.train(cfg, tmp_path / "a", text=TEXT, progress=False, log=None)

    def stop_mid_ramp(event: str, record: dict) -> None:
        if event == "step" and record["step"] == 4:
            raise StopTraining

    train.train(cfg, tmp_path / "b", text=TEXT, progress=False, log=None, callbacks=[stop_mid_ramp])
    assert checkpoint.load(tmp_path / "b" / "checkpoints" / "last.safetensors").step == 4
    resumed = train.resume(tmp_path / "b", {}, text=TEXT, progress=False, log=None)
    assert np.isfinite(straight.val_loss) and resumed.val_loss == straight.val_loss
    assert_same_training_state(tmp_path / "a", tmp_path / "b")
    assert json.loads((tmp_path / "a" / "config.json").read_text())["config"]["reg_ramp"] == 0.5
    plain = train.train(small_cfg(**REGS), None, text=TEXT, progress=False, log=None)
    assert plain.val_loss != straight.val_loss


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), float("inf"), True, "0.5"])
def test_bad_values_are_refused(value):
    with pytest.raises(ConfigError, match="reg-ramp"):
        small_cfg(reg_ramp=value)


def test_the_cli_flag_reaches_the_run_and_a_bad_one_exits_2(tmp_path):
    corpus = write_corpus(tmp_path, 4000)
    small = ["--data", corpus, "--cell", "gru", "--hidden-size", "8", "--batch-size", "2", "--max-len", "10",
             "--max-steps", "3", "--no-progress", "--dropout", "0.2"]
    ok = charnn("train", *small, "--out", tmp_path / "r", "--reg-ramp", "0.3")
    assert ok.rc == 0, ok.err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["config"]["reg_ramp"] == 0.3
    assert_user_error(charnn("train", *small, "--out", tmp_path / "s", "--reg-ramp", "2"), "reg-ramp")
    assert not (tmp_path / "s").exists()


def test_the_width_is_chosen_by_timing_a_step_at_full_strength(monkeypatch):
    """The ramp's first steps skip the masks; the sizing probe times the step most of the run pays."""
    from charnn.train import sizing
    from charnn.train.trainer import Trainer

    scales: list[float] = []
    real = Trainer.train_step

    def spy(self, x, y):
        scales.append(self.reg_scale())
        return real(self, x, y)

    monkeypatch.setattr(Trainer, "train_step", spy)
    assert sizing.step_seconds(small_cfg(reg_ramp=0.5, max_minutes=1.0, **REGS), Corpus.from_text(TEXT)) > 0
    assert scales and all(s == 1.0 for s in scales)
