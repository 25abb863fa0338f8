"""benchmarks/bench_finetune.py end to end at toy size: a source model trained on Tiny Shakespeare is
fine-tuned on a text with characters it has never seen, beside the same architecture from scratch and
the preset sized from its budget; each run's curve, configuration and the plot are written."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def source_vocab(out: Path) -> int:
    return json.loads((out / "source" / "config.json").read_text())["vocab_size"]


def test_finetune_benchmark_runs_its_three_runs_on_one_architecture(tmp_path):
    pytest.importorskip("torch")              # bench_quality, whose clock and plot it shares, imports it
    pytest.importorskip("matplotlib")
    bible = tmp_path / "bible.txt"
    # '{', '}' and digits are outside Tiny Shakespeare's vocabulary: the fine-tuned run must add them.
    verse = "1:{n} In the beginning God created the heaven and the earth. {{And the earth was void.}}\n"
    bible.write_text("".join(verse.format(n=i) for i in range(400)), encoding="utf-8")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_finetune.py"), "--minutes", "0.03", "--source-minutes",
         "0.03", "--hidden-size", "16", "--evals", "2", "--bible", str(bible), "--chars", "20000", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "finetune.json").read_text())
    runs = {r["name"]: r for r in doc["runs"]}
    assert list(runs) == ["finetune", "scratch", "sized"]
    source = json.loads((out / "source" / "config.json").read_text())["config"]
    tuned, scratch = runs["finetune"]["config"], runs["scratch"]["config"]
    assert tuned["init_from"] and tuned["extend_vocab"] and not scratch["init_from"]
    for key in ("cell", "layers", "hidden_size"):   # the same network, so only the starting weights differ
        assert tuned[key] == scratch[key] == source[key]
    assert tuned["min_steps"] == scratch["min_steps"] == 0
    saved = json.loads((out / "finetune" / "config.json").read_text())
    assert saved["config"]["init_from"] and saved["vocab_size"] > source_vocab(out)   # '{', '}', digits added
    for r in runs.values():
        assert r["steps"] > 0 and r["curve"] and math.isfinite(r["test_exact"])
        assert r["config"]["data"].endswith("kjv-20k.txt")
    assert (out / "finetune.png").stat().st_size > 1000
    assert "| finetune |" in proc.stdout and "| scratch |" in proc.stdout
