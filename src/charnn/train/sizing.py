"""The hidden size a time budget affords, and the regularisation it calls for (Config.min_steps,
Config.reg_exposure, with Config.max_minutes).

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

Regularisation guards against reading the same text too often with too many parameters, so how
much of it a run wants depends on the budget as well. A network of P parameters that reads its N
training characters E times in the budget has the exposure

    x = (P / N) · E

(4.2 parameters per character read 11.6 times, x ≈ 49, for the 2×640 GRU that 30 minutes afford
on Tiny Shakespeare; 0.4 × 14 ≈ 6 for the 2×192 GRU that fits 5 minutes; 1.2 × 2.1 ≈ 2.5 for 2×768
on 5.7M characters of C). With reg_exposure > 0 the dropout, weight drop and weight decay given are
those for a run of exposure reg_exposure or more, and a run of less has them scaled by

    s = min(1, x / reg_exposure)

A network that reads its text too few times for its size to learn it by heart gains nothing from
them and learns more slowly under them. E is the steps the budget affords at the chosen width (as
timed) over the batches of one epoch.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

from ..data import Batches
from ..data.corpus import Corpus
from ..nn import budget
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
    exposure: float = 0.0               # x = (P / N)·E at the chosen width (0: not computed)
    reg_scale: float = 1.0              # s, the factor the regularisers were scaled by

    def summary(self) -> str:
        budget = 60.0 * self.cfg.max_minutes - self.spent_s
        timed = "; ".join(f"{h}: {budget / t:,.0f} steps at {t:.3g} s/step" for h, t in self.probes)
        text = (f"hidden size {self.cfg.hidden_size} for at least {self.cfg.min_steps:,} steps in "
                f"{self.cfg.max_minutes:g} minutes ({timed}; {self.spent_s:.1f} s spent timing)")
        if self.exposure:
            c = self.cfg
            text += (f"; exposure {self.exposure:.3g} of {c.reg_exposure:g}: regularisers x{self.reg_scale:.3g} "
                     f"(dropout {c.dropout:g}, weight drop {c.weight_drop:g}, weight decay {c.weight_decay:g})")
        return text


def applies(cfg: Config) -> bool:
    """Whether the run's hidden size is chosen from its budget."""
    return cfg.min_steps > 0 and cfg.max_minutes > 0 and not cfg.init_from


def step_seconds(cfg: Config, corpus: Corpus) -> float:
    """Seconds per training step of a fresh model of cfg's size on cfg's first batches (median)."""
    from .trainer import Trainer      # the trainer imports this module

    # A process of its own (World()): under MPI the root times its share of the batch alone. Without
    # the ramp (reg_ramp): the step is timed with its masks at full strength, as most of the run pays it.
    trainer = Trainer(cfg.replace(min_steps=0, reg_ramp=0.0), corpus, progress=False, log=None,
                      world=distributed.World())
    times = []
    for k in range(TIMED_STEPS + 1):
        x, y = trainer.batches.get(k % len(trainer.batches))
        t0 = time.perf_counter()
        trainer.train_step(x, y)
        trainer.step += 1
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def exposure(cfg: Config, corpus: Corpus, steps: float) -> float:
    """x = (P / N) · E for a model of cfg's size making `steps` steps: P its parameters, N the training
    characters of one epoch, E = steps / (batches per epoch)."""
    from .trainer import training_split

    batches = len(Batches(training_split(cfg, corpus)[0], cfg.batch_size, cfg.max_len))
    P = budget.num_params(len(corpus.vocab), cfg.hidden_size, cell=cfg.cell, layers=cfg.layers, embed=cfg.embed)
    return P / (batches * cfg.batch_size * cfg.max_len) * (steps / batches)


def regularised(cfg: Config, x: float) -> tuple[Config, float]:
    """(cfg with its regularisers scaled for exposure x, the scale s = min(1, x / reg_exposure))."""
    s = min(1.0, max(x, 0.0) / cfg.reg_exposure)
    def scaled(v: float) -> float:
        return float(f"{v * s:.3g}")           # three figures: the config stays readable
    return cfg.replace(dropout=scaled(cfg.dropout), weight_drop=scaled(cfg.weight_drop),
                       weight_decay=scaled(cfg.weight_decay)), s


def next_candidate(H: int, steps: float, min_steps: int) -> int:
    """The next hidden size to time after H made only `steps` (< min_steps) in the budget."""
    guess = int(H * math.sqrt(max(steps, 0.0) / min_steps)) // STEP * STEP
    return max(STEP, min(guess, H - STEP))


def fit(cfg: Config, corpus: Corpus, *, batch_rows: int = 0) -> Fit:
    """cfg with the largest hidden size (<= cfg.hidden_size) that makes cfg.min_steps steps in the budget,
    and its regularisers scaled for that budget where cfg.reg_exposure is set.

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
        timed_H, H = H, next_candidate(H, steps, cfg.min_steps)
        if len(probes) == MAX_PROBES:              # the last candidate is taken untimed: steps by the square law
            steps *= (timed_H / H) ** 2
            break
    chosen, x, s = cfg.replace(hidden_size=H), 0.0, 1.0
    if cfg.reg_exposure > 0:
        x = exposure(chosen, corpus, steps)
        chosen, s = regularised(chosen, x)
    return Fit(chosen, time.perf_counter() - t0, tuple(probes), x, s)
