"""Fine-tuning (--init-from): the checkpoint's weights and vocabulary, a fresh optimizer, a run folder of
its own, its architecture kept; unknown characters refused or added as new rows; exact resume."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from charnn import model
from charnn.data import default_corpus_path
from charnn.data.vocab import Vocab
from charnn.train import StopTraining, checkpoint, train
from charnn.train.config import Config
from clihelp import SMALL, assert_user_error, charnn

TEXT = default_corpus_path().read_text(encoding="utf-8")[:8000]
# the new corpus: later text (only characters the first one has); EXTRA: three it never has
NEW = "".join(c for c in default_corpus_path().read_text(encoding="utf-8")[20_000:26_000] if c in set(TEXT))
EXTRA = "é" * 40 + "ü" * 7 + "~" * 3
SOURCE = Config(cell="gru", layers=2, hidden_size=12, max_len=16, batch_size=3, dtype="float64",
                max_steps=6, sample_length=10, log_every=2, eval_every=3, dropout=0.1)
RUN = ["--batch-size", "3", "--max-len", "16", "--sample-length", "5", "--no-progress"]   # not architecture


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ft") / "source"
    train(SOURCE, run, text=TEXT, progress=False, log=None)
    return run


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _step0(run: Path):
    """A callback that keeps the step-0 checkpoint (on disk when the first step ends) and a dict it fills."""
    seen: dict = {}

    def cb(event, rec):
        if event == "step" and rec["step"] == 1:
            seen["ck"] = checkpoint.load(run / "checkpoints" / "last.safetensors")
    return cb, seen


def test_starts_from_the_checkpoints_weights_with_a_fresh_optimizer(tmp_path, source):
    src = checkpoint.load(checkpoint.resolve(source))
    cfg = SOURCE.replace(init_from=str(source), lr=1e-3, max_steps=3, dropout=0.0)
    cb, seen = _step0(tmp_path / "ft")
    res = train(cfg, tmp_path / "ft", text=NEW, progress=False, log=None, callbacks=[cb])
    first = seen["ck"]
    assert first.step == 0 and first.vocab == src.vocab and set(first.params) == set(src.params)
    for k in src.params:
        assert first.params[k].dtype == src.params[k].dtype
        assert np.array_equal(first.params[k], src.params[k]), k          # bit for bit
    assert first.optim_hyper["t"] == 0 and all(not a.any() for a in first.optim_state.values())  # fresh Adam
    assert res.step == 3 and res.run_dir == tmp_path / "ft" and res.vocab == src.vocab
    record = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert record["config"]["init_from"] == str(source) and record["config"]["lr"] == 1e-3


def test_keeps_the_vocabulary_when_the_new_corpus_uses_fewer_characters(tmp_path, source):
    src = checkpoint.load(checkpoint.resolve(source))
    few = "".join(c for c in NEW if c in "abcdefghij \n")
    data = _write(tmp_path, "few.txt", few)
    res = charnn("train", "--init-from", source, "--data", data, "--out", tmp_path / "ft", "--max-steps", "2", *RUN)
    assert res.rc == 0, res.err
    ck = checkpoint.load(tmp_path / "ft" / "checkpoints" / "last.safetensors")
    assert ck.vocab == src.vocab and len(ck.vocab) > len(set(few))
    assert (ck.config.cell, ck.config.layers, ck.config.hidden_size, ck.config.dtype) == ("gru", 2, 12, "float64")
    ev = charnn("eval", tmp_path / "ft", "--json")                      # eval reads it with that vocabulary
    assert ev.rc == 0, ev.err
    assert json.loads(ev.out)["vocab_size"] == len(src.vocab)
    resumed = charnn("train", "--resume", tmp_path / "ft", "--max-steps", "3", "--no-progress")
    assert resumed.rc == 0, resumed.err


def test_refuses_unknown_characters_naming_them_with_counts(tmp_path, source):
    data = _write(tmp_path, "new.txt", NEW + EXTRA)
    res = charnn("train", "--init-from", source, "--data", data, "--out", tmp_path / "ft", "--max-steps", "2", *RUN)
    assert_user_error(res, "3 character(s)", "'é' (40×)", "'ü' (7×)", "'~' (3×)", "--extend-vocab")
    assert not (tmp_path / "ft").exists()


def test_refuses_another_architecture(tmp_path, source):
    data = _write(tmp_path, "new.txt", NEW)
    for flags, needle in ((["--hidden-size", "16"], "hidden-size 16"), (["--cell", "lstm"], "cell 'lstm'"),
                          (["--layers", "1"], "layers 1")):
        res = charnn("train", "--init-from", source, "--data", data, "--out", tmp_path / "ft", *flags,
                     "--max-steps", "1", "--no-progress")
        assert_user_error(res, needle, "conflicts", "architecture")
    assert_user_error(charnn("train", "--init-from", tmp_path / "nothere", "--data", data, "--out", tmp_path / "ft",
                             "--max-steps", "1", "--no-progress"), "not found", "nothere")
    assert not (tmp_path / "ft").exists()
    assert_user_error(charnn("train", "--data", data, "--extend-vocab", *SMALL, "--out", tmp_path / "x"),
                      "extend-vocab needs --init-from")


@pytest.mark.parametrize("embed", [0, 5])
def test_extend_vocab_adds_rows_and_keeps_the_old_ones_exactly(tmp_path, embed):
    src_cfg = SOURCE.replace(embed=embed, max_steps=3)
    train(src_cfg, tmp_path / "src", text=TEXT, progress=False, log=None)
    src = checkpoint.load(tmp_path / "src" / "checkpoints" / "last.safetensors")
    cfg = src_cfg.replace(init_from=str(tmp_path / "src"), extend_vocab=True, seed=7, max_steps=1, eval_every=0)
    cb, seen = _step0(tmp_path / "ft")
    train(cfg, tmp_path / "ft", text=NEW + EXTRA, progress=False, log=None, callbacks=[cb])
    first = seen["ck"]
    params = first.params
    assert first.step == 0
    new_vocab = Vocab(src.vocab.chars + ["é", "ü", "~"])
    assert first.vocab == new_vocab
    old_ids = [new_vocab.stoi[c] for c in src.vocab.chars]
    new_ids = [new_vocab.stoi[c] for c in "éü~"]
    fresh = model.init_params(len(new_vocab), 12, seed=7, dtype=np.float64, cell="gru", layers=2, embed=embed)
    vocab_axis = {"E": 0, "V": 0, "c": 0} if embed else {"L0.U": 1, "V": 0, "c": 0}
    assert set(k for k in params if params[k].shape != src.params[k].shape) == set(vocab_axis)
    for k, p in params.items():
        if k not in vocab_axis:
            assert np.array_equal(p, src.params[k]), k
            continue
        ax = vocab_axis[k]
        assert np.array_equal(np.take(p, old_ids, axis=ax), src.params[k]), k      # old rows, bit for bit
        assert np.array_equal(np.take(p, new_ids, axis=ax), np.take(fresh[k], new_ids, axis=ax)), k  # as init draws


def test_a_fine_tuned_run_resumes_exactly(tmp_path, source):
    data = _write(tmp_path, "new.txt", NEW + EXTRA)
    common = ["--init-from", source, "--data", data, "--extend-vocab", "--eval-every", "2", "--log-every", "1",
              "--lr-schedule", "cosine", "--weight-drop", "0.2", *RUN]
    assert charnn("train", *common, "--out", tmp_path / "straight", "--max-steps", "8").rc == 0
    cfg = Config.from_dict(json.loads((tmp_path / "straight" / "config.json").read_text())["config"])

    def stop(event, rec):              # the same run, stopped after step 4 (its `last` is saved then)
        if event == "step" and rec["step"] == 4:
            raise StopTraining
    train(cfg, tmp_path / "split", progress=False, log=None, callbacks=[stop])
    assert checkpoint.load(tmp_path / "split" / "checkpoints" / "last.safetensors").step == 4
    res = charnn("train", "--resume", tmp_path / "split", "--no-progress")
    assert res.rc == 0, res.err
    a = checkpoint.load(tmp_path / "straight" / "checkpoints" / "last.safetensors")
    b = checkpoint.load(tmp_path / "split" / "checkpoints" / "last.safetensors")
    assert a.step == b.step == 8 and a.vocab == b.vocab
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    assert set(a.optim_state) == set(b.optim_state) and a.optim_hyper["t"] == b.optim_hyper["t"] == 8
    for k in a.optim_state:
        assert np.array_equal(a.optim_state[k], b.optim_state[k]), k
