"""`charnn serve` under load on loopback: 50 concurrent generations, latency, memory, streaming rate.

Two models, randomly initialised (timing does not depend on the weights): the seed's (one RNN
layer, H = 256) and the best-CPU preset's size (configs/best-cpu.toml: GRU 2 x 1024), both on
Tiny Shakespeare's 65-character vocabulary. For each, against one real `charnn serve` process:

* 50 non-streamed POST /api/generate requests sent at once (seeds 0..49), each checked against
  `charnn.sample.generate_text` with the same seed in this process; p50 and p99 of their latency;
  the server's resident memory (RSS) before and after the burst;
* streamed requests (`"stream": true`) one at a time: time from sending to the first generated
  character, and characters per second from there to the end.

    python benchmarks/bench_serve.py [--burst-length 200] [--stream-length 2000] [--big-burst-length 10]
                                     [--big-stream-length 100] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil

from charnn import model, sample
from charnn.data import default_corpus_path
from charnn.data.vocab import Vocab
from charnn.train import checkpoint
from charnn.train.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from webhelp import serve  # noqa: E402

PROMPT = "ROMEO:"
CONCURRENT = 50


def make_run(root: Path, name: str, cfg: Config, vocab: Vocab) -> Path:
    """A run folder holding a randomly initialised checkpoint of `cfg`."""
    params = model.init_params(len(vocab), cfg.hidden_size, seed=0, dtype=np.dtype(cfg.dtype), cell=cfg.cell,
                               layers=cfg.layers, embed=cfg.embed)
    (root / name / "checkpoints").mkdir(parents=True)
    ckpt = checkpoint.Checkpoint(config=cfg, vocab=vocab, params=params, optim_hyper={"kind": cfg.optimizer, "t": 0})
    checkpoint.save(root / name / "checkpoints" / "best.safetensors", ckpt)
    return root / name


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def burst(base: str, name: str, ckpt: checkpoint.Checkpoint, length: int, pid: int) -> dict:
    want = {s: sample.generate_text(ckpt.model_params, ckpt.vocab, PROMPT, length, rng=np.random.default_rng(s))[0]
            for s in range(CONCURRENT)}
    proc = psutil.Process(pid)
    httpx.post(base + "/api/generate", json={"model": name, "prompt": PROMPT, "length": 10, "seed": 0}, timeout=600)
    rss_before = proc.memory_info().rss

    def one(seed: int) -> tuple[int, str, float]:
        t = time.perf_counter()
        r = httpx.post(base + "/api/generate", json={"model": name, "prompt": PROMPT, "length": length, "seed": seed},
                       timeout=600)
        r.raise_for_status()
        return seed, r.json()["text"], time.perf_counter() - t

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENT) as pool:
        results = list(pool.map(one, range(CONCURRENT)))
    wall = time.perf_counter() - t0
    rss_after = proc.memory_info().rss
    correct = sum(text == want[seed] for seed, text, _ in results)
    lat = [s for _, _, s in results]
    return {"requests": CONCURRENT, "length": length, "correct": correct, "p50_s": percentile(lat, 50),
            "p99_s": percentile(lat, 99), "wall_s": wall, "chars_per_s_total": CONCURRENT * length / wall,
            "rss_before_mb": rss_before / 2**20, "rss_after_mb": rss_after / 2**20}


def stream(base: str, name: str, length: int, reps: int) -> dict:
    firsts, rates = [], []
    for rep in range(reps):
        body = {"model": name, "prompt": PROMPT, "length": length, "seed": rep, "stream": True}
        t0 = time.perf_counter()
        first = None
        n = 0
        with httpx.Client(timeout=600) as client, client.stream("POST", base + "/api/generate", json=body) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if line.startswith("data: [") and first is None:
                    first = time.perf_counter()
                if line.startswith("data: ["):
                    n += len(json.loads(line[6:]))
        end = time.perf_counter()
        assert n == length, (n, length)
        firsts.append(first - t0)
        rates.append((length - 1) / (end - first))
    return {"length": length, "reps": reps, "first_char_ms": 1000 * statistics.median(firsts),
            "chars_per_s": statistics.median(rates)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--burst-length", type=int, default=200, help="characters per request of the burst [200]")
    ap.add_argument("--stream-length", type=int, default=2000, help="characters per streamed request [2000]")
    ap.add_argument("--big-burst-length", type=int, default=10,
                    help="the same for the best-CPU size, which draws about 25 characters a second at batch 1 [10]")
    ap.add_argument("--big-stream-length", type=int, default=100, help="the same for the best-CPU size [100]")
    ap.add_argument("--reps", type=int, default=3, help="streamed requests per model (median) [3]")
    ap.add_argument("--out", type=Path, help="also write the results as JSON")
    args = ap.parse_args()
    vocab = Vocab.from_text(default_corpus_path().read_text(encoding="utf-8"))
    with open(ROOT / "configs" / "best-cpu.toml", "rb") as f:
        best = Config.from_dict(tomllib.load(f), strict=True)
    models = {"seed-rnn-256": Config(), "best-cpu-gru-2x1024": best}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, cfg in models.items():
            make_run(root, name, cfg, vocab)
        with serve(root) as (proc, base):
            for name in models:
                ckpt = checkpoint.load(root / name / "checkpoints" / "best.safetensors")
                seed = name.startswith("seed")
                length = args.burst_length if seed else args.big_burst_length
                out[name] = {"burst": burst(base, name, ckpt, length, proc.pid),
                             "stream": stream(base, name, args.stream_length if seed else args.big_stream_length,
                                              args.reps)}
                b, s = out[name]["burst"], out[name]["stream"]
                print(f"{name}: {b['correct']}/{b['requests']} correct, {b['length']} chars each: p50 {b['p50_s']:.2f} s, "
                      f"p99 {b['p99_s']:.2f} s, RSS {b['rss_before_mb']:.0f} -> {b['rss_after_mb']:.0f} MB; "
                      f"streamed: first character {s['first_char_ms']:.0f} ms, {s['chars_per_s']:.0f} chars/s", flush=True)
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0 if all(v["burst"]["correct"] == CONCURRENT for v in out.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
