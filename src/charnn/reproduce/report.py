"""The reproduction report: plots (matplotlib, Agg), report.md and a self-contained report.html.

It only reads what the experiments wrote: each experiment folder's ``results.json`` (figures,
samples, the seed's claims with a verdict) and the ``metrics.jsonl`` / ``loss.jsonl`` curves the
results point to. Every figure in the report goes through `fmt`, so a test can recompute the
exact text of a figure from the JSON it came from. The engine never imports this module.
"""
from __future__ import annotations

import base64
import html
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from .experiments import model_label, trailing_mean  # noqa: E402

SECTIONS = ("overfit", "optimizers", "lr", "temperature", "analyze")
PLOTS = {
    "overfit": "overfit_loss.png",
    "optimizers": "optimizers_loss.png",
    "lr": "lr_loss.png",
    "temperature": "temperature_stats.png",
    "analyze": "analyze_stats.png",
}
TITLES = {
    "overfit": "1. Overfitting 20 input/output pairs",
    "optimizers": "2. SGD vs Adam",
    "lr": "3. Learning rate: Adam 5e-3 vs 3e-4",
    "temperature": "4. Sampling temperature",
    "analyze": "5. Analysis of the best model's text",
}
UNIT = "nats/char"
INSIDE = "inside.html"   # the Inside view of the analyze experiment's model, copied next to the report
SHOW_CHARS = 1500   # characters of each sample printed in the report (statistics use the whole sample)


# --------------------------------------------------------------------------------------------
# numbers as text

def fmt(x: Any, digits: int = 4) -> str:
    """The one way a figure is written in the report (tests recompute it from the JSON)."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.3g}"
        return f"{x:.{digits}g}"
    return str(x)


def steps_fmt(x: int | None) -> str:
    """A step count, or "never" for a threshold that was not reached."""
    return "never" if x is None else fmt(x)


def pct(x: float | None) -> str:
    """A share as a percentage with one decimal."""
    return "n/a" if x is None else f"{100.0 * x:.1f}%"


# --------------------------------------------------------------------------------------------
# reading the experiments' files

def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def load_results(out_dir: Path) -> dict[str, dict[str, Any]]:
    """results.json of every experiment present under out_dir, keyed by section name."""
    res = {}
    for name in SECTIONS:
        f = Path(out_dir) / name / "results.json"
        if f.exists():
            res[name] = read_json(f)
    return res


@dataclass
class Curve:
    """A run's loss curve: per-step train loss and the validation points."""

    label: str
    steps: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    epoch_steps: list[int] = field(default_factory=list)   # last step of each completed epoch


def read_curve(metrics_jsonl: Path, label: str) -> Curve:
    """Per-step train loss, val loss where measured, and epoch boundaries from a run's metrics.jsonl."""
    c = Curve(label)
    last_epoch = None
    for r in read_jsonl(metrics_jsonl):
        if r.get("train_loss") is not None:
            c.steps.append(int(r["step"]))
            c.train.append(float(r["train_loss"]))
        if r.get("val_loss") is not None:
            c.val_steps.append(int(r["step"]))
            c.val.append(float(r["val_loss"]))
        ep = r.get("epoch")
        if last_epoch is not None and ep is not None and ep != last_epoch:
            c.epoch_steps.append(int(r["step"]))
        last_epoch = ep
    return c


# --------------------------------------------------------------------------------------------
# plots

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _finish(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _log_y(ax: Any) -> None:
    """Log-scale y with plain numbers (2, 3, 4 rather than 2×10⁰); minor labels only within a decade."""
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    lo, hi = ax.get_ylim()
    if hi / max(lo, 1e-12) < 10:
        ax.yaxis.set_minor_formatter(plain)


def plot_overfit(res: dict[str, Any], exp_dir: Path, path: Path) -> Path:
    rows = read_jsonl(exp_dir / res["curve"])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label="mean loss on the 20 pairs")
    ax.axhline(res["target_loss"], color="k", ls="--", lw=1, label=f"target {fmt(res['target_loss'])} {UNIT}")
    _log_y(ax)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"cross-entropy ({UNIT}, log scale)")
    ax.set_title("Overfitting 20 pairs: training loss")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    acc = [p["char_accuracy"] for p in res["pairs"]]
    colors = [COLORS[2] if p["exact"] else COLORS[3] for p in res["pairs"]]
    ax2.bar(range(1, len(acc) + 1), [100 * a for a in acc], color=colors)
    ax2.set_ylim(0, 125)
    ax2.set_xticks(range(1, len(acc) + 1, 2))
    ax2.set_xlabel("pair")
    ax2.set_ylabel("greedy replay: characters correct (%)")
    ax2.set_title(f"Greedy replay: {res['exact_count']}/{len(acc)} exact "
                  f"(at most {res['exact_upper_bound']} possible)")
    ax2.legend(handles=[Patch(color=COLORS[2], label="reproduced exactly"),
                        Patch(color=COLORS[3], label="with errors")], loc="upper center", ncol=2)
    return _finish(fig, path)


