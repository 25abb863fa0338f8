"""The training loop: truncated BPTT over B parallel streams, clipping, an optimizer, run folders.

One optimizer step on batch k of epoch e (data.Batches: B contiguous streams, T characters each):

    L, ∇, h_T = loss_and_grads(θ, x_k, y_k, h_0)     h_0 = h_T of batch k−1 (carry_state) or 0
    ∇ ← clip(∇, −grad_clip, +grad_clip)               the seed's element-wise clipping
    ∇ ← ∇ · min(1, clip_norm / ‖∇‖)                    optional global-norm clipping (clip_norm > 0)
    θ ← optimizer(θ, ∇)                                Adam or SGD (optim.make_optimizer)

The hidden state restarts from 0 at each epoch. Everything that decides the next step (parameters,
optimizer state, epoch, batch index, carried h, RNG state) goes into each checkpoint, so a resumed
run continues bit for bit as if it had never stopped.

A run folder holds config.json, metrics.jsonl, samples.txt and checkpoints/{last,best}.safetensors.
Use `train(cfg, out)` for a new run and `resume(run_dir)` to continue one; `out=None` trains in
memory without writing anything (handy in notebooks and experiments).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
from tqdm import tqdm

from . import checkpoint, distributed, finetune, runlock, sizing
from .. import __version__, model
from ..backend import get_xp, host_copy, to_numpy
from ..data import Batches, DataError, corpus_files, hold_out
from ..data.corpus import Corpus, unigram_counts
from ..data.vocab import VocabError
from ..eval import calibrate
from ..nn import budget
from ..sample import generate_text
from .checkpoint import Checkpoint
from .config import Config, ConfigError
from .optim import clip_by_global_norm, clip_by_value, make_optimizer, state_to_numpy
from .schedule import lr_at

RUN_FILES = ("config.json", "metrics.jsonl", "samples.txt", "checkpoints")
LAST, BEST = "last.safetensors", "best.safetensors"
# Fields that may take a new value when a run is resumed; the others define the run.
RESUMABLE = frozenset({"epochs", "max_steps", "max_minutes", "eval_every", "log_every", "temperature", "prompt",
                       "sample_length", "device", "data", "max_vocab"})

Callback = Callable[[str, dict], None]


class RunDirError(ValueError):
    """The output folder cannot be used (holds another run, or is not a folder)."""


class ResumeError(ValueError):
    """A run cannot be resumed as asked (no checkpoint, a changed corpus, a changed hyperparameter)."""


class StopTraining(Exception):
    """Raise from a callback to end training cleanly (final evaluation and checkpoint are written)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; nothing was saved after the last good checkpoint."""

    def __init__(self, step: int, loss: float, what: str, last_saved: Path | None, last_saved_step: int | None):
        self.step, self.loss, self.last_saved, self.last_saved_step = step, loss, last_saved, last_saved_step
        self.what = what
        kept = (f"the last good checkpoint (step {last_saved_step}) is kept in {last_saved}"
                if last_saved is not None else "no checkpoint was written")
        super().__init__(f"{what} became {loss} at step {step}; training stopped and {kept}. "
                         f"Try a lower --lr or a smaller --grad-clip")

    def __reduce__(self) -> tuple:   # pickled to reach the other MPI ranks
        return type(self), (self.step, self.loss, self.what, self.last_saved, self.last_saved_step)


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived: the last checkpoint was saved after the step in progress."""

    def __init__(self, signame: str, step: int, run_dir: Path | None):
        self.signame, self.step, self.run_dir = signame, step, run_dir
        how = f"; resume with: charnn train --resume {run_dir}" if run_dir is not None else ""
        super().__init__(f"{signame} received: stopped at step {step}"
                         + (f", saved {run_dir / 'checkpoints' / LAST}" if run_dir is not None else "") + how)

    def __reduce__(self) -> tuple:
        return type(self), (self.signame, self.step, self.run_dir)


@dataclass
class TrainResult:
    """What a training session produced. `params` are NumPy arrays."""

    config: Config
    params: dict[str, np.ndarray]
    vocab: Any
    run_dir: Path | None
    step: int
    epoch: int
    val_loss: float | None            # the last validation loss measured
    best_val_loss: float | None
    history: list[dict] = field(default_factory=list)   # the metrics.jsonl rows of this session
    samples: list[str] = field(default_factory=list)    # the epoch-end samples of this session
    stop_reason: str = "completed"   # completed | max_steps | max_minutes | stopped | already_finished
    wall_s: float = 0.0
    temperature: float = 1.0         # the output temperature of the last validation (charnn.eval.calibrate)


# --------------------------------------------------------------------------------------------
# run folders

def default_run_dir(root: str | Path = "runs") -> Path:
    """runs/<YYYYmmdd-HHMMSS>/ (with a -2, -3... suffix if that name is taken)."""
    base = Path(root) / datetime.now().strftime("%Y%m%d-%H%M%S")
    p, i = base, 2
    while p.exists():
        p, i = base.with_name(f"{base.name}-{i}"), i + 1
    return p


