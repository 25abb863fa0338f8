"""Text from a trained model: prime the hidden state with a prompt, then draw characters.

    h_0 = 0,  h_t = tanh(W h_{t-1} + U x_t + b)   over the prompt's characters x_1..x_m
    then repeatedly  o = V h + c,  next ~ softmax(o / τ)  (τ the temperature; argmax when greedy),  feed it back.

The prompt's last character is the first input of the generation loop (`charnn.model.Generation`),
so the first generated character is predicted from the whole prompt. An empty prompt starts from
h = 0 and draws the first character from softmax(c / τ). `stream_text` hands the text out in
chunks as it is drawn; `generate_text` returns it whole (the same characters for the same rng).

Options: temperature T, top-k, top-p (the nucleus, `charnn.nn.generate.nucleus_mask`), and stop
strings: generation ends right after the first occurrence of any of them in the generated text
(the returned text includes it, so a caller sees why it stopped; matches are searched in the
generated characters only, never in the prompt). `beam_search` returns the most likely
continuation of a given length instead of a sample.

For a playground, `generate_records` yields one `Record` per generated character, lazily, as it is
drawn:

    generate_records(params, vocab, prompt, length, *, temperature=1.0, top_k=0, top_p=1.0,
                     seed=None) -> Iterator[Record]
    Record(char, id, prob, model_prob, top)      .to_dict() -> {"char", "id", "prob", "model_prob",
                                                                "top": [[char, prob], ...]}

prob is the probability of the drawn character under the distribution it was drawn from
(softmax(o / T) restricted by top-k and top-p, renormalised), model_prob its probability under the
model itself (softmax(o)), and top the TOP_CANDIDATES most likely characters of the sampling
distribution with their probabilities, most likely first. The same seed gives the same characters
as `generate_text` with that seed. To continue from a different choice at position i, call it
again with prompt + the generated text before i + the chosen character: a prompt is any string of
characters in the vocabulary (or empty).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from . import model
from .backend import xp_of
from .data.vocab import Vocab


class SampleError(ValueError):
    """A sampling option is out of range (temperature, length, top-k, top-p, beam, stop) or the
    prompt cannot be encoded."""


MAX_BEAM = 1000        # K · V candidates are scored per step: a bound on memory and time
TOP_CANDIDATES = 5     # candidates a Record lists


def check_options(*, length: int, temperature: float, top_k: int = 0, num_samples: int = 1,
                  top_p: float = 1.0, stop: Sequence[str] = (), beam: int | None = None) -> None:
    """Raise SampleError for options no sampler can honour."""
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise SampleError(f"length must be a whole number >= 0, got {length!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise SampleError(f"temperature must be a finite number > 0, got {temperature!r} "
                          f"(use --greedy for argmax sampling)")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise SampleError(f"top-k must be a whole number >= 1, got {top_k!r}")
    if not (isinstance(top_p, (int, float)) and not isinstance(top_p, bool) and 0.0 < top_p <= 1.0):
        raise SampleError(f"top-p must be a number in (0, 1], got {top_p!r}")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise SampleError(f"num-samples must be a whole number >= 1, got {num_samples!r}")
    if isinstance(stop, str) or any(not isinstance(t, str) or t == "" for t in stop):
        raise SampleError(f"stop strings must be non-empty strings, got {stop!r}")
    if beam is not None and not (isinstance(beam, int) and not isinstance(beam, bool) and 1 <= beam <= MAX_BEAM):
        raise SampleError(f"beam must be a whole number in [1, {MAX_BEAM}], got {beam!r}")


GROUP_STREAMS = 64          # samples drawn side by side at most
GROUP_CHARS = 1 << 22      # characters a group may hold back while its first sample streams


def group_size(num_samples: int, length: int) -> int:
    """How many of `num_samples` samples of `length` characters are drawn at once: up to GROUP_STREAMS,
    and few enough that the held-back samples of a group stay under GROUP_CHARS (1 for huge lengths,
    so that every sample streams and memory stays bounded for any length and count)."""
    return max(1, min(num_samples, GROUP_STREAMS, GROUP_CHARS // max(1, length)))


def prime(params: Mapping[str, Any], prompt_ids: np.ndarray, batch: int) -> tuple[Any, Any]:
    """Hidden state after reading all but the last prompt character, and that last character.

    Returns (h (batch, H), x (batch,) ids or None for an empty prompt), ready for model.generate.
    """
    xp = xp_of(params["V"])
    h = model.init_state(params, batch)      # (batch, H), or (L, S, batch, H) for stacked models
    ids = np.asarray(prompt_ids, dtype=np.int64)
    if len(ids) == 0:
        return h, None
    for i in ids[:-1].tolist():
        h, _ = model.step(params, h, xp.full((batch,), i, dtype=np.int64))
    return h, xp.full((batch,), int(ids[-1]), dtype=np.int64)


def stream_text(params: Mapping[str, Any], vocab: Vocab, prompt: str, length: int, *,
                rng: np.random.Generator, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                greedy: bool = False, num_samples: int = 1, stop: Sequence[str] = ()) -> Iterator[list[str]]:
    """The continuations of `prompt` chunk by chunk: each item holds the next characters of every sample.

    The first chunk is short, so a caller can show text at once; memory stays bounded for any length.
    With stop strings a sample ends right after the first one it generates (included); its later
    chunks are empty, and generation ends when every sample has stopped.
    Raises SampleError for bad options and VocabError naming prompt characters outside `vocab`.
    """
    check_options(length=length, temperature=temperature, top_k=top_k, num_samples=num_samples,
                  top_p=top_p, stop=stop)
    prompt_ids = vocab.encode(prompt)
    if length == 0:
        return
    h, x = prime(params, prompt_ids, num_samples)
    gen = model.Generation(params, h, x, length, rng=rng, temperature=temperature, top_k=top_k, top_p=top_p,
                           greedy=greedy)
    chunks = ([vocab.decode(row) for row in ids] for ids in gen)
    yield from (until_stop(chunks, stop, num_samples) if stop else chunks)


def until_stop(chunks: Iterable[list[str]], stop: Sequence[str], streams: int = 1) -> Iterator[list[str]]:
    """Cut each stream of `chunks` right after the first occurrence of any stop string (included).

    The earliest-ending occurrence wins, across chunk boundaries too: the text out is exactly the
    whole text cut there. Stops pulling chunks once every stream has stopped.
    """
    keep = max(len(t) for t in stop) - 1            # a match may start this far back in earlier text
    tails = [""] * streams
    done = [False] * streams
    for chunk in chunks:
        out = []
        for i, piece in enumerate(chunk):
            if done[i]:
                out.append("")
                continue
            window = tails[i] + piece
            ends = [window.find(t) + len(t) for t in stop if t in window]
            if ends:
                out.append(piece[: min(ends) - len(tails[i])])
                done[i] = True
            else:
                out.append(piece)
                tails[i] = window[len(window) - keep:] if keep else ""
        yield out
        if all(done):
            return


def generate_text(params: Mapping[str, Any], vocab: Vocab, prompt: str, length: int, *,
                  rng: np.random.Generator, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  greedy: bool = False, num_samples: int = 1, stop: Sequence[str] = ()) -> list[str]:
    """`num_samples` continuations of `prompt`, each `length` characters (or up to a stop string),
    drawn in one batched pass.

    Returns the generated characters only (without the prompt). Same rng state, same text.
    Raises SampleError for bad options and VocabError naming prompt characters outside `vocab`.
    """
    parts: list[list[str]] = [[] for _ in range(num_samples)]
    for chunk in stream_text(params, vocab, prompt, length, rng=rng, temperature=temperature, top_k=top_k,
                             top_p=top_p, greedy=greedy, num_samples=num_samples, stop=stop):
        for i, t in enumerate(chunk):
            parts[i].append(t)
    return ["".join(p) for p in parts]


@dataclass(frozen=True)
class Beam:
    """A continuation found by beam search and its log-probability under the model (nats)."""

    text: str
    logprob: float


def beam_search(params: Mapping[str, Any], vocab: Vocab, prompt: str, length: int, *, beam: int) -> list[Beam]:
    """The `beam` best continuations of `prompt` of exactly `length` characters that beam search of
    width `beam` finds (`charnn.nn.beam`), best first, scored by the model's own log-probability."""
    check_options(length=length, temperature=1.0, beam=beam)
    prompt_ids = vocab.encode(prompt)
    h, x = prime(params, prompt_ids, 1)
    return [Beam(vocab.decode(ids), lp) for ids, lp in model.beam_search(params, h, x, length, beam)]


