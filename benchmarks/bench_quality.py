"""Test loss vs training wall time: charnn's best CPU preset vs the strongest PyTorch twins, on any corpus.

Runs, one after the other on the same machine, each for the same training wall-clock budget:

  charnn        `charnn train --config configs/best-cpu.toml` (the real trainer, through `charnn.train.train`),
                its width chosen from the budget as `charnn train` chooses it (min_steps, charnn.train.sizing),
                the seconds spent timing counted as training time
  pytorch-lstm  what a good PyTorch user writes: nn.Embedding + nn.LSTM 2×512 + nn.Linear, the training
                text cut into B=64 contiguous streams read T=100 characters at a time with the state
                carried (truncated BPTT, as charnn trains), dropout between the layers and before the
                output layer, Adam 2e-3 with a 100-step warm-up and a cosine decay over the time budget,
                global-norm clipping at 5, all cores
  pytorch-gru   the same at the preset's size and cell as chosen for the budget (nn.GRU 2×H; --preset-hidden
                pins H to an earlier charnn run's choice)
  rnn           charnn's vanilla (seed) RNN cell, H=512, B=32, Adam 2e-3 cosine

Splits (as the preset's): train | validation 5% | test 10%, contiguous, the test split the end of the
corpus. Every choice is made on the validation split: each run's best checkpoint (early stopping),
charnn's calibration, and the twins' dropout (--twin-dropouts: each value is trained for the whole
budget and the one with the best validation loss is reported; the others are kept in the JSON).
The test split is scored only for the checkpoint that is best on validation so far, so the figure
at a time t is the test loss of the model one would have picked at t.

Clock: only training counts (evaluations, checkpoints and epoch-end samples are excluded). A charnn
run gets the budget as its own time limit (Config.max_minutes), so its cosine schedule decays over
the training minutes and ends when the budget does; the twins decay their cosine over the same
training seconds. Evaluations (validation, and test when validation improved) read each split as
32 parallel streams with a 500-character warm-up each (`charnn.nn.reader.stream_layout`, the same
layout for the PyTorch models), --evals times per run; at the end each run's best checkpoint is
also scored exactly at batch 1 on the test split.

    python benchmarks/bench_quality.py --minutes 30                                  # the full measurement
    python benchmarks/bench_quality.py --minutes 30 --corpus corpora/kjv.txt --out benchmarks/results/quality/kjv
    python benchmarks/bench_quality.py --minutes 30 --runs pytorch-lstm --twin-dropouts 0.1,0.2,0.3  # the search
    python benchmarks/bench_quality.py --minutes 0.2 --hidden-size 64 --corpus-chars 200000 --evals 3 \
        --torch-threads 1 --out /tmp/quality-smoke                                    # smoke test (~2 min)
Writes OUT/quality.json (curves and metadata), OUT/quality.png (test loss against wall time, every
run on one plot) and prints a table of the test loss at 5, 10, 20 and 30 minutes. Runs made by
separate invocations on one corpus go on one plot with `--merge A/quality.json B/quality.json --out C`;
a name that appears in several (a dropout search run in parts) keeps the run best on validation. A
merged quality.json can be merged again with a new run; it stands for the files it was merged from.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_info

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from charnn import model, train  # noqa: E402
from charnn.data.corpus import Corpus  # noqa: E402
from charnn.train import checkpoint, sizing  # noqa: E402
from charnn.train.config import Config  # noqa: E402

STREAMS, BURN_IN = 32, 500
MARKS = (5, 10, 20, 30)            # minutes at which the table reports the test loss
VAL_FRACTION, TEST_FRACTION = 0.05, 0.10
RNN_CFG = dict(cell="rnn", layers=1, hidden_size=512, batch_size=32, max_len=100, lr=2e-3, lr_schedule="cosine",
               warmup_steps=100, min_lr=2e-5, grad_clip=5.0, epochs=1000, eval_streams=STREAMS,
               sample_length=200, log_every=50, val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION)


def blas_summary() -> str:
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} "
                     f"{i.get('num_threads')} threads" for i in info)


def load_avg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def splits(corpus: Corpus) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """train | validation 5% | test 10% (the preset's splits; charnn.data.split_sizes)."""
    return corpus.splits(1.0 - VAL_FRACTION - TEST_FRACTION, VAL_FRACTION, TEST_FRACTION)


def streamed_nats(params: dict, ids: np.ndarray, streams: int = STREAMS) -> float:
    total, n, _ = model.evaluate(params, ids, streams=streams, burn_in=BURN_IN)
    return total / n


# --------------------------------------------------------------------------------------------
# charnn runs (the real trainer)

class Clock:
    """Training-only wall clock and the curve of a charnn run, from the trainer's callbacks.

    At each validation that improves on the best so far, the best checkpoint (just written) is scored
    on the test split; every curve point carries the test loss of the best-on-validation model so far.
    """

    def __init__(self, budget_s: float, best_path: Path, test_ids: np.ndarray):
        self.budget_s, self.train_s, self.mark = budget_s, 0.0, time.perf_counter()
        self.best_path, self.test_ids = best_path, test_ids
        self.curve: list[dict] = []
        self.steps = 0
        self.best_val, self.best_test = math.inf, math.nan

    def __call__(self, event: str, rec: dict) -> None:
        now = time.perf_counter()
        if event == "step":
            self.train_s += now - self.mark
            self.steps = rec["step"]
            self.mark = now
            if self.train_s >= self.budget_s:
                raise train.StopTraining
        elif event == "eval":
            if rec["val_loss"] < self.best_val:
                self.best_val = rec["val_loss"]
                best = checkpoint.load(self.best_path)
                self.best_test = streamed_nats(best.model_params, self.test_ids)
            self.curve.append({"train_s": round(self.train_s, 2), "step": rec["step"], "val_loss": rec["val_loss"],
                               "test_loss": self.best_test, "train_loss": rec["train_loss"],
                               **{k: rec[k] for k in ("val_loss_plain", "temperature") if k in rec}})
            self.mark = time.perf_counter()
        else:                          # log/epoch rows: whatever ran since the step is not training
            self.mark = now


def charnn_config(cfg: Config, minutes: float, evals: int, rate_steps_s: float | None = None) -> Config:
    """The run's own time budget (the cosine decays over the training minutes) and evaluations spaced in it."""
    every = max(1, int(minutes * 60 * rate_steps_s) // evals) if rate_steps_s else cfg.eval_every
    return cfg.replace(max_minutes=minutes, max_steps=0, epochs=1000, eval_every=every,
                       val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION)


def steps_per_s(cfg: Config, corpus: Corpus, n: int = 3) -> float:
    """Training steps per second of cfg's model, timed on n steps after one warm-up step (in memory)."""
    times: list[float] = []
    last = [time.perf_counter()]

    def cb(event: str, rec: dict) -> None:
        if event == "step":
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now
            if len(times) > n:
                raise train.StopTraining
    probe = cfg.replace(max_minutes=0.0, max_steps=n + 1, eval_every=0, epochs=1, sample_length=1,
                        init_from="", extend_vocab=False, reg_ramp=0.0)
    train.train(probe, None, corpus=corpus, callbacks=[cb], progress=False, log=None)
    return 1.0 / float(np.median(times[1:])) if len(times) > 1 else 1.0


def fit_width(cfg: Config, minutes: float, corpus: Corpus, label: str) -> tuple[Config, sizing.Fit]:
    """(cfg at the width `charnn train` would choose for a `minutes` budget, fixed there with min_steps 0;
    how it was chosen). cfg is unchanged, and no timing spent, where its width is not chosen."""
    if not sizing.applies(cfg.replace(max_minutes=minutes)):
        return cfg, sizing.Fit(cfg, 0.0, ())
    fitted = sizing.fit(cfg.replace(max_minutes=minutes), corpus)
    print(f"[{label}] {fitted.summary()}", flush=True)
    return fitted.cfg.replace(min_steps=0), fitted


def sizing_record(fitted: sizing.Fit) -> dict | None:
    """How the width was chosen, for the JSON; None where it was not."""
    return {"summary": fitted.summary(), "probes": fitted.probes, "spent_s": fitted.spent_s} if fitted.probes else None


def run_charnn(name: str, cfg: Config, corpus: Corpus, minutes: float, out: Path, evals: int,
               spent_s: float = 0.0) -> dict:
    """spent_s: seconds already spent on the run's behalf (timing its width, charnn.train.sizing):
    they count as training time, as they do when `charnn train` chooses the width itself."""
    own = corpus                  # the corpus under the model's vocabulary (a fine-tuned model's: its source's)
    if cfg.init_from:
        from charnn.train import finetune
        own = finetune.prepare(cfg, corpus)[0]
    rate = steps_per_s(cfg, own)  # on a fresh model of the same size
    cfg = charnn_config(cfg, minutes - spent_s / 60, evals, rate)
    _, _, test_ids = splits(own)
    clock = Clock(minutes * 60, out / name / "checkpoints" / "best.safetensors", test_ids)
    clock.train_s = spent_s
    print(f"[{name}] {rate:.2f} steps/s ({rate * cfg.batch_size * cfg.max_len:,.0f} chars/s) before the run; "
          f"max_minutes {cfg.max_minutes:g}, eval every {cfg.eval_every}", flush=True)
    t0 = time.perf_counter()
    res = train.train(cfg, out / name, corpus=corpus, overwrite=True, callbacks=[clock], progress=False,
                      log=lambda m: None)
    best = checkpoint.load(out / name / "checkpoints" / "best.safetensors")
    exact = streamed_nats(best.model_params, test_ids, streams=1)
    return {"name": name, "config": cfg.to_dict(), "curve": clock.curve, "train_s": clock.train_s,
            "steps": clock.steps, "chars_per_s": clock.steps * cfg.batch_size * cfg.max_len / max(clock.train_s, 1e-9),
            "best_val_streamed": res.best_val_loss, "test_exact": exact, "best_step": best.step,
            "temperature": best.temperature, "wall_s": time.perf_counter() - t0,
            "params": int(sum(p.size for p in res.params.values()))}


# --------------------------------------------------------------------------------------------
# the PyTorch twins

class Twin(torch.nn.Module):
    """nn.Embedding + nn.LSTM/GRU + nn.Linear, dropout between the layers and before the output layer."""

    def __init__(self, V: int, cell: str, H: int, layers: int, dropout: float, embed: int):
        super().__init__()
        self.V, self.cell = V, cell
        self.embed = torch.nn.Embedding(V, embed)
        rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        self.rnn = rnn(embed, H, layers, dropout=dropout)
        self.drop = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(H, V)

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        out, state = self.rnn(self.embed(x), state)
        return self.head(self.drop(out)), state


def detach(state: Any) -> Any:
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


@torch.no_grad()
def twin_to_charnn(m: Twin) -> dict[str, np.ndarray]:
    """An LSTM twin's weights in charnn's layout (exact: the layouts differ only in gate order).

    torch.nn.LSTM stacks its gates (i, f, g, o); charnn's are (i, f, o, g), and charnn has one
    bias per layer where PyTorch has b_ih + b_hh. The embedding is charnn's E.
    """
    H = m.rnn.hidden_size
    perm = np.concatenate([np.arange(0, 2 * H), np.arange(3 * H, 4 * H), np.arange(2 * H, 3 * H)])
    out = {"E": m.embed.weight.detach().numpy().astype(np.float32).copy()}
    for l in range(m.rnn.num_layers):
        g = lambda name: getattr(m.rnn, f"{name}_l{l}").detach().numpy().astype(np.float32)  # noqa: E731
        out[f"L{l}.W"] = np.ascontiguousarray(g("weight_hh")[perm])
        out[f"L{l}.U"] = np.ascontiguousarray(g("weight_ih")[perm])
        out[f"L{l}.b"] = np.ascontiguousarray((g("bias_ih") + g("bias_hh"))[perm])
    out["V"] = m.head.weight.detach().numpy().astype(np.float32).copy()
    out["c"] = m.head.bias.detach().numpy().astype(np.float32).copy()
    return out


@torch.no_grad()
def twin_eval(m: Twin, ids: np.ndarray, streams: int = STREAMS, chunk: int = 1000) -> float:
    """Mean loss over `ids` read as `streams` parallel streams with a warm-up each (charnn's layout)."""
    m.eval()
    if streams == 1:
        X, Y, Wt = ids[:-1, None], ids[1:, None], np.ones((len(ids) - 1, 1), np.float32)
    else:
        X, Y, Wt = model.stream_layout(ids, streams, BURN_IN)
    total, state = 0.0, None
    for i in range(0, len(X), chunk):
        logits, state = m(torch.from_numpy(X[i:i + chunk].astype(np.int64)), state)
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, m.V), torch.from_numpy(
            Y[i:i + chunk].astype(np.int64)).reshape(-1), reduction="none")
        total += float((nll.numpy() * Wt[i:i + chunk].reshape(-1)).sum())
    m.train()
    return total / (len(ids) - 1)


