"""Learning-rate schedules: constant, step decay (as char-rnn) and cosine, each with an optional linear warm-up.

The rate of optimizer step s (s = 0 for the first update) is a pure function of s, so a resumed run
recomputes it from its step counter and needs no schedule state in the checkpoint:

    warm-up     lr(s) = lr₀ · (s + 1) / w                              for s < w (w = warmup_steps)
    constant    lr(s) = lr₀
    step        lr(s) = lr₀ · d^k,  k = max(0, ⌊(s − a) / e⌋)         d = decay factor, e = steps between
                                                                        decays, a = steps before the first
    cosine      lr(s) = lr_min + (lr₀ − lr_min) · ½ (1 + cos(π p)),   p = (s − w) / (S − w) clipped to [0, 1]
                                                                        (S = total steps of the run)

With a time budget (Config.max_minutes) the cosine's progress is the share of the budget spent on
training steps instead, p = t / t_max, so the decay ends when the time does on any machine (the
warm-up still counts steps). Such a run is not reproducible step for step: its rates depend on how
fast each step ran.

char-rnn multiplies its rate by `learning_rate_decay` (0.97) at the end of every epoch once
`learning_rate_decay_after` epochs have passed; `step` does the same with e = steps per epoch · N.
"""
from __future__ import annotations

import math

SCHEDULES = ("constant", "step", "cosine")


def lr_at(step: int, base_lr: float, *, schedule: str = "constant", warmup_steps: int = 0,
          total_steps: int = 0, decay: float = 0.97, decay_every: int = 1, decay_after: int = 0,
          min_lr: float = 0.0, progress: float | None = None) -> float:
    """Learning rate of optimizer step `step` (0-based) under `schedule` (see the module doc).

    `progress`, for the cosine: the share of the run done, given directly (a time budget) instead of
    derived from `step` and `total_steps`.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}: choose {', '.join(SCHEDULES)}")
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        k = max(0, (step - decay_after) // max(1, decay_every))
        return base_lr * decay ** k
    if progress is None:
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    p = min(1.0, max(0.0, progress))
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))
