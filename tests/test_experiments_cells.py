"""The seed's experiments with the new cells: `charnn experiment ... --cell/--layers/--dropout`.

Real runs, made fast by swapping the --quick settings for tiny ones (hidden 16-32, 20-character
pairs, a few dozen steps): the flags reach every Config the experiment builds, results.json and
the report record the model, and the model's losses are finite and fall.
"""
import json
import math
from dataclasses import replace

import pytest

from charnn.train import checkpoint
from charnn import cli, model as stack
from charnn.reproduce import experiments, report

TINY = replace(experiments.QUICK, name="tiny", hidden_size=16, overfit_hidden_size=32, max_len=20,
               corpus_chars=20_000, max_steps=60, eval_every=0, log_every=5, overfit_max_steps=60,
               overfit_lr=1e-2, adam_lr=1e-2, low_lr=1e-2, sample_length=300, analyze_length=300)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(experiments, "QUICK", TINY)   # what `--quick` means in these tests


def _experiment(name, out, *flags):
    return cli.main(["experiment", name, "--quick", "--out", str(out), "--no-progress", *flags])


def _falls(losses):
    assert losses and all(math.isfinite(x) for x in losses)
    k = max(1, len(losses) // 5)
    assert sum(losses[-k:]) / k < sum(losses[:k]) / k - 0.2, losses


def test_overfit_trains_a_two_layer_lstm(tiny, tmp_path):
    assert _experiment("overfit", tmp_path, "--cell", "lstm", "--layers", "2") == 0
    res = json.loads((tmp_path / "overfit" / "results.json").read_text())
    st = res["settings"]
    assert (st["cell"], st["layers"], st["dropout"], st["model"]) == ("lstm", 2, 0.0, "LSTM 2×32")
    _falls([r["loss"] for r in report.read_jsonl(tmp_path / "overfit" / res["curve"])])
    assert math.isfinite(res["final_loss"]) and len(res["pairs"]) == 20
    assert all(len(p["generated"]) == 20 for p in res["pairs"])        # greedy replay through the (h, c) state
    ckpt = checkpoint.load(tmp_path / "overfit" / res["checkpoint"])
    assert stack.describe(ckpt.params)[:2] == ("lstm", 2) and ckpt.config.cell == "lstm"
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"## {report.TITLES['overfit']} (LSTM 2×32)" in md
    assert "| model | LSTM 2×32 |" in md
    info = json.loads((tmp_path / "settings.json").read_text())
    assert (info["settings"]["cell"], info["settings"]["layers"]) == ("lstm", 2)


def test_temperature_trains_and_samples_a_gru_with_dropout(tiny, tmp_path):
    assert _experiment("temperature", tmp_path, "--cell", "gru", "--dropout", "0.1") == 0
    res = json.loads((tmp_path / "temperature" / "results.json").read_text())
    st = res["settings"]
    assert (st["cell"], st["layers"], st["dropout"], st["model"]) == ("gru", 1, 0.1, "GRU 16, dropout 0.1")
    run = tmp_path / "temperature" / "runs" / "model"
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert (cfg["cell"], cfg["layers"], cfg["dropout"]) == ("gru", 1, 0.1)
    rows = report.read_jsonl(run / "metrics.jsonl")
    _falls([r["train_loss"] for r in rows if r.get("train_loss") is not None])
    assert math.isfinite(res["best_val_loss"])
    assert [len(s["text"]) for s in res["samples"]] == [300] * 4
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"## {report.TITLES['temperature']} (GRU 16, dropout 0.1)" in md
    assert "model **GRU 16, dropout 0.1**" in md and "--cell gru --dropout 0.1" in md


def test_lr_runs_a_stack_and_analyze_samples_that_model_not_another(tiny, tmp_path):
    assert _experiment("lr", tmp_path, "--cell", "lstm", "--layers", "2") == 0
    res = json.loads((tmp_path / "lr" / "results.json").read_text())
    assert res["settings"]["model"] == "LSTM 2×16"
    for run in res["runs"]:
        rows = report.read_jsonl(tmp_path / "lr" / run["run_dir"] / "metrics.jsonl")
        _falls([r["train_loss"] for r in rows if r.get("train_loss") is not None])
        assert run["sample"] and stack.describe(checkpoint.load(tmp_path / "lr" / run["checkpoint"]).params)[:2] \
            == ("lstm", 2)
    assert _experiment("analyze", tmp_path, "--cell", "lstm", "--layers", "2") == 0   # lr's best model
    res = json.loads((tmp_path / "analyze" / "results.json").read_text())
    assert res["checkpoint_note"].endswith("(lr experiment)") and res["settings"]["model"] == "LSTM 2×16"
    assert _experiment("analyze", tmp_path) == 0       # the seed's RNN was asked: not the LSTM of lr
    res = json.loads((tmp_path / "analyze" / "results.json").read_text())
    assert res["checkpoint_note"].startswith("trained for analyze") and res["settings"]["model"] == "RNN 16"


def test_default_is_still_the_seeds_rnn(tiny, tmp_path):
    assert _experiment("overfit", tmp_path) == 0
    st = json.loads((tmp_path / "overfit" / "results.json").read_text())["settings"]
    assert (st["cell"], st["layers"], st["dropout"], st["model"]) == ("rnn", 1, 0.0, "RNN 32")
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"## {report.TITLES['overfit']}\n" in md          # no model suffix on the seed's model


def test_best_checkpoint_only_takes_runs_of_the_asked_model(tmp_path):
    for name, cell in (("lr", "rnn"), ("optimizers", "gru")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(
            {"settings": {"cell": cell, "layers": 1},
             "runs": [{"label": cell, "checkpoint": f"{cell}.safetensors", "best_val_loss": 2.0}]}))
    assert experiments.best_checkpoint(tmp_path)[0].name == "rnn.safetensors"
    assert experiments.best_checkpoint(tmp_path, "gru", 1)[0].name == "gru.safetensors"
    assert experiments.best_checkpoint(tmp_path, "lstm", 1) is None
    assert experiments.best_checkpoint(tmp_path, "gru", 2) is None


@pytest.mark.parametrize("flag, value", [("--cell", "foo"), ("--layers", "0"), ("--dropout", "1.5")])
def test_bad_model_flags_are_one_line_exit_2_as_in_train(tmp_path, capsys, flag, value):
    out = tmp_path / "exp"
    assert cli.main(["reproduce", "--quick", "--out", str(out), "--no-progress", flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("charnn: error:") and "\n" not in err and value in err
    assert not out.exists()                                  # refused before any work
    assert cli.main(["train", "--out", str(tmp_path / "run"), flag, value]) == 2
    assert capsys.readouterr().err.strip() == err            # the same validation and message as train
    with pytest.raises(SystemExit) as e:                     # not a number at all: argparse, exit 2
        cli.main(["experiment", "overfit", flag if flag != "--cell" else "--layers", "x"])
    assert e.value.code == 2