def plot_runs(curves: list[Curve], path: Path, title: str, steps_per_epoch: int | None,
              threshold: float | None = None) -> Path:
    """Train loss per step (smoothed, faint raw behind) and val loss per evaluation, one colour per run."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for i, c in enumerate(curves):
        col = COLORS[i % len(COLORS)]
        if c.steps:
            win = max(1, len(c.steps) // 50)
            ax.plot(c.steps, c.train, color=col, alpha=0.2, lw=0.8)
            ax.plot(c.steps, trailing_mean(c.train, win), color=col, lw=1.6, label=f"{c.label}: train (per step, smoothed)")
        if c.val:
            ax.plot(c.val_steps, c.val, color=col, ls="--", marker="o", ms=4, lw=1.2, label=f"{c.label}: validation")
    if threshold is not None:
        ax.axhline(threshold, color="k", ls=":", lw=1, label=f"threshold {fmt(threshold)} {UNIT}")
    _log_y(ax)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"cross-entropy ({UNIT}, log scale)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if steps_per_epoch:
        sec = ax.secondary_xaxis("top", functions=(lambda s: s / steps_per_epoch, lambda e: e * steps_per_epoch))
        sec.set_xlabel("epoch")
    ax.legend(fontsize=8)
    return _finish(fig, path)


STAT_PANELS = [
    ("in_train_share", 100.0, "words found in training text (%)", "Real words"),
    ("mid_word_caps_per_1000", 1.0, "capitals inside words (per 1000 chars)", "Mid-word capitals"),
    ("bigrams_per_word", 1.0, "distinct word bigrams per word", "Variety"),
    ("mean_word_length", 1.0, "mean word length (chars)", "Word length"),
]


def plot_stat_panels(named_stats: list[tuple[str, dict[str, Any]]], path: Path, suptitle: str) -> Path:
    """One bar panel per statistic, one bar per text (a temperature, or sample vs training text)."""
    fig, axes = plt.subplots(1, len(STAT_PANELS), figsize=(13, 3.8))
    labels = [n for n, _ in named_stats]
    for ax, (key, scale, ylabel, title) in zip(axes, STAT_PANELS):
        vals = [(s.get(key) or 0.0) * scale for _, s in named_stats]
        bars = ax.bar(range(len(vals)), vals, color=[COLORS[i % len(COLORS)] for i in range(len(vals))])
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in vals], fontsize=7, padding=1)
        ax.margins(y=0.12)
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(labels, rotation=20, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(suptitle)
    return _finish(fig, path)


def make_plots(out_dir: Path, results: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """Draw every plot whose experiment is present; returns section -> PNG path (next to the report)."""
    out_dir = Path(out_dir)
    made: dict[str, Path] = {}
    if "overfit" in results:
        made["overfit"] = plot_overfit(results["overfit"], out_dir / "overfit", out_dir / PLOTS["overfit"])
    for name, title in (("optimizers", "SGD vs Adam, same initialisation and data order"),
                        ("lr", "Adam: learning rate 5e-3 vs 3e-4")):
        if name in results:
            r = results[name]
            curves = [read_curve(out_dir / name / run["run_dir"] / "metrics.jsonl", run["label"])
                      for run in r["runs"]]
            made[name] = plot_runs(curves, out_dir / PLOTS[name], title, r.get("steps_per_epoch"),
                                   r.get("threshold"))
    if "temperature" in results:
        r = results["temperature"]
        named = [(s["label"], s["stats"]) for s in r["samples"]]
        if r.get("reference"):
            named.append((r["reference"]["label"], r["reference"]["stats"]))
        made["temperature"] = plot_stat_panels(named, out_dir / PLOTS["temperature"],
                                               "Text statistics of samples by temperature")
    if "analyze" in results:
        r = results["analyze"]
        named = [(t["label"], t["stats"]) for t in r["texts"]]
        made["analyze"] = plot_stat_panels(named, out_dir / PLOTS["analyze"],
                                           "Best model's long sample vs the corpus itself")
    return made


# --------------------------------------------------------------------------------------------
# a document model rendered to both Markdown and HTML

@dataclass
class Doc:
    """Blocks of a report, rendered the same way to Markdown and to self-contained HTML."""

    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self.blocks.append(("table", (list(headers), [[str(c) for c in r] for r in rows])))

    def image(self, path: Path, alt: str) -> None:
        self.blocks.append(("img", (Path(path), alt)))

    def pre(self, text: str) -> None:
        self.blocks.append(("pre", text))

    def link(self, href: str, text: str) -> None:
        """A paragraph that is one link to a file next to the report."""
        self.blocks.append(("a", (href, text)))

    def to_markdown(self) -> str:
        out = []
        for kind, v in self.blocks:
            if kind == "h":
                out.append("#" * v[0] + " " + v[1])
            elif kind == "p":
                out.append(v)
            elif kind == "table":
                headers, rows = v
                cell = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
                out.append("\n".join(["| " + " | ".join(cell(h) for h in headers) + " |",
                                      "|" + "|".join("---" for _ in headers) + "|",
                                      *("| " + " | ".join(cell(c) for c in r) + " |" for r in rows)]))
            elif kind == "img":
                out.append(f"![{v[1]}]({v[0].name})")
            elif kind == "a":
                out.append(f"[{v[1]}]({v[0]})")
            elif kind == "pre":
                fence = "````" if "```" in v else "```"
                out.append(f"{fence}text\n{v}\n{fence}")
        return "\n\n".join(out) + "\n"

    def to_html(self, title: str) -> str:
        e = html.escape
        body = []
        for kind, v in self.blocks:
            if kind == "h":
                body.append(f"<h{v[0]}>{e(v[1])}</h{v[0]}>")
            elif kind == "p":
                body.append(f"<p>{_inline_html(v)}</p>")
            elif kind == "table":
                headers, rows = v
                body.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers)
                            + "</tr></thead><tbody>"
                            + "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in r) + "</tr>"
                                      for r in rows)
                            + "</tbody></table>")
            elif kind == "img":
                data = base64.b64encode(v[0].read_bytes()).decode("ascii")
                body.append(f'<figure><img alt="{e(v[1])}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{e(v[1])}</figcaption></figure>")
            elif kind == "a":
                body.append(f'<p><a href="{e(v[0])}">{e(v[1])}</a></p>')
            elif kind == "pre":
                body.append(f"<pre>{e(v)}</pre>")
        css = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
               "line-height:1.45}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;"
               "padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}"
               "pre{background:#f7f7f7;padding:1em;white-space:pre-wrap;border:1px solid #e3e3e3}"
               "img{max-width:100%}code{background:#f3f3f3;padding:0 3px}")
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
                f"<style>{css}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _inline_html(text: str) -> str:
    """Escape, then render `code` and **bold** spans (the only inline Markdown the report uses)."""
    import re

    s = html.escape(text)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)


# --------------------------------------------------------------------------------------------
# the report

VERDICTS = ("holds", "does not hold", "inconclusive")


def claim_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Rows of the claims table: section, the seed's claim, what was measured, the figure, the verdict."""
    rows = []
    for name in SECTIONS:
        for c in results.get(name, {}).get("claims", []):
            rows.append([TITLES[name].split(". ", 1)[1], c["claim"], c["measure"], c["measured"],
                         f"**{c['verdict']}**"])
    return rows


