"""Sampling features: top-p (nucleus) on both generation paths, stop strings, beam search against
exhaustive search, per-character generation records, and their `charnn sample` flags."""
from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pytest

from charnn import cli, model, sample
from charnn.data.vocab import Vocab
from charnn.nn import generate as gen
from charnn.nn import kernels

from clihelp import SMALL, assert_user_error, charnn, write_corpus

VOCAB = Vocab("abcdefgh ")


def make_params(cell="rnn", layers=1, V=len(VOCAB), H=10, seed=3):
    p = model.init_params(V, H, seed=seed, dtype=np.float64, cell=cell, layers=layers)
    rng = np.random.default_rng(seed)
    for k in p:
        if k.endswith("W"):
            p[k] = p[k] * 2.5          # a network that is confident enough for the nucleus to matter
    p["c"] = rng.uniform(-2, 2, V)
    return p


def nucleus_direct(logits, temperature, top_k, top_p):
    """The nucleus distribution by its definition, one row at a time: softmax(z / T), the top k,
    then the smallest set of most likely ids with mass >= top_p (ties at the cut kept), renormalised."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(z - z.max())
    if 0 < top_k < len(z):
        kth = np.sort(z)[-top_k]
        p = np.where(z >= kth, p, 0.0)
    p = p / p.sum()
    order = np.argsort(-p, kind="stable")
    mass, kept = 0.0, []
    for i in order:
        kept.append(i)
        mass += p[i]
        if mass >= top_p * (1 - 1e-12):
            break
    cut = p[kept[-1]]
    q = np.where(p >= cut, p, 0.0)
    return q / q.sum()


# -- top-p --------------------------------------------------------------------------------------

@pytest.mark.parametrize("temperature,top_k,top_p", [
    (1.0, 0, 0.5), (1.0, 0, 0.9), (0.7, 0, 0.3), (1.5, 4, 0.8), (1.0, 0, 1e-6), (1.0, 0, 1.0)])
def test_top_p_draws_from_the_nucleus_distribution(temperature, top_k, top_p):
    """The inverse-CDF draw over a fine grid of uniforms hits each id with its nucleus probability."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4, 9))
    N = 20_000
    u = (np.arange(N) + 0.5) / N
    for row in logits:
        ids = gen.draw_with(np.repeat(row[None], N, axis=0), u, temperature=temperature, top_k=top_k, top_p=top_p)
        freq = np.bincount(ids, minlength=len(row)) / N
        want = nucleus_direct(row, temperature, top_k, top_p)
        np.testing.assert_allclose(freq, want, atol=2.0 / N)
        assert set(np.flatnonzero(freq)) == set(np.flatnonzero(want))    # exactly the nucleus, nothing else


def test_nucleus_keeps_ties_at_the_cut_and_the_smallest_set():
    e = np.array([[4.0, 2.0, 2.0, 1.0, 1.0]])          # probabilities .4 .2 .2 .1 .1
    assert gen.nucleus_mask(e, 0.4).tolist() == [[True, False, False, False, False]]
    assert gen.nucleus_mask(e, 0.5).tolist() == [[True, True, True, False, False]]   # the tie at .2 stays
    assert gen.nucleus_mask(e, 0.81).tolist() == [[True, True, True, True, True]]
    assert gen.nucleus_mask(e, 1.0).all()


def test_tiny_top_p_is_greedy_and_top_p_one_changes_nothing():
    p = make_params()
    g = sample.generate_text(p, VOCAB, "ab", 80, rng=np.random.default_rng(0), greedy=True)
    tiny = sample.generate_text(p, VOCAB, "ab", 80, rng=np.random.default_rng(5), top_p=1e-9)
    assert tiny == g
    a = sample.generate_text(p, VOCAB, "ab", 80, rng=np.random.default_rng(5), temperature=1.3)
    b = sample.generate_text(p, VOCAB, "ab", 80, rng=np.random.default_rng(5), temperature=1.3, top_p=1.0)
    assert a == b


