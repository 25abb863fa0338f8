"""Every numbered equation of docs/derivation.md and docs/cells.md, evaluated against the code it names.

Each test transcribes one equation block, once, from the page into NumPy and checks it against the
named function on random inputs, so the text cannot drift from the code unnoticed:

* `test_every_equation_has_its_test` fails when a page gains a numbered block without a test here, or
  a test outlives its block;
* `test_no_equation_changed_without_its_transcription` fails when a block's text changes (its
  fingerprint below no longer matches): re-read the block, update its test, then the fingerprint;
* each equation's test fails when the code stops computing what the block says (tried: a wrong
  transpose, a per-step loss, a missing 1/N, a tanh factor of the wrong step, a lost bias correction).

The worked example of derivation.md (its table between the worked-example markers) is recomputed
with the engine entry by entry.
"""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from charnn import model
from charnn.apps import evaluate
from charnn.eval import calibrate, gradcheck, gradflow
from charnn.nn import cells, fast_rnn, network
from charnn.train import optim

ROOT = Path(__file__).resolve().parents[1]
PAGES = {"derivation": ROOT / "docs" / "derivation.md", "cells": ROOT / "docs" / "cells.md"}
BLOCK = re.compile(r"^\$\$\n(.*?)\n\$\$$", re.M | re.S)
TAG = re.compile(r"\\tag\{([^}]+)\}")

# tag -> sha256[:12] of the block's text (whitespace collapsed). Update only together with the test.
FINGERPRINTS: dict[str, str] = {}
TESTS: dict[str, Callable] = {}


def equation(tag: str, fingerprint: str):
    def register(fn):
        TESTS[tag] = fn
        FINGERPRINTS[tag] = fingerprint
        return fn
    return register


def blocks() -> dict[str, str]:
    out = {}
    for page in PAGES.values():
        for body in BLOCK.findall(page.read_text(encoding="utf-8")):
            tags = TAG.findall(body)
            assert len(tags) == 1, f"{page.name}: a display block needs exactly one \\tag: {body[:80]!r}"
            out[tags[0]] = body
    return out


def fingerprint(body: str) -> str:
    return hashlib.sha256(" ".join(body.split()).encode()).hexdigest()[:12]


def test_every_equation_has_its_test():
    found = set(blocks())
    assert found - set(TESTS) == set(), f"numbered equations without a test: {sorted(found - set(TESTS))}"
    assert set(TESTS) - found == set(), f"tests of equations no page has: {sorted(set(TESTS) - found)}"


def test_no_equation_changed_without_its_transcription():
    changed = {tag: fingerprint(body) for tag, body in blocks().items() if FINGERPRINTS.get(tag) != fingerprint(body)}
    assert not changed, ("these equations changed on the page: update their transcription here, then the "
                         f"fingerprint: {changed}")


def test_math_blocks_render_on_github():
    """GitHub's math: $$ blocks on their own lines with a blank line around them, balanced braces, no
    bare < or > (HTML), and no | inside inline math in a table row (it would split the cell)."""
    for page in PAGES.values():
        text = page.read_text(encoding="utf-8")
        lines = text.splitlines()
        fences = [i for i, line in enumerate(lines) if line.strip() == "$$"]
        assert len(fences) % 2 == 0, page.name
        for a, b in zip(fences[::2], fences[1::2]):
            assert a == 0 or lines[a - 1].strip() == "", f"{page.name}:{a + 1}: no blank line before $$"
            assert b + 1 == len(lines) or lines[b + 1].strip() == "", f"{page.name}:{b + 1}: no blank line after $$"
            body = "\n".join(lines[a + 1:b])
            assert body.strip() and "\n\n" not in body, f"{page.name}:{a + 1}: empty or broken block"
            assert body.count("{") == body.count("}"), f"{page.name}:{a + 1}: unbalanced braces"
            assert "<" not in body and ">" not in body, f"{page.name}:{a + 1}: use \\lt and \\gt"
        for n, line in enumerate(lines, 1):
            if line.startswith("|"):
                for span in re.findall(r"(?<!\$)\$([^$]+)\$(?!\$)", line):
                    assert "|" not in span, f"{page.name}:{n}: | inside math in a table: use \\lvert, \\rvert"


# --------------------------------------------------------------------------------------------
# helpers: a random seed model in float64

K, H, B, T = 5, 4, 3, 4


def seed_model(seed: int = 0, K: int = K, H: int = H):
    rng = np.random.default_rng(seed)
    p = model.init_params(K, H, seed=seed, dtype=np.float64)
    p["b"] = rng.uniform(-0.5, 0.5, H)
    p["c"] = rng.uniform(-0.5, 0.5, K)
    p["W"] = p["W"] * 3                       # states away from 0, so every tanh factor matters
    return p, rng


