"""Three contiguous splits, train | val | test: they never overlap, cover the corpus, and nothing that
training decides (its steps, its best checkpoint, its calibration) ever reads the test split."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charnn.data import split, split3, split_sizes
from charnn.data.corpus import Corpus
from charnn.train import checkpoint, train
from charnn.train.config import Config, ConfigError
from clihelp import SMALL, assert_user_error, charnn, write_corpus

ROOT = Path(__file__).resolve().parents[1]


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 2_000_000), train_fraction=st.floats(0.01, 0.99),
       val_fraction=st.one_of(st.just(0.0), st.floats(0.001, 0.5)), test_fraction=st.one_of(st.just(0.0), st.floats(0.001, 0.45)))
def test_splits_never_overlap_and_cover_the_corpus(n, train_fraction, val_fraction, test_fraction):
    ids = np.arange(n)
    tr, va, te = split3(ids, train_fraction, val_fraction, test_fraction)
    assert np.array_equal(np.concatenate([tr, va, te]), ids)          # in order, no gap, no overlap
    n_train, n_val, n_test = split_sizes(n, train_fraction, val_fraction, test_fraction)
    assert (len(tr), len(va), len(te)) == (n_train, n_val, n_test)
    assert n_test == int(n * test_fraction)                              # the test split is the end
    if val_fraction > 0:
        assert n_val == min(int(n * val_fraction), n - n_test)           # the validation split is just before it
    else:
        assert n_train == min(int(n * train_fraction), n - n_test)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 2_000_000), train_fraction=st.floats(0.01, 0.99))
def test_the_defaults_are_the_seeds_split(n, train_fraction):
    ids = np.arange(n)
    tr, va = split(ids, train_fraction)
    tr3, va3, te3 = split3(ids, train_fraction)
    assert np.array_equal(tr, tr3) and np.array_equal(va, va3) and len(te3) == 0


def test_config_derives_the_train_share_and_refuses_an_empty_validation():
    cfg = Config(val_fraction=0.05, test_fraction=0.1)
    assert cfg.train_fraction == pytest.approx(0.85)
    assert Config.from_dict(tomllib.loads(cfg.to_toml())) == cfg
    assert Config().train_fraction == 0.9 and (Config().val_fraction, Config().test_fraction) == (0.0, 0.0)
    with pytest.raises(ConfigError, match="no validation text"):
        Config(test_fraction=0.1)                       # 0.9 trains, 0.1 tests: nothing validates
    with pytest.raises(ConfigError, match="test-fraction"):
        Config(test_fraction=1.5)
    with pytest.raises(ConfigError, match="val-fraction"):
        Config(val_fraction=-0.1)


def test_cli_refuses_a_train_fraction_that_contradicts_the_other_two(tmp_path):
    data = write_corpus(tmp_path)
    res = charnn("train", "--data", data, "--out", tmp_path / "r", *SMALL, "--max-steps", "1",
                 "--train-fraction", "0.5", "--val-fraction", "0.05", "--test-fraction", "0.1")
    assert_user_error(res, "--train-fraction 0.5", "0.85")
    assert not (tmp_path / "r").exists()


def test_eval_scores_the_test_split_and_refuses_a_run_without_one(tmp_path):
    data = write_corpus(tmp_path)
    run = tmp_path / "r"
    res = charnn("train", "--data", data, "--out", run, *SMALL, "--max-steps", "6",
                 "--val-fraction", "0.05", "--test-fraction", "0.1")
    assert res.rc == 0, res.err
    assert json.loads((run / "config.json").read_text())["config"]["train_fraction"] == pytest.approx(0.85)
    out = {}
    for name in ("val", "test"):
        res = charnn("eval", run, "--split", name, "--json")
        assert res.rc == 0, res.err
        out[name] = json.loads(res.out)
    ck = checkpoint.load(checkpoint.resolve(run))
    corpus = Corpus.load(data)
    from charnn import model
    # 12,000 characters: train 10,200 | val 600 | test 1,200
    for name, ids in (("val", corpus.ids[10_200:10_800]), ("test", corpus.ids[10_800:])):
        total, n, _ = model.evaluate(ck.params, ids)
        assert out[name]["chars"] == len(ids) - 1 == n
        assert out[name]["nats_per_char"] == pytest.approx(total / n, rel=1e-12)
        assert out[name]["data"].startswith({"val": "validation", "test": "test"}[name])

    plain = tmp_path / "plain"
    assert charnn("train", "--data", data, "--out", plain, *SMALL, "--max-steps", "2").rc == 0
    assert_user_error(charnn("eval", plain, "--split", "test"), "no test split", "--test-fraction")
    assert_user_error(charnn("eval", run, "--split", "test", "--data", data), "--split", "--data")


# --------------------------------------------------------------------------------------------
# Poisoning the test split changes nothing training decides

def _preset() -> Config:
    """configs/best-cpu.toml with every regulariser, calibration and the schedule kept, at a test's size."""
    with open(ROOT / "configs" / "best-cpu.toml", "rb") as f:
        values = tomllib.load(f)
    values.update(hidden_size=16, batch_size=4, max_len=20, dtype="float64", max_minutes=0.0, max_steps=24,
                  epochs=100, warmup_steps=4, eval_every=6, eval_streams=2, log_every=3, sample_length=20,
                  calibration_fraction=0.03)
    return Config.from_dict(values)


