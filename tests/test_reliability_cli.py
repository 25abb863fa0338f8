"""Every bad input through the real command line (a child process each): exit status 2, exactly one
line on stderr naming the problem, no traceback, and not one file created, changed or removed.

The refusals run as child processes in parallel (they are independent), then each case is checked
on its own. The same module shows the ways out the messages offer: --encoding, --bytes, --max-vocab.
"""
from __future__ import annotations

import json
import math
import shutil
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from charnn.train import checkpoint
from charnn.data.vocab import Vocab

from ckcraft import TINY, Proc, changes, cli, join_file, meta_of, snapshot, split_file, with_meta
from clihelp import charnn, write_corpus


@dataclass
class World:
    root: Path
    corpus: Path
    run: Path
    good: bytes          # the run's last checkpoint, as bytes

    def f(self, name: str) -> Path:
        return self.root / "files" / name

    def out(self, case: str) -> Path:
        """An output folder a refused command must not create."""
        return self.root / "never" / case


def _make_world(root: Path) -> World:
    files = root / "files"
    files.mkdir(parents=True)
    corpus = write_corpus(files, 6_000)
    run = root / "run"
    res = charnn("train", "--data", corpus, "--out", run, "--max-steps", "6", "--eval-every", "3", *TINY)
    assert res.rc == 0, res.err
    good = (run / "checkpoints" / "last.safetensors").read_bytes()
    text = corpus.read_text(encoding="utf-8")
    (files / "other.txt").write_text(text[:5_000], encoding="utf-8")
    (files / "empty.txt").write_bytes(b"")
    (files / "notext").mkdir()
    (files / "notext" / "readme.md").write_text("no .txt here", encoding="utf-8")
    (files / "short.txt").write_text(text[:50], encoding="utf-8")
    (files / "valshort.txt").write_text(text[:150], encoding="utf-8")
    (files / "bad_utf8.txt").write_bytes(b"hello, world \xff\xfe and more text " * 20)
    (files / "books").mkdir()
    (files / "books" / "a.txt").write_text(text[:3000], encoding="utf-8")
    (files / "books" / "b.txt").write_bytes(text[:100].encode() + b"\xc3(" + b" rest" * 50)
    (files / "nul.txt").write_bytes(b"abc\x00def ghi " * 200)
    (files / "odd16.txt").write_bytes("some text".encode("utf-16-le") + b"!")
    (files / "huge_vocab.txt").write_text("".join(chr(0x4E00 + i) for i in range(10_500)) * 2, encoding="utf-8")
    (files / "one.txt").write_text(text[0], encoding="utf-8")
    (files / "unknown_chars.txt").write_text("naïve ∑ text", encoding="utf-8")
    toml = {"malformed": "hidden_size = \n", "unknown_key": "hiden_size = 3\n",
            "wrong_type": 'hidden_size = "big"\n', "nan_lr": "lr = nan\n", "inf_epochs": "epochs = inf\n",
            "bad_encoding": 'encoding = "klingon"\n', "not_utf8": None}
    for name, body in toml.items():
        p = files / f"{name}.toml"
        p.write_bytes(b"lr = \xff\n" if body is None else body.encode())
    (files / "a_file").write_text("just a file")
    # hand-made checkpoints, each broken in one way
    header, data = split_file(good)
    meta = meta_of(good)
    cfg = meta["config"]
    no_w = {k: v for k, v in header.items() if k != "param.W"}
    crafted = {
        "truncated": good[: len(good) // 2],
        "cut_header": good[:20],
        "not_safetensors": b"definitely not a checkpoint, just some text",
        "empty": b"",
        "no_metadata": join_file({k: v for k, v in header.items() if k != "__metadata__"}, data),
        "foreign": with_meta(good, format="other.tool"),
        "newer": with_meta(good, format_version=checkpoint.FORMAT_VERSION + 1),
        "bad_version": with_meta(good, format_version="one"),
        "no_step": join_file({**header, "__metadata__": {k: v for k, v in header["__metadata__"].items()
                                                         if k != "step"}}, data),
        "wrong_shape": with_meta(good, config={**cfg, "hidden_size": 9}),
        "wrong_dtype": with_meta(good, config={**cfg, "dtype": "float32"}),
        "missing_array": join_file(no_w, data),
        "huge_header": struct.pack("<Q", 2**62) + b"{}",
        "nested_json": struct.pack("<Q", 200_000) + b"[" * 100_000 + b"]" * 100_000,
        "bad_config": with_meta(good, config={**cfg, "lr": -1.0}),
        "bad_vocab": with_meta(good, vocab={"codepoints": [-5, 2**40]}),
        "best_not_number": with_meta(good, best_val_loss="low"),
        "bad_rng": with_meta(good, rng={"bit_generator": "PCG64", "state": "nope"}),
        "bad_unigram": with_meta(good, unigram=[1, 2]),
    }
    (root / "ck").mkdir()
    for name, raw in crafted.items():
        (root / "ck" / f"{name}.safetensors").write_bytes(raw)
    for name in ("truncated", "newer", "wrong_shape"):      # run folders whose last checkpoint is damaged
        ck = root / "damaged" / name / "checkpoints"
        ck.mkdir(parents=True)
        (ck / "last.safetensors").write_bytes(crafted[name])
    (root / "norun").mkdir()
    (root / "cwd").mkdir()       # the children's working folder: a default runs/ folder would show up here
    return World(root, corpus, run, good)


Build = Callable[[World, str], list]
CK = lambda name: lambda w, c: ["info", w.root / "ck" / f"{name}.safetensors"]  # noqa: E731


def T(*flags: Any, data: str | None = "corpus") -> Build:
    """`charnn train` on a named corpus file with extra flags, into a folder that must not appear."""
    def build(w: World, case: str) -> list:
        d = [] if data is None else ["--data", w.corpus if data == "corpus" else w.f(data)]
        return ["train", *d, "--out", w.out(case), *TINY, "--max-steps", "2", *flags]
    return build


def S(*flags: Any) -> Build:
    return lambda w, c: ["sample", w.run, "--length", "5", *flags]


# id -> (command builder, words the one error line must contain)
CASES: dict[str, tuple[Build, tuple[str, ...]]] = {
    # --- the corpus -----------------------------------------------------------------------------
    "corpus-missing": (T(data="nope.txt"), ("not found", "nope.txt")),
    "corpus-empty": (T(data="empty.txt"), ("empty",)),
    "corpus-folder-without-txt": (T(data="notext"), ("no .txt files",)),
    "corpus-shorter-than-max-len": (T("--max-len", "100", "--batch-size", "1", data="short.txt"),
                                    ("too few", "max-len 100")),
    "corpus-val-split-too-short": (T("--train-fraction", "0.995", data="valshort.txt"),
                                   ("validation split", "--train-fraction")),
    "corpus-invalid-utf8": (T(data="bad_utf8.txt"), ("bad_utf8.txt", "offset 13", "--encoding", "--bytes")),
    "corpus-invalid-utf8-in-folder": (T(data="books"), ("b.txt", "offset 100", "--bytes")),
    "corpus-invalid-utf16": (T("--encoding", "utf-16-le", data="odd16.txt"), ("utf-16-le", "offset 18")),
    "corpus-binary-nul": (T(data="nul.txt"), ("binary", "NUL byte at offset 3", "--bytes")),
    "corpus-huge-vocabulary": (T(data="huge_vocab.txt"), ("10,500 distinct", "--max-vocab")),
    "corpus-max-vocab-too-small": (T("--max-vocab", "2", data="corpus"), ("distinct", "--max-vocab")),
    "corpus-unknown-encoding": (T("--encoding", "klingon"), ("encoding", "klingon")),
    "corpus-not-a-text-encoding": (T("--encoding", "base64"), ("encoding", "base64")),
    # --- hyperparameters ------------------------------------------------------------------------
    "lr-zero": (T("--lr", "0"), ("lr",)),
    "lr-negative": (T("--lr", "-0.1"), ("lr",)),
    "lr-nan": (T("--lr", "nan"), ("lr",)),
    "lr-inf": (T("--lr", "inf"), ("lr",)),
    "lr-not-a-number": (T("--lr", "fast"), ("--lr", "fast")),
    "hidden-size-zero": (T("--hidden-size", "0"), ("hidden-size",)),
    "hidden-size-negative": (T("--hidden-size", "-8"), ("hidden-size",)),
    "hidden-size-inf": (T("--hidden-size", "inf"), ("--hidden-size",)),
    "hidden-size-fraction": (T("--hidden-size", "8.5"), ("--hidden-size",)),
    "max-len-zero": (T("--max-len", "0"), ("max-len",)),
    "max-len-nan": (T("--max-len", "nan"), ("--max-len",)),
    "batch-size-zero": (T("--batch-size", "0"), ("batch-size",)),
    "batch-size-negative": (T("--batch-size", "-2"), ("batch-size",)),
    "epochs-zero": (T("--epochs", "0"), ("epochs",)),
    "epochs-inf": (T("--epochs", "inf"), ("--epochs",)),
    "train-fraction-zero": (T("--train-fraction", "0"), ("train-fraction",)),
    "train-fraction-one": (T("--train-fraction", "1"), ("train-fraction",)),
    "train-fraction-negative": (T("--train-fraction", "-0.5"), ("train-fraction",)),
    "train-fraction-nan": (T("--train-fraction", "nan"), ("train-fraction",)),
    "grad-clip-zero": (T("--grad-clip", "0"), ("grad-clip",)),
    "grad-clip-negative": (T("--grad-clip", "-5"), ("grad-clip",)),
    "grad-clip-inf": (T("--grad-clip", "inf"), ("grad-clip",)),
    "beta1-one": (T("--beta1", "1"), ("beta1",)),
    "beta1-negative": (T("--beta1", "-0.1"), ("beta1",)),
    "beta2-one": (T("--beta2", "1.0"), ("beta2",)),
    "beta2-nan": (T("--beta2", "nan"), ("beta2",)),
    "eps-zero": (T("--eps", "0"), ("eps",)),
    "momentum-one": (T("--optimizer", "sgd", "--momentum", "1"), ("momentum",)),
    "optimizer-unknown": (T("--optimizer", "rmsprop"), ("optimizer", "rmsprop")),
    "dtype-unknown": (T("--dtype", "float16"), ("dtype", "float16")),
    "max-vocab-zero": (T("--max-vocab", "0"), ("max-vocab",)),
    "toml-malformed": (lambda w, c: ["train", "--config", w.f("malformed.toml"), "--out", w.out(c)], ("TOML",)),
    "toml-unknown-key": (lambda w, c: ["train", "--config", w.f("unknown_key.toml"), "--out", w.out(c)],
                         ("hiden_size",)),
    "toml-wrong-type": (lambda w, c: ["train", "--config", w.f("wrong_type.toml"), "--out", w.out(c)],
                        ("hidden_size", "big")),
    "toml-nan-lr": (lambda w, c: ["train", "--config", w.f("nan_lr.toml"), "--out", w.out(c)], ("lr",)),
    "toml-inf-epochs": (lambda w, c: ["train", "--config", w.f("inf_epochs.toml"), "--out", w.out(c)],
                        ("epochs",)),
    "toml-unknown-encoding": (lambda w, c: ["train", "--config", w.f("bad_encoding.toml"), "--out", w.out(c)],
                              ("klingon",)),
    "toml-not-utf8": (lambda w, c: ["train", "--config", w.f("not_utf8.toml"), "--out", w.out(c)], ("TOML",)),
    "toml-missing": (lambda w, c: ["train", "--config", w.f("none.toml"), "--out", w.out(c)], ("not found",)),
    # --- sampling -------------------------------------------------------------------------------
    "sample-temperature-zero": (S("--temperature", "0"), ("temperature", "--greedy")),
    "sample-temperature-negative": (S("--temperature", "-1"), ("temperature",)),
    "sample-temperature-nan": (S("--temperature", "nan"), ("temperature",)),
    "sample-temperature-inf": (S("--temperature", "inf"), ("temperature",)),
    "sample-length-negative": (S("--length", "-5"), ("length",)),
    "sample-top-k-zero": (S("--top-k", "0"), ("top-k",)),
    "sample-top-k-negative": (S("--top-k", "-3"), ("top-k",)),
    "sample-num-samples-zero": (S("--num-samples", "0"), ("num-samples",)),
    "sample-prompt-outside-vocab": (S("--prompt", "Zebra€ and ✓"), ("vocabulary", "'€'", "'✓'")),
    # --- checkpoints ----------------------------------------------------------------------------
    "ckpt-missing": (lambda w, c: ["sample", w.root / "ck" / "none.safetensors"], ("not found",)),
    "ckpt-folder-without-checkpoints": (lambda w, c: ["eval", w.root / "norun"], ("without checkpoints",)),
    "ckpt-truncated-info": (CK("truncated"), ("truncated",)),
    "ckpt-truncated-sample": (lambda w, c: ["sample", w.root / "ck" / "truncated.safetensors"], ("truncated",)),
    "ckpt-truncated-eval": (lambda w, c: ["eval", w.root / "ck" / "truncated.safetensors"], ("truncated",)),
    "ckpt-cut-inside-header": (CK("cut_header"), ("truncated",)),
    "ckpt-not-safetensors": (CK("not_safetensors"), ("not a safetensors",)),
    "ckpt-empty-file": (CK("empty"), ("not a safetensors",)),
    "ckpt-metadata-missing": (CK("no_metadata"), ("not a charnn checkpoint",)),
    "ckpt-foreign-metadata": (CK("foreign"), ("not a charnn checkpoint", "other.tool")),
    "ckpt-newer-format-version": (CK("newer"), ("newer charnn", "upgrade")),
    "ckpt-bad-format-version": (CK("bad_version"), ("format version",)),
    "ckpt-metadata-lacks-step": (CK("no_step"), ("lacks 'step'",)),
    "ckpt-wrong-shape": (CK("wrong_shape"), ("shape", "hidden size 9")),
    "ckpt-wrong-dtype": (CK("wrong_dtype"), ("dtype", "F64", "F32")),
    "ckpt-missing-array": (CK("missing_array"), ("param.W",)),
    "ckpt-huge-header-length": (CK("huge_header"), ("header length",)),
    "ckpt-deeply-nested-header": (CK("nested_json"), ("not JSON",)),
    "ckpt-invalid-config": (CK("bad_config"), ("configuration", "lr")),
    "ckpt-invalid-vocabulary": (CK("bad_vocab"), ("vocabulary",)),
    "ckpt-best-loss-not-a-number": (CK("best_not_number"), ("best_val_loss",)),
    "ckpt-bad-rng-state": (CK("bad_rng"), ("random-generator",)),
    "ckpt-bad-unigram": (CK("bad_unigram"), ("unigram",)),
    "eval-vocabulary-mismatch": (lambda w, c: ["eval", w.run, "--data", w.f("unknown_chars.txt")],
                                 ("vocabulary", "'∑'")),
    "eval-data-too-short": (lambda w, c: ["eval", w.run, "--data", w.f("one.txt")], ("at least 2 characters",)),
    "eval-data-empty": (lambda w, c: ["eval", w.run, "--data", w.f("empty.txt")], ("empty",)),
    "eval-data-invalid-utf8": (lambda w, c: ["eval", w.run, "--data", w.f("bad_utf8.txt")], ("offset 13",)),
    "resume-vocabulary-mismatch": (lambda w, c: ["train", "--resume", w.run, "--data", w.f("other.txt")],
                                   ("not the one this run was trained on", "--data")),
    "resume-missing-folder": (lambda w, c: ["train", "--resume", w.root / "nope"], ("not found",)),
    "resume-folder-without-checkpoint": (lambda w, c: ["train", "--resume", w.root / "norun"],
                                         ("no checkpoint",)),
    "resume-truncated-checkpoint": (lambda w, c: ["train", "--resume", w.root / "damaged" / "truncated"],
                                    ("truncated",)),
    "resume-newer-checkpoint": (lambda w, c: ["train", "--resume", w.root / "damaged" / "newer"], ("newer",)),
    "resume-wrong-shape": (lambda w, c: ["train", "--resume", w.root / "damaged" / "wrong_shape"], ("shape",)),
    "resume-changes-hidden-size": (lambda w, c: ["train", "--resume", w.run, "--hidden-size", "32"],
                                   ("hidden-size", "resum")),
    "resume-with-out": (lambda w, c: ["train", "--resume", w.run, "--out", w.out(c)], ("--resume", "--out")),
    # --- the output folder ----------------------------------------------------------------------
    "out-holds-another-run": (lambda w, c: ["train", "--data", w.corpus, "--out", w.run, *TINY],
                              ("not empty", "--overwrite", "--resume")),
    "out-is-a-file": (lambda w, c: ["train", "--data", w.corpus, "--out", w.f("a_file"), *TINY],
                      ("not a folder",)),
    "out-under-a-file": (lambda w, c: ["train", "--data", w.corpus, "--out", w.f("a_file") / "run", *TINY,
                                       "--max-steps", "1"], ("cannot create output folder",)),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return _make_world(tmp_path_factory.mktemp("reliability"))


@pytest.fixture(scope="module")
def refused(world, tmp_path_factory) -> dict[str, tuple[Proc, list[str]]]:
    """Run every case (in parallel child processes), each in its own copy of the world so that what
    changed on disk is that case's doing; return each case's result and the paths it changed."""
    base = tmp_path_factory.mktemp("reliability_cases")

    def run(case: str) -> tuple[Proc, list[str]]:
        root = base / case
        shutil.copytree(world.root, root, symlinks=True)     # copy2: contents and mtimes as they were
        w = World(root, root / world.corpus.relative_to(world.root), root / world.run.relative_to(world.root),
                  world.good)
        before = snapshot(root)
        proc = cli(*CASES[case][0](w, case), cwd=root / "cwd")
        return proc, changes(before, snapshot(root))

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(CASES, pool.map(run, CASES)))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(refused, case):
    proc, changed = refused[case]
    proc.one_line_error(*CASES[case][1])
    assert changed == [], f"{case} changed {changed}"   # no output folder, no checkpoint touched, no runs/ folder


def test_empty_prompt_is_allowed_and_says_what_it_starts_from(world):
    r = cli("sample", world.run, "--prompt", "", "--length", "20", "--seed", "1")
    assert r.rc == 0 and len(r.out) == 21
    assert "empty prompt" in r.err and "zero hidden state" in r.err and "Traceback" not in r.err


# --------------------------------------------------------------------------------------------------
# the ways out the messages offer

def test_encoding_flag_reads_other_encodings(tmp_path):
    text = "Ça va? Très bien, merci. Où est la gare? " * 40
    path = tmp_path / "fr.txt"
    path.write_bytes(text.encode("latin-1"))
    cli("train", "--data", path, "--out", tmp_path / "no", *TINY).one_line_error("offset 0", "--encoding")
    r = cli("train", "--data", path, "--encoding", "latin-1", "--out", tmp_path / "r", *TINY, "--max-steps", "3")
    assert r.rc == 0, r.err
    ck = checkpoint.load(tmp_path / "r" / "checkpoints" / "last.safetensors")
    assert ck.config.encoding == "latin-1" and ck.vocab == Vocab.from_text(text)
    ev = cli("eval", tmp_path / "r", "--json")                        # eval reads the corpus the same way
    assert ev.rc == 0 and json.loads(ev.out)["chars"] > 0


def test_bytes_mode_models_raw_bytes(tmp_path):
    rng = np.random.default_rng(0)
    raw = bytes(rng.integers(0, 256, size=3000, dtype=np.uint8)) + "naïve ✓".encode() * 50
    path = tmp_path / "blob.txt"
    path.write_bytes(raw)
    out = tmp_path / "r"
    r = cli("train", "--data", path, "--bytes", "--out", out, *TINY, "--max-steps", "3", "--prompt", "na")
    assert r.rc == 0, r.err
    ck = checkpoint.load(out / "checkpoints" / "last.safetensors")
    assert ck.config.byte_level and len(ck.vocab) == len(set(raw)) <= 256
    assert ck.corpus["chars"] == len(raw)                            # one symbol per byte
    s = cli("sample", out, "--prompt", "✓", "--length", "30", "--seed", "3")   # prompt = its UTF-8 bytes
    assert s.rc == 0, s.err
    ev = cli("eval", out, "--data", path, "--json")
    assert ev.rc == 0 and json.loads(ev.out)["chars"] == len(raw) - 1


def test_bytes_mode_sample_writes_the_raw_bytes(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "b.txt"
    path.write_bytes(bytes(range(256)) * 8)
    out = tmp_path / "r"
    assert cli("train", "--data", path, "--bytes", "--out", out, *TINY, "--max-steps", "2").rc == 0
    r = subprocess.run([sys.executable, "-m", "charnn.cli", "sample", out, "--prompt", "AB", "--length", "40"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"AB") and len(r.stdout) == 2 + 40 + 1        # 40 raw bytes, then a newline


def test_max_vocab_lets_a_huge_vocabulary_through(tmp_path):
    path = tmp_path / "cjk.txt"
    path.write_text("".join(chr(0x4E00 + i) for i in range(10_500)) * 2, encoding="utf-8")
    r = cli("train", "--data", path, "--max-vocab", "20000", "--out", tmp_path / "r", *TINY, "--hidden-size", "2",
            "--max-steps", "1", "--sample-length", "0")
    assert r.rc == 0, r.err
    ck = checkpoint.load(tmp_path / "r" / "checkpoints" / "last.safetensors")
    assert len(ck.vocab) == 10_500 and ck.config.max_vocab == 20_000
    assert all(math.isfinite(float(np.abs(p).max())) for p in ck.params.values())


def test_overwrite_is_the_way_to_reuse_a_folder(world, tmp_path):
    out = tmp_path / "r"
    assert cli("train", "--data", world.corpus, "--out", out, *TINY, "--max-steps", "2").rc == 0
    before = snapshot(out)
    cli("train", "--data", world.corpus, "--out", out, *TINY, "--max-steps", "3").one_line_error("--overwrite")
    assert changes(before, snapshot(out)) == []
    r = cli("train", "--data", world.corpus, "--out", out, *TINY, "--max-steps", "3", "--overwrite")
    assert r.rc == 0 and checkpoint.load(out / "checkpoints" / "last.safetensors").step == 3


# --------------------------------------------------------------------------------------------------
# the README's counts are the tests' counts

def _groups() -> dict[str, int]:
    names = {"corpus": "corpus", "toml": "config file", "sample": "sampling", "ckpt": "checkpoint, eval and resume",
             "eval": "checkpoint, eval and resume", "resume": "checkpoint, eval and resume", "out": "output folder"}
    counts: dict[str, int] = {}
    for case in CASES:
        g = names.get(case.split("-")[0], "hyperparameter")
        counts[g] = counts.get(g, 0) + 1
    return counts


def _items(module: Any) -> int:
    """Test items a module collects (parametrized functions count once per parameter set)."""
    n = 0
    for name, fn in vars(module).items():
        if name.startswith("test_") and callable(fn):
            k = 1
            for mark in getattr(fn, "pytestmark", []):
                if mark.name == "parametrize":
                    k *= len(mark.args[1])
            n += k
    return n


def test_readme_states_the_counts_the_tests_try():
    import re

    import test_faults
    import test_fuzz_cli
    import test_properties
    import test_security
    import test_stops_and_resume

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8").split())
    section = readme[readme.index("## What charnn guarantees about your data and checkpoints"):]
    assert f"**{len(CASES)} bad inputs**" in section
    g = _groups()
    assert (f"({g['corpus']} corpus, {g['hyperparameter']} hyperparameter, {g['config file']} config file, "
            f"{g['sampling']} sampling, {g['checkpoint, eval and resume']} checkpoint, eval and resume, "
            f"{g['output folder']} output folder;") in section
    assert f"**{_items(test_faults)} fault-injection tests**" in section
    assert f"`tests/test_security.py` ({_items(test_security)} tests)" in section
    fuzz = test_security.FUZZ.max_examples * sum(name.startswith("test_fuzzed_") for name in vars(test_security))
    assert f"({fuzz} cases)" in section
    assert f"`tests/test_properties.py` ({_items(test_properties)} properties)" in section
    assert f"`tests/test_stops_and_resume.py` ({_items(test_stops_and_resume)} tests)" in section
    cases = len(test_fuzz_cli.KNOWN) + test_fuzz_cli.DEFAULT_EXAMPLES
    assert (f"**{cases} command lines** each time ({len(test_fuzz_cli.KNOWN)} known cases and "
            f"{test_fuzz_cli.DEFAULT_EXAMPLES} that hypothesis") in section
    assert "tests/pause_in_save.py" in section