def softmax(o):
    e = np.exp(o - o.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def onehot(i, n=K):
    v = np.zeros(n)
    v[i] = 1.0
    return v


def column_forward(p, x, h0):
    """(2.1) for one stream, column vectors: hs[0..T], yhat[1..T]."""
    hs, yhat = [h0], [None]
    for t in range(1, len(x) + 1):
        z = p["W"] @ hs[-1] + p["U"] @ onehot(x[t - 1], p["U"].shape[1]) + p["b"]
        hs.append(np.tanh(z))
        yhat.append(softmax(p["V"] @ hs[-1] + p["c"]))
    return hs, yhat


def column_backward(p, x, y, h0, N):
    """(4.3), (5.2) and (6.1) for one stream: grads, dL/dh per step, deltas, dL/dh0."""
    hs, yhat = column_forward(p, x, h0)
    Tn = len(x)
    g = {k: np.zeros_like(v) for k, v in p.items()}
    delta_next = np.zeros(len(h0))
    dh, deltas = {}, {Tn + 1: delta_next}
    for t in range(Tn, 0, -1):
        do = (yhat[t] - onehot(y[t - 1], len(p["c"]))) / N                  # (4.3)
        dh[t] = p["V"].T @ do + p["W"].T @ deltas[t + 1]                      # (5.2)
        deltas[t] = (1 - hs[t] ** 2) * dh[t]
        g["c"] += do                                                         # (6.1)
        g["V"] += np.outer(do, hs[t])
        g["b"] += deltas[t]
        g["W"] += np.outer(deltas[t], hs[t - 1])
        g["U"] += np.outer(deltas[t], onehot(x[t - 1], p["U"].shape[1]))
    return g, dh, deltas, p["W"].T @ deltas[1], hs, yhat


def batch(rng, Bn=B, Tn=T, Kn=K, Hn=H):
    return rng.integers(0, Kn, (Bn, Tn)), rng.integers(0, Kn, (Bn, Tn)), rng.uniform(-0.8, 0.8, (Bn, Hn))


def step_jacobian(p, h, x_id, eps=1e-6):
    """∂h'/∂h of `charnn.model.step` by central differences."""
    J = np.zeros((len(h), len(h)))
    for i in range(len(h)):
        e = np.zeros(len(h))
        e[i] = eps
        hp, _ = model.step(p, (h + e)[None], np.array([x_id]))
        hm, _ = model.step(p, (h - e)[None], np.array([x_id]))
        J[:, i] = (hp[0] - hm[0]) / (2 * eps)
    return J


# --------------------------------------------------------------------------------------------
# derivation.md

@equation("1.1", "ad7083872d0f")
def _():
    """∂L/∂u = (∂w/∂u)ᵀ ∂L/∂w, with u = h_0, w = h_1, L = L_1 of a one-step window."""
    p, rng = seed_model(1)
    h0, x, y = rng.uniform(-0.5, 0.5, H), 2, 3
    _, grads, dh0 = model.loss_grads_dh0(p, np.array([[x]]), np.array([[y]]), h0[None])
    h1, o1 = model.step(p, h0[None], np.array([x]))
    dL_dh1 = p["V"].T @ (softmax(o1[0]) - onehot(y))
    np.testing.assert_allclose(dh0[0], step_jacobian(p, h0, x).T @ dL_dh1, rtol=1e-7, atol=1e-10)


@equation("2.1", "11bc0b06545b")
def _():
    p, rng = seed_model(2)
    h, x = rng.uniform(-0.9, 0.9, (B, H)), rng.integers(0, K, B)
    h_new, o = model.step(p, h, x)
    for j in range(B):
        z = p["W"] @ h[j] + p["U"] @ onehot(x[j]) + p["b"]
        np.testing.assert_allclose(h_new[j], np.tanh(z), rtol=1e-13)
        np.testing.assert_allclose(o[j], p["V"] @ np.tanh(z) + p["c"], rtol=1e-13)
    xs, ys, h0 = batch(rng)
    _, cache = model.forward(p, xs, ys, h0)
    hs, yhat = column_forward(p, xs[0], h0[0])
    np.testing.assert_allclose(cache.probs.reshape(T, B, K)[:, 0], np.array(yhat[1:]), rtol=1e-12)


@equation("2.2", "18d781967358")
def _():
    p, rng = seed_model(3)
    xs, ys, h0 = batch(rng)
    total = 0.0
    for j in range(B):                                   # the sum runs over the streams too
        _, yhat = column_forward(p, xs[j], h0[j])
        total += sum(-math.log(yhat[t][ys[j, t - 1]]) for t in range(1, T + 1))
    loss, _, _ = model.loss_and_grads(p, xs, ys, h0)
    assert math.isclose(loss, total / (B * T), rel_tol=1e-12)


@equation("2.3", "054b1fe005e3")
def _():
    rng = np.random.default_rng(4)
    o = rng.normal(0, 1, (6, K)) * 800                   # e^o overflows float64 without the shift
    y = rng.integers(0, K, 6)
    o_max = o.max(axis=1)
    L = np.log(np.exp(o - o_max[:, None]).sum(axis=1)) - (o[np.arange(6), y] - o_max)
    probs, logz = network.log_softmax_rows(np, o.copy())
    shifted = o - o_max[:, None]
    np.testing.assert_allclose(logz - shifted[np.arange(6), y], L, rtol=1e-12)
    assert np.isfinite(L).all() and np.isfinite(probs).all()
    p, _ = seed_model(4)
    p["V"] *= 400
    loss, _, _ = model.loss_and_grads(p, *batch(rng)[:2])
    assert math.isfinite(loss)


@equation("3.1", "4d90226d758d")
def _():
    """Untied copies W^(1..T): perturb each copy alone (central differences) and sum."""
    p, rng = seed_model(5, K=4, H=3)
    x, y = rng.integers(0, 4, 3), rng.integers(0, 4, 3)
    h0 = rng.uniform(-0.5, 0.5, 3)

    def loss(Ws):
        h, total = h0, 0.0
        for t in range(3):
            h = np.tanh(Ws[t] @ h + p["U"][:, x[t]] + p["b"])
            total += -np.log(softmax(p["V"] @ h + p["c"])[y[t]])
        return total / 3

    copy_grads = []
    for t in range(3):
        g = np.zeros((3, 3))
        for idx in np.ndindex(3, 3):
            Ws = [p["W"].copy() for _ in range(3)]
            Ws[t][idx] += 1e-6
            up = loss(Ws)
            Ws[t][idx] -= 2e-6
            g[idx] = (up - loss(Ws)) / 2e-6
        copy_grads.append(g)
    _, grads, _ = model.loss_and_grads(p, x[None], y[None], h0[None])
    np.testing.assert_allclose(grads["W"], sum(copy_grads), rtol=1e-6, atol=1e-10)


@equation("4.1", "a507f921354f")
def _():
    p, rng = seed_model(6)
    h0, x, y = rng.uniform(-0.5, 0.5, (1, H)), np.array([[1]]), np.array([[4]])
    _, grads, _ = model.loss_and_grads(p, x, y, h0)      # N = 1: ∂L/∂c = ∂L_1/∂o_1
    _, o = model.step(p, h0, x[0])
    np.testing.assert_allclose(grads["c"], softmax(o[0]) - onehot(4), rtol=1e-12)


@equation("4.2", "44fadd837d3b")
def _():
    rng = np.random.default_rng(7)
    o, y = rng.normal(0, 2, K), 2
    yhat = network.log_softmax_rows(np, o[None].copy())[0][0]
    J = yhat[:, None] * (np.eye(K) - yhat[None, :])      # J[i, k] = ŷ_i([i = k] − ŷ_k)
    for k in range(K):
        e = 1e-6 * onehot(k)
        num = (network.log_softmax_rows(np, (o + e)[None].copy())[0][0]
               - network.log_softmax_rows(np, (o - e)[None].copy())[0][0]) / 2e-6
        np.testing.assert_allclose(J[:, k], num, rtol=1e-6, atol=1e-10)
    dL_do = -1 / yhat[y] * J[y]
    np.testing.assert_allclose(dL_do, yhat - onehot(y), rtol=1e-12, atol=1e-15)


@equation("4.3", "391173a854c1")
def _():
    p, rng = seed_model(8)
    xs, ys, h0 = batch(rng)
    _, grads, _ = model.loss_and_grads(p, xs, ys, h0)
    _, cache = model.forward(p, xs, ys, h0)
    probs = cache.probs.reshape(T, B, K)
    do = (probs - np.eye(K)[ys.T]) / (B * T)
    np.testing.assert_allclose(grads["c"], do.sum(axis=(0, 1)), rtol=1e-11, atol=1e-15)


@equation("5.1", "b80b2adf98aa")
def _():
    p, rng = seed_model(9)
    h, x = rng.uniform(-0.9, 0.9, H), 3
    h1, _ = model.step(p, h[None], np.array([x]))
    np.testing.assert_allclose(step_jacobian(p, h, x), np.diag(1 - h1[0] ** 2) @ p["W"], rtol=1e-7, atol=1e-10)
    z = rng.normal(0, 1, H)
    np.testing.assert_allclose((np.tanh(z + 1e-6) - np.tanh(z - 1e-6)) / 2e-6, 1 - np.tanh(z) ** 2, rtol=1e-8)


@equation("5.2", "3f5a5a565ac6")
def _():
    p, rng = seed_model(10)
    xs, ys, h0 = batch(rng)
    _, _, dh0 = model.loss_grads_dh0(p, xs, ys, h0)
    for j in range(B):
        *_, dh0_j, _, _ = column_backward(p, xs[j], ys[j], h0[j], B * T)
        np.testing.assert_allclose(dh0[j], dh0_j, rtol=1e-10, atol=1e-14)


@equation("6.1", "afd592b39b40")
def _():
    p, rng = seed_model(11)
    xs, ys, h0 = batch(rng)
    _, grads, _ = model.loss_and_grads(p, xs, ys, h0)
    want = {k: np.zeros_like(v) for k, v in p.items()}
    for j in range(B):
        g, *_ = column_backward(p, xs[j], ys[j], h0[j], B * T)
        for k in want:
            want[k] += g[k]
    for k in p:
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-10, atol=1e-14, err_msg=k)


