"""Property-based tests (hypothesis) of the data path and of training itself.

- arbitrary Unicode text, written to a file, comes back through load -> vocab -> encode -> decode
  unchanged (in UTF-8 and in other encodings); a NUL character is refused as binary, naming its offset;
- arbitrary bytes come back unchanged through the byte-level mode (--bytes), vocabulary <= 256;
- random valid configurations train a few steps without error and write checkpoints that load;
- a configuration survives the TOML that `charnn train` prints and `--config` reads.
"""
from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charnn.train import checkpoint
from charnn import train
from charnn.train.config import Config
from charnn.data.corpus import Corpus
from charnn.data import DataError, load_text, read_corpus
from charnn.data.vocab import Vocab

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_n = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("props")


def fresh(folder: Path, name: str) -> Path:
    return folder / f"{next(_n)}-{name}"


@FAST
@given(text=st.text(min_size=1))
def test_unicode_file_round_trip(folder, text):
    path = fresh(folder, "u.txt")
    path.write_bytes(text.encode("utf-8"))
    if "\x00" in text:
        offset = len(text[: text.index("\x00")].encode("utf-8"))
        with pytest.raises(DataError, match=f"NUL byte at offset {offset}"):
            load_text(path)
        return
    loaded = load_text(path)
    assert loaded == text
    vocab = Vocab.from_text(loaded)
    ids = vocab.encode(loaded)
    assert len(vocab) == len(set(text)) and ids.dtype == vocab.dtype and len(ids) == len(text)
    assert vocab.decode(ids) == text
    again = Vocab.from_dict(json.loads(json.dumps(vocab.to_dict())))   # as a checkpoint stores it
    assert again == vocab and again.decode(again.encode(text)) == text
    corpus = Corpus.load(path)
    assert corpus.chars == len(text) and corpus.vocab == vocab


@FAST
@given(text=st.text(min_size=1), encoding=st.sampled_from(["utf-16", "utf-32", "utf-8-sig", "utf-16-be"]))
def test_other_encodings_round_trip(folder, text, encoding):
    path = fresh(folder, "e.txt")
    path.write_bytes(text.encode(encoding))
    loaded = read_corpus(path, encoding=encoding)
    assert loaded == text
    vocab = Vocab.from_text(loaded)
    assert vocab.decode(vocab.encode(loaded)) == text


@FAST
@given(raw=st.binary(min_size=1, max_size=2000))
def test_bytes_round_trip(folder, raw):
    path = fresh(folder, "b.bin")
    path.write_bytes(raw)
    symbols = read_corpus(path, byte_level=True)
    assert len(symbols) == len(raw)
    corpus = Corpus.load(path, byte_level=True)
    assert len(corpus.vocab) == len(set(raw)) <= 256 and corpus.ids.dtype == np.uint8
    assert corpus.vocab.decode(corpus.ids).encode("latin-1") == raw


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_bytes_of_a_folder_round_trip(folder, parts):
    d = fresh(folder, "books")
    d.mkdir()
    for i, raw in enumerate(parts):
        (d / f"{i:02d}.txt").write_bytes(raw)
    joined = b"\n".join(parts)                  # files in name order, a newline between them
    if not joined:
        with pytest.raises(DataError, match="empty"):
            read_corpus(d, byte_level=True)
        return
    corpus = Corpus.load(d, byte_level=True)
    assert corpus.vocab.decode(corpus.ids).encode("latin-1") == joined


# --------------------------------------------------------------------------------------------------
# random valid configurations train

configs = st.fixed_dictionaries({
    "hidden_size": st.integers(1, 8),
    "max_len": st.integers(1, 12),
    "batch_size": st.integers(1, 3),
    "lr": st.floats(1e-4, 0.05),
    "optimizer": st.sampled_from(["adam", "sgd"]),
    "momentum": st.floats(0.0, 0.95),
    "grad_clip": st.floats(0.1, 10.0),
    "clip_norm": st.sampled_from([0.0, 0.5, 5.0]),
    "train_fraction": st.floats(0.5, 0.95),
    "dtype": st.sampled_from(["float32", "float64"]),
    "carry_state": st.booleans(),
    "beta1": st.floats(0.0, 0.99),
    "beta2": st.floats(0.0, 0.9999),
    "eps": st.sampled_from([1e-8, 1e-6, 1e-3]),
    "seed": st.integers(0, 2**31 - 1),
    "epochs": st.integers(1, 3),
    "max_steps": st.integers(1, 5),
    "eval_every": st.integers(0, 3),
    "log_every": st.integers(1, 3),
    "lr_schedule": st.sampled_from(["constant", "step", "cosine"]),
    "warmup_steps": st.integers(0, 3),
    "temperature": st.floats(0.1, 3.0),
    "sample_length": st.integers(0, 6),
    "prompt": st.sampled_from(["", "a", "ab", "zz"]),
    "cell": st.sampled_from(["rnn", "lstm", "gru"]),
    "layers": st.integers(1, 2),
    "dropout": st.sampled_from([0.0, 0.25]),
})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=configs, alphabet=st.text(min_size=2, max_size=30).filter(lambda s: "\x00" not in s and len(set(s)) >= 2),  # one character: refused
       text_seed=st.integers(0, 2**32 - 1))
def test_random_valid_configs_train_a_few_steps(folder, values, alphabet, text_seed):
    cfg = Config.from_dict(values)
    B, T, f = cfg.batch_size, cfg.max_len, cfg.train_fraction
    # enough characters for one training batch and a validation split of at least 2
    n = max(math.ceil((B * (T + 1) + 3) / f), math.ceil(2 / (1 - f)) + 1) + 3 * T
    chars = sorted(set(alphabet))
    text = "".join(np.random.default_rng(text_seed).choice(chars, size=n))
    out = fresh(folder, "run")
    res = train.train(cfg, out, text=text, progress=False, log=None)
    nb = (int(n * f) // B - 1) // T
    assert res.step == min(cfg.max_steps, nb * cfg.epochs)
    assert all(np.isfinite(p).all() for p in res.params.values())
    ck = checkpoint.load(out / "checkpoints" / "last.safetensors")
    assert ck.config == cfg and ck.step == res.step
    assert all(np.array_equal(ck.params[k], res.params[k]) for k in res.params)


@settings(max_examples=100, deadline=None)
@given(values=configs, prompt=st.text(max_size=20), data=st.text(max_size=20).filter(lambda s: "\x00" not in s))
def test_config_survives_its_toml(values, prompt, data):
    cfg = Config.from_dict({**values, "prompt": prompt, "data": data})
    assert Config.from_dict(tomllib.loads(cfg.to_toml())) == cfg
