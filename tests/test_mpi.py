"""Data-parallel training under `mpiexec` (charnn.train.distributed), on loopback.

A run on N ranks must equal one process with the same total batch (float64, to 1e-12 relative
in norm, array by array of the checkpoint), resume on another rank count with the same result,
and stop on every rank together when one rank sees a NaN or a SIGTERM. Tiny models: each
launch takes a few seconds.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from charnn.train import checkpoint, distributed
from clihelp import SMALL, charnn, metrics, write_corpus
from system import unavailable

HERE = Path(__file__).parent
LAUNCH_TIMEOUT_S = 180       # a hung run (ranks waiting on each other) fails instead of blocking CI


def mpiexec() -> str:
    """The launcher beside this interpreter (the mpich wheel's) or on PATH; mpi4py must import."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        unavailable("mpi4py not installed (pip install mpi4py mpich)")
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.is_file() else shutil.which("mpiexec")
    if not found:
        unavailable("mpiexec not found (pip install mpich, or Debian's mpich)")
    return found


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in distributed.SIZE_VARS + distributed.RANK_VARS}
    out["HYDRA_LAUNCHER"] = "fork"   # every rank on this machine: no ssh
    return out


def start(n: int, *args: str | os.PathLike, wrapper: list[str] | None = None) -> subprocess.Popen:
    program = [str(HERE / "mpi_rank.py"), *wrapper] if wrapper else ["-m", "charnn.cli"]
    return subprocess.Popen([mpiexec(), "-n", str(n), sys.executable, *program, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
                            start_new_session=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"mpiexec did not finish in {LAUNCH_TIMEOUT_S} s (ranks waiting on each other?)\n{err}")
    return proc.returncode, out, err


def train_mpi(n: int, *args: str | os.PathLike) -> tuple[int, str, str]:
    rc, out, err = finish(start(n, "train", *args))
    assert rc == 0, err
    return rc, out, err


def last(run: Path) -> checkpoint.Checkpoint:
    return checkpoint.load(run / "checkpoints" / "last.safetensors")


def assert_same_state(a: checkpoint.Checkpoint, b: checkpoint.Checkpoint, rtol: float = 1e-12) -> None:
    """Parameters, optimizer moments and carried state equal to `rtol` relative (2-norm, per array)."""
    assert (a.step, a.epoch, a.batch_index) == (b.step, b.epoch, b.batch_index)
    pairs = [(f"param {k}", a.params[k], b.params[k]) for k in a.params]
    pairs += [(f"optim {k}", a.optim_state[k], b.optim_state[k]) for k in a.optim_state]
    assert (a.h is None) == (b.h is None)
    if a.h is not None:
        pairs.append(("h", a.h, b.h))
    assert sorted(a.params) == sorted(b.params) and sorted(a.optim_state) == sorted(b.optim_state)
    for name, x, y in pairs:
        assert x.shape == y.shape, name
        assert np.linalg.norm(x - y) <= rtol * np.linalg.norm(x), (name, np.linalg.norm(x - y) / np.linalg.norm(x))


CELLS = {"rnn": ["--cell", "rnn"], "lstm": ["--cell", "lstm", "--layers", "2"], "gru": ["--cell", "gru"]}


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_two_ranks_equal_one_process(tmp_path: Path, cell: str) -> None:
    """50 steps on 2 ranks (3 + 2 of B = 5 streams), dropout, weight drop and global-norm clipping:
    one process's numbers."""
    corpus = write_corpus(tmp_path)
    args = [*SMALL, "--data", corpus, "--batch-size", "5", "--max-steps", "50", "--eval-every", "20",
            "--dropout", "0.25", "--weight-drop", "0.25", "--clip-norm", "0.5", *CELLS[cell]]
    one = charnn("train", *args, "--out", tmp_path / "one")
    assert one.rc == 0, one.err
    _, out, err = train_mpi(2, *args, "--out", tmp_path / "two")
    assert "data-parallel: 2 MPI ranks" in out
    assert_same_state(last(tmp_path / "one"), last(tmp_path / "two"))
    rows_one, rows_two = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert [r["step"] for r in rows_two] == [r["step"] for r in rows_one]   # one rank wrote, once
    np.testing.assert_allclose([r["train_loss"] for r in rows_two], [r["train_loss"] for r in rows_one], rtol=1e-12)
    np.testing.assert_allclose([r["val_loss"] for r in rows_two if "val_loss" in r],
                               [r["val_loss"] for r in rows_one if "val_loss" in r], rtol=1e-12)
    assert out.count("sample from it:") == 1 and "Traceback" not in err


@pytest.mark.parametrize("ranks,extra", [((4, 2, 1), ["--cell", "lstm", "--layers", "2", "--dropout", "0.2"]),
                                         ((1, 2, 4), ["--cell", "rnn"])], ids=["4-2-1 lstm", "1-2-4 rnn"])
def test_resume_on_other_rank_counts(tmp_path: Path, ranks: tuple[int, ...], extra: list[str]) -> None:
    """10 steps on each rank count in turn (B = 6 streams: shares of 1 or 2 on 4 ranks), crossing
    an epoch end, equal the same 30 steps straight in one process."""
    corpus = write_corpus(tmp_path, chars=3_000)          # 22 batches an epoch
    args = [*SMALL, "--data", corpus, "--batch-size", "6", "--random-offset", "--eval-every", "0", *extra]
    straight = charnn("train", *args, "--max-steps", "30", "--out", tmp_path / "straight")
    assert straight.rc == 0, straight.err
    run = tmp_path / "run"
    for i, n in enumerate(ranks):
        where = ["--out", run, *args] if i == 0 else ["--resume", run, "--no-progress"]
        steps = ["--max-steps", str(10 * (i + 1))]
        if n == 1:
            res = charnn("train", *where, *steps)
            assert res.rc == 0, res.err
        else:
            train_mpi(n, *where, *steps)
        assert last(run).step == 10 * (i + 1)
    assert last(run).epoch == 1
    assert_same_state(last(tmp_path / "straight"), last(run))


def test_nan_on_one_rank_stops_all(tmp_path: Path) -> None:
    """A NaN loss on rank 1 at step 8 reaches rank 0 through the all-reduce: both stop, exit 3, and the
    last good checkpoint (step 5) is kept."""
    corpus = write_corpus(tmp_path)
    proc = start(2, "train", *SMALL, "--data", corpus, "--max-steps", "50", "--eval-every", "5",
                 "--out", tmp_path / "run", wrapper=[str(tmp_path), "1", "8"])
    rc, out, err = finish(proc)
    assert rc == 3, err
    lines = [line for line in err.splitlines() if line.startswith("charnn:")]
    assert len(lines) == 1 and "became nan at step 8" in lines[0], err     # said once, by rank 0
    assert last(tmp_path / "run").step == 5
    assert [r["step"] for r in metrics(tmp_path / "run")][-1] == 5


def test_sigterm_on_one_rank_stops_all(tmp_path: Path) -> None:
    """SIGTERM to rank 1 alone: both ranks stop after the same step, rank 0 saves it, exit 143."""
    corpus = write_corpus(tmp_path)
    run = tmp_path / "run"
    proc = start(2, "train", *SMALL, "--data", corpus, "--epochs", "1000", "--log-every", "1", "--out", run,
                 wrapper=[str(tmp_path), "-1", "0"])
    pid_file, rows = tmp_path / "rank-1.pid", run / "metrics.jsonl"
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S        # a bound on waiting, not a timing assertion
    while not (pid_file.exists() and rows.exists() and rows.stat().st_size > 0) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]
    os.kill(int(pid_file.read_text()), signal.SIGTERM)
    rc, out, err = finish(proc)
    assert rc == 128 + signal.SIGTERM, err
    stopped = [line for line in err.splitlines() if line.startswith("charnn: SIGTERM received: stopped at step")]
    assert len(stopped) == 1, err
    step = int(stopped[0].split("stopped at step ")[1].split(",")[0])
    assert step >= 1 and last(run).step == step
    assert metrics(run)[-1]["step"] == step
    res = charnn("train", "--resume", run, "--max-steps", str(step + 3), "--no-progress")   # it resumes
    assert res.rc == 0, res.err
    assert last(run).step == step + 3


