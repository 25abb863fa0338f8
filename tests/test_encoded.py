"""Large corpora are encoded to a file and memory-mapped: same vocabulary, ids and checksum as
reading the whole text, without holding it."""
from __future__ import annotations

import os

import numpy as np
import pytest

from charnn.data import corpus as corpus_mod
from charnn import data
from charnn.data import encoded
from charnn.data.vocab import Vocab, VocabError


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARNN_CACHE_DIR", str(tmp_path / "cache"))


def reference(path, **kw):
    text = data.read_corpus(path, **kw)
    vocab, ids = data.encode_corpus(text)
    return vocab, ids, data.checksum(text)


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
def test_same_as_reading_the_text_multibyte_across_chunks(tmp_path, chunk):
    folder = tmp_path / "books"
    folder.mkdir()
    write(folder / "a.txt", "héllo wörld — ünïcödé ✓ 𝄞 line\n" * 5)
    write(folder / "b.txt", "second book: ça va? 日本語")
    vocab, ids, sha = encoded.load_encoded(folder, chunk_bytes=chunk)
    rvocab, rids, rsha = reference(folder)
    assert vocab == rvocab and sha == rsha
    assert isinstance(ids, np.memmap) and ids.dtype == rids.dtype
    np.testing.assert_array_equal(ids, rids)
    assert vocab.decode(ids) == data.load_text(folder)


def test_latin1_and_byte_level(tmp_path):
    f = write(tmp_path / "old.txt", "café naïve\n", encoding="latin-1")
    for kw in ({"encoding": "latin-1"}, {"byte_level": True}):
        vocab, ids, sha = encoded.load_encoded(f, chunk_bytes=4, **kw)
        rvocab, rids, rsha = reference(f, **kw)
        assert vocab == rvocab and sha == rsha
        np.testing.assert_array_equal(ids, rids)


def test_given_vocabulary_and_unknown_characters(tmp_path):
    f = write(tmp_path / "t.txt", "abcab")
    vocab, ids, _ = encoded.load_encoded(f, vocab=Vocab("abcdz"))
    assert vocab == Vocab("abcdz")
    np.testing.assert_array_equal(ids, [0, 1, 2, 0, 1])
    with pytest.raises(VocabError):
        encoded.load_encoded(f, vocab=Vocab("ab"))
    assert not list((tmp_path / "cache").glob("*.tmp"))           # no half-written files left


def test_bad_input_is_a_data_error(tmp_path):
    with pytest.raises(data.DataError, match="binary"):
        encoded.load_encoded(write(tmp_path / "bin.txt", "ab\x00cd"))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc\xff\xfedef")
    with pytest.raises(data.DataError, match="offset 3"):
        encoded.load_encoded(bad, chunk_bytes=2)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(data.DataError, match="empty"):
        encoded.load_encoded(empty)
    with pytest.raises(data.DataError, match="unknown text encoding"):
        encoded.load_encoded(write(tmp_path / "x.txt", "x"), encoding="no-such-codec")
    with pytest.raises(data.DataError):
        encoded.load_encoded(tmp_path / "missing.txt")


def test_reused_while_unchanged_rebuilt_when_the_source_changes(tmp_path):
    f = write(tmp_path / "t.txt", "hello")
    encoded.load_encoded(f)
    [ids_file] = (tmp_path / "cache").glob("*.ids")
    stamp = ids_file.stat().st_mtime_ns
    vocab, ids, sha = encoded.load_encoded(f)
    assert ids_file.stat().st_mtime_ns == stamp                      # mapped again, not rewritten
    write(f, "help!")
    os.utime(f, ns=(stamp + 10**9, stamp + 10**9))
    vocab2, ids2, sha2 = encoded.load_encoded(f)
    assert vocab2.decode(ids2) == "help!" and sha2 != sha


def test_corpus_load_maps_large_corpora(tmp_path, monkeypatch):
    f = write(tmp_path / "big.txt", "to be or not to be\n" * 50)
    small = corpus_mod.Corpus.load(f)
    monkeypatch.setattr(encoded, "MMAP_THRESHOLD_BYTES", 100)
    big = corpus_mod.Corpus.load(f)
    assert isinstance(big.ids, np.memmap) and not isinstance(small.ids, np.memmap)
    assert big.vocab == small.vocab and big.sha256 == small.sha256 and big.path == small.path
    np.testing.assert_array_equal(big.ids, small.ids)
    train, val = big.split(0.9)
    batches = data.Batches(train, 4, 10)
    x, y = batches.get(1)
    np.testing.assert_array_equal(x, data.Batches(small.split(0.9)[0], 4, 10).get(1)[0])
