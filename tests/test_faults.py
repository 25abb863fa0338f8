"""Faults while training lose nothing: NaN/inf loss, SIGINT and SIGTERM, a second Ctrl-C, kill -9 in the
middle of a checkpoint write, a full disk or unwritable folder, and resuming twice / resuming a finished run.

Each fault is injected into a real `charnn train` child process where it can be (signals, kill -9,
a file-size limit the kernel enforces); the NaN and ENOSPC faults also run in-process where a
monkeypatch makes them happen at a chosen step.
"""
from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from charnn.train import checkpoint
from charnn import model

from ckcraft import TINY, changes, cli, cli_popen, snapshot
from clihelp import charnn, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("faults"), 6_000)


def wait_for(pred: Callable[[], bool], proc=None, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the training process ended early: {proc.communicate()}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def has_rows(run: Path, n: int = 1) -> Callable[[], bool]:
    def pred() -> bool:
        m = run / "metrics.jsonl"
        return m.exists() and len(m.read_text().splitlines()) >= n
    return pred


def ckpt_files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}


def temp_files(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp"))


def params_of(path: Path) -> dict[str, np.ndarray]:
    return checkpoint.load(path).params


# --------------------------------------------------------------------------------------------------
# NaN / inf loss

def test_nan_from_a_huge_lr_stops_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path, corpus):
    out = tmp_path / "nan"
    r = cli("train", "--data", corpus, "--out", out, *TINY, "--dtype", "float32", "--lr", "1e38",
            "--eval-every", "2", "--epochs", "1")
    assert r.rc == 3, r.err                    # 3: diverged (2 is a user error)
    (line,) = r.err.strip().splitlines()
    assert "Traceback" not in r.err and ("became nan" in line or "became inf" in line)
    failed_at = int(line.split(" at step ")[1].split(";")[0])
    ck = checkpoint.load(out / "checkpoints" / "last.safetensors")
    assert ck.step < failed_at and f"(step {ck.step})" in line and "--lr" in line
    assert all(np.isfinite(p).all() for p in ck.params.values())
    assert temp_files(out) == []


def test_nan_mid_run_leaves_the_checkpoints_byte_for_byte_untouched(tmp_path, corpus, monkeypatch):
    out = tmp_path / "run"
    assert charnn("train", "--data", corpus, "--out", out, *TINY, "--max-steps", "4").rc == 0
    before = snapshot(out / "checkpoints")
    real, calls = model.loss_and_grads, []

    def poisoned(*args, **kw):                 # the 2nd step of the resumed session returns a NaN loss
        loss, grads, h = real(*args, **kw)
        calls.append(1)
        return (float("nan") if len(calls) == 2 else loss), grads, h

    monkeypatch.setattr(model, "loss_and_grads", poisoned)
    r = charnn("train", "--resume", out, "--max-steps", "20", "--no-progress")
    assert r.rc == 3 and "became nan at step 6" in r.err and "(step 4)" in r.err
    assert changes(before, snapshot(out / "checkpoints")) == []
    monkeypatch.setattr(model, "loss_and_grads", real)
    assert charnn("train", "--resume", out, "--max-steps", "6", "--no-progress").rc == 0   # resumable as is


# --------------------------------------------------------------------------------------------------
# signals

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_last_and_says_how_to_resume(tmp_path, corpus, sig):
    out = tmp_path / "sig"
    proc = cli_popen("train", "--data", corpus, "--out", out, *TINY, "--epochs", "100000")
    try:
        wait_for(has_rows(out), proc)
        if sig == signal.SIGTERM:
            # while it trains, a second session on the same folder is refused, whichever way it is asked
            cli("train", "--resume", out, "--epochs", "3").one_line_error("in use by another charnn")
            cli("train", "--data", corpus, "--out", out, "--overwrite", *TINY).one_line_error("in use")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and f"{sig.name} received" in err
    assert f"resume with: charnn train --resume {out}" in err.strip().splitlines()[-1]
    stopped = int(err.split("stopped at step ")[1].split(",")[0])
    ck = checkpoint.load(out / "checkpoints" / "last.safetensors")
    assert ck.step == stopped >= 2 and temp_files(out) == []
    r = cli("train", "--resume", out, "--max-steps", str(stopped + 2), "--no-progress")
    assert r.rc == 0, r.err
    assert checkpoint.load(out / "checkpoints" / "last.safetensors").step == stopped + 2


def _start_paused_in_save(tmp_path: Path, corpus: Path) -> tuple:
    """A training process stopped half-way through overwriting last.safetensors (tests/pause_in_save.py).

    With --eval-every 3 the saves go: last (step 0, a new file), best (step 3, a new file), then last
    (step 3) over the step-0 file: the hook stops that write half-way.
    """
    out, marker, err = tmp_path / "run", tmp_path / "paused", tmp_path / "stderr.txt"
    with open(err, "w") as ferr:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("pause_in_save.py")), str(marker), "train",
             "--data", str(corpus), "--out", str(out), *TINY, "--eval-every", "3", "--epochs", "100000"],
            stdout=subprocess.DEVNULL, stderr=ferr)
    wait_for(marker.exists, proc)
    return proc, out, err


