"""`charnn serve` as a real uvicorn process on loopback: many requests at once, clients that go
away, and the command line's refusals."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from charnn import sample
from charnn.train import checkpoint
from clihelp import Result, assert_user_error, charnn_subprocess
from webhelp import serve, train_small

WAIT_S = 60      # a failure bound for the server to settle, never a performance threshold


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    train_small(root)
    return root


@pytest.fixture(scope="module")
def server(root):
    with serve(root) as (proc, base):
        yield proc, base


def test_it_binds_loopback_and_prints_its_url(server):
    _, base = server
    assert base.startswith("http://127.0.0.1:")


def test_fifty_concurrent_generations_are_all_answered_correctly(server, root):
    _, base = server
    ckpt = checkpoint.load(checkpoint.resolve(root / "small"))
    want = {s: sample.generate_text(ckpt.model_params, ckpt.vocab, "ROMEO:", 200, rng=np.random.default_rng(s))[0]
            for s in range(50)}

    def one(seed: int) -> tuple[int, str]:
        stream = seed % 2 == 1
        body = {"model": "small", "prompt": "ROMEO:", "length": 200, "seed": seed, "stream": stream}
        r = httpx.post(base + "/api/generate", json=body, timeout=WAIT_S * 5)
        assert r.status_code == 200, r.text
        if not stream:
            return seed, r.json()["text"]
        chars = [json.loads(b.split("data: ", 1)[1]) for b in r.text.split("\n\n") if b.startswith("event: chars")]
        return seed, "".join(c["char"] for chunk in chars for c in chunk)

    with ThreadPoolExecutor(50) as pool:
        got = dict(pool.map(one, range(50)))
    assert got == want


def test_a_streamed_generation_stops_when_its_client_goes_away(server):
    _, base = server
    before = httpx.get(base + "/api/status").json()["chars_generated"]
    body = {"model": "small", "prompt": "ROMEO:", "length": 10_000, "seed": 1, "stream": True}
    with httpx.Client(timeout=WAIT_S) as client:
        with client.stream("POST", base + "/api/generate", json=body) as r:
            for line in r.iter_lines():
                if line.startswith("event: chars"):
                    break                        # one chunk read, then the client hangs up
    deadline = time.monotonic() + WAIT_S
    while (status := httpx.get(base + "/api/status").json())["generating"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status["generating"] == 0
    assert status["chars_generated"] - before < 10_000


def serve_refusal(*args) -> Result:
    """`charnn serve ARGS` as a child process that must exit by itself (a serve that starts would not)."""
    proc = charnn_subprocess("serve", *args)
    try:
        out, err = proc.communicate(timeout=3 * WAIT_S)   # a bound on a loaded machine, not a speed test
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"charnn serve {args} started serving instead of refusing")
    return Result(proc.returncode, out, err)


def test_serve_refuses_a_missing_path(tmp_path):
    assert_user_error(serve_refusal(tmp_path / "nope"), "not found", "nope")


def test_serve_refuses_a_file_that_is_not_a_checkpoint_and_a_fifo(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n" * 100)
    r = serve_refusal(text)
    assert r.rc == 2 and "notes.txt" in r.err and "Traceback" not in r.err, r.err
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_user_error(serve_refusal(fifo), "not a folder or a checkpoint file")


def test_serve_refuses_a_port_out_of_range(root):
    assert_user_error(serve_refusal(root, "--port", "70000"), "--port must be in 0..65535")


def test_serve_refuses_a_port_in_use(root):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert_user_error(serve_refusal(root, "--port", str(port)), "cannot serve on 127.0.0.1:")
