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
* Replacements are drawn letter by letter from a second-order letter model (first-order back-off)
  of the names themselves, so they look like names ("CORANIO") rather than noise.
* `words=True` (`--name-swap-words`) draws them instead from a model of the names *and* the text's
  words (upper-cased, each distinct word once), interpolated with the lower orders so that every
  letter keeps a share. What a network learns to expect of a name it does not know is the
  generator's distribution: the names-only chain makes most letter pairs impossible, and a network
  trained with it spells a new name at about 3.5 nats a letter, worse than a uniform guess (3.26).
  Fitted to the first 75% of Tiny Shakespeare's training split, the smoothed model spells the 32
  names that first appear in the last 25% at 2.40 nats a letter. Measured on the validation plays
  (BENCHMARKS.md, fifth session) it trades: the new names' letters fall from 2.85 to 2.37 nats,
  but the known names' letters rise from 0.91 to 1.14 (the network trusts its own names less),
  and the total came out 0.005 worse, so it is not the default.
* A text without headings has no names, and the augmentation leaves it unchanged.

Data layer: NumPy and the standard library only.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
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


WORD_RE = re.compile(r"[A-Za-z]{3,}")


@dataclass
class NameChain:
    """Second-order letter model: P(next | previous two), '^' pads the start.

    Unsmoothed (K = 0): P(c | ab) = n(ab→c)/n(ab), backing off to P(c | b) for an unseen pair and
    to the letter frequencies P(c) for a letter never seen as a context. Smoothed (K > 0), interpolated:
    P₂(c | ab) = λ_ab · n(ab→c)/n(ab) + (1 − λ_ab) · P₁(c | b),  λ_ab = n(ab) / (n(ab) + K),
    and likewise P₁ from P₀ and P₀ from the uniform 1/26; every letter keeps a share in every context.
    """

    order1: dict[str, np.ndarray] = field(default_factory=dict)     # context of 1 → P(· | b), shape (26,)
    order2: dict[str, np.ndarray] = field(default_factory=dict)     # context of 2 → P(· | ab)
    order0: np.ndarray = field(default_factory=lambda: np.full(26, 1 / 26))

    @classmethod
    def fit(cls, names: Iterable[str], words: Iterable[str] = (), *, K: float = 0.0) -> "NameChain":
        """Fit to `names` and `words` (letter strings; case is folded to upper, non-letters dropped);
        K: the interpolation constant (0 = unsmoothed back-off; 20 for the names-and-words model)."""
        counts: list[dict[str, np.ndarray]] = [defaultdict(lambda: np.zeros(26)) for _ in range(3)]
        for w in list(names) + list(words):
            padded = "^^" + "".join(c for c in w.upper() if c in LETTERS)
            for i in range(2, len(padded)):
                j = LETTERS.index(padded[i])
                for k in range(3):
                    counts[k][padded[i - k:i]][j] += 1

        def mix(n: np.ndarray, lower: np.ndarray) -> np.ndarray:
            tot = n.sum()
            lam = tot / (tot + K) if tot + K > 0 else 0.0     # K = 0: the counts alone
            return lam * n / max(tot, 1.0) + (1 - lam) * lower

        p0 = mix(counts[0][""], np.full(26, 1 / 26))
        p1 = {b: mix(n, p0) for b, n in counts[1].items()}
        p2 = {ab: mix(n, p1.get(ab[1], p0)) for ab, n in counts[2].items()}
        return cls(order1=p1, order2=p2, order0=p0)

    def probs(self, context: str) -> np.ndarray:
        """P(next letter | the last two characters of '^^' + context), over A–Z."""
        ctx = ("^^" + context)[-2:]
        p = self.order2.get(ctx)
        if p is None:
            p = self.order1.get(ctx[1], self.order0)
        return p

    def draw(self, n: int, rng: np.random.Generator, allowed: np.ndarray | None = None) -> str:
        """A made-up name of exactly n capital letters; `allowed`, a (26,) bool mask, limits the letters
        (a corpus may lack some of them, in either case)."""
        out = ""
        for _ in range(n):
            p = self.probs(out)
            if allowed is not None:
                p = np.where(allowed, p, 0.0)
                p = p / p.sum() if p.sum() > 0 else allowed / allowed.sum()   # nothing allowed follows: any
            out += LETTERS[rng.choice(26, p=p)]
        return out


class NameSwapper:
    """Per-epoch name-swapped copies of one encoded training text (see the module docstring)."""

    def __init__(self, text: str, vocab: Vocab, *, p: float, segment: int = 2000, ids: np.ndarray | None = None,
                 words: bool = False):
        """`ids`: the text already encoded with `vocab`, when the caller has it (else it is encoded here);
        `words`: draw the made-up names from the smoothed model of names and words (module docstring)."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"name-swap probability must be in [0, 1], got {p!r}")
        self.p, self.vocab = p, vocab
        self.ids = vocab.encode(text) if ids is None else ids
        self.names = [n for n in find_names(text) if all(c in vocab.stoi for c in n + n.lower())]
        self.chain = (NameChain.fit(self.names, sorted(set(WORD_RE.findall(text.upper()))), K=20.0) if words
                      else NameChain.fit(self.names))
        # Letters a replacement may use: both cases must be in the vocabulary (names are written both ways).
        self.allowed = np.array([c in vocab.stoi and c.lower() in vocab.stoi for c in LETTERS])
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
                new = self.chain.draw(len(name), rng, self.allowed)
                if new != name:
                    break
            offsets = np.arange(len(name))
            if up.size:
                out[up[:, None] + offsets] = self.vocab.encode(new)
            if cap.size:
                out[cap[:, None] + offsets] = self.vocab.encode(new.capitalize())
        return out