def test_second_ctrl_c_during_a_save_quits_at_once_and_keeps_the_old_checkpoint(tmp_path, corpus):
    proc, out, err = _start_paused_in_save(tmp_path, corpus)
    try:
        before = ckpt_files(out)
        assert len(temp_files(out)) == 1                  # the half-written new checkpoint
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: "SIGINT received" in err.read_text(), proc)
        proc.send_signal(signal.SIGINT)                   # the second Ctrl-C
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.read_text()
    assert proc.returncode == 130 and "Traceback" not in text
    assert "interrupted again: stopped at once" in text.strip().splitlines()[-1]
    assert ckpt_files(out) == {k: v for k, v in before.items() if not k.endswith(".tmp")}
    # the step-0 checkpoint that step 3's save was replacing, and step 3's best, both load
    assert checkpoint.load(out / "checkpoints" / "last.safetensors").step == 0
    assert checkpoint.load(out / "checkpoints" / "best.safetensors").step == 3
    assert temp_files(out) == []                          # the unfinished temp file was removed


def test_kill_9_during_a_checkpoint_write_leaves_the_previous_checkpoint_loadable(tmp_path, corpus):
    proc, out, _ = _start_paused_in_save(tmp_path, corpus)
    try:
        before = (out / "checkpoints" / "last.safetensors").read_bytes()
        proc.kill()                                       # SIGKILL: no handler, no cleanup
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    (tmp,) = temp_files(out)                              # the half-written file is all that is left of it
    assert (out / "checkpoints" / "last.safetensors").read_bytes() == before
    ck = checkpoint.load(out / "checkpoints" / "last.safetensors")
    assert ck.step == 0 and all(np.isfinite(p).all() for p in ck.params.values())   # the one step 3 was replacing
    # the run resumes from it, and the next session clears the leftover temp file
    r = cli("train", "--resume", out, "--max-steps", "5", "--no-progress")
    assert r.rc == 0, r.err
    assert checkpoint.load(out / "checkpoints" / "last.safetensors").step == 5 and temp_files(out) == []


# --------------------------------------------------------------------------------------------------
# full disk, unwritable folder

def test_file_size_limit_while_saving_is_a_clear_error_and_the_checkpoint_survives(tmp_path, corpus):
    """RLIMIT_FSIZE makes the kernel refuse to grow any file past a size (EFBIG), even for root:
    the checkpoint write fails like on a full disk, while the small metrics file still fits."""
    out = tmp_path / "run"
    assert charnn("train", "--data", corpus, "--out", out, *TINY, "--max-steps", "4", "--eval-every", "2").rc == 0
    before = snapshot(out / "checkpoints")
    limit = 6_000
    assert min(len(v) for v in ckpt_files(out).values()) > limit > (out / "config.json").stat().st_size + 1_000

    def small_files_only() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = cli("train", "--resume", out, "--max-steps", "8", "--no-progress", preexec_fn=small_files_only)
    line = r.one_line_error("cannot write checkpoint", "File too large", "previous checkpoint is intact",
                            f"charnn train --resume {out}")
    assert "Traceback" not in r.err, line
    assert changes(before, snapshot(out / "checkpoints")) == []
    r = cli("train", "--resume", out, "--max-steps", "8", "--no-progress")      # space again: it continues
    assert r.rc == 0, r.err
    assert checkpoint.load(out / "checkpoints" / "last.safetensors").step == 8


def test_no_space_left_on_device_is_a_clear_error(tmp_path, corpus, monkeypatch):
    out = tmp_path / "run"
    assert charnn("train", "--data", corpus, "--out", out, *TINY, "--max-steps", "2").rc == 0
    before = snapshot(out / "checkpoints")
    real = os.replace

    def full(src, dst):
        if str(dst).endswith(".safetensors"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full)
    r = charnn("train", "--resume", out, "--max-steps", "4", "--no-progress")
    assert r.rc == 2 and "Traceback" not in r.err
    (line,) = r.err.strip().splitlines()
    assert "No space left on device" in line and "intact" in line
    assert changes(before, snapshot(out / "checkpoints")) == []           # no temp file left either


def test_output_folder_that_cannot_be_created(tmp_path, corpus):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cli("train", "--data", corpus, "--out", blocker / "run", *TINY).one_line_error("cannot create output folder")
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


# --------------------------------------------------------------------------------------------------
# resuming twice, resuming a finished run

def test_resuming_twice_continues_from_the_latest_checkpoint(tmp_path, corpus):
    straight, parts = tmp_path / "straight", tmp_path / "parts"
    assert charnn("train", "--data", corpus, "--out", straight, *TINY, "--max-steps", "9", "--eval-every", "3").rc == 0
    assert charnn("train", "--data", corpus, "--out", parts, *TINY, "--max-steps", "3", "--eval-every", "3").rc == 0
    for total in ("6", "9"):
        assert charnn("train", "--resume", parts, "--max-steps", total, "--no-progress").rc == 0
    a, b = params_of(straight / "checkpoints" / "last.safetensors"), params_of(parts / "checkpoints" / "last.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)          # bit-identical to never having stopped
    steps = [json.loads(x)["step"] for x in (parts / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))                         # one metrics row per step, no repeats


def test_resuming_a_finished_run_is_a_no_op_that_says_how_to_go_on(tmp_path, corpus):
    out = tmp_path / "done"
    assert charnn("train", "--data", corpus, "--out", out, *TINY, "--max-steps", "3").rc == 0
    before = snapshot(out)
    for _ in range(2):
        r = cli("train", "--resume", out, "--no-progress")
        assert r.rc == 0 and "already finished" in r.out and "--max-steps" in r.out and r.err == ""
    assert changes(before, snapshot(out)) == []
