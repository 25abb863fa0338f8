"""Shared fixtures: small random RNN problems (parameters, a batch, an initial state)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

from charnn import model


def pytest_configure(config: pytest.Config) -> None:
    """Numba's kernel cache goes under pytest's temporary root, not beside the installed source:
    tests write only there. Set before any test imports numba; CLI subprocesses inherit it."""
    if "NUMBA_CACHE_DIR" not in os.environ:
        from _pytest.tmpdir import TempPathFactory

        root = TempPathFactory.from_config(config, _ispytest=True).getbasetemp()
        os.environ["NUMBA_CACHE_DIR"] = str(root / "numba-cache")


@dataclass
class Problem:
    """A random model and batch: params (W, U, V, b, c), inputs/targets (B, T) and h0 (B, H)."""

    params: dict[str, np.ndarray]
    inputs: np.ndarray
    targets: np.ndarray
    h0: np.ndarray

    def astype(self, dtype: Any) -> "Problem":
        return Problem({k: v.astype(dtype) for k, v in self.params.items()}, self.inputs, self.targets,
                       self.h0.astype(dtype))


def random_problem(vocab_size: int, hidden_size: int, batch_size: int, length: int, *, seed: int = 0,
                   dtype: Any = np.float64, scale: float = 1.0) -> Problem:
    """Weights from init_params times `scale`, nonzero biases and h0, uniformly random character ids.

    Nonzero b, c and h0 make every gradient term (including dL/dh0) non-trivial.
    """
    rng = np.random.default_rng(seed)
    params = model.init_params(vocab_size, hidden_size, seed=seed, dtype=np.float64)
    for k in ("W", "U", "V"):
        params[k] *= scale
    params["b"] = rng.uniform(-0.5, 0.5, size=hidden_size)
    params["c"] = rng.uniform(-0.5, 0.5, size=vocab_size)
    inputs = rng.integers(0, vocab_size, size=(batch_size, length))
    targets = rng.integers(0, vocab_size, size=(batch_size, length))
    h0 = rng.uniform(-0.8, 0.8, size=(batch_size, hidden_size))
    return Problem(params, inputs, targets, h0).astype(dtype)


@pytest.fixture(scope="session")
def make_problem() -> Callable[..., Problem]:
    """Factory: make_problem(V, H, B, T, seed=0, dtype=np.float64, scale=1.0) -> Problem."""
    return random_problem
