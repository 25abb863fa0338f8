"""Array backend: the one place that knows about NumPy vs CuPy.

The engine is written against the NumPy API. Functions take the array module from their inputs
(`xp_of`) so the same code runs on NumPy arrays (CPU) or CuPy arrays (GPU). CuPy is imported here
and nowhere else, and only when a GPU is asked for.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

_cupy: ModuleType | None = None


class BackendError(RuntimeError):
    """The requested device cannot be used on this machine."""


def get_xp(device: str = "cpu") -> ModuleType:
    """The array module for `device` ("cpu" -> numpy, "cuda" -> cupy)."""
    if device == "cpu":
        return np
    if device == "cuda":
        return _load_cupy()
    raise BackendError(f"unknown device {device!r}: choose cpu or cuda")


def _load_cupy() -> ModuleType:
    global _cupy
    if _cupy is None:
        try:
            import cupy  # noqa: PLC0415 - deliberately lazy: CPU users never need it
        except Exception as exc:  # ImportError, or a CUDA library that fails to load
            raise BackendError(f"--device cuda needs CuPy and a CUDA GPU: CuPy could not be imported ({exc})") from None
        try:
            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise BackendError("--device cuda: no CUDA GPU is visible")
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"--device cuda: no usable CUDA GPU ({exc})") from None
        _cupy = cupy
    return _cupy


def xp_of(*arrays: Any) -> ModuleType:
    """The array module that owns `arrays` (numpy unless one of them is a CuPy array)."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def to_numpy(a: Any) -> np.ndarray:
    """A NumPy copy/view of any backend array (checkpoints are always NumPy)."""
    if _cupy is not None and isinstance(a, _cupy.ndarray):
        return _cupy.asnumpy(a)
    return np.asarray(a)


def scatter_add_rows(xp: ModuleType, target: Any, index: Any, values: Any) -> None:
    """target[index[i]] += values[i] for every i, with repeated indices accumulated."""
    if xp is np:
        np.add.at(target, index, values)
    else:  # pragma: no cover - GPU only
        import cupyx  # noqa: PLC0415

        cupyx.scatter_add(target, index, values)