def _settings_table(doc: Doc, settings: dict[str, Any]) -> None:
    doc.table(["setting", "value"], [[k, fmt(v)] for k, v in settings.items()])


def _model_suffix(settings: dict[str, Any]) -> str:
    """" (GRU 2×256, dropout 0.1)" for a section whose model is not the seed's vanilla RNN, else ""."""
    if (settings.get("cell", "rnn"), settings.get("layers", 1), settings.get("dropout", 0.0)) == ("rnn", 1, 0.0):
        return ""
    return f" ({settings['model']})"


def _section_overfit(doc: Doc, r: dict[str, Any]) -> None:
    doc.p(f"Trained only on {len(r['pairs'])} input/output pairs of {fmt(r['settings']['max_len'])} characters "
          f"from the training split until the mean loss fell below {fmt(r['target_loss'])} {UNIT} "
          f"(step limit {fmt(r['settings']['max_steps'])}). Then each pair's first character primes the model "
          f"and greedy decoding must replay the pair's target text.")
    doc.table(["figure", "value"], [
        ["steps trained", fmt(r["steps"])],
        [f"final mean loss ({UNIT})", fmt(r["final_loss"])],
        ["target reached", fmt(r["reached_target"])],
        ["pairs reproduced exactly", f"{fmt(r['exact_count'])} / {fmt(len(r['pairs']))}"],
        ["most that greedy replay can reproduce (one per distinct first character)", fmt(r["exact_upper_bound"])],
        ["replays that are a verbatim copy of some pair's target", f"{fmt(r['verbatim_count'])} / {fmt(len(r['pairs']))}"],
        ["mean character accuracy of the replays", pct(r["mean_char_accuracy"])],
        ["teacher-forced argmax accuracy (true prefix given)", pct(r["teacher_forced_accuracy"])],
        ["wall time (s)", fmt(r["wall_s"])],
    ])
    doc.p("Greedy replay from h = 0 and the pair's first character. Pairs that share a first character "
          "start from the same state, so they all get the same replay: at most one of them can match.")
    doc.table(["pair", "first char", "char accuracy", "exact", "replay = target of pair",
               "target (first 50 chars)", "greedy replay (first 50 chars)"],
              [[fmt(p["index"]), "`" + _oneline(p["first_char"]) + "`", pct(p["char_accuracy"]), fmt(p["exact"]),
                fmt(p["replay_equals_pair"]), "`" + _oneline(p["target"][:50]) + "`",
                "`" + _oneline(p["generated"][:50]) + "`"]
               for p in r["pairs"]])