WORKED = {"W": np.array([[0.5]]), "U": np.array([[1.0, -1.0]]), "b": np.zeros(1), "V": np.array([[1.0], [-1.0]]),
          "c": np.zeros(2)}


@equation("7.1", "c653403b8fb8")
def _():
    """The worked example's setting: the table below recomputes it with the engine."""
    assert model.describe(WORKED).vocab_size == 2 and model.describe(WORKED).hidden_size == 1


def worked_table() -> dict[str, list[float]]:
    text = PAGES["derivation"].read_text(encoding="utf-8")
    body = text.split("<!-- worked-example:start -->")[1].split("<!-- worked-example:end -->")[0]
    rows = {}
    for line in body.strip().splitlines()[2:]:
        cells_ = [c.strip() for c in line.strip("|").split("|")]
        nums = re.findall(r"-?\d+\.\d+", cells_[-1].replace("−", "-"))
        rows[cells_[0]] = [float(v) for v in nums]
    return rows


def worked_engine() -> dict[str, np.ndarray]:
    """Every entry of the worked example from the engine: step for the forward quantities,
    loss_grads_dh0 for the loss and all gradients; δ_t is column x_t of ∂L/∂U (x_1 = 0, x_2 = 1)."""
    p, x, y = WORKED, np.array([[0, 1]]), np.array([[1, 0]])
    h0 = np.zeros((1, 1))
    h1, o1 = model.step(p, h0, x[:, 0])
    h2, o2 = model.step(p, h1, x[:, 1])
    yh1, yh2 = softmax(o1[0]), softmax(o2[0])
    L, g, dh0 = model.loss_grads_dh0(p, x, y, h0)
    d1, d2 = g["U"][0, 0], g["U"][0, 1]
    return {
        "$z_1$": np.arctanh(h1[0]), "$h_1$": h1[0], "$o_1$": o1[0], "$\\hat{y}_1$": yh1,
        "$L_1$": -np.log(yh1[1]), "$z_2$": np.arctanh(h2[0]), "$h_2$": h2[0], "$o_2$": o2[0],
        "$\\hat{y}_2$": yh2, "$L_2$": -np.log(yh2[0]), "$L$": L,
        "$\\delta^o_1$": (yh1 - onehot(1, 2)) / 2, "$\\delta^o_2$": (yh2 - onehot(0, 2)) / 2,
        "$\\partial L / \\partial h_2$": d2 / (1 - h2[0] ** 2), "$\\delta_2$": d2,
        "$\\partial L / \\partial h_1$": d1 / (1 - h1[0] ** 2), "$\\delta_1$": d1,
        "$\\partial L / \\partial h_0$": dh0[0], "$\\partial L / \\partial c$": g["c"],
        "$\\partial L / \\partial V$": g["V"][:, 0], "$\\partial L / \\partial b$": g["b"],
        "$\\partial L / \\partial W$": g["W"][0], "$\\partial L / \\partial U$": g["U"][0],
    }