@pytest.fixture()
def compiled(monkeypatch):
    """The compiled loop at any length (as in tests/test_fastpath.py)."""
    monkeypatch.delenv("CHARNN_NO_NUMBA", raising=False)
    monkeypatch.setattr(gen, "KERNEL_MIN_CHARS", 0)
    assert kernels.available()


@pytest.mark.parametrize("cell,layers,B,opts", [
    ("rnn", 1, 1, {"top_p": 0.6}),
    ("rnn", 1, 3, {"top_p": 0.9, "temperature": 1.4}),
    ("lstm", 2, 2, {"top_p": 0.7, "top_k": 5}),
    ("gru", 1, 1, {"top_p": 0.5, "temperature": 0.8}),
])
def test_top_p_compiled_loop_equals_numpy(compiled, monkeypatch, cell, layers, B, opts):
    p = make_params(cell, layers, seed=7)
    h = model.init_state(p, B)
    x = np.arange(B) % len(VOCAB)
    a, sa = model.generate(p, h, x, 400, rng=np.random.default_rng(4), **opts)        # compiled
    monkeypatch.setenv("CHARNN_NO_NUMBA", "1")
    b, sb = model.generate(p, h, x, 400, rng=np.random.default_rng(4), **opts)        # NumPy
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sa, sb, rtol=1e-12, atol=1e-12)
    free = model.generate(p, h, x, 400, rng=np.random.default_rng(4),
                          **{k: v for k, v in opts.items() if k != "top_p"})[0]
    assert (a != free).any()                                   # top-p did change the draws


def test_top_p_kernel_source_as_plain_python():
    p = make_params(seed=9)
    u = np.random.default_rng(1).random((60, 1))
    out = np.empty((1, 60), dtype=np.int64)
    state = np.zeros((1, 1, 1, 10))
    kernels._generate_py(*gen.pack(p), state, np.array([2]), True, u, 1.0, 0, False, out, 0.6)
    ref = gen.Generation(p, None, np.array([2]), 60, rng=np.random.default_rng(1), top_p=0.6, first_chunk=60)
    ref.compiled = False
    np.testing.assert_array_equal(out, np.concatenate(list(ref), axis=1))


# -- stop strings -------------------------------------------------------------------------------

def cut_after(text, stops):
    ends = [text.find(s) + len(s) for s in stops if s in text]
    return text[:min(ends)] if ends else text


def test_stop_cuts_right_after_the_first_occurrence_even_across_chunks():
    p = make_params()
    full = sample.generate_text(p, VOCAB, "ab", 1500, rng=np.random.default_rng(2), temperature=1.2)[0]
    boundary = gen.FIRST_CHUNK                           # the first chunk ends here
    for stops in ([full[boundary - 3: boundary + 3]], [full[700:706]], [full[boundary - 3: boundary + 3], full[40:42]],
                  [full[100:104], full[40:42]], [full[30:50], full[35:40]], ["h h h h h h h"]):
        want = cut_after(full, stops)
        got = sample.generate_text(p, VOCAB, "ab", 1500, rng=np.random.default_rng(2), temperature=1.2, stop=stops)[0]
        assert got == want
        if any(s in full for s in stops):
            assert any(got.endswith(s) for s in stops) and len(got) < len(full)
    chunks = list(sample.stream_text(p, VOCAB, "ab", 1500, rng=np.random.default_rng(2), temperature=1.2,
                                     stop=[full[10:13]]))
    assert len(chunks) == 1                              # generation ended with the first chunk


def test_stop_per_sample_in_a_batch():
    p = make_params()
    full = sample.generate_text(p, VOCAB, "a", 1500, rng=np.random.default_rng(3), num_samples=3)
    stops = [full[1][100:105]]
    got = sample.generate_text(p, VOCAB, "a", 1500, rng=np.random.default_rng(3), num_samples=3, stop=stops)
    assert got == [cut_after(t, stops) for t in full] and len(got[1]) <= 105
    assert max(map(len, got)) > gen.FIRST_CHUNK            # another sample went on past the first chunk


# -- beam search --------------------------------------------------------------------------------

