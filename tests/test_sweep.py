"""`charnn sweep` and `charnn sweep-report` with the embedded (journal file) storage.

Tiny models (8 hidden units, 15 steps) on 6k characters: a trial takes about a second.
"""
from __future__ import annotations

import itertools
import os
import json
import signal
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from charnn import train
from charnn.sweep import study as sweep_study
from charnn.train import checkpoint
from charnn.train.config import Config
from clihelp import assert_user_error, charnn, metrics, write_corpus
from sweephelp import BASE, base_config, finished, load, wait_for, worker, write

GOOD_LR = {"lr": {"low": 1e-2, "high": 2e-2, "log": True}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), chars=6_000)


def states(study) -> dict[int, str]:
    return {t.number: t.state.name for t in study.get_trials(deepcopy=False)}


# --------------------------------------------------------------------------------------------------
# the space file and the flags: one line, exit status 2, before anything is written

@pytest.mark.parametrize("space, needle", [
    ({"learning_rate": {"low": 1e-3, "high": 1e-2}}, "unknown training field [learning_rate]"),
    ({"lr": {"low": 1e-2, "high": 1e-3}}, "low (0.01) is above high (0.001)"),
    ({"lr": {"low": "small", "high": 1e-2}}, "low must be a finite number"),
    ({"hidden_size": {"low": 8.5, "high": 16}}, "must be a whole number"),
    ({"lr": {"low": 0.0, "high": 1e-2, "log": True}}, "a log range needs low > 0"),
    ({"lr": {"low": 1e-3, "high": 1e-2, "log": "yes"}}, "log must be true or false"),
    ({"lr": {"low": 1e-3, "hgh": 1e-2}}, "unknown key(s) hgh"),
    ({"cell": {"low": 1, "high": 2}}, "cell is a str field: give a list of choices"),
    ({"cell": {"choices": []}}, "choices must be a non-empty list"),
    ({"cell": {"choices": ["rnn", "transformer"]}}, "'transformer' is not a usable value: unknown cell"),
    ({"dropout": {"low": 0.0, "high": 1.5}}, "1.5 is not a usable value: dropout must be in [0, 1)"),
    ({"lr": 0.01}, "lr must be a table"),
    ({"data": {"choices": ["a.txt", "b.txt"]}}, "[data] cannot be searched"),
])
def test_a_bad_space_file_is_one_line_and_exit_2(tmp_path, corpus, space, needle):
    res = charnn("sweep", "--space", write(tmp_path / "space.toml", space), "--trials", "2",
                 "--config", base_config(tmp_path), "--data", corpus, "--out", tmp_path / "sw")
    assert_user_error(res, needle)
    assert not (tmp_path / "sw").exists()


def test_bad_sweep_flags_and_files_are_one_line_and_exit_2(tmp_path, corpus):
    space = write(tmp_path / "space.toml", GOOD_LR)
    common = ["--config", base_config(tmp_path), "--data", corpus]
    (tmp_path / "broken.toml").write_text("[lr\nlow = 1")
    assert_user_error(charnn("sweep", "--space", tmp_path / "broken.toml", "--trials", "2", *common,
                             "--out", tmp_path / "a"), "is not valid TOML")
    assert_user_error(charnn("sweep", "--space", tmp_path / "none.toml", "--trials", "2", *common,
                             "--out", tmp_path / "a"), "space file not found")
    assert_user_error(charnn("sweep", "--space", space, "--trials", "0", *common, "--out", tmp_path / "a"),
                      "--trials must be >= 1")
    assert_user_error(charnn("sweep", "--space", space, "--trials", "2", "--data", corpus,
                             "--config", write(tmp_path / "bad-base.toml", {"hiden_size": 8}),
                             "--out", tmp_path / "a"), "unknown configuration key(s): hiden_size")
    assert_user_error(charnn("sweep", "--space", space, "--trials", "2", *common, "--out", tmp_path / "a",
                             "--storage", "mysql://u@localhost/db"), "unsupported --storage mysql://")
    assert_user_error(charnn("sweep", "--space", space, "--trials", "2", "--config", base_config(tmp_path),
                             "--data", tmp_path / "missing.txt", "--out", tmp_path / "a"), "missing.txt")
    assert not (tmp_path / "a").exists()
    with socket.socket() as s:                       # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert_user_error(charnn("sweep", "--space", space, "--trials", "2", *common, "--out", tmp_path / "b",
                             "--storage", f"postgresql://charnn:secret@127.0.0.1:{port}/sweeps"),
                      f"cannot open the study database postgresql://charnn:***@127.0.0.1:{port}/sweeps")
    assert not (tmp_path / "b").exists()
    assert_user_error(charnn("sweep-report", tmp_path), "is not a sweep folder")
    assert_user_error(charnn("sweep-report"), "give a sweep folder, or --storage URL --study NAME")