@dataclass(frozen=True)
class Record:
    """One generated character: what was drawn, how likely, and what else was likely there."""

    char: str
    id: int
    prob: float                         # under the sampling distribution (T, top-k, top-p)
    model_prob: float                   # under softmax(o), the model itself
    top: tuple[tuple[str, float], ...]  # the TOP_CANDIDATES most likely of the sampling distribution

    def to_dict(self) -> dict[str, Any]:
        return {"char": self.char, "id": self.id, "prob": self.prob, "model_prob": self.model_prob,
                "top": [[c, p] for c, p in self.top]}


def generate_records(params: Mapping[str, Any], vocab: Vocab, prompt: str, length: int, *,
                     temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                     seed: int | None = None, rng: np.random.Generator | None = None) -> Iterator[Record]:
    """One `Record` per generated character, yielded as each is drawn (see the module docstring).

    The draws are those of `generate_text` (one uniform per character from `rng`, or from
    default_rng(seed)), so the characters are the same for the same seed. Options are checked
    (SampleError) and the prompt encoded (VocabError) before anything is generated.
    """
    check_options(length=length, temperature=temperature, top_k=top_k, top_p=top_p)
    prompt_ids = vocab.encode(prompt)
    rng = rng if rng is not None else np.random.default_rng(seed)
    return _records(params, vocab, prompt_ids, length, rng, dict(temperature=temperature, top_k=top_k, top_p=top_p))


def _records(params: Mapping[str, Any], vocab: Vocab, prompt_ids: np.ndarray, length: int,
             rng: np.random.Generator, opts: dict[str, Any]) -> Iterator[Record]:
    xp = xp_of(params["V"])
    h, x = prime(params, prompt_ids, 1)
    k = min(TOP_CANDIDATES, len(vocab))
    for _ in range(length):
        if x is None:
            logits = model.internal_state(params, h, 1)[-1, 0] @ params["V"].T + params["c"]
        else:
            h, logits = model.step(params, h, x)
        logits = np.asarray(logits if xp is np else xp.asnumpy(logits), dtype=np.float64)
        nxt = int(model.draw_with(logits, rng.random(1), **opts)[0])
        z = model.filtered_logits(logits, **opts)[0]
        p = np.exp(z) / np.exp(z).sum()
        o = logits[0] - logits[0].max()
        model_p = np.exp(o) / np.exp(o).sum()
        best = np.argsort(-p, kind="stable")[:k]
        yield Record(vocab.chars[nxt], nxt, float(p[nxt]), float(model_p[nxt]),
                     tuple((vocab.chars[int(j)], float(p[j])) for j in best))
        x = xp.full((1,), nxt, dtype=np.int64)
