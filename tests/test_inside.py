"""The Inside analysis: text features, the unit finder, gate saturation, the per-character states and
surprise of a real read, and the self-contained page."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from charnn import model
from charnn.apps import inside, inside_html, textfeatures, unitstats
from charnn.data.vocab import Vocab, VocabError


# -- features -----------------------------------------------------------------------------------

def test_features_on_a_hand_made_string():
    text = 'He "said (x)" ok\nA1 b'
    f = textfeatures.features(text, k=3)
    assert set(f) == set(textfeatures.DESCRIPTIONS)
    bits = lambda name: "".join(str(int(v)) for v in f[name])  # noqa: E731
    #                             'He "said (x)" ok\nA1 b'
    assert bits("inside_quotes") == "000111111111000000000"
    assert bits("inside_brackets") == "000000000110000000000"   # the closing one is outside
    assert f["line_position"].tolist() == list(range(17)) + [0, 1, 2, 3]
    assert bits("line_end_coming") == "000000000000011100000"
    assert bits("word_start") == "100010000010001001001"
    assert bits("in_word") == "110011110010001101001"
    assert bits("capital") == "100000000000000001000"
    assert bits("vowel") == "010001100000001001000"
    assert bits("digit") == "000000000000000000100"
    assert bits("whitespace") == "001000001000010010010"
    assert bits("punctuation") == "000100000000100000000"
    assert bits("newline") == "000000000000000010000"


def test_bracket_depth_never_goes_negative_and_nests():
    f = textfeatures.features(")a(b(c)d)e")
    assert "".join(str(int(v)) for v in f["inside_brackets"]) == "0011111100"


# -- the unit finder ----------------------------------------------------------------------------

def test_a_planted_unit_is_found_with_score_one():
    rng = np.random.default_rng(0)
    text = "The quick (brown) fox said \"jumps\" over\nthe lazy dog 42 times.\n" * 12
    feats = textfeatures.features(text)
    names = list(feats)
    F = np.stack([feats[k] for k in names], axis=1)
    N = len(text)
    acts = {"L0.h": np.tanh(rng.normal(size=(N, 8))), "L1.c": rng.normal(size=(N, 6))}
    acts["L1.c"][:, 4] = 3.0 * feats["vowel"] - 1.0                   # planted: an affine copy of a feature
    acts["L0.h"][:, 2] = -0.5 * feats["line_position"] + 0.25         # planted, anti-correlated
    acts["L0.h"][:, 5] = 0.7                                          # a constant unit: no correlation
    corr = unitstats.Correlations(names)
    for a in range(0, N, 97):                                         # chunked, as the reader feeds it
        for nm, A in acts.items():
            corr.add(nm, A[a:a + 97], F[a:a + 97])
    best = {row["feature"]: row for row in corr.best()}
    assert (best["vowel"]["name"], best["vowel"]["unit"]) == ("L1.c", 4)
    assert best["vowel"]["score"] == pytest.approx(1.0, abs=1e-12) and best["vowel"]["r"] > 0
    assert (best["line_position"]["name"], best["line_position"]["unit"]) == ("L0.h", 2)
    assert best["line_position"]["r"] == pytest.approx(-1.0, abs=1e-12)
    for nm, A in acts.items():                                        # every r is Pearson's
        want = np.array([[np.corrcoef(A[:, j], F[:, k])[0, 1] if A[:, j].std() > 0 else 0.0
                          for k in range(len(names))] for j in range(A.shape[1])])
        np.testing.assert_allclose(corr.r(nm), want, atol=1e-10)
    assert len(best["vowel"]["next"]) == 3 and all(x["score"] <= 1.0 for x in best["vowel"]["next"])


def test_a_feature_absent_from_the_text_has_no_unit():
    text = "no digits here\nnor quotes"
    feats = textfeatures.features(text)
    corr = unitstats.Correlations(list(feats))
    corr.add("L0.h", np.random.default_rng(1).normal(size=(len(text), 4)), np.stack(list(feats.values()), axis=1))
    best = {row["feature"]: row for row in corr.best()}
    for absent in ("digit", "inside_quotes", "inside_brackets"):
        assert best[absent]["score"] is None and best[absent]["name"] is None
    assert best["vowel"]["score"] is not None


def test_gate_saturation_on_known_gates():
    G = np.array([[0.05, 0.5, 0.95],
                  [0.02, 0.09, 0.91],
                  [0.5, 0.1, 0.9],        # exactly 0.1 and 0.9 are not saturated
                  [0.99, 0.5, 0.0]])
    left, right = unitstats.saturation_of({"L0.i": G})["L0.i"]
    np.testing.assert_allclose(left, [0.5, 0.25, 0.25])
    np.testing.assert_allclose(right, [0.25, 0.0, 0.5])


# -- the analysis of a real read ----------------------------------------------------------------

TEXT = 'ROMEO: "Is it so?" (aside)\nJULIET: Ay, love.\nIt is the east, and 3 stars.\n' * 6
VOCAB = Vocab.from_text(TEXT)


def vowel_rnn():
    """A seed RNN whose unit 0 is +1 after a vowel and −1 after anything else, by construction."""
    p = model.init_params(len(VOCAB), 12, seed=4, dtype=np.float64)
    p["W"][0] = 0.0
    p["b"][0] = 0.0
    p["U"][0] = [8.0 if ch in "aeiouAEIOU" else -8.0 for ch in VOCAB.chars]
    return p


def test_the_planted_vowel_unit_of_a_real_network_is_found():
    d = inside.analyze(vowel_rnn(), VOCAB, TEXT)
    best = {u["feature"]: u for u in d["units"]}
    assert (best["vowel"]["name"], best["vowel"]["unit"]) == ("L0.h", 0)
    assert best["vowel"]["score"] > 0.9999
    assert d["saturation"] == [] and d["names"] == ["L0.h"]


@pytest.mark.parametrize("cell,layers", [("rnn", 1), ("lstm", 2), ("gru", 1)])
def test_states_and_surprise_are_those_of_the_reader(cell, layers):
    p = model.init_params(len(VOCAB), 7, seed=2, dtype=np.float64, cell=cell, layers=layers)
    d = inside.analyze(p, VOCAB, TEXT, chunk=50)            # several chunks
    ids = VOCAB.encode(TEXT).astype(np.int64)
    N = len(TEXT)
    assert d["schema"] == inside.SCHEMA and d["chars"] == d["shown"] == N and d["text"] == TEXT
    nats, n, _ = model.evaluate(p, ids)                     # the reader's loss of the same text
    c = p["c"] - p["c"].max()
    first = -(c[ids[0]] - math.log(np.exp(c).sum()))
    assert len(d["surprise"]) == N
    assert d["surprise"][0] == pytest.approx(first, abs=1e-3)
    assert sum(d["surprise"]) == pytest.approx(first + nats, abs=1e-3 * N)
    assert d["mean_surprise"] == pytest.approx((first + nats) / N, abs=1e-6)
    # the states at t are the internals after reading character t (one read of the text + one more)
    ch = next(model.read(p, np.concatenate([ids, ids[-1:]]), chunk=10 ** 6, internals=True))
    for name in model.internal_names(p):
        got = np.array(d["states"][name])                  # (H, N), unit-major
        assert got.shape == (7, N)
        np.testing.assert_allclose(got, ch.internals[name][:, 0].T, atol=5e-4 + 1e-12)
    gates = inside.SIGMA_GATES.get(cell, ())
    for name, rng in d["ranges"].items():                  # the colour scale of each state kind
        kind = name.split(".")[1]
        assert rng == ([-1.0, 1.0] if kind in "hgn" else None if kind == "c" else [0.0, 1.0])
    assert len(d["saturation"]) == (layers if gates else 0)
    for layer in d["saturation"]:
        assert set(layer["gates"]) == set(gates)
        for k, g in layer["gates"].items():
            G = ch.internals[f"L{layer['layer']}.{k}"][:, 0]
            np.testing.assert_allclose(g["left"], (G < 0.1).mean(axis=0), atol=1e-4)
            np.testing.assert_allclose(g["right"], (G > 0.9).mean(axis=0), atol=1e-4)
    json.dumps(d, allow_nan=False)                          # JSON-ready, no NaN


def test_sizes_are_bounded_but_statistics_use_the_whole_text():
    p = model.init_params(len(VOCAB), 10, seed=1, cell="lstm", layers=2)
    full = inside.analyze(p, VOCAB, TEXT, chunk=40)
    small = inside.analyze(p, VOCAB, TEXT, max_values=12 * 10 * 50, chunk=40)   # 12 state kinds × 10 units
    assert small["shown"] == 50 and small["chars"] == len(TEXT) and small["text"] == TEXT[:50]
    assert all(len(row) == 50 for rows in small["states"].values() for row in rows)
    assert len(small["surprise"]) == 50 and all(len(f["values"]) == 50 for f in small["features"])
    assert small["units"] == full["units"] and small["saturation"] == full["saturation"]
    assert small["mean_surprise"] == full["mean_surprise"]
    assert inside.analyze(p, VOCAB, TEXT, max_chars=7)["shown"] == 7


def test_one_character_and_bad_texts():
    p = vowel_rnn()
    d = inside.analyze(p, VOCAB, "a")
    assert d["chars"] == 1 and len(d["surprise"]) == 1 and d["states"]["L0.h"][0][0] > 0.99
    with pytest.raises(inside.InsideError, match="empty"):
        inside.analyze(p, VOCAB, "")
    with pytest.raises(VocabError, match="'§'"):
        inside.analyze(p, VOCAB, "a§b")


# -- the page -----------------------------------------------------------------------------------

def test_the_page_is_self_contained_and_embeds_the_analysis():
    text = 'He said: "</script x><script>alert(1)</SCRIPT>" & <b> <!-- .\n'
    vocab = Vocab.from_text(text)
    d = inside.analyze(model.init_params(len(vocab), 6, seed=0, cell="gru"), vocab, text)
    page = inside_html.render(d, title="t <x>")
    assert inside_html.extract(page) == d                      # the data round-trips
    embedded = page.split('id="inside-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in embedded and page.lower().count("</script") == 3   # the text cannot close the element
    assert "<title>t &lt;x&gt;</title>" in page
    low = page.lower()
    assert "<script src" not in low and "<link" not in low and "url(" not in low and "@import" not in low
    assert "fetch(" not in low and "xmlhttprequest" not in low
    assert inside_html.asset("inside.js") in page and inside_html.asset("inside.css") in page