def check_run_dir(out: str | Path, *, overwrite: bool = False) -> Path:
    """Refuse an output path that is a file, or a folder that already holds files unless `overwrite`."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise RunDirError(f"output path {p} exists and is not a folder")
    if p.is_dir() and any(p.iterdir()) and not overwrite:
        raise RunDirError(f"output folder {p} is not empty (a previous run?): choose another --out, "
                          f"--resume {p} to continue it, or --overwrite to replace it")
    return p


def run_inputs(cfg: Config, extra: Iterable[str | Path] = ()) -> set[str]:
    """The real paths a run reads: its corpus files and `extra` (a config file, a checkpoint)."""
    paths = [Path(x) for x in extra]
    if cfg.data:
        try:
            paths += corpus_files(cfg.data)
        except DataError:
            pass     # the corpus loader reports it
    return {os.path.realpath(q) for q in paths}


def check_inputs_kept(run_dir: str | Path, inputs: set[str], what: str) -> None:
    """Refuse when a file the run writes or removes in `run_dir` (RUN_FILES, checkpoints/...) is one it reads.

    A run's outputs are never its inputs: --overwrite would delete such a file, and training appends
    to samples.txt and metrics.jsonl and replaces config.json and the checkpoints.
    """
    p = Path(run_dir)
    for name in RUN_FILES:
        q = os.path.realpath(p / name)
        for f in sorted(inputs):
            if f == q or f.startswith(q + os.sep):
                raise RunDirError(f"{what} would replace {f}, which this run reads as input: move it out of "
                                  f"{p} (or choose another --out)")


def prepare_run_dir(out: str | Path, *, overwrite: bool = False, inputs: set[str] = frozenset()) -> Path:
    """Create the run folder (see check_run_dir for what is refused).

    With `overwrite`, only the files a run writes (config.json, metrics.jsonl, samples.txt,
    checkpoints/) are removed; anything else in the folder is left alone, and a run file that is
    also one of the run's `inputs` (real paths: its corpus, its config file) is refused, never removed.
    """
    p = check_run_dir(out, overwrite=overwrite)
    check_inputs_kept(p, inputs, "--overwrite")
    if p.is_dir():
        for name in RUN_FILES:
            q = p / name
            if q.is_dir() and not q.is_symlink():
                shutil.rmtree(q)
            elif q.exists() or q.is_symlink():
                q.unlink()
    try:
        (p / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create output folder {p}: {exc.strerror or exc}") from None
    return p


def training_split(cfg: Config, corpus: Corpus) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(the ids training reads, the calibration ids held out of them or None, the validation ids).
    The test split is never read."""
    train_ids, val_ids, _ = corpus.splits(cfg.train_fraction, cfg.val_fraction, cfg.test_fraction)
    calib_ids = None
    if cfg.calibration_fraction > 0:   # the start of the training split, held out to calibrate on (data.hold_out)
        train_ids, calib_ids = hold_out(train_ids, len(corpus.ids), cfg.calibration_fraction)
    return train_ids, calib_ids, val_ids


def write_run_config(run_dir: Path, cfg: Config, corpus: Corpus, num_params: int) -> None:
    record = {"config": cfg.to_dict(), "corpus": corpus.info(), "vocab_size": len(corpus.vocab),
              "num_params": num_params, "charnn_version": __version__,
              "written": datetime.now().isoformat(timespec="seconds")}
    checkpoint.atomic_write_bytes(run_dir / "config.json", (json.dumps(record, indent=2) + "\n").encode())


# --------------------------------------------------------------------------------------------
# the trainer

