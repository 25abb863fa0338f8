"""Hyperparameter sweeps on Optuna: `charnn sweep` and `charnn sweep-report`.

space: the search space file (ranges and choices over training fields); storage: where a study
lives (a journal file next to the runs, or PostgreSQL); objective: one trial, trained in its own run
folder and reported to the study at each evaluation; study: a worker's loop over trials; report:
the best trials, Optuna's plots and the best configuration as a preset. Optuna and matplotlib are
imported only where they are used.
"""
from .space import Dimension, SpaceError, load_space, parse_space  # noqa: F401
from .storage import SweepError  # noqa: F401
