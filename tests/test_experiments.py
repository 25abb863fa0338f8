"""`charnn reproduce --quick` end to end: every section, plot and claim row is in the report, and
the report's figures are the ones in the metrics files they came from."""
import base64
import json
import re

import pytest

from charnn import cli
from charnn.reproduce import experiments, report, textstats
from charnn.data import load_text

CLAIMS_PER_SECTION = {"overfit": 1, "optimizers": 2, "lr": 2, "temperature": 2, "analyze": 3}


@pytest.fixture(scope="module")
def repro(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro") / "out"
    rc = cli.main(["reproduce", "--quick", "--out", str(out), "--no-progress"])
    assert rc == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    return out, md, html, report.load_results(out)


def table_row(md: str, first_cell: str) -> list[str]:
    """Cells of the first Markdown table row whose first cell is `first_cell`."""
    for line in md.splitlines():
        if line.startswith("| ") and line.split(" | ")[0][2:] == first_cell:
            return [c.strip() for c in line.strip().strip("|").split(" | ")]
    raise AssertionError(f"no table row starting with {first_cell!r}")


def test_every_section_and_plot_is_present(repro):
    out, md, html, results = repro
    assert set(results) == set(report.SECTIONS)
    assert "## Claims of the seed, checked" in md
    for name in report.SECTIONS:
        title = report.TITLES[name]
        assert f"## {title}" in md and f"<h2>{title}</h2>" in html.replace("&#x27;", "'")
        png = out / report.PLOTS[name]
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
        assert f"]({report.PLOTS[name]})" in md
        # the HTML embeds exactly these bytes: self-contained
        assert base64.b64encode(data).decode() in html
    assert html.count('src="data:image/png;base64,') == len(report.SECTIONS)
    assert not re.search(r'src="(?!data:)', html)


def test_report_states_the_quick_settings(repro):
    out, md, _, _ = repro
    assert "**quick**" in md
    assert table_row(md, "hidden_size")[1] == "64"
    info = json.loads((out / "settings.json").read_text())
    assert info["settings"]["name"] == "quick" and info["experiments"] == list(experiments.NAMES)


def test_every_claim_has_a_row_with_its_measured_figure_and_verdict(repro):
    _, md, html, results = repro
    claims_md = md.split("## Claims of the seed, checked", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in claims_md.splitlines() if ln.startswith("| ") and not ln.startswith("| experiment")]
    assert len(rows) == sum(CLAIMS_PER_SECTION.values())
    for name, n in CLAIMS_PER_SECTION.items():
        claims = results[name]["claims"]
        assert len(claims) == n, name
        for c in claims:
            assert c["verdict"] in report.VERDICTS
            match = [r for r in rows if c["claim"] in r]
            assert len(match) == 1, c["claim"]
            assert c["measured"].replace("|", "\\|") in match[0]
            assert match[0].rstrip(" |").endswith(f"**{c['verdict']}**")
            assert c["measured"] in html.replace("&#x27;", "'").replace("&quot;", '"')


def test_overfit_figures_match_loss_curve(repro):
    out, md, _, results = repro
    r = results["overfit"]
    curve = report.read_jsonl(out / "overfit" / r["curve"])
    assert len(curve) == r["steps"] and curve[-1]["loss"] == r["last_step_loss"]
    assert r["reached_target"] == (min(x["loss"] for x in curve) < r["target_loss"])
    assert table_row(md, "steps trained")[1] == report.fmt(r["steps"])
    assert table_row(md, "final mean loss (nats/char)")[1] == report.fmt(r["final_loss"])
    assert table_row(md, "pairs reproduced exactly")[1] == f"{r['exact_count']} / 20"
    assert len(r["pairs"]) == 20
    assert r["exact_count"] == sum(p["generated"] == p["target"] for p in r["pairs"])
    assert r["exact_count"] <= r["exact_upper_bound"] <= 20
    for p in r["pairs"]:
        acc = sum(a == b for a, b in zip(p["generated"], p["target"])) / len(p["target"])
        assert p["char_accuracy"] == pytest.approx(acc)
        assert table_row(md, str(p["index"]))[2] == report.pct(p["char_accuracy"])


@pytest.mark.parametrize("name", ["optimizers", "lr"])
def test_run_figures_match_their_metrics_jsonl(repro, name):
    out, md, _, results = repro
    r = results[name]
    section = md.split(f"## {report.TITLES[name]}", 1)[1].split("\n## ", 1)[0]
    for run in r["runs"]:
        rows = report.read_jsonl(out / name / run["run_dir"] / "metrics.jsonl")
        vals = [x["val_loss"] for x in rows if x.get("val_loss") is not None]
        assert run["final_val_loss"] == vals[-1]
        assert run["best_val_loss"] == min(vals)
        assert rows[-1]["step"] == run["steps"]
        cells = table_row(section, run["label"])
        assert cells[3] == report.fmt(run["final_train_loss"])
        assert cells[4] == report.fmt(run["final_val_loss"])
        assert cells[5] == report.fmt(run["best_val_loss"])
        assert cells[6] == report.fmt(run["worst_val_loss"]) and run["worst_val_loss"] == max(vals)
        assert cells[7] == report.steps_fmt(run["steps_to_threshold"])
        assert cells[8] == report.fmt(run["early_train_loss"])
        losses = [x["train_loss"] for x in rows]   # windows of log_every steps: the early mean agrees roughly
        assert run["early_train_loss"] == pytest.approx(sum(losses[: max(1, len(losses) // 10)])
                                                        / max(1, len(losses) // 10), rel=0.05)
        assert (out / name / run["checkpoint"]).is_file()
    if name == "optimizers":
        assert {run["optimizer"] for run in r["runs"]} == {"adam", "sgd"}
        assert r["sgd_lr"] in [p["lr"] for p in r["pilots"]]
        assert len(r["pilots"]) == len(experiments.QUICK.sgd_lr_grid)
    else:
        for run in r["runs"]:
            assert run["sample_stats"] == textstats.text_stats(run["sample"], _train_words(out)).to_dict()
            assert table_row(section, run["label"])[9] == report.pct(run["sample_stats"]["in_train_share"])


def _train_words(out):
    info = json.loads((out / "settings.json").read_text())
    ctx_text = load_text(None)[: info["corpus_chars"]]
    return textstats.word_set(ctx_text[: info["train_chars"]])


def test_temperature_figures_are_the_statistics_of_the_samples(repro):
    out, md, _, results = repro
    r = results["temperature"]
    words = _train_words(out)
    assert [s["label"] for s in r["samples"]] == ["T = 0.5", "T = 1", "T = 1.5", "greedy"]
    section = md.split(f"## {report.TITLES['temperature']}", 1)[1].split("\n## ", 1)[0]
    for s in r["samples"]:
        assert len(s["text"]) == r["sample_length"]
        assert s["stats"] == textstats.text_stats(s["text"], words).to_dict()
        cells = table_row(section, s["label"])
        assert cells[3] == report.pct(s["stats"]["in_train_share"])
        assert cells[4] == report.fmt(s["stats"]["mid_word_caps_per_1000"])
        assert cells[5] == report.fmt(s["stats"]["distinct_bigrams"])
        assert cells[7] == report.fmt(s["stats"]["mean_word_length"])
        assert r["prompt"] + s["text"][:200] in md


def test_analyze_figures_match(repro):
    out, md, _, results = repro
    r = results["analyze"]
    words = _train_words(out)
    o = textstats.word_origins(r["sample"], words)
    assert r["origins"]["distinct_copied"] == len(o.copied) and r["origins"]["distinct_new"] == len(o.new)
    assert f"{report.fmt(len(o.copied))} copied from the training text" in md
    gen = next(t for t in r["texts"] if t["label"] == "generated")
    assert gen["stats"] == textstats.text_stats(r["sample"], words).to_dict()
    section = md.split(f"## {report.TITLES['analyze']}", 1)[1].split("\n## ", 1)[0]
    for t in r["texts"]:
        assert table_row(section, t["label"])[3] == report.pct(t["stats"]["in_train_share"])


def test_report_links_the_inside_view_of_the_best_model(repro):
    from charnn.apps import inside, inside_html

    out, md, html, results = repro
    assert results["analyze"]["inside"] == report.INSIDE
    view = inside_html.extract((out / report.INSIDE).read_text(encoding="utf-8"))
    assert view == inside_html.extract((out / "analyze" / report.INSIDE).read_text(encoding="utf-8"))
    assert view["schema"] == inside.SCHEMA and view["chars"] == experiments.INSIDE_CHARS
    assert view["model"]["hidden"] == 64 and 0 < view["mean_surprise"] < 4.2      # below ln 65: it learned
    assert f"]({report.INSIDE})" in md and f'<a href="{report.INSIDE}">' in html


def test_single_experiment_with_a_given_checkpoint_rebuilds_the_report(repro, tmp_path):
    out, _, _, _ = repro
    ckpt = out / "overfit" / "model"
    rc = cli.main(["experiment", "analyze", "--quick", "--out", str(tmp_path), "--checkpoint", str(ckpt),
                   "--no-progress"])
    assert rc == 0
    res = report.load_results(tmp_path)
    assert list(res) == ["analyze"] and res["analyze"]["checkpoint_note"].startswith("given checkpoint")
    md = (tmp_path / "report.md").read_text()
    assert report.TITLES["analyze"] in md and report.TITLES["lr"] not in md
    assert (tmp_path / report.PLOTS["analyze"]).is_file()


def test_user_errors_are_one_line_exit_2(tmp_path, capsys):
    assert cli.main(["experiment", "analyze", "--quick", "--out", str(tmp_path),
                     "--checkpoint", str(tmp_path / "missing"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("charnn: error:") and "\n" not in err
    short = tmp_path / "short.txt"
    short.write_text("too short a corpus\n" * 10)
    assert cli.main(["reproduce", "--quick", "--data", str(short), "--out", str(tmp_path / "o"),
                     "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "characters" in err and "\n" not in err
    with pytest.raises(SystemExit) as e:
        cli.main(["experiment", "nonsense"])
    assert e.value.code == 2


def test_steps_to_threshold_uses_a_trailing_mean():
    losses = [4.0, 3.0, 2.0, 1.0, 1.0]
    assert experiments.trailing_mean(losses, 2) == [4.0, 3.5, 2.5, 1.5, 1.0]
    assert experiments.steps_to_threshold(losses, 2.5, 2) == 3
    assert experiments.steps_to_threshold(losses, 0.5, 2) is None
    assert experiments.steps_to_threshold(losses, 3.5, 1) == 2


def test_fmt_and_doc_rendering():
    assert report.fmt(1.23456) == "1.235" and report.fmt(12345) == "12,345" and report.fmt(None) == "n/a"
    assert report.fmt(0.0001234) == "0.000123" and report.fmt(True) == "yes" and report.pct(0.5) == "50.0%"
    doc = report.Doc()
    doc.h(2, "A <b> & c")
    doc.table(["x|y", "z"], [["a|b", "`q<`"]])
    doc.pre("```inner```")
    md, html = doc.to_markdown(), doc.to_html("t")
    assert "| x\\|y | z |" in md and "````text" in md
    assert "<h2>A &lt;b&gt; &amp; c</h2>" in html and "<code>q&lt;</code>" in html


def test_share_verdict_is_a_two_standard_error_test():
    # 30% vs 20% of 1000 words each: se = sqrt(.21/1000 + .16/1000) = 0.0192, z = 5.2
    assert experiments.share_verdict(0.30, 1000, 0.20, 1000) == experiments.HOLDS
    assert experiments.share_verdict(0.20, 1000, 0.30, 1000) == experiments.FAILS
    # 30% vs 25% of 200 words each: se = 0.0445, z = 1.1 -> noise
    assert experiments.share_verdict(0.30, 200, 0.25, 200) == experiments.UNSURE
    assert experiments.share_verdict(0.5, 0, 0.2, 10) == experiments.UNSURE
    assert experiments.share_verdict(1.0, 10, 0.0, 10) == experiments.HOLDS