class Trainer:
    """One training session of a run (fresh, or continued from a checkpoint)."""

    def __init__(self, cfg: Config, corpus: Corpus, *, run_dir: Path | None = None,
                 start: Checkpoint | None = None, callbacks: Iterable[Callback] = (),
                 progress: bool = True, log: Callable[[str], None] | None = print,
                 handle_signals: bool = False, world: distributed.World | None = None,
                 init: Mapping[str, np.ndarray] | None = None):
        """start: a checkpoint to continue exactly; init: starting weights for a new run (fine-tuning)."""
        self.cfg, self.corpus, self.run_dir = cfg, corpus, run_dir
        # Under MPI this process trains the streams [rows[0], rows[1]) of each batch (train.distributed).
        self.world = distributed.world() if world is None else world
        if cfg.batch_size < self.world.size:
            raise ConfigError(f"batch size {cfg.batch_size} is smaller than the {self.world.size} MPI ranks: "
                              f"each rank needs at least one stream (raise --batch-size or start fewer ranks)")
        self.rows = self.world.rows(cfg.batch_size)
        self.callbacks = list(callbacks)
        self.progress, self._log, self.handle_signals = progress, log, handle_signals
        self._bar: Any = None
        self._t0: float | None = None
        self._train_session = 0.0      # seconds spent in training steps in this session (Config.max_minutes)
        corpus.check_vocab_size(cfg.max_vocab)
        self.vocab = corpus.vocab
        train_ids, self.calib_ids, val_ids = training_split(cfg, corpus)
        self.val_loss_plain: float | None = None
        self.batches = Batches(train_ids, cfg.batch_size, cfg.max_len)
        if len(val_ids) < 2:
            raise DataError(f"the validation split holds {len(val_ids)} character(s), too few to evaluate: "
                            f"use a longer corpus, a smaller --train-fraction or a larger --val-fraction")
        self.xp = get_xp(cfg.device)
        self.val_ids = self.xp.asarray(val_ids)
        self.unigram = unigram_counts(train_ids, len(self.vocab)).tolist()
        V, H = len(self.vocab), cfg.hidden_size
        if V < 2:
            raise DataError(f"corpus {corpus.display_path} has one distinct character ({self.vocab.decode([0])!r}): "
                            f"there is nothing to predict; train on a text with at least two")
        budget.check(budget.training_bytes(vocab_size=V, hidden_size=H, batch_size=cfg.batch_size,
                                           max_len=cfg.max_len, cell=cfg.cell, layers=cfg.layers, embed=cfg.embed,
                                           dtype=cfg.dtype, optimizer=cfg.optimizer, momentum=cfg.momentum,
                                           eval_streams=cfg.eval_streams),
                     f"training a {cfg.cell} model of hidden size {H} × {cfg.layers} layer(s) on batches of "
                     f"{cfg.batch_size}×{cfg.max_len} ({cfg.dtype})",
                     "use a smaller --hidden-size, --layers, --batch-size or --max-len")
        self.inputs: set[str] = run_inputs(cfg)
        self.opt = make_optimizer(cfg.optimizer, cfg.lr, momentum=cfg.momentum,
                                  beta1=cfg.beta1, beta2=cfg.beta2, eps=cfg.eps, weight_decay=cfg.weight_decay)
        self.rng = np.random.default_rng([cfg.seed, 1])    # samples (a stream apart from the init's)
        if start is None:
            params = dict(init) if init is not None else model.init_params(
                V, H, seed=cfg.seed, dtype=np.dtype(cfg.dtype), cell=cfg.cell, layers=cfg.layers, embed=cfg.embed)
            self.h = None
            self.step = self.epoch = self.batch_index = self.chars_seen = 0
            self.wall_before, self.best_val_loss, self.train_before = 0.0, None, 0.0
            self.temperature = 1.0
        else:
            params = start.params
            self.opt.load_state_arrays({k: self.xp.asarray(a) for k, a in start.optim_state.items()},
                                       int(start.optim_hyper.get("t", 0)))
            self.h = None if start.h is None else self.xp.asarray(self._own_rows(start.h))
            self.step, self.epoch, self.batch_index = start.step, start.epoch, start.batch_index
            self.chars_seen, self.wall_before, self.best_val_loss = start.chars_seen, start.wall_s, start.best_val_loss
            self.train_before = start.train_s
            self.temperature = start.temperature if self.calib_ids is not None else 1.0
            if start.rng_state is not None:
                self.rng.bit_generator.state = start.rng_state
            if self.batch_index >= len(self.batches):
                raise ResumeError(f"checkpoint batch index {self.batch_index} is past the end of an epoch "
                                  f"({len(self.batches)} batches)")
        self.start_epoch(self.epoch)                          # a resumed epoch keeps its rotation and swaps
        self.params = {k: self.xp.asarray(v) for k, v in params.items()}
        self.num_params = int(sum(p.size for p in self.params.values()))
        self.prompt = self._usable_prompt(cfg.prompt)
        self.history: list[dict] = []
        self.samples: list[str] = []
        self.val_loss: float | None = None
        self.last_saved_step: int | None = None
        self._stop_signal: str | None = None     # the signal this step stops on (every rank's, under MPI)
        self._signal_seen: str | None = None     # the signal this process received

    # -- messages ------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        if self._log is None:
            return
        if self._bar is not None and self._log is print:
            tqdm.write(msg, file=sys.stdout)
        else:
            self._log(msg)

    def _usable_prompt(self, prompt: str) -> str:
        missing = self.vocab.unknown(prompt)
        if missing:
            self.log(f"note: the sample prompt {prompt!r} has characters not in this corpus "
                     f"({', '.join(map(repr, missing[:5]))}); epoch samples start from an empty prompt")
            return ""
        return prompt

    def _own_rows(self, a: Any) -> Any:
        """This process's streams of an array over all B streams (batch axis −2: h and its layouts)."""
        if self.world.size == 1:
            return a
        lo, hi = self.rows
        return a[..., lo:hi, :]

    # -- checkpoints ---------------------------------------------------------------------
    def to_checkpoint(self, h: Any = ...) -> Checkpoint:
        """The run's state; `h` is the carried state of all B streams (default: this process's own)."""
        h = self.h if h is ... else h
        return Checkpoint(
            config=self.cfg, vocab=self.vocab,
            params={k: to_numpy(v) for k, v in self.params.items()},
            optim_state=state_to_numpy(self.opt), optim_hyper=self.opt.hyper(),
            h=None if h is None else to_numpy(h),
            step=self.step, epoch=self.epoch, batch_index=self.batch_index,
            chars_seen=self.chars_seen, wall_s=self.wall_s, train_s=self.train_s, best_val_loss=self.best_val_loss,
            rng_state=self.rng.bit_generator.state, corpus=self.corpus.info(), unigram=self.unigram,
            temperature=self.temperature)

    def save(self, name: str = LAST) -> Path | None:
        """Write checkpoints/NAME. Under MPI every rank calls it: the streams' states are gathered
        and rank 0 writes; its outcome (the path, or the error) is every rank's."""
        h = self.world.gather_rows(self.h)
        path = self.world.on_root(lambda: self._write(name, h))
        if path is not None and name == LAST:
            self.last_saved_step = self.step
        return path

    def _write(self, name: str, h: Any) -> Path | None:
        if self.run_dir is None:
            return None
        for k, p in self.params.items():   # never let a damaged state overwrite a good checkpoint
            if not bool(self.xp.isfinite(p).all()):
                raise TrainingDiverged(self.step, float("nan"), f"parameter {k}", self._last_path(), self.last_saved_step)
        path = self.run_dir / "checkpoints" / name
        try:
            checkpoint.save(path, self.to_checkpoint(h))
        except OSError as exc:   # disk full, folder gone or read-only: the write was atomic, the old file stands
            kept = "; the previous checkpoint is intact" if path.exists() else ""
            raise RunDirError(f"cannot write checkpoint {path}: {exc.strerror or exc}{kept} "
                              f"(free space or fix the folder, then: charnn train --resume {self.run_dir})") from None
        return path

    def _last_path(self) -> Path | None:
        return None if self.run_dir is None or self.last_saved_step is None else self.run_dir / "checkpoints" / LAST

    # -- one step, validation, samples ---------------------------------------------------
    def train_step(self, inputs: np.ndarray, targets: np.ndarray) -> float:
        """One optimizer step on a (B, T) batch; returns its loss (nats/char)."""
        cfg = self.cfg
        ramp = self.reg_scale()
        masks = self.dropout_masks(*np.shape(inputs), scale=ramp) if cfg.dropout * ramp > 0 else None
        if self.world.size > 1:     # this rank's streams; the masks are the whole batch's, cut the same way
            lo, hi = self.rows
            inputs, targets = inputs[lo:hi], targets[lo:hi]
            masks = None if masks is None else [m[:, lo:hi] for m in masks]
        loss, grads, h_last = model.loss_and_grads(
            self.params, inputs, targets, self.h, masks=masks,
            weight_masks=self.weight_masks(scale=ramp) if cfg.weight_drop * ramp > 0 else None)
        loss = self.world.allreduce_mean(loss, grads, self.rows[1] - self.rows[0], cfg.batch_size)
        if not math.isfinite(loss):
            raise TrainingDiverged(self.step + 1, loss, "the training loss", self._last_path(), self.last_saved_step)
        clip_by_value(grads, -cfg.grad_clip, cfg.grad_clip)
        if cfg.clip_norm > 0:
            clip_by_global_norm(grads, cfg.clip_norm)
        self.opt.lr = self.lr_at(self.step)
        if cfg.weight_decay > 0:
            self.opt.weight_decay = cfg.weight_decay * ramp
        self.opt.step(self.params, grads)
        self.h = h_last if cfg.carry_state else None
        return loss

    def epoch_offset(self, epoch: int) -> int:
        """Where epoch `epoch` starts reading the training text (--random-offset): a rotation drawn
        from (seed, epoch), so a resumed run reads exactly what a straight one would. Every epoch
        then cuts the text into different chunks and hands each stream a different history, which
        the model cannot learn by heart; 0 (the seed's layout) without the option."""
        if not self.cfg.random_offset:
            return 0
        return int(np.random.default_rng([self.cfg.seed, 3, epoch]).integers(len(self.batches.ids)))

    def start_epoch(self, epoch: int) -> None:
        """Set up the text of epoch `epoch`: its rotation, drawn from (seed, epoch) so that a resumed
        run reads exactly what a straight one would."""
        self.batches.offset = self.epoch_offset(epoch)

    def reg_scale(self) -> float:
        """The share of dropout, weight drop and weight decay this step applies (--reg-ramp r):

            s = min(1, p / r)     p = the share of the run done: train_s / budget with max_minutes, else step / steps

        1 without a ramp. A pure function of the step or of the training time, as the learning rate is,
        so a resumed run needs no state for it.
        """
        if self.cfg.reg_ramp <= 0:
            return 1.0
        p = self.budget_share
        if p is None:
            p = self.step / max(1, self.total_steps)
        return min(1.0, max(0.0, p) / self.cfg.reg_ramp)

    def dropout_masks(self, B: int, T: int, scale: float = 1.0) -> list:
        """This step's dropout masks at rate dropout·scale, from a generator seeded by (seed, step):
        resume needs no RNG state."""
        spec = model.describe(self.params)
        rng = np.random.default_rng([self.cfg.seed, 2, self.step])
        masks = model.dropout_masks(rng, self.cfg.dropout * scale, spec.layers, T, B, spec.hidden_size,
                                    np.dtype(self.cfg.dtype), locked=self.cfg.locked_dropout)
        return [self.xp.asarray(m) for m in masks]

    def weight_masks(self, scale: float = 1.0) -> dict[str, Any]:
        """This step's weight-drop masks (--weight-drop) at rate weight_drop·scale, from a generator
        seeded by (seed, 5, step)."""
        rng = np.random.default_rng([self.cfg.seed, 5, self.step])
        masks = model.weight_drop_masks(rng, self.cfg.weight_drop * scale, self.params)   # reads shapes and dtypes only
        return {k: self.xp.asarray(m) for k, m in masks.items()}

    def validate(self) -> float:
        """Mean loss (nats/char) over the whole validation split, h carried through it.

        eval_streams > 1 reads the split as that many parallel streams with a warm-up before each
        (`charnn.nn.reader`): much faster for big models, for progress and best-checkpoint choice.
        With a held-out text (calibration_fraction), the output temperature is first fitted on it
        (`charnn.eval.calibrate`) and the loss is the calibrated network's; `val_loss_plain` keeps the other.
        """
        val, self.temperature, self.val_loss_plain = self.world.on_root(self._validate_here)   # one rank reads
        if not math.isfinite(val):
            raise TrainingDiverged(self.step, val, "the validation loss", self._last_path(), self.last_saved_step)
        return val

    def _validate_here(self) -> tuple[float, float, float | None]:
        S = self.cfg.eval_streams
        if self.calib_ids is None:
            total, n, _ = model.evaluate(self.params, self.val_ids, streams=S)
            return total / n, self.temperature, self.val_loss_plain
        temperature = calibrate.fit(self.params, self.calib_ids, streams=S)
        val, plain = calibrate.mean_nll(self.params, self.val_ids, [temperature, 1.0], streams=S)
        return val, temperature, plain

    def sample(self, length: int | None = None) -> str:
        """Prompt + `length` characters at the config's temperature (from the run's sampling RNG)."""
        n = self.cfg.sample_length if length is None else length
        # On a GPU, batch-1 sampling is launch-bound: sample from the CPU copy of the weights.
        params = self.params if self.xp is np else host_copy(self.params)
        (text,) = generate_text(calibrate.apply(params, self.temperature), self.vocab, self.prompt, n, rng=self.rng,
                                temperature=self.cfg.temperature)
        return self.prompt + text

    @property
    def total_steps(self) -> int:
        """Optimizer steps the run will have made when it ends (epochs, capped by max_steps)."""
        total = len(self.batches) * self.cfg.epochs
        return total if self.cfg.max_steps == 0 else min(total, self.cfg.max_steps)

    def lr_at(self, step: int) -> float:
        """Learning rate of (0-based) optimizer step `step`: a pure function of the step, so resume needs no
        state; with a time budget (max_minutes) and the cosine schedule, of the training time spent so far."""
        cfg, nb = self.cfg, len(self.batches)
        progress = self.budget_share   # cosine only
        return lr_at(step, cfg.lr, schedule=cfg.lr_schedule, warmup_steps=cfg.warmup_steps,
                     total_steps=self.total_steps, decay=cfg.lr_decay,
                     decay_every=max(1, round(cfg.lr_decay_every * nb)),
                     decay_after=round(cfg.lr_decay_after * nb), min_lr=cfg.min_lr, progress=progress)

    @property
    def budget_share(self) -> float | None:
        """The share of the time budget (max_minutes) spent in training steps; None without one."""
        return self.train_s / (60.0 * self.cfg.max_minutes) if self.cfg.max_minutes > 0 else None

    @property
    def wall_s(self) -> float:
        return self.wall_before + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

    @property
    def train_s(self) -> float:
        """Seconds spent in training steps (batch, forward, backward, update), over all sessions."""
        return self.train_before + self._train_session

    @property
    def out_of_time(self) -> bool:
        return self.cfg.max_minutes > 0 and self.train_s >= 60.0 * self.cfg.max_minutes

    @property
    def finished(self) -> bool:
        return (self.epoch >= self.cfg.epochs or (self.cfg.max_steps > 0 and self.step >= self.cfg.max_steps)
                or self.out_of_time)

    def _emit(self, event: str, record: dict) -> None:
        for cb in self.callbacks:
            cb(event, record)

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg, nb = self.cfg, len(self.batches)
        self._t0 = time.perf_counter()
        if self.finished:
            reached = ("epochs" if self.epoch >= cfg.epochs else
                       f"max-steps {cfg.max_steps}" if cfg.max_steps and self.step >= cfg.max_steps else
                       f"max-minutes {cfg.max_minutes:g}")
            where = f"after epoch {self.epoch}/{cfg.epochs}" if self.batch_index == 0 else f"in epoch {self.epoch + 1}/{cfg.epochs}"
            self.log(f"run already finished at step {self.step} {where} ({reached} reached"
                     + (f"; {self.train_s / 60:.1f} of {cfg.max_minutes:g} training minutes used" if cfg.max_minutes else "")
                     + "); nothing written: give a larger --epochs, --max-steps or --max-minutes to train further")
            return self._result("already_finished")
        total = self.total_steps
        metrics = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") if self.run_dir else None
        stop_reason = "completed"
        win_loss, win_n, win_chars, win_time = 0.0, 0, 0, 0.0
        # Overflow warnings are silenced: a non-finite loss is detected and reported by step instead.
        with np.errstate(over="ignore", invalid="ignore"), self._run_lock(), self._signal_guard(), tqdm(total=total, initial=self.step, unit="step", dynamic_ncols=True,
                                        disable=not self.progress, file=sys.stderr, leave=True) as bar:
            self._bar = bar
            try:
                if self.last_saved_step is None and self.step == 0:
                    self.save(LAST)       # a good checkpoint exists from the very start
                while True:
                    if self.epoch >= cfg.epochs:
                        break
                    if cfg.max_steps and self.step >= cfg.max_steps:
                        stop_reason = "max_steps"
                        break
                    if self.out_of_time:
                        stop_reason = "max_minutes"
                        break
                    t_iter = time.perf_counter()       # the training clock: batch, forward, backward, update
                    if self.batch_index == 0:
                        self.h = None     # each epoch reads the streams from their start
                        self.start_epoch(self.epoch)
                    epoch_no = self.epoch + 1
                    inputs, targets = self.batches.get(self.batch_index)
                    t = time.perf_counter()
                    loss = self.train_step(inputs, targets)
                    t_done = time.perf_counter()
                    win_time += t_done - t
                    self._train_session += t_done - t_iter
                    self.step += 1
                    self.batch_index += 1
                    self.chars_seen += self.batches.chars_per_batch
                    win_loss, win_n, win_chars = win_loss + loss, win_n + 1, win_chars + self.batches.chars_per_batch
                    end_of_epoch = self.batch_index == nb
                    if end_of_epoch:
                        self.epoch, self.batch_index, self.h = self.epoch + 1, 0, None
                    bar.update(1)
                    user_stop = False
                    try:
                        self._emit("step", {"step": self.step, "epoch": epoch_no, "loss": loss})
                    except StopTraining:
                        user_stop = True
                    # Every rank stops together: on a signal or a stop anywhere, and on the slowest clock.
                    user_stop, self._stop_signal, self._train_session = self.world.agree(
                        user_stop, self._signal_seen, self._train_session)
                    at_limit = (cfg.max_steps > 0 and self.step >= cfg.max_steps) or self.out_of_time
                    do_eval = (end_of_epoch or user_stop or at_limit
                               or (cfg.eval_every > 0 and self.step % cfg.eval_every == 0))
                    if self._stop_signal is not None:
                        do_eval = False   # stop quickly: save the state, skip validation
                    if do_eval or self.step % cfg.log_every == 0:
                        row = {"step": self.step, "epoch": epoch_no,
                               "epoch_frac": round(self.epoch + self.batch_index / nb, 6),
                               "chars_seen": self.chars_seen, "train_loss": win_loss / win_n,
                               "lr": self.opt.lr, "chars_per_s": win_chars / max(win_time, 1e-9),
                               "wall_s": round(self.wall_s, 3)}
                        win_loss, win_n, win_chars, win_time = 0.0, 0, 0, 0.0
                        bar.set_postfix_str(f"epoch {epoch_no}/{cfg.epochs} loss {row['train_loss']:.3f} "
                                            f"{row['chars_per_s'] / 1000:.1f}k chars/s", refresh=False)
                        if do_eval:
                            row["val_loss"] = self.val_loss = self.validate()
                            if self.calib_ids is not None:
                                row["val_loss_plain"], row["temperature"] = self.val_loss_plain, self.temperature
                            improved = self.best_val_loss is None or row["val_loss"] < self.best_val_loss
                            if improved:
                                self.best_val_loss = row["val_loss"]
                                self.save(BEST)
                            calib = ("" if self.calib_ids is None else
                                     f" (temperature {self.temperature:.3f}; {self.val_loss_plain:.4f} without)")
                            self.log(f"epoch {epoch_no} step {self.step}: train {row['train_loss']:.4f} "
                                     f"val {row['val_loss']:.4f} nats/char{calib}" + (" (best)" if improved else ""))
                            try:
                                self._emit("eval", row)
                            except StopTraining:   # a callback ends the run at this evaluation (a pruner)
                                user_stop = True
                            user_stop = self.world.agree(user_stop, None, self._train_session)[0]   # on every rank
                        self.history.append(row)
                        if metrics:
                            metrics.write(json.dumps(row) + "\n")
                            metrics.flush()
                        self._emit("log", row)
                    if end_of_epoch and self._stop_signal is None:
                        text = self.sample() if self.world.is_root else ""
                        self.samples.append(text)
                        head = (f"epoch {epoch_no}, step {self.step}, val {self.val_loss:.4f} nats/char, "
                                f"temperature {cfg.temperature:g}")
                        self.log(f"--- sample ({head}) ---\n{text}\n---")
                        if self.run_dir:
                            with open(self.run_dir / "samples.txt", "a", encoding="utf-8") as f:
                                f.write(f"=== {head} ===\n{text}\n\n")
                        self._emit("epoch", {"epoch": epoch_no, "step": self.step, "val_loss": self.val_loss,
                                             "sample": text})
                    if do_eval or end_of_epoch or self._stop_signal is not None:
                        self.save(LAST)
                    if self._stop_signal is not None:
                        raise TrainingInterrupted(self._stop_signal, self.step, self.run_dir)
                    if user_stop:
                        stop_reason = "stopped"
                        break
            finally:
                self._bar = None
                if metrics:
                    metrics.close()
        best = "n/a" if self.best_val_loss is None else f"{self.best_val_loss:.4f}"
        self.log(f"{self.progress_line(stop_reason)}, best val {best} nats/char, {self.wall_s:.0f} s"
                 + (f"; checkpoints in {self.run_dir / 'checkpoints'}" if self.run_dir else ""))
        return self._result(stop_reason)

    def progress_line(self, reason: str) -> str:
        """Where the run stopped and why: 'done: 5 epochs, step 675' or 'stopped at step 3 (max-steps 3) in epoch 1/5'."""
        cfg = self.cfg
        if reason == "completed":
            return f"done: {self.epoch} epoch(s), step {self.step}"
        why = {"max_steps": f"max-steps {cfg.max_steps}", "max_minutes": f"max-minutes {cfg.max_minutes:g}",
               "stopped": "stopped by a callback"}.get(reason, reason)
        where = (f"after epoch {self.epoch}/{cfg.epochs}" if self.batch_index == 0
                 else f"in epoch {self.epoch + 1}/{cfg.epochs}")
        return f"stopped at step {self.step} ({why}) {where}"

    def _result(self, reason: str) -> TrainResult:
        return TrainResult(config=self.cfg, params={k: to_numpy(v) for k, v in self.params.items()},
                           vocab=self.vocab, run_dir=self.run_dir, step=self.step, epoch=self.epoch,
                           val_loss=self.val_loss, best_val_loss=self.best_val_loss, history=self.history,
                           samples=self.samples, stop_reason=reason, wall_s=self.wall_s,
                           temperature=self.temperature)

    @contextmanager
    def _run_lock(self) -> Iterator[None]:
        """Hold the run folder's lock while this session writes it, and clear temp files a killed session left."""
        if self.run_dir is None:
            yield
            return
        with runlock.hold(self.run_dir):
            for folder in (self.run_dir, self.run_dir / "checkpoints"):   # e.g. .config.json.<pid>.<hex>.tmp
                checkpoint.remove_stale_temps(folder, keep=self.inputs)
            yield

    @contextmanager
    def _signal_guard(self) -> Iterator[None]:
        """SIGINT/SIGTERM: finish the step in progress, save `last`, stop. A second one quits at once."""
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._signal_seen is not None:
                raise KeyboardInterrupt   # second signal: quit now (checkpoint writes are atomic)
            self._signal_seen = signal.Signals(signum).name
            if self.world.size == 1:      # acted on at once; under MPI at the next agreement of all ranks
                self._stop_signal = self._signal_seen
            print(f"\n{self._signal_seen} received: saving the last checkpoint after this step "
                  f"(press Ctrl-C again to quit at once)", file=sys.stderr, flush=True)

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)


