"""A memory budget: what a command will allocate, estimated before it allocates, and what the machine has.

Every command that builds a model checks its estimate here first (`check`), so an impossible size
(a hidden size of 100,000: a 74.5 GiB W) is refused with the figure instead of a MemoryError or an
out-of-memory kill halfway through. The estimates count the large arrays only, in bytes of the
model's dtype (s = itemsize), with P parameters, N = B·T positions per batch, V symbols, H units,
L layers and k(cell) arrays of width H that a cell keeps per position (`ACTIVATIONS`):

    training   s·P·(1 + 1 + m + 1 + (1 + m))        parameters, gradients, m optimizer slots (Adam 2,
                                                     SGD with momentum 1), a clipped copy, and a
                                                     checkpoint's serialized bytes (parameters + slots)
             + s·max(2·N, R)·(L·(k + 2)·H + 3·V)      forward caches and their gradients (each layer's
                                                     cell arrays, its input and a dropout mask, the
                                                     logits, softmax and its gradient), or validation's
                                                     chunk of R = C·S positions if that is larger
             + s·N·D                                 the embedded input
    reading    2·F + s·C·S·(L·(k + 2)·H + 3·V)       a checkpoint file of F bytes (its bytes and the
                                                     arrays), chunks of C positions × S streams
    generating 2·F + s·P + 8·B·(L·(k + 2)·H + 3·V) + 16·B·M
                                                     the kernel's packed copy of the parameters, a step
                                                     of B streams, and a chunk of M ids and uniforms each

These are estimates within a small factor of the real peak (the tests measure one with tracemalloc),
good enough to tell "fits" from "cannot fit", which is all `check` decides.
Available memory is the least of: MemAvailable in /proc/meminfo (else the free physical pages),
the room left under this process's address-space limit (ulimit -v) and under its cgroup's memory.max.
"""
from __future__ import annotations

import math
import os
import resource
from pathlib import Path

import numpy as np

from .params import param_shapes

# Arrays of width H that the forward pass keeps per position and layer (pre-activations, gates, states).
ACTIVATIONS = {"rnn": 2, "lstm": 8, "gru": 6}
OPTIM_SLOTS = {"adam": 2, "sgd": 1}
FIXED = 64 * 1024 * 1024       # the interpreter, NumPy and small buffers: below this nothing is refused


class MemoryBudgetError(ValueError):
    """What a command would allocate does not fit in the memory available."""


def num_params(vocab_size: int, hidden_size: int, *, cell: str = "rnn", layers: int = 1, embed: int = 0) -> int:
    """P: the parameter count of a model, from its shapes alone (nothing allocated). Layers 2..L
    have one size, so P = P(2 layers) + (L − 2)·P(layer 1): no loop over a huge --layers."""
    shapes = param_shapes(vocab_size, hidden_size, cell=cell, layers=min(layers, 2), embed=embed)
    total = sum(math.prod(s) for s in shapes.values())
    if layers > 2:
        total += (layers - 2) * sum(math.prod(s) for k, s in shapes.items() if k.startswith("L1."))
    return int(total)


def read_positions(streams: int = 1, chunk: int = 1000) -> int:
    """R: positions a reader's chunk holds (`charnn.nn.reader.read` bounds chunk·streams by 4096)."""
    return chunk if streams <= 1 else max(16, min(chunk, 4096 // streams)) * streams


def _per_position(hidden_size: int, vocab_size: int, cell: str, layers: int) -> int:
    """Arrays kept per position when a network reads one character: L·(k + 2)·H + 3·V."""
    return layers * (ACTIVATIONS[cell] + 2) * hidden_size + 3 * vocab_size


def training_bytes(*, vocab_size: int, hidden_size: int, batch_size: int, max_len: int, cell: str = "rnn",
                   layers: int = 1, embed: int = 0, dtype: str = "float32", optimizer: str = "adam",
                   momentum: float = 0.0, eval_streams: int = 1) -> int:
    """The peak of one training step, validation and checkpoint save (see the module docstring)."""
    s = np.dtype(dtype).itemsize
    P = num_params(vocab_size, hidden_size, cell=cell, layers=layers, embed=embed)
    m = OPTIM_SLOTS[optimizer] if optimizer == "adam" or momentum > 0 else 0
    N = batch_size * max_len
    acts = (max(2 * N, read_positions(eval_streams)) * _per_position(hidden_size, vocab_size, cell, layers)
            + N * embed)
    return FIXED + s * (P * (4 + 2 * m) + acts)


def reading_bytes(*, file_bytes: int, vocab_size: int, hidden_size: int, cell: str, layers: int,
                  dtype: str, chunk: int = 1000, streams: int = 1) -> int:
    """Loading a checkpoint of `file_bytes` and reading a text through it, chunk by chunk."""
    s = np.dtype(dtype).itemsize
    return FIXED + 2 * file_bytes + s * read_positions(streams, chunk) * _per_position(hidden_size, vocab_size, cell, layers)


def generation_bytes(*, file_bytes: int, vocab_size: int, hidden_size: int, cell: str, layers: int,
                     dtype: str, embed: int = 0, streams: int = 1, chunk: int = 1 << 16) -> int:
    """Loading a checkpoint and drawing `streams` samples a chunk of `chunk` ids at a time."""
    s = np.dtype(dtype).itemsize
    P = num_params(vocab_size, hidden_size, cell=cell, layers=layers, embed=embed)
    step = 8 * streams * _per_position(hidden_size, vocab_size, cell, layers)
    return FIXED + 2 * file_bytes + s * P + step + 16 * streams * chunk


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name == key:
                return int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_left() -> int | None:
    """Room under RLIMIT_AS (ulimit -v): the limit minus this process's current virtual size."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        used = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        used = 0
    return max(0, soft - used)


def _cgroup_left() -> int | None:
    """Room under a cgroup v2 memory.max (containers), when one is set."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((root / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None


def available_bytes() -> int | None:
    """Memory this process can still allocate (see the module docstring); None when nothing says."""
    free = _meminfo("MemAvailable")
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            free = None
    found = [v for v in (free, _address_space_left(), _cgroup_left()) if v is not None]
    return min(found) if found else None


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check(need: int, what: str, fix: str) -> None:
    """Raise MemoryBudgetError when `need` bytes do not fit in what is available.

    what: the allocation in words ("training hidden 100000 × 1 layer(s)"); fix: what to change.
    """
    have = available_bytes()
    if have is not None and need > have:
        raise MemoryBudgetError(f"{what} needs about {format_bytes(need)} of memory, but only "
                                f"{format_bytes(have)} is available: {fix}")
