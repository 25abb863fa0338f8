"""`charnn sample`, `charnn eval` and `charnn info` on a trained run, through the real command line."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from charnn.train import checkpoint
from charnn.data import split
from charnn.data.vocab import Vocab

from clihelp import SMALL, assert_user_error, charnn, charnn_subprocess, metrics, write_corpus


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("use")
    corpus = write_corpus(folder)
    out = folder / "run"
    res = charnn("train", "--data", corpus, "--out", out, "--epochs", "1", "--eval-every", "50", *SMALL)
    assert res.rc == 0, res.err
    return out


def test_train_then_sample_through_the_installed_entry_point(run):
    proc = charnn_subprocess("sample", run, "--prompt", "ROMEO:", "--length", "50", "--seed", "3")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == charnn("sample", run, "--prompt", "ROMEO:", "--length", "50", "--seed", "3").out


def test_sample_prints_prompt_then_length_chars_and_is_deterministic(run):
    a = charnn("sample", run, "--prompt", "First:", "--length", "120", "--seed", "7", "--temperature", "0.8")
    b = charnn("sample", run, "--prompt", "First:", "--length", "120", "--seed", "7", "--temperature", "0.8")
    c = charnn("sample", run, "--prompt", "First:", "--length", "120", "--seed", "8", "--temperature", "0.8")
    assert a.rc == 0 and a.out == b.out and a.out != c.out
    assert a.out.startswith("First:") and len(a.out) == len("First:") + 120 + 1    # + print's newline


def test_sample_options(run):
    many = charnn("sample", run, "--prompt", "A", "--length", "30", "--num-samples", "3", "--top-k", "3")
    assert many.rc == 0 and many.out.count("--- sample ") == 3
    g1 = charnn("sample", run, "--prompt", "the ", "--length", "40", "--greedy", "--seed", "1")
    g2 = charnn("sample", run, "--prompt", "the ", "--length", "40", "--greedy", "--seed", "2")
    assert g1.rc == 0 and g1.out == g2.out                    # argmax ignores the seed
    ck = run / "checkpoints" / "last.safetensors"
    assert charnn("sample", ck, "--length", "10").out.startswith("ROMEO:")   # the run's prompt by default


def test_sample_empty_prompt_starts_from_zero_state(run):
    res = charnn("sample", run, "--prompt", "", "--length", "25")
    assert res.rc == 0 and len(res.out) == 26 and "zero hidden state" in res.err


@pytest.mark.parametrize("flags, needle", [
    (["--temperature", "0"], "temperature"), (["--temperature", "-1"], "temperature"),
    (["--temperature", "nan"], "temperature"), (["--temperature", "inf"], "temperature"),
    (["--length", "-5"], "length"), (["--top-k", "0"], "top-k"), (["--num-samples", "0"], "num-samples"),
    (["--prompt", "Zebra€"], "'€'"),
])
def test_sample_rejects(run, flags, needle):
    assert_user_error(charnn("sample", run, *flags), needle)


def test_sample_missing_checkpoint(tmp_path):
    assert_user_error(charnn("sample", tmp_path / "nothing"), "not found")
    assert_user_error(charnn("sample", tmp_path), "without checkpoints")


def test_eval_json_matches_the_best_validation_loss(run):
    res = charnn("eval", run, "--json")
    assert res.rc == 0, res.err
    r = json.loads(res.out)
    assert {"nats_per_char", "bits_per_char", "perplexity", "chars"} <= set(r)
    assert r["bits_per_char"] == pytest.approx(r["nats_per_char"] / math.log(2))
    assert r["perplexity"] == pytest.approx(math.exp(r["nats_per_char"]))
    # the same number the training loop recorded for its best checkpoint (whole val split, h carried)
    best = min(m["val_loss"] for m in metrics(run) if "val_loss" in m)
    assert r["nats_per_char"] == pytest.approx(best, rel=1e-12)
    text = Path(json.loads((run / "config.json").read_text())["corpus"]["path"]).read_text(encoding="utf-8")
    vocab = Vocab.from_text(text)
    _, val = split(vocab.encode(text), 0.9)
    assert r["chars"] == len(val) - 1
    assert r["uniform_nats_per_char"] == pytest.approx(math.log(len(vocab)))
    assert r["nats_per_char"] < r["unigram_nats_per_char"] < r["uniform_nats_per_char"]


def test_eval_text_report_and_given_data(run, tmp_path):
    res = charnn("eval", run)
    assert res.rc == 0
    for needle in ("nats/char", "bits/char", "perplexity", "uniform", "unigram", "validation split"):
        assert needle in res.out
    other = tmp_path / "other.txt"
    other.write_text("ROMEO:\nWhat light through yonder window breaks?\n", encoding="utf-8")
    r = json.loads(charnn("eval", run / "checkpoints" / "last.safetensors", "--data", other, "--json").out)
    assert r["chars"] == len(other.read_text(encoding="utf-8")) - 1
    bad = tmp_path / "bad.txt"
    bad.write_text("naïve ∑ text", encoding="utf-8")
    assert_user_error(charnn("eval", run, "--data", bad), "vocabulary", "'∑'")


def test_eval_with_a_cache_reports_both_losses(run):
    plain = json.loads(charnn("eval", run, "--json").out)
    res = charnn("eval", run, "--json", "--cache", "500", "--cache-theta", "10", "--cache-lambda", "0.2")
    assert res.rc == 0, res.err
    r = json.loads(res.out)
    assert r["nats_per_char"] == plain["nats_per_char"]           # the plain figure is unchanged
    assert r["cache"]["size"] == 500 and r["cache"]["theta"] == 10 and r["cache"]["lambda"] == 0.2
    assert 0 < r["cache"]["nats_per_char"] < r["uniform_nats_per_char"]
    off = json.loads(charnn("eval", run, "--json", "--cache", "500", "--cache-lambda", "0").out)
    assert off["cache"]["nats_per_char"] == pytest.approx(plain["nats_per_char"], rel=1e-5)
    text = charnn("eval", run, "--cache", "200")
    assert text.rc == 0 and "+cache" in text.out and "last 200 states" in text.out


@pytest.mark.parametrize("flags, needle", [
    (["--cache", "0"], "--cache"), (["--cache", "-3"], "--cache"), (["--cache", "x"], "whole number"),
    (["--cache", "10", "--cache-lambda", "1.5"], "--cache-lambda"),
    (["--cache", "10", "--cache-theta", "-1"], "--cache-theta"),
    (["--cache", "10", "--cache-theta", "nan"], "--cache-theta"),
    (["--cache-theta", "5"], "need --cache"),
])
def test_eval_cache_rejects(run, flags, needle):
    assert_user_error(charnn("eval", run, *flags), needle)


def test_info(run):
    res = charnn("info", run / "checkpoints" / "last.safetensors")
    assert res.rc == 0, res.err
    ck = checkpoint.load(run / "checkpoints" / "last.safetensors")
    V, H = len(ck.vocab), 16
    n = H * H + 2 * H * V + H + V
    assert f"parameters: {n:,}" in res.out and f"vocabulary: {V} characters" in res.out
    assert f"step {ck.step:,}, epoch 1 of 1" in res.out and f"{ck.best_val_loss:.4f} nats/char" in res.out
    assert "hidden_size = 16" in res.out
    js = json.loads(charnn("info", run, "--json").out)
    assert js["num_params"] == n and js["vocab_size"] == V and js["config"]["hidden_size"] == 16


def test_damaged_checkpoints_are_user_errors(run, tmp_path):
    good = (run / "checkpoints" / "last.safetensors").read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good[: len(good) // 2])
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"definitely not a checkpoint, just some text")
    for cmd in ("sample", "eval", "info"):
        assert_user_error(charnn(cmd, cut), "truncated")
        assert_user_error(charnn(cmd, junk), "not a safetensors")