def _texts() -> tuple[str, str]:
    """Two corpora of 20,000 characters that differ only in their last 10%, with the same vocabulary:
    the original text, and characters drawn uniformly from that vocabulary (another distribution)."""
    from charnn.data import default_corpus_path

    text = default_corpus_path().read_text(encoding="utf-8")[:20_000]
    head, tail = text[:18_000], text[18_000:]
    chars = sorted(set(head))
    clean = head + "".join(c if c in chars else " " for c in tail)
    noise = head + "".join(np.random.default_rng(0).choice(chars, size=len(tail)))
    return clean, noise


def test_poisoning_the_test_split_changes_nothing_in_the_presets_run(tmp_path):
    cfg = _preset()
    assert cfg.test_fraction == 0.1 and cfg.val_fraction == 0.05, "the preset holds out val 5% and test 10%"
    runs = []
    for name, text in zip(("clean", "poisoned"), _texts()):
        res = train(cfg, tmp_path / name, text=text, progress=False, log=None)
        best = checkpoint.load(tmp_path / name / "checkpoints" / "best.safetensors")
        runs.append((res, best, Corpus.from_text(text)))
    (a, best_a, ca), (b, best_b, cb) = runs
    assert ca.vocab == cb.vocab and ca.sha256 != cb.sha256
    n_train, n_val, n_test = split_sizes(20_000, cfg.train_fraction, cfg.val_fraction, cfg.test_fraction)
    assert n_test == 2_000 and np.array_equal(ca.ids[:-n_test], cb.ids[:-n_test])
    assert not np.array_equal(ca.ids[-n_test:], cb.ids[-n_test:])
    drop = ("wall_s", "chars_per_s")
    rows = lambda r: [{k: v for k, v in row.items() if k not in drop} for row in r.history]  # noqa: E731
    assert rows(a) == rows(b) and len(a.history) >= 8                    # the training trajectory
    assert sum("val_loss" in row for row in a.history) >= 4
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    assert best_a.step == best_b.step and best_a.best_val_loss == best_b.best_val_loss   # best selection
    assert best_a.temperature == best_b.temperature != 1.0                               # calibration
    for k in best_a.params:
        assert np.array_equal(best_a.params[k], best_b.params[k]), k
    # ...while the test split itself does differ, and `eval --split test` sees it
    from charnn import model
    te_a = model.evaluate(best_a.params, ca.ids[-n_test:])[0]
    te_b = model.evaluate(best_b.params, cb.ids[-n_test:])[0]
    assert te_a != te_b


def test_the_reproduce_report_says_which_split_each_figure_is_on(tmp_path):
    from charnn.reproduce import experiments, report

    text = write_corpus(tmp_path).read_text(encoding="utf-8")
    ctx = experiments.Context(experiments.settings_for(True), Corpus.from_text(text), text, "tiny.txt")
    assert (len(ctx.train_text), len(ctx.val_text), ctx.n_test) == (10_800, 1_200, 0)   # the seed's 90/10
    info = {"settings": experiments.settings_for(True).to_dict(), "corpus": "tiny.txt", "corpus_chars": 12_000,
            "vocab_size": 60, "train_chars": 10_800, "val_chars": 1_200, "test_chars": 0, "wall_s": 1.0}
    (tmp_path / "settings.json").write_text(json.dumps(info))
    intro = report.meta_from(tmp_path)["intro"]
    assert "Which split each figure is on" in intro and "val (validation) loss on the validation split" in intro
    assert "hold out no test split" in intro
    (tmp_path / "settings.json").write_text(json.dumps({**info, "test_chars": 1_000}))
    intro = report.meta_from(tmp_path)["intro"]
    assert "/ 1,000 test" in intro and "the test split (1,000 characters at the end) is read by none" in intro