def _oneline(s: str) -> str:
    return s.replace("\n", "⏎").replace("`", "'")


def _runs_table(doc: Doc, r: dict[str, Any]) -> None:
    doc.table(["run", "optimizer", "learning rate", f"final train loss ({UNIT})", f"final val loss ({UNIT})",
               f"best val loss ({UNIT})", f"highest val loss ({UNIT})", "steps to threshold", f"early train loss ({UNIT})",
               "words in training text", "wall time (s)"],
              [[run["label"], run["optimizer"], fmt(run["lr"]), fmt(run["final_train_loss"]),
                fmt(run["final_val_loss"]), fmt(run["best_val_loss"]), fmt(run.get("worst_val_loss")), steps_fmt(run.get("steps_to_threshold")), fmt(run.get("early_train_loss")),
                pct(run.get("sample_stats", {}).get("in_train_share")), fmt(run["wall_s"])]
               for run in r["runs"]])
    if any(run.get("val_by_epoch") for run in r["runs"]):
        n = max(len(run.get("val_by_epoch") or []) for run in r["runs"])
        doc.table(["run"] + [f"epoch {i + 1}: train / val" for i in range(n)],
                  [[run["label"]] + [f"{fmt(t)} / {fmt(v)}" for t, v in
                                     zip(run.get("train_by_epoch") or [], run.get("val_by_epoch") or [])]
                   for run in r["runs"]])


def _section_runs(doc: Doc, r: dict[str, Any]) -> None:
    doc.p(r.get("description", ""))
    if r.get("pilots"):
        doc.table(["SGD pilot learning rate", f"val loss after the pilot ({UNIT})", "diverged", "chosen"],
                  [[fmt(p["lr"]), fmt(p["val_loss"]), fmt(p["diverged"]), fmt(p["lr"] == r["sgd_lr"])]
                   for p in r["pilots"]])
    _runs_table(doc, r)
    for run in r["runs"]:
        if run.get("sample") is not None:
            doc.p(f"Sample from **{run['label']}** (prompt `{_oneline(r['prompt'])}`, temperature "
                  f"{fmt(r['sample_temperature'])}):")
            doc.pre(r["prompt"] + run["sample"][:SHOW_CHARS])


