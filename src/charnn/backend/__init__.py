"""Array backend: the one place that knows about NumPy vs CuPy.

The engine is written against the NumPy API. Functions take the array module from their inputs
(`xp_of`) so the same code runs on NumPy arrays (CPU) or CuPy arrays (GPU). CuPy is imported in
this package and nowhere else, and only when a GPU is asked for.

  get_xp(device)            numpy for "cpu", cupy for "cuda" (BackendError, one line, when unusable)
  xp_of(*arrays)            the array module that owns some arrays
  to_numpy(a), host_copy(d)  NumPy copies: checkpoints and sampling always use host arrays
  to_device(d, xp)          a parameter/state dict moved to the array module xp
  fused_loss_and_grads      the fused CUDA kernels (backend/cuda.py) for CuPy float32, else None
"""
from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any, Mapping

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


def _known_cupy() -> ModuleType | None:
    """CuPy if it is already imported (by get_xp or by the caller, who may hand us its arrays)."""
    global _cupy
    if _cupy is None:
        mod = sys.modules.get("cupy")
        if mod is not None and isinstance(getattr(mod, "ndarray", None), type):
            _cupy = mod
    return _cupy


def is_cupy(a: Any) -> bool:
    """Whether `a` is a CuPy array."""
    cp = _known_cupy()
    return cp is not None and isinstance(a, cp.ndarray)


def xp_of(*arrays: Any) -> ModuleType:
    """The array module that owns `arrays` (numpy unless one of them is a CuPy array)."""
    for a in arrays:
        if is_cupy(a):
            return _cupy
    return np


def to_numpy(a: Any) -> np.ndarray:
    """A NumPy copy/view of any backend array (checkpoints are always NumPy)."""
    if is_cupy(a):
        return _cupy.asnumpy(a)
    return np.asarray(a)


def host_copy(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A dict of NumPy copies (e.g. the CPU copy of GPU weights that sampling runs on)."""
    return {k: to_numpy(v) for k, v in arrays.items()}


def to_device(arrays: Mapping[str, Any], xp: ModuleType) -> dict[str, Any]:
    """A dict of arrays moved to the array module xp (numpy or cupy), dtypes kept."""
    if xp is np:
        return host_copy(arrays)
    return {k: xp.asarray(v) for k, v in arrays.items()}


def fused_loss_and_grads(params: Mapping[str, Any], inputs: Any, targets: Any,
                         h0: Any = None) -> tuple[float, dict[str, Any], Any] | None:
    """model.loss_and_grads through the fused CUDA kernels, or None where they do not apply.

    They apply to CuPy float32 parameters (and shapes the kernels support) unless
    CHARNN_FUSED=0; NumPy arrays always get None, so the portable engine runs unchanged.
    """
    if not is_cupy(params.get("W")) or "E" in params or os.environ.get("CHARNN_FUSED") == "0":
        return None
    from . import cuda  # noqa: PLC0415 - imports CuPy; only reached with CuPy arrays in hand

    return cuda.loss_and_grads(params, inputs, targets, h0)
