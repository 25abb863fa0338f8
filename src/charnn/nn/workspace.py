"""Work arrays kept from one training step to the next instead of being allocated afresh.

Why: one training step of a 2×512 LSTM at B=64, T=100 creates ~250 MB of intermediates (gate
buffers, states, their gradients). glibc hands blocks that large straight back to the kernel when
they are freed, so every step page-faults and zero-fills all of it again: measured at 10-15% of
the step's wall time on the 2-core benchmark machine. A workspace keeps each named buffer and hands
the same memory out on the next step when the shape and dtype match.

Scope: only inside `reusing()` (entered by the one-shard training passes of `charnn.nn.network`
and `charnn.nn.fast_rnn`, whose forward and backward both happen in the block and whose results
are fresh arrays), one workspace per thread
(the batch shards run in threads). Outside the block, and for non-NumPy arrays (CuPy has its own
memory pool), `empty` is plain `xp.empty`. A buffer is identified by its name: two buffers that
are alive at the same time within one step must have different names.

Memory: each thread holds one step's intermediates between steps (the peak of a step is what it
was); a name whose shape changes (another batch size, a forward-only evaluation) replaces its
buffer, so stale shapes are not piled up.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

_local = threading.local()


class Workspace:
    """Named arrays, reused while shape and dtype match."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.objects: dict[str, tuple[tuple, Any]] = {}

    def empty(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        dtype = np.dtype(dtype)
        shape = tuple(int(n) for n in shape)
        arr = self.arrays.get(name)
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            arr = np.empty(shape, dtype=dtype)
            self.arrays[name] = arr
        return arr

    def kept(self, name: str, key: tuple, build: Callable[[], Any]) -> Any:
        entry = self.objects.get(name)
        if entry is None or entry[0] != key:
            entry = self.objects[name] = (key, build())
        return entry[1]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


def _thread_workspace() -> Workspace:
    ws = getattr(_local, "workspace", None)
    if ws is None:
        ws = _local.workspace = Workspace()
    return ws


@contextmanager
def reusing() -> Iterator[Workspace]:
    """Within the block, `empty` in this thread hands out this thread's kept buffers (nesting is fine)."""
    depth = getattr(_local, "depth", 0)
    _local.depth = depth + 1
    try:
        yield _thread_workspace()
    finally:
        _local.depth = depth


def active() -> bool:
    """Whether this thread is inside `reusing()`."""
    return getattr(_local, "depth", 0) > 0


def empty(xp: Any, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
    """An uninitialised array: this thread's kept buffer `name` inside `reusing()` (NumPy only), else new."""
    if xp is np and getattr(_local, "depth", 0) > 0:
        return _thread_workspace().empty(name, shape, dtype)
    return xp.empty(shape, dtype=dtype)


def zeros(xp: Any, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
    """Like `empty`, filled with zeros."""
    out = empty(xp, name, shape, dtype)
    out.fill(0)
    return out


def kept(name: str, key: tuple, build: Callable[[], Any]) -> Any:
    """A set of buffers built by `build()`, kept under `name` in this thread inside `reusing()` while
    `key` (its shapes and dtype) matches; a new one outside the block. For buffers that carry
    state between uses (e.g. which one-hot entries are set), which plain `empty` cannot."""
    if getattr(_local, "depth", 0) == 0:
        return build()
    return _thread_workspace().kept(name, key, build)


def release() -> None:
    """Drop this thread's kept buffers (the memory goes back to the allocator)."""
    _local.workspace = None