def test_worked_example_every_number_is_the_engines():
    table, engine = worked_table(), worked_engine()
    assert set(table) == set(engine), (set(table) ^ set(engine))
    for name, printed in table.items():
        got = np.atleast_1d(np.asarray(engine[name], dtype=float))
        assert len(printed) == len(got), name
        np.testing.assert_allclose(printed, got, atol=5.1e-5, rtol=0, err_msg=name)


@equation("8.1", "92ccb4033892")
def _():
    p, rng = seed_model(12)
    ids = rng.integers(0, K, 7)
    h0 = rng.uniform(-0.5, 0.5, (1, H))
    flow = gradflow.grad_flow(p, ids, h0)
    hs = [h0[0]]
    for t in range(1, 7):
        hs.append(model.step(p, hs[-1][None], ids[t - 1:t])[0][0])
    Tn = 6
    for s in range(Tn):
        J = np.eye(H)
        for k in range(Tn, s, -1):                       # k = t first: the latest step on the left
            J = J @ (np.diag(1 - hs[k] ** 2) @ p["W"])
        _, o = model.step(p, hs[Tn - 1][None], ids[Tn - 1:Tn])
        g = J.T @ p["V"].T @ (softmax(o[0]) - onehot(ids[Tn]))
        assert math.isclose(flow.norms[Tn, s], np.linalg.norm(g), rel_tol=1e-10), s


@equation("8.2", "033bd155f5d7")
def _():
    p, rng = seed_model(13)
    x, y = rng.integers(0, K, T), rng.integers(0, K, T)
    h0 = rng.uniform(-0.5, 0.5, H)
    hs, yhat = column_forward(p, x, h0)
    dW = np.zeros((H, H))
    for t in range(1, T + 1):
        for s in range(1, t + 1):
            J = np.eye(H)
            for k in range(t, s, -1):
                J = J @ (np.diag(1 - hs[k] ** 2) @ p["W"])
            dLt_dhs = J.T @ p["V"].T @ (yhat[t] - onehot(y[t - 1]))
            dW += np.outer((1 - hs[s] ** 2) * dLt_dhs, hs[s - 1])
    _, grads, _ = model.loss_and_grads(p, x[None], y[None], h0[None])
    np.testing.assert_allclose(grads["W"], dW / T, rtol=1e-10, atol=1e-14)


@equation("8.3", "55d76e7aadb3")
def _():
    for seed in range(5):
        p, rng = seed_model(20 + seed)
        sigma = np.linalg.svd(p["W"], compute_uv=False)[0]
        assert np.abs(np.linalg.eigvals(p["W"])).max() <= sigma + 1e-12          # ρ ≤ σ_max
        h = rng.uniform(-0.9, 0.9, H)
        J, bound = np.eye(H), 1.0
        for k in range(1, 9):
            x = rng.integers(0, K, 1)
            h_new = model.step(p, h[None], x)[0][0]
            J = np.diag(1 - h_new ** 2) @ p["W"] @ J
            bound *= (1 - h_new ** 2).max() * sigma
            norm = np.linalg.svd(J, compute_uv=False)[0]
            assert norm <= bound * (1 + 1e-12) <= sigma ** k * (1 + 1e-12), (seed, k)
            h = h_new


@equation("9.1", "4d919d07dc79")
def _():
    rng = np.random.default_rng(14)
    g = {"a": rng.normal(0, 6, (3, 4)), "b": rng.normal(0, 6, 5)}
    want = {k: np.minimum(np.maximum(v, -5), 5) for k, v in g.items()}
    optim.clip_by_value(g, -5.0, 5.0)
    for k in g:
        np.testing.assert_array_equal(g[k], want[k])
    kappa = 2.0
    norm = math.sqrt(sum((v ** 2).sum() for v in g.values()))
    want = {k: v * min(1, kappa / (norm + 1e-6)) for k, v in g.items()}
    assert math.isclose(optim.clip_by_global_norm(g, kappa), norm, rel_tol=1e-12)
    for k in g:
        np.testing.assert_allclose(g[k], want[k], rtol=1e-12)


@equation("9.2", "e5ccee22ee32")
def _():
    rng = np.random.default_rng(15)
    theta = {"w": rng.normal(0, 1, 4)}
    eta, mu = 0.1, 0.9
    opt = optim.SGD(eta, momentum=mu)
    want, m = theta["w"].copy(), None
    for _ in range(4):
        g = rng.normal(0, 1, 4)
        m = g.copy() if m is None else mu * m + g
        want = want - eta * m
        opt.step(theta, {"w": g})
    np.testing.assert_allclose(theta["w"], want, rtol=1e-12)


@equation("9.3", "c77e59619665")
def _():
    rng = np.random.default_rng(16)
    theta = {"w": rng.normal(0, 1, 4)}
    eta, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = optim.Adam(eta, b1, b2, eps)
    want, m, v = theta["w"].copy(), np.zeros(4), np.zeros(4)
    for n in range(1, 6):
        g = rng.normal(0, 1, 4)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        want = want - eta * (m / (1 - b1 ** n)) / (np.sqrt(v / (1 - b2 ** n)) + eps)
        opt.step(theta, {"w": g})
    np.testing.assert_allclose(theta["w"], want, rtol=1e-10)


