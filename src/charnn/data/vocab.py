"""The character vocabulary: sorted distinct characters <-> integer ids."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np


class VocabError(ValueError):
    """Text holds a character the vocabulary does not know."""


def index_dtype(size: int) -> np.dtype:
    """The smallest unsigned dtype that holds ids 0..size-1 (uint8 for <= 256 symbols)."""
    if size <= 256:
        return np.dtype(np.uint8)
    if size <= 65536:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def _codepoints(text: str) -> np.ndarray:
    # UTF-32-LE gives one 4-byte code unit per character: a vectorised view of the code points.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class Vocab:
    """Sorted distinct characters of a corpus; id i <-> self.chars[i]."""

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        if any(not isinstance(ch, str) or len(ch) != 1 for ch in chars):
            raise VocabError("a vocabulary holds single characters")
        if len(set(chars)) != len(chars):
            raise VocabError("vocabulary characters must be distinct")
        self.chars: list[str] = sorted(chars)
        self._cp = np.array([ord(c) for c in self.chars], dtype=np.uint32)
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        return cls(chr(c) for c in np.unique(_codepoints(text)).tolist())

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"Vocab({len(self)} chars)"

    @property
    def dtype(self) -> np.dtype:
        return index_dtype(len(self))

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` that are not in the vocabulary, in order of appearance."""
        seen: dict[str, None] = {}
        for ch in text:
            if ch not in self.stoi:
                seen.setdefault(ch, None)
        return list(seen)

    def encode(self, text: str) -> np.ndarray:
        """text -> array of ids (compact dtype). Raises VocabError naming unknown characters."""
        cp = _codepoints(text)
        if len(self) == 0:
            if cp.size:
                raise VocabError(f"character(s) not in the vocabulary: {self.unknown(text)[:10]!r}")
            return np.zeros(0, dtype=self.dtype)
        ids = np.searchsorted(self._cp, cp)
        ids_clipped = np.minimum(ids, len(self) - 1)
        bad = self._cp[ids_clipped] != cp
        if bad.any():
            missing = self.unknown(text)
            shown = ", ".join(repr(c) for c in missing[:10])
            raise VocabError(f"character(s) not in the model's vocabulary: {shown}"
                             + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
        return ids_clipped.astype(self.dtype)

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """array of ids -> text."""
        arr = np.asarray(ids, dtype=np.int64).ravel()
        if arr.size and (arr.min() < 0 or arr.max() >= len(self)):
            raise VocabError(f"id out of range for a vocabulary of {len(self)}")
        return self._cp[arr].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: the characters as one string (and as code points, unambiguous)."""
        return {"chars": "".join(self.chars), "codepoints": [int(c) for c in self._cp]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Vocab":
        if not isinstance(d, Mapping) or "codepoints" not in d:
            raise VocabError("vocabulary record has no 'codepoints'")
        cps = d["codepoints"]
        if not isinstance(cps, list) or not all(isinstance(c, int) and 0 <= c <= 0x10FFFF for c in cps):
            raise VocabError("vocabulary code points must be a list of integers in 0..0x10FFFF")
        return cls(chr(c) for c in cps)