# --------------------------------------------------------------------------------------------------
# the trainer's hook: a callback stops the run at an evaluation

def test_a_callback_stopping_at_an_evaluation_ends_the_run_there_with_its_checkpoint(tmp_path, corpus):
    def stop_at_10(event, row):
        if event == "eval" and row["step"] == 10:
            raise train.StopTraining

    cfg = Config.from_dict({**BASE, "max_steps": 30, "data": str(corpus)})
    res = train.train(cfg, tmp_path / "run", callbacks=[stop_at_10], progress=False, log=None)
    assert res.stop_reason == "stopped" and res.step == 10
    assert checkpoint.load(tmp_path / "run" / "checkpoints" / train.LAST).step == 10
    rows = metrics(tmp_path / "run")
    assert rows[-1]["step"] == 10 and "val_loss" in rows[-1]       # the evaluation's row is written


# --------------------------------------------------------------------------------------------------
# two workers share one study

@pytest.fixture(scope="module")
def shared(tmp_path_factory, corpus):
    """Two worker processes running the same 6-trial sweep at once (hyperband pruner)."""
    root = tmp_path_factory.mktemp("shared")
    space = write(root / "space.toml", {**{"lr": {"low": 3e-3, "high": 3e-2, "log": True}},
                                        "hidden_size": {"choices": [8, 12]}})
    args = ["--space", space, "--trials", "6", "--config", base_config(root, max_steps=60), "--data", corpus,
            "--out", root / "sw", "--pruner", "hyperband"]
    procs = [worker(*args), worker(*args)]
    results = [finished(p) for p in procs]
    for rc, out, err in results:
        assert rc == 0, err
    return root / "sw", load(root / "sw"), results


def test_two_workers_run_six_trials_none_lost_or_duplicated(shared):
    sw, study, results = shared
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials), states(study)
    assert sorted(p.name for p in sw.glob("trial-*")) == [f"trial-{i:04d}" for i in range(6)]
    for t in trials:
        run = sw / f"trial-{t.number:04d}"
        mark = json.loads((run / "trial.json").read_text())
        assert (mark["number"], mark["state"], mark["params"]) == (t.number, t.state.name, t.params)
        cfg = json.loads((run / "config.json").read_text())["config"]
        assert {k: cfg[k] for k in t.params} == t.params      # the folder trained what the trial drew
        assert t.user_attrs["run_dir"] == str(run)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, workers                          # both processes took trials
    ran = sum(int(out.split("this worker ran ")[1].split(" ")[0]) for _, out, _ in results)
    assert ran == 6


def test_the_best_trials_run_folder_samples(shared):
    sw, study, _ = shared
    run = Path(study.best_trial.user_attrs["run_dir"])
    res = charnn("sample", run, "--length", "30", "--seed", "1")
    assert res.rc == 0, res.err
    assert len(res.out) >= len("ROMEO:") + 30


def test_the_report_and_the_preset_are_written_and_the_preset_trains(shared, tmp_path):
    sw, study, _ = shared
    res = charnn("sweep-report", sw, "--out", tmp_path / "report")
    assert res.rc == 0, res.err
    best = study.best_trial
    assert f"best: trial {best.number}, val {best.value:.4f}" in res.out
    for name in ("report.md", "history.png", "importances.png", "parallel_coordinates.png", "best.toml"):
        assert (tmp_path / "report" / name).stat().st_size > 0, name
    md = (tmp_path / "report" / "report.md").read_text()
    assert f"| 1 | {best.number} | {best.value:.4f} |" in md
    assert md.count("\n| ") >= 1 + sum(s == "COMPLETE" for s in states(study).values())
    assert "## Parameter importances" in md and "| lr |" in md
    res = charnn("train", "--config", tmp_path / "report" / "best.toml", "--out", tmp_path / "again",
                 "--max-steps", "3", "--no-progress")
    assert res.rc == 0, res.err
    cfg = json.loads((tmp_path / "again" / "config.json").read_text())["config"]
    assert cfg == {**best.user_attrs["config"], "max_steps": 3}


# --------------------------------------------------------------------------------------------------
# pruning, divergence, the time budget, signals

