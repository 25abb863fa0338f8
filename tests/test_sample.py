"""Priming and sampling (charnn.sample)."""
from __future__ import annotations

import numpy as np
import pytest

from charnn import model
from charnn.sample import SampleError, check_options, generate_text, prime
from charnn.data.vocab import Vocab, VocabError

VOCAB = Vocab("abcdefgh ")


@pytest.fixture()
def params():
    p = model.init_params(len(VOCAB), 10, seed=3, dtype=np.float64)
    p["c"] = np.linspace(-1, 1, len(VOCAB))
    return p


def test_prime_reads_all_but_the_last_prompt_char(params):
    ids = VOCAB.encode("abcabd")
    h, x = prime(params, ids, 2)
    _, cache = model.forward(params, ids[None, :-1], ids[None, 1:])
    assert np.allclose(h, np.repeat(cache.state[0, 0], 2, axis=0), atol=1e-14, rtol=0)
    assert x.tolist() == [int(ids[-1])] * 2
    h0, x0 = prime(params, ids[:0], 1)
    assert x0 is None and not h0.any()


def test_same_seed_same_text_and_batches_are_independent(params):
    kw = dict(temperature=1.3, num_samples=3)
    a = generate_text(params, VOCAB, "ab", 50, rng=np.random.default_rng(1), **kw)
    b = generate_text(params, VOCAB, "ab", 50, rng=np.random.default_rng(1), **kw)
    assert a == b and len(a) == 3 and all(len(t) == 50 for t in a) and len(set(a)) > 1
    assert set("".join(a)) <= set(VOCAB.chars)


def test_greedy_is_argmax_and_top_k_1_equals_greedy(params):
    g = generate_text(params, VOCAB, "a", 30, rng=np.random.default_rng(0), greedy=True)
    k1 = generate_text(params, VOCAB, "a", 30, rng=np.random.default_rng(9), top_k=1)
    assert g == k1
    h, x = prime(params, VOCAB.encode("a"), 1)
    _, o = model.step(params, h, x)
    assert g[0][0] == VOCAB.chars[int(np.argmax(o))]


def test_errors_name_the_problem(params):
    with pytest.raises(VocabError, match="'z'"):
        generate_text(params, VOCAB, "abz", 5, rng=np.random.default_rng(0))
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(SampleError, match="temperature"):
            check_options(length=5, temperature=bad)
    with pytest.raises(SampleError, match="length"):
        check_options(length=-1, temperature=1.0)
    assert generate_text(params, VOCAB, "a", 0, rng=np.random.default_rng(0)) == [""]
