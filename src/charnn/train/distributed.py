"""Data-parallel training over MPI ranks: `mpiexec -n N charnn train …`.

The B streams of a batch are cut into N contiguous shares, rank r holding rows [a_r, b_r) (the
cuts of `charnn.nn.parallel.cuts`). Each rank runs forward and backward on its rows, giving the
mean loss L_r and gradient ∇L_r over its B_r = b_r − a_r streams; one all-reduce of one flat
buffer then gives every rank the loss and gradient of the whole batch, as one process would:

    L = Σ_r (B_r / B) L_r,        ∇L = Σ_r (B_r / B) ∇L_r

(the per-rank sums normalised by the global count B·T). Clipping and the optimizer step then
run on identical numbers on every rank, so the parameters stay identical without being sent.
Dropout masks are drawn for the whole batch from (seed, step) and each rank takes its streams'
columns, and weight-drop masks depend on (seed, step) only: the run does not depend on N.

Once per step a second, tiny all-reduce (maximum) agrees on whether to stop: a signal on any
rank, a callback's StopTraining, and the training clock (the slowest rank's), so that the time
budget and a time-based learning rate are the same everywhere. Rank 0 alone writes the run
folder; the carried state of all B streams is gathered to it at each save, and a resumed run
cuts the saved state into the shares of however many ranks it now has.

MPI is used only when the process was started by an MPI launcher (its environment says so) with
more than one rank; otherwise `world()` is a single process and mpi4py is never imported.
"""
from __future__ import annotations

import copy
import os
import signal
from typing import Any, Callable, Mapping, TypeVar

import numpy as np

from ..backend import to_numpy, xp_of
from ..nn.parallel import cuts

R = TypeVar("R")
# Environment variables MPI launchers set in every rank: their size, where they give one.
SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")
RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


class DistributedError(ValueError):
    """Started by an MPI launcher, but MPI cannot be used (mpi4py missing or broken)."""


def launched_size(environ: Mapping[str, str] = os.environ) -> int:
    """The rank count an MPI launcher announced in the environment: 1 when none did."""
    for name in SIZE_VARS:
        value = environ.get(name, "")
        if value.strip().isdigit():
            return int(value)
    return 0 if any(name in environ for name in RANK_VARS) else 1   # 0: launched, size unknown


def launched_rank(environ: Mapping[str, str] = os.environ) -> int:
    """This process's rank as the MPI launcher announced it (0 when not launched by one)."""
    for name in RANK_VARS:
        value = environ.get(name, "")
        if value.strip().isdigit():
            return int(value)
    return 0


class World:
    """One process: every operation is the identity. The base of `MPIWorld`."""

    rank, size = 0, 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def rows(self, B: int) -> tuple[int, int]:
        """This rank's share [a, b) of the B streams."""
        return cuts(B, self.size)[self.rank]

    def allreduce_mean(self, loss: float, grads: dict[str, Any], rows: int, B: int) -> float:
        """Turn this rank's mean loss and gradients over `rows` of B streams into the batch's (in place)."""
        return loss

    def agree(self, user_stop: bool, stop_signal: str | None, train_s: float) -> tuple[bool, str | None, float]:
        """(any rank's stop request, the signal any rank received, the largest training clock)."""
        return user_stop, stop_signal, train_s

    def gather_rows(self, h: Any) -> Any:
        """The state of all B streams on rank 0 (None elsewhere) from each rank's rows (batch axis −2)."""
        return h

    def on_root(self, fn: Callable[[], R]) -> R:
        """fn() run on rank 0, its result (or its exception) sent to every rank."""
        return fn()

    def together(self, fn: Callable[[], R]) -> R:
        """fn() run on every rank; if it fails on any, it fails on all (with the first failure's error)."""
        return fn()

    def abort(self, code: int) -> None:
        """End every rank at once (after an error that left the others waiting)."""