def test_trials_on_a_bad_learning_rate_range_are_pruned(tmp_path, corpus):
    common = ["--config", base_config(tmp_path, max_steps=30), "--data", corpus, "--out", tmp_path / "sw",
              "--pruner", "median", "--startup-trials", "2", "--seed", "0", "--no-progress"]
    res = charnn("sweep", "--space", write(tmp_path / "good.toml", GOOD_LR), "--trials", "2", *common)
    assert res.rc == 0, res.err
    bad = write(tmp_path / "bad.toml", {"lr": {"low": 1e-7, "high": 1e-6, "log": True}})
    res = charnn("sweep", "--space", bad, "--trials", "4", *common)     # the same study, two more trials
    assert res.rc == 0, res.err
    study = load(tmp_path / "sw")
    assert states(study) == {0: "COMPLETE", 1: "COMPLETE", 2: "PRUNED", 3: "PRUNED"}
    for n in (2, 3):
        run = tmp_path / "sw" / f"trial-{n:04d}"
        mark = json.loads((run / "trial.json").read_text())
        assert mark["state"] == "PRUNED" and mark["reason"] == "pruned at step 5"
        assert metrics(run)[-1]["step"] == 5                  # stopped at its first evaluation of 30 steps
        assert checkpoint.load(run / "checkpoints" / train.LAST).step == 5
    res = charnn("train", "--resume", tmp_path / "sw" / "trial-0002", "--max-steps", "10", "--no-progress")
    assert res.rc == 0, res.err                                # a pruned trial is an ordinary run folder
    assert metrics(tmp_path / "sw" / "trial-0002")[-1]["step"] == 10


def test_a_diverging_trial_is_recorded_as_failed_with_its_reason(tmp_path, corpus):
    res = charnn("sweep", "--space", write(tmp_path / "space.toml", {"lr": {"choices": [1e38]}}),
                 "--trials", "2", "--config", base_config(tmp_path, dtype="float32"), "--data", corpus,
                 "--out", tmp_path / "sw", "--no-progress")
    assert res.rc == 0, res.err
    study = load(tmp_path / "sw")
    assert states(study) == {0: "FAIL", 1: "FAIL"}
    for t in study.get_trials(deepcopy=False):
        reason = t.user_attrs["fail_reason"]
        assert reason.startswith("diverged: ") and ("became nan" in reason or "became inf" in reason), reason
        assert json.loads((tmp_path / "sw" / f"trial-{t.number:04d}" / "trial.json").read_text())["reason"] == reason
    assert_user_error(charnn("sweep-report", tmp_path / "sw"), "has no completed trial yet")


def test_max_minutes_stops_the_worker_starting_trials(tmp_path, corpus, monkeypatch):
    clock = itertools.count(0.0, 40.0)            # the worker's clock: 40 s pass between its readings
    monkeypatch.setattr(sweep_study, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    res = charnn("sweep", "--space", write(tmp_path / "space.toml", GOOD_LR), "--trials", "5",
                 "--config", base_config(tmp_path), "--data", corpus, "--out", tmp_path / "sw",
                 "--max-minutes", "1", "--no-progress")
    assert res.rc == 0, res.err
    # trial 0 starts at 40 s (within the minute) and runs to its end; at 80 s no trial starts
    assert states(load(tmp_path / "sw")) == {0: "COMPLETE"}
    assert "starts no more trials" in res.out


def test_sigterm_fails_the_workers_trial_cleanly_and_the_other_worker_goes_on(tmp_path, corpus):
    sw = tmp_path / "sw"
    space = write(tmp_path / "space.toml", GOOD_LR)
    slow = worker("--space", space, "--trials", "3", "--config", base_config(tmp_path, max_steps=1_000_000),
                  "--data", corpus, "--out", sw)
    wait_for(lambda: (sw / "trial-0000" / "metrics.jsonl").is_file()
             and (sw / "trial-0000" / "metrics.jsonl").read_text().count("\n") >= 2, "the slow trial to train")
    other = worker("--space", space, "--trials", "3", "--config", base_config(tmp_path), "--data", corpus,
                   "--out", sw)
    wait_for(lambda: (sw / "trial-0001").is_dir(), "the other worker's first trial")
    slow.send_signal(signal.SIGTERM)
    rc, out, err = finished(slow)
    assert rc == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    rc2, out2, err2 = finished(other)
    assert rc2 == 0, err2
    study = load(sw)
    assert states(study) == {0: "FAIL", 1: "COMPLETE", 2: "COMPLETE"}   # the other worker finished the study
    t0 = study.trials[0]
    assert t0.user_attrs["fail_reason"].startswith("interrupted by SIGTERM at step ")
    step = int(t0.user_attrs["fail_reason"].rsplit(" ", 1)[1])
    assert checkpoint.load(sw / "trial-0000" / "checkpoints" / train.LAST).step == step   # saved on the way out
    assert json.loads((sw / "trial-0000" / "trial.json").read_text())["state"] == "FAIL"


def test_a_space_file_that_is_a_fifo_or_huge_is_refused_before_it_is_read(tmp_path):
    from charnn.sweep.space import SpaceError, load_space
    from charnn.train.config import MAX_TOML_BYTES

    fifo = tmp_path / "space.toml"
    os.mkfifo(fifo)                               # reading it would block for ever
    with pytest.raises(SpaceError, match="not a regular file"):
        load_space(fifo, {})
    big = tmp_path / "big.toml"
    with open(big, "wb") as f:
        f.truncate(MAX_TOML_BYTES + 1)            # sparse: no disk used
    with pytest.raises(SpaceError, match="too big"):
        load_space(big, {})
