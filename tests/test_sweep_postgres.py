"""`charnn sweep --storage postgresql://…` against a real PostgreSQL server of the test's own.

The fixture initdb's a data folder under pytest's temporary folder, starts Debian's postgres on a
free loopback port (Unix sockets in the data folder, so it never meets a system cluster), creates a
database and stops the server at the end. As root, the server runs as the `postgres` user (it
refuses root): the data folder is that user's and the temporary folders above it are made
traversable for the duration. Without the server binaries (Debian's postgresql package) the test
skips, or fails where system components are required (CI).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from clihelp import charnn, write_corpus
from sweephelp import base_config, finished, load, worker, write
from system import unavailable


def _server_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not found:
        unavailable("the PostgreSQL server is not installed (Debian package postgresql)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """postgresql://charnn@127.0.0.1:PORT/sweeps on a server started for this test run."""
    bindir = _server_bin()
    root = tmp_path_factory.mktemp("postgres")
    data, log = root / "data", root / "server.log"
    as_user: list[str] = []
    opened: list[tuple[Path, int]] = []
    if os.geteuid() == 0:                            # postgres refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root and there is no 'postgres' user to run the server as")
        as_user = [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]
        for folder in [root, *root.parents]:          # let that user reach the data folder
            mode = folder.stat().st_mode
            if mode & stat.S_IXOTH:
                break
            opened.append((folder, mode))
            folder.chmod(mode | stat.S_IXOTH)
        data.mkdir(mode=0o700)
        os.chown(data, user.pw_uid, user.pw_gid)
        log.touch()
        os.chown(log, user.pw_uid, user.pw_gid)
    port = _free_port()

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)

    started = False
    try:
        r = run(str(bindir / "initdb"), "-D", str(data), "-U", "charnn", "--auth=trust", "-E", "UTF8",
                "--locale=C", "--no-sync")
        if r.returncode != 0:
            unavailable(f"initdb failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
        options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
        r = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        if r.returncode != 0:
            unavailable(f"the PostgreSQL server did not start: {log.read_text()[-500:]}")
        started = True
        import psycopg2      # a test dependency (pyproject's test extra)

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="charnn", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE sweeps")
        conn.close()
        yield f"postgresql://charnn@127.0.0.1:{port}/sweeps"
    finally:
        if started:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        for folder, mode in reversed(opened):
            folder.chmod(mode)


def test_two_workers_in_separate_processes_share_one_study_in_postgresql(tmp_path, postgres_url):
    corpus = write_corpus(tmp_path, chars=6_000)
    space = write(tmp_path / "space.toml", {"lr": {"low": 3e-3, "high": 3e-2, "log": True}})
    common = ["--space", space, "--trials", "4", "--config", base_config(tmp_path, max_steps=30, eval_every=10),
              "--data", corpus, "--storage", postgres_url, "--study", "shared", "--pruner", "median"]
    # each worker has a folder of its own, as on two machines
    procs = [worker(*common, "--out", tmp_path / "a"), worker(*common, "--out", tmp_path / "b")]
    for p in procs:
        rc, out, err = finished(p)
        assert rc == 0, err
    print(f"PostgreSQL sweep ran against {postgres_url}")
    study = load(study="shared", storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    folders = sorted(p.name for side in ("a", "b") for p in (tmp_path / side).glob("trial-*"))
    assert folders == ["trial-0000", "trial-0001", "trial-0002", "trial-0003"]   # each trial ran once
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    for t in trials:
        assert Path(t.user_attrs["run_dir"]).is_dir()
    res = charnn("sweep-report", "--storage", postgres_url, "--study", "shared", "--out", tmp_path / "report")
    assert res.rc == 0, res.err
    assert f"best: trial {study.best_trial.number}" in res.out
    assert (tmp_path / "report" / "best.toml").is_file() and (tmp_path / "report" / "report.md").is_file()
