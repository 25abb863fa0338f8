"""The Inside analysis: what every unit of a trained network does while it reads a text.

The network reads the text once, at batch 1 from the zero state, through the one text reader
(`charnn.nn.reader.read` with internals). For each character t of the text it records the state
right after reading t: every layer's h, and the LSTM's cell state c and gates i, f, o, g or the
GRU's gates r, z, n; and the surprise of t,

    surprise_t = −ln p(text[t] | text[:t])    (nats; for t = 0 the zero state's prediction, softmax(c))

Over the whole text it finds, for each feature of `charnn.apps.textfeatures`, the unit that tracks
it best (|Pearson r|, `charnn.apps.unitstats`), and per layer the saturation of each σ-gate unit.
Statistics use every character; the per-character arrays are kept for a leading slice only, so
memory and the JSON stay bounded for any text.

`analyze` returns a JSON-ready dict (schema "charnn.inside/1"):

    schema        "charnn.inside/1"
    model         {"cell": "rnn"|"lstm"|"gru", "layers": L, "hidden": H, "vocab": V}
    chars         N, characters analysed (statistics are over all of them)
    shown         n ≤ N, characters with per-character arrays (the text's first n)
    text          the first n characters
    mean_surprise mean surprise over all N characters (nats/char)
    surprise      [n] surprise of each shown character (nats, 3 decimals)
    names         ["L0.h", "L0.c", "L0.i", ...]: the state kinds, layer by layer
    ranges        {name: [lo, hi] or None}: the colour scale of a kind ([−1, 1] for h, g, n;
                  [0, 1] for σ-gates; None for the cell state c: each unit on its own scale,
                  ± its largest |c| shown)
    states        {name: [[n values] for each of the H units]} (unit-major, 3 decimals)
    features      [{"name", "description", "kind": "binary"|"continuous", "values": [n]}]
    score         how units are scored: "|Pearson r| over all N characters"
    units         [{"feature", "description", "name", "unit", "r", "score", "next": [{"name",
                  "unit", "r", "score"}, ...]}]: per feature the best unit (name and unit None,
                  score None, when the feature is constant on the text)
    saturation    [{"layer": l, "gates": {"i": {"left": [H], "right": [H]}, ...}}]: per layer, per
                  σ-gate (LSTM i, f, o; GRU r, z), each unit's share of characters < 0.1 and > 0.9;
                  [] for the vanilla RNN, which has no gates

n = min(N, max_chars, max_values // (total units)), at least 1.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .. import model
from ..data.corpus import IN_MEMORY, Corpus
from ..data.vocab import Vocab
from ..nn.beam import log_softmax
from ..train.checkpoint import Checkpoint, CheckpointError
from . import textfeatures
from .unitstats import Correlations, Saturation

SCHEMA = "charnn.inside/1"
MAX_CHARS = 2000          # characters shown by default
MAX_VALUES = 1_000_000    # bound on the per-character state values in the JSON (n × total units)
DEFAULT_SLICE = 2000      # characters of the validation split analysed when no text is given
SIGMA_GATES = {"lstm": ("i", "f", "o"), "gru": ("r", "z")}
UNIT_RANGE = {"h": (-1.0, 1.0), "g": (-1.0, 1.0), "n": (-1.0, 1.0)}


class InsideError(ValueError):
    """The text cannot be analysed (empty)."""


def _r(x: Any, d: int = 3) -> list:
    return np.round(np.asarray(x, dtype=np.float64), d).tolist()


def analyze(params: Mapping[str, Any], vocab: Vocab, text: str, *, max_chars: int = MAX_CHARS,
            max_values: int = MAX_VALUES, chunk: int = 500) -> dict[str, Any]:
    """The Inside view of `text` read by `params` (see the module docstring for the dict).

    Raises InsideError for an empty text and VocabError naming characters outside `vocab`.
    """
    if not text:
        raise InsideError("the text to analyse is empty")
    ids = vocab.encode(text).astype(np.int64)
    N = len(ids)
    d = model.describe(params)
    cell, L, H = d.cell, d.layers, d.hidden_size
    names = model.internal_names(params)
    kind = {nm: nm.split(".", 1)[1] for nm in names}
    n = int(max(1, min(N, max_chars, max_values // (len(names) * H))))

    feats = textfeatures.features(text)
    fnames = list(feats)
    F = np.stack([feats[k] for k in fnames], axis=1)
    corr = Correlations(fnames)
    sat = Saturation()
    gates = SIGMA_GATES.get(cell, ())
    kept: dict[str, list[np.ndarray]] = {nm: [] for nm in names}
    surprise = np.empty(N)
    surprise[0] = -log_softmax(np.asarray(params["c"]))[ids[0]]   # h = 0: o = c
    # Reading the text plus one more character gives the state after every character of the text;
    # the prediction after the last one (of the extra character) is dropped.
    ext = np.concatenate([ids, ids[-1:]])
    for ch in model.read(params, ext, chunk=chunk, internals=True):
        i, T = ch.start, ch.logits.shape[0]
        lp = log_softmax(ch.logits[:, 0])
        tgt = ch.targets[:, 0].astype(np.int64)
        nll = -lp[np.arange(T), tgt]
        m = min(T, N - 1 - i)                  # predictions of text characters i+1 .. i+m
        surprise[i + 1: i + 1 + m] = nll[:m]
        for nm in names:
            A = np.asarray(ch.internals[nm][:, 0])
            corr.add(nm, A, F[i:i + T])
            if kind[nm] in gates:
                sat.add(nm, A)
            if i < n:
                kept[nm].append(A[: n - i].astype(np.float32))

    states, ranges = {}, {}
    for nm in names:
        S = np.concatenate(kept[nm], axis=0)[:n]
        states[nm] = _r(S.T)
        k = kind[nm]
        if k in UNIT_RANGE:
            lo, hi = UNIT_RANGE[k]
        elif k == "c":           # unbounded: one unit's scale would wash out the others
            ranges[nm] = None
            continue
        else:
            lo, hi = 0.0, 1.0
        ranges[nm] = [lo, hi]
    units = []
    for row in corr.best():
        row = {"feature": row["feature"], "description": textfeatures.DESCRIPTIONS[row["feature"]], **row}
        for key in ("r", "score"):
            row[key] = None if row[key] is None else round(row[key], 4)
        row["next"] = [{**x, "r": round(x["r"], 4), "score": round(x["score"], 4)} for x in row["next"]]
        units.append(row)
    saturation = []
    for layer in range(L) if gates else ():
        g = {}
        for k in gates:
            left, right = sat.shares(f"L{layer}.{k}")
            g[k] = {"left": _r(left, 4), "right": _r(right, 4)}
        saturation.append({"layer": layer, "gates": g})
    return {
        "schema": SCHEMA,
        "model": {"cell": cell, "layers": L, "hidden": H, "vocab": len(vocab)},
        "chars": N, "shown": n, "text": text[:n],
        "mean_surprise": round(float(surprise.mean()), 6),
        "surprise": _r(surprise[:n]),
        "names": names, "ranges": ranges, "states": states,
        "features": [{"name": k, "description": textfeatures.DESCRIPTIONS[k],
                      "kind": "continuous" if k in textfeatures.CONTINUOUS else "binary",
                      "values": _r(feats[k][:n])} for k in fnames],
        "score": "|Pearson r| over all N characters",
        "units": units,
        "saturation": saturation,
    }


def validation_text(ckpt: Checkpoint, length: int = DEFAULT_SLICE, start: int = 0) -> str:
    """`length` characters of the run's validation split from `start` (the text it was not trained on).

    Raises CheckpointError when the corpus is not at hand or changed since training.
    """
    cfg = ckpt.config
    if ckpt.corpus.get("path") == IN_MEMORY:
        raise CheckpointError("this model was trained on text given in memory, not a file: give a text to analyse")
    corpus = Corpus.load(cfg.data or None, encoding=cfg.encoding, byte_level=cfg.byte_level)
    want = ckpt.corpus.get("sha256")
    if want and corpus.sha256 != want:
        raise CheckpointError(f"the corpus {corpus.display_path} changed since this model was trained "
                              f"(sha256 differs): give a text to analyse")
    if corpus.vocab != ckpt.vocab:
        raise CheckpointError(f"the vocabulary of {corpus.display_path} does not match the checkpoint's")
    _, val_ids = corpus.split(cfg.train_fraction)
    start = max(0, min(start, len(val_ids) - 1))
    return ckpt.vocab.decode(val_ids[start:start + length])
