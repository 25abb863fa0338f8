"""Hostile inputs through the real command line, round two: each is refused with one line and exit
status 2 (or handled), with nothing on disk created, changed or removed but the run's own outputs.

Covers: a symbolic-link loop, a FIFO and a device as --data; negative seeds; sizes that cannot fit
in memory (the budget of charnn.nn.budget, and its estimate against a tracemalloc measurement);
huge --length / --num-samples streaming from the first character and stopping on a closed pipe or
Ctrl-C; --overwrite and temp-file cleanup that never touch an input; a resume with nothing to do
that writes nothing; a UTF-16 file's hint; a one-symbol corpus; the closing hint and stop line;
and the per-array digests of checkpoints (a flipped byte is refused by name, older files load).
"""
from __future__ import annotations

import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from charnn.nn import budget
from charnn.train import checkpoint
from charnn.train.checkpoint import CheckpointError

from ckcraft import TINY, Proc, changes, cli, join_file, snapshot, split_file
from clihelp import charnn, write_corpus


def one_line(res, *needles: str) -> str:
    """Exit status 2, exactly one stderr line naming every needle, no traceback."""
    return Proc(res.rc, res.out, res.err).one_line_error(*needles)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("round2")
    corpus = write_corpus(root, 6_000)
    run = root / "run"
    res = charnn("train", "--data", corpus, "--out", run, "--max-steps", "3", *TINY)
    assert res.rc == 0, res.err
    return root


def fresh_run(tmp_path: Path, *extra: str) -> tuple[Path, Path]:
    corpus = write_corpus(tmp_path, 6_000)
    run = tmp_path / "run"
    res = charnn("train", "--data", corpus, "--out", run, "--max-steps", "3", *TINY, *extra)
    assert res.rc == 0, res.err
    return corpus, run


# --- paths that are not plain files -------------------------------------------------------------

