"""The training loop from Python: in-memory training, callbacks, early stop, optimizer state on resume."""
from __future__ import annotations

import numpy as np
import pytest

from charnn.train import checkpoint
from charnn import model
from charnn.train.config import Config
from charnn.data import default_corpus_path
from charnn.train import StopTraining, resume, train

TEXT = default_corpus_path().read_text(encoding="utf-8")[:6000]
CFG = Config(hidden_size=12, max_len=16, batch_size=3, epochs=1, dtype="float64", sample_length=20, log_every=5)


def quiet(cfg: Config, out=None, **kw):
    return train(cfg, out, text=TEXT, progress=False, log=None, **kw)


def test_in_memory_training_writes_nothing_and_learns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = quiet(CFG)
    assert list(tmp_path.iterdir()) == []
    assert res.run_dir is None and res.stop_reason == "completed" and res.epoch == 1
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.val_loss == res.best_val_loss < np.log(len(res.vocab))
    assert len(res.samples) == 1 and res.samples[0].startswith("ROMEO:")
    assert set(res.params) == set(model.PARAM_NAMES) and res.params["W"].dtype == np.float64


def test_callbacks_see_every_step_and_can_stop_early():
    events = []

    def cb(event, record):
        events.append((event, record))
        if event == "step" and record["step"] == 12:
            raise StopTraining

    res = quiet(CFG.replace(eval_every=5), callbacks=[cb])
    steps = [r["step"] for e, r in events if e == "step"]
    assert steps == list(range(1, 13)) and res.stop_reason == "stopped" and res.step == 12
    evals = [r["step"] for e, r in events if e == "eval"]
    assert evals == [5, 10, 12]                    # eval_every, and a final one at the stop
    assert all("val_loss" in r for e, r in events if e == "eval")


def test_carrying_the_hidden_state_changes_training():
    a = quiet(CFG.replace(max_steps=20))
    b = quiet(CFG.replace(max_steps=20, carry_state=False))
    assert not np.array_equal(a.params["W"], b.params["W"])


@pytest.mark.parametrize("changes", [dict(optimizer="sgd", momentum=0.9, lr=0.1),
                                     dict(dtype="float32", clip_norm=1.0)])
def test_resume_is_exact_for_sgd_momentum_and_float32(tmp_path, changes):
    cfg = CFG.replace(epochs=2, **changes)
    straight = quiet(cfg, tmp_path / "a")
    quiet(cfg.replace(max_steps=50), tmp_path / "b")
    ck = checkpoint.load(tmp_path / "b" / "checkpoints" / "last.safetensors")
    if cfg.optimizer == "sgd":
        assert set(ck.optim_state) == {f"buf.{k}" for k in model.PARAM_NAMES}
    resumed = resume(tmp_path / "b", {"max_steps": 0}, text=TEXT, progress=False, log=None)
    assert resumed.step == straight.step
    for k in straight.params:
        assert np.array_equal(straight.params[k], resumed.params[k]), k


def test_value_clipping_bounds_the_first_update():
    # SGD with lr 1 and clip 1e-3: no parameter can move by more than 1e-3 in one step.
    cfg = CFG.replace(optimizer="sgd", lr=1.0, grad_clip=1e-3, max_steps=1)
    init = model.init_params(len(set(TEXT)), cfg.hidden_size, seed=cfg.seed, dtype=np.float64)
    res = quiet(cfg)
    moved = max(float(np.abs(res.params[k] - init[k]).max()) for k in init)
    assert 0 < moved <= 1e-3 + 1e-15


def test_learning_rate_schedule_is_applied_per_step():
    cfg = CFG.replace(lr_schedule="cosine", warmup_steps=5, min_lr=1e-4, log_every=1, max_steps=40)
    res = quiet(cfg)
    lrs = [r["lr"] for r in res.history]
    assert lrs[0] == pytest.approx(cfg.lr / 5)                   # warm-up: step 0 runs at lr/5
    assert lrs[4] == pytest.approx(cfg.lr) and lrs[-1] < lrs[10] < lrs[5]
    from charnn.train.schedule import lr_at

    want = [lr_at(r["step"] - 1, cfg.lr, schedule="cosine", warmup_steps=5, total_steps=40, min_lr=1e-4)
            for r in res.history]
    assert lrs == pytest.approx(want, rel=1e-12) and 1e-4 < lrs[-1] < 1.2e-4


class TickingClock:
    """Stands in for the trainer's `time` module: every perf_counter() call moves the clock on by
    `tick` seconds, so the training clock counts calls, not the machine's speed. A step reads the
    clock three times (start, before and after the update): it lasts 2 ticks of training time."""

    def __init__(self, tick: float):
        self.tick, self.now = tick, 0.0

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


def test_a_time_budget_stops_the_run_and_drives_the_cosine(tmp_path, monkeypatch):
    """max_minutes: the run ends once its training steps have used the budget, validated and saved there;
    the cosine's progress is the share of that budget spent, and a resume carries the clock on.
    The clock is simulated (0.02 s of training per step), so no figure depends on the machine's load."""
    from charnn.train import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "time", TickingClock(0.01))
    cfg = CFG.replace(epochs=1000, max_minutes=0.25 / 60, lr_schedule="cosine", min_lr=1e-4, log_every=1)
    res = quiet(cfg, tmp_path / "run")
    assert res.stop_reason == "max_minutes" and res.step == 13          # 12 steps are 0.24 s, 13 are 0.26 s
    assert res.history[-1]["step"] == res.step and "val_loss" in res.history[-1]     # evaluated at the stop
    ck = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert ck.step == 13 and ck.train_s == pytest.approx(0.26) and ck.train_s <= ck.wall_s
    # every rate came from the time spent before its step, so they fall as the clock runs
    lrs = [r["lr"] for r in res.history]
    assert all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[0] == cfg.lr
    from charnn.train.schedule import lr_at

    assert lrs == pytest.approx([lr_at(0, cfg.lr, schedule="cosine", total_steps=1, min_lr=1e-4,
                                       progress=0.02 * k / 0.25) for k in range(13)], rel=1e-9)
    # resumed with a larger budget, it continues from the saved clock, not from zero
    more = resume(tmp_path / "run", {"max_minutes": 0.51 / 60}, text=TEXT, progress=False, log=None)
    assert more.stop_reason == "max_minutes" and more.step == 26       # 13 more steps of 0.02 s
    ck2 = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert ck2.train_s == pytest.approx(0.52)
    # resumed without more time, there is nothing left to do
    again = resume(tmp_path / "run", text=TEXT, progress=False, log=None)
    assert again.stop_reason == "already_finished" and again.step == more.step


def test_the_cosine_under_a_time_budget_follows_the_training_clock():
    from charnn.data.corpus import Corpus
    from charnn.train.schedule import lr_at
    from charnn.train import Trainer

    cfg = CFG.replace(max_minutes=10.0, lr_schedule="cosine", warmup_steps=5, min_lr=1e-4)
    tr = Trainer(cfg, Corpus.from_text(TEXT), progress=False, log=None)
    for spent in (0.0, 150.0, 300.0, 599.0, 600.0, 900.0):
        tr._train_session = spent
        assert tr.lr_at(50) == pytest.approx(lr_at(0, cfg.lr, schedule="cosine", total_steps=1, min_lr=1e-4,
                                                   progress=spent / 600.0))
    assert tr.lr_at(2) == pytest.approx(cfg.lr * 3 / 5)          # the warm-up counts steps
    tr._train_session = 300.0
    assert tr.lr_at(50) == pytest.approx(1e-4 + (cfg.lr - 1e-4) * 0.5)
