"""Every way a run stops keeps it resumable, exactly.

- SIGINT or SIGTERM to a real `charnn train` process mid-run, then `--resume`: the end state is the
  one an uninterrupted run reaches, bit for bit (parameters, optimizer state, carried h, sampling RNG).
- A validation loss that becomes NaN, and parameters that become non-finite, stop the run with exit
  status 3 and one line, and leave the last good checkpoint as it was.
- config.json is written atomically: a crash in the middle of rewriting it leaves the old one whole.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charnn import model
from charnn.train import checkpoint, optim

from ckcraft import TINY, changes, cli, cli_popen, snapshot
from clihelp import charnn, write_corpus
from exact import assert_same_training_state
from test_faults import has_rows, wait_for

# 6,000 characters in streams of 2 × 10: 270 batches an epoch, so 300 steps cross an epoch end
# (a sample drawn from the RNG, h reset) and stop mid-epoch with a carried h.
STEPS = "300"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("stops"), 6_000)


@pytest.fixture(scope="module")
def straight(tmp_path_factory, corpus) -> Path:
    """The uninterrupted run every interrupted one must end up equal to."""
    out = tmp_path_factory.mktemp("straight") / "run"
    assert charnn("train", "--data", corpus, "--out", out, *TINY, "--max-steps", STEPS).rc == 0
    ck = checkpoint.load(out / "checkpoints" / "last.safetensors")
    assert ck.step == 300 and ck.epoch == 1 and ck.h is not None      # past an epoch end, mid-epoch
    return out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signalled_run_resumes_bit_for_bit(tmp_path, corpus, straight, sig):
    out = tmp_path / "run"
    proc = cli_popen("train", "--data", corpus, "--out", out, *TINY, "--max-steps", STEPS)
    try:
        wait_for(has_rows(out), proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    stopped = int(err.split("stopped at step ")[1].split(",")[0])
    assert 0 < stopped < 300 and checkpoint.load(out / "checkpoints" / "last.safetensors").step == stopped
    r = cli("train", "--resume", out, "--no-progress")
    assert r.rc == 0 and "Traceback" not in r.err, r.err
    assert_same_training_state(straight, out)
    samples = lambda run: (run / "samples.txt").read_text()      # noqa: E731  the epoch-end sample too
    assert samples(out) == samples(straight)


# --------------------------------------------------------------------------------------------------
# divergence stops: exit 3, one line, the last good checkpoint kept

def diverged_line(r, notice: str | None = None) -> str:
    """Exit status 3 and one error line (after the signal's notice, where a signal stopped the run)."""
    assert r.rc == 3, (r.rc, r.err)
    lines = r.err.strip().splitlines()
    assert "Traceback" not in r.err and len(lines) == 1 + (notice is not None), r.err
    assert notice is None or lines[0].startswith(notice), r.err
    return lines[-1]


def test_a_nan_validation_loss_stops_with_exit_3_and_keeps_the_last_good_checkpoint(tmp_path, corpus, monkeypatch):
    """Validation at steps 2, 4, 6: the third returns NaN, so the checkpoints of step 4 must stay as they were."""
    out = tmp_path / "run"
    real, calls, at_failure = model.evaluate, [], {}

    def poisoned(*args, **kw):
        total, n, rest = real(*args, **kw)
        calls.append(1)
        if len(calls) == 3:
            at_failure.update(snapshot(out / "checkpoints"))
            return float("nan"), n, rest
        return total, n, rest

    monkeypatch.setattr(model, "evaluate", poisoned)
    r = charnn("train", "--data", corpus, "--out", out, *TINY, "--eval-every", "2", "--max-steps", "20")
    line = diverged_line(r)
    assert "the validation loss became nan at step 6" in line and "(step 4)" in line
    assert at_failure and changes(at_failure, snapshot(out / "checkpoints")) == []
    ck = checkpoint.load(out / "checkpoints" / "last.safetensors")
    assert ck.step == 4 and all(np.isfinite(p).all() for p in ck.params.values())
    monkeypatch.setattr(model, "evaluate", real)
    assert charnn("train", "--resume", out, "--max-steps", "8", "--no-progress").rc == 0   # resumable as is


def test_non_finite_parameters_are_never_saved_exit_3(tmp_path, corpus, monkeypatch):
    """The 5th update leaves an infinite bias c (the loss of that step was finite) and a SIGTERM arrives
    in it: the stop's save finds the bad parameter, refuses to write it and keeps step 4's checkpoint."""
    out = tmp_path / "run"
    real, calls, at_failure = optim.Adam.step, [], {}

    def poisoned(self, params, grads):
        real(self, params, grads)
        calls.append(1)
        if len(calls) == 5:
            params["c"][0] = np.inf
            at_failure.update(snapshot(out / "checkpoints"))
            signal.raise_signal(signal.SIGTERM)          # handled by the trainer: stop after this step

    monkeypatch.setattr(optim.Adam, "step", poisoned)
    r = charnn("train", "--data", corpus, "--out", out, *TINY, "--eval-every", "2", "--max-steps", "20")
    line = diverged_line(r, notice="SIGTERM received")
    assert "parameter c became nan at step 5" in line and "(step 4)" in line
    assert at_failure and changes(at_failure, snapshot(out / "checkpoints")) == []
    ck = checkpoint.load(out / "checkpoints" / "last.safetensors")
    assert ck.step == 4 and all(np.isfinite(p).all() for p in ck.params.values())


# --------------------------------------------------------------------------------------------------
# config.json is replaced atomically

def test_a_crash_while_rewriting_config_json_leaves_the_old_one(tmp_path, corpus):
    """A resume that raises --max-steps rewrites config.json; tests/crash_in_write.py kills the process
    (SIGKILL) half-way through that write. The old config.json is intact, and the next session
    removes the half-written temp file and writes the new one."""
    out = tmp_path / "run"
    assert charnn("train", "--data", corpus, "--out", out, *TINY, "--max-steps", "3").rc == 0
    old = (out / "config.json").read_bytes()
    r = subprocess.run([sys.executable, str(Path(__file__).with_name("crash_in_write.py")), "config.json",
                        "train", "--resume", str(out), "--max-steps", "5", "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert (out / "config.json").read_bytes() == old
    (tmp,) = [p for p in out.iterdir() if p.name.startswith(".config.json.") and p.name.endswith(".tmp")]
    assert 0 < tmp.stat().st_size < len(old) + 10                 # the half-written replacement
    assert json.loads(old)["config"]["max_steps"] == 3
    r = cli("train", "--resume", out, "--max-steps", "5", "--no-progress")
    assert r.rc == 0, r.err
    assert json.loads((out / "config.json").read_text())["config"]["max_steps"] == 5
    assert not tmp.exists()
    assert checkpoint.load(out / "checkpoints" / "last.safetensors").step == 5