def test_a_symlink_loop_as_data_is_refused_by_name(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    before = snapshot(tmp_path)
    line = one_line(charnn("train", "--data", tmp_path / "a", "--out", tmp_path / "out", *TINY), "loop", "a'")
    assert "symbolic link" in line
    assert changes(before, snapshot(tmp_path)) == []


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_device_as_data_is_refused_at_once_not_read(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    before = snapshot(tmp_path)
    r = cli("train", "--data", path, "--out", tmp_path / "out", *TINY, timeout=60)   # a hang fails here
    r.one_line_error("not a regular file", str(path))
    assert changes(before, snapshot(tmp_path)) == []


# --- values out of range ------------------------------------------------------------------------

def test_a_negative_seed_is_refused_by_flag_and_by_toml(tmp_path):
    corpus = write_corpus(tmp_path, 6_000)
    toml = tmp_path / "neg.toml"
    toml.write_text("seed = -1\n")
    before = snapshot(tmp_path)
    one_line(charnn("train", "--data", corpus, "--out", tmp_path / "a", "--seed", "-1", *TINY), "seed", ">= 0")
    one_line(charnn("train", "--data", corpus, "--out", tmp_path / "b", "--config", toml, *TINY), "seed", ">= 0")
    assert changes(before, snapshot(tmp_path)) == []


def test_sample_and_gradcheck_refuse_a_negative_seed(world):
    one_line(charnn("sample", world / "run", "--seed", "-1", "--length", "5"), "seed", ">= 0")
    one_line(charnn("gradcheck", "--seed", "-5"), "seed", ">= 0")


# --- the memory budget --------------------------------------------------------------------------

def test_a_model_too_big_for_memory_is_refused_with_the_figures(tmp_path):
    corpus = write_corpus(tmp_path, 6_000)
    before = snapshot(tmp_path)
    line = one_line(charnn("train", "--data", corpus, "--out", tmp_path / "out", "--hidden-size", "100000",
                           "--no-progress"), "hidden size 100000", "available", "--hidden-size")
    need = float(line.split("needs about ")[1].split(" GiB")[0])
    assert need > 74.5          # W alone is 100000² float32 numbers: 37.3 GiB, and Adam keeps two more
    assert changes(before, snapshot(tmp_path)) == []


def test_under_an_address_space_limit_the_budget_refuses_what_the_limit_cannot_hold(tmp_path):
    """A child process under ulimit -v 3 GiB: a 20000-unit model (~14 GiB) is refused before allocating."""
    corpus = write_corpus(tmp_path, 6_000)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    r = cli("train", "--data", corpus, "--out", tmp_path / "out", "--hidden-size", "20000", "--no-progress",
            preexec_fn=cap, timeout=120)
    line = r.one_line_error("needs about", "available")
    have = line.split("only ")[1].split(" is available")[0]
    assert have.endswith("GiB") and float(have.split()[0]) < 3.0    # the limit, not the machine's memory
    assert not (tmp_path / "out").exists()


def test_sample_eval_gradcheck_and_experiments_check_the_budget(world, tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "available_bytes", lambda: 10 * 1024 * 1024)    # 10 MiB left
    one_line(charnn("sample", world / "run", "--length", "5"), "sampling", "available")
    one_line(charnn("eval", world / "run"), "evaluating", "available")
    one_line(charnn("gradcheck"), "gradient check", "available")
    one_line(charnn("experiment", "overfit", "--quick", "--out", tmp_path / "ex", "--no-progress"),
             "experiments", "available")
    assert not (tmp_path / "ex").exists()


@pytest.mark.parametrize("kw", [dict(cell="rnn", hidden_size=64, batch_size=8, max_len=32),
                                dict(cell="lstm", hidden_size=96, layers=2, batch_size=8, max_len=25),
                                dict(cell="gru", hidden_size=256, batch_size=4, max_len=20),
                                dict(cell="rnn", hidden_size=256, batch_size=1, max_len=100),   # validation's chunk is the peak
                                dict(cell="rnn", hidden_size=768, batch_size=1, max_len=8, chars=3_000)])   # the parameters are
def test_the_training_estimate_is_within_a_factor_of_the_measured_peak(tmp_path, kw):
    """tracemalloc sees NumPy's allocations: the peak of a short run (steps, validation, checkpoints)."""
    from charnn.data import default_corpus_path
    from charnn.train import train
    from charnn.train.config import Config

    kw = dict(kw)
    text = default_corpus_path().read_text(encoding="utf-8")[:kw.pop("chars", 20_000)]
    opts = dict(max_steps=3, sample_length=10, dtype="float32")
    # a first tiny run imports what the runs use, so the measured peak is the run's arrays, not module objects
    train(Config(hidden_size=8, batch_size=2, max_len=5, cell=kw["cell"], **opts), tmp_path / "warm",
          text=text, progress=False, log=None)
    cfg = Config(**kw, **opts)
    tracemalloc.start()
    try:
        res = train(cfg, tmp_path / "run", text=text, progress=False, log=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    est = budget.training_bytes(vocab_size=len(res.vocab), hidden_size=cfg.hidden_size, batch_size=cfg.batch_size,
                                max_len=cfg.max_len, cell=cfg.cell, layers=cfg.layers, dtype=cfg.dtype) - budget.FIXED
    # never far below the real peak (the budget must not let through what cannot fit), at most twice it
    assert 0.5 * est < peak < 1.25 * est, (peak, est)


# --- generation streams and stops cleanly -------------------------------------------------------

@pytest.mark.parametrize("flags", [["--length", str(10**12)], ["--num-samples", str(10**8), "--length", "50"]])
def test_huge_samples_print_at_once_and_a_closed_pipe_ends_them_quietly(world, flags):
    p = subprocess.Popen([sys.executable, "-m", "charnn.cli", "sample", world / "run", *flags],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        head = p.stdout.read(200)            # blocks until output arrives: a run that buffers all never gets here
        p.stdout.close()                     # the reader goes away, like `| head`
        rc = p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    err = p.stderr.read().decode()
    assert len(head) == 200 and (head.startswith(b"ROMEO:") or head.startswith(b"--- sample 1/"))
    assert rc == 0 and "Traceback" not in err, err


def test_ctrl_c_stops_a_huge_sample_with_one_line_and_status_130(world):
    p = subprocess.Popen([sys.executable, "-m", "charnn.cli", "sample", world / "run", "--length", str(10**12)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert len(p.stdout.read(100)) == 100        # it is streaming
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    lines = err.decode().strip().splitlines()
    assert p.returncode == 130 and lines == ["charnn: interrupted"], err
    assert out.endswith(b"\n")


def test_num_samples_in_groups_gives_the_one_batch_text_for_small_counts(world):
    from charnn import sample

    res = charnn("sample", world / "run", "--num-samples", "3", "--length", "40", "--seed", "7")
    assert res.rc == 0, res.err
    ck = checkpoint.load(checkpoint.resolve(world / "run"))
    import numpy as np

    texts = sample.generate_text(ck.model_params, ck.vocab, ck.config.prompt, 40, num_samples=3,
                                 rng=np.random.default_rng(7), temperature=ck.config.temperature)
    want = "".join(f"--- sample {i + 1}/3 ---\n{ck.config.prompt}{t}\n" for i, t in enumerate(texts))
    assert res.out == want
    assert sample.group_size(3, 40) == 3 and sample.group_size(10**8, 300) == 64 and sample.group_size(2, 10**12) == 1


# --- inputs are never outputs -------------------------------------------------------------------

def test_overwrite_never_deletes_the_corpus_it_trains_on(tmp_path):
    corpus, run = fresh_run(tmp_path)
    (run / "samples.txt").write_text(corpus.read_text())       # the corpus now lives in the run folder
    before = snapshot(tmp_path)
    one_line(charnn("train", "--overwrite", "--out", run, "--data", run / "samples.txt", *TINY),
             "--overwrite", str((run / "samples.txt").resolve()), "move it out")
    assert changes(before, snapshot(tmp_path)) == []


def test_overwrite_never_deletes_the_config_file_it_reads(tmp_path):
    corpus, run = fresh_run(tmp_path)
    toml = run / "checkpoints" / "mine.toml"                    # overwrite removes checkpoints/ as a whole
    toml.write_text("hidden_size = 8\n")
    before = snapshot(tmp_path)
    one_line(charnn("train", "--overwrite", "--out", run, "--data", corpus, "--config", toml, *TINY),
             str(toml.resolve()), "reads as input")
    assert changes(before, snapshot(tmp_path)) == []


def test_temp_cleanup_removes_half_written_files_but_never_an_input(tmp_path):
    corpus, run = fresh_run(tmp_path)
    stale = [run / ".config.json.4242.0123abcd.tmp", run / "checkpoints" / ".last.safetensors.4242.0123abcd.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    res = charnn("train", "--resume", run, "--max-steps", "4", "--no-progress")
    assert res.rc == 0, res.err
    assert not any(p.exists() for p in stale)
    # a corpus whose name looks like a temp file, in the run folder, is read and kept
    odd = run / ".tiny.txt.77.89abcdef.tmp"
    odd.write_text(corpus.read_text())
    res = charnn("train", "--overwrite", "--out", run, "--data", odd, *TINY, "--max-steps", "2")
    assert res.rc == 0, res.err
    assert odd.read_text() == corpus.read_text()


def test_a_resume_with_nothing_to_do_writes_nothing(tmp_path):
    _, run = fresh_run(tmp_path)
    before = snapshot(run)
    res = charnn("train", "--resume", run, "--epochs", "100000", "--no-progress")
    assert res.rc == 0 and "already finished at step 3" in res.out and "max-steps 3" in res.out, res.out
    assert "nothing written" in res.out and "resuming" not in res.out
    assert changes(before, snapshot(run)) == []
    assert json.loads((run / "config.json").read_text())["config"]["epochs"] == 5


# --- text and messages --------------------------------------------------------------------------

def test_a_utf16_file_gets_the_encoding_hint_and_trains_with_it(tmp_path):
    text = write_corpus(tmp_path, 6_000).read_text()
    f = tmp_path / "u16.txt"
    f.write_text(text, encoding="utf-16")                       # with a byte-order mark
    before = snapshot(tmp_path)
    one_line(charnn("train", "--data", f, "--out", tmp_path / "a", *TINY), "UTF-16", "--encoding utf-16")
    assert changes(before, snapshot(tmp_path)) == []
    res = charnn("train", "--data", f, "--encoding", "utf-16", "--out", tmp_path / "b", *TINY, "--max-steps", "2")
    assert res.rc == 0, res.err


def test_eval_and_experiments_take_the_encoding_their_hint_names(world, tmp_path):
    text = (world / "tiny.txt").read_text()[:3000]
    (tmp_path / "u8.txt").write_text(text, encoding="utf-8")
    (tmp_path / "u16.txt").write_text(text, encoding="utf-16")
    one_line(charnn("eval", world / "run", "--data", tmp_path / "u16.txt"), "--encoding utf-16")
    a = charnn("eval", world / "run", "--data", tmp_path / "u16.txt", "--encoding", "utf-16", "--json")
    b = charnn("eval", world / "run", "--data", tmp_path / "u8.txt", "--json")
    assert a.rc == 0 and b.rc == 0, a.err + b.err
    assert json.loads(a.out)["nats_per_char"] == json.loads(b.out)["nats_per_char"]
    before = snapshot(tmp_path)
    one_line(charnn("experiment", "overfit", "--quick", "--data", tmp_path / "u16.txt", "--out", tmp_path / "ex",
                    "--no-progress"), "--encoding utf-16")
    assert changes(before, snapshot(tmp_path)) == []       # the experiments' folder is not made either


def test_a_corpus_of_one_distinct_character_is_refused(tmp_path):
    f = tmp_path / "one.txt"
    f.write_text("a" * 5_000)
    before = snapshot(tmp_path)
    one_line(charnn("train", "--data", f, "--out", tmp_path / "out", *TINY), "one distinct character", "'a'")
    assert changes(before, snapshot(tmp_path)) == []


def test_eval_never_prints_a_negative_zero():
    from charnn.apps.evaluate import EvalResult

    r = EvalResult(nats_per_char=-0.0, bits_per_char=-0.0, perplexity=1.0, chars=9, uniform_nats_per_char=0.0,
                   unigram_nats_per_char=-0.0, vocab_size=1, data="x")
    assert "-0.0000" not in r.format()


def test_the_closing_hint_is_a_command_a_shell_accepts_and_the_stop_line_says_what_happened(tmp_path):
    corpus = write_corpus(tmp_path, 6_000)
    run = tmp_path / "my run"
    res = charnn("train", "--data", corpus, "--out", run, "--prompt", "Zq\u20ac \"x\"", "--max-steps", "3", *TINY)
    assert res.rc == 0, res.err
    hint = [line for line in res.out.splitlines() if line.startswith("sample from it: ")][0]
    assert "\\u20ac" not in hint and "\u20ac" in hint
    assert shlex.split(hint[len("sample from it: "):]) == ["charnn", "sample", str(run), "--prompt", "Zq\u20ac \"x\"",
                                                           "--length", "300"]
    assert "stopped at step 3 (max-steps 3) in epoch 1/5" in res.out and "epoch 0/5" not in res.out


# --- checkpoint digests -------------------------------------------------------------------------

def test_every_checkpoint_records_a_digest_of_each_array(world):
    raw = (world / "run" / "checkpoints" / "last.safetensors").read_bytes()
    header, _ = split_file(raw)
    digests = json.loads(header["__metadata__"]["digests"])
    assert set(digests) == set(header) - {"__metadata__"} and all(len(d) == 64 for d in digests.values())


def test_a_flipped_data_byte_is_refused_by_the_cli_naming_its_array(world, tmp_path):
    raw = bytearray((world / "run" / "checkpoints" / "last.safetensors").read_bytes())
    header, data = split_file(bytes(raw))
    start = len(raw) - len(data)
    s, e = header["param.V"]["data_offsets"]
    raw[start + (s + e) // 2] ^= 0x01
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(raw))
    one_line(charnn("sample", bad, "--length", "5"), "'param.V'", "damaged", "another checkpoint")
    one_line(charnn("eval", bad), "'param.V'")


def test_a_checkpoint_written_before_digests_still_loads(world, tmp_path):
    raw = (world / "run" / "checkpoints" / "last.safetensors").read_bytes()
    header, data = split_file(raw)
    del header["__metadata__"]["digests"]
    old = tmp_path / "old.safetensors"
    old.write_bytes(join_file(header, data))
    res = charnn("sample", old, "--length", "20", "--seed", "1")
    assert res.rc == 0 and res.out == charnn("sample", world / "run" / "checkpoints" / "last.safetensors",
                                             "--length", "20", "--seed", "1").out


def test_digests_that_do_not_list_exactly_the_arrays_are_refused(world, tmp_path):
    raw = (world / "run" / "checkpoints" / "last.safetensors").read_bytes()
    header, data = split_file(raw)
    digests = json.loads(header["__metadata__"]["digests"])
    digests.pop("param.W")
    header["__metadata__"]["digests"] = json.dumps(digests)
    p = tmp_path / "short.safetensors"
    p.write_bytes(join_file(header, data))
    with pytest.raises(CheckpointError, match="digests"):
        checkpoint.load(p)
