"""Corpus loading, the train/val/test splits and batching into (input, target) pairs.

The seed trains on a folder of books; any UTF-8 text file, or a folder of .txt files, works.
A corpus is held as a compact integer array (uint8 for vocabularies of <= 256 symbols).
"""
from __future__ import annotations

import codecs
import errno
import hashlib
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator

import numpy as np

from .vocab import Vocab

DEFAULT_CORPUS_NAME = "tinyshakespeare.txt"


class DataError(ValueError):
    """The corpus cannot be used (missing, empty, undecodable, too short...)."""


def default_corpus_path() -> Path:
    """Path of the embedded Tiny Shakespeare corpus (public domain, 1,115,394 characters)."""
    return Path(str(resources.files("charnn") / "data" / DEFAULT_CORPUS_NAME))


def corpus_files(path: str | Path) -> list[Path]:
    """The files that make up a corpus: the file itself, or a folder's *.txt files in sorted name order.

    Only regular files are read (after following symbolic links): a FIFO, device or socket would
    block or never end, so it is refused, as is a symbolic-link loop.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"corpus path {str(p)!r:.200} is a loop of symbolic links: point it at a real file") from None
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):   # e.g. permission denied, a name too long
            raise DataError(f"cannot use corpus path {str(p)!r:.200}: {exc.strerror or exc}") from None
        st = None
    except ValueError:   # e.g. a NUL character in a path read from a crafted checkpoint
        st = None
    if st is None:
        raise DataError(f"corpus not found: {str(p)!r:.200} (give a text file or a folder of .txt files)")
    if stat.S_ISDIR(st.st_mode):
        files = sorted(f for f in p.iterdir() if f.suffix.lower() == ".txt" and _is_regular(f))
        if not files:
            raise DataError(f"folder {p} holds no .txt files")
        return files
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"corpus {p} is not a regular file (a FIFO, device or socket cannot be read as a "
                        f"corpus): give a text file or a folder of .txt files")
    return [p]


def _is_regular(f: Path) -> bool:
    try:
        return stat.S_ISREG(f.stat().st_mode)
    except OSError:
        return False


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),   # longest first: UTF-32 LE starts as UTF-16 LE
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def nul_error(name: Path, head: bytes, offset: int) -> DataError:
    """The error for a NUL byte in a file read as UTF-8/ASCII/latin-1: a UTF-16/32 byte-order mark
    at the start of the file (`head`) names the --encoding that reads it."""
    bom = next((enc for mark, enc in _BOMS if head.startswith(mark)), None)
    if bom is not None:
        return DataError(f"{name} starts with a {bom.upper()} byte-order mark: pass --encoding {bom} "
                         f"(or --bytes to model raw bytes)")
    return DataError(f"{name} looks like a binary file (NUL byte at offset {offset}); use --bytes to model raw bytes")


def _decode(raw: bytes, name: Path, encoding: str) -> str:
    nul = raw.find(b"\x00")
    if nul >= 0 and encoding.lower().replace("-", "").replace("_", "") in ("utf8", "ascii", "latin1"):
        raise nul_error(name, raw[:4], nul)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"{name} is not valid {encoding} (bad byte at offset {exc.start}); "
                        f"pass --encoding (e.g. latin-1) or --bytes for raw bytes") from None
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r}") from None


def _read(f: Path) -> bytes:
    try:
        return f.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {f}: {exc.strerror or exc}") from None


def load_text(path: str | Path | None = None, *, encoding: str = "utf-8") -> str:
    """Read a corpus: one file, or a folder's .txt files in sorted name order joined with a newline.

    `path=None` (or "") loads the embedded Tiny Shakespeare corpus.
    """
    files = [default_corpus_path()] if not path else corpus_files(path)
    text = "\n".join(_decode(_read(f), f, encoding) for f in files)
    if not text:
        raise DataError(f"corpus {path or default_corpus_path()} is empty")
    return text


def load_bytes_as_text(path: str | Path | None) -> str:
    """Byte-level mode: every byte becomes one symbol (latin-1 maps bytes 0..255 to U+0000..U+00FF)."""
    files = [default_corpus_path()] if not path else corpus_files(path)
    raw = b"\n".join(_read(f) for f in files)
    if not raw:
        raise DataError(f"corpus {path or default_corpus_path()} is empty")
    return raw.decode("latin-1")


def read_corpus(path: str | Path | None = None, *, encoding: str = "utf-8", byte_level: bool = False) -> str:
    """The corpus as a string of symbols: decoded text, or (byte_level) one symbol per byte."""
    return load_bytes_as_text(path) if byte_level else load_text(path, encoding=encoding)


def checksum(text: str) -> str:
    """sha256 of the corpus text as UTF-8 (recorded with each run to tie it to its data)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def split(ids: np.ndarray, train_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous split: the first `train_fraction` of the corpus trains, the rest validates."""
    if not 0.0 < train_fraction < 1.0:
        raise DataError(f"train fraction must be strictly between 0 and 1, got {train_fraction}")
    n = int(len(ids) * train_fraction)
    return ids[:n], ids[n:]


def split_sizes(n: int, train_fraction: float, val_fraction: float = 0.0,
                test_fraction: float = 0.0) -> tuple[int, int, int]:
    """(n_train, n_val, n_test): three contiguous splits of an n-character corpus, train | val | test.

        n_test  = ⌊n · test_fraction⌋                         the last characters
        n_val   = ⌊n · val_fraction⌋                          just before them, when val_fraction > 0;
                = n − ⌊n · train_fraction⌋ − n_test           else all between train and test
        n_train = n − n_val − n_test                          the rest, from the start

    With the defaults (no test split, val_fraction 0) this is `split`: the first ⌊n · train_fraction⌋ train.
    """
    n_test = int(n * test_fraction)
    n_val = int(n * val_fraction) if val_fraction > 0 else n - int(n * train_fraction) - n_test
    n_val = max(0, min(n_val, n - n_test))
    return n - n_val - n_test, n_val, n_test


def split3(ids: np.ndarray, train_fraction: float, val_fraction: float = 0.0,
           test_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train ids, validation ids, test ids): views of `ids` cut as `split_sizes` says."""
    n_train, n_val, _ = split_sizes(len(ids), train_fraction, val_fraction, test_fraction)
    return ids[:n_train], ids[n_train:n_train + n_val], ids[n_train + n_val:]


def hold_out(train_ids: np.ndarray, total: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(what trains, what is held out): the first `fraction` of a `total`-character corpus, taken from the
    start of its training split (charnn.eval.calibrate).

    The start, because it is the text furthest from the validation split: the end of the training split
    runs on into the validation text (in Tiny Shakespeare the same play, with the same cast), and
    holding it out took from the network exactly what it needed there (+0.07 nats/char, BENCHMARKS.md).
    """
    k = int(total * fraction)
    if k < 2 or k > len(train_ids) // 2:
        raise DataError(f"a calibration fraction of {fraction:g} holds out {k} character(s) of a "
                        f"{len(train_ids)}-character training split: it needs 2 or more and at most half")
    return train_ids[k:], train_ids[:k]


@dataclass
class Batches:
    """(input, target) pairs of length T from B parallel streams of a token array.

    The array is cut into B contiguous streams of equal length L = len(ids) // B. Chunk k of stream
    s is ``inputs = stream[s][k*T:(k+1)*T]``, ``targets = stream[s][k*T+1:(k+1)*T+1]``: targets are
    the inputs shifted by one character, and consecutive chunks of a stream are consecutive text,
    so the hidden state can be carried from one to the next (truncated BPTT). With B = 1 these
    are the seed's pairs: the corpus in order, MAX_LEN characters at a time.
    """

    ids: np.ndarray
    batch_size: int
    max_len: int
    offset: int = 0     # rotation of the text: stream s starts at (offset + s·L) mod len(ids)

    def __post_init__(self) -> None:
        B, T = self.batch_size, self.max_len
        L = len(self.ids) // B
        self.num_batches = (L - 1) // T if L > 0 else 0
        if self.num_batches < 1:
            raise DataError(f"{len(self.ids)} characters are too few for batch size {B} and "
                            f"max-len {T}: need at least {B * (T + 1)}")
        self.streams = self.ids[: B * L].reshape(B, L)

    def __len__(self) -> int:
        return self.num_batches

    @property
    def chars_per_batch(self) -> int:
        return self.batch_size * self.max_len

    def get(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch k: (inputs, targets), each an integer array of shape (B, T)."""
        if not 0 <= k < self.num_batches:
            raise IndexError(k)
        T = self.max_len
        if self.offset:
            # The text read as a circle, rotated: one (B, T+1) gather with wrap-around (a copy of
            # B·(T+1) ids, never of the corpus, so memory-mapped corpora stay on disk).
            L = self.streams.shape[1]
            start = self.offset + np.arange(self.batch_size, dtype=np.int64)[:, None] * L + k * T
            s = np.take(self.ids, start + np.arange(T + 1), mode="wrap")
        else:
            s = self.streams[:, k * T: (k + 1) * T + 1]
        return s[:, :-1], s[:, 1:]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for k in range(self.num_batches):
            yield self.get(k)


def encode_corpus(text: str, vocab: Vocab | None = None) -> tuple[Vocab, np.ndarray]:
    """Build (or reuse) a vocabulary and encode the corpus into a compact id array."""
    vocab = vocab or Vocab.from_text(text)
    return vocab, vocab.encode(text)