class MPIWorld(World):
    """The ranks of MPI's COMM_WORLD (mpi4py)."""

    def __init__(self, comm: Any, MPI: Any):
        self.comm, self.MPI = comm, MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._buf: np.ndarray | None = None

    def allreduce_mean(self, loss: float, grads: dict[str, Any], rows: int, B: int) -> float:
        names = sorted(grads)                       # the same order on every rank
        first = np.asarray(to_numpy(grads[names[0]]))
        n = sum(int(np.size(grads[k])) for k in names) + 1
        if self._buf is None or self._buf.size != n or self._buf.dtype != first.dtype:
            self._buf = np.empty(n, dtype=first.dtype)
        buf, w, off = self._buf, rows / B, 0
        for k in names:
            g = np.asarray(to_numpy(grads[k]))
            np.multiply(g.reshape(-1), w, out=buf[off:off + g.size])
            off += g.size
        buf[-1] = loss * w
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        off = 0
        for k in names:
            g, size = grads[k], int(np.size(grads[k]))
            part = buf[off:off + size].reshape(np.shape(g))
            if isinstance(g, np.ndarray):
                np.copyto(g, part)
            else:                                   # a device array: copy the sum back to it
                g[...] = xp_of(g).asarray(part)
            off += size
        return float(buf[-1])

    def agree(self, user_stop: bool, stop_signal: str | None, train_s: float) -> tuple[bool, str | None, float]:
        code = 0 if stop_signal is None else int(signal.Signals[stop_signal])
        flags = np.array([float(user_stop), float(code), train_s])
        self.comm.Allreduce(self.MPI.IN_PLACE, flags, op=self.MPI.MAX)
        agreed = int(flags[1])
        return bool(flags[0]), signal.Signals(agreed).name if agreed else None, float(flags[2])

    def gather_rows(self, h: Any) -> Any:
        parts = self.comm.gather(None if h is None else np.asarray(to_numpy(h)), root=0)
        if parts is None or parts[0] is None:
            return None
        return np.concatenate(parts, axis=parts[0].ndim - 2)

    def on_root(self, fn: Callable[[], R]) -> R:
        outcome: tuple[bool, Any] | None = None
        if self.is_root:
            try:
                outcome = (True, fn())
            except Exception as exc:
                outcome = (False, _portable(exc))
        ok, value = self.comm.bcast(outcome, root=0)
        if not ok:
            raise value
        return value

    def together(self, fn: Callable[[], R]) -> R:
        error: BaseException | None = None
        try:
            result = fn()
        except Exception as exc:
            error = exc
        errors = self.comm.allgather(None if error is None else _portable(error))
        if error is not None:
            raise error
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first
        return result

    def abort(self, code: int) -> None:
        self.comm.Abort(code)


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it can be rebuilt from its reduction (what mpi4py's object messages, between the ranks
    of one job, send), else a RuntimeError with its message. No file is ever read that way."""
    try:
        copy.deepcopy(exc)
        return exc
    except Exception:
        return RuntimeError(str(exc))


_world: World | None = None


def world() -> World:
    """This process's place in the run: an `MPIWorld` when started by an MPI launcher with more than
    one rank, else the single-process `World` (mpi4py is then not imported). Decided once."""
    global _world
    if _world is None:
        size = launched_size()
        if size == 1:
            _world = World()
        else:
            try:
                from mpi4py import MPI  # noqa: PLC0415 - only under an MPI launcher
            except ImportError as exc:
                raise DistributedError(f"started by an MPI launcher ({size or 'several'} ranks) but mpi4py "
                                       f"cannot be imported ({exc}): pip install mpi4py mpich") from None
            comm = MPI.COMM_WORLD
            _world = MPIWorld(comm, MPI) if comm.Get_size() > 1 else World()
    return _world


def abort_all(code: int) -> None:
    """End every rank of an MPI run at once (a no-op in one process): after an error on this rank
    that the others, waiting in a collective operation, would never hear of."""
    if _world is not None:
        _world.abort(code)
