"""Fine-tuning: a new run that starts from a trained model's weights and vocabulary.

    θ_0        = θ of the checkpoint (bit for bit), then a fresh optimizer, step 0, a run folder of its own
    vocabulary = the checkpoint's; a character of the new corpus outside it is refused, unless
                 extend_vocab adds it: a new column of the first layer's U (a new row of E with an
                 embedding), a new row of V and a new entry of c, drawn as `model.init_params` draws
                 them for the run's seed; every existing row is kept exactly

The architecture (cell, layers, hidden size, embedding width, dtype, byte level) is the
checkpoint's: a run that asks for another one is refused. Everything else (learning rate,
schedule, regularisers, budget, splits) is the new run's own configuration.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import checkpoint
from .. import model
from ..data.corpus import Corpus, unigram_counts
from ..data.vocab import Vocab, VocabError
from .checkpoint import Checkpoint
from .config import Config, ConfigError

ARCHITECTURE = ("cell", "layers", "hidden_size", "embed", "dtype", "byte_level")
SHOWN = 5                          # unknown characters named in the refusal


def load_source(path: str | Path) -> Checkpoint:
    """The checkpoint to start from: a file, or a run folder (its best checkpoint, else its last)."""
    return checkpoint.load(checkpoint.resolve(path))


def inherit(values: Mapping[str, Any], source: Checkpoint) -> dict[str, Any]:
    """`values` (config keys) with the source's architecture filled in; a conflicting value is refused."""
    out = dict(values)
    for k in ARCHITECTURE:
        theirs = getattr(source.config, k)
        if k in out and out[k] != theirs:
            raise ConfigError(_conflict(k, out[k], theirs))
        out[k] = theirs
    return out


def _conflict(k: str, ours: Any, theirs: Any) -> str:
    return (f"{k.replace('_', '-')} {ours!r} conflicts with the model fine-tuning starts from ({theirs!r}): "
            f"a fine-tuned run keeps that model's architecture (drop the setting)")


def check_architecture(cfg: Config, source: Checkpoint) -> None:
    for k in ARCHITECTURE:
        if getattr(cfg, k) != getattr(source.config, k):
            raise ConfigError(_conflict(k, getattr(cfg, k), getattr(source.config, k)))


def unknown_chars(corpus: Corpus, vocab: Vocab) -> list[tuple[str, int]]:
    """(character, count) of the corpus's characters outside `vocab`, most frequent first."""
    counts = unigram_counts(corpus.ids, len(corpus.vocab))
    out = [(ch, int(counts[i])) for i, ch in enumerate(corpus.vocab.chars) if ch not in vocab.stoi]
    return sorted(out, key=lambda kv: (-kv[1], kv[0]))


def refusal(corpus: Corpus, missing: list[tuple[str, int]]) -> str:
    shown = ", ".join(f"{ch!r} ({n:,}×)" for ch, n in missing[:SHOWN])
    more = f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
    return (f"the corpus {corpus.display_path} has {len(missing)} character(s) the model's vocabulary lacks: "
            f"{shown}{more}; pass --extend-vocab to add them as new rows, or remove them from the text")


def reencode(corpus: Corpus, vocab: Vocab) -> Corpus:
    """The same text under another vocabulary that holds all of its characters (ids through a lookup table)."""
    missing = [ch for ch in corpus.vocab.chars if ch not in vocab.stoi]
    if missing:
        raise VocabError(f"character(s) not in the model's vocabulary: {', '.join(map(repr, missing[:SHOWN]))}")
    table = np.array([vocab.stoi[ch] for ch in corpus.vocab.chars], dtype=vocab.dtype)
    ids = np.empty(len(corpus.ids), dtype=vocab.dtype)
    step = 1 << 22                      # in slices: a memory-mapped corpus is never copied whole
    for s in range(0, len(ids), step):
        ids[s:s + step] = table[np.asarray(corpus.ids[s:s + step], dtype=np.int64)]
    return Corpus(vocab=vocab, ids=ids, path=corpus.path, sha256=corpus.sha256)


def extend_params(params: Mapping[str, np.ndarray], old: Vocab, new: Vocab, cfg: Config) -> dict[str, np.ndarray]:
    """The parameters for vocabulary `new` ⊇ `old`: each old character's row (or column) copied to its id
    in `new`, the new characters' drawn by `model.init_params` (same architecture, the run's seed).

    Ids are sorted characters, so a new character can shift the ids of old ones: rows move, values never change.
    """
    fresh = model.init_params(len(new), cfg.hidden_size, seed=cfg.seed, dtype=np.dtype(cfg.dtype),
                              cell=cfg.cell, layers=cfg.layers, embed=cfg.embed)
    where = np.array([new.stoi[ch] for ch in old.chars], dtype=np.int64)
    out = {}
    for name, p in params.items():
        q = fresh[name]
        axes = [a for a, (m, n) in enumerate(zip(p.shape, q.shape)) if m != n]   # the vocabulary axis, if any
        if not axes:
            out[name] = np.array(p, copy=True)
            continue
        (axis,) = axes
        index = [slice(None)] * p.ndim
        index[axis] = where
        q = np.array(q, copy=True)
        q[tuple(index)] = p
        out[name] = q
    return out


def prepare(cfg: Config, corpus: Corpus) -> tuple[Corpus, dict[str, np.ndarray], Checkpoint]:
    """(the corpus under the model's vocabulary, the starting parameters, the source checkpoint) of a run
    with cfg.init_from. Refuses another architecture and, without extend_vocab, unknown characters."""
    source = load_source(cfg.init_from)
    check_architecture(cfg, source)
    missing = unknown_chars(corpus, source.vocab)
    vocab, params = source.vocab, {k: np.array(v, copy=True) for k, v in source.params.items()}
    if missing:
        if not cfg.extend_vocab:
            raise VocabError(refusal(corpus, missing))
        vocab = Vocab(source.vocab.chars + [ch for ch, _ in missing])
        params = extend_params(source.params, source.vocab, vocab, cfg)
    return reencode(corpus, vocab), params, source
