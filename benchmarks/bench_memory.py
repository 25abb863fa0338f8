"""Peak memory (RSS) of `charnn train` against an equivalent PyTorch training script.

Both run as child processes on Tiny Shakespeare at batch 128, T=100, H=256, float32, Adam + clip
±5, for --steps optimizer steps, then validate over the validation split and sample 300
characters, as `charnn train --max-steps` does. Peak RSS is each child's own ru_maxrss (wait4).

    python benchmarks/bench_memory.py [--steps 30] [--reps 2] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TORCH_SCRIPT = r'''
import sys, torch, torch.nn.functional as F
from charnn.data import default_corpus_path
steps, threads = int(sys.argv[1]), int(sys.argv[2]); B, T, H = 128, 100, 256
torch.set_num_threads(threads); torch.manual_seed(42)
text = open(default_corpus_path(), encoding="utf-8").read()
chars = sorted(set(text)); V = len(chars); stoi = {c: i for i, c in enumerate(chars)}
ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
n = int(len(ids) * 0.9); train, val = ids[:n], ids[n:]
L = len(train) // B; streams = train[: B * L].view(B, L)
rnn = torch.nn.RNN(V, H, nonlinearity="tanh", batch_first=True); lin = torch.nn.Linear(H, V)
params = list(rnn.parameters()) + list(lin.parameters())
opt = torch.optim.Adam(params, lr=5e-3)
h = None
for k in range(steps):
    x, y = streams[:, k * T:(k + 1) * T], streams[:, k * T + 1:(k + 1) * T + 1]
    out, h = rnn(F.one_hot(x, V).float(), h)
    loss = F.cross_entropy(lin(out).reshape(-1, V), y.reshape(-1))
    opt.zero_grad(); loss.backward()
    for p in params: p.grad.clamp_(-5, 5)
    opt.step(); h = h.detach()
with torch.no_grad():                                   # validation, h carried, chunks of 1000
    total, hv = 0.0, None
    for s in range(0, len(val) - 1, 1000):
        x = val[s:s + 1000][: len(val) - 1 - s]; y = val[s + 1:s + 1 + len(x)]
        out, hv = rnn(F.one_hot(x, V).float()[None], hv)
        total += F.cross_entropy(lin(out[0]), y, reduction="sum").item()
    hs = torch.zeros(1, 1, H); x = torch.tensor([stoi["R"]])
    for _ in range(300):                                # a 300-character sample
        o, hs = rnn(F.one_hot(x, V).float().view(1, 1, V), hs)
        x = torch.multinomial(torch.softmax(lin(o[0, -1]) / 1.5, -1), 1)[0]
print(f"val loss {total / (len(val) - 1):.3f}")
'''


def run_child(cmd: list[str], threads: int) -> tuple[float, float, int]:
    """(peak RSS in MiB, wall seconds, exit status) of one child process."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        sys.exit(f"{cmd[:3]}... failed ({proc.returncode}):\n{err[-2000:]}")
    return usage.ru_maxrss / 1024.0, time.perf_counter() - t0, proc.returncode


def charnn_command(out: Path, steps: int) -> list[str]:
    exe = Path(sys.executable).with_name("charnn")
    base = [str(exe)] if exe.exists() else [sys.executable, "-c", "from charnn.cli import main; main()"]
    return base + ["train", "--out", str(out), "--batch-size", "128", "--max-steps", str(steps), "--no-progress"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2,
                    help="threads of both children [2]; on a busy machine 1 keeps PyTorch's batch-1 "
                         "validation from crawling (peak memory barely depends on it)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="charnn-mem-"))
    script = tmp / "torch_train.py"
    script.write_text(TORCH_SCRIPT)
    peaks: dict[str, list[float]] = {"charnn": [], "torch": []}
    try:
        for r in range(args.reps):
            rss, wall, _ = run_child(charnn_command(tmp / f"run{r}", args.steps), args.threads)
            peaks["charnn"].append(rss)
            print(f"charnn train: peak RSS {rss:7.1f} MiB ({wall:.1f} s)", flush=True)
            rss, wall, _ = run_child([sys.executable, str(script), str(args.steps), str(args.threads)], args.threads)
            peaks["torch"].append(rss)
            print(f"PyTorch:      peak RSS {rss:7.1f} MiB ({wall:.1f} s)", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c, t = max(peaks["charnn"]), max(peaks["torch"])
    print(f"Tiny Shakespeare, B=128, {args.steps} steps + validation + sample: charnn {c:.0f} MiB, "
          f"PyTorch {t:.0f} MiB, ratio {c / t:.2f} (target <= 0.33)")
    return {"charnn_mib": c, "torch_mib": t, "ratio": c / t}


if __name__ == "__main__":
    main()
