"""The seed's five experiments, each writing its own folder of figures for the report.

    overfit      train on 20 (input, target) pairs only, until mean loss < 0.01 nats/char;
                 then greedy replay from each pair's first character must give its target
    optimizers   SGD vs Adam from one initialisation on one data order (plus a pilot LR sweep
                 that finds where SGD beats Adam at the seed's LR 5e-3)
    lr           Adam at 5e-3 vs 3e-4: loss curves and samples
    temperature  one checkpoint sampled at T = 0.5, 1.0, 1.5 and greedily, with text statistics
    analyze      the best model's long sample against the training text's own statistics

Each experiment writes ``OUT/<name>/results.json``: its settings, figures, samples and the seed's
claims, each with the measured figure and a verdict (holds / does not hold / inconclusive).
Training goes through train.train (run folders with metrics.jsonl and checkpoints) or, for the
fixed 20 pairs of `overfit`, through Trainer.train_step, so there is one training step in charnn.
The report (report.py) only reads these files.

The model is the seed's vanilla RNN unless Settings.cell / layers / dropout ask for an LSTM or GRU,
several layers or dropout; every experiment then trains and samples that model, and each
results.json records it ("model", "cell", "layers", "dropout" in its settings). temperature and
analyze record the model of the checkpoint they actually sample.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from . import textstats
from .. import model, train
from ..apps import inside, inside_html
from ..data import Batches, DataError, load_text, split_sizes
from ..data.vocab import VocabError
from ..data.corpus import Corpus
from ..sample import generate_text
from ..train import checkpoint
from ..train.config import Config

from . import NAMES  # noqa: E402,F401 - the experiments, in report order
HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
EARLY_FRACTION = 0.1  # "early" train loss: the mean over this leading share of a run's steps
LOSS_MARGIN = 0.01     # nats/char: smaller differences in loss are noise between runs
Z_SHARES = 2.0         # word shares differ when the gap exceeds two standard errors (sampling noise)


class ExperimentError(ValueError):
    """An experiment cannot run as asked (corpus too short, no checkpoint, ...): a user error."""


# --------------------------------------------------------------------------------------------
# settings

@dataclass(frozen=True)
class Settings:
    """Everything that sizes the experiments. DEFAULT fits 15 minutes on 2 CPU cores, QUICK 2 minutes."""

    name: str = "default"
    hidden_size: int = 256           # the seed's HIDDEN_SIZE
    batch_size: int = 1              # the seed trains one sequence per step
    max_len: int = 100               # the seed's MAX_LEN
    epochs: int = 2                  # the seed trains 5; 2 keep the whole reproduction within budget
    max_steps: int = 0               # cap per training run (0 = the epochs decide)
    eval_every: int = 5000           # validation points on the curves (besides epoch ends)
    log_every: int = 10
    corpus_chars: int = 0            # use only the first N characters of the corpus (0 = all)
    seed: int = 42
    dtype: str = "float32"
    adam_lr: float = 5e-3            # the seed's LR
    low_lr: float = 3e-4             # the seed's second LR
    sgd_lr_grid: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)
    pilot_steps: int = 2000          # length of each SGD pilot run
    threshold: float = 2.8           # nats/char: "converged" for the steps-to-threshold comparison
                                     # (above the plateau of Adam at 5e-3, whose crossing of a lower
                                     # line depends on chaotic detail of its trajectory)
    smooth_window: int = 500         # steps averaged for the train loss used against the threshold
    overfit_pairs: int = 20
    overfit_target: float = 0.01     # nats/char
    overfit_max_steps: int = 3000
    overfit_lr: float = 5e-3
    overfit_hidden_size: int = 256   # the seed's, in quick mode too: a smaller net memorises 20 pairs far slower
    temperatures: tuple[float, ...] = (0.5, 1.0, 1.5)
    sample_temperature: float = 1.5  # the seed's TEMPERATURE, used for the lr experiment's samples
    sample_length: int = 10000       # characters per temperature / lr sample (~2000 words: a share's
                                     # standard error is then about 1 percentage point)
    analyze_length: int = 10000      # characters of the analyze sample
    analyze_temperature: float = 1.0
    prompt: str = "ROMEO:"
    blas_threads: int = 1            # one BLAS thread: faster for these small matrices, and sane on a busy machine
    cell: str = "rnn"                # the model of every experiment: the seed's vanilla RNN by default,
    layers: int = 1                  # or an LSTM/GRU and/or a stack of layers
    dropout: float = 0.0

    def __post_init__(self) -> None:
        # The model fields go through Config's own validation: one message for train and experiments.
        Config(cell=self.cell, layers=self.layers, dropout=self.dropout)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sgd_lr_grid"] = list(self.sgd_lr_grid)
        d["temperatures"] = list(self.temperatures)
        return d


DEFAULT = Settings()
QUICK = Settings(name="quick", hidden_size=64, epochs=1, eval_every=600, corpus_chars=200_000,
                 pilot_steps=400, smooth_window=100, sample_length=3000, analyze_length=5000)


def settings_for(quick: bool, **changes: Any) -> Settings:
    """QUICK or DEFAULT, with any field replaced (None values are ignored)."""
    base = QUICK if quick else DEFAULT
    changes = {k: v for k, v in changes.items() if v is not None}
    if "hidden_size" in changes:
        changes.setdefault("overfit_hidden_size", changes["hidden_size"])
    return replace(base, **changes)


# --------------------------------------------------------------------------------------------
# shared context: the corpus, its training words, the progress bar, a cache of finished runs

class Progress:
    """One tqdm bar over all planned optimizer steps, its label saying which experiment runs."""

    def __init__(self, total: int, enabled: bool = True):
        import sys

        # Not a terminal (a log file, CI): redraw every 10 s instead of many times a second.
        every = 0.1 if sys.stderr.isatty() else 10.0
        self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, disable=not enabled, leave=True,
                        mininterval=every, file=sys.stderr)

    def stage(self, text: str) -> None:
        self.bar.set_description_str(text)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


@dataclass
class Context:
    settings: Settings
    corpus: Corpus
    text: str
    data_label: str
    progress: Progress | None = None
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)   # config key -> finished run summary
    own_model: tuple[Path, str, float | None] | None = None          # model trained for temperature/analyze
    encoding: str = "utf-8"                                          # of the corpus files

    def __post_init__(self) -> None:
        cfg = self.settings_config()
        n_train, n_val, self.n_test = split_sizes(len(self.corpus.ids), cfg.train_fraction, cfg.val_fraction,
                                                  cfg.test_fraction)
        self.train_text, self.val_text = self.text[:n_train], self.text[n_train:n_train + n_val]
        self.train_words = textstats.word_set(self.train_text)
        self.prompt = self._usable_prompt(self.settings.prompt)

    def settings_config(self, **changes: Any) -> Config:
        s = self.settings
        base = dict(hidden_size=s.hidden_size, batch_size=s.batch_size, max_len=s.max_len, epochs=s.epochs,
                    max_steps=s.max_steps, eval_every=s.eval_every, log_every=s.log_every, seed=s.seed,
                    dtype=s.dtype, lr=s.adam_lr, optimizer="adam", temperature=s.sample_temperature,
                    prompt="", sample_length=200, cell=s.cell, layers=s.layers, dropout=s.dropout, data=self.corpus.path if self.corpus.path != "<memory>" else "",
                    encoding=self.encoding)
        base.update(changes)
        return Config(**base)

    def _usable_prompt(self, prompt: str) -> str:
        if not self.corpus.vocab.unknown(prompt):
            return prompt
        return self.train_text[: min(5, len(self.train_text))]   # a prompt the corpus can encode

    def stage(self, text: str) -> None:
        if self.progress:
            self.progress.stage(text)

    def tick(self, n: int = 1) -> None:
        if self.progress:
            self.progress.update(n)


def load_context(data: str | None, settings: Settings, progress: Progress | None = None, *,
                 encoding: str = "utf-8") -> Context:
    """Read the corpus (the embedded Tiny Shakespeare when `data` is None), cut to settings.corpus_chars."""
    text = load_text(data or None, encoding=encoding)
    label = str(Path(data).resolve()) if data else "embedded Tiny Shakespeare"
    if settings.corpus_chars and len(text) > settings.corpus_chars:
        text = text[: settings.corpus_chars]
        label += f" (first {settings.corpus_chars:,} characters)"
        corpus = Corpus.from_text(text)
    else:
        corpus = Corpus.load(data or None, encoding=encoding)
    need = (settings.overfit_pairs * settings.max_len + 1) / 0.9
    if len(text) < need:
        raise ExperimentError(f"the corpus has {len(text):,} characters; the experiments need at least "
                              f"{math.ceil(need):,}")
    return Context(settings=settings, corpus=corpus, text=text, data_label=label, progress=progress,
                   encoding=encoding)


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Limit BLAS threads (threadpoolctl). With more threads than free cores OpenBLAS spins and a
    256-wide RNN step gets many times slower, so the experiments use one thread by default."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="blas"):
        yield


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def fresh_dir(path: Path) -> Path:
    """An empty folder for one experiment (a previous result of the same experiment is replaced)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def claim(claim_text: str, measure: str, measured: str, verdict: str, **values: Any) -> dict[str, Any]:
    """One row of the claims table; `values` keeps the raw figures behind `measured`."""
    assert verdict in (HOLDS, FAILS, UNSURE)
    return {"claim": claim_text, "measure": measure, "measured": measured, "verdict": verdict, "values": values}


