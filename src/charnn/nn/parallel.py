"""Data parallelism over the batch for the NumPy engine: shards in threads, each with one BLAS thread.

The B sequences of a batch are independent until their gradients are summed, so with P BLAS
threads available the batch is cut into P shards that run forward and backward in P Python
threads at once (NumPy releases the GIL inside BLAS and ufunc loops), each shard with
single-threaded BLAS, and their gradients are added. Compared with one multi-threaded GEMM per
time step this parallelises the element-wise work too and replaces 2T+2 thread hand-offs per
training step by one, which matters most on a busy machine. `over_batch` is the one place a
training batch is split and its shards' losses and gradients are combined.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

R = TypeVar("R")
MIN_ROWS_PER_SHARD = 8
_blas: Any = None            # threadpoolctl's BLAS controllers, once looked up; False if unavailable
_pool: Any = None
_pool_lock = threading.Lock()


def blas_controllers() -> list:
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController  # noqa: PLC0415
            _blas = ThreadpoolController().select(user_api="blas").lib_controllers
        except Exception:  # not installed, or a BLAS it cannot drive
            _blas = False
    return _blas or []


_blas_owner = threading.Lock()   # held by the one call that has changed the BLAS thread count


@contextmanager
def single_threaded_blas() -> Iterator[bool]:
    """NumPy's BLAS limited to one thread inside the block, restored after (even on errors).

    Yields whether this call holds the limit. One call at a time does: the thread count is saved
    and restored by that same thread (OpenBLAS does not reliably take a restore from another
    thread). A call made meanwhile from another thread leaves the setting alone and yields False.
    """
    if not _blas_owner.acquire(blocking=False):
        yield False
        return
    try:
        saved = [(lc, lc.num_threads) for lc in blas_controllers()]
        for lc, n in saved:
            if n != 1:
                lc.set_num_threads(1)
        try:
            yield True
        finally:
            for lc, n in saved:
                if n != 1:
                    lc.set_num_threads(n)
    finally:
        _blas_owner.release()


def num_shards(xp: Any, B: int) -> int:
    """How many threads to spread a batch over: the BLAS thread count (so OPENBLAS_NUM_THREADS,
    OMP_NUM_THREADS and threadpoolctl limits are honoured), at most one per MIN_ROWS_PER_SHARD rows."""
    if xp is not np or B < 2 * MIN_ROWS_PER_SHARD:
        return 1
    threads = min((lc.num_threads for lc in blas_controllers()), default=1)
    return max(1, min(threads, B // MIN_ROWS_PER_SHARD))


def executor(workers: int) -> Any:
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="charnn")
        return _pool


def cuts(B: int, P: int) -> list[tuple[int, int]]:
    """Row ranges of P near-equal shards of a batch of B."""
    edges = [B * i // P for i in range(P + 1)]
    return list(zip(edges, edges[1:]))


def run_shards(work: Callable[[int], R], P: int, pool: Any = None) -> list[R] | None:
    """[work(0), …, work(P−1)] with single-threaded BLAS: shard 0 in the calling thread, the rest
    in the pool (default: `executor(P − 1)`). None when another thread holds the BLAS limit (it is
    sharding right now): the caller then runs the whole batch in one piece instead."""
    with single_threaded_blas() as owner:
        if not owner:
            return None
        futures = [(pool or executor(P - 1)).submit(work, i) for i in range(1, P)]
        try:
            parts = [work(0)]
        finally:
            parts += [f.result() for f in futures]
    return parts


Shard = tuple[float, dict[str, Any], Any]   # (mean loss, grads, final state) of some rows of a batch


def over_batch(run: Callable[[int, int], Shard], B: int, xp: Any) -> tuple[float, dict[str, Any], list[Any]]:
    """run(a, b) on the rows [a, b) of a batch of B, as P parallel shards where threads allow.

    The loss is a mean over B·T, so with shard s holding B_s rows

        L = Σ_s (B_s / B) L_s,    ∇L = Σ_s (B_s / B) ∇L_s.

    Returns (loss, grads, [each shard's final state, in row order]): the caller joins the states
    along its batch axis. A batch too small to split runs with single-threaded BLAS (threads
    cost more than they give on small products).
    """
    P = num_shards(xp, B)
    parts = None
    if P > 1:
        rows = cuts(B, P)
        parts = run_shards(lambda i: run(*rows[i]), P)
    if parts is None:                      # one shard, or another thread is sharding right now
        with single_threaded_blas() if xp is np and P == 1 else nullcontext():
            loss, grads, state = run(0, B)
        return loss, grads, [state]
    weights = [(b - a) / B for a, b in rows]
    loss = sum(w * part[0] for w, part in zip(weights, parts))
    grads = {}
    for k in parts[0][1]:
        g = parts[0][1][k]
        g *= weights[0]
        for w, part in zip(weights[1:], parts[1:]):
            gp = part[1][k]
            gp *= w                        # in place: no temporary per parameter
            g += gp
        grads[k] = g
    return loss, grads, [part[2] for part in parts]