@equation("9.4", "681578d02a04")
def _():
    """A constant gradient: m_n = (1 − β1ⁿ) g, and every corrected step is η g / (|g| + ε)."""
    g = np.array([0.003, -2.0, 40.0])
    theta = {"w": np.zeros(3)}
    opt = optim.Adam(0.01, 0.9, 0.999, 1e-8)
    for n in range(1, 6):
        before = theta["w"].copy()
        opt.step(theta, {"w": g})
        np.testing.assert_allclose(opt.state["m"]["w"], (1 - 0.9 ** n) * g, rtol=1e-12)
        np.testing.assert_allclose(before - theta["w"], 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-9)


@equation("10.1", "c656c66dc715")
def _():
    rng = np.random.default_rng(17)
    o = rng.normal(0, 2, K)
    yhat = softmax(o)
    for tau in (0.5, 1.0, 1.5):
        p = np.exp(o / tau) / np.exp(o / tau).sum()
        np.testing.assert_allclose(p, yhat ** (1 / tau) / (yhat ** (1 / tau)).sum(), rtol=1e-12)
        M = 200_000
        u = (np.arange(M) + 0.5) / M                     # a uniform grid: each id's share is its p
        ids = model.draw_with(np.broadcast_to(o, (M, K)).copy(), u, temperature=tau)
        np.testing.assert_allclose(np.bincount(ids, minlength=K) / M, p, atol=2 / M)


@equation("11.1", "419e3a14a6a3")
def _():
    p, rng = seed_model(18)
    ids = rng.integers(0, K, 200)
    res = evaluate.score(p, ids, np.ones(K), data="random")
    total, n, _ = model.evaluate(p, ids)
    L = total / n
    assert math.isclose(res.nats_per_char, L, rel_tol=1e-12)
    assert math.isclose(res.bits_per_char, L / math.log(2), rel_tol=1e-12)
    assert math.isclose(res.perplexity, math.exp(L), rel_tol=1e-12)
    assert math.isclose(res.perplexity, 2 ** res.bits_per_char, rel_tol=1e-12)


@equation("12.1", "f22408f25681")
def _():
    """The stencil and e, through `charnn.eval.gradcheck.check_arrays` (what `gradcheck` runs): the stencil
    is exact for f = Σ θ⁴ (degree ≤ 4), so against an analytic gradient that is off by a known amount
    the reported error is e of (12.1) exactly."""
    theta = np.array([0.7, -2.5, 0.05, 3.0])
    f = lambda: float((theta ** 4).sum())
    num = 4 * theta ** 3
    for off in (1e-6, 1e-3, 0.3):
        ana = num + off * np.array([1.0, -2.0, 1.0, 0.5])
        (row,) = gradcheck.check_arrays(f, {"theta": theta}, {"theta": ana})
        e = np.abs(ana - num) / np.maximum(np.maximum(np.abs(ana), np.abs(num)), 1e-6)
        assert math.isclose(row.max_rel_error, e.max(), rel_tol=1e-3), off
    assert gradcheck.FLOOR == 1e-6 and gradcheck.TOLERANCE == 1e-6


@equation("A.1", "b00ead9c5762")
def _():
    """Row form: (B, H) blocks, matrices transposed, the U term a gather; the recursion in rows."""
    p, rng = seed_model(21)
    xs, ys, h0 = batch(rng)
    Hs = [h0]
    for t in range(T):
        Hs.append(np.tanh(Hs[-1] @ p["W"].T + p["U"].T[xs[:, t]] + p["b"]))
    for t in range(T):
        np.testing.assert_allclose(model.step(p, Hs[t], xs[:, t])[0], Hs[t + 1], rtol=1e-13)
    D_next, N = np.zeros((B, H)), B * T
    for t in range(T, 0, -1):
        D_o = (softmax(Hs[t] @ p["V"].T + p["c"]) - np.eye(K)[ys[:, t - 1]]) / N
        dH = D_o @ p["V"] + D_next @ p["W"]
        D_next = (1 - Hs[t] ** 2) * dH
    _, _, dh0 = model.loss_grads_dh0(p, xs, ys, h0)
    np.testing.assert_allclose(dh0, D_next @ p["W"], rtol=1e-10, atol=1e-14)


@equation("B.1", "a3350143bb6d")
def _():
    """The augmented rows of the fast path: g_k R = (∂L/∂h_k)ᵀ and Σ g_kᵀ ā_k holds all five gradients."""
    p, rng = seed_model(22)
    x, y = rng.integers(0, K, T), rng.integers(0, K, T)
    h0 = rng.uniform(-0.5, 0.5, H)
    _, dh, deltas, dh0, hs, yhat = column_backward(p, x, y, h0, T)
    R = np.vstack([p["V"], p["W"]])
    Mx = np.zeros((K + H, H + K + 1))
    for k in range(T + 1):
        x_next = onehot(x[k], K) if k < T else np.zeros(K)
        a = np.concatenate([hs[k], x_next, [1.0]])
        d_o = (yhat[k] - onehot(y[k - 1])) / T if k > 0 else np.zeros(K)
        g = np.concatenate([d_o, deltas[k + 1]])
        np.testing.assert_allclose(g @ R, dh[k] if k > 0 else dh0, rtol=1e-12, atol=1e-15)
        Mx += np.outer(g, a)
    loss, cache = fast_rnn.forward(p, x[None], y[None], h0[None])
    grads, dh0_fast = fast_rnn.backward(p, cache)
    blocks_ = {"V": Mx[:K, :H], "c": Mx[:K, -1], "W": Mx[K:, :H], "U": Mx[K:, H:H + K], "b": Mx[K:, -1]}
    for k, v in blocks_.items():
        np.testing.assert_allclose(grads[k], v, rtol=1e-10, atol=1e-14, err_msg=k)
    np.testing.assert_allclose(dh0_fast[0], dh0, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------------------------
# cells.md: the cells in column form per stream, against charnn.nn.cells (row form, time-major)

def sig(x):
    return 1 / (1 + np.exp(-x))


def cell_inputs(G: int, seed: int, Tn: int = 4, Bn: int = 2, Hn: int = 3):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.8, (Tn, Bn, G * Hn)), rng.normal(0, 0.5, (G * Hn, Hn)),
            rng.uniform(-0.7, 0.7, (Bn, Hn)), rng.normal(0, 1, (Tn, Bn, Hn)), rng)


