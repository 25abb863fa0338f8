"""Run `charnn ARGS` as one MPI rank, with test-only faults, kept out of the production code.

    mpiexec -n 2 python tests/mpi_rank.py PID_DIR NAN_RANK NAN_STEP train ...

Each rank writes its process id to PID_DIR/rank-R.pid (so a test can signal one rank) and then
runs the real command line. On rank NAN_RANK (−1: none) the NAN_STEP-th call of
`charnn.model.loss_and_grads` returns a NaN loss: a fault on one rank only, which every rank
must see through the all-reduce and stop on.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

from charnn import model
from charnn.cli import main
from charnn.train.distributed import launched_rank

PID_DIR, NAN_RANK, NAN_STEP = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
del sys.argv[1:4]
RANK = launched_rank()
(PID_DIR / f"rank-{RANK}.pid").write_text(str(os.getpid()))

_real = model.loss_and_grads
_calls = 0


def _nan_at_step(*args: Any, **kwargs: Any) -> Any:
    global _calls
    _calls += 1
    loss, grads, state = _real(*args, **kwargs)
    return (math.nan if _calls == NAN_STEP else loss), grads, state


if RANK == NAN_RANK:
    model.loss_and_grads = _nan_at_step
sys.exit(main(sys.argv[1:]))