def test_callback_stop_on_rank_0_stops_all(tmp_path: Path) -> None:
    """The Python API under mpiexec: rank 0 runs the callbacks, and a StopTraining it raises at an
    evaluation ends the run on every rank at that step."""
    corpus = write_corpus(tmp_path)
    code = ("import sys; from charnn.train import StopTraining, train, distributed\nfrom charnn.train.config import Config\n"
            "def stop(event, row):\n"
            "    if event == 'eval' and row['step'] == 10: raise StopTraining\n"
            f"cfg = Config(data={str(corpus)!r}, hidden_size=16, max_len=20, batch_size=4, dtype='float64', "
            "eval_every=5, max_steps=50)\n"
            f"r = train(cfg, {str(tmp_path / 'run')!r}, callbacks=[stop], progress=False, log=None)\n"
            f"open({str(tmp_path)!r} + f'/rank-{{distributed.world().rank}}.txt', 'w')"
            ".write(f'{r.step} {r.stop_reason}')\n")   # a file per rank: mpiexec may interleave the ranks' stdout
    proc = subprocess.Popen([mpiexec(), "-n", "2", sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env(), start_new_session=True)
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert [(tmp_path / f"rank-{r}.txt").read_text() for r in (0, 1)] == ["10 stopped", "10 stopped"], out
    assert last(tmp_path / "run").step == 10


def test_root_only_error_reaches_every_rank(tmp_path: Path) -> None:
    """A run folder refused on rank 0 (not empty) stops the other rank too: one line, exit 2, no hang."""
    corpus = write_corpus(tmp_path)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    rc, out, err = finish(start(2, "train", *SMALL, "--data", corpus, "--out", tmp_path / "taken"))
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "is not empty" in err and "Traceback" not in err


def test_plain_run_never_imports_mpi4py(tmp_path: Path) -> None:
    """Started without mpiexec, `charnn train` runs as one process and does not import mpi4py."""
    corpus = write_corpus(tmp_path)
    argv = ["train", *SMALL, "--data", str(corpus), "--max-steps", "3", "--out", str(tmp_path / "run")]
    code = (f"import sys; from charnn.cli import main; rc = main({argv!r}); "
            "assert rc == 0, rc; assert 'mpi4py' not in sys.modules, 'mpi4py imported'")
    res = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert last(tmp_path / "run").step == 3


def test_launcher_without_mpi4py_is_a_user_error(tmp_path: Path) -> None:
    """Ranks started by a launcher without mpi4py would each train alone over one folder: refused."""
    corpus = write_corpus(tmp_path)
    code = ("import sys; sys.modules['mpi4py'] = None; from charnn.cli import main; "
            f"sys.exit(main(['train', '--data', {str(corpus)!r}, '--out', {str(tmp_path / 'run')!r}]))")
    res = subprocess.run([sys.executable, "-c", code], env={**env(), "PMI_SIZE": "2", "PMI_RANK": "0"},
                         capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "mpi4py" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()


def test_launched_size_reads_the_launchers_variables() -> None:
    assert distributed.launched_size({}) == 1
    assert distributed.launched_size({"PMI_SIZE": "4", "PMI_RANK": "3"}) == 4
    assert distributed.launched_size({"OMPI_COMM_WORLD_SIZE": "1"}) == 1
    assert distributed.launched_size({"PMIX_RANK": "0"}) == 0      # launched, size unknown: ask MPI
    assert distributed.launched_rank({"PMI_RANK": "3"}) == 3 and distributed.launched_rank({}) == 0


def test_the_width_chosen_from_the_budget_is_every_ranks(tmp_path: Path) -> None:
    """--min-steps under mpiexec: rank 0 times the step, and every rank trains the width it chose."""
    corpus = write_corpus(tmp_path)
    args = ["--data", corpus, "--hidden-size", "128", "--batch-size", "4", "--max-len", "16", "--max-steps", "3",
            "--max-minutes", "0.01", "--min-steps", "10000000", "--sample-length", "5", "--no-progress"]
    _, out, err = train_mpi(2, *args, "--out", tmp_path / "two")
    assert "# hidden size 64 for at least 10,000,000 steps" in out and "Traceback" not in err
    assert last(tmp_path / "two").params["W"].shape == (64, 64)
