"""Name swapping: a training-text augmentation that makes a network read names from context.

In a play the speakers' names recur every few hundred characters ("PROSPERO:" heads one speech
in three of its scene). Trained on a fixed text, a network learns its names by heart and never
needs to remember one it has just read; text with new names (another play, another book) then
costs several nats per name character, at every occurrence, not only the first.

Name swapping rewrites each epoch's copy of the training text: the text is cut into segments of
about `segment` characters, and in each segment every *name* is, with probability p, replaced
at all its occurrences in that segment by one made-up name of the same length (so the epoch's
text has the original length and batching, resume and step counts are unchanged). Within a
segment the swap is consistent, so predicting the second "BALTHAZOR" needs the first.

* A name is a word of three or more capital letters A–Z in a speaker heading — a line that is
  only a capitalised label and a colon ("KING RICHARD III:") — whose lower-case form never
  occurs as a lower-case word in the text (that rules out titles such as KING, DUKE, LADY)
  and that is not a Roman numeral (III).
  Its occurrences are the upper-case form ("ROMEO") and the capitalised one ("Romeo"), as whole
  words; both get the matching case of the replacement.
* Replacements are drawn letter by letter from a second-order Markov chain fitted to the names
  themselves, so they look like names ("CORANIO") rather than noise.
* A text without headings has no names, and the augmentation leaves it unchanged.

Data layer: NumPy and the standard library only.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .vocab import Vocab

HEADING_RE = re.compile(r"^([A-Z][A-Za-z' ]*):[ \t]*$", re.MULTILINE)
CAPS_WORD_RE = re.compile(r"\b[A-Z]{3,}\b")
LOWER_WORD_RE = re.compile(r"\b[a-z]+\b")
ROMAN_RE = re.compile(r"[IVXLC]+")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def find_names(text: str) -> list[str]:
    """The names of `text` (upper case, sorted): see the module docstring."""
    candidates = {w for m in HEADING_RE.finditer(text) for w in CAPS_WORD_RE.findall(m.group(1))}
    if not candidates:
        return []
    lower = set(LOWER_WORD_RE.findall(text))
    return sorted(w for w in candidates if w.lower() not in lower and not ROMAN_RE.fullmatch(w))


@dataclass
class NameChain:
    """Second-order letter model of a list of names: P(next letter | previous two), '^' pads the start."""

    table: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def fit(cls, names: list[str]) -> "NameChain":
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for name in names:
            padded = "^^" + name
            for i in range(2, len(padded)):
                counts[padded[i - 2:i]][padded[i]] += 1
                counts[padded[i - 1]][padded[i]] += 1            # first-order back-off
        table = {}
        for ctx, nxt in counts.items():
            letters = np.array(sorted(nxt))
            w = np.array([nxt[c] for c in letters], dtype=np.float64)
            table[ctx] = (letters, w / w.sum())
        return cls(table)

    def draw(self, n: int, rng: np.random.Generator) -> str:
        """A made-up name of exactly n capital letters."""
        out = "^^"
        for _ in range(n):
            entry = self.table.get(out[-2:]) or self.table.get(out[-1])
            if entry is None:
                out += LETTERS[rng.integers(26)]
            else:
                letters, p = entry
                out += str(letters[rng.choice(len(letters), p=p)])
        return out[2:]


class NameSwapper:
    """Per-epoch name-swapped copies of one encoded training text (see the module docstring)."""

    def __init__(self, text: str, vocab: Vocab, *, p: float, segment: int = 2000, ids: np.ndarray | None = None):
        """`ids`: the text already encoded with `vocab`, when the caller has it (else it is encoded here)."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"name-swap probability must be in [0, 1], got {p!r}")
        self.p, self.vocab = p, vocab
        self.ids = vocab.encode(text) if ids is None else ids
        self.names = [n for n in find_names(text) if all(c in vocab.stoi for c in n + n.lower())]
        self.chain = NameChain.fit(self.names)
        # Occurrences grouped by (segment, name): (start positions of the UPPER form, of the Capitalised form).
        self.groups: list[tuple[int, np.ndarray, np.ndarray]] = []
        if not self.names:
            return
        index = {n: i for i, n in enumerate(self.names)}
        pattern = re.compile(r"\b(" + "|".join(sorted(self.names, key=len, reverse=True)) + r"|"
                             + "|".join(sorted((n.capitalize() for n in self.names), key=len, reverse=True))
                             + r")\b")
        found: dict[tuple[int, int], tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
        for m in pattern.finditer(text):
            w = m.group(1)
            upper = w.isupper()
            found[(m.start() // segment, index[w.upper()])][0 if upper else 1].append(m.start())
        for (_, i), (up, cap) in sorted(found.items()):
            self.groups.append((i, np.array(up, dtype=np.int64), np.array(cap, dtype=np.int64)))

    def epoch_ids(self, rng: np.random.Generator) -> np.ndarray:
        """A copy of the training ids with names swapped (the original array when nothing is swapped)."""
        if self.p == 0.0 or not self.groups:
            return self.ids
        out = self.ids.copy()
        swap = rng.random(len(self.groups)) < self.p
        for (i, up, cap), s in zip(self.groups, swap):
            if not s:
                continue
            name = self.names[i]
            for _ in range(10):                             # a swap that gives the name back is no swap
                new = self.chain.draw(len(name), rng)
                if new != name:
                    break
            offsets = np.arange(len(name))
            if up.size:
                out[up[:, None] + offsets] = self.vocab.encode(new)
            if cap.size:
                out[cap[:, None] + offsets] = self.vocab.encode(new.capitalize())
        return out