@equation("C.1", "ae51012f6f10")
def _():
    """The stack's share for layer 1 of a 2-layer GRU: db, dU and the gradient handed to layer 0,
    from the cell's δa (cells.gru_backward run here on the layer's own cache)."""
    p = model.init_params(K, H, seed=30, dtype=np.float64, cell="gru", layers=2)
    rng = np.random.default_rng(30)
    xs, ys = rng.integers(0, K, (B, T)), rng.integers(0, K, (B, T))
    loss, cache = network.forward(p, xs, ys)
    grads, _ = network.backward(p, cache)
    loss, cache = network.forward(p, xs, ys)           # again: backward consumed the buffers
    do = cache.probs.copy()
    do[np.arange(T * B), cache.y] -= 1
    do /= T * B
    dh1 = (do @ p["V"]).reshape(T, B, H)
    da1, _, _, _ = cells.gru_backward(dh1, p["L1.W"], cache.caches[1])
    ins = cache.ins[0]                                  # layer 1's input, (T, B, H)
    db = sum(da1[t, j] for t in range(T) for j in range(B))
    dU = sum(np.outer(da1[t, j], ins[t, j]) for t in range(T) for j in range(B))
    np.testing.assert_allclose(grads["L1.b"], db, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads["L1.U"], dU, rtol=1e-10, atol=1e-14)
    d_in = np.einsum("gh,tbg->tbh", p["L1.U"], da1)     # Uᵀ δa, per step and stream
    da0, dW0, _, _ = cells.gru_backward(d_in, p["L0.W"], cache.caches[0])
    np.testing.assert_allclose(grads["L0.W"], dW0, rtol=1e-10, atol=1e-14)