def share_verdict(high: float, n_high: int, low: float, n_low: int) -> str:
    """Verdict on "share `high` is larger than share `low`" (shares of n_high and n_low words).

    Two-proportion z statistic z = (high − low) / √(high(1−high)/n_high + low(1−low)/n_low):
    holds when z > 2, does not hold when z < −2, inconclusive in between (sampling noise).
    """
    if n_high < 1 or n_low < 1:
        return UNSURE
    se = math.sqrt(high * (1 - high) / n_high + low * (1 - low) / n_low)
    if se == 0:
        return HOLDS if high > low else FAILS if high < low else UNSURE
    z = (high - low) / se
    return HOLDS if z > Z_SHARES else FAILS if z < -Z_SHARES else UNSURE


def model_label(cell: str, layers: int, hidden_size: int, dropout: float = 0.0) -> str:
    """The model in a few words: "RNN 256" (the seed's), "GRU 2×256, dropout 0.1"."""
    size = f"{layers}×{hidden_size}" if layers > 1 else f"{hidden_size}"
    return f"{cell.upper()} {size}" + (f", dropout {dropout:g}" if dropout > 0 else "")


def model_fields(cell: str, layers: int, hidden_size: int, dropout: float = 0.0) -> dict[str, Any]:
    """The model's entries of a results.json settings table (the report shows them as they are)."""
    return {"model": model_label(cell, layers, hidden_size, dropout), "cell": cell, "layers": layers,
            "dropout": dropout}


def checkpoint_model(c: checkpoint.Checkpoint) -> dict[str, Any]:
    """model_fields of a loaded checkpoint: cell, layers and H read from its arrays, dropout from its config."""
    spec = model.describe(c.params)
    return model_fields(spec.cell, spec.layers, spec.hidden_size, c.config.dropout)


