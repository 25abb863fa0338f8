"""The report of a sweep: best trials, optimisation history, parameter importances, parallel
coordinates, and the best configuration as a ready preset.

Files written into the report folder:

    report.md                  the best trials (markdown table), trial counts by state, the reasons
                               trials failed, the importances, and links to the images below
    history.png                objective (best validation loss) of each trial and the best so far
    importances.png            how much each searched field explains the objective (Optuna's default
                               evaluator, PED-ANOVA; needs >= 2 completed trials)
    parallel_coordinates.png   each completed trial as a line through its field values and objective
    best.toml                  the best trial's whole configuration: `charnn train --config best.toml`

The images are Optuna's own plots (optuna.visualization.matplotlib), drawn with the Agg backend.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from ..train.checkpoint import atomic_write_bytes  # noqa: E402
from ..train.config import Config, ConfigError  # noqa: E402
from .storage import SweepError  # noqa: E402

REPORT, HISTORY, IMPORTANCES, PARALLEL, PRESET = (
    "report.md", "history.png", "importances.png", "parallel_coordinates.png", "best.toml")


@dataclass
class SweepReport:
    folder: Path
    written: list[str] = field(default_factory=list)    # file names written in `folder`
    notes: list[str] = field(default_factory=list)      # what could not be drawn, and why
    best_number: int | None = None
    best_value: float | None = None


def build(study: Any, out: Path, *, top: int = 10) -> SweepReport:
    """Write the report of `study` (an optuna Study) into the folder `out`."""
    from optuna.trial import TrialState

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SweepError(f"cannot create report folder {out}: {exc.strerror or exc}") from None
    trials = study.get_trials(deepcopy=False)
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE and t.value is not None),
                  key=lambda t: t.value)
    rep = SweepReport(out)
    if not done:
        raise SweepError(f"study {study.study_name!r} has no completed trial yet ({len(trials)} trial(s) in all): "
                         f"nothing to report")
    best = done[0]
    rep.best_number, rep.best_value = best.number, best.value
    _preset(study.study_name, best, out / PRESET, rep)
    importances = _importances(study, done, rep)
    _plot(rep, HISTORY, "optimisation history", lambda m: m.plot_optimization_history(study))
    if importances:
        _plot(rep, IMPORTANCES, "parameter importances", lambda m: m.plot_param_importances(study))
    _plot(rep, PARALLEL, "parallel coordinates", lambda m: m.plot_parallel_coordinate(study))
    text = _markdown(study, trials, done[:top], importances, rep)
    atomic_write_bytes(out / REPORT, text.encode("utf-8"))
    rep.written.insert(0, REPORT)
    return rep


def _preset(study_name: str, best: Any, path: Path, rep: SweepReport) -> None:
    """The best trial's configuration as TOML that `charnn train --config` reads back."""
    raw = best.user_attrs.get("config")
    try:
        cfg = Config.from_dict(raw, strict=False) if isinstance(raw, dict) else None
    except ConfigError:
        cfg = None
    if cfg is None:
        rep.notes.append(f"no preset: trial {best.number} did not record its configuration")
        return
    head = (f"# The best configuration of sweep study {study_name!r}: trial {best.number}, "
            f"best validation loss {best.value:.4f} nats/char.\n"
            f"# Train it: charnn train --config {path.name} --out RUN_DIR "
            f"(flags override these values, e.g. --epochs, --max-steps 0)\n")
    atomic_write_bytes(path, (head + cfg.to_toml() + "\n").encode("utf-8"))
    rep.written.append(path.name)


def _importances(study: Any, done: list[Any], rep: SweepReport) -> dict[str, float]:
    import optuna

    if len(done) < 2:
        rep.notes.append(f"parameter importances need at least 2 completed trials (this study has {len(done)})")
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        rep.notes.append(f"parameter importances could not be computed: {exc}")
        return {}
    imp = {k: float(v) for k, v in imp.items() if math.isfinite(v)}
    if not imp:
        rep.notes.append("parameter importances could not be computed: no field varied across the completed trials")
    return imp


def _plot(rep: SweepReport, name: str, what: str, draw: Any) -> None:
    from optuna.visualization import matplotlib as optuna_plots

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # Optuna marks its matplotlib plots experimental
            ax = draw(optuna_plots)
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        fig.savefig(rep.folder / name, dpi=110)
        plt.close(fig)
    except (ValueError, RuntimeError, IndexError, KeyError) as exc:
        rep.notes.append(f"no {what} image: {exc}")
        plt.close("all")
        return
    rep.written.append(name)


def _markdown(study: Any, trials: list[Any], best: list[Any], importances: dict[str, float],
              rep: SweepReport) -> str:
    names = sorted({k for t in best for k in t.params})
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    lines = [f"# Sweep report: study {study.study_name}", "",
             f"{len(trials)} trials: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) + ".",
             f"Objective: the trial's best validation loss (nats/char, lower is better).", "",
             "## Best trials", "",
             "| rank | trial | val loss | " + " | ".join(names) + " | run folder |",
             "|---:|---:|---:|" + "---|" * len(names) + "---|"]
    for rank, t in enumerate(best, 1):
        cells = [_fmt(t.params.get(n, "")) for n in names]
        lines.append(f"| {rank} | {t.number} | {t.value:.4f} | " + " | ".join(cells)
                     + f" | {t.user_attrs.get('run_dir', '')} |")
    if PRESET in rep.written:
        lines += ["", f"The best configuration (trial {best[0].number}) is in [{PRESET}]({PRESET}): "
                      f"`charnn train --config {PRESET}`."]
    failed = [t for t in trials if t.state.name == "FAIL"]
    if failed:
        lines += ["", "## Failed trials", "", "| trial | reason |", "|---:|---|"]
        lines += [f"| {t.number} | {_cell(t.user_attrs.get('fail_reason', 'unknown'))} |" for t in failed]
    if importances:
        lines += ["", "## Parameter importances", "", "| field | importance |", "|---|---:|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in importances.items()]
    lines += ["", "## Plots", ""]
    for name, title in ((HISTORY, "Optimisation history"), (IMPORTANCES, "Parameter importances"),
                        (PARALLEL, "Parallel coordinates")):
        if name in rep.written:
            lines += [f"![{title}]({name})", ""]
    if rep.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in rep.notes] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _cell(text: str) -> str:
    """One line of a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")