@equation("C.2", "8cdc82f4e941")
def _():
    a, W, h0, dh_up, _ = cell_inputs(1, 31)
    Tn, Bn, Hn = dh_up.shape
    hs, cache = cells.rnn_forward(a.copy(), W, h0)
    da, dW, dh0 = cells.rnn_backward(dh_up.copy(), W, cache)
    for j in range(Bn):
        h = [h0[j]]
        for t in range(Tn):
            h.append(np.tanh(a[t, j] + W @ h[-1]))
        np.testing.assert_allclose(hs[1:, j], np.array(h[1:]), rtol=1e-12)
        d_next, dW_j = np.zeros(Hn), np.zeros((Hn, Hn))
        for t in range(Tn, 0, -1):
            d = (1 - h[t] ** 2) * (dh_up[t - 1, j] + W.T @ d_next)
            np.testing.assert_allclose(da[t - 1, j], d, rtol=1e-11, atol=1e-14)
            dW_j += np.outer(d, h[t - 1])
            d_next = d
        np.testing.assert_allclose(dh0[j], W.T @ d_next, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(dW, sum(np.outer(da[t, j], hs[t, j]) for t in range(Tn) for j in range(Bn)), rtol=1e-11)


def lstm_column(a, W, h0, C0):
    """(C.3) for one stream: per step the gates, C_t and h_t."""
    Hn = len(h0)
    out, h, C = [], h0, C0
    for t in range(len(a)):
        pre = a[t] + W @ h
        i, f, w, g = sig(pre[:Hn]), sig(pre[Hn:2 * Hn]), sig(pre[2 * Hn:3 * Hn]), np.tanh(pre[3 * Hn:])
        C_new = f * C + i * g
        h_new = w * np.tanh(C_new)
        out.append(dict(i=i, f=f, w=w, g=g, C=C_new, C_prev=C, h=h_new, h_prev=h))
        h, C = h_new, C_new
    return out


@equation("C.3", "32c7363c6945")
def _():
    a, W, h0, _, rng = cell_inputs(4, 32, Tn=6)          # T > 4: the compiled kernels run
    C0 = rng.uniform(-0.7, 0.7, h0.shape)
    hs, cache = cells.lstm_forward(a.copy(), W, h0, C0)
    for j in range(h0.shape[0]):
        steps = lstm_column(a[:, j], W, h0[j], C0[j])
        np.testing.assert_allclose(hs[1:, j], [s_["h"] for s_ in steps], rtol=1e-12)
        np.testing.assert_allclose(cache.cs[1:, j], [s_["C"] for s_ in steps], rtol=1e-12)


@equation("C.4", "ff771a0a3603")
def _():
    for Tn in (3, 6):                                    # the NumPy path and the compiled kernel
        a, W, h0, dh_up, rng = cell_inputs(4, 33, Tn=Tn)
        C0 = rng.uniform(-0.7, 0.7, h0.shape)
        hs, cache = cells.lstm_forward(a.copy(), W, h0, C0)
        da, dW, dh0, dC0 = cells.lstm_backward(dh_up.copy(), W, cache)
        Hn = h0.shape[1]
        for j in range(h0.shape[0]):
            st = lstm_column(a[:, j], W, h0[j], C0[j])
            dC_next, f_next, rec = np.zeros(Hn), np.zeros(Hn), np.zeros(Hn)
            for t in range(Tn, 0, -1):
                s_ = st[t - 1]
                dh = dh_up[t - 1, j] + rec
                tc = np.tanh(s_["C"])
                dC = dh * s_["w"] * (1 - tc ** 2) + dC_next * f_next
                d = np.concatenate([dC * s_["g"] * s_["i"] * (1 - s_["i"]), dC * s_["C_prev"] * s_["f"] * (1 - s_["f"]),
                                    dh * tc * s_["w"] * (1 - s_["w"]), dC * s_["i"] * (1 - s_["g"] ** 2)])
                np.testing.assert_allclose(da[t - 1, j], d, rtol=1e-10, atol=1e-13)
                rec, dC_next, f_next = W.T @ d, dC, s_["f"]
            np.testing.assert_allclose(dh0[j], rec, rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(dC0[j], dC_next * f_next, rtol=1e-10, atol=1e-13)


def gru_column(a, W, bn, h0):
    Hn = len(h0)
    out, h = [], h0
    for t in range(len(a)):
        q = W @ h
        r, u = sig(a[t, :Hn] + q[:Hn]), sig(a[t, Hn:2 * Hn] + q[Hn:2 * Hn])
        qh = q[2 * Hn:] + bn
        n = np.tanh(a[t, 2 * Hn:] + r * qh)
        h_new = (1 - u) * n + u * h
        out.append(dict(r=r, u=u, qh=qh, n=n, h=h_new, h_prev=h))
        h = h_new
    return out


@equation("C.5", "4b826b1b4b05")
def _():
    a, W, h0, _, rng = cell_inputs(3, 34)
    bn = rng.normal(0, 0.5, h0.shape[1])
    hs, _ = cells.gru_forward(a.copy(), W, bn, h0)
    for j in range(h0.shape[0]):
        np.testing.assert_allclose(hs[1:, j], [s_["h"] for s_ in gru_column(a[:, j], W, bn, h0[j])], rtol=1e-12)


@equation("C.6", "88361774908d")
def _():
    a, W, h0, dh_up, rng = cell_inputs(3, 35)
    bn = rng.normal(0, 0.5, h0.shape[1])
    Tn, Hn = a.shape[0], h0.shape[1]
    hs, cache = cells.gru_forward(a.copy(), W, bn, h0)
    da, dW, dbn, dh0 = cells.gru_backward(dh_up.copy(), W, cache)
    dW_want, dbn_want = np.zeros_like(W), np.zeros(Hn)
    for j in range(h0.shape[0]):
        st = gru_column(a[:, j], W, bn, h0[j])
        dh = dh_up[Tn - 1, j]
        for t in range(Tn, 0, -1):
            s_ = st[t - 1]
            dn = dh * (1 - s_["u"]) * (1 - s_["n"] ** 2)
            du = dh * (s_["h_prev"] - s_["n"]) * s_["u"] * (1 - s_["u"])
            dr = dn * s_["qh"] * s_["r"] * (1 - s_["r"])
            dq = dn * s_["r"]
            np.testing.assert_allclose(da[t - 1, j], np.concatenate([dr, du, dn]), rtol=1e-10, atol=1e-13)
            rec = np.concatenate([dr, du, dq])
            dW_want += np.outer(rec, s_["h_prev"])
            dbn_want += dq
            dh = (dh_up[t - 2, j] if t > 1 else 0) + dh * s_["u"] + W.T @ rec
        np.testing.assert_allclose(dh0[j], dh, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dW, dW_want, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dbn, dbn_want, rtol=1e-10, atol=1e-13)


@equation("C.7", "90af1b851227")
def _():
    """A 1-layer RNN with a mask before the output layer: the loss of o_t = V(ξ ⊙ h_t) + c, and
    ∂L/∂V = Σ δo (ξ ⊙ h)ᵀ; the masks are 0 or 1/(1 − p)."""
    p = model.init_params(K, H, seed=36, dtype=np.float64, cell="rnn", layers=2)
    rng = np.random.default_rng(36)
    xs, ys = rng.integers(0, K, (B, T)), rng.integers(0, K, (B, T))
    masks = model.dropout_masks(rng, 0.4, 2, T, B, H, np.float64)
    assert set(np.unique(np.concatenate([m.ravel() for m in masks]))) <= {0.0, 1 / 0.6}
    loss, grads, _ = model.loss_and_grads(p, xs, ys, masks=masks)
    total, dV = 0.0, np.zeros_like(p["V"])
    for j in range(B):
        h = [np.zeros(H), np.zeros(H)]
        for t in range(T):
            inp = onehot(xs[j, t])
            for l in range(2):
                h[l] = np.tanh(p[f"L{l}.U"] @ inp + p[f"L{l}.b"] + p[f"L{l}.W"] @ h[l])
                inp = masks[l][t, j] * h[l]                # in^{l+1} = ξ^l ⊙ h^l; the top one feeds V
            yhat = softmax(p["V"] @ inp + p["c"])
            total -= np.log(yhat[ys[j, t]])
            dV += np.outer((yhat - onehot(ys[j, t])) / (B * T), inp)
    assert math.isclose(loss, total / (B * T), rel_tol=1e-12)
    np.testing.assert_allclose(grads["V"], dV, rtol=1e-10, atol=1e-14)


@equation("C.8", "453a2b5dd521")
def _():
    p = model.init_params(K, H, seed=37, dtype=np.float64, cell="lstm")
    rng = np.random.default_rng(37)
    xs, ys = rng.integers(0, K, (B, T)), rng.integers(0, K, (B, T))
    M = model.weight_drop_masks(rng, 0.3, p)
    loss, grads, _ = model.loss_and_grads(p, xs, ys, weight_masks=M)
    tilde = {k: (M[k] * v if k in M else v) for k, v in p.items()}
    loss_t, grads_t, _ = model.loss_and_grads(tilde, xs, ys)
    assert math.isclose(loss, loss_t, rel_tol=1e-12)
    for k in M:
        np.testing.assert_allclose(grads[k], M[k] * grads_t[k], rtol=1e-12, atol=1e-15)


@equation("C.8a", "df087a5eb425")
def _():
    from charnn.data.corpus import Corpus
    from charnn.train import sizing
    from charnn.train.config import Config
    from charnn.train.trainer import Trainer

    text = "a budget reads the text so many times. " * 300
    cfg = Config(cell="gru", layers=2, hidden_size=24, batch_size=4, max_len=10, val_fraction=0.05,
                 test_fraction=0.1, reg_exposure=8.0, dropout=0.3, weight_drop=0.2, weight_decay=0.1)
    corpus = Corpus.from_text(text)
    P = sum(v.size for v in model.init_params(len(corpus.vocab), 24, seed=0, cell="gru", layers=2).values())
    batches = len(Trainer(cfg, corpus, progress=False, log=None).batches)
    N = batches * 4 * 10                                   # the training characters of one epoch
    E = 150 / batches                                      # 150 steps
    x = sizing.exposure(cfg, corpus, steps=150)
    assert math.isclose(x, P / N * E, rel_tol=1e-12)
    scaled, s = sizing.regularised(cfg, x)
    assert math.isclose(s, min(1.0, x / 8.0), rel_tol=1e-12)
    assert math.isclose(scaled.dropout, 0.3 * s, rel_tol=2e-3) and math.isclose(scaled.weight_decay, 0.1 * s, rel_tol=2e-3)


@equation("C.8b", "f4b2a0d08f66")
def _():
    from charnn.data.corpus import Corpus
    from charnn.train.config import Config
    from charnn.train.trainer import Trainer

    cfg = Config(cell="gru", layers=2, hidden_size=8, batch_size=4, max_len=10, max_steps=40, reg_ramp=0.25,
                 dropout=0.3, weight_drop=0.2, weight_decay=0.1)
    t = Trainer(cfg, Corpus.from_text("the ramp rises with the run. " * 100), progress=False, log=None)
    for n in range(40):                                    # p_n = n / 40 without a time budget
        t.step = n
        assert math.isclose(t.reg_scale(), min(1.0, (n / 40) / 0.25), rel_tol=1e-12)
    timed = Trainer(cfg.replace(max_minutes=4.0), t.corpus, progress=False, log=None)
    for seconds in (0.0, 12.0, 30.0, 60.0, 200.0):         # p = train_s / 240 s with one
        timed.train_before = seconds
        assert math.isclose(timed.reg_scale(), min(1.0, seconds / 240 / 0.25), rel_tol=1e-12)


@equation("C.9", "3c5cf415dbad")
def _():
    p = model.init_params(K, H, seed=38, dtype=np.float64, cell="gru", embed=3)
    rng = np.random.default_rng(38)
    xs, ys = rng.integers(0, K, (B, T)), rng.integers(0, K, (B, T))
    loss, grads, _ = model.loss_and_grads(p, xs, ys)
    pre = model.prefixes(p)[0]
    onehot_p = {k: v for k, v in p.items() if k != "E"}
    onehot_p[pre + "U"] = p[pre + "U"] @ p["E"].T         # U⁰ E[x] is column x of U⁰ Eᵀ
    loss1, grads1, _ = model.loss_and_grads(onehot_p, xs, ys)
    assert math.isclose(loss, loss1, rel_tol=1e-12)
    dUx = grads1[pre + "U"]
    np.testing.assert_allclose(grads[pre + "U"], dUx @ p["E"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads["E"], dUx.T @ p[pre + "U"], rtol=1e-10, atol=1e-14)


@equation("C.10", "0ee97dc77a2c")
def _():
    p, rng = seed_model(39)
    ids = rng.integers(0, K, 300)
    tau = 1.3
    total, n, _ = model.evaluate(calibrate.apply(p, tau), ids)
    hs, yhat = column_forward(p, ids[:-1], np.zeros(H))
    want = np.mean([-np.log(softmax((p["V"] @ hs[t] + p["c"]) / tau)[ids[t]]) for t in range(1, len(ids))])
    assert math.isclose(total / n, want, rel_tol=1e-10)
    o = rng.normal(0, 1, (400, K)) * 2
    y = np.array([np.searchsorted(np.cumsum(softmax(row / 1.6)), rng.random()) for row in o])
    y = np.minimum(y, K - 1)
    fitted = calibrate.fit_temperature(o, y)
    betas = np.linspace(0.2, 5, 4801)
    L = [np.mean(np.log(np.exp(b_ * o).sum(axis=1)) - b_ * o[np.arange(400), y]) for b_ in betas]
    assert abs(1 / fitted - betas[int(np.argmin(L))]) < 2e-3


@equation("C.11", "7cd086f6c46f")
def _():
    p, rng = seed_model(40)
    ids = rng.integers(0, K, 40)
    size, theta = 6, 3.0
    p_model, p_cache = cache_probs = __import__("charnn.eval.cache", fromlist=["cache_probs"]).cache_probs(
        p, ids, size=size, thetas=[theta])
    hs, yhat = column_forward(p, ids[:-1], np.zeros(H))
    for t in range(1, len(ids)):
        y = ids[t]
        assert math.isclose(p_model[t - 1], yhat[t][y], rel_tol=1e-10)
        window = range(max(1, t - size), t)
        if not window:
            continue
        cos = np.array([hs[t] @ hs[i] / np.linalg.norm(hs[t]) / np.linalg.norm(hs[i]) for i in window])
        alpha = softmax(theta * cos)
        want = sum(a_ for a_, i in zip(alpha, window) if ids[i] == y)
        assert math.isclose(p_cache[0, t - 1], want, rel_tol=1e-9, abs_tol=1e-15), t


# --------------------------------------------------------------------------------------------
# one test per numbered equation (every @equation above is registered by now)

@pytest.mark.parametrize("tag", sorted(TESTS))
def test_equation(tag):
    TESTS[tag]()


def test_the_initialisation_figures_the_derivation_states():
    """Section 8: σ_max(W) = 1.14 and ρ(W) = 0.61 at charnn's initialisation of the seed model."""
    text = PAGES["derivation"].read_text(encoding="utf-8")
    assert "$\\sigma_{\\max}(W) = 1.14$ but $\\rho(W) = 0.61$" in text
    W = model.init_params(65, 256, seed=42, dtype=np.float64)["W"]
    assert round(float(np.linalg.svd(W, compute_uv=False)[0]), 2) == 1.14
    assert round(float(np.abs(np.linalg.eigvals(W)).max()), 2) == 0.61
