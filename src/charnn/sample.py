"""Text from a trained model: prime the hidden state with a prompt, then draw characters.

    h_0 = 0,  h_t = tanh(W h_{t-1} + U x_t + b)   over the prompt's characters x_1..x_m
    then repeatedly  o = V h + c,  next ~ softmax(o / τ)  (τ the temperature; argmax when greedy),  feed it back.

The prompt's last character is the first input of the generation loop (`charnn.model.Generation`),
so the first generated character is predicted from the whole prompt. An empty prompt starts from
h = 0 and draws the first character from softmax(c / τ). `stream_text` hands the text out in
chunks as it is drawn; `generate_text` returns it whole (the same characters for the same rng).
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Mapping

import numpy as np

from . import model
from .backend import xp_of
from .data.vocab import Vocab


class SampleError(ValueError):
    """A sampling option is out of range (temperature, length, top-k) or the prompt cannot be encoded."""


def check_options(*, length: int, temperature: float, top_k: int = 0, num_samples: int = 1) -> None:
    """Raise SampleError for options no sampler can honour."""
    if not isinstance(length, int) or length < 0:
        raise SampleError(f"length must be a whole number >= 0, got {length!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise SampleError(f"temperature must be a finite number > 0, got {temperature!r} "
                          f"(use --greedy for argmax sampling)")
    if not isinstance(top_k, int) or top_k < 0:
        raise SampleError(f"top-k must be a whole number >= 1, got {top_k!r}")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise SampleError(f"num-samples must be a whole number >= 1, got {num_samples!r}")


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
                rng: np.random.Generator, temperature: float = 1.0, top_k: int = 0,
                greedy: bool = False, num_samples: int = 1) -> Iterator[list[str]]:
    """The continuations of `prompt` chunk by chunk: each item holds the next characters of every sample.

    The first chunk is short, so a caller can show text at once; memory stays bounded for any length.
    Raises SampleError for bad options and VocabError naming prompt characters outside `vocab`.
    """
    check_options(length=length, temperature=temperature, top_k=top_k, num_samples=num_samples)
    prompt_ids = vocab.encode(prompt)
    if length == 0:
        return
    h, x = prime(params, prompt_ids, num_samples)
    for ids in model.Generation(params, h, x, length, rng=rng, temperature=temperature, top_k=top_k,
                                greedy=greedy):
        yield [vocab.decode(row) for row in ids]


def generate_text(params: Mapping[str, Any], vocab: Vocab, prompt: str, length: int, *,
                  rng: np.random.Generator, temperature: float = 1.0, top_k: int = 0,
                  greedy: bool = False, num_samples: int = 1) -> list[str]:
    """`num_samples` continuations of `prompt`, each `length` characters, drawn in one batched pass.

    Returns the generated characters only (without the prompt). Same rng state, same text.
    Raises SampleError for bad options and VocabError naming prompt characters outside `vocab`.
    """
    parts: list[list[str]] = [[] for _ in range(num_samples)]
    for chunk in stream_text(params, vocab, prompt, length, rng=rng, temperature=temperature, top_k=top_k,
                             greedy=greedy, num_samples=num_samples):
        for i, t in enumerate(chunk):
            parts[i].append(t)
    return ["".join(p) for p in parts]