def f4(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def p1(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:.1f}%"


# --------------------------------------------------------------------------------------------
# one training run through train.train, summarised

def trailing_mean(losses: Sequence[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(losses):
        acc += v
        if i >= window:
            acc -= losses[i - window]
        out.append(acc / min(i + 1, window))
    return out


def steps_to_threshold(losses: Sequence[float], threshold: float, window: int) -> int | None:
    """First step (1-based) at which the mean train loss of the last `window` steps is <= threshold."""
    w = max(1, min(window, len(losses)))
    for i, v in enumerate(trailing_mean(losses, w)):
        if i + 1 >= w and v <= threshold:
            return i + 1
    return None


def train_run(ctx: Context, exp_dir: Path, name: str, label: str, *, sample: bool = False,
              keep: bool = True, **changes: Any) -> dict[str, Any]:
    """Train one configuration (or reuse an identical finished run) and summarise it.

    keep=False trains in memory (pilot runs). The summary holds the figures the report shows;
    its run_dir is relative to exp_dir.
    """
    cfg = ctx.settings_config(**changes)
    key = json.dumps(cfg.to_dict(), sort_keys=True)
    if keep and key in ctx.runs:
        prev = dict(ctx.runs[key])
        ctx.tick(prev["steps"])
        prev.update(label=label, run_dir=os.path.relpath(prev["abs_run_dir"], exp_dir), reused=True)
        if prev["checkpoint"] is not None:
            prev["checkpoint"] = os.path.relpath(Path(prev["abs_run_dir"]) / "checkpoints" / train.BEST, exp_dir)
        if sample and prev.get("sample") is None:
            prev.update(_sample_fields(ctx, prev["params"]))
        return prev
    ctx.stage(f"{exp_dir.name}: {label}")
    losses: list[float] = []
    epochs: list[int] = []
    val_by_epoch: list[float] = []
    val_points: list[float] = []

    def on_event(event: str, rec: dict) -> None:
        if event == "step":
            losses.append(float(rec["loss"]))
            epochs.append(int(rec["epoch"]))
            ctx.tick()
        elif event == "epoch":
            val_by_epoch.append(float(rec["val_loss"]))
        elif event == "eval":
            val_points.append(float(rec["val_loss"]))

    run_dir = exp_dir / "runs" / name if keep else None
    t0 = time.perf_counter()
    diverged = False
    try:
        res = train.train(cfg, run_dir, corpus=ctx.corpus, overwrite=True, callbacks=[on_event],
                          progress=False, log=None)
        params, final_val, best_val, steps = res.params, res.val_loss, res.best_val_loss, res.step
    except train.TrainingDiverged:
        diverged, params, final_val, best_val, steps = True, None, None, None, len(losses)
    planned = _planned_run_steps(ctx, cfg)
    ctx.tick(max(0, planned - steps))
    w = min(ctx.settings.smooth_window, max(1, len(losses)))
    finite = [x for x in losses if math.isfinite(x)]
    train_by_epoch = [float(np.mean([x for x, e in zip(losses, epochs) if e == k])) for k in sorted(set(epochs))]
    summary: dict[str, Any] = {
        "label": label, "name": name, "optimizer": cfg.optimizer, "lr": cfg.lr,
        "run_dir": name if run_dir is None else os.path.relpath(run_dir, exp_dir),
        "abs_run_dir": str(run_dir) if run_dir else None,
        "steps": steps, "diverged": diverged,
        "final_train_loss": float(np.mean(finite[-w:])) if finite else None,
        "final_val_loss": final_val, "best_val_loss": best_val,
        "worst_val_loss": max(val_points) if val_points else None,   # the highest point: overshoot shows here
        "steps_to_threshold": steps_to_threshold(losses, ctx.settings.threshold, ctx.settings.smooth_window),
        "early_train_loss": (float(np.mean(losses[: max(1, int(EARLY_FRACTION * planned))]))
                             if losses and not diverged else None),
        "train_by_epoch": train_by_epoch[: len(val_by_epoch)] if val_by_epoch else [],
        "val_by_epoch": val_by_epoch,
        "wall_s": round(time.perf_counter() - t0, 1),
        "checkpoint": (os.path.relpath(run_dir / "checkpoints" / train.BEST, exp_dir)
                       if run_dir is not None and best_val is not None else None),
        "reused": False,
    }
    if sample and params is not None:
        summary.update(_sample_fields(ctx, params))
    if keep:
        ctx.runs[key] = {**summary, "params": params}
    return summary


def _sample_fields(ctx: Context, params: dict | None) -> dict[str, Any]:
    if params is None:
        return {"sample": None}
    s = ctx.settings
    (text,) = generate_text(params, ctx.corpus.vocab, ctx.prompt, s.sample_length,
                            rng=np.random.default_rng(s.seed), temperature=s.sample_temperature)
    return {"sample": text, "sample_stats": textstats.text_stats(text, ctx.train_words).to_dict()}


def _steps_per_epoch(ctx: Context, cfg: Config | None = None) -> int:
    cfg = cfg or ctx.settings_config()
    return len(Batches(ctx.corpus.split(cfg.train_fraction)[0], cfg.batch_size, cfg.max_len))


def _planned_run_steps(ctx: Context, cfg: Config) -> int:
    n = _steps_per_epoch(ctx, cfg) * cfg.epochs
    return min(n, cfg.max_steps) if cfg.max_steps else n


def public(summary: dict[str, Any]) -> dict[str, Any]:
    """A run summary without the in-memory fields (parameters, absolute paths)."""
    return {k: v for k, v in summary.items() if k not in ("params", "abs_run_dir")}


# --------------------------------------------------------------------------------------------
# 1. overfit

def overfit(ctx: Context, out: Path) -> dict[str, Any]:
    """Train on the first `overfit_pairs` (input, target) pairs of the training split only."""
    s = ctx.settings
    exp = fresh_dir(out / "overfit")
    ctx.stage("overfit: 20 pairs")
    P, T = s.overfit_pairs, s.max_len
    train_ids = ctx.corpus.split(ctx.settings_config().train_fraction)[0]
    chunks = Batches(train_ids, 1, T)
    if len(chunks) < P:
        raise ExperimentError(f"the training split holds {len(chunks)} pairs of {T} characters; overfit needs {P}")
    X = np.concatenate([chunks.get(k)[0] for k in range(P)]).astype(np.int64)    # (P, T)
    Y = np.concatenate([chunks.get(k)[1] for k in range(P)]).astype(np.int64)
    # A batch of all P pairs each step, every pair from h = 0 (no state carried between steps).
    cfg = ctx.settings_config(batch_size=P, lr=s.overfit_lr, carry_state=False, hidden_size=s.overfit_hidden_size)
    trainer = train.Trainer(cfg, ctx.corpus, progress=False, log=None)
    t0 = time.perf_counter()
    rows, loss = [], math.inf
    with open(exp / "loss.jsonl", "w", encoding="utf-8") as f:
        for step in range(1, s.overfit_max_steps + 1):
            loss = trainer.train_step(X, Y)
            trainer.step = step
            rows.append(loss)
            f.write(json.dumps({"step": step, "loss": loss}) + "\n")
            ctx.tick()
            if loss < s.overfit_target:
                break
    ctx.tick(s.overfit_max_steps - len(rows))
    params = trainer.params
    final_loss, _ = model.forward(params, X, Y)   # after the last update
    trainer.run_dir = train.prepare_run_dir(exp / "model", overwrite=True)
    trainer.save(train.LAST)
    # Greedy replay: zero state, read the pair's first character, then always take the argmax.
    # (Sampling and this forward pass never apply dropout.)
    gen, _ = model.generate(params, model.init_state(params, P), X[:, 0], T,
                            rng=np.random.default_rng(0), greedy=True)
    # Teacher-forced argmax: is each target character the most likely one given the true prefix?
    _, cache = model.forward(params, X, Y)
    forced = cache.probs.reshape(T, P, -1).argmax(axis=2).T == Y                    # (P, T)
    vocab = ctx.corpus.vocab
    targets = [vocab.decode(Y[i]) for i in range(P)]
    pairs = []
    for i in range(P):
        acc = float(np.mean(gen[i] == Y[i]))
        text = vocab.decode(gen[i])
        same = [j + 1 for j in range(P) if targets[j] == text]
        pairs.append({"index": i + 1, "offset": i * T, "first_char": vocab.decode(X[i, :1]),
                      "char_accuracy": acc, "exact": bool(acc == 1.0),
                      "teacher_forced_accuracy": float(forced[i].mean()),
                      "replay_equals_pair": same[0] if same else None,
                      "input": vocab.decode(X[i]), "target": targets[i], "generated": text})
    # Pairs that start with the same character get the same greedy replay, so at most one
    # distinct target per first character can be replayed exactly.
    firsts: dict[int, set[str]] = {}
    for i in range(P):
        firsts.setdefault(int(X[i, 0]), set()).add(pairs[i]["target"])
    upper = sum(len(t) if len(t) == 1 else 1 for t in firsts.values())
    exact = sum(p["exact"] for p in pairs)
    mean_acc = float(np.mean([p["char_accuracy"] for p in pairs]))
    reached = bool(min(rows) < s.overfit_target)
    verbatim = sum(p["replay_equals_pair"] is not None for p in pairs)
    forced_acc = float(np.mean(forced))
    if reached and exact == upper:
        verdict = HOLDS
    elif not reached:
        verdict = FAILS
    else:
        verdict = UNSURE
    res = {
        "experiment": "overfit",
        "settings": {**model_fields(s.cell, s.layers, s.overfit_hidden_size, s.dropout),
                     "pairs": P, "max_len": T, "hidden_size": s.overfit_hidden_size, "optimizer": "adam",
                     "lr": s.overfit_lr, "target_loss": s.overfit_target, "max_steps": s.overfit_max_steps,
                     "grad_clip": cfg.grad_clip, "seed": s.seed},
        "target_loss": s.overfit_target,
        "steps": len(rows), "final_loss": float(final_loss), "last_step_loss": float(rows[-1]),
        "reached_target": reached, "exact_count": exact, "exact_upper_bound": upper,
        "mean_char_accuracy": mean_acc, "verbatim_count": verbatim, "teacher_forced_accuracy": forced_acc,
        "wall_s": round(time.perf_counter() - t0, 1),
        "pairs": pairs, "curve": "loss.jsonl", "checkpoint": "model/checkpoints/" + train.LAST,
        "claims": [claim(
            "The model indeed overfits a small subset (20 input/output pairs) of the training data",
            f"steps until the mean loss on the pairs < {s.overfit_target} {UNIT}; greedy replay from each "
            f"pair's first character",
            f"loss {f4(float(final_loss))} {UNIT} after {len(rows)} steps; {exact}/{P} pairs replayed exactly "
            f"(at most {upper} possible: pairs sharing a first character get one replay); {verbatim}/{P} "
            f"replays are verbatim copies of some pair's target; mean character accuracy {p1(mean_acc)} "
            f"(teacher-forced argmax {p1(forced_acc)})",
            verdict, final_loss=float(final_loss), steps=len(rows), exact_count=exact,
            exact_upper_bound=upper, verbatim=verbatim, mean_char_accuracy=mean_acc,
            teacher_forced_accuracy=forced_acc)],
    }
    write_json(exp / "results.json", res)
    return res


UNIT = "nats/char"


# --------------------------------------------------------------------------------------------
# 2. optimizers

def optimizers(ctx: Context, out: Path) -> dict[str, Any]:
    """SGD vs Adam: same init (cfg.seed), same data order (data.Batches is deterministic)."""
    s = ctx.settings
    exp = fresh_dir(out / "optimizers")
    pilots = []
    for lr in s.sgd_lr_grid:
        r = train_run(ctx, exp, f"pilot-sgd-{lr:g}", f"SGD pilot lr {lr:g}", keep=False,
                      optimizer="sgd", lr=lr, max_steps=s.pilot_steps, eval_every=0)
        pilots.append({"lr": lr, "val_loss": r["final_val_loss"], "train_loss": r["final_train_loss"],
                       "diverged": r["diverged"]})
    ok = [p for p in pilots if p["val_loss"] is not None and math.isfinite(p["val_loss"])]
    best_lr = min(ok, key=lambda p: p["val_loss"])["lr"] if ok else s.sgd_lr_grid[0]
    adam = train_run(ctx, exp, "adam", f"Adam lr {s.adam_lr:g}", optimizer="adam", lr=s.adam_lr)
    sgd_seed = train_run(ctx, exp, "sgd-seed-lr", f"SGD lr {s.adam_lr:g}", optimizer="sgd", lr=s.adam_lr)
    sgd_best = train_run(ctx, exp, "sgd-tuned", f"SGD lr {best_lr:g} (pilot best)", optimizer="sgd", lr=best_lr)
    runs = [adam, sgd_seed, sgd_best]
    thr = s.threshold
    # Two views of "faster": who reaches the threshold first, and who has the lower mean loss over
    # the first EARLY_FRACTION of training. The verdict needs both to agree.
    a_st, b_st = adam["steps_to_threshold"], sgd_best["steps_to_threshold"]
    a_early, b_early = adam["early_train_loss"], sgd_best["early_train_loss"]
    adam_first = a_st is not None and (b_st is None or a_st < b_st)
    sgd_first = b_st is not None and (a_st is None or b_st < a_st)
    adam_lower = a_early is not None and (b_early is None or a_early < b_early - LOSS_MARGIN)
    sgd_lower = b_early is not None and (a_early is None or b_early < a_early - LOSS_MARGIN)
    v1 = HOLDS if adam_first and adam_lower else FAILS if sgd_first and sgd_lower else UNSURE
    a_val, b_val = adam["final_val_loss"], sgd_best["final_val_loss"]
    if a_val is None and b_val is not None:
        v2 = HOLDS
    elif a_val is None or b_val is None:
        v2 = UNSURE if b_val is None and a_val is None else FAILS
    elif b_val < a_val - LOSS_MARGIN:
        v2 = HOLDS
    elif b_val > a_val + LOSS_MARGIN:
        v2 = FAILS
    else:
        v2 = UNSURE

    def st(x: int | None) -> str:
        return "never" if x is None else f"{x:,}"

    res = {
        "experiment": "optimizers",
        "description": (f"Adam (lr {s.adam_lr:g}, β 0.9/0.999) and plain SGD from the same initial weights (seed "
                        f"{s.seed}) on the same batches in the same order. SGD's learning rate was chosen by "
                        f"{len(s.sgd_lr_grid)} pilot runs of {s.pilot_steps:,} steps over "
                        f"{', '.join(f'{x:g}' for x in s.sgd_lr_grid)} (lowest validation loss wins); SGD at "
                        f"the seed's lr {s.adam_lr:g} is shown too (our loss is a mean per character, so the "
                        f"seed's SGD step may have been up to MAX_LEN times larger if it summed the loss). "
                        f"Converged = train loss averaged over {s.smooth_window} steps <= {thr:g} {UNIT}; "
                        f"early loss = mean train loss over the first {EARLY_FRACTION:.0%} of a run's steps."),
        "settings": _run_settings(ctx),
        "steps_per_epoch": _steps_per_epoch(ctx), "threshold": thr, "smooth_window": s.smooth_window,
        "pilots": pilots, "sgd_lr": best_lr,
        "runs": [public(r) for r in runs],
        "claims": [
            claim("Adam converges faster than SGD",
                  f"optimizer steps until the {s.smooth_window}-step mean train loss <= {thr:g} {UNIT}, and the "
                  f"mean train loss over the first {EARLY_FRACTION:.0%} of steps (SGD at its pilot-best lr); "
                  f"both must favour one optimizer",
                  f"steps: Adam lr {s.adam_lr:g} {st(a_st)}, SGD lr {best_lr:g} {st(b_st)}, "
                  f"SGD lr {s.adam_lr:g} {st(sgd_seed['steps_to_threshold'])}; early loss: Adam {f4(a_early)}, "
                  f"SGD lr {best_lr:g} {f4(b_early)}, SGD lr {s.adam_lr:g} {f4(sgd_seed['early_train_loss'])} {UNIT}",
                  v1, adam_steps=a_st, sgd_steps=b_st, sgd_seed_lr_steps=sgd_seed["steps_to_threshold"],
                  adam_early=a_early, sgd_early=b_early),
            claim(f"SGD does better than Adam for the seed's hyperparameters (LR {s.adam_lr:g})",
                  f"final validation loss ({UNIT}), Adam lr {s.adam_lr:g} vs SGD at a learning rate found by the pilots",
                  f"Adam {f4(a_val)}; SGD lr {best_lr:g} {f4(b_val)}; SGD lr {s.adam_lr:g} "
                  f"{f4(sgd_seed['final_val_loss'])}",
                  v2, adam_val=a_val, sgd_val=b_val, sgd_lr=best_lr),
        ],
    }
    write_json(exp / "results.json", res)
    return res


def _run_settings(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    return {**model_fields(s.cell, s.layers, s.hidden_size, s.dropout),
            "corpus": ctx.data_label, "hidden_size": s.hidden_size, "batch_size": s.batch_size,
            "max_len": s.max_len, "epochs": s.epochs, "max_steps": s.max_steps or "none",
            "grad_clip": 5.0, "seed": s.seed, "dtype": s.dtype, "eval_every": s.eval_every}


# --------------------------------------------------------------------------------------------
# 3. lr

def lr(ctx: Context, out: Path) -> dict[str, Any]:
    """Adam at the seed's LR 5e-3 and at 3e-4: curves, final losses, and a sample from each."""
    s = ctx.settings
    exp = fresh_dir(out / "lr")
    hi = train_run(ctx, exp, "adam-hi", f"Adam lr {s.adam_lr:g}", sample=True, optimizer="adam", lr=s.adam_lr)
    lo = train_run(ctx, exp, "adam-lo", f"Adam lr {s.low_lr:g}", sample=True, optimizer="adam", lr=s.low_lr)
    hv, lv = hi["final_val_loss"], lo["final_val_loss"]
    if hv is None and lv is not None:
        v1 = HOLDS
    elif hv is None or lv is None:
        v1 = UNSURE
    else:
        v1 = HOLDS if hv > lv + LOSS_MARGIN else FAILS if hv < lv - LOSS_MARGIN else UNSURE
    hstats, lstats = hi.get("sample_stats") or {}, lo.get("sample_stats") or {}
    hs, ls = hstats.get("in_train_share"), lstats.get("in_train_share")
    if hs is None or ls is None:
        v2 = UNSURE
    else:
        v2 = share_verdict(ls, lstats["words"], hs, hstats["words"])
    res = {
        "experiment": "lr",
        "description": (f"Adam from the same initial weights on the same batches at lr {s.adam_lr:g} and "
                        f"{s.low_lr:g}. Each model's final weights write {s.sample_length:,} characters from "
                        f"the prompt at temperature {s.sample_temperature:g} (the seed's), sampling seed {s.seed}."),
        "settings": _run_settings(ctx),
        "steps_per_epoch": _steps_per_epoch(ctx), "prompt": ctx.prompt,
        "sample_temperature": s.sample_temperature,
        "runs": [public(hi), public(lo)],
        "claims": [
            claim(f"At LR {s.adam_lr:g} the loss overshoots (LR {s.low_lr:g} learns better)",
                  f"final validation loss ({UNIT})",
                  f"lr {s.adam_lr:g}: {f4(hv)} (highest during training {f4(hi['worst_val_loss'])}); "
                  f"lr {s.low_lr:g}: {f4(lv)} (highest {f4(lo['worst_val_loss'])})", v1, hi_val=hv, lo_val=lv,
                  hi_worst=hi["worst_val_loss"], lo_worst=lo["worst_val_loss"]),
            claim(f"At LR {s.adam_lr:g} the generated text is rubbish, at {s.low_lr:g} it is good",
                  f"share of generated words found in the training text (T = {s.sample_temperature:g}); "
                  f"lower = by over two standard errors",
                  f"lr {s.adam_lr:g}: {p1(hs)}; lr {s.low_lr:g}: {p1(ls)}", v2, hi_share=hs, lo_share=ls),
        ],
    }
    write_json(exp / "results.json", res)
    return res


# --------------------------------------------------------------------------------------------
# 4. temperature and 5. analyze: from one checkpoint

def best_checkpoint(out: Path, cell: str = "rnn", layers: int = 1) -> tuple[Path, str, float] | None:
    """The checkpoint with the lowest validation loss among the runs recorded under `out` that
    trained this cell with this many layers."""
    best = None
    for name in ("optimizers", "lr"):
        f = out / name / "results.json"
        if not f.exists():
            continue
        res = json.loads(f.read_text(encoding="utf-8"))
        settings = res.get("settings") or {}
        if (settings.get("cell", "rnn"), settings.get("layers", 1)) != (cell, layers):
            continue
        for r in res["runs"]:
            if r.get("checkpoint") and r.get("best_val_loss") is not None:
                if best is None or r["best_val_loss"] < best[2]:
                    best = ((out / name / r["checkpoint"]).resolve(),
                            f"best of the runs so far: {r['label']} ({name} experiment)", r["best_val_loss"])
    return best


def _model_for(ctx: Context, out: Path, exp: Path, ckpt: str | Path | None) -> tuple[Any, str, float | None]:
    """(checkpoint, description, best val loss): the given one, else the best found under `out`,
    else a model trained here with Adam at the seed's second LR."""
    if ckpt is not None:
        c = checkpoint.load(checkpoint.resolve(ckpt))
        if c.vocab != ctx.corpus.vocab:
            raise ExperimentError(f"the vocabulary of {ckpt} differs from this corpus's: "
                                  f"pass the --data it was trained on")
        return c, f"given checkpoint {ckpt}", c.best_val_loss
    found = best_checkpoint(out, ctx.settings.cell, ctx.settings.layers) or ctx.own_model
    if found is not None:
        return checkpoint.load(found[0]), found[1], found[2]
    s = ctx.settings
    r = train_run(ctx, exp, "model", f"Adam lr {s.low_lr:g}", optimizer="adam", lr=s.low_lr)
    if r["checkpoint"] is None:
        raise ExperimentError("training the model for this experiment diverged")
    ctx.own_model = ((exp / r["checkpoint"]).resolve(), f"trained for {exp.name}: Adam lr {s.low_lr:g}",
                     r["best_val_loss"])
    return checkpoint.load(ctx.own_model[0]), ctx.own_model[1], ctx.own_model[2]


def temperature(ctx: Context, out: Path, ckpt: str | Path | None = None) -> dict[str, Any]:
    """Samples at each temperature and greedily from one checkpoint, with text statistics."""
    s = ctx.settings
    exp = fresh_dir(out / "temperature")
    c, note, best_val = _model_for(ctx, out, exp, ckpt)
    ctx.stage("temperature: sampling")
    samples = []
    for T in [*s.temperatures, None]:
        (text,) = generate_text(c.model_params, c.vocab, ctx.prompt, s.sample_length, rng=np.random.default_rng(s.seed),
                                temperature=T or 1.0, greedy=T is None)
        samples.append({"label": "greedy" if T is None else f"T = {T:g}", "temperature": T, "text": text,
                        "stats": textstats.text_stats(text, ctx.train_words).to_dict()})
    ref_text = textstats.training_slice(ctx.train_text, s.sample_length,
                                        offset=int(np.random.default_rng(s.seed).integers(len(ctx.train_text))))
    reference = {"label": "training text", "stats": textstats.text_stats(ref_text, ctx.train_words).to_dict()}
    by_t = {x["temperature"]: x["stats"] for x in samples}
    lo_t, hi_t = min(s.temperatures), max(s.temperatures)
    caps_lo, caps_hi = by_t[lo_t]["mid_word_caps_per_1000"], by_t[hi_t]["mid_word_caps_per_1000"]
    if caps_hi > 0 and caps_lo <= 0.2 * caps_hi:
        v1 = HOLDS
    elif caps_hi <= caps_lo:
        v1 = FAILS
    else:
        v1 = UNSURE
    errs = {t: 1.0 - by_t[t]["in_train_share"] for t in s.temperatures}
    above = [t for t in s.temperatures if t > 1]
    at_most_1 = [t for t in s.temperatures if t <= 1]
    if above and at_most_1:
        # the least error-prone T > 1 against the most error-prone T <= 1
        t_hi = min(above, key=lambda t: errs[t])
        t_lo = max(at_most_1, key=lambda t: errs[t])
        v2 = share_verdict(errs[t_hi], by_t[t_hi]["words"], errs[t_lo], by_t[t_lo]["words"])
    else:
        v2 = UNSURE
    res = {
        "experiment": "temperature", "checkpoint_note": note, "best_val_loss": best_val,
        "settings": {**checkpoint_model(c), "prompt": ctx.prompt, "sample_length": s.sample_length, "seed": s.seed,
                     "temperatures": ", ".join(f"{t:g}" for t in s.temperatures) + ", greedy"},
        "prompt": ctx.prompt, "sample_length": s.sample_length, "seed": s.seed,
        "samples": samples, "reference": reference,
        "claims": [
            claim(f"The model puts capital letters inside words at T = {hi_t:g}, not at T = {lo_t:g}",
                  "lowercase→uppercase switches inside words per 1000 characters",
                  f"T = {lo_t:g}: {caps_lo:.3g}; T = {hi_t:g}: {caps_hi:.3g}; training text: "
                  f"{reference['stats']['mid_word_caps_per_1000']:.3g}",
                  v1, caps_lo=caps_lo, caps_hi=caps_hi),
            claim("The model makes more errors when T > 1",
                  "share of generated words not found in the training text (misspellings); more = "
                  "larger by over two standard errors",
                  "; ".join(f"T = {t:g}: {p1(errs[t])}" for t in s.temperatures),
                  v2, errors={f"{t:g}": errs[t] for t in s.temperatures}),
        ],
    }
    write_json(exp / "results.json", res)
    return res


INSIDE_CHARS = 2000   # characters of the validation text the analyze experiment's Inside view reads


def analyze(ctx: Context, out: Path, ckpt: str | Path | None = None) -> dict[str, Any]:
    """The best model's long sample vs slices of the training and validation text."""
    s = ctx.settings
    exp = fresh_dir(out / "analyze")
    c, note, best_val = _model_for(ctx, out, exp, ckpt)
    ctx.stage("analyze: long sample")
    (text,) = generate_text(c.model_params, c.vocab, ctx.prompt, s.analyze_length, rng=np.random.default_rng(s.seed),
                            temperature=s.analyze_temperature)
    off = int(np.random.default_rng(s.seed).integers(len(ctx.train_text)))
    train_slice = textstats.training_slice(ctx.train_text, s.analyze_length, offset=off)
    val_slice = ctx.val_text[: s.analyze_length]
    texts = [("generated", text), ("training text", train_slice), ("validation text", val_slice)]
    stats = {label: textstats.text_stats(t, ctx.train_words).to_dict() for label, t in texts}
    origins = textstats.word_origins(text, ctx.train_words)
    punct = {label: textstats.line_end_punct_share(t) for label, t in texts}
    contr_gen = textstats.contractions(text)
    contr_train = textstats.contractions(train_slice)
    real_contr = {w: n for w, n in contr_gen.items() if w in ctx.train_words}
    claims = []
    # contractions
    if not contr_train:
        v = UNSURE
    else:
        v = HOLDS if real_contr else FAILS
    claims.append(claim(
        "The model learns contractions (I have → I've), at least tries to",
        "words with an inner apostrophe in the sample that also occur in the training text",
        f"{sum(real_contr.values())} real ({len(real_contr)} distinct: "
        f"{', '.join(sorted(real_contr, key=lambda w: -real_contr[w])[:6]) or 'none'}), "
        f"{sum(contr_gen.values()) - sum(real_contr.values())} invented; a training slice of the same "
        f"length has {sum(contr_train.values())}",
        v, real=sum(real_contr.values()), distinct_real=len(real_contr),
        invented=sum(contr_gen.values()) - sum(real_contr.values()), training=sum(contr_train.values())))
    # punctuation at line ends
    pg, pt = punct["generated"], punct["training text"]
    if pg is None or pt is None:
        v = UNSURE
    else:
        v = HOLDS if pg >= pt - 0.1 else FAILS if pg < pt - 0.25 else UNSURE
    claims.append(claim(
        "The model learns to put punctuation before each new line",
        "share of lines ending in punctuation, sample vs training text",
        f"sample {p1(pg)}; training text {p1(pt)}", v, generated=pg, training=pt))
    # quotes
    q_gen = stats["generated"]["pairs"]['"']
    if '"' not in ctx.train_text:
        v, measured = UNSURE, "the corpus has no double quotes, so this cannot be tested on it"
    else:
        n = q_gen["open"] + q_gen["close"]
        v = HOLDS if n >= 2 and q_gen["unmatched"] <= 1 else FAILS
        measured = f"{n} double quotes in the sample, {q_gen['unmatched']} unmatched"
    claims.append(claim("The model adds quotes around speech (and ? ! inside them)",
                        "double quotes in the sample and whether they pair up", measured, v,
                        quotes=q_gen))
    ctx.stage("analyze: inside view")
    inside_file = None
    try:   # the Inside view of the model reading the validation text (charnn inspect's page)
        view = inside.analyze(c.model_params, c.vocab, val_slice[:INSIDE_CHARS])
        view["source"] = f"the first {view['chars']:,} characters of the validation text"
        inside_file = inside_html.write(exp / "inside.html", view, title=f"Inside the best model ({note})").name
    except (VocabError, inside.InsideError):   # a given checkpoint of another corpus, or no validation text
        pass
    res = {
        "experiment": "analyze", "checkpoint_note": note, "best_val_loss": best_val, "inside": inside_file,
        "settings": {**checkpoint_model(c), "prompt": ctx.prompt, "sample_length": s.analyze_length, "temperature": s.analyze_temperature,
                     "seed": s.seed},
        "prompt": ctx.prompt, "sample_length": s.analyze_length, "temperature": s.analyze_temperature,
        "sample": text,
        "texts": [{"label": label, "stats": stats[label], "line_end_punct_share": punct[label]}
                  for label, _ in texts],
        "origins": origins.to_dict(top=30),
        "claims": claims,
    }
    write_json(exp / "results.json", res)
    return res


# --------------------------------------------------------------------------------------------
# planning and running

def planned_steps(ctx: Context, names: Sequence[str]) -> int:
    """Optimizer steps the named experiments will take at most (the progress bar's total)."""
    s = ctx.settings
    run = _planned_run_steps(ctx, ctx.settings_config())
    total = 0
    for n in names:
        if n == "overfit":
            total += s.overfit_max_steps
        elif n == "optimizers":
            total += len(s.sgd_lr_grid) * s.pilot_steps + 3 * run
        elif n == "lr":
            total += 2 * run
    return total


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "overfit": overfit, "optimizers": optimizers, "lr": lr, "temperature": temperature, "analyze": analyze}


def run(names: Sequence[str], out: str | Path, *, data: str | None = None, settings: Settings = DEFAULT,
        checkpoint_path: str | Path | None = None, progress: bool = True,
        encoding: str = "utf-8") -> dict[str, dict[str, Any]]:
    """Run the named experiments in order into `out`/<name>/; writes `out`/settings.json too.

    `encoding` decodes the corpus files. Nothing is written before the corpus has been read.
    """
    out = Path(out)
    if checkpoint_path is not None:
        checkpoint_path = checkpoint.resolve(checkpoint_path)   # a bad path fails before any work
    t0 = time.perf_counter()
    with blas_threads(settings.blas_threads):
        ctx = load_context(data, settings, encoding=encoding)
        out.mkdir(parents=True, exist_ok=True)
        cached = checkpoint_path or best_checkpoint(out, settings.cell, settings.layers)
        cached_model_steps = 0 if cached else _planned_run_steps(ctx, ctx.settings_config())
        extra = cached_model_steps if any(n in ("temperature", "analyze") for n in names) and \
            not any(n in ("optimizers", "lr") for n in names) else 0
        ctx.progress = Progress(planned_steps(ctx, names) + extra, enabled=progress)
        results = {}
        try:
            for n in names:
                if n in ("temperature", "analyze"):
                    results[n] = RUNNERS[n](ctx, out, checkpoint_path)
                else:
                    results[n] = RUNNERS[n](ctx, out)
        finally:
            ctx.progress.close()
    info = {"settings": settings.to_dict(), "corpus": ctx.data_label, "corpus_chars": len(ctx.text),
            "vocab_size": len(ctx.corpus.vocab), "train_chars": len(ctx.train_text), "val_chars": len(ctx.val_text),
            "test_chars": ctx.n_test,
            "experiments": list(names), "wall_s": round(time.perf_counter() - t0, 1)}
    write_json(out / "settings.json", info)
    return results
