"""Fuzz the real command line: whatever the arguments, `charnn` answers with exit status 0, 2 or 3,
never a traceback, never a hang, and it changes no file outside the folder it may write to.

Hypothesis builds each argument list from the parser itself (`charnn.cli.build_parser()`): for a
command, its positionals and a few of its options, each option's value drawn for its type (whole
numbers, numbers, choices, text, paths) from valid values, values of the wrong type or range, odd
strings, and paths to odd files: a FIFO, a folder, a symbolic-link loop, /dev/zero, a file that
cannot be opened, a 50 GB sparse file. Every case runs `python -m charnn.cli` as a child process
under an address-space cap and a time limit; stdout is read up to a bound and then closed (a
reader that goes away, as `| head` does).

Runs that would legitimately take long are kept short by fixed flags before the fuzzed ones (a
tiny model on a tiny corpus) and a step cap after them; `experiment`, `reproduce`, `sweep` (minutes
when valid) and `serve` (runs until stopped) are only fuzzed with one value that must be refused.

    CHARNN_FUZZ_EXAMPLES=N      generated cases per run [25], after the known ones
    CHARNN_FUZZ_TIME=S          seconds before a case counts as a hang [60]
    CHARNN_FUZZ_SEED=S|random   the seed [19]; printed with every failure, so a case can be replayed
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, seed, settings
from hypothesis import strategies as st

from charnn import cli

from ckcraft import TINY
from clihelp import charnn as charnn_inprocess, write_corpus

DEFAULT_EXAMPLES = 25
EXAMPLES = int(os.environ.get("CHARNN_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
_SEED_ENV = os.environ.get("CHARNN_FUZZ_SEED", "19")
SEED = random.SystemRandom().randrange(2**32) if _SEED_ENV == "random" else int(_SEED_ENV)
MEMORY_CAP = 4 << 30        # RLIMIT_AS: numba, LLVM and OpenBLAS threads need about 1.5 GiB of address space
TIME_LIMIT = float(os.environ.get("CHARNN_FUZZ_TIME", "60"))   # seconds per case; a tiny run takes a few
STDOUT_BOUND = 64 << 10     # bytes of stdout read before the pipe is closed
STEP_CAP = "6"              # the resumable run stopped at step 4: a resume does 2 more


@dataclass(frozen=True)
class P:
    """A path placeholder in an argument list, resolved against the fuzzing folder at run time."""
    kind: str

    def __repr__(self) -> str:
        return f"<{self.kind}>"


# Inputs that any command may read; none of them may change.
ODD_PATHS = [P(k) for k in ("fifo", "dir", "loop", "dev_zero", "unreadable", "sparse", "missing", "under_a_file",
                            "empty", "name_too_long", "dangling")]
INPUT_PATHS = [P("corpus"), P("toml"), P("run"), P("checkpoint"), *ODD_PATHS]
OUTPUT_PATHS = [P("out_new"), P("out_run")]          # under the folder a command may write to

ODD_STRINGS = ["", " ", "-", "0", "-1", "-0", "1e309", "-1e309", "nan", "NaN", "inf", "-inf", "1e-400",
               "9" * 40, "-" + "9" * 40, "0x10", "1_000", "1.5", "½", "٣", "€", "\t", "\x1b[31mred",
               "\u202e", "a\x7fb", "\x01\x02", "💥" * 30, "x" * 5000, "--help-me", "=", "'", '"', "\\"]
# No large-but-valid sizes such as 10^5 layers: those run for hours, legitimately; absurd ones must be refused.
INTS = ["1", "2", "3", "0", "-1", "-2", str(10**9), str(2**63), str(10**30), str(-10**30)]
FLOATS = ["0", "1", "0.5", "2", "-1", "-0.0", "1e-3", "1e308", "-1e308", "5e-324", "nan", "inf", "-inf"]
TEXT = ["ROMEO:", "the", "", "€", "Zq\u20ac", "\n", "a" * 1000]

# Fixed flags put before the fuzzed ones (so a fuzzed value overrides them): tiny, quick runs.
BASE = {
    "train": ["--data", P("corpus"), *TINY],
    "sample": ["--length", "20"],
    "gradcheck": ["--vocab-size", "5", "--hidden-size", "4", "--batch-size", "2", "--max-len", "3", "--checks", "3"],
}
INT_TYPES = {cli._whole, cli._positive_int, int}
FLOAT_TYPES = {cli._finite_float, float}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every command's own parser, walked from the real one."""
    (sub,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def is_path(action: argparse.Action) -> bool:
    metavar = str(action.metavar or "")
    return any(w in metavar for w in ("PATH", "DIR", "FILE", "CHECKPOINT"))


def path_choices(command: str, action: argparse.Action) -> list[Any]:
    if action.dest == "out":
        return [*OUTPUT_PATHS, *ODD_PATHS, P("corpus")]
    if action.dest == "resume":
        return [P("out_run"), P("run_copy_missing"), *ODD_PATHS, P("corpus")]
    return INPUT_PATHS


def good_values(command: str, action: argparse.Action) -> list[Any]:
    """Values of the right type (maybe out of range)."""
    if is_path(action):
        return path_choices(command, action)
    if action.choices:
        return list(action.choices)
    if action.type in INT_TYPES:
        return INTS
    if action.type in FLOAT_TYPES:
        return FLOATS
    metavar = str(action.metavar or "")
    if "|" in metavar:                                   # e.g. adam|sgd
        return metavar.split("|")
    return TEXT


# Commands that, given valid values, run for minutes (the experiments, a sweep) or until stopped (the
# web server): fuzzed only with one value among the others that must be refused.
LONG = ("experiment", "reproduce", "sweep", "serve")


def bad_values(command: str, action: argparse.Action) -> list[Any]:
    """Values that must be refused whatever else is given (so that a slow command stops at once)."""
    if is_path(action):
        if action.dest == "out":
            return [P("under_a_file"), P("dev_zero"), P("corpus"), P("fifo"), P("sparse")]
        return [p for p in ODD_PATHS if p.kind != "dir"] + ([P("dir")] if action.dest == "data" else [])
    if action.type in INT_TYPES:
        return ["abc", "1.5", "", "nan", "1e3"] + (["0", "-1"] if action.type is cli._positive_int else [])
    if action.type in FLOAT_TYPES:
        return ["abc", "", "1,5"] + (["nan", "1.5", "-0.1"] if action.dest == "dropout" else [])
    if action.choices or "|" in str(action.metavar or ""):
        return ["", "nope", "€"]
    return []


def options(parser: argparse.ArgumentParser) -> tuple[list[argparse.Action], list[argparse.Action]]:
    """(positionals, options) of a command's parser, --help left out."""
    acts = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    return [a for a in acts if not a.option_strings], [a for a in acts if a.option_strings]


def value(command: str, action: argparse.Action) -> st.SearchStrategy:
    return st.one_of(st.sampled_from(good_values(command, action)), st.sampled_from(ODD_STRINGS),
                     st.sampled_from(ODD_PATHS))


def flag_and_value(command: str, action: argparse.Action, draw: Any) -> list[Any]:
    flag = draw(st.sampled_from(action.option_strings))
    if action.nargs == 0:                       # store_true and the like
        return [flag]
    v = draw(value(command, action))
    if isinstance(v, str) and v.startswith("-") and draw(st.booleans()):
        return [f"{flag}={v}"]                  # how a user passes a value that looks like a flag
    return [flag, v]


@st.composite
def argv(draw: Any) -> list[Any]:
    """One command line: a command, its positionals, 0-4 fuzzed options, and the bounding flags."""
    cmds = subcommands()
    command = draw(st.sampled_from(sorted(cmds)))
    if draw(st.integers(0, 40)) == 0:
        return [command, draw(st.sampled_from(["-h", "--help"]))]
    positionals, opts = options(cmds[command])
    args: list[Any] = [command]
    for a in positionals:
        args.append(draw(st.one_of(st.sampled_from(good_values(command, a)), st.sampled_from(ODD_STRINGS))))
    args += BASE.get(command, [])
    chosen = draw(st.lists(st.sampled_from(opts), max_size=4, unique_by=lambda a: a.dest))
    for a in chosen:
        args += flag_and_value(command, a, draw)
    if command in LONG:                           # valid, these run for minutes or serve: one value must be refused
        refusable = [a for a in [*positionals, *opts] if bad_values(command, a)]
        a = draw(st.sampled_from(refusable))
        bad = draw(st.sampled_from(bad_values(command, a)))
        args += [bad] if not a.option_strings else [a.option_strings[0], bad]
    if command == "train":
        args += ["--max-steps", STEP_CAP]         # last: it overrides any fuzzed --max-steps
    return args


# --------------------------------------------------------------------------------------------------
# the folder the cases run in

@dataclass
class World:
    root: Path        # inputs: nothing under it may change, except under `out`
    out: Path         # the folder the commands may write to (and their working folder)
    pristine: Path    # a resumable run, copied into out/run before each case

    def resolve(self, token: Any) -> str:
        if not isinstance(token, P):
            return str(token)
        fixed = {"dev_zero": "/dev/zero", "out_new": str(self.out / "new_run"), "out_run": str(self.out / "run"),
                 "run_copy_missing": str(self.out / "no_such_run"),
                 "name_too_long": str(self.root / ("n" * 300)), "under_a_file": str(self.root / "corpus.txt" / "x")}
        if token.kind in fixed:
            return fixed[token.kind]
        return str(self.root / {"corpus": "corpus.txt", "toml": "good.toml", "run": "run",
                                "checkpoint": "run/checkpoints/last.safetensors", "fifo": "fifo", "dir": "empty_dir",
                                "loop": "loop_a", "unreadable": "unreadable", "sparse": "sparse.txt",
                                "missing": "missing.txt", "empty": "empty.txt", "dangling": "dangling"}[token.kind])

    def reset_out(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir()
        shutil.copytree(self.pristine, self.out / "run", symlinks=True)


def _unreadable(path: Path) -> None:
    """A file that cannot be read. Root ignores permission bits (chmod 000 stops only other users), so
    for root it is a link to /proc/self/mem: it opens, but reading its first bytes fails with EIO."""
    if os.geteuid() != 0:
        path.write_text("secret")
        path.chmod(0)
    else:
        path.symlink_to("/proc/self/mem")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("fuzz")
    corpus = write_corpus(root, 6_000)
    corpus.rename(root / "corpus.txt")
    corpus = root / "corpus.txt"
    run = root / "run"
    assert charnn_inprocess("train", "--data", corpus, "--out", run, *TINY, "--max-steps", "4").rc == 0
    pristine = tmp_path_factory.mktemp("fuzz_pristine") / "run"
    assert charnn_inprocess("train", "--data", corpus, "--out", pristine, *TINY, "--max-steps", "4").rc == 0
    (root / "good.toml").write_text("hidden_size = 8\nmax_len = 10\nbatch_size = 2\n")
    os.mkfifo(root / "fifo")
    (root / "empty_dir").mkdir()
    (root / "loop_a").symlink_to(root / "loop_b")
    (root / "loop_b").symlink_to(root / "loop_a")
    (root / "dangling").symlink_to(root / "nowhere")
    _unreadable(root / "unreadable")
    with open(root / "sparse.txt", "wb") as f:        # 50 GB that take no disk space
        f.truncate(50 * 10**9)
    (root / "empty.txt").write_bytes(b"")
    w = World(root, root / "out", pristine)
    w.reset_out()
    return w


def snapshot(root: Path, skip: Path) -> dict[str, tuple]:
    """Kind, size, mtime and (for small regular files) the SHA-256 of everything under `root` but `skip`.
    Never follows a link and never opens a FIFO or reads the sparse file."""
    snap: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if d == skip or skip in d.parents:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = d / name
            if p == skip:
                continue
            s = os.lstat(p)
            digest = None
            if stat.S_ISREG(s.st_mode) and s.st_size < 1 << 20:
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(s.st_mode):
                digest = os.readlink(p)
            snap[str(p.relative_to(root))] = (stat.S_IFMT(s.st_mode), s.st_size, s.st_mtime_ns, digest)
    return snap


@dataclass
class Outcome:
    rc: int | None     # None: killed at the time limit
    out: bytes
    err: str


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_capped(args: list[str], cwd: Path) -> Outcome:
    """The real CLI as a child process: memory-capped, killed after TIME_LIMIT, stdout closed after a bound."""
    proc = subprocess.Popen([sys.executable, "-m", "charnn.cli", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, preexec_fn=_capped)
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read(1 << 20)), daemon=True)
    reader.start()
    timer = threading.Timer(TIME_LIMIT, proc.kill)
    timer.start()
    try:
        out = b""
        while len(out) < STDOUT_BOUND:
            chunk = proc.stdout.read1(STDOUT_BOUND - len(out))
            if not chunk:
                break
            out += chunk
        proc.stdout.close()                     # a reader that stops early, like `| head`
        proc.wait()
    finally:
        killed = not timer.is_alive() and proc.returncode == -9
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    return Outcome(None if killed else proc.returncode, out, (err[0] if err else b"").decode("utf-8", "replace"))


# --------------------------------------------------------------------------------------------------
# the property

FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                phases=[Phase.explicit, Phase.generate],      # no shrinking: each case costs a process
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


def check(world: World, tokens: list[Any]) -> None:
    args = [world.resolve(t) for t in tokens]
    world.reset_out()
    before = snapshot(world.root, world.out)
    res = run_capped(args, world.out)
    after = snapshot(world.root, world.out)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    where = f"charnn {' '.join(map(repr, args))} (replay: CHARNN_FUZZ_SEED={SEED}); stderr:\n{res.err[-3000:]}"
    assert res.rc is not None, f"no answer within {TIME_LIMIT:g} s: {where}"
    assert res.rc in (0, 2, 3), f"exit status {res.rc}: {where}"
    assert "Traceback" not in res.err, f"a traceback: {where}"
    if res.rc in (2, 3):
        assert res.err.strip().splitlines()[-1].startswith("charnn"), f"no one-line error: {where}"
    assert changed == [], f"changed outside the run folder {changed}: {where}"


# The cases the issue lists, always tried first (explicit examples), then the generated ones.
KNOWN = [
    ["train", "--data", P("loop"), "--out", P("out_new"), *TINY],
    ["train", "--data", P("fifo"), "--out", P("out_new"), *TINY],
    ["train", "--data", P("corpus"), "--out", P("out_new"), "--seed", "-1", *TINY],
    ["train", "--data", P("corpus"), "--out", P("out_new"), "--hidden-size", "100000"],
    ["sample", P("run"), "--length", str(10**12)],
    ["train", "--data", P("sparse"), "--out", P("out_new"), *TINY],
    ["train", "--config", P("dev_zero"), "--out", P("out_new")],
    ["eval", P("run"), "--data", P("dev_zero")],
    ["info", P("unreadable")],
    ["train", "--data", P("corpus"), "--out", P("out_new"), "--layers", str(10**30), *TINY],
    ["gradcheck", "--layers", str(10**9)],
]


def _with_examples(fn):
    for case in reversed(KNOWN):
        fn = example(tokens=case)(fn)
    return fn


@FUZZ
@seed(SEED)
@_with_examples
@given(tokens=argv())
def test_any_command_line_exits_0_2_or_3_without_traceback_hang_or_stray_write(world, tokens):
    check(world, tokens)


def test_the_fuzzer_reaches_every_command_and_option():
    """The strategy is built from the parser: every command and every option has values to draw."""
    cmds = subcommands()
    assert set(cmds) >= {"train", "sample", "eval", "info", "gradcheck", "experiment", "reproduce"}
    for name, parser in cmds.items():
        positionals, opts = options(parser)
        assert opts, name
        for a in [*positionals, *opts]:
            assert a.nargs == 0 or good_values(name, a), (name, a.dest)
        if name in LONG:
            assert [a for a in [*positionals, *opts] if bad_values(name, a)], name
    train_opts = {a.dest for a in options(cmds["train"])[1]}
    assert {"data", "hidden_size", "resume", "out", "config", "seed"} <= train_opts


def test_the_checks_catch_a_traceback_a_bad_status_a_hang_and_a_stray_write(world, monkeypatch):
    """The property fails for each of the things it claims to catch (the child process replaced by stand-ins)."""
    stray = world.root / "stray.txt"
    cases = {"a traceback": Outcome(2, b"", "Traceback (most recent call last):\nValueError\ncharnn: error: x"),
             "exit status 1": Outcome(1, b"", "charnn: error: x"),
             "no answer": Outcome(None, b"", ""),
             "no one-line error": Outcome(2, b"", "ValueError: x"),
             "changed outside": Outcome(0, b"", "")}
    for needle, outcome in cases.items():
        def fake(args: list[str], cwd: Path, outcome: Outcome = outcome, needle: str = needle) -> Outcome:
            if needle == "changed outside":
                stray.write_text("written by the command")
            return outcome
        monkeypatch.setattr(sys.modules[__name__], "run_capped", fake)
        with pytest.raises(AssertionError, match=needle):
            check(world, ["info", P("run")])
        stray.unlink(missing_ok=True)
    monkeypatch.undo()
    check(world, ["info", P("run")])                 # and the real command passes it
