"""Bit-exact comparison of two runs' training state, for the resume tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from charnn.train import checkpoint


def assert_same_training_state(a: Path, b: Path) -> None:
    """The last checkpoints of run folders `a` and `b` hold the same training state, bit for bit:
    position (step, epoch, batch, characters seen), parameters, optimizer state and hyperparameters,
    the carried hidden state h and the sampling generator's state. (The best validation loss may
    differ: a run stopped half-way also validated where it stopped.)"""
    ca, cb = (checkpoint.load(Path(r) / "checkpoints" / "last.safetensors") for r in (a, b))
    assert (ca.step, ca.epoch, ca.batch_index, ca.chars_seen) == (cb.step, cb.epoch, cb.batch_index, cb.chars_seen)
    for what, x, y in (("parameter", ca.params, cb.params), ("optimizer state", ca.optim_state, cb.optim_state)):
        assert x.keys() == y.keys(), what
        for k in x:
            assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), f"{what} {k} differs"
    assert ca.optim_hyper == cb.optim_hyper
    assert (ca.h is None) == (cb.h is None), "carried h"
    if ca.h is not None:
        assert ca.h.dtype == cb.h.dtype and np.array_equal(ca.h, cb.h), "carried h differs"
    assert ca.rng_state == cb.rng_state, "sampling RNG state differs"
