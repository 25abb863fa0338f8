"""A corpus as a run knows it: its vocabulary, its ids, where it came from and its checksum.

A run records the corpus's path, size and sha256 (in config.json and in every checkpoint) so that
`eval` and `--resume` can check they are reading the very text the model was trained on.
The splits are contiguous, train | validation | test (data.split3): the test split, if any, is the
end of the corpus and the validation split the text just before it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import encoded
from .text import DataError, checksum, default_corpus_path, encode_corpus, read_corpus, split, split3
from .vocab import Vocab

IN_MEMORY = "<memory>"


@dataclass
class Corpus:
    """Encoded text plus its provenance. `path` is "" for the embedded corpus, "<memory>" for text given in code."""

    vocab: Vocab
    ids: np.ndarray
    path: str
    sha256: str

    @classmethod
    def from_text(cls, text: str, *, path: str = IN_MEMORY, vocab: Vocab | None = None) -> "Corpus":
        """Encode `text`; builds the vocabulary from it unless one is given."""
        if not text:
            raise DataError("the corpus is empty")
        vocab, ids = encode_corpus(text, vocab)
        return cls(vocab=vocab, ids=ids, path=path, sha256=checksum(text))

    @classmethod
    def load(cls, path: str | Path | None = None, *, vocab: Vocab | None = None, encoding: str = "utf-8",
             byte_level: bool = False) -> "Corpus":
        """Read a file or a folder of .txt files ("" or None: the embedded Tiny Shakespeare).

        `encoding` decodes the files; `byte_level` makes every byte one symbol instead (vocabulary <= 256).
        A corpus larger than `encoded.MMAP_THRESHOLD_BYTES` is encoded once to a file and memory-mapped.
        """
        if path and encoded.source_bytes(path) > encoded.MMAP_THRESHOLD_BYTES:   # never a Python string
            vocab, ids, sha256 = encoded.load_encoded(path, encoding=encoding, byte_level=byte_level, vocab=vocab)
            return cls(vocab=vocab, ids=ids, path=str(Path(path).resolve()), sha256=sha256)
        text = read_corpus(path or None, encoding=encoding, byte_level=byte_level)
        shown = str(Path(path).resolve()) if path else ""
        return cls.from_text(text, path=shown, vocab=vocab)

    def check_vocab_size(self, max_vocab: int) -> None:
        """Refuse a vocabulary larger than `max_vocab`: such a corpus is rarely text (each symbol costs 2·H weights)."""
        V = len(self.vocab)
        if V > max_vocab:
            raise DataError(f"corpus {self.display_path} has {V:,} distinct characters, more than the limit of "
                            f"{max_vocab:,}: pass --max-vocab {V} to train on it anyway, or --bytes for a "
                            f"byte-level model (vocabulary <= 256)")

    @property
    def chars(self) -> int:
        return int(len(self.ids))

    @property
    def display_path(self) -> str:
        return self.path or f"{default_corpus_path()} (embedded Tiny Shakespeare)"

    def split(self, train_fraction: float) -> tuple[np.ndarray, np.ndarray]:
        """(train ids, validation ids): a contiguous split, the first `train_fraction` trains."""
        return split(self.ids, train_fraction)

    def splits(self, train_fraction: float, val_fraction: float = 0.0,
               test_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(train ids, validation ids, test ids): contiguous, in that order (data.split_sizes)."""
        return split3(self.ids, train_fraction, val_fraction, test_fraction)

    def info(self) -> dict[str, Any]:
        """What a run records about its corpus: path, size and checksum."""
        return {"path": self.path, "chars": self.chars, "sha256": self.sha256, "vocab_size": len(self.vocab)}


def unigram_counts(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """How often each id occurs in `ids` (the unigram baseline's statistics)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    step = 1 << 22                      # in slices: an int64 copy of a whole large corpus is 8 bytes/char
    for s in range(0, len(ids), step):
        counts += np.bincount(np.asarray(ids[s:s + step], dtype=np.int64), minlength=vocab_size)[:vocab_size]
    return counts


def unigram_nats(counts: np.ndarray, targets: np.ndarray) -> float:
    """Cross-entropy (nats/char) of `targets` under the add-one-smoothed unigram p(i) = (n_i + 1) / (N + V).

    Add-one smoothing keeps the baseline finite when a character never occurs in the training split.
    """
    counts = np.asarray(counts, dtype=np.float64)
    logp = np.log(counts + 1.0) - np.log(counts.sum() + len(counts))
    return float(-logp[np.asarray(targets, dtype=np.int64)].mean())
