"""Vocabulary, corpus loading, the train/val split and batching into (input, target) pairs."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from charnn import data
from charnn.data import Batches, DataError, load_text, split
from charnn.data.vocab import Vocab, VocabError, index_dtype

# Any Unicode text (no lone surrogates), weighted so astral characters (emoji, CJK ext., math) show up often.
ANY_CHAR = st.one_of(st.characters(), st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF))
ANY_TEXT = st.text(alphabet=ANY_CHAR, max_size=200)

FAST = settings(max_examples=60, deadline=None)


# ---- vocabulary ---------------------------------------------------------------------------------

@FAST
@given(ANY_TEXT)
def test_encode_decode_round_trip(text):
    vocab = Vocab.from_text(text)
    assert vocab.chars == sorted(set(text))
    ids = vocab.encode(text)
    assert ids.shape == (len(text),) and ids.dtype == vocab.dtype
    assert vocab.decode(ids) == text
    assert [vocab.chars[i] for i in ids.tolist()] == list(text)


@FAST
@given(ANY_TEXT, ANY_TEXT)
def test_encode_with_a_larger_vocabulary(corpus, text):
    vocab = Vocab.from_text(corpus + text)
    assert vocab.decode(vocab.encode(text)) == text


def test_astral_characters_are_one_symbol_each():
    text = "a😀b𝄞a😀\U0010FFFF"
    vocab = Vocab.from_text(text)
    assert len(vocab) == 5 and vocab.chars == sorted(set(text))
    assert vocab.encode(text).tolist() == [vocab.stoi[ch] for ch in text]
    assert vocab.decode(vocab.encode(text)) == text


@FAST
@given(ANY_TEXT)
def test_to_dict_from_dict_round_trip_through_json(text):
    vocab = Vocab.from_text(text)
    restored = Vocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored == vocab and restored.chars == vocab.chars
    assert restored.decode(restored.encode(text)) == text


@pytest.mark.parametrize("record", [{}, {"codepoints": "abc"}, {"codepoints": [-1]}, {"codepoints": [0x110000]},
                                    {"codepoints": [97, 97]}, ["a"]])
def test_from_dict_rejects_bad_records(record):
    with pytest.raises(VocabError):
        Vocab.from_dict(record)


@pytest.mark.parametrize("unknown", ["x", "é", "😀", "\n"])
def test_unknown_character_raises_naming_it(unknown):
    vocab = Vocab.from_text("abc")
    with pytest.raises(VocabError) as exc:
        vocab.encode("ab" + unknown + "c")
    assert repr(unknown) in str(exc.value)


def test_every_unknown_character_is_named_once():
    with pytest.raises(VocabError) as exc:
        Vocab.from_text("abc").encode("axbyxa")
    msg = str(exc.value)
    assert "'x'" in msg and "'y'" in msg and msg.count("'x'") == 1


def test_decode_rejects_out_of_range_ids():
    vocab = Vocab.from_text("abc")
    for bad in ([3], [-1]):
        with pytest.raises(VocabError):
            vocab.decode(bad)


@pytest.mark.parametrize("size,dtype", [(1, np.uint8), (256, np.uint8), (257, np.uint16), (65536, np.uint16)])
def test_compact_dtype(size, dtype):
    assert index_dtype(size) == np.dtype(dtype)


@pytest.mark.parametrize("size,dtype", [(256, np.uint8), (257, np.uint16), (1000, np.uint16)])
def test_encoded_corpus_dtype(size, dtype):
    text = "".join(chr(0x20 + i) for i in range(size)) * 2      # `size` distinct symbols
    vocab, ids = data.encode_corpus(text)
    assert len(vocab) == size and vocab.dtype == np.dtype(dtype) and ids.dtype == np.dtype(dtype)
    assert int(ids.max()) == size - 1
    assert vocab.decode(ids) == text


def test_vocab_rejects_duplicates_and_strings():
    with pytest.raises(VocabError):
        Vocab(["a", "a"])
    with pytest.raises(VocabError):
        Vocab(["ab"])


# ---- loading a corpus ---------------------------------------------------------------------------

def test_folder_loads_txt_files_in_sorted_name_order_joined_by_newline(tmp_path):
    (tmp_path / "b.txt").write_text("beta", encoding="utf-8")
    (tmp_path / "a.txt").write_text("alpha\n", encoding="utf-8")
    (tmp_path / "10.txt").write_text("ten", encoding="utf-8")          # names sort as strings: 10 < 2
    (tmp_path / "2.txt").write_text("två 😀", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not a txt file", encoding="utf-8")
    (tmp_path / "dir.txt").mkdir()                                     # a folder, not a file
    (tmp_path / "dir.txt" / "inner.txt").write_text("nested", encoding="utf-8")
    assert [f.name for f in data.corpus_files(tmp_path)] == ["10.txt", "2.txt", "a.txt", "b.txt"]
    assert load_text(tmp_path) == "ten\ntvå 😀\nalpha\n\nbeta"
    assert load_text(str(tmp_path)) == load_text(tmp_path)


def test_single_file_loads_verbatim(tmp_path):
    f = tmp_path / "corpus.dat"
    f.write_bytes("line one\r\nline two ✓\n".encode("utf-8"))
    assert load_text(f) == "line one\r\nline two ✓\n"


def test_other_encodings(tmp_path):
    f = tmp_path / "latin.txt"
    f.write_bytes(b"caf\xe9")
    assert load_text(f, encoding="latin-1") == "café"
    with pytest.raises(DataError, match="offset 3"):
        load_text(f)


def test_default_corpus_is_tiny_shakespeare():
    text = load_text(None)
    assert len(text) == 1_115_394 and text.startswith("First Citizen")
    assert load_text("") == text
    vocab, ids = data.encode_corpus(text)
    assert len(vocab) == 65 and ids.dtype == np.uint8


def test_checksum_is_sha256_of_utf8():
    assert data.checksum("héllo 😀") == hashlib.sha256("héllo 😀".encode("utf-8")).hexdigest()


def test_missing_path_raises(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_text(tmp_path / "nope.txt")


def test_empty_file_raises(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_text(tmp_path / "empty.txt")
    with pytest.raises(DataError, match="empty"):
        load_text(tmp_path)                       # a folder whose only .txt is empty


def test_folder_without_txt_files_raises(tmp_path):
    with pytest.raises(DataError, match="no .txt"):
        load_text(tmp_path)
    (tmp_path / "readme.md").write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match="no .txt"):
        load_text(tmp_path)


def test_invalid_utf8_names_file_and_byte_offset(tmp_path):
    (tmp_path / "a.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes("héllo".encode("utf-8") + b"\xff\xfe rest")
    with pytest.raises(DataError) as exc:
        load_text(tmp_path)
    msg = str(exc.value)
    assert "b.txt" in msg and "offset 6" in msg and "utf-8" in msg


def test_nul_bytes_raise(tmp_path):
    f = tmp_path / "binary.txt"
    f.write_bytes(b"ab\x00cd")
    with pytest.raises(DataError, match="NUL byte at offset 2"):
        load_text(f)


# ---- the train/val split ------------------------------------------------------------------------

@FAST
@given(n=st.integers(0, 5000), frac=st.floats(0.01, 0.99))
def test_split_is_contiguous_with_the_right_fraction(n, frac):
    ids = np.arange(n)
    train, val = split(ids, frac)
    assert len(train) == int(n * frac)
    np.testing.assert_array_equal(train, ids[: len(train)])
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)


def test_seed_split_of_tiny_shakespeare():
    _, ids = data.encode_corpus(load_text(None))
    train, val = split(ids, 0.9)
    assert len(train) == 1_003_854 and len(val) == 111_540


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_bad_fractions(frac):
    with pytest.raises(DataError):
        split(np.arange(10), frac)


# ---- batching -----------------------------------------------------------------------------------

def check_batches(n: int, B: int, T: int) -> None:
    """Every invariant of Batches on ids 0..n-1 (distinct values, so a lost or repeated char shows)."""
    ids = np.arange(n)
    batches = Batches(ids, B, T)
    L = n // B
    nb = (L - 1) // T
    assert len(batches) == nb >= 1 and batches.chars_per_batch == B * T
    chunks = list(batches)
    assert len(chunks) == nb
    for k, (x, y) in enumerate(chunks):
        gx, gy = batches.get(k)
        np.testing.assert_array_equal(x, gx)
        np.testing.assert_array_equal(y, gy)
        assert x.shape == y.shape == (B, T)
        np.testing.assert_array_equal(y, x + 1)                # target = the next character, exactly
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    inputs = np.concatenate([x for x, _ in chunks], axis=1)    # (B, nb*T): chunk k of each stream, over k
    targets = np.concatenate([y for _, y in chunks], axis=1)
    for s in range(B):
        start = s * L                                          # stream s is ids[s*L : (s+1)*L]
        np.testing.assert_array_equal(inputs[s], ids[start: start + nb * T])
        np.testing.assert_array_equal(targets[s], ids[start + 1: start + nb * T + 1])
        assert L - 1 - nb * T < T                              # fewer than T predictions dropped per stream
    # no character is fed twice: all inputs are distinct
    assert len(np.unique(inputs)) == inputs.size == B * nb * T
    with pytest.raises(IndexError):
        batches.get(nb)
    with pytest.raises(IndexError):
        batches.get(-1)


@pytest.mark.parametrize("B", [1, 2, 5])
@pytest.mark.parametrize("T", [1, 3, 7, 100])
@pytest.mark.parametrize("n", [1234, 5000])
def test_batches_shift_by_one_and_tile_each_stream(n, B, T):
    check_batches(n, B, T)


@FAST
@given(n=st.integers(2, 3000), B=st.integers(1, 8), T=st.integers(1, 60))
def test_batches_random_shapes(n, B, T):
    assume(n >= B * (T + 1))
    check_batches(n, B, T)


@pytest.mark.parametrize("n,B,T", [(10, 1, 10), (21, 2, 10), (0, 1, 1), (5, 6, 1)])
def test_too_short_corpus_raises(n, B, T):
    with pytest.raises(DataError, match="too few"):
        Batches(np.arange(n), B, T)


def test_exactly_enough_characters_make_one_batch():
    assert len(Batches(np.arange(22), 2, 10)) == 1


def seed_pairs(text_ids: np.ndarray, max_len: int):
    """The seed's data loop: consecutive MAX_LEN windows, target = input shifted by one."""
    for i in range(0, len(text_ids) - max_len, max_len):
        yield text_ids[i: i + max_len], text_ids[i + 1: i + max_len + 1]


@pytest.mark.parametrize("n", [5000, 5001, 5100, 5099])
def test_batch_size_1_reproduces_the_seed_pairs(n):
    text = load_text(None)[:n]
    vocab, ids = data.encode_corpus(text)
    pairs = list(seed_pairs(ids, 100))
    batches = Batches(ids, 1, 100)
    assert len(batches) == len(pairs)
    for (x, y), (sx, sy) in zip(batches, pairs):
        np.testing.assert_array_equal(x[0], sx)
        np.testing.assert_array_equal(y[0], sy)
        assert vocab.decode(x[0])[1:] == vocab.decode(y[0])[:-1]
    assert vocab.decode(batches.get(0)[0][0]) == text[:100]
