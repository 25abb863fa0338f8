"""benchmarks/bench_quality.py's bookkeeping: the twins read contiguous streams, the cosine follows the
budget, and each curve point is the test loss of the model best on validation by then."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from charnn.data import default_corpus_path
from charnn.data.corpus import Corpus
from charnn.train import checkpoint, train
from charnn.train.config import Config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bq():
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "benchmarks" / "bench_quality.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules.pop("bench_quality", None)
    return mod


def test_twin_batches_are_contiguous_streams(bq):
    ids = np.arange(1000)
    streams, per_epoch = bq.stream_batches(ids, B=4, T=10)
    assert streams.shape == (4, 250) and per_epoch == 24
    for s in range(4):                                   # stream s is one stretch of the text
        assert np.array_equal(streams[s].numpy(), np.arange(250 * s, 250 * (s + 1)))
    # chunk k+1 of a stream continues chunk k, so the carried state has read exactly what precedes it
    k = 3
    chunk = streams[:, k * 10: k * 10 + 11]
    nxt = streams[:, (k + 1) * 10: (k + 1) * 10 + 11]
    assert np.array_equal(chunk[:, -1].numpy(), nxt[:, 0].numpy())


def test_cosine_warms_up_then_decays_over_the_training_seconds(bq):
    lr = lambda step, s: bq.cosine_lr(step, s, 100.0, 2e-3, 2e-5, 10)  # noqa: E731
    assert lr(0, 0.0) == pytest.approx(2e-4) and lr(9, 1.0) == pytest.approx(2e-3)
    assert lr(50, 0.0) == pytest.approx(2e-3)
    assert lr(50, 50.0) == pytest.approx(2e-5 + 0.5 * (2e-3 - 2e-5))
    assert lr(50, 100.0) == pytest.approx(2e-5) == lr(50, 250.0)


def test_each_point_is_the_test_loss_of_the_best_on_validation_model(bq, tmp_path):
    text = default_corpus_path().read_text(encoding="utf-8")[:12_000]
    corpus = Corpus.from_text(text)
    cfg = Config(hidden_size=12, max_len=16, batch_size=4, dtype="float64", max_steps=30, eval_every=3,
                 log_every=3, sample_length=5, lr=0.1, val_fraction=0.05, test_fraction=0.1)
    _, _, test_ids = bq.splits(corpus)
    assert len(test_ids) == 1_200 and np.array_equal(test_ids, corpus.ids[-1_200:])
    best_path = tmp_path / "run" / "checkpoints" / "best.safetensors"
    clock = bq.Clock(1e9, best_path, test_ids)
    seen = []

    def snapshot(event, rec):                            # after the Clock: the best checkpoint on disk now
        if event == "eval":
            seen.append(bq.streamed_nats(checkpoint.load(best_path).params, test_ids))
    train(cfg, tmp_path / "run", corpus=corpus, callbacks=[clock, snapshot], progress=False, log=None)
    assert len(clock.curve) == 10
    best, flat = math.inf, 0
    for point, want in zip(clock.curve, seen):
        assert point["test_loss"] == pytest.approx(want, rel=1e-12)
        improved = point["val_loss"] < best
        best = min(best, point["val_loss"])
        if not improved:                                 # no better validation: the same model's test loss
            assert point["test_loss"] == previous
            flat += 1
        previous = point["test_loss"]
    assert flat >= 1, "the run should have a validation that does not improve"
    assert bq.at_minute(clock.curve, 1e9 / 60) == clock.curve[-1]["test_loss"]
    assert bq.at_minute([{"train_s": 70.0, "test_loss": 2.0}], 1.0) is None
    assert bq.at_minute([{"train_s": 50.0, "test_loss": 2.4}, {"train_s": 60.5, "test_loss": 2.5},
                         {"train_s": 61.0, "test_loss": 2.0}], 1.0) == 2.5


def test_merge_keeps_the_twin_best_on_validation_of_a_search_run_in_parts(bq, tmp_path):
    def run(name, dropout, val, test, hidden=256):
        curve = [{"train_s": 60.0, "step": 10, "val_loss": val + 0.1, "test_loss": test + 0.1},
                 {"train_s": 120.0, "step": 20, "val_loss": val, "test_loss": test}]
        return {"name": name, "config": {"dropout": dropout, "hidden_size": hidden}, "curve": curve, "params": 1000,
                "chars_per_s": 1.0, "steps": 20, "best_val_streamed": val, "test_exact": test}

    meta = {"corpus_sha256": "abc", "corpus": "c.txt", "cpus": 2, "minutes": 2.0}
    a = {"meta": meta, "runs": [run("charnn", 0.3, 1.40, 1.50), run("pytorch-gru", 0.0, 1.45, 1.58)]}
    b = {"meta": meta, "runs": [run("pytorch-gru", 0.1, 1.44, 1.59, hidden=320)]}
    files = []
    for i, doc in enumerate((a, b)):
        files.append(tmp_path / f"{i}.json")
        files[-1].write_text(bq.json.dumps(doc))
    bq.merge(files, tmp_path / "out")
    merged = bq.json.loads((tmp_path / "out" / "quality.json").read_text())
    assert [r["name"] for r in merged["runs"]] == ["charnn", "pytorch-gru"]
    gru = merged["runs"][1]
    # chosen on validation (1.44 < 1.45), though its test loss is the worse one
    assert gru["config"]["dropout"] == 0.1 and gru["test_exact"] == 1.59
    assert [(t["dropout"], t["best_val_streamed"]) for t in gru["search"]] == [(0.0, 1.45), (0.1, 1.44)]
    # each value tried names where it was measured and the steps it had (machines differ in speed)
    assert [(t["measured_in"], t["steps"]) for t in gru["search"]] == [(str(files[0]), 20), (str(files[1]), 20)]
    # and the width it ran at: parts run on different machines may have sized the twin differently
    assert [t["hidden_size"] for t in gru["search"]] == [256, 320]
    assert "search" not in merged["runs"][0]
    # a part that was itself a search contributes every value it tried
    b["runs"][0]["search"] = [{"dropout": 0.1, "best_val_streamed": 1.44, "test_exact": 1.59},
                              {"dropout": 0.2, "best_val_streamed": 1.47, "test_exact": 1.60}]
    files[1].write_text(bq.json.dumps(b))
    bq.merge(files, tmp_path / "out")
    gru = bq.json.loads((tmp_path / "out" / "quality.json").read_text())["runs"][1]
    assert [t["dropout"] for t in gru["search"]] == [0.0, 0.1, 0.2]
    assert [t["measured_in"] for t in gru["search"]] == [str(files[0]), str(files[1]), str(files[1])]


def test_merging_a_merged_file_with_a_new_run_equals_merging_every_source_at_once(bq, tmp_path):
    def run(name, dropout, val, test, steps):
        curve = [{"train_s": 60.0, "step": steps // 2, "val_loss": val + 0.1, "test_loss": test + 0.1},
                 {"train_s": 120.0, "step": steps, "val_loss": val, "test_loss": test}]
        return {"name": name, "config": {"dropout": dropout}, "curve": curve, "params": 1000,
                "chars_per_s": float(steps), "steps": steps, "best_val_streamed": val, "test_exact": test}

    def meta(date):
        return {"date": date, "corpus_sha256": "abc", "corpus": "c.txt", "cpus": 2, "minutes": 2.0}

    docs = [{"meta": meta("d0"), "runs": [run("charnn", 0.3, 1.40, 1.50, 30), run("pytorch-gru", 0.2, 1.45, 1.58, 20)]},
            {"meta": meta("d1"), "runs": [run("pytorch-lstm", 0.2, 1.47, 1.60, 25)]},
            {"meta": meta("d2"), "runs": [run("pytorch-gru", 0.1, 1.46, 1.57, 22)]},
            {"meta": meta("d3"), "runs": [run("pytorch-lstm", 0.0, 1.43, 1.61, 27)]}]  # beats the published 0.2
    files = []
    for i, doc in enumerate(docs):
        files.append(tmp_path / f"{i}.json")
        files[-1].write_text(bq.json.dumps(doc))
    bq.merge(files, tmp_path / "all")
    bq.merge(files[:3], tmp_path / "published")
    bq.merge([tmp_path / "published" / "quality.json", files[3]], tmp_path / "extended")
    at_once = (tmp_path / "all" / "quality.json").read_text()
    assert (tmp_path / "extended" / "quality.json").read_text() == at_once
    merged = bq.json.loads(at_once)
    # provenance lists each source once, not the intermediate merge
    assert [s["file"] for s in merged["meta"]["merged_from"]] == [str(f) for f in files]
    lstm = merged["runs"][2]
    assert lstm["config"]["dropout"] == 0.0 and lstm["measured_in"] == str(files[3])
    assert [(t["dropout"], t["measured_in"], t["steps"]) for t in lstm["search"]] == \
        [(0.2, str(files[1]), 25), (0.0, str(files[3]), 27)]
    gru = merged["runs"][1]
    assert gru["config"]["dropout"] == 0.2 and [t["dropout"] for t in gru["search"]] == [0.2, 0.1]
    # a merge written before searches named their files: its values stay unnamed, not misattributed
    old = bq.json.loads((tmp_path / "published" / "quality.json").read_text())
    for r in old["runs"]:
        for t in r.get("search", []):
            del t["measured_in"]
    (tmp_path / "old.json").write_text(bq.json.dumps(old))
    (tmp_path / "new.json").write_text(bq.json.dumps({"meta": meta("d4"), "runs": [run("pytorch-gru", 0.3, 1.50, 1.62, 21)]}))
    bq.merge([tmp_path / "old.json", files[3], tmp_path / "new.json"], tmp_path / "old-extended")
    runs = bq.json.loads((tmp_path / "old-extended" / "quality.json").read_text())["runs"]
    assert [(t["dropout"], t.get("measured_in")) for t in runs[1]["search"]] == \
        [(0.2, None), (0.1, None), (0.3, str(tmp_path / "new.json"))]
    # a run names its own file, so a value that was a run of the merge is still named
    assert [t.get("measured_in") for t in runs[2]["search"]] == [str(files[1]), str(files[3])]
