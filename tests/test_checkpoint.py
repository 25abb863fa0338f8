"""Checkpoint files: round trip, atomic writes, and validation of everything read before it is trusted."""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
from safetensors.numpy import save as st_save

from charnn.train import checkpoint
from charnn import model
from charnn.train.checkpoint import Checkpoint, CheckpointError
from charnn.train.config import Config
from charnn.train.optim import Adam
from charnn.data.vocab import Vocab


def make_ckpt(dtype: str = "float64", optimizer: str = "adam", momentum: float = 0.0) -> Checkpoint:
    cfg = Config(hidden_size=8, batch_size=3, dtype=dtype, optimizer=optimizer, momentum=momentum)
    vocab = Vocab("abcde\n")
    params = model.init_params(len(vocab), 8, seed=1, dtype=np.dtype(dtype))
    opt = Adam(0.01) if optimizer == "adam" else None
    state, hyper = {}, {"kind": optimizer, "lr": 0.01, "t": 0}
    if opt is not None:
        grads = {k: np.ones_like(v) for k, v in params.items()}
        opt.step(params, grads)
        state, hyper = opt.state_arrays(), opt.hyper()
    rng = np.random.default_rng(5)
    rng.random(3)
    return Checkpoint(config=cfg, vocab=vocab, params=params, optim_state=state, optim_hyper=hyper,
                      h=np.full((3, 8), 0.25, dtype=dtype), step=7, epoch=1, batch_index=4, chars_seen=700,
                      wall_s=1.5, train_s=1.25, best_val_loss=1.25, rng_state=rng.bit_generator.state,
                      corpus={"path": "", "chars": 100, "sha256": "0" * 64, "vocab_size": 6},
                      unigram=[1, 2, 3, 4, 5, 6])


def test_round_trip_keeps_every_field(tmp_path):
    ck = make_ckpt()
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, ck)
    back = checkpoint.load(path)
    for k in ck.params:
        assert np.array_equal(ck.params[k], back.params[k]) and back.params[k].dtype == np.float64
    assert back.optim_state.keys() == ck.optim_state.keys()
    for k in ck.optim_state:
        assert np.array_equal(ck.optim_state[k], back.optim_state[k])
    assert np.array_equal(back.h, ck.h)
    assert back.config == ck.config and back.vocab == ck.vocab
    assert (back.step, back.epoch, back.batch_index, back.chars_seen) == (7, 1, 4, 700)
    assert (back.wall_s, back.train_s) == (1.5, 1.25)
    assert back.best_val_loss == 1.25 and back.optim_hyper == ck.optim_hyper
    g1, g2 = np.random.default_rng(), np.random.default_rng()
    g1.bit_generator.state, g2.bit_generator.state = ck.rng_state, back.rng_state
    assert np.array_equal(g1.random(4), g2.random(4))          # the RNG continues identically
    assert back.unigram == ck.unigram and back.corpus == ck.corpus


def test_metadata_is_json_strings_and_no_pickle(tmp_path):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, make_ckpt("float32", optimizer="sgd"))
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header["__metadata__"]
    assert all(isinstance(v, str) for v in meta.values())
    assert json.loads(meta["format_version"]) == checkpoint.FORMAT_VERSION
    assert {k for k in header if k != "__metadata__"} == {f"param.{k}" for k in model.PARAM_NAMES} | {"state.h"}
    assert all(header[f"param.{k}"]["dtype"] == "F32" for k in model.PARAM_NAMES)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, make_ckpt())
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    ck = make_ckpt()
    ck.step = 99
    with pytest.raises(OSError):
        checkpoint.save(path, ck)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]     # no temp file left


def _rewrite(tmp_path, ck: Checkpoint, *, meta_change=None, arrays_change=None, drop_meta=False):
    """Write a checkpoint by hand with some part altered."""
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, ck)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    meta = json.loads(raw[8:8 + n])["__metadata__"]
    from safetensors.numpy import load
    arrays = load(raw)
    if meta_change:
        meta.update({k: json.dumps(v) for k, v in meta_change.items()})
    if arrays_change:
        arrays_change(arrays)
    path.write_bytes(st_save(arrays, metadata=None if drop_meta else meta))
    return path


@pytest.mark.parametrize("case, needle", [
    ("newer", "newer charnn"),
    ("no_meta", "not a charnn checkpoint"),
    ("shape", "shape"),
    ("dtype", "dtype"),
    ("missing", "lacks"),
    ("extra", "unexpected array"),
    ("bad_config", "configuration"),
    ("h_shape", "state.h"),
])
def test_rejects_inconsistent_checkpoints(tmp_path, case, needle):
    ck = make_ckpt()
    kw = {
        "newer": dict(meta_change={"format_version": checkpoint.FORMAT_VERSION + 1}),
        "no_meta": dict(drop_meta=True),
        "shape": dict(arrays_change=lambda a: a.update({"param.W": np.zeros((9, 8))})),
        "dtype": dict(arrays_change=lambda a: a.update({"param.b": a["param.b"].astype(np.float32)})),
        "missing": dict(arrays_change=lambda a: a.pop("optim.m.V")),
        "extra": dict(arrays_change=lambda a: a.update({"evil": np.zeros(3)})),
        "bad_config": dict(meta_change={"config": {**ck.config.to_dict(), "hidden_size": -1}}),
        "h_shape": dict(arrays_change=lambda a: a.update({"state.h": np.zeros((2, 8))})),
    }[case]
    path = _rewrite(tmp_path, ck, **kw)
    with pytest.raises(CheckpointError, match=needle):
        checkpoint.load(path)


def test_rejects_damaged_files_before_allocating(tmp_path):
    path = tmp_path / "c.safetensors"
    with pytest.raises(CheckpointError, match="not found"):
        checkpoint.load(path)
    path.write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="not a safetensors"):
        checkpoint.load(path)
    path.write_bytes(struct.pack("<Q", 2**62) + b"{}")        # a header claiming exabytes
    with pytest.raises(CheckpointError, match="header length"):
        checkpoint.load(path)
    checkpoint.save(path, make_ckpt())
    good = path.read_bytes()
    path.write_bytes(good[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoint.load(path)
    # a header that claims a huge array for a small config is refused by shape, before any data is read
    (n,) = struct.unpack("<Q", good[:8])
    header = json.loads(good[8:8 + n])
    header["param.W"]["shape"] = [10**6, 10**6]
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)
    with pytest.raises(CheckpointError, match="shape"):
        checkpoint.load(path)


def test_resolve_run_folder_prefers_best(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    checkpoint.save(tmp_path / "checkpoints" / "last.safetensors", make_ckpt())
    assert checkpoint.resolve(tmp_path).name == "last.safetensors"
    checkpoint.save(tmp_path / "checkpoints" / "best.safetensors", make_ckpt())
    assert checkpoint.resolve(tmp_path).name == "best.safetensors"
