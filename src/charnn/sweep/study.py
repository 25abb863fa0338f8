"""A sweep worker: join the study (creating it if it is new) and run trials until it holds N.

Any number of workers may run the same sweep at once, on one machine (the journal file) or on
many (PostgreSQL): each one loops

    under the trial lock:  n = trials in the study;  stop if n >= N;  trial = study.ask()
    run the trial in OUT/trial-NNNN (objective.run_trial) and tell the study its result

so together they start exactly N trials, numbered 0..N-1 by Optuna, none lost or run twice. A
trial counts whatever its end (complete, pruned or failed), so a space that keeps failing still
ends. The sampler is Optuna's TPE (with the constant liar, so parallel workers spread out); the
pruner compares each trial's validation losses with the other trials' at the same training step.

A worker stops starting trials after `max_minutes` (the trial in progress finishes) or on
Ctrl-C / SIGTERM: the trainer finishes its step and saves the last checkpoint, the trial is told
FAIL with the reason, and the other workers go on with the study.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..data.corpus import Corpus
from ..train.checkpoint import atomic_write_bytes
from .objective import Outcome, StopFlag, run_trial
from .space import Dimension
from .storage import JOURNAL, Store, SweepError, open_store

PRUNERS = ("median", "hyperband", "none")
SWEEP_FILE = "sweep.json"


@dataclass(frozen=True)
class SweepSpec:
    """What a worker runs: the space, the fixed fields, the study and where its runs go."""

    dims: list[Dimension]
    base: Mapping[str, Any]           # the fixed training fields (a Config dict), data included
    out: Path
    trials: int                       # the study's total number of trials
    study: str
    storage: str | None = None        # None: the journal file OUT/study.journal
    pruner: str = "median"
    startup_trials: int = 3           # median pruner: trials that complete before it prunes
    max_minutes: float = 0.0          # 0 = no limit
    seed: int | None = None           # the sampler's seed (reproducible single-worker sweeps)


@dataclass
class WorkerReport:
    outcomes: list[Outcome] = field(default_factory=list)
    stopped_by: str | None = None     # the signal that stopped this worker, if one did
    study_trials: int = 0             # trials in the study when this worker stopped
    best: Any = None                  # the study's best trial (a FrozenTrial) or None


def make_pruner(name: str, base: Mapping[str, Any], startup_trials: int) -> Any:
    """median: stop a trial whose loss at step s is worse than the median of earlier trials at s.
    hyperband: successive halving over brackets, the resource being training steps."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=0)
    if name == "hyperband":
        every = int(base.get("eval_every") or 1)
        max_steps = int(base.get("max_steps") or 0)
        return optuna.pruners.HyperbandPruner(min_resource=every,
                                              max_resource=max_steps if max_steps > every else "auto")
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SweepError(f"unknown pruner {name!r}: choose {', '.join(PRUNERS)}")


def open_study(store: Store, name: str, *, pruner: Any = None, seed: int | None = None, create: bool = True) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not create:
        try:
            return optuna.load_study(study_name=name, storage=store.storage)
        except KeyError:
            names = optuna.study.get_all_study_names(store.storage)
            raise SweepError(f"no study named {name!r} in {store.where}"
                             + (f" (it holds: {', '.join(names)})" if names else " (it holds none)")) from None
    sampler = optuna.samplers.TPESampler(seed=seed)
    with store.trial_lock(name):
        return optuna.create_study(storage=store.storage, study_name=name, direction="minimize",
                                   sampler=sampler, pruner=pruner, load_if_exists=True)


def claim_folder(out: Path, study: str, where: str) -> None:
    """OUT/sweep.json names the study whose runs OUT holds; another study's worker is refused."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SweepError(f"cannot create sweep folder {out}: {exc.strerror or exc}") from None
    path = out / SWEEP_FILE
    if path.is_file():
        try:
            held = json.loads(path.read_text(encoding="utf-8")).get("study")
        except (OSError, ValueError, AttributeError):
            held = None
        if held != study:
            raise SweepError(f"{out} holds the runs of study {held!r}: give --study {held} to join it, "
                             f"or another --out for study {study!r}")
        return
    if any(p.name.startswith("trial-") for p in out.iterdir()):
        raise SweepError(f"{out} holds trial folders but no {SWEEP_FILE}: give another --out")
    atomic_write_bytes(path, (json.dumps({"study": study, "storage": where}, indent=2) + "\n").encode())


def run_worker(spec: SweepSpec, *, progress: bool = False, log: Callable[[str], None] | None = print) -> WorkerReport:
    """Run trials of `spec.study` until it holds `spec.trials` (see the module docstring)."""
    if spec.trials < 1:
        raise SweepError(f"--trials must be >= 1, got {spec.trials}")
    pruner = make_pruner(spec.pruner, spec.base, spec.startup_trials)
    corpus = Corpus.load(spec.base.get("data") or None, encoding=spec.base.get("encoding", "utf-8"),
                         byte_level=bool(spec.base.get("byte_level", False)))    # read once, for every trial
    if spec.storage is not None:          # reach the database before writing anything
        store = open_store(spec.storage, None)
        claim_folder(spec.out, spec.study, store.where)
    else:                                 # the journal goes into a folder this study may use
        claim_folder(spec.out, spec.study, JOURNAL)
        store = open_store(None, spec.out)
    study = open_study(store, spec.study, pruner=pruner, seed=spec.seed)
    report, flag, t0 = WorkerReport(), StopFlag(), time.monotonic()
    with _signal_flag(flag):
        while flag.signame is None:
            if spec.max_minutes > 0 and time.monotonic() - t0 >= 60.0 * spec.max_minutes:
                if log is not None:
                    log(f"sweep: {spec.max_minutes:g} minutes have passed: this worker starts no more trials")
                break
            with store.trial_lock(spec.study):
                if len(study.get_trials(deepcopy=False)) >= spec.trials:
                    break
                trial = study.ask()
            outcome = run_trial(study, trial, spec.dims, spec.base, corpus, spec.out, flag,
                                progress=progress, log=log)
            report.outcomes.append(outcome)
            if log is not None:
                how = f"value {outcome.value:.4f}" if outcome.value is not None else outcome.reason
                log(f"=== trial {outcome.number}: {outcome.state} ({how})")
            if outcome.fatal is not None:
                raise outcome.fatal
    report.stopped_by = flag.signame
    trials = study.get_trials(deepcopy=False)
    report.study_trials = len(trials)
    done = [t for t in trials if t.value is not None and t.state.name == "COMPLETE"]
    report.best = min(done, key=lambda t: t.value) if done else None
    return report


@contextmanager
def _signal_flag(flag: StopFlag) -> Iterator[None]:
    """Between trials, SIGINT/SIGTERM only stop new trials from starting (the trainer handles them
    within a trial and restores this handler afterwards)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.signame is None:
            flag.signame = signal.Signals(signum).name
            print(f"\n{flag.signame} received: this worker starts no more trials", file=sys.stderr, flush=True)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