def cosine_lr(step: int, train_s: float, budget_s: float, lr: float, min_lr: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then a cosine from lr to min_lr over the training seconds."""
    if step < warmup:
        return lr * (step + 1) / warmup
    p = min(1.0, train_s / budget_s)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * p))


def stream_batches(train_ids: np.ndarray, B: int, T: int) -> tuple[torch.Tensor, int]:
    """The training text as B contiguous streams (B, L) and the number of T-character chunks per epoch."""
    L = len(train_ids) // B
    streams = torch.from_numpy(np.asarray(train_ids[:B * L], dtype=np.int64).reshape(B, L))
    return streams, (L - 1) // T


def run_twin(name: str, corpus: Corpus, minutes: float, out: Path, *, cell: str, hidden: int, layers: int,
             dropout: float, embed: int, evals: int, lr: float = 2e-3, min_lr: float = 2e-5, warmup: int = 100,
             B: int = 64, T: int = 100, clip: float = 5.0, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    train_ids, val_ids, test_ids = splits(corpus)
    V = len(corpus.vocab)
    m = Twin(V, cell, hidden, layers, dropout, embed)
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    streams, per_epoch = stream_batches(train_ids, B, T)
    budget = minutes * 60
    every_s = budget / evals
    print(f"[{name}] {cell} {layers}×{hidden}, embed {embed}, dropout {dropout:g}, B={B} T={T}, "
          f"{torch.get_num_threads()} threads", flush=True)
    curve: list[dict] = []
    train_s, step, k, state = 0.0, 0, 0, None
    best_val, best_test, best_state, next_eval = math.inf, math.nan, None, every_s
    t_wall = time.perf_counter()
    while train_s < budget:
        t = time.perf_counter()
        if k == per_epoch:                         # each epoch reads the streams from their start
            k, state = 0, None
        w = streams[:, k * T: k * T + T + 1].t()    # (T+1, B), time-major
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, train_s, budget, lr, min_lr, warmup)
        logits, state = m(w[:-1], state)
        state = detach(state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), w[1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), clip)
        opt.step()
        train_s += time.perf_counter() - t
        step, k = step + 1, k + 1
        if train_s >= next_eval or train_s >= budget:
            next_eval += every_s
            v = twin_eval(m, val_ids)
            if v < best_val:
                best_val, best_state = v, {n: p.clone() for n, p in m.state_dict().items()}
                best_test = twin_eval(m, test_ids)
            curve.append({"train_s": round(train_s, 2), "step": step, "val_loss": v, "test_loss": best_test,
                          "train_loss": float(loss.item())})
    m.load_state_dict(best_state)
    exact = twin_eval(m, test_ids, streams=1)
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    if cell == "lstm":                 # in charnn's layout, for benchmarks/bench_cache.py --params
        from safetensors.numpy import save_file  # noqa: PLC0415
        save_file(twin_to_charnn(m), str(folder / "best-params.safetensors"))
    return {"name": name, "config": {"cell": cell, "layers": layers, "hidden_size": hidden, "embed": embed,
                                     "dropout": dropout, "lr": lr, "min_lr": min_lr, "warmup_steps": warmup,
                                     "lr_schedule": "cosine over the training seconds", "batch_size": B,
                                     "max_len": T, "clip_norm": clip, "threads": torch.get_num_threads(),
                                     "batches": "contiguous streams, state carried"},
            "curve": curve, "train_s": train_s, "steps": step, "chars_per_s": step * B * T / max(train_s, 1e-9),
            "best_val_streamed": best_val, "test_exact": exact, "wall_s": time.perf_counter() - t_wall,
            "params": int(sum(p.numel() for p in m.parameters()))}


def search_twin(name: str, dropouts: list[float], **kw: Any) -> dict:
    """Train the twin once per dropout; report the one best on validation (the others under "search")."""
    tried = [run_twin(name, dropout=d, **kw) for d in dropouts]
    best = min(tried, key=lambda r: r["best_val_streamed"])
    if len(tried) > 1:
        best = {**best, "search": [tried_value(r) for r in tried]}
    return best


def tried_value(run: dict) -> dict:
    """One value of a dropout search as "search" lists it: the value and the width it ran at (a merged
    search may span widths), its scores, and how many steps the budget bought (a search spread over
    machines of different speed compares unequal step counts)."""
    return {**({"measured_in": run["measured_in"]} if "measured_in" in run else {}),
            "dropout": run["config"].get("dropout"), "hidden_size": run["config"].get("hidden_size"),
            "best_val_streamed": run["best_val_streamed"],
            "test_exact": run["test_exact"], "steps": run.get("steps"), "chars_per_s": run.get("chars_per_s")}


# --------------------------------------------------------------------------------------------
# table and plot

def at_minute(curve: list[dict], minute: float, key: str = "test_loss") -> float | None:
    """`key` at the last evaluation within the first `minute` minutes of training: for test_loss, the
    test loss of the checkpoint best on validation by then. A run stops at the first step that ends
    past its budget, so 1% of slack admits that last point."""
    pts = [p[key] for p in curve if p["train_s"] <= minute * 60 * 1.01]
    return pts[-1] if pts else None


def plot(results: list[dict], path: Path, title: str, minutes: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in results:
        pts = [p for p in r["curve"] if math.isfinite(p["test_loss"])]
        ax.plot([p["train_s"] / 60 for p in pts], [p["test_loss"] for p in pts], marker="o", ms=3,
                label=f"{r['name']} (test {r['test_exact']:.4f})")
    ax.set_xlabel("training wall time (minutes)")
    ax.set_ylabel("test loss of the best-on-validation model (nats/char)")
    longest = max([p["train_s"] / 60 for r in results for p in r["curve"]] + [minutes])
    ax.set_xlim(0, longest * 1.02)
    vals = [p["test_loss"] for r in results for p in r["curve"] if math.isfinite(p["test_loss"])] or [1.3, 2.0]
    ax.set_ylim(min(vals) - 0.05, min(max(vals), min(vals) + 0.8) + 0.05)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(results: list[dict], minutes: float) -> str:
    marks = [m for m in MARKS if m <= minutes * 1.001] or [minutes]
    lines = ["| run | params | chars/s | " + " | ".join(f"test @ {m:g} min" for m in marks)
             + " | best val (streamed) | test, exact |", "|---|---|---|" + "---|" * len(marks) + "---|---|"]
    for r in results:
        cells = [at_minute(r["curve"], m) for m in marks]
        lines.append(f"| {r['name']} | {r['params'] / 1e6:.2f}M | {r['chars_per_s']:,.0f} | "
                     + " | ".join("–" if v is None else f"{v:.4f}" for v in cells)
                     + f" | {r['best_val_streamed']:.4f} | {r['test_exact']:.4f} |")
    return "\n".join(lines)


def load_corpus(path: str | None, chars: int) -> Corpus:
    corpus = Corpus.load(path or None)
    if chars and chars < corpus.chars:
        corpus = Corpus.from_text(corpus.vocab.decode(corpus.ids[:chars]), path=corpus.display_path + f"[:{chars}]")
    return corpus


def machine_meta(minutes: float, corpus: Corpus) -> dict:
    return {"date": datetime.now().isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "blas": blas_summary(), "torch": torch.__version__, "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(), "minutes": minutes, "corpus": corpus.display_path,
            "corpus_chars": corpus.chars, "corpus_sha256": corpus.sha256, "val_fraction": VAL_FRACTION,
            "test_fraction": TEST_FRACTION, "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
            "load_avg_start": load_avg()}


def best_of_each(runs: list[dict]) -> list[dict]:
    """One run per name: where a name was run more than once (a twin's dropout search spread over
    several commands), the one best on validation, the others listed under "search" as search_twin
    lists them. The order is that of each name's first run."""
    by_name: dict[str, list[dict]] = {}
    for r in runs:
        by_name.setdefault(r["name"], []).append(r)
    chosen = []
    for name, group in by_name.items():
        best = min(group, key=lambda r: r["best_val_streamed"])
        if len(group) > 1:
            tried = [t for r in group for t in (r.get("search") or [tried_value(r)])]
            best = {**best, "search": tried}
        chosen.append(best)
    return chosen


def sourced(run: dict, file: Path, doc: dict) -> dict:
    """The run as merge reads it: it, and each value of its own search, names the file it was measured in.
    A file that is itself a merge (a published result extended by a new run) keeps what it recorded,
    so merging in steps gives what merging every source at once gives."""
    if "merged_from" in doc["meta"]:
        return dict(run, measured_in=run.get("measured_in", str(file)))
    if "search" in run:
        run = dict(run, search=[{"measured_in": str(file), **t} for t in run["search"]])
    return dict(run, measured_in=str(file))


def merge(files: list[Path], out: Path) -> None:
    """One quality.json, plot and table from the runs of several (the same corpus, run separately)."""
    docs = [json.loads(f.read_text()) for f in files]
    shas = {d["meta"]["corpus_sha256"] for d in docs}
    if len(shas) != 1:
        raise SystemExit(f"the files measure {len(shas)} different corpora: {', '.join(map(str, files))}")
    runs = best_of_each([sourced(r, f, d) for f, d in zip(files, docs) for r in d["runs"]])
    sources = [s for f, d in zip(files, docs)
               for s in (d["meta"]["merged_from"] if "merged_from" in d["meta"] else [{"file": str(f), **d["meta"]}])]
    meta = {**docs[0]["meta"], "merged_from": sources}
    minutes = max(d["meta"]["minutes"] for d in docs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=2) + "\n")
    plot(runs, out / "quality.png", f"{Path(meta['corpus']).name}, {meta['cpus']}-core CPU", minutes)
    print(table(runs, minutes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--merge", type=Path, nargs="+", metavar="QUALITY_JSON",
                    help="only merge the runs of these quality.json files (one corpus) into OUT: one JSON, plot, table")
    ap.add_argument("--minutes", type=float, default=30.0, help="training wall time of each run [30]")
    ap.add_argument("--runs", default="charnn,pytorch-lstm,pytorch-gru",
                    help="comma-separated: charnn, pytorch-lstm, pytorch-gru, rnn [charnn,pytorch-lstm,pytorch-gru]")
    ap.add_argument("--corpus", default=None, help="text file (e.g. from tools/build_corpora.py) [Tiny Shakespeare]")
    ap.add_argument("--corpus-chars", type=int, default=0, help="use only the first N characters (smoke tests) [all]")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "best-cpu.toml")
    ap.add_argument("--hidden-size", type=int, default=0,
                    help="override every model's hidden size (smoke tests; 0 = the preset's and the twins') [0]")
    ap.add_argument("--preset-hidden", type=int, default=0,
                    help="the preset's hidden size as an earlier run chose it from the budget (for a pytorch-gru "
                         "run on its own); 0 = choose it here [0]")
    ap.add_argument("--twin-dropouts", default="0.2", help="the twins' dropout, or a comma-separated search [0.2]")
    ap.add_argument("--twin-embed", type=int, default=128, help="the twins' embedding width [128]")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality")
    ap.add_argument("--evals", type=int, default=12, help="evaluations per run [12]")
    ap.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1,
                    help="PyTorch's threads [all cores, as charnn's BLAS uses; 1 on a machine shared with other work, "
                         "where spinning threads slow PyTorch down many times]")
    args = ap.parse_args()
    if args.merge:
        return merge(args.merge, args.out)
    torch.set_num_threads(args.torch_threads)
    args.out.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(args.corpus, args.corpus_chars)
    with open(args.config, "rb") as f:
        preset = Config.from_dict(tomllib.load(f))
    H = args.hidden_size
    if H:
        preset = preset.replace(hidden_size=H, min_steps=0)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    fitted = sizing.Fit(preset, 0.0, ())
    if args.preset_hidden:        # the width an earlier charnn run chose (pytorch-gru run on its own)
        preset = preset.replace(hidden_size=args.preset_hidden, min_steps=0)
    elif {"charnn", "pytorch-gru"} & set(runs):
        preset, fitted = fit_width(preset, args.minutes, corpus, "charnn")
    meta = machine_meta(args.minutes, corpus)
    print(f"# {meta['date']}, {meta['cpus']} CPUs, {meta['blas']}, torch {meta['torch']} ({meta['torch_threads']} "
          f"threads), load average {meta['load_avg_start']:.2f}; {corpus.display_path}, {corpus.chars:,} chars",
          flush=True)
    dropouts = [float(x) for x in args.twin_dropouts.split(",") if x.strip()]
    twin = dict(corpus=corpus, minutes=args.minutes, out=args.out, embed=args.twin_embed, evals=args.evals)
    results = []
    for name in runs:
        if name == "charnn":
            r = run_charnn(name, preset, corpus, args.minutes, args.out, args.evals, fitted.spent_s)
            r["sizing"] = sizing_record(fitted)
        elif name == "rnn":
            r = run_charnn(name, Config(**{**RNN_CFG, **({"hidden_size": H} if H else {})}), corpus,
                           args.minutes, args.out, args.evals)
        elif name == "pytorch-lstm":
            r = search_twin(name, dropouts, cell="lstm", hidden=H or 512, layers=2, **twin)
        elif name == "pytorch-gru":
            r = search_twin(name, dropouts, cell=preset.cell if preset.cell in ("lstm", "gru") else "gru",
                            hidden=preset.hidden_size, layers=preset.layers, **twin)
        else:
            raise SystemExit(f"unknown run {name!r}")
        r["measured"] = {"date": datetime.now().isoformat(timespec="seconds"), "load_avg_end": load_avg()}
        results.append(r)
        print(f"[{name}] {r['steps']} steps, {r['chars_per_s']:,.0f} chars/s, best val {r['best_val_streamed']:.4f}, "
              f"test (exact) {r['test_exact']:.4f}", flush=True)
        meta["load_avg_end"] = load_avg()
        (args.out / "quality.json").write_text(json.dumps({"meta": meta, "runs": results}, indent=2) + "\n")
    if results:
        plot(results, args.out / "quality.png", f"{Path(corpus.display_path).name}, {meta['cpus']}-core CPU",
             args.minutes)
        print("\n" + table(results, args.minutes))
    print(f"\n(load average {meta['load_avg_start']:.2f} at start, {meta.get('load_avg_end', float('nan')):.2f} at end; "
          f"{args.out / 'quality.json'}, {args.out / 'quality.png'})")


if __name__ == "__main__":
    main()
