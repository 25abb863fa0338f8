"""Text statistics that turn the seed's remarks about generated text into numbers.

The seed judges samples by eye ("rubbish", "capital letters in between words", "more grammatical
errors", "adds quotes"). Each remark gets a measurable stand-in here:

* words            maximal runs of letters with inner apostrophes: ``[^\\W\\d_]+('[^\\W\\d_]+)*``
                   ("I've" and "o'er" are one word; "'tis" is "tis"). Compared case-folded.
* in_train_share   (generated word tokens whose case-folded form occurs in the training text)
                   / (generated word tokens). 1 − in_train_share is the "misspelt word" rate.
* mid_word_caps    uppercase letters directly after a lowercase letter ("bHarful", "charHard"),
                   per 1000 characters. All-caps words such as a speaker name "ROMEO" do not
                   count: only a lowercase→uppercase switch inside a word is the seed's oddity.
* distinct_bigrams distinct pairs of consecutive words; bigrams_per_word = distinct / words,
                   a repetition measure (a loop "fes fes fes" scores low).
* mean_word_length mean number of characters per word token.
* brackets/quotes  for each pair ``()``, ``[]``, ``{}``, ``“”``, ``‘’``: opening and closing counts
                   and unmatched ones (a closing mark with no open partner, plus openings left
                   open at the end). A straight double quote ``"`` opens and closes in turn, so
                   its odd occurrences are openings, the even ones closings, unmatched = count mod 2.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
PAIRS = {"()": ("(", ")"), "[]": ("[", "]"), "{}": ("{", "}"), "“”": ("“", "”"), "‘’": ("‘", "’")}
STRAIGHT_QUOTE = '"'


def words(text: str) -> list[str]:
    """Word tokens of `text` in order, case-folded (see the module docstring for what a word is)."""
    return [w.casefold() for w in WORD_RE.findall(text)]


def word_set(text: str) -> frozenset[str]:
    """The distinct case-folded words of a text (e.g. the training text's vocabulary of words)."""
    return frozenset(words(text))


def mid_word_capitals(text: str) -> int:
    """Number of uppercase letters directly preceded by a lowercase letter."""
    return sum(1 for a, b in zip(text, text[1:]) if b.isupper() and a.islower())


def pair_balance(text: str) -> dict[str, dict[str, int]]:
    """Opening, closing and unmatched counts of each bracket/quote pair and of the straight quote.

    Brackets of one kind are matched with a counter (a closing mark with nothing open is
    unmatched); kinds are matched independently so "( [ ) ]" counts as balanced for each.
    """
    out: dict[str, dict[str, int]] = {}
    for name, (o, c) in PAIRS.items():
        opening = closing = stray_close = depth = 0
        for ch in text:
            if ch == o:
                opening += 1
                depth += 1
            elif ch == c:
                closing += 1
                if depth:
                    depth -= 1
                else:
                    stray_close += 1
        out[name] = {"open": opening, "close": closing, "unmatched": depth + stray_close}
    n = text.count(STRAIGHT_QUOTE)
    out[STRAIGHT_QUOTE] = {"open": (n + 1) // 2, "close": n // 2, "unmatched": n % 2}
    return out


@dataclass(frozen=True)
class TextStats:
    """The statistics of one text; in_train_share is None when no training words were given."""

    chars: int
    words: int
    in_train_share: float | None
    mid_word_caps: int
    mid_word_caps_per_1000: float
    distinct_bigrams: int
    bigrams_per_word: float
    mean_word_length: float
    pairs: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def unmatched_pairs(self) -> int:
        """Unmatched brackets and quotes of all kinds together."""
        return sum(p["unmatched"] for p in self.pairs.values())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["unmatched_pairs"] = self.unmatched_pairs
        return d


def text_stats(text: str, train_words: Iterable[str] | None = None) -> TextStats:
    """All statistics of `text`; `train_words` (case-folded, e.g. word_set(train_text)) enables in_train_share."""
    ws = words(text)
    n = len(ws)
    bigrams = set(zip(ws, ws[1:]))
    share = None
    if train_words is not None:
        known = train_words if isinstance(train_words, (set, frozenset)) else frozenset(train_words)
        share = sum(w in known for w in ws) / n if n else 0.0
    caps = mid_word_capitals(text)
    return TextStats(
        chars=len(text),
        words=n,
        in_train_share=share,
        mid_word_caps=caps,
        mid_word_caps_per_1000=1000.0 * caps / len(text) if text else 0.0,
        distinct_bigrams=len(bigrams),
        bigrams_per_word=len(bigrams) / n if n else 0.0,
        mean_word_length=sum(map(len, ws)) / n if n else 0.0,
        pairs=pair_balance(text),
    )


def training_slice(train_text: str, length: int, *, offset: int = 0) -> str:
    """`length` characters of the training text from `offset` (clamped so the slice fits)."""
    if length >= len(train_text):
        return train_text
    offset = max(0, min(offset, len(train_text) - length))
    return train_text[offset:offset + length]


def training_slice_stats(train_text: str, length: int, *, offset: int = 0,
                         train_words: Iterable[str] | None = None) -> TextStats:
    """The same statistics on `length` characters of the training text, the yardstick for a sample.

    Pass `train_words` to measure in_train_share against the whole training text (it is then 1.0).
    """
    return text_stats(training_slice(train_text, length, offset=offset), train_words)


LINE_END_PUNCT = frozenset(".,;:!?'\"”’)]-")


def line_end_punct_share(text: str) -> float | None:
    """Share of non-empty lines that end in punctuation (None when the text has no full line).

    Only lines followed by a newline count (the last, unfinished line of a sample does not);
    trailing spaces are ignored. The seed: "learns to add punctuation before every new line".
    """
    lines = [ln.rstrip(" \t") for ln in text.split("\n")[:-1]]
    lines = [ln for ln in lines if ln]
    if not lines:
        return None
    return sum(ln[-1] in LINE_END_PUNCT for ln in lines) / len(lines)


def contractions(text: str) -> Counter:
    """Word tokens with an inner apostrophe ("i've", "o'er", "tis" is not one), case-folded, counted."""
    return Counter(w for w in words(text) if "'" in w)


@dataclass(frozen=True)
class WordOrigins:
    """Generated words split into those copied from the training text and those it never contains."""

    copied: Counter
    new: Counter

    @property
    def copied_share(self) -> float:
        """Share of distinct generated words that occur in the training text."""
        total = len(self.copied) + len(self.new)
        return len(self.copied) / total if total else 0.0

    def to_dict(self, top: int = 30) -> dict[str, Any]:
        return {
            "distinct_copied": len(self.copied),
            "distinct_new": len(self.new),
            "copied_share_distinct": self.copied_share,
            "top_copied": self.copied.most_common(top),
            "top_new": self.new.most_common(top),
        }


def word_origins(text: str, train_words: Iterable[str]) -> WordOrigins:
    """Count each generated word as copied (in `train_words`) or new (invented by the model)."""
    known = train_words if isinstance(train_words, (set, frozenset)) else frozenset(train_words)
    counts = Counter(words(text))
    copied = Counter({w: n for w, n in counts.items() if w in known})
    new = Counter({w: n for w, n in counts.items() if w not in known})
    return WordOrigins(copied=copied, new=new)
