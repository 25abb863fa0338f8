"""One trial: draw a configuration, train it in its own run folder, tell the study how it went.

The trial's value is its best validation loss (nats/char, minimised). At each evaluation the
validation loss is reported to the trial at the training step it was measured,

    trial.report(val_loss, step);   stop when trial.should_prune()

so the study's pruner can stop a trial that is doing worse than the others were at that step. How a
trial ends, and what the study is told:

    trained to its end                     COMPLETE, value = best validation loss
    stopped by the pruner                  PRUNED   (its last checkpoint saved at that evaluation)
    loss or weights became NaN/inf         FAIL, fail_reason "diverged: ..."
    Ctrl-C / SIGTERM                       FAIL, fail_reason "interrupted by SIGTERM at step k"
    drawn values that do not go together   FAIL, fail_reason "invalid configuration: ..."

Every run folder is an ordinary one (sample, eval, `train --resume` work on it) and carries a
trial.json with the trial's number, state, value, parameters and reason.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from tqdm import tqdm

from ..data import DataError
from ..data.corpus import Corpus
from ..data.vocab import VocabError
from ..train import RunDirError, StopTraining, TrainingDiverged, TrainingInterrupted, train
from ..train.checkpoint import atomic_write_bytes
from ..train.config import ConfigError
from .space import Dimension, suggest_config

TRIAL_FILE = "trial.json"


def trial_dir(out: Path, number: int) -> Path:
    """OUT/trial-NNNN: the Optuna trial number, unique within a study, names the folder."""
    return out / f"trial-{number:04d}"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class StopFlag:
    """Set when this worker is told to stop (a signal): no new trial starts."""

    def __init__(self) -> None:
        self.signame: str | None = None


@dataclass
class Outcome:
    number: int
    state: str               # "COMPLETE" | "PRUNED" | "FAIL"
    value: float | None
    reason: str = ""
    fatal: BaseException | None = None   # re-raised by the worker after the study was told


def run_trial(study: Any, trial: Any, dims: list[Dimension], base: Mapping[str, Any], corpus: Corpus,
              out: Path, flag: StopFlag, *, progress: bool = False,
              log: Callable[[str], None] | None = print) -> Outcome:
    """Train one trial and tell `study` its result; never leaves the trial RUNNING."""
    from optuna.trial import TrialState

    run_dir = trial_dir(out, trial.number)
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("worker", worker_name())
    pruned_at: list[int] = []
    # A folder that already holds files is another run's (another study's trial with this number?):
    # it is neither trained in nor marked.
    ours = not (run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())))

    def on_event(event: str, row: dict) -> None:
        if event == "step" and flag.signame is not None:
            raise StopTraining          # a signal came before the trainer's own handler was in place
        if event == "eval":
            trial.report(float(row["val_loss"]), int(row["step"]))
            if trial.should_prune():
                pruned_at.append(int(row["step"]))
                raise StopTraining

    def finish(state: str, value: float | None = None, reason: str = "", fatal: BaseException | None = None) -> Outcome:
        if reason:
            trial.set_user_attr("fail_reason" if state == "FAIL" else "note", reason)
        if state == "COMPLETE":
            study.tell(trial, value)
        else:
            study.tell(trial, state=TrialState.PRUNED if state == "PRUNED" else TrialState.FAIL)
        if ours and run_dir.is_dir():
            _mark(run_dir, study.study_name, trial, state, value, reason)
        return Outcome(trial.number, state, value, reason, fatal)

    if not ours:
        return finish("FAIL", reason=f"{run_dir} already exists and is not an empty folder",
                      fatal=RunDirError(f"{run_dir} already holds another run: give the sweep a new --out "
                                        f"(or the study that wrote it)"))
    try:
        cfg = suggest_config(trial, dims, base)
    except ConfigError as exc:
        return finish("FAIL", reason=f"invalid configuration: {exc}")
    trial.set_user_attr("config", cfg.to_dict())
    if log is not None:
        drawn = ", ".join(f"{k}={v!r}" for k, v in trial.params.items())
        log(f"=== trial {trial.number}: {drawn} -> {run_dir}")
    try:
        result = train(cfg, run_dir, corpus=corpus, callbacks=[on_event], progress=progress,
                       log=None if log is None else _brief(log), handle_signals=True)
    except TrainingDiverged as exc:
        return finish("FAIL", reason=f"diverged: {exc}")
    except TrainingInterrupted as exc:
        flag.signame = flag.signame or exc.signame
        return finish("FAIL", reason=f"interrupted by {exc.signame} at step {exc.step}")
    except KeyboardInterrupt as exc:
        return finish("FAIL", reason="interrupted twice: stopped at once", fatal=exc)
    except (ConfigError, DataError, VocabError) as exc:     # e.g. a drawn max_len longer than the corpus
        return finish("FAIL", reason=f"cannot train this configuration: {exc}")
    except RunDirError as exc:                               # the folder holds another run: stop the worker
        return finish("FAIL", reason=str(exc), fatal=exc)
    except BaseException as exc:                             # a bug: the study still learns the trial failed
        return finish("FAIL", reason=f"error: {type(exc).__name__}: {exc}", fatal=exc)
    if pruned_at:
        return finish("PRUNED", reason=f"pruned at step {pruned_at[0]}")
    if flag.signame is not None and result.stop_reason == "stopped":
        return finish("FAIL", reason=f"interrupted by {flag.signame} at step {result.step}")
    if result.best_val_loss is None:
        return finish("FAIL", reason="no validation loss was measured")
    return finish("COMPLETE", float(result.best_val_loss))


def _brief(log: Callable[[str], None]) -> Callable[[str], None]:
    """The trainer's messages without the configuration dump it starts with (config.json has it)."""
    def brief(msg: str) -> None:
        if msg.startswith("# run folder:"):
            msg = "\n".join(line for line in msg.splitlines() if line.startswith("#"))
        if log is print:
            tqdm.write(msg, file=sys.stdout)      # above a progress bar, if one is shown
        else:
            log(msg)
    return brief


def _mark(run_dir: Path, study_name: str, trial: Any, state: str, value: float | None, reason: str) -> None:
    """trial.json in the run folder: which trial of which study it is, and how it ended."""
    record = {"study": study_name, "number": trial.number, "state": state, "value": value,
              "params": trial.params, "reason": reason, "worker": worker_name()}
    atomic_write_bytes(run_dir / TRIAL_FILE, (json.dumps(record, indent=2) + "\n").encode())


def read_mark(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / TRIAL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