@pytest.mark.parametrize("cell,layers,V,n", [("rnn", 1, 3, 4), ("lstm", 2, 4, 3), ("gru", 1, 3, 3)])
def test_beam_search_equals_exhaustive_search(cell, layers, V, n):
    vocab = Vocab("xyzw"[:V])
    p = make_params(cell, layers, V=V, H=6, seed=11)
    prompt = "xy"
    scored = []
    for seq in itertools.product(vocab.chars, repeat=n):      # every continuation, scored by the reader
        nats, _, _ = model.evaluate(p, vocab.encode(prompt + "".join(seq)))
        first = model.evaluate(p, vocab.encode(prompt))[0]     # the prompt's own prediction, not scored
        scored.append((-(nats - first), "".join(seq)))
    scored.sort(key=lambda t: -t[0])
    exact = sample.beam_search(p, vocab, prompt, n, beam=V ** (n - 1))
    assert exact[0].text == scored[0][1]
    assert exact[0].logprob == pytest.approx(scored[0][0], abs=1e-10)
    assert [b.text for b in exact[:5]] == [t for _, t in scored[:5]]
    np.testing.assert_allclose([b.logprob for b in exact], [s for s, _ in scored[:len(exact)]], atol=1e-10)
    g = sample.generate_text(p, vocab, prompt, n, rng=np.random.default_rng(0), greedy=True)[0]
    assert sample.beam_search(p, vocab, prompt, n, beam=1)[0].text == g


def test_beam_search_from_an_empty_prompt_scores_the_zero_state():
    vocab = Vocab("xyz")
    p = make_params(V=3, H=5, seed=2)
    best = sample.beam_search(p, vocab, "", 3, beam=9)[0]
    first = -math.log(np.exp(p["c"] - p["c"].max()).sum()) + (p["c"] - p["c"].max())[vocab.stoi[best.text[0]]]
    rest = -model.evaluate(p, vocab.encode(best.text))[0]
    assert best.logprob == pytest.approx(first + rest, abs=1e-10)


# -- generation records -------------------------------------------------------------------------

def test_records_match_generate_text_and_the_direct_distribution():
    p = make_params("lstm", 2, seed=5)
    opts = dict(temperature=0.9, top_k=6, top_p=0.85)
    recs = list(sample.generate_records(p, VOCAB, "ab", 60, seed=8, **opts))
    text = "".join(r.char for r in recs)
    assert text == sample.generate_text(p, VOCAB, "ab", 60, rng=np.random.default_rng(8), **opts)[0]
    h, x = sample.prime(p, VOCAB.encode("ab"), 1)
    for r in recs:                                      # each record against the definition
        h, o = model.step(p, h, x)
        want = nucleus_direct(o[0], 0.9, 6, 0.85)
        m = np.exp(o[0] - o[0].max())
        assert r.prob == pytest.approx(want[r.id], abs=1e-12) and r.prob > 0
        assert r.model_prob == pytest.approx(m[r.id] / m.sum(), abs=1e-12)
        assert len(r.top) == 5 and [c for c, _ in r.top][0] == VOCAB.chars[int(np.argmax(want))]
        assert [q for _, q in r.top] == sorted((q for _, q in r.top), reverse=True)
        assert dict(r.top).get(r.char, r.prob) == pytest.approx(r.prob)
        x = np.array([r.id])
    d = recs[0].to_dict()
    assert set(d) == {"char", "id", "prob", "model_prob", "top"} and len(d["top"]) == 5


def test_continuing_from_a_choice_is_a_prompt():
    p = make_params(seed=6)
    recs = list(sample.generate_records(p, VOCAB, "ab", 30, seed=1))
    i = 12
    text = "".join(r.char for r in recs)
    chosen = recs[i].top[2][0]                                  # a different candidate at position i
    again = list(sample.generate_records(p, VOCAB, "ab" + text[:i], 1, seed=0))[0]
    assert again.top == recs[i].top                             # the same distribution at that point
    cont = list(sample.generate_records(p, VOCAB, "ab" + text[:i] + chosen, 5, seed=0))
    assert len(cont) == 5
    assert [r.char for r in sample.generate_records(p, VOCAB, "", 3, seed=1)]   # an empty prompt works too