# --------------------------------------------------------------------------------------------
# entry points

def describe(cfg: Config, corpus: Corpus, run_dir: Path | None, num_params: int, nb: int, ranks: int = 1) -> str:
    """The resolved configuration as printed at the start of a run (TOML, so --config can read it back)."""
    head = [f"# run folder: {run_dir if run_dir is not None else '(in memory, nothing saved)'}",
            f"# corpus: {corpus.display_path}: {corpus.chars:,} chars, vocabulary {len(corpus.vocab)}, "
            f"sha256 {corpus.sha256[:16]}…",
            f"# model: {num_params:,} parameters; {nb} batches of {cfg.batch_size}×{cfg.max_len} chars per epoch"]
    if ranks > 1:
        head.append(f"# data-parallel: {ranks} MPI ranks, {cfg.batch_size // ranks}"
                    + (f"-{-(-cfg.batch_size // ranks)}" if cfg.batch_size % ranks else "") + " streams each")
    if cfg.init_from:
        head.append(f"# fine-tuning: starts from the weights and vocabulary of {cfg.init_from}")
    return "\n".join(head + [cfg.to_toml()])


def train(cfg: Config, out: str | Path | None = None, *, text: str | None = None, corpus: Corpus | None = None,
          overwrite: bool = False, callbacks: Iterable[Callback] = (), progress: bool = True,
          log: Callable[[str], None] | None = print, handle_signals: bool = False,
          inputs: Iterable[str | Path] = ()) -> TrainResult:
    """Train a new model.

    cfg:     the configuration (cfg.data names the corpus unless `text` or `corpus` is given)
    out:     run folder to write (config.json, metrics.jsonl, samples.txt, checkpoints/); None = in memory
    text:    train on this string instead of a file
    callbacks: functions called as cb(event, record) for events "step" (every step), "log"
             (each metrics row), "eval" (each validation) and "epoch" (each epoch end, with its sample);
             a callback may raise StopTraining on "step" or "eval" to end the run early (the last
             checkpoint is then saved at that step).
    log:     where messages go (None = silent); progress: show a tqdm bar on stderr.
    inputs:  other files the run reads (a config file): like the corpus, never removed or replaced

    Under `mpiexec` every rank calls this (train.distributed): rank 0 alone checks and writes the
    run folder, prints and calls the callbacks (a StopTraining there stops every rank); an error
    on any rank stops all of them with that error.
    """
    world = distributed.world()
    root = world.is_root
    keep = run_inputs(cfg, [*inputs, *([cfg.init_from] if cfg.init_from else [])])
    if out is not None:
        def check() -> None:
            check_run_dir(out, overwrite=overwrite)   # fail before the (slow) corpus load
            check_inputs_kept(out, keep, "--overwrite" if overwrite else "this run")
            runlock.ensure_free(out)                  # --overwrite of a folder still training is refused
        world.on_root(check)
    if corpus is None:
        corpus = world.together(lambda: Corpus.from_text(text) if text is not None else Corpus.load(
            cfg.data or None, encoding=cfg.encoding, byte_level=cfg.byte_level))
    init = None
    if cfg.init_from:     # fine-tuning: the checkpoint's weights and vocabulary (charnn.train.finetune)
        corpus, init, _ = world.together(lambda: finetune.prepare(cfg, corpus))
    fitted = sizing.Fit(cfg, 0.0, ())
    if sizing.applies(cfg):   # the hidden size this machine affords in the budget, timed on rank 0
        lo, hi = world.rows(cfg.batch_size) if world.size > 1 else (0, 0)
        fitted = world.on_root(lambda: sizing.fit(cfg, corpus, batch_rows=hi - lo))
        cfg = fitted.cfg
    trainer = world.together(lambda: Trainer(   # validates data and config: nothing written yet
        cfg, corpus, callbacks=callbacks if root else (), progress=progress and root, log=log if root else None,
        handle_signals=handle_signals, world=world, init=init))
    trainer.inputs |= keep
    trainer.train_before = fitted.spent_s      # the budget's clock started with the timing

    def create() -> Path | None:
        made = prepare_run_dir(out, overwrite=overwrite, inputs=trainer.inputs) if out is not None else None
        if made is not None:
            write_run_config(made, cfg, corpus, trainer.num_params)
        return made
    run_dir = world.on_root(create)
    trainer.run_dir = run_dir if root else None
    if fitted.probes:
        trainer.log(f"# {fitted.summary()}")
    trainer.log(describe(cfg, corpus, run_dir, trainer.num_params, len(trainer.batches), world.size))
    return trainer.run()


