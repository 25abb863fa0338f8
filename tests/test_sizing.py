"""The hidden size chosen from the time budget (Config.min_steps, charnn.train.sizing)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from charnn import train
from charnn.data.corpus import Corpus
from charnn.train import checkpoint, sizing
from charnn.train.config import Config, ConfigError

TEXT = "the quick brown fox jumps over the lazy dog. " * 400


def quadratic(seconds_at_1024: float):
    """A step-time model t(H) = t(1024)·(H/1024)², as a stand-in for timing on a machine."""
    calls: list[int] = []

    def step_seconds(cfg: Config, corpus: Corpus) -> float:
        calls.append(cfg.hidden_size)
        return seconds_at_1024 * (cfg.hidden_size / 1024) ** 2
    return step_seconds, calls


def test_next_candidate_follows_the_square_law_in_multiples_of_64():
    # 670 steps of the 1500 wanted: H·sqrt(670/1500) = 684 -> 640
    assert sizing.next_candidate(1024, 670, 1500) == 640
    assert sizing.next_candidate(1024, 1499, 1500) == 960           # always smaller than H
    assert sizing.next_candidate(256, 1, 1500) == 64                # never below 64
    assert sizing.next_candidate(1024, 0, 1500) == 64


def test_fit_takes_the_largest_width_that_makes_the_steps(monkeypatch):
    fake, calls = quadratic(2.7)                 # 1024 makes 1800/2.7 = 666 steps in 30 minutes
    monkeypatch.setattr(sizing, "step_seconds", fake)
    cfg = Config(cell="gru", layers=2, hidden_size=1024, max_minutes=30, min_steps=1500)
    got = sizing.fit(cfg, Corpus.from_text(TEXT))
    assert got.cfg.hidden_size == 640 and calls == [1024, 640]
    assert 60 * 30 / (2.7 * (640 / 1024) ** 2) >= 1500 > 60 * 30 / (2.7 * (704 / 1024) ** 2)
    assert got.cfg.replace(hidden_size=1024) == cfg             # nothing else changes
    assert [h for h, _ in got.probes] == [1024, 640]


def test_fit_keeps_a_width_that_already_fits(monkeypatch):
    fake, calls = quadratic(0.5)
    monkeypatch.setattr(sizing, "step_seconds", fake)
    cfg = Config(hidden_size=1024, max_minutes=30, min_steps=1500)
    assert sizing.fit(cfg, Corpus.from_text(TEXT)).cfg == cfg and calls == [1024]


def test_fit_stops_at_64_and_after_a_few_timings(monkeypatch):
    monkeypatch.setattr(sizing, "step_seconds", lambda cfg, corpus: 10.0)     # nothing ever fits
    got = sizing.fit(Config(hidden_size=1024, max_minutes=1, min_steps=1000), Corpus.from_text(TEXT))
    assert got.cfg.hidden_size == 64 and len(got.probes) <= sizing.MAX_PROBES


@pytest.mark.parametrize("changes", [dict(max_minutes=0), dict(min_steps=0)])
def test_no_fit_without_a_budget_or_a_step_count(monkeypatch, changes):
    monkeypatch.setattr(sizing, "step_seconds", lambda cfg, corpus: pytest.fail("timed"))
    cfg = Config(hidden_size=512, max_minutes=5, min_steps=100).replace(**changes)
    assert sizing.fit(cfg, Corpus.from_text(TEXT)) == sizing.Fit(cfg, 0.0, ())


def test_min_steps_is_validated():
    with pytest.raises(ConfigError, match="min-steps"):
        Config(min_steps=-1)


def test_the_real_timing_runs_the_runs_own_step():
    cfg = Config(cell="lstm", layers=2, hidden_size=32, batch_size=4, max_len=8, dropout=0.2, weight_drop=0.1)
    assert sizing.step_seconds(cfg, Corpus.from_text(TEXT)) > 0


def test_a_run_saves_the_chosen_size_counts_the_timing_and_resumes_without_timing(tmp_path, monkeypatch):
    monkeypatch.setattr(sizing, "fit", lambda cfg, corpus, batch_rows=0: sizing.Fit(
        cfg.replace(hidden_size=64), 12.5, ((128, 1.0),)))
    cfg = Config(hidden_size=128, batch_size=4, max_len=16, max_minutes=30, min_steps=10, max_steps=2,
                 epochs=1, sample_length=5)
    out = tmp_path / "run"
    res = train.train(cfg, out, text=TEXT, progress=False, log=None)
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["hidden_size"] == 64 and saved["config"]["min_steps"] == 10
    assert res.params["W"].shape == (64, 64)
    ck = checkpoint.load(out / "checkpoints" / "last.safetensors")
    assert ck.train_s >= 12.5                     # the timing counts against the budget
    monkeypatch.setattr(sizing, "fit", lambda *a, **k: pytest.fail("a resume must not time again"))
    again = train.resume(out, {"max_steps": 3}, text=TEXT, progress=False, log=None)
    assert again.params["W"].shape == (64, 64)


def test_the_cli_prints_the_choice(tmp_path):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "charnn.cli", "train", "--hidden-size", "128", "--batch-size", "4",
                        "--max-len", "16", "--max-minutes", "0.01", "--min-steps", "10000000", "--out", str(out),
                        "--no-progress", "--sample-length", "5"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "# hidden size 64 for at least 10,000,000 steps in 0.01 minutes (128: " in p.stdout
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["hidden_size"] == 64


def test_exposure_is_parameters_per_training_character_times_epochs():
    cfg = Config(hidden_size=32, batch_size=4, max_len=10)        # the seed's RNN, one layer
    corpus = Corpus.from_text(TEXT)
    V, H = len(corpus.vocab), 32
    P = H * H + H * V + H + V * H + V                          # W, U, b, V, c
    N = len(train.Trainer(cfg, corpus, progress=False, log=None).batches) * 4 * 10
    assert N <= 0.9 * len(TEXT) < N + 4 * 10 + 1                   # one epoch reads the training split
    x = sizing.exposure(cfg, corpus, steps=3 * N / 40)           # three epochs
    assert x == pytest.approx(P / N * 3)


@pytest.mark.parametrize("x, scale", [(4.0, 0.04), (25.0, 0.25), (100.0, 1.0), (400.0, 1.0)])
def test_fit_scales_the_regularisers_in_proportion_to_the_exposure(monkeypatch, x, scale):
    fake, _ = quadratic(0.5)
    monkeypatch.setattr(sizing, "step_seconds", fake)
    seen = []
    monkeypatch.setattr(sizing, "exposure", lambda cfg, corpus, steps: seen.append((cfg.hidden_size, steps)) or x)
    cfg = Config(cell="gru", layers=2, hidden_size=1024, max_minutes=30, min_steps=1500, reg_exposure=100,
                 dropout=0.3, weight_drop=0.25, weight_decay=0.1)
    got = sizing.fit(cfg, Corpus.from_text(TEXT))
    assert got.reg_scale == pytest.approx(scale) and got.exposure == x
    assert (got.cfg.dropout, got.cfg.weight_drop, got.cfg.weight_decay) == pytest.approx(
        (0.3 * scale, 0.25 * scale, 0.1 * scale))
    assert got.cfg.replace(dropout=0.3, weight_drop=0.25, weight_decay=0.1) == cfg   # nothing else changes
    (H, steps), = seen                                  # E from the steps timed at the chosen width
    assert H == 1024 and steps == pytest.approx(1800 / 0.5, rel=1e-3)
    assert f"exposure {x:.3g} of 100: regularisers x{scale:.3g}" in got.summary()


def test_the_untimed_last_candidate_gets_its_steps_by_the_square_law(monkeypatch):
    # a fixed cost per step besides the square law: each guess is still too slow, until the probes run out
    monkeypatch.setattr(sizing, "step_seconds", lambda cfg, corpus: 0.05 + 0.01 * (cfg.hidden_size / 256) ** 2)
    seen = []
    monkeypatch.setattr(sizing, "exposure", lambda cfg, corpus, steps: seen.append((cfg.hidden_size, steps)) or 1.0)
    got = sizing.fit(Config(hidden_size=1024, max_minutes=1, min_steps=1000, reg_exposure=100, dropout=0.5),
                     Corpus.from_text(TEXT))
    (H, steps), = seen
    assert len(got.probes) == sizing.MAX_PROBES and H == got.cfg.hidden_size < got.probes[-1][0]
    last_H, last_t = got.probes[-1]
    assert steps == pytest.approx(60 / last_t * (last_H / H) ** 2, rel=1e-2)


def test_no_scaling_without_reg_exposure(monkeypatch):
    fake, _ = quadratic(0.5)
    monkeypatch.setattr(sizing, "step_seconds", fake)
    monkeypatch.setattr(sizing, "exposure", lambda *a: pytest.fail("exposure computed"))
    cfg = Config(hidden_size=1024, max_minutes=30, min_steps=1500, dropout=0.3)
    got = sizing.fit(cfg, Corpus.from_text(TEXT))
    assert got.cfg == cfg and got.reg_scale == 1.0 and "exposure" not in got.summary()


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True])
def test_reg_exposure_is_validated(bad):
    with pytest.raises(ConfigError, match="reg-exposure"):
        Config(reg_exposure=bad)


def test_the_cli_scales_and_saves_the_regularisers(tmp_path):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "charnn.cli", "train", "--hidden-size", "64", "--batch-size", "4",
                        "--max-len", "16", "--max-minutes", "0.01", "--min-steps", "1", "--reg-exposure", "1e6",
                        "--dropout", "0.4", "--weight-drop", "0.2", "--out", str(out), "--no-progress",
                        "--sample-length", "5"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "of 1e+06: regularisers x" in p.stdout
    saved = json.loads((out / "config.json").read_text())["config"]
    assert 0 < saved["dropout"] < 0.4 and 0 < saved["weight_drop"] < 0.2 and saved["reg_exposure"] == 1e6
    assert saved["dropout"] / 0.4 == pytest.approx(saved["weight_drop"] / 0.2, rel=1e-2)


def test_exposure_never_reads_the_validation_or_test_split():
    cfg = Config(cell="gru", layers=2, hidden_size=32, batch_size=4, max_len=10, val_fraction=0.05,
                 test_fraction=0.1, calibration_fraction=0.02)
    cut = int(len(TEXT) * 0.85)
    rng = __import__("random").Random(0)
    poisoned = TEXT[:cut] + "".join(rng.choice(sorted(set(TEXT))) for _ in TEXT[cut:])
    assert sorted(set(poisoned)) == sorted(set(TEXT)) and poisoned != TEXT
    x = [sizing.exposure(cfg, Corpus.from_text(t), steps=100) for t in (TEXT, poisoned)]
    assert x[0] == x[1] > 0
