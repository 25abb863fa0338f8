"""Features of a text computed from the text alone, one number per character, for finding units.

Each feature describes character t as the network sees it right after reading it (the state the
Inside view shows at t). Binary features are 0/1; continuous ones are counts.

    inside_quotes     an odd number of '"' in text[:t+1] (the opening quote is inside, the closing one not)
    inside_brackets   more '(' '[' '{' than ')' ']' '}' in text[:t+1] (depth clipped at 0)
    line_position     characters since the last newline before t (0 at a line's first character)
    line_end_coming   a newline among the next k characters text[t+1 : t+1+k]
    word_start        t is a letter and text[t−1] is not (or t = 0)
    in_word           t is a letter
    capital           t is an upper-case letter
    vowel             t is one of a e i o u (either case)
    digit             t is a decimal digit
    whitespace        t is a space, tab or newline
    punctuation       t is one of . , ; : ! ? - ' "
    newline           t is a newline
"""
from __future__ import annotations

import numpy as np

LINE_END_K = 5     # "line end coming" looks this many characters ahead

DESCRIPTIONS = {
    "inside_quotes": 'inside double quotes "…"',
    "inside_brackets": "inside brackets (…) […] {…}",
    "line_position": "position in the line (characters since the newline)",
    "line_end_coming": f"a line end within the next {LINE_END_K} characters",
    "word_start": "start of a word",
    "in_word": "inside a word (a letter)",
    "capital": "capital letter",
    "vowel": "vowel",
    "digit": "digit",
    "whitespace": "whitespace",
    "punctuation": "punctuation . , ; : ! ? - ' \"",
    "newline": "newline",
}
CONTINUOUS = {"line_position"}
PUNCTUATION = set(".,;:!?-'\"")


def _is(text: str, pred) -> np.ndarray:
    return np.fromiter((pred(ch) for ch in text), dtype=np.float64, count=len(text))


def features(text: str, *, k: int = LINE_END_K) -> dict[str, np.ndarray]:
    """Every feature of `text` as a float64 array of len(text) (see the module docstring)."""
    n = len(text)
    letter = _is(text, str.isalpha)
    nl = _is(text, lambda c: c == "\n")
    quote = _is(text, lambda c: c == '"')
    opens = _is(text, lambda c: c in "([{")
    closes = _is(text, lambda c: c in ")]}")
    depth = np.zeros(n)
    d = 0
    for t in range(n):                    # a running depth that never goes below 0
        d = max(0, d + int(opens[t]) - int(closes[t]))
        depth[t] = d
    idx = np.arange(n)
    last_nl = np.maximum.accumulate(np.where(nl > 0, idx, -1)) if n else np.zeros(0, np.int64)
    before = np.concatenate([[-1], last_nl[:-1]]) if n else last_nl   # last newline strictly before t
    csum = np.concatenate([[0], np.cumsum(nl)])
    ahead = csum[np.minimum(idx + 1 + k, n)] - csum[np.minimum(idx + 1, n)]
    prev_letter = np.concatenate([[0.0], letter[:-1]]) if n else letter
    return {
        "inside_quotes": np.cumsum(quote) % 2,
        "inside_brackets": (depth > 0).astype(np.float64),
        "line_position": (idx - before - 1).astype(np.float64),
        "line_end_coming": (ahead > 0).astype(np.float64),
        "word_start": letter * (1 - prev_letter),
        "in_word": letter,
        "capital": _is(text, str.isupper),
        "vowel": _is(text, lambda c: c in "aeiouAEIOU"),
        "digit": _is(text, lambda c: c in "0123456789"),
        "whitespace": _is(text, lambda c: c in " \t\n\r"),
        "punctuation": _is(text, lambda c: c in PUNCTUATION),
        "newline": nl,
    }