def resume(run_dir: str | Path, changes: Mapping[str, Any] | None = None, *, text: str | None = None,
           corpus: Corpus | None = None, callbacks: Iterable[Callback] = (), progress: bool = True,
           log: Callable[[str], None] | None = print, handle_signals: bool = False) -> TrainResult:
    """Continue a run from its last checkpoint, exactly where it stopped.

    `changes` may set new values for RESUMABLE fields (epochs and max_steps are the new totals;
    data may point to a moved copy of the same corpus); any other field must keep its value.
    A run trained on in-memory `text` is resumed by passing the same text (its checksum is checked).
    Under `mpiexec`, rank 0 reads the checkpoint and sends it to the others; the run may have been
    trained on any number of ranks.
    """
    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / LAST
    world = distributed.world()
    root = world.is_root

    def load() -> Checkpoint:
        if not run_dir.is_dir():
            raise ResumeError(f"run folder not found: {run_dir}")
        if not path.is_file():
            raise ResumeError(f"{run_dir} has no checkpoint to resume from (expected {path})")
        runlock.ensure_free(run_dir)              # a folder another process is training is refused
        return checkpoint.load(path)
    start = world.on_root(load)
    cfg = start.config
    updates = {}
    for k, v in (changes or {}).items():
        if v is None or v == getattr(cfg, k):
            continue
        if k not in RESUMABLE:
            raise ResumeError(f"cannot change {k.replace('_', '-')} when resuming (the run has "
                              f"{getattr(cfg, k)!r}); start a new run with --out instead")
        updates[k] = v
    cfg = cfg.replace(**updates)

    def setup() -> Trainer:
        nonlocal corpus
        own = start.vocab if cfg.init_from else None     # a fine-tuned run reads with its model's vocabulary
        if corpus is None:
            corpus = Corpus.from_text(text, vocab=own) if text is not None else Corpus.load(
                cfg.data or None, encoding=cfg.encoding, byte_level=cfg.byte_level, vocab=own)
        elif own is not None and corpus.vocab != own:
            corpus = finetune.reencode(corpus, own)
        want = start.corpus.get("sha256")
        if want and corpus.sha256 != want:
            raise ResumeError(f"the corpus {corpus.display_path} is not the one this run was trained on "
                              f"(sha256 {corpus.sha256[:12]}… vs {str(want)[:12]}…): pass --data with the original text")
        if corpus.vocab != start.vocab:
            raise VocabError(f"the vocabulary of {corpus.display_path} does not match the checkpoint's")
        return Trainer(cfg, corpus, run_dir=run_dir if root else None, start=start,
                       callbacks=callbacks if root else (),
                       progress=progress and root, log=log if root else None, handle_signals=handle_signals,
                       world=world)
    trainer = world.together(setup)
    trainer.last_saved_step = start.step
    trainer.inputs.add(os.path.realpath(path))
    if not trainer.finished:      # a resume with nothing left to do writes nothing at all
        world.on_root(lambda: check_inputs_kept(run_dir, trainer.inputs - {os.path.realpath(path)}, "resuming"))
        if updates:
            world.on_root(lambda: write_run_config(run_dir, cfg, corpus, trainer.num_params))
        trainer.log(f"resuming {run_dir} at epoch {start.epoch + 1}, batch {start.batch_index}, step {start.step}"
                    + (f" (changed: {', '.join(f'{k}={v!r}' for k, v in updates.items())})" if updates else "")
                    + (f" on {world.size} MPI ranks" if world.size > 1 else ""))
    return trainer.run()