def test_bad_options_are_sample_errors():
    p = make_params()
    for bad in (0.0, -0.1, 1.5, float("nan"), float("inf")):
        with pytest.raises(sample.SampleError, match="top-p"):
            sample.check_options(length=5, temperature=1.0, top_p=bad)
        with pytest.raises(sample.SampleError, match="top-p"):
            next(sample.generate_records(p, VOCAB, "a", 5, top_p=bad))
    for bad in (0, -1, sample.MAX_BEAM + 1):
        with pytest.raises(sample.SampleError, match="beam"):
            sample.beam_search(p, VOCAB, "a", 3, beam=bad)
    with pytest.raises(sample.SampleError, match="stop"):
        sample.generate_text(p, VOCAB, "a", 5, rng=np.random.default_rng(0), stop=[""])
    with pytest.raises(sample.SampleError, match="temperature"):
        sample.generate_records(p, VOCAB, "a", 5, temperature=0.0)


# -- the command line ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    out = folder / "run"
    res = charnn("train", "--data", write_corpus(folder), "--out", out, "--epochs", "1", *SMALL)
    assert res.rc == 0, res.err
    return out


def test_cli_top_p_stop_and_prompt_file(run, tmp_path):
    from charnn.train import checkpoint

    ck = checkpoint.load(checkpoint.resolve(run))
    a = charnn("sample", run, "--prompt", "the ", "--length", "200", "--seed", "4", "--top-p", "0.7")
    want = sample.generate_text(ck.model_params, ck.vocab, "the ", 200, rng=np.random.default_rng(4),
                                temperature=ck.config.temperature, top_p=0.7)[0]
    assert a.rc == 0 and a.out == "the " + want + "\n"
    f = tmp_path / "prompt.txt"
    f.write_text("the \n", encoding="utf-8")
    b = charnn("sample", run, "--prompt-file", f, "--length", "50", "--seed", "4")
    c = charnn("sample", run, "--prompt", "the \n", "--length", "50", "--seed", "4")
    assert b.rc == 0 and b.out == c.out and b.out.startswith("the \n")
    stop = want[60:63]
    s = charnn("sample", run, "--prompt", "the ", "--length", "200", "--seed", "4", "--top-p", "0.7", "--stop", stop)
    assert s.rc == 0 and s.out == "the " + cut_after(want, [stop]) + "\n" and s.out.rstrip("\n").endswith(stop)


def test_cli_beam_prints_the_best_continuation_and_its_log_probability(run):
    from charnn.train import checkpoint

    ck = checkpoint.load(checkpoint.resolve(run))
    res = charnn("sample", run, "--prompt", "the ", "--length", "12", "--beam", "4")
    best = sample.beam_search(ck.model_params, ck.vocab, "the ", 12, beam=4)[0]
    text, line = res.out.rsplit("\n", 2)[0], res.out.rsplit("\n", 2)[1]
    assert res.rc == 0 and text == "the " + best.text
    assert line.startswith(f"log-probability: {best.logprob:.6f} nats")


@pytest.mark.parametrize("flags,needle", [
    (["--top-p", "0"], "top-p"), (["--top-p", "1.5"], "top-p"), (["--top-p", "nan"], "top-p"),
    (["--beam", "0"], "beam"), (["--beam", "3", "--top-k", "2"], "--beam"), (["--beam", "2", "--temperature", "1"], "--beam"),
    (["--stop", ""], "stop"), (["--stop", "\x01"], "--stop"), (["--prompt-file", "/nonexistent/p.txt"], "--prompt-file"),
    (["--prompt", "a", "--prompt-file", "x"], "not both"),
])
def test_cli_bad_sampling_options(run, flags, needle):
    assert_user_error(charnn("sample", run, "--length", "10", *flags), needle)


def test_cli_prompt_file_must_be_a_regular_file_of_prompt_size(run, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)                              # reading it would block for ever
    assert_user_error(charnn("sample", run, "--length", "10", "--prompt-file", fifo), "not a regular file")
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(cli.PROMPT_FILE_MAX + 1)      # sparse: no disk used
    assert_user_error(charnn("sample", run, "--length", "10", "--prompt-file", big), "shorter file")