def _stats_table(doc: Doc, named: list[tuple[str, dict[str, Any]]]) -> None:
    doc.table(["text", "chars", "words", "words in training text", "mid-word capitals / 1000 chars",
               "distinct word bigrams", "bigrams per word", "mean word length", "unmatched quotes/brackets"],
              [[name, fmt(s["chars"]), fmt(s["words"]), pct(s["in_train_share"]), fmt(s["mid_word_caps_per_1000"]),
                fmt(s["distinct_bigrams"]), fmt(s["bigrams_per_word"]), fmt(s["mean_word_length"]),
                fmt(s["unmatched_pairs"])] for name, s in named])


def _pairs_table(doc: Doc, named: list[tuple[str, dict[str, Any]]]) -> None:
    kinds = list(named[0][1]["pairs"]) if named else []
    doc.table(["text"] + [f"{k} open / close / unmatched" for k in kinds],
              [[name] + [f"{s['pairs'][k]['open']} / {s['pairs'][k]['close']} / {s['pairs'][k]['unmatched']}"
                         for k in kinds] for name, s in named])


def _section_temperature(doc: Doc, r: dict[str, Any]) -> None:
    doc.p(f"One checkpoint ({r['checkpoint_note']}), prompt `{_oneline(r['prompt'])}`, "
          f"{fmt(r['sample_length'])} characters per sample, sampling seed {fmt(r['seed'])}.")
    named = [(s["label"], s["stats"]) for s in r["samples"]]
    if r.get("reference"):
        named.append((r["reference"]["label"], r["reference"]["stats"]))
    _stats_table(doc, named)
    _pairs_table(doc, named)
    for s in r["samples"]:
        doc.p(f"**{s['label']}** (first {fmt(min(SHOW_CHARS, len(s['text'])))} of {fmt(len(s['text']))} "
              f"characters):")
        doc.pre(r["prompt"] + s["text"][:SHOW_CHARS])


def _section_analyze(doc: Doc, r: dict[str, Any]) -> None:
    doc.p(f"Best model: {r['checkpoint_note']} (validation loss {fmt(r['best_val_loss'])} {UNIT}). "
          f"A {fmt(r['sample_length'])}-character sample at temperature {fmt(r['temperature'])} from the prompt "
          f"`{_oneline(r['prompt'])}`, compared with a slice of the training text and of the validation "
          f"text of the same length (a slice may cut a word at either end, so even the training slice can "
          f"score a little under 100% real words).")
    named = [(t["label"], t["stats"]) for t in r["texts"]]
    _stats_table(doc, named)
    _pairs_table(doc, named)
    o = r["origins"]
    doc.p(f"Distinct generated words: {fmt(o['distinct_copied'])} copied from the training text, "
          f"{fmt(o['distinct_new'])} new ({pct(o['copied_share_distinct'])} copied).")
    doc.table(["most frequent copied words", "count"], [[f"`{w}`", fmt(n)] for w, n in o["top_copied"][:15]])
    doc.table(["most frequent new (invented) words", "count"], [[f"`{w}`", fmt(n)] for w, n in o["top_new"][:15]])
    doc.p(f"The long sample (first {fmt(SHOW_CHARS)} characters):")
    doc.pre(r["prompt"] + r["sample"][:SHOW_CHARS])


SECTION_WRITERS = {
    "overfit": _section_overfit,
    "optimizers": _section_runs,
    "lr": _section_runs,
    "temperature": _section_temperature,
    "analyze": _section_analyze,
}


