"""The hidden size a time budget affords (Config.min_steps with Config.max_minutes).

At a fixed budget of training minutes a wider network learns more per step but makes fewer steps,
and a network that makes too few steps ends the budget far from what it could reach: a 2-layer
GRU of 1024 units makes about 1,500 steps in 30 minutes on one 2-core CPU and about 670 on a
slower one. So the budget, not the machine, should say how many steps a run gets, and the machine
then says how wide the network can be:

    H* = the largest H <= cfg.hidden_size, a multiple of 64, with  budget / t_step(H) >= min_steps

t_step(H) is timed here, on this machine, with the run's own configuration: the median of a few
training steps (after a warm-up step) of a fresh model on the run's first batches. The cost of a
step grows about as H² (each GEMM is (G·H × H) by B), so from a step that is too slow the next
candidate is H·sqrt(steps(H) / min_steps), rounded down to a multiple of 64; it is timed in turn,
and the first candidate that fits is taken, or 64 when nothing larger fits (after `MAX_PROBES`
timings the next candidate is taken untimed). The seconds spent timing count against the budget.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

from ..data.corpus import Corpus
from . import distributed
from .config import Config

STEP = 64          # hidden sizes are multiples of this (BLAS-friendly widths)
MAX_PROBES = 4
TIMED_STEPS = 2    # timed steps per probe, after one warm-up step


@dataclass(frozen=True)
class Fit:
    """What `fit` chose: the configuration with its hidden size, and how."""
    cfg: Config
    spent_s: float                      # seconds spent timing, taken out of the budget
    probes: tuple[tuple[int, float], ...]   # (hidden size, seconds per step) of each timing

    def summary(self) -> str:
        budget = 60.0 * self.cfg.max_minutes - self.spent_s
        timed = "; ".join(f"{h}: {budget / t:,.0f} steps at {t:.3g} s/step" for h, t in self.probes)
        return (f"hidden size {self.cfg.hidden_size} for at least {self.cfg.min_steps:,} steps in "
                f"{self.cfg.max_minutes:g} minutes ({timed}; {self.spent_s:.1f} s spent timing)")


def applies(cfg: Config) -> bool:
    """Whether the run's hidden size is chosen from its budget."""
    return cfg.min_steps > 0 and cfg.max_minutes > 0 and not cfg.init_from


def step_seconds(cfg: Config, corpus: Corpus) -> float:
    """Seconds per training step of a fresh model of cfg's size on cfg's first batches (median)."""
    from .trainer import Trainer      # the trainer imports this module

    # A process of its own (World()): under MPI the root times its share of the batch alone.
    trainer = Trainer(cfg.replace(min_steps=0), corpus, progress=False, log=None, world=distributed.World())
    times = []
    for k in range(TIMED_STEPS + 1):
        x, y = trainer.batches.get(k % len(trainer.batches))
        t0 = time.perf_counter()
        trainer.train_step(x, y)
        trainer.step += 1
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def next_candidate(H: int, steps: float, min_steps: int) -> int:
    """The next hidden size to time after H made only `steps` (< min_steps) in the budget."""
    guess = int(H * math.sqrt(max(steps, 0.0) / min_steps)) // STEP * STEP
    return max(STEP, min(guess, H - STEP))


def fit(cfg: Config, corpus: Corpus, *, batch_rows: int = 0) -> Fit:
    """cfg with the largest hidden size (<= cfg.hidden_size) that makes cfg.min_steps steps in the budget.

    batch_rows: time steps on this many of the batch's streams (an MPI rank's share); 0 = all of them.
    """
    if not applies(cfg):
        return Fit(cfg, 0.0, ())
    t0 = time.perf_counter()
    budget = 60.0 * cfg.max_minutes
    timed_cfg = cfg.replace(batch_size=batch_rows) if batch_rows else cfg
    H, probes = cfg.hidden_size, []
    while True:
        t = step_seconds(timed_cfg.replace(hidden_size=H), corpus)
        probes.append((H, t))
        steps = (budget - (time.perf_counter() - t0)) / t
        if steps >= cfg.min_steps or H <= STEP:
            break
        H = next_candidate(H, steps, cfg.min_steps)
        if len(probes) == MAX_PROBES:              # the last candidate is taken untimed
            break
    return Fit(cfg.replace(hidden_size=H), time.perf_counter() - t0, tuple(probes))
