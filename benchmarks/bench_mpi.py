"""Data-parallel training over MPI on one machine, and a model of how far it scales over a network.

Measures, for the model given (default: the 2×1024 GRU of configs/best-cpu.toml, B = 64):

  * one rank with 2 BLAS threads (the batch cut into 2 thread shards, charnn.nn.parallel) against
    2 MPI ranks with 1 BLAS thread each (`mpiexec -n 2`, charnn.train.distributed): s/step;
  * the all-reduce's share of a 2-rank step: the time in `allreduce_mean` (communication plus
    waiting for the slower rank) and a bare all-reduce of the same flat buffer after a barrier.

From the measured compute time of one machine and the parameter count it then models N machines
of this kind, each with B/N of the B streams (the same total batch, so the same result as one
process), with a ring all-reduce once per step and no overlap of communication and compute:

    t_compute(N)   = t_1 / N                                   t_1: one machine's step, less its all-reduce
    t_allreduce(N) = 2 (N − 1) / N · bytes / bandwidth + 2 (N − 1) · latency
    efficiency(N)  = t_compute(N) / (t_compute(N) + t_allreduce(N))

and prints, for each bandwidth, the largest N whose efficiency is at least --efficiency. t_1 / N
is optimistic for small shares (GEMMs of few rows run below peak), so the N found is an upper
bound. Re-run the model with other figures without measuring: --model-only --t1 S --params P.

    nice python benchmarks/bench_mpi.py                       # measure (about 2 minutes) and model
    python benchmarks/bench_mpi.py --model-only --t1 30 --params 9651770 --bytes-per-param 4
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


# --------------------------------------------------------------------------------------------
# the model

def allreduce_s(n_machines: int, nbytes: float, gbit_s: float, latency_s: float) -> float:
    """Ring all-reduce of `nbytes` over N machines: 2(N−1)/N · bytes / bandwidth + 2(N−1) · latency."""
    if n_machines <= 1:
        return 0.0
    N = n_machines
    return 2 * (N - 1) / N * nbytes / (gbit_s * 1e9 / 8) + 2 * (N - 1) * latency_s


def efficiency(n_machines: int, t1: float, nbytes: float, gbit_s: float, latency_s: float) -> float:
    t_compute = t1 / n_machines
    return t_compute / (t_compute + allreduce_s(n_machines, nbytes, gbit_s, latency_s))


def max_machines(t1: float, nbytes: float, gbit_s: float, latency_s: float, target: float, limit: int) -> int:
    """The largest N <= limit (the stream count: every machine needs a stream) with efficiency >= target."""
    best = 1
    for N in range(2, limit + 1):
        if efficiency(N, t1, nbytes, gbit_s, latency_s) >= target:
            best = N
    return best


def model_table(t1: float, params: int, bytes_per_param: int, bandwidths: list[float], latency_s: float,
                target: float, limit: int) -> list[dict]:
    nbytes = params * bytes_per_param
    rows = []
    for bw in bandwidths:
        N = max_machines(t1, nbytes, bw, latency_s, target, limit)
        rows.append({"gbit_s": bw, "max_machines": N, "efficiency_at_max": round(efficiency(N, t1, nbytes, bw, latency_s), 4),
                     "allreduce_s_at_max": round(allreduce_s(N, nbytes, bw, latency_s), 5),
                     "compute_s_at_max": round(t1 / N, 5)})
    return rows


# --------------------------------------------------------------------------------------------
# one measurement (run in a child process: alone, or as each rank under mpiexec)

def worker(args: argparse.Namespace) -> None:
    from charnn.data.corpus import Corpus
    from charnn.train.config import Config
    from charnn.train.trainer import Trainer

    cfg = Config(cell=args.cell, layers=args.layers, hidden_size=args.hidden_size, batch_size=args.batch_size,
                 max_len=args.max_len, dtype=args.dtype)
    trainer = Trainer(cfg, Corpus.load(None), progress=False, log=None)
    world = trainer.world
    in_allreduce: list[float] = []
    real = world.allreduce_mean

    def timed(*a):
        t = time.perf_counter()
        out = real(*a)
        in_allreduce.append(time.perf_counter() - t)
        return out
    world.allreduce_mean = timed
    steps = []
    for k in range(args.warmup + args.steps):
        t = time.perf_counter()
        trainer.train_step(*trainer.batches.get(k))
        trainer.step += 1
        steps.append(time.perf_counter() - t)
    steps, in_allreduce = steps[args.warmup:], in_allreduce[args.warmup:]
    bare = []
    if world.size > 1:                      # the all-reduce alone: the flat buffer, ranks in step
        buf = np.ones(trainer.num_params + 1, dtype=np.dtype(args.dtype))
        for _ in range(args.steps + 2):
            world.comm.Barrier()
            t = time.perf_counter()
            world.comm.Allreduce(world.MPI.IN_PLACE, buf, op=world.MPI.SUM)
            bare.append(time.perf_counter() - t)
        bare = bare[2:]
    if world.is_root:
        print(json.dumps({"ranks": world.size, "params": trainer.num_params, "step_s": float(np.median(steps)),
                          "steps_s": steps, "in_allreduce_s": float(np.median(in_allreduce)) if world.size > 1 else 0.0,
                          "bare_allreduce_s": float(np.median(bare)) if bare else 0.0}))


def launch(cmd: list[str], threads: int) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "HYDRA_LAUNCHER": "fork", "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cell", default="gru")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden-size", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=64, help="the total batch B (streams)")
    ap.add_argument("--max-len", type=int, default=25, help="T of the measured steps")
    ap.add_argument("--project-max-len", type=int, default=100,
                    help="T of the modelled run: t_1 is scaled by project/measured (compute is linear in T)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--bandwidths", type=float, nargs="+", default=[1, 10, 25, 100], help="Gbit/s")
    ap.add_argument("--latency-us", type=float, default=50.0, help="per message of the ring, microseconds")
    ap.add_argument("--efficiency", type=float, default=0.8)
    ap.add_argument("--model-only", action="store_true", help="no measurement: model from --t1 and --params")
    ap.add_argument("--t1", type=float, help="one machine's compute seconds per step (--model-only)")
    ap.add_argument("--params", type=int, help="parameter count (--model-only)")
    ap.add_argument("--bytes-per-param", type=int, help="default: the dtype's size")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    bpp = args.bytes_per_param or np.dtype(args.dtype).itemsize
    record: dict = {"date": datetime.now().isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    if args.model_only:
        if args.t1 is None or args.params is None:
            sys.exit("--model-only needs --t1 and --params")
        t1, params = args.t1, args.params
    else:
        base = [sys.executable, str(Path(__file__).resolve()), "--worker", "--cell", args.cell, "--layers", str(args.layers),
                "--hidden-size", str(args.hidden_size), "--batch-size", str(args.batch_size),
                "--max-len", str(args.max_len), "--dtype", args.dtype, "--steps", str(args.steps),
                "--warmup", str(args.warmup)]
        mpiexec = str(Path(sys.executable).parent / "mpiexec")
        load0 = os.getloadavg()
        one = launch(base, threads=2)
        two = launch([mpiexec, "-n", "2", *base], threads=1)
        record.update(load_before=load0, load_after=os.getloadavg(), one_rank_two_threads=one, two_ranks_one_thread=two)
        params = one["params"]
        # One machine's compute: its faster way of using its two cores, less the all-reduce in it.
        best = min(one["step_s"], two["step_s"] - two["in_allreduce_s"])
        t1 = best * args.project_max_len / args.max_len
        print(f"{args.cell} {args.layers}x{args.hidden_size}, B={args.batch_size}, T={args.max_len}, {args.dtype}, "
              f"{params:,} parameters; load {load0[0]:.1f} -> {record['load_after'][0]:.1f}")
        print(f"  1 rank x 2 threads: {one['step_s']:.3f} s/step")
        print(f"  2 ranks x 1 thread: {two['step_s']:.3f} s/step, of which in the all-reduce "
              f"{two['in_allreduce_s'] * 1e3:.1f} ms ({100 * two['in_allreduce_s'] / two['step_s']:.1f}%), "
              f"bare all-reduce {two['bare_allreduce_s'] * 1e3:.1f} ms "
              f"({100 * two['bare_allreduce_s'] / two['step_s']:.1f}%)")
        print(f"  one machine's compute at T={args.project_max_len}: t_1 = {t1:.3f} s/step")
    rows = model_table(t1, params, bpp, args.bandwidths, args.latency_us * 1e-6, args.efficiency, args.batch_size)
    record.update(t1_s=t1, params=params, bytes_per_param=bpp, model=rows)
    print(f"model: {params * bpp / 2**20:.1f} MiB all-reduced per step, latency {args.latency_us:g} us, "
          f"B = {args.batch_size} streams over N machines, efficiency >= {args.efficiency:g}:")
    for r in rows:
        print(f"  {r['gbit_s']:>6g} Gbit/s: up to {r['max_machines']:>3} machines "
              f"(efficiency {r['efficiency_at_max']:.3f}: compute {r['compute_s_at_max'] * 1e3:.0f} ms, "
              f"all-reduce {r['allreduce_s_at_max'] * 1e3:.0f} ms per step)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
