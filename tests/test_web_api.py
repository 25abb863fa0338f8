"""The web app's JSON API (FastAPI's TestClient): real values, and every bad input a 4xx with one line."""
from __future__ import annotations

import asyncio
import json
import math
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from charnn import model, sample
from charnn.apps import inside as inside_lib
from charnn.train import checkpoint
from charnn.web import app as web_app
from charnn.web.limits import MAX_LENGTH
from webhelp import train_small


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    train_small(root)
    return root


@pytest.fixture(scope="module")
def client(root):
    return TestClient(web_app.create_app([root]))


@pytest.fixture(scope="module")
def ckpt(root):
    return checkpoint.load(checkpoint.resolve(root / "small"))


def one_line_error(r, status: int, *needles: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in r.text
    for n in needles:
        assert n in detail, (n, detail)
    return detail


def events(body: str) -> list[tuple[str, object]]:
    out = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_models_lists_the_served_run_by_id_without_paths(client, root):
    models = client.get("/api/models").json()
    assert [m["id"] for m in models] == ["small"]
    assert models[0]["config"]["hidden_size"] == 16 and models[0]["config"]["cell"] == "rnn"
    assert str(root) not in json.dumps(models)


def test_generate_gives_the_text_charnn_sample_gives_for_the_seed(client, ckpt):
    body = {"model": "small", "prompt": "ROMEO:", "length": 80, "temperature": 0.9, "top_k": 10, "top_p": 0.95,
            "seed": 11}
    r = client.post("/api/generate", json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    want = sample.generate_text(ckpt.model_params, ckpt.vocab, "ROMEO:", 80, rng=np.random.default_rng(11),
                                temperature=0.9, top_k=10, top_p=0.95)[0]
    assert got["text"] == want
    assert "".join(c["char"] for c in got["chars"]) == want and got["seed"] == 11


def test_each_character_carries_its_probability_and_the_top_five(client, ckpt):
    r = client.post("/api/generate", json={"model": "small", "prompt": "ROMEO:", "length": 5, "seed": 2,
                                           "temperature": 0.7})
    first = r.json()["chars"][0]
    # The first character is predicted from the whole prompt: softmax(o / T) after reading it.
    params, vocab = ckpt.model_params, ckpt.vocab
    h, x = sample.prime(params, vocab.encode("ROMEO:"), 1)
    _, o = model.step(params, h, x)
    z = np.asarray(o[0], dtype=np.float64) / 0.7
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    order = np.argsort(-p, kind="stable")[:5]
    assert [c for c, _ in first["top"]] == [vocab.chars[i] for i in order]
    assert [q for _, q in first["top"]] == pytest.approx(p[order].tolist(), abs=1e-6)
    assert first["p"] == pytest.approx(p[vocab.chars.index(first["char"])], abs=1e-6)


def test_streamed_generation_sends_the_same_characters_in_events(client):
    body = {"model": "small", "prompt": "ROMEO:", "length": 120, "seed": 5}
    whole = client.post("/api/generate", json=body).json()
    r = client.post("/api/generate", json={**body, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = events(r.text)
    assert evs[0][0] == "start" and evs[0][1]["seed"] == 5
    assert evs[-1] == ("done", {"chars": 120})
    chunks = [d for e, d in evs if e == "chars"]
    assert len(chunks[0]) == 1 and len(chunks) > 2         # the first character comes alone, at once
    assert "".join(c["char"] for chunk in chunks for c in chunk) == whole["text"]
    assert [c for chunk in chunks for c in chunk] == whole["chars"]


def test_without_a_seed_the_answer_names_one_that_reproduces_it(client):
    a = client.post("/api/generate", json={"model": "small", "prompt": "A", "length": 30}).json()
    b = client.post("/api/generate", json={"model": "small", "prompt": "A", "length": 30, "seed": a["seed"]}).json()
    assert isinstance(a["seed"], int) and a["text"] == b["text"]


def test_continuing_from_a_candidate_is_a_generation_from_the_longer_prompt(client, ckpt):
    a = client.post("/api/generate", json={"model": "small", "prompt": "ROMEO:", "length": 10, "seed": 1}).json()
    alt = a["chars"][3]["top"][1][0]
    prompt = "ROMEO:" + a["text"][:3] + alt
    b = client.post("/api/generate", json={"model": "small", "prompt": prompt, "length": 10, "seed": 1}).json()
    want = sample.generate_text(ckpt.model_params, ckpt.vocab, prompt, 10, rng=np.random.default_rng(1))[0]
    assert b["text"] == want


BAD_GENERATE = [
    ({"temperature": 0}, 400, "temperature"),
    ({"temperature": -1.5}, 400, "temperature"),
    ({"temperature": "hot"}, 422, "temperature"),
    ({"length": -1}, 400, "length"),
    ({"length": MAX_LENGTH + 1}, 400, "length must be at most"),
    ({"length": 10**12}, 400, "length must be at most"),
    ({"length": 2.5}, 422, "length"),
    ({"top_p": 0}, 400, "top-p"),
    ({"top_p": 1.01}, 400, "top-p"),
    ({"top_p": -0.5}, 400, "top-p"),
    ({"top_k": -3}, 400, "top-k"),
    ({"prompt": "ROMEO€"}, 400, "'€'"),
    ({"seed": -1}, 422, "seed"),
    ({"model": "nope"}, 404, "nope"),
    ({"model": ""}, 422, "model"),
    ({"colour": "red"}, 422, "colour"),
]


@pytest.mark.parametrize("change,status,needle", BAD_GENERATE)
def test_bad_generation_requests_get_a_4xx_with_one_line(client, change, status, needle):
    r = client.post("/api/generate", json={"model": "small", "prompt": "ROMEO:", "length": 10, **change})
    one_line_error(r, status, needle)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_temperature_of_nan_or_inf_is_refused(client, value):
    body = json.dumps({"model": "small", "temperature": value})      # NaN / Infinity literals, as Python writes them
    r = client.post("/api/generate", content=body, headers={"content-type": "application/json"})
    one_line_error(r, 400, "temperature must be a finite number")


def test_malformed_json_is_a_422_with_one_line(client):
    r = client.post("/api/generate", content=b"{not json", headers={"content-type": "application/json"})
    one_line_error(r, 422)


TRAVERSALS = ["../small", "..", "small/../small", "/etc/passwd", "..\\small", "C:small", "~root", "small\x00"]


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_a_path_in_the_model_field_is_refused(client, bad):
    for url, extra in (("/api/generate", {}), ("/api/inside", {"text": "ROMEO"})):
        r = client.post(url, json={"model": bad, **extra})
        one_line_error(r, 422, "not a path")


@pytest.mark.parametrize("bad", ["..", "...", "%2e%2e", "..%2F..%2Fetc", "%2E%2E%5C", "a%00b", "~"])
def test_a_path_as_run_id_is_refused(client, bad):
    for what in ("metrics", "samples"):
        r = client.get(f"/api/runs/{bad}/{what}")
        assert r.status_code in (400, 404), (bad, r.status_code, r.text)
        assert "Traceback" not in r.text and "step" not in r.text


@pytest.mark.parametrize("url", ["/static/../app.py", "/static/..%2Fapp.py", "/static/%2e%2e/runs.py",
                                 "/shared/../inside.py", "/shared/..%2F..%2Fweb%2Fapp.py", "/static//etc/passwd"])
def test_static_files_do_not_leave_their_folders(client, url):
    r = client.get(url)
    assert r.status_code == 404, (url, r.status_code)
    assert "create_app" not in r.text and "def " not in r.text


def test_the_inside_split_field_takes_only_val(client):
    for bad in ("train", "../val", "/etc/passwd"):
        one_line_error(client.post("/api/inside", json={"model": "small", "split": bad}), 422, "split")


def test_a_10_mb_body_is_refused_with_413(client):
    big = json.dumps({"model": "small", "prompt": "a" * (10 * 1024 * 1024)}).encode()
    r = client.post("/api/generate", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_a_chunked_body_over_the_limit_is_refused_with_413(client):
    def chunks():
        yield b'{"model": "small", "prompt": "'
        for _ in range(40):
            yield b"a" * (256 * 1024)
        yield b'"}'
    r = client.post("/api/inside", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_inside_of_a_text(client, ckpt):
    text = "ROMEO: what light through yonder window breaks?"
    r = client.post("/api/inside", json={"model": "small", "text": text})
    assert r.status_code == 200, r.text
    got = r.json()
    want = inside_lib.analyze(ckpt.model_params, ckpt.vocab, text)
    assert got["schema"] == "charnn.inside/1" and got["text"] == text and got["chars"] == len(text)
    assert got["surprise"] == want["surprise"] and got["states"]["L0.h"] == want["states"]["L0.h"]
    assert len(got["states"]["L0.h"]) == 16 and len(got["states"]["L0.h"][0]) == len(text)


def test_inside_of_a_validation_slice(client, ckpt):
    r = client.post("/api/inside", json={"model": "small", "split": "val", "start": 100, "length": 300})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == inside_lib.validation_text(ckpt, 300, 100)


@pytest.mark.parametrize("body,status,needle", [
    ({}, 400, "either a text or split"),
    ({"text": "ROMEO", "split": "val"}, 400, "either a text or split"),
    ({"text": ""}, 400, "empty"),
    ({"text": "ROMEO€"}, 400, "'€'"),
    ({"text": "a" * 10_001}, 422, "text"),
    ({"split": "val", "length": 1}, 422, "length"),
    ({"split": "val", "start": -5}, 422, "start"),
])
def test_bad_inside_requests_get_a_4xx_with_one_line(client, body, status, needle):
    one_line_error(client.post("/api/inside", json={"model": "small", **body}), status, needle)


def test_metrics_are_read_incrementally_from_a_byte_offset(tmp_path, root):
    served = tmp_path / "served"
    shutil.copytree(root / "small", served / "copy")
    c = TestClient(web_app.create_app([served]))
    path = served / "copy" / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    first = c.get("/api/runs/copy/metrics").json()
    assert first["rows"] == rows and first["offset"] == path.stat().st_size and not first["reset"] and first["more"] is False
    assert c.get("/api/runs/copy/metrics", params={"offset": first["offset"]}).json()["rows"] == []
    with open(path, "a") as f:             # the trainer appends a row, and half of the next
        f.write(json.dumps({"step": 999, "train_loss": 1.5}) + "\n" + '{"step": 10')
    nxt = c.get("/api/runs/copy/metrics", params={"offset": first["offset"]}).json()
    assert nxt["rows"] == [{"step": 999, "train_loss": 1.5}]
    assert nxt["offset"] == path.stat().st_size - len('{"step": 10')
    path.write_text(json.dumps({"step": 1, "train_loss": 4.0}) + "\n")      # started again (--overwrite)
    again = c.get("/api/runs/copy/metrics", params={"offset": nxt["offset"]}).json()
    assert again["reset"] and again["rows"] == [{"step": 1, "train_loss": 4.0}]
    one_line_error(c.get("/api/runs/copy/metrics", params={"offset": -1}), 422, "offset")


def test_a_run_started_under_a_served_folder_appears(tmp_path, root):
    served = tmp_path / "served"
    shutil.copytree(root / "small", served / "old")
    c = TestClient(web_app.create_app([served]))
    assert [r["id"] for r in c.get("/api/runs").json()] == ["old"]
    (served / "new").mkdir()
    (served / "new" / "metrics.jsonl").write_text(json.dumps({"step": 5, "train_loss": 3.0}) + "\n")
    runs = {r["id"]: r for r in c.get("/api/runs").json()}
    assert set(runs) == {"old", "new"} and runs["new"]["training"] and not runs["new"]["has_model"]
    assert c.get("/api/runs/new/metrics").json()["rows"] == [{"step": 5, "train_loss": 3.0}]
    assert [m["id"] for m in c.get("/api/models").json()] == ["old"]       # no checkpoint yet
    one_line_error(c.post("/api/generate", json={"model": "new"}), 404, "no checkpoint")


def test_samples_of_each_epoch(client, root):
    samples = client.get("/api/runs/small/samples").json()
    assert len(samples) == 1 and samples[0]["head"].startswith("epoch 1, step ")
    assert samples[0]["text"].startswith("ROMEO:") and samples[0]["text"] in (root / "small" / "samples.txt").read_text()


def test_openapi_describes_the_api(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/models", "/api/generate", "/api/inside", "/api/runs", "/api/runs/{run_id}/metrics",
            "/api/runs/{run_id}/samples"} <= set(spec["paths"])
    props = spec["components"]["schemas"]["GenerateRequest"]["properties"]
    assert {"model", "prompt", "length", "temperature", "top_k", "top_p", "seed", "stream"} == set(props)


def test_the_pages_load(client):
    for page in ("write", "inside", "train"):
        r = client.get(f"/{page}")
        assert r.status_code == 200 and "<script" in r.text and "http" not in r.text.replace("http-equiv", "")
    assert client.get("/", follow_redirects=False).headers["location"] == "/write"
    assert "CharnnInside" in client.get("/shared/inside.js").text
    assert client.get("/docs").status_code == 404        # FastAPI's page loads from a CDN: off


class FakeRequest:
    """A client that goes away after `after` checks."""

    def __init__(self, after: int):
        self.after, self.checks = after, 0

    async def is_disconnected(self) -> bool:
        self.checks += 1
        return self.checks > self.after


def test_streaming_stops_when_the_client_goes_away(ckpt):
    pulled = []

    def records():
        for r in sample.generate_records(ckpt.model_params, ckpt.vocab, "ROMEO:", 5000, seed=0):
            pulled.append(r)
            yield r

    gen = web_app.Generation(records(), asyncio.Semaphore(1), web_app.Stats())

    async def consume():
        return [e async for e in web_app.stream_events(gen, FakeRequest(after=3), {"seed": 0})]

    out = asyncio.run(consume())
    assert [e.split("\n")[0] for e in out] == ["event: start"] + ["event: chars"] * 3 + ["event: done"]
    assert len(pulled) == 1 + 2 + 4          # three batches (1, 2, 4 characters), then nothing more
    assert gen.stats.generating == 0 and gen.stats.chars == 7