def build(out_dir: str | Path, *, title: str = "charnn: reproducing the seed's experiments",
          meta: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Draw the plots and write out_dir/report.md and out_dir/report.html from the experiments' files."""
    out_dir = Path(out_dir)
    results = load_results(out_dir)
    plots = make_plots(out_dir, results)
    doc = Doc()
    doc.h(1, title)
    meta = meta if meta is not None else meta_from(out_dir)
    if meta:
        doc.p(meta.get("intro", ""))
        if meta.get("settings"):
            _settings_table(doc, meta["settings"])
    doc.h(2, "Claims of the seed, checked")
    doc.table(["experiment", "claim (seed)", "measured by", "measured", "verdict"], claim_rows(results))
    for name in SECTIONS:
        if name not in results:
            continue
        r = results[name]
        doc.h(2, TITLES[name] + _model_suffix(r.get("settings") or {}))
        if r.get("settings"):
            doc.p("Settings:")
            _settings_table(doc, r["settings"])
        if name in plots:
            doc.image(plots[name], f"{TITLES[name]} ({PLOTS[name]})")
        SECTION_WRITERS[name](doc, r)
        if name == "analyze" and r.get("inside") and (out_dir / name / r["inside"]).exists():
            shutil.copyfile(out_dir / name / r["inside"], out_dir / INSIDE)   # next to report.html
            doc.link(INSIDE, "The Inside view of this model reading the validation text: every unit's "
                             "activation, the surprise per character, the units that track features of the "
                             f"text and the gate saturation ({INSIDE})")
        if r.get("claims"):
            doc.table(["claim (seed)", "measured", "verdict"],
                      [[c["claim"], c["measured"], f"**{c['verdict']}**"] for c in r["claims"]])
    md = out_dir / "report.md"
    md.write_text(doc.to_markdown(), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(doc.to_html(title), encoding="utf-8")
    return md, page


def reproduce(out: str | Path, *, data: str | None = None, quick: bool = False, progress: bool = True,
              settings: Any = None) -> tuple[Path, Path]:
    """Run all five experiments into `out` and write out/report.md and out/report.html."""
    from . import experiments

    settings = settings or experiments.settings_for(quick)
    experiments.run(experiments.NAMES, out, data=data, settings=settings, progress=progress)
    return build(out)


def _splits_note(info: Mapping[str, Any]) -> str:
    """Which split each figure of the report is on."""
    test = (f"the test split ({info['test_chars']:,} characters at the end) is read by none of them"
            if info.get("test_chars") else "these experiments hold out no test split")
    return ("Which split each figure is on: a train loss is on the training split, a val (validation) loss "
            "on the validation split, the text just after it, on which every choice here (best run, best "
            f"checkpoint, learning rate) is made; {test}.")


def meta_from(out_dir: Path) -> dict[str, Any]:
    """Intro and settings table from out/settings.json (written by experiments.run)."""
    f = Path(out_dir) / "settings.json"
    if not f.exists():
        return {}
    info = read_json(f)
    s = info["settings"]
    flags = " --quick" if s["name"] == "quick" else ""
    cell, layers, dropout = s.get("cell", "rnn"), s.get("layers", 1), s.get("dropout", 0.0)
    flags += f" --cell {cell}" if cell != "rnn" else ""
    flags += f" --layers {layers}" if layers != 1 else ""
    flags += f" --dropout {dropout:g}" if dropout else ""
    intro = (f"Corpus: {info['corpus']} ({info['corpus_chars']:,} characters, vocabulary {info['vocab_size']}; "
             f"{info['train_chars']:,} train / {info['val_chars']:,} validation"
             + (f" / {info['test_chars']:,} test" if info.get("test_chars") else "") + "). "
             f"{_splits_note(info)} Settings: **{s['name']}** "
             f"(`charnn reproduce{flags}`); model **{model_label(cell, layers, s['hidden_size'], dropout)}**; "
             f"wall time of the experiments "
             f"{info['wall_s']:.0f} s. Losses are mean cross-entropy in {UNIT} (natural log). Each verdict "
             f"compares measured figures with a stated margin: losses must differ by more than 0.01 {UNIT}, word "
             f"shares by more than two standard errors (a two-proportion z test); samples are shown up to "
             f"{SHOW_CHARS:,} characters but measured in full.")
    keep = ["cell", "layers", "dropout", "hidden_size", "batch_size", "max_len", "epochs", "eval_every", "corpus_chars", "seed", "dtype",
            "adam_lr", "low_lr", "sgd_lr_grid", "pilot_steps", "threshold", "smooth_window", "overfit_pairs",
            "overfit_target", "overfit_max_steps", "overfit_lr", "overfit_hidden_size", "temperatures", "sample_temperature",
            "sample_length", "analyze_length", "analyze_temperature", "prompt"]
    return {"intro": intro, "settings": {k: ", ".join(fmt(x) for x in s[k]) if isinstance(s[k], list) else s[k]
                                         for k in keep if k in s}}
