"""Loss of a trained model over a whole text, next to two baselines.

    loss        = (1/N) Σ_t −ln ŷ_t[y_t]       nats per character, h carried through the whole text
    bits/char   = loss / ln 2                   perplexity = e^loss
    uniform     = ln K                          a model that knows only the vocabulary size K
    unigram     = (1/N) Σ_t −ln p(y_t)          p = add-one-smoothed character frequencies of the
                                                training split: a model with no memory at all
    with cache  = the same model plus a continuous cache over its last K states (`charnn.eval.cache`),
                  reported next to the plain loss when asked for (--cache K)

A model trained with a held-out text (calibration_fraction) predicts softmax((V h + c)/τ) with the
temperature τ fitted on that text (`charnn.eval.calibrate`): its loss is that network's, and the loss at
τ = 1 is reported next to it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import model
from ..data import DataError, read_corpus
from ..data.corpus import IN_MEMORY, Corpus, unigram_counts, unigram_nats
from ..eval import cache as neural_cache
from ..eval import calibrate
from ..train.checkpoint import Checkpoint, CheckpointError


@dataclass
class EvalResult:
    nats_per_char: float
    bits_per_char: float
    perplexity: float
    chars: int                    # characters scored (predicted): the text's length minus one
    uniform_nats_per_char: float
    unigram_nats_per_char: float
    vocab_size: int
    data: str                     # what was evaluated
    cache: dict[str, float] | None = None   # {"size", "theta", "lambda", "nats_per_char"} with --cache
    temperature: float = 1.0      # the calibrated output temperature the loss is at (charnn.eval.calibrate)
    uncalibrated_nats_per_char: float | None = None   # the loss at temperature 1, when τ ≠ 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        ln2 = math.log(2)
        rows = [(f"model", self.nats_per_char, f"perplexity {self.perplexity:.3f}"),
                (f"uniform", self.uniform_nats_per_char, f"ln {self.vocab_size}"),
                (f"unigram", self.unigram_nats_per_char, "training-split character frequencies")]
        if self.uncalibrated_nats_per_char is not None:
            rows[0] = ("model", self.nats_per_char, f"perplexity {self.perplexity:.3f}; output temperature "
                       f"{self.temperature:.4g}, fitted on held-out text")
            rows.insert(1, ("τ = 1", self.uncalibrated_nats_per_char, "the same network before calibration"))
        if self.cache is not None:
            k = self.cache
            rows.insert(1, ("+cache", k["nats_per_char"],
                            f"the model plus a cache of its last {int(k['size']):,} states "
                            f"(theta {k['theta']:g}, lambda {k['lambda']:g})"))
        lines = [f"data: {self.data}; {self.chars:,} characters scored"]
        # + 0.0 turns a zero that came out as -0.0 into 0.0 (no "-0.0000" for a loss, which is never negative)
        lines += [f"{name:<8} {n + 0.0:7.4f} nats/char  {n / ln2 + 0.0:7.4f} bits/char   {note}" for name, n, note in rows]
        return "\n".join(lines)


@dataclass(frozen=True)
class CacheSpec:
    """A continuous cache for evaluation: window size K, lookup sharpness θ, mixture weight λ."""
    size: int
    theta: float = neural_cache.DEFAULT_THETA
    lam: float = neural_cache.DEFAULT_LAMBDA


def score(params: dict, ids: np.ndarray, unigram: np.ndarray, *, data: str,
          cache: CacheSpec | None = None, temperature: float = 1.0) -> EvalResult:
    """Evaluate `params` on the id sequence `ids` (h carried from a zero start), optionally with a cache too.

    temperature ≠ 1: the network calibrated to it (`charnn.eval.calibrate.apply`) is scored, and the loss of
    `params` as they are is reported as uncalibrated_nats_per_char (both from one pass).
    """
    if len(ids) < 2:
        raise DataError(f"{data}: need at least 2 characters to evaluate, got {len(ids)}")
    plain = None
    if temperature != 1.0:
        nats, plain = calibrate.mean_nll(params, ids, [temperature, 1.0])
        n = len(ids) - 1
        params = calibrate.apply(params, temperature)
    else:
        total, n, _ = model.evaluate(params, ids)
        nats = total / n
    V = len(unigram)
    extra = None
    if cache is not None:
        p_model, p_cache = neural_cache.cache_probs(params, ids, size=cache.size, thetas=[cache.theta])
        extra = {"size": cache.size, "theta": cache.theta, "lambda": cache.lam,
                 "nats_per_char": neural_cache.mixture_nats(p_model, p_cache[0], cache.lam)}
    return EvalResult(nats_per_char=nats, bits_per_char=nats / math.log(2),
                      perplexity=math.exp(nats) if nats < 700 else math.inf, chars=int(n),
                      uniform_nats_per_char=math.log(V), unigram_nats_per_char=unigram_nats(unigram, ids[1:]),
                      vocab_size=V, data=data, cache=extra, temperature=temperature,
                      uncalibrated_nats_per_char=plain)


SPLITS = ("val", "test")
_SPLIT_NAMES = {"val": "validation", "test": "test"}


def evaluate_checkpoint(ckpt: Checkpoint, data: str | Path | None = None,
                        cache: CacheSpec | None = None, split: str = "val",
                        encoding: str | None = None) -> EvalResult:
    """Score a checkpoint on its run's validation or test split (`split`), or on the text at `data`
    (whole file) decoded with `encoding` (default: the run's).

    The unigram baseline counts the training split in every case, as training did.
    """
    vocab, cfg = ckpt.vocab, ckpt.config
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: choose val or test")
    if data is not None and split != "val":
        raise DataError("--split chooses a split of the run's own corpus: do not combine it with --data")
    if split == "test" and cfg.test_fraction <= 0:
        raise DataError("this run has no test split (it was trained with test-fraction 0): evaluate --split val, "
                        "or train with --test-fraction to hold one out")
    if data is not None:
        text = read_corpus(data, encoding=encoding or cfg.encoding, byte_level=cfg.byte_level)
        ids = vocab.encode(text)   # VocabError names characters the model never saw
        what = f"{Path(data)} (whole text)"
        unigram = np.asarray(ckpt.unigram) if ckpt.unigram is not None else unigram_counts(ids, len(vocab))
        return score(ckpt.params, ids, unigram, data=what, cache=cache, temperature=ckpt.temperature)
    if ckpt.corpus.get("path") == IN_MEMORY:
        raise CheckpointError("this model was trained on text given in memory, not a file: "
                              "pass --data PATH to evaluate it on a text")
    corpus = Corpus.load(cfg.data or None, encoding=cfg.encoding, byte_level=cfg.byte_level,
                         vocab=vocab if cfg.init_from else None)   # a fine-tuned run reads with its model's vocabulary
    want = ckpt.corpus.get("sha256")
    if want and corpus.sha256 != want:
        raise CheckpointError(f"the corpus {corpus.display_path} changed since this model was trained "
                              f"(sha256 differs): pass --data PATH to evaluate on a given text")
    if corpus.vocab != vocab:
        raise CheckpointError(f"the vocabulary of {corpus.display_path} does not match the checkpoint's")
    train_ids, val_ids, test_ids = corpus.splits(cfg.train_fraction, cfg.val_fraction, cfg.test_fraction)
    ids = test_ids if split == "test" else val_ids
    return score(ckpt.params, ids, unigram_counts(train_ids, len(vocab)),
                 data=f"{_SPLIT_NAMES[split]} split of {corpus.display_path}", cache=cache,
                 temperature=ckpt.temperature)
