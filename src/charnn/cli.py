"""The `charnn` command line: thin argument parsing over the library.

Every user error becomes one line on stderr and exit status 2 (never a traceback).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import stat
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

EXIT_USAGE = 2
EXIT_DIVERGED = 3        # training stopped on a NaN/inf loss
EXIT_INTERRUPTED = 130   # SIGINT (128 + signal number, the shell convention; SIGTERM gives 143)


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _err(msg: str) -> None:
    """An error line on stderr, from one process only when `mpiexec` started several (rank 0 speaks)."""
    from .train.distributed import launched_rank

    if launched_rank() == 0:
        print(msg, file=sys.stderr)


def _cmd_gradcheck(args: argparse.Namespace) -> int:
    from . import model
    from .eval import gradcheck
    from .nn import budget

    for flag, v in (("--dropout", args.dropout), ("--weight-drop", args.weight_drop)):
        if not 0.0 <= v < 1.0:     # also refuses nan
            raise CLIError(f"{flag} must be in [0, 1), got {v}")
    if args.embed < 0:
        raise CLIError(f"--embed must be >= 0 (0 = one-hot input), got {args.embed}")
    budget.check(budget.training_bytes(vocab_size=args.vocab_size, hidden_size=args.hidden_size,
                                       batch_size=args.batch_size, max_len=args.max_len, cell=args.cell,
                                       layers=args.layers, embed=args.embed, dtype="float64", optimizer="sgd"),
                 f"a gradient check of hidden size {args.hidden_size}", "use a smaller --hidden-size or --batch-size")
    rng = np.random.default_rng(args.seed)
    params = model.init_params(args.vocab_size, args.hidden_size, seed=args.seed, dtype=np.float64,
                               cell=args.cell, layers=args.layers, embed=args.embed)
    inputs = rng.integers(0, args.vocab_size, size=(args.batch_size, args.max_len))
    targets = rng.integers(0, args.vocab_size, size=(args.batch_size, args.max_len))
    h0 = rng.uniform(-0.5, 0.5, size=model.init_state(params, args.batch_size).shape)
    masks = None
    if args.dropout > 0:   # a fixed mask makes the loss a deterministic function of the parameters
        masks = model.dropout_masks(rng, args.dropout, args.layers, args.max_len, args.batch_size,
                                    args.hidden_size, np.float64)
    weight_masks = model.weight_drop_masks(rng, args.weight_drop, params) if args.weight_drop > 0 else None
    max_checks = None if args.all else args.checks
    rows = gradcheck.gradcheck(params, inputs, targets, h0, max_checks=max_checks, seed=args.seed, masks=masks,
                               weight_masks=weight_masks)
    print(f"gradient check (float64, {args.cell} × {args.layers} layer(s), embed {args.embed}, dropout {args.dropout:g}, "
          f"weight drop {args.weight_drop:g}, "
          f"vocab {args.vocab_size}, hidden {args.hidden_size}, "
          f"batch {args.batch_size}, length {args.max_len}; pass if max rel error < {gradcheck.TOLERANCE:g})")
    print(gradcheck.format_table(rows))
    ok = all(r.passed for r in rows)
    print("all gradients match" if ok else "GRADIENT CHECK FAILED")
    return 0 if ok else 1


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _seed(s: str) -> int:
    """A random seed: a whole number >= 0 (NumPy's generators refuse negative seeds)."""
    v = _whole(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"a seed must be a whole number >= 0, got {v}")
    return v


def _add_gradcheck(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradcheck", help="check the hand-written gradients against finite differences",
                       description="Finite-difference check (float64) of every parameter's gradient and of dL/dh0.")
    p.add_argument("--vocab-size", type=_positive_int, default=11)
    p.add_argument("--hidden-size", type=_positive_int, default=16)
    p.add_argument("--batch-size", type=_positive_int, default=3)
    p.add_argument("--max-len", type=_positive_int, default=12)
    p.add_argument("--checks", type=_positive_int, default=60, help="elements checked per parameter (random)")
    p.add_argument("--all", action="store_true", help="check every element")
    p.add_argument("--seed", type=_seed, default=42)
    p.add_argument("--cell", choices=("rnn", "lstm", "gru"), default="rnn", help="recurrent cell [rnn]")
    p.add_argument("--layers", type=_positive_int, default=1, help="stacked layers [1]")
    p.add_argument("--embed", type=_whole, default=0, metavar="D", help="input embedding width; 0 = one-hot input [0]")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="check through a fixed dropout mask of this rate [0]")
    p.add_argument("--weight-drop", type=float, default=0.0,
                   help="check through a fixed weight-drop (DropConnect) mask on W of this rate [0]")
    p.set_defaults(func=_cmd_gradcheck)


def _cmd_gradflow(args: argparse.Namespace) -> int:
    from .apps import gradflow
    from .train import checkpoint

    if args.offset < 0:
        raise CLIError(f"--offset must be >= 0, got {args.offset}")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise CLIError(f"--out must name a .png file, got {args.out}")
    if not out.parent.is_dir():
        raise CLIError(f"--out: no such folder: {out.parent}")
    path = checkpoint.resolve(args.checkpoint)
    ckpt = checkpoint.load(path)
    layers = ckpt.config.layers
    if args.layer == "all":
        which = list(range(layers))
    else:
        try:
            which = [int(args.layer)]
        except ValueError:
            raise CLIError(f"--layer must be a layer number or 'all', got {args.layer!r}") from None
        if not -layers <= which[0] < layers:
            raise CLIError(f"--layer must be in [{-layers}, {layers - 1}] for this {layers}-layer model, got {which[0]}")
    ids, what = gradflow.text_ids(ckpt, args.text)
    name = f"{ckpt.config.cell} {layers}x{ckpt.config.hidden_size}"
    flows = [(name, gradflow.window_flow(ckpt.params, ids, args.length, args.offset, layer)) for layer in which]
    T = flows[0][1].T
    gradflow.plot(flows, args.out, title=f"{what}, characters {args.offset}-{args.offset + T}")
    for label, flow in flows:
        print(gradflow.summary(flow, label))
    print(f"wrote {args.out}")
    return 0


def _add_gradflow(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradflow", help="plot how far back the gradient reaches: ‖∂L_t/∂h_s‖ over a window of text",
                       description="For a window of T characters, the norm of the gradient of each step's loss L_t "
                                   "with respect to each earlier hidden state h_s (s <= t), computed with the "
                                   "hand-written backward pass: a heatmap over (t, s) and ‖∂L_T/∂h_t‖ against T − t.")
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--text", default=None, metavar="FILE",
                   help="read the window from this text file [the run's validation split]")
    p.add_argument("--out", required=True, metavar="FILE.png", help="where to write the figure")
    p.add_argument("--length", type=_positive_int, default=50, metavar="T",
                   help="window length in characters (the cost grows as T³) [50]")
    p.add_argument("--offset", type=int, default=0, metavar="N",
                   help="start of the window in the text; the characters before it warm up the state [0]")
    p.add_argument("--layer", default="-1",
                   help="which layer's h: a number (negative counts from the top) or 'all', one row each [-1]")
    p.set_defaults(func=_cmd_gradflow)


# --------------------------------------------------------------------------------------------
# train / sample / eval / info

def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that are the user's doing: one line on stderr, exit status 2."""
    from .backend import BackendError
    from .data import DataError
    from .data.vocab import VocabError
    from .nn.budget import MemoryBudgetError
    from .sample import SampleError
    from .train import ResumeError, RunDirError
    from .train.checkpoint import CheckpointError
    from .train.config import ConfigError
    from .train.distributed import DistributedError
    from .train.runlock import RunInUseError
    from .sweep import SpaceError, SweepError

    return (CLIError, ConfigError, DataError, VocabError, CheckpointError, SampleError,
            RunDirError, ResumeError, BackendError, RunInUseError, DistributedError, SpaceError, SweepError,
            MemoryBudgetError)


def _finite_float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None


def _whole(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None


# flag -> (Config field, type, help). Every flag defaults to None: "not given" (the config file or
# the Config default applies; with --resume, the run's own value).
_TRAIN_FLAGS: list[tuple[str, str, Callable[[str], Any], str]] = [
    ("--data", "data", str, "corpus: a UTF-8 text file or a folder of .txt files (default: embedded Tiny Shakespeare)"),
    ("--epochs", "epochs", _whole, "epochs to train (with --resume: the new total) [5]"),
    ("--hidden-size", "hidden_size", _whole, "hidden units H [256]"),
    ("--max-len", "max_len", _whole, "characters per training sequence, the BPTT length T [100]"),
    ("--batch-size", "batch_size", _whole, "parallel streams B (1 reproduces the seed exactly) [32]"),
    ("--lr", "lr", _finite_float, "learning rate [5e-3]"),
    ("--optimizer", "optimizer", str, "adam or sgd [adam]"),
    ("--momentum", "momentum", _finite_float, "SGD momentum [0]"),
    ("--grad-clip", "grad_clip", _finite_float, "clip each gradient element to ±this [5]"),
    ("--clip-norm", "clip_norm", _finite_float, "then rescale gradients to this global L2 norm; 0 = off [0]"),
    ("--train-fraction", "train_fraction", _finite_float, "leading share of the corpus that trains [0.9]"),
    ("--val-fraction", "val_fraction", _finite_float,
     "share of the corpus that validates, just before the test split (training then takes the rest); "
     "0 = what --train-fraction leaves [0]"),
    ("--test-fraction", "test_fraction", _finite_float,
     "share of the corpus, at its end, held out for `charnn eval --split test`; never read in training; 0 = none [0]"),
    ("--calibration-fraction", "calibration_fraction", _finite_float,
     "share of the corpus, from its start, held out of training to fit the output temperature on; "
     "0 = off [0]"),
    ("--seed", "seed", _seed, "seed of the initial weights and of the samples [42]"),
    ("--dtype", "dtype", str, "float32 or float64 [float32]"),
    ("--beta1", "beta1", _finite_float, "Adam β1 [0.9]"),
    ("--beta2", "beta2", _finite_float, "Adam β2 [0.999]"),
    ("--eps", "eps", _finite_float, "Adam ε [1e-8]"),
    ("--temperature", "temperature", _finite_float, "temperature of the samples printed at each epoch end [1.5]"),
    ("--prompt", "prompt", str, "prompt of those samples [ROMEO:]"),
    ("--sample-length", "sample_length", _whole, "characters generated for those samples [300]"),
    ("--max-steps", "max_steps", _whole, "stop after this many optimizer steps in total; 0 = no limit [0]"),
    ("--max-minutes", "max_minutes", _finite_float,
     "stop after this many minutes of training steps in total; a cosine schedule decays over them; 0 = no limit [0]"),
    ("--min-steps", "min_steps", _whole,
     "with --max-minutes: shrink the hidden size (to a multiple of 64) until a step timed on this machine "
     "leaves room for N steps in the budget; 0 = --hidden-size as given [0]"),
    ("--reg-exposure", "reg_exposure", _finite_float,
     "with --min-steps: the exposure (parameters per training character × epochs in the budget) that "
     "--dropout, --weight-drop and --weight-decay are set for; less exposure x scales them by x / X; "
     "0 = as given [0]"),
    ("--reg-ramp", "reg_ramp", _finite_float,
     "raise --dropout, --weight-drop and --weight-decay linearly from 0 over this share of the run "
     "(of --max-minutes if given, else of the steps); 0 = full strength from the first step [0]"),
    ("--eval-every", "eval_every", _whole, "also validate (and save) every N steps; 0 = at epoch ends only [0]"),
    ("--log-every", "log_every", _whole, "write a metrics.jsonl row every N steps [10]"),
    ("--device", "device", str, "cpu or cuda [cpu]"),
    ("--cell", "cell", str, "recurrent cell: rnn (the seed's), lstm or gru [rnn]"),
    ("--layers", "layers", _whole, "stacked recurrent layers [1]"),
    ("--embed", "embed", _whole, "input embedding width D (torch-rnn's wordvec_size); 0 = one-hot input [0]"),
    ("--dropout", "dropout", _finite_float, "dropout between layers and before the output layer, training only [0]"),
    ("--weight-drop", "weight_drop", _finite_float,
     "DropConnect on the recurrent weights W: one mask per batch, training only [0]"),
    ("--weight-decay", "weight_decay", _finite_float, "Adam: decoupled weight decay of the weight matrices (AdamW) [0]"),
    ("--lr-schedule", "lr_schedule", str, "constant, step (×lr-decay every lr-decay-every epochs) or cosine [constant]"),
    ("--warmup-steps", "warmup_steps", _whole, "linear learning-rate warm-up over the first N steps [0]"),
    ("--lr-decay", "lr_decay", _finite_float, "step schedule: decay factor [0.97]"),
    ("--lr-decay-every", "lr_decay_every", _finite_float, "step schedule: epochs between decays [1]"),
    ("--lr-decay-after", "lr_decay_after", _finite_float, "step schedule: epochs before the first decay [0]"),
    ("--min-lr", "min_lr", _finite_float, "cosine schedule: final learning rate [0]"),
    ("--eval-streams", "eval_streams", _whole, "validate as N parallel streams with warm-up (faster; 1 = exact) [1]"),
    ("--init-from", "init_from", str,
     "fine-tune: start from this checkpoint's (or run folder's best) weights and vocabulary, with a fresh "
     "optimizer and a run folder of its own; the architecture is the checkpoint's"),
    ("--encoding", "encoding", str, "text encoding of the corpus files, e.g. latin-1 [utf-8]"),
    ("--max-vocab", "max_vocab", _whole, "refuse a corpus with more distinct characters than this [10000]"),
]


_METAVARS = {"data": "PATH", "init_from": "CHECKPOINT_OR_RUN", "optimizer": "adam|sgd", "dtype": "float32|float64",
             "device": "cpu|cuda", "cell": "rnn|lstm|gru", "lr_schedule": "constant|step|cosine"}


def _add_train_flag(p: argparse.ArgumentParser, flag: str, field: str, typ: Callable[[str], Any], help_: str) -> None:
    """One _TRAIN_FLAGS entry as an option defaulting to None ("not given")."""
    metavar = _METAVARS.get(field) or {_whole: "N", _seed: "N", _finite_float: "X"}.get(typ, "TEXT")
    p.add_argument(flag, dest=field, type=typ, default=None, metavar=metavar, help=help_)


def _load_toml(path: str) -> dict[str, Any]:
    from .train.config import read_toml

    return {k.replace("-", "_"): v for k, v in read_toml(path, "config file", CLIError).items()}


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {field: getattr(args, field) for _, field, _, _ in _TRAIN_FLAGS if getattr(args, field) is not None}
    if args.reset_state:
        out["carry_state"] = False
    if args.locked_dropout:
        out["locked_dropout"] = True
    if args.random_offset:
        out["random_offset"] = True
    if args.bytes:
        out["byte_level"] = True
    if args.extend_vocab:
        out["extend_vocab"] = True
    return out


def _absolute(path: str) -> str:
    """`path` with symbolic links resolved, so a run finds its corpus from anywhere; a path that cannot
    be resolved (a link loop) stays as given, absolute, for the corpus loader to refuse by name."""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError, ValueError):   # RuntimeError: a symbolic-link loop (Python < 3.13)
        return os.path.abspath(path)


def _fresh_config(merged: dict[str, Any]) -> Any:
    """The Config of a new run from the merged --config file and flags (paths made absolute)."""
    from .train import finetune
    from .train.config import Config

    for key in ("data", "init_from"):
        if isinstance(merged.get(key), str) and merged[key]:
            merged[key] = _absolute(merged[key])   # a run must find its files from anywhere
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731 (else Config refuses it)
    val, test, given = (merged.get(k, 0.0) for k in ("val_fraction", "test_fraction", "train_fraction"))
    if ("train_fraction" in merged and all(map(number, (val, test, given))) and val > 0
            and abs(given - (1.0 - val - test)) > 1e-9):
        raise CLIError(f"--train-fraction {given:g} conflicts with --val-fraction {val:g} and --test-fraction "
                       f"{test:g}: with --val-fraction, training takes the rest ({1.0 - val - test:g}); give one or the other")
    if merged.get("init_from"):
        merged = finetune.inherit(merged, finetune.load_source(merged["init_from"]))
    return Config.from_dict(merged, strict=True)


def _cmd_train(args: argparse.Namespace) -> int:
    from . import train
    from .train import distributed
    from .train.config import Config

    overrides = _train_overrides(args)
    progress = not args.no_progress
    try:
        if args.resume is not None:
            if args.config is not None or args.out is not None or args.overwrite:
                raise CLIError("--resume continues a run with its own config and folder: "
                               "do not combine it with --config, --out or --overwrite")
            if overrides.get("data"):
                overrides["data"] = _absolute(overrides["data"])
            result = train.resume(args.resume, overrides, progress=progress, handle_signals=True)
        else:
            cfg = _fresh_config({**(_load_toml(args.config) if args.config is not None else {}), **overrides})
            out = args.out if args.out is not None else train.default_run_dir()
            result = train.train(cfg, out, overwrite=args.overwrite, progress=progress, handle_signals=True,
                                 inputs=[args.config] if args.config is not None else [])
    except train.TrainingInterrupted as exc:
        _err(f"charnn: {exc}")
        return 128 + int(getattr(signal, exc.signame, signal.SIGINT))
    except KeyboardInterrupt:
        _err("charnn: interrupted again: stopped at once (the last saved checkpoint is intact)")
        distributed.abort_all(EXIT_INTERRUPTED)   # under mpiexec: the other ranks may be mid-step
        return EXIT_INTERRUPTED
    except train.TrainingDiverged as exc:
        _err(f"charnn: error: {exc}")
        return EXIT_DIVERGED
    except BrokenPipeError:
        raise
    except OSError as exc:   # e.g. disk full while appending metrics.jsonl or samples.txt
        _err(f"charnn: error: cannot write {exc.filename or 'to the run folder'}: {exc.strerror or exc} "
             f"(the last checkpoint is intact; fix it, then resume with --resume)")
        distributed.abort_all(EXIT_USAGE)
        return EXIT_USAGE
    except _user_errors():
        raise            # the same on every rank (train.distributed agrees on them): one line, exit 2
    except Exception:
        if distributed.launched_size() != 1:   # a failure on one rank: the others would wait for it forever
            traceback.print_exc()
            distributed.abort_all(1)
        raise
    if result.run_dir is not None and result.stop_reason != "already_finished":
        # shlex.quote: a command any POSIX shell accepts as printed, non-ASCII characters as they are
        print(f"sample from it: charnn sample {shlex.quote(str(result.run_dir))} "
              f"--prompt {shlex.quote(result.config.prompt)} --length 300")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (default: the seed's configuration on Tiny Shakespeare)",
                       description="Train a character RNN. With no arguments: the seed's configuration "
                                   "(hidden 256, max-len 100, clip ±5, Adam lr 5e-3, 5 epochs, seed 42) on "
                                   "the embedded Tiny Shakespeare corpus. Precedence: flags > --config file "
                                   "> defaults. Writes a run folder: config.json, metrics.jsonl, samples.txt, "
                                   "checkpoints/last.safetensors and checkpoints/best.safetensors.")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder to create (default: runs/<date-time>/)")
    p.add_argument("--config", metavar="FILE.toml", help="TOML file of config values (keys as in config.json)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR exactly where it stopped; "
                   "--epochs/--max-steps/--max-minutes then give the new total")
    p.add_argument("--overwrite", action="store_true", help="reuse a non-empty --out folder (replaces its run files)")
    for flag, field, typ, help_ in _TRAIN_FLAGS:
        _add_train_flag(p, flag, field, typ, help_)
    p.add_argument("--random-offset", action="store_true",
                   help="start each epoch's streams at a random rotation of the training text")
    p.add_argument("--locked-dropout", action="store_true",
                   help="one dropout mask per sequence, shared by all its steps (variational dropout)")
    p.add_argument("--reset-state", action="store_true",
                   help="start every chunk from h = 0 instead of carrying h across chunks")
    p.add_argument("--bytes", action="store_true",
                   help="byte-level model: every byte of the corpus is one symbol (vocabulary <= 256; "
                        "for files that are not valid text in any one encoding)")
    p.add_argument("--extend-vocab", action="store_true",
                   help="with --init-from: add the corpus's characters the model lacks as new rows "
                        "(otherwise such a corpus is refused)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _load_checkpoint(path: str):
    from .train import checkpoint

    return checkpoint.load(checkpoint.resolve(path))


def _budget_checkpoint(path: Path, what: str, estimate: Callable[..., int], fix: str, **kw: Any) -> None:
    """Refuse before loading when reading `path` and the work on it cannot fit in memory (charnn.nn.budget)."""
    from .nn import budget
    from .train import checkpoint

    cfg, V, size = checkpoint.peek(path)
    budget.check(estimate(file_bytes=size, vocab_size=V, hidden_size=cfg.hidden_size, cell=cfg.cell,
                          layers=cfg.layers, dtype=cfg.dtype, **kw), what, fix)


PROMPT_FILE_MAX = 16 * 2**20   # bytes; a prompt is read whole before generation starts


def _read_prompt_file(path: str, byte_level: bool) -> str:
    """A prompt file's exact contents (UTF-8; a byte-level model's prompt is the file's bytes)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):    # a FIFO or device would block or never end
            raise CLIError(f"--prompt-file {path}: not a regular file (give a text file)")
        if info.st_size > PROMPT_FILE_MAX:
            raise CLIError(f"--prompt-file {path}: {info.st_size:,} bytes, more than a prompt's "
                           f"{PROMPT_FILE_MAX:,}: give a shorter file")
        data = Path(path).read_bytes()
    except (OSError, ValueError) as exc:
        raise CLIError(f"--prompt-file {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    if byte_level:
        return data.decode("latin-1")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CLIError(f"--prompt-file {path}: not UTF-8 text (byte {exc.start})") from None


def _cmd_sample(args: argparse.Namespace) -> int:
    from . import sample
    from .nn import budget
    from .train import checkpoint

    path = checkpoint.resolve(args.checkpoint)
    group = sample.group_size(args.num_samples, args.length)
    _budget_checkpoint(path, f"sampling {group} stream(s) at once from {path}", budget.generation_bytes,
                       "use a smaller --num-samples", streams=group)
    ckpt = checkpoint.load(path)
    cfg = ckpt.config
    to_symbols = ((lambda t: t.encode("utf-8", "surrogateescape").decode("latin-1")) if cfg.byte_level
                  else (lambda t: t))   # a byte-level model's symbols are bytes: text stands for its UTF-8 bytes
    if args.prompt is not None and args.prompt_file is not None:
        raise CLIError("give --prompt or --prompt-file, not both")
    if args.prompt_file is not None:
        prompt, prompt_flag = _read_prompt_file(args.prompt_file, cfg.byte_level), "--prompt-file"
    else:
        prompt, prompt_flag = to_symbols(cfg.prompt if args.prompt is None else args.prompt), "--prompt"
    stop = [to_symbols(t) for t in args.stop]
    temperature = cfg.temperature if args.temperature is None else args.temperature
    seed = cfg.seed if args.seed is None else args.seed
    if args.top_k is not None and args.top_k < 1:
        raise CLIError(f"--top-k must be >= 1, got {args.top_k}")
    top_p = 1.0 if args.top_p is None else args.top_p
    if args.beam is not None:
        clash = [f for f, given in (("--temperature", args.temperature is not None), ("--top-k", args.top_k is not None),
                                    ("--top-p", args.top_p is not None), ("--greedy", args.greedy),
                                    ("--stop", bool(stop)), ("--num-samples", args.num_samples != 1)) if given]
        if clash:
            raise CLIError(f"--beam finds the most likely text under the model itself: it takes no {', '.join(clash)}")
    sample.check_options(length=args.length, temperature=temperature, top_k=args.top_k or 0,
                         num_samples=args.num_samples, top_p=top_p, stop=stop, beam=args.beam)
    if prompt == "":
        print("charnn: empty prompt: starting from the zero hidden state (first character drawn from softmax(c))",
              file=sys.stderr)
    unknown = ckpt.vocab.unknown(prompt)
    if unknown:
        raise CLIError(f"{prompt_flag} has character(s) not in the model's vocabulary: "
                       f"{', '.join(map(repr, unknown[:10]))}")
    unknown = ckpt.vocab.unknown("".join(stop))
    if unknown:
        raise CLIError(f"--stop has character(s) not in the model's vocabulary: {', '.join(map(repr, unknown[:10]))}")
    if args.beam is not None:
        best = sample.beam_search(ckpt.model_params, ckpt.vocab, prompt, args.length, beam=args.beam)[0]
        out = _SymbolWriter(cfg.byte_level)
        out.write(prompt + best.text)
        out.end()
        print(f"log-probability: {best.logprob:.6f} nats ({best.logprob / math.log(2):.4f} bits) "
              f"over {args.length} characters, beam {args.beam}")
        return 0
    rng = np.random.default_rng(seed)
    opts = dict(rng=rng, temperature=temperature, top_k=args.top_k or 0, greedy=args.greedy,
                top_p=top_p, stop=stop)
    # The samples are drawn `group` at a time; the first of each group streams as it is drawn (the
    # prompt at once, then each chunk), the others of the group are printed when it is done.
    N = args.num_samples
    for first in range(0, N, group):
        g = min(group, N - first)
        pending: list[list[str]] = [[] for _ in range(g - 1)]
        if N > 1:
            print(f"--- sample {first + 1}/{N} ---")
        out = _SymbolWriter(cfg.byte_level)
        out.write(prompt)
        for texts in sample.stream_text(ckpt.model_params, ckpt.vocab, prompt, args.length, num_samples=g, **opts):
            out.write(texts[0])
            for parts, text in zip(pending, texts[1:]):
                parts.append(text)
        out.end()
        for i, parts in enumerate(pending):
            print(f"--- sample {first + i + 2}/{N} ---")
            out = _SymbolWriter(cfg.byte_level)
            out.write(prompt + "".join(parts))
            out.end()
    return 0


class _SymbolWriter:
    """Writes generated text to stdout as it comes, flushed per chunk. A byte-level model's symbols
    go out as the raw bytes they stand for (decoded incrementally where stdout is a text stream, so
    a character split across two chunks still prints whole)."""

    def __init__(self, byte_level: bool):
        import codecs

        self.byte_level = byte_level
        self.buffer = getattr(sys.stdout, "buffer", None) if byte_level else None
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(self, text: str) -> None:
        if not self.byte_level:
            sys.stdout.write(text)
        elif self.buffer is None:   # a text stream (tests, notebooks)
            sys.stdout.write(self.decoder.decode(text.encode("latin-1")))
        else:
            sys.stdout.flush()
            self.buffer.write(text.encode("latin-1"))
            self.buffer.flush()
            return
        sys.stdout.flush()

    def end(self) -> None:
        if self.byte_level and self.buffer is None:
            sys.stdout.write(self.decoder.decode(b"", final=True))
        self.write("\n")


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate text from a checkpoint",
                       description="Print the prompt followed by LENGTH generated characters. The same "
                                   "seed always gives the same text. A run folder means its best checkpoint "
                                   "(or its last if it has no best).")
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR")
    p.add_argument("--prompt", default=None, metavar="TEXT", help="text that primes the hidden state (default: the run's prompt; "
                   "'' starts from h = 0)")
    p.add_argument("--length", type=_whole, default=300, metavar="N", help="characters to generate after the prompt [300]")
    p.add_argument("--temperature", type=_finite_float, default=None, metavar="TAU",
                   help="softmax temperature > 0 (default: the run's, 1.5 for the seed)")
    p.add_argument("--seed", type=_seed, default=None, metavar="S", help="sampling seed (default: the run's seed)")
    p.add_argument("--prompt-file", default=None, metavar="FILE",
                   help="prime with this file's exact contents (UTF-8) instead of --prompt")
    p.add_argument("--top-k", type=_whole, default=None, metavar="K", help="sample only among the K most likely characters")
    p.add_argument("--top-p", type=_finite_float, default=None, metavar="P",
                   help="nucleus sampling: only among the most likely characters whose probabilities add up to P, "
                        "in (0, 1] (after --top-k) [1 = off]")
    p.add_argument("--stop", action="append", default=[], metavar="STR",
                   help="end right after the first occurrence of STR in the generated text, which is printed "
                        "(repeatable: the earliest to complete wins)")
    p.add_argument("--greedy", action="store_true", help="always take the most likely character (argmax)")
    p.add_argument("--beam", type=_whole, default=None, metavar="K",
                   help="beam search of width K: print the most likely continuation of --length characters it "
                        "finds, then its log-probability under the model (temperature 1)")
    p.add_argument("--num-samples", type=_whole, default=1, metavar="N",
                   help="independent samples, drawn in batches of up to 64 (fewer for long samples) [1]")
    p.set_defaults(func=_cmd_sample)


def _parse_unit(spec: str, names: Sequence[str], hidden: int) -> dict[str, Any]:
    """'L0.h:12' -> {"name": "L0.h", "unit": 12}, checked against the model's state kinds."""
    name, sep, j = spec.rpartition(":")
    if not sep or name not in names or not j.isdigit() or int(j) >= hidden:
        raise CLIError(f"--unit must be KIND:J with KIND one of {', '.join(names)} and J in [0, {hidden}), "
                       f"got {spec!r}")
    return {"name": name, "unit": int(j)}


def _cmd_inspect(args: argparse.Namespace) -> int:
    from . import model
    from .apps import inside, inside_html
    from .data import read_corpus

    for flag, v in (("--length", args.length), ("--max-chars", args.max_chars)):
        if v < 1:
            raise CLIError(f"{flag} must be >= 1, got {v}")
    if args.start < 0:
        raise CLIError(f"--start must be >= 0, got {args.start}")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise CLIError(f"--out {out}: the folder {out.parent} does not exist")
    ckpt = _load_checkpoint(args.run)
    cfg = ckpt.config
    params = ckpt.model_params
    spec = model.describe(params)
    initial = _parse_unit(args.unit, model.internal_names(params), spec.hidden_size) if args.unit else None
    if args.text is not None:
        text = read_corpus(args.text, encoding=cfg.encoding, byte_level=cfg.byte_level)
        what = str(args.text)
    else:
        text = inside.validation_text(ckpt, args.length, args.start)
        what = f"{len(text):,} characters of the validation split from {args.start:,}"
    try:
        data = inside.analyze(params, ckpt.vocab, text, max_chars=args.max_chars)
    except inside.InsideError as exc:
        raise CLIError(f"{what}: {exc}") from None
    if initial:
        data["initial"] = initial
    data["source"] = what
    inside_html.write(out, data, title=f"charnn inspect: {Path(args.run).name}")
    if args.json:
        Path(args.json).write_text(json.dumps(data), encoding="utf-8")
    best = [u for u in data["units"] if u["score"] is not None]
    best.sort(key=lambda u: -u["score"])
    print(f"{what}: {data['chars']:,} characters, mean surprise {data['mean_surprise']:.4f} nats/char")
    for u in best[:5]:
        print(f"  {u['description']}: {u['name']} unit {u['unit']} (r = {u['r']:+.3f})")
    print(f"inside view: {out}")
    return 0


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    from .apps.inside import DEFAULT_SLICE, MAX_CHARS

    p = sub.add_parser("inspect", help="write the Inside view of a model reading a text as one HTML file",
                       description="Read a text with a trained model and write one self-contained HTML file: the "
                                   "text coloured by any unit's activation (every layer's h, the LSTM's cell and "
                                   "gates, the GRU's gates) or by its surprise, the units that track features of "
                                   "the text best (|Pearson r|), and each layer's gate saturation. Without --text, a "
                                   "slice of the run's validation split.")
    p.add_argument("run", metavar="CHECKPOINT_OR_RUN_DIR")
    p.add_argument("--text", default=None, metavar="FILE", help="the text to read (default: the validation split)")
    p.add_argument("--start", type=_whole, default=0, metavar="N",
                   help="without --text: first character of the validation slice [0]")
    p.add_argument("--length", type=_whole, default=DEFAULT_SLICE, metavar="N",
                   help=f"without --text: characters of the validation slice [{DEFAULT_SLICE}]")
    p.add_argument("--out", default="inside.html", metavar="FILE", help="the HTML file to write [inside.html]")
    p.add_argument("--unit", default=None, metavar="KIND:J",
                   help="the unit shown first, e.g. L0.h:12 or L1.c:3 (default: L0.h:0)")
    p.add_argument("--max-chars", type=_whole, default=MAX_CHARS, metavar="N",
                   help=f"characters drawn in the view (statistics use the whole text) [{MAX_CHARS}]")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the analysis as JSON (charnn.inside/1)")
    p.set_defaults(func=_cmd_inspect)


def _cmd_eval(args: argparse.Namespace) -> int:
    from .apps import evaluate
    from .eval import cache as neural_cache
    from .train import checkpoint

    cache = None
    if args.cache is not None:
        if args.cache < 1:
            raise CLIError(f"--cache must be >= 1 (a window of that many characters), got {args.cache}")
        theta = neural_cache.DEFAULT_THETA if args.cache_theta is None else args.cache_theta
        lam = neural_cache.DEFAULT_LAMBDA if args.cache_lambda is None else args.cache_lambda
        if not (math.isfinite(theta) and theta >= 0):
            raise CLIError(f"--cache-theta must be a finite number >= 0, got {theta}")
        if not 0.0 <= lam <= 1.0:
            raise CLIError(f"--cache-lambda must be in [0, 1], got {lam}")
        cache = evaluate.CacheSpec(args.cache, theta, lam)
    elif args.cache_theta is not None or args.cache_lambda is not None:
        raise CLIError("--cache-theta and --cache-lambda need --cache K")
    from .nn import budget

    path = checkpoint.resolve(args.checkpoint)
    _budget_checkpoint(path, f"evaluating {path}", budget.reading_bytes, "free memory, or use a machine with more")
    ckpt = checkpoint.load(path)
    if args.encoding is not None and args.data is None:
        raise CLIError("--encoding decodes the text given with --data (the run's own corpus keeps its encoding)")
    res = evaluate.evaluate_checkpoint(ckpt, args.data, cache=cache, split=args.split, encoding=args.encoding)
    if args.json:
        print(json.dumps({**res.to_dict(), "checkpoint": str(path), "step": ckpt.step, "epoch": ckpt.epoch}))
    else:
        print(f"checkpoint: {path} (step {ckpt.step}, epoch {ckpt.epoch})")
        print(res.format())
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from .eval.cache import DEFAULT_LAMBDA, DEFAULT_SIZE, DEFAULT_THETA

    p = sub.add_parser("eval", help="loss of a checkpoint on the validation or test split or a given text",
                       description="Mean loss over the whole validation split (or --split test) of the run's corpus (or over "
                                   "the text at --data), hidden state carried through it: nats/char, bits/char, "
                                   "perplexity, next to the uniform (ln K, K the vocabulary size) and unigram baselines.")
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR")
    p.add_argument("--data", default=None, metavar="PATH", help="evaluate on this text file (or folder) instead")
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="which split of the run's corpus: val, or test (runs trained with --test-fraction) [val]")
    p.add_argument("--encoding", default=None, metavar="TEXT",
                   help="text encoding of the --data files, e.g. utf-16 (default: the run's)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (nats_per_char, bits_per_char, perplexity, chars, ...)")
    p.add_argument("--cache", type=_whole, default=None, metavar="K",
                   help="also report the model plus a continuous cache of its last K states "
                        f"(charnn.eval.cache; a different model, reported next to the plain loss; e.g. {DEFAULT_SIZE})")
    p.add_argument("--cache-theta", type=_finite_float, default=None, metavar="X",
                   help=f"sharpness of the cache lookup (on cosine similarity) [{DEFAULT_THETA:g}]")
    p.add_argument("--cache-lambda", type=_finite_float, default=None, metavar="X",
                   help=f"weight of the cache in the mixture, in [0, 1] [{DEFAULT_LAMBDA:g}]")
    p.set_defaults(func=_cmd_eval)


def _cmd_info(args: argparse.Namespace) -> int:
    from .train import checkpoint

    path = checkpoint.resolve(args.checkpoint)
    ckpt = checkpoint.load(path)
    cfg = ckpt.config
    best = "none yet" if ckpt.best_val_loss is None else f"{ckpt.best_val_loss:.4f} nats/char"
    sizes = ", ".join(f"{k} {'×'.join(map(str, p.shape))}" for k, p in ckpt.params.items())
    info = {"checkpoint": str(path), "format_version": ckpt.format_version, "step": ckpt.step,
            "epoch": ckpt.epoch, "batch_index": ckpt.batch_index, "chars_seen": ckpt.chars_seen,
            "best_val_loss": ckpt.best_val_loss, "vocab_size": len(ckpt.vocab), "num_params": ckpt.num_params,
            "wall_s": ckpt.wall_s, "corpus": ckpt.corpus, "config": cfg.to_dict()}
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"checkpoint: {path} (format {ckpt.format_version})")
    print(f"step {ckpt.step:,}, epoch {ckpt.epoch} of {cfg.epochs}, next batch {ckpt.batch_index}, "
          f"{ckpt.chars_seen:,} chars seen, {ckpt.wall_s:.0f} s of training")
    print(f"best val loss: {best}")
    print(f"vocabulary: {len(ckpt.vocab)} characters")
    print(f"parameters: {ckpt.num_params:,} ({sizes})")
    if ckpt.corpus:
        print(f"corpus: {ckpt.corpus.get('path') or 'embedded Tiny Shakespeare'}, "
              f"{ckpt.corpus.get('chars', 0):,} chars, sha256 {str(ckpt.corpus.get('sha256', ''))[:16]}…")
    print("config:")
    print("\n".join("  " + line for line in cfg.to_toml().splitlines()))
    return 0


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="what a checkpoint holds: config, vocabulary, step, best val loss, size",
                       description="Print a checkpoint's config, vocabulary size, step, epoch, best val loss "
                                   "and parameter count. A run folder means its best checkpoint.")
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_info)


# --------------------------------------------------------------------------------------------
# serve (the web app)

def _cmd_serve(args: argparse.Namespace) -> int:
    import socket

    import uvicorn

    from .web.app import create_app

    from .train import checkpoint

    for p in args.paths:   # each must be a folder (of runs, or a run) or a checkpoint, checked before serving
        try:
            info = os.stat(p)
        except FileNotFoundError:
            raise CLIError(f"not found: {p} (give run folders, checkpoints or folders of runs)") from None
        except (OSError, ValueError) as exc:
            raise CLIError(f"{p}: {getattr(exc, 'strerror', None) or exc} (give run folders, checkpoints or "
                           f"folders of runs)") from None
        if stat.S_ISREG(info.st_mode):
            checkpoint.peek(Path(p))          # a damaged or foreign file: CheckpointError, one line
        elif not stat.S_ISDIR(info.st_mode):
            raise CLIError(f"{p}: not a folder or a checkpoint file (give run folders, checkpoints or folders of runs)")
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be in 0..65535, got {args.port}")
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:   # bound here, so a taken port is one line and --port 0 prints the port it got
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        raise CLIError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    port = sock.getsockname()[1]
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"charnn: warning: serving on {args.host}: other machines can reach it", file=sys.stderr)
    host = f"[{args.host}]" if ":" in args.host else args.host
    server = uvicorn.Server(uvicorn.Config(create_app(args.paths), log_level="warning", access_log=False))
    print(f"charnn serve: http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    server.run(sockets=[sock])
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="a local web app: write with a model, look inside it, watch runs train",
                       description="Serve three pages (Write, Inside, Train) and their JSON API (/openapi.json) "
                                   "over the given run folders, checkpoints and folders of run folders (a run "
                                   "started under one later appears while it trains). Only these are served; "
                                   "models are named by id, never by path.")
    p.add_argument("paths", nargs="+", metavar="RUN_DIR_OR_CHECKPOINT")
    p.add_argument("--host", default="127.0.0.1", help="address to bind; anything but loopback is reachable "
                   "from other machines [127.0.0.1]")
    p.add_argument("--port", type=_whole, default=8000, metavar="N", help="TCP port; 0 = any free one [8000]")
    p.set_defaults(func=_cmd_serve)


# --------------------------------------------------------------------------------------------
# experiment / reproduce (the seed's experiments and the report)

def _experiment_settings(args: argparse.Namespace) -> Any:
    from .reproduce import experiments

    return experiments.settings_for(args.quick, hidden_size=args.hidden_size, epochs=args.epochs,
                                    max_steps=args.max_steps, seed=args.seed, prompt=args.prompt,
                                    cell=args.cell, layers=args.layers, dropout=args.dropout)


def _run_experiments(names: Sequence[str], args: argparse.Namespace) -> int:
    from .reproduce import experiments, report

    from .nn import budget

    settings = _experiment_settings(args)
    # before any folder is made: the largest training run (the overfit run trains overfit_pairs streams)
    # at a vocabulary of 256 (byte text; the trainer checks again with the corpus's own)
    need = max(budget.training_bytes(vocab_size=256, hidden_size=H, batch_size=B, max_len=settings.max_len,
                                     cell=settings.cell, layers=settings.layers)
               for H, B in ((settings.hidden_size, settings.batch_size),
                            (settings.overfit_hidden_size, settings.overfit_pairs)))
    budget.check(need, f"training the experiments' models (hidden size {settings.hidden_size})",
                 "use a smaller --hidden-size or --layers")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder: choose another --out")
    print(f"charnn: {', '.join(names)} with {settings.name} settings into {out}/", flush=True)
    try:
        experiments.run(names, out, data=args.data, settings=settings, encoding=args.encoding or "utf-8",
                        checkpoint_path=getattr(args, "checkpoint", None), progress=not args.no_progress)
    except experiments.ExperimentError as exc:
        raise CLIError(str(exc)) from None
    md, page = report.build(out)
    for name, res in report.load_results(out).items():
        if name in names:
            for c in res.get("claims", []):
                print(f"[{c['verdict']}] {c['claim']}: {c['measured']}")
    print(f"report: {md} and {page}")
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    return _run_experiments([args.name], args)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import experiments

    return _run_experiments(list(experiments.NAMES), args)


def _experiment_flags(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--data", metavar="PATH", help="corpus: a text file or a folder of .txt files "
                                                  "(default: embedded Tiny Shakespeare)")
    p.add_argument("--out", metavar="DIR", default=default_out,
                   help=f"folder for the experiment folders, plots and report.md/report.html [{default_out}]")
    p.add_argument("--quick", action="store_true",
                   help="small settings (hidden 64, 200k characters, 1 epoch): a whole reproduction in under 2 minutes")
    p.add_argument("--hidden-size", type=_positive_int, help="override the hidden size of the settings")
    p.add_argument("--epochs", type=_positive_int, help="override the epochs of each training run")
    p.add_argument("--max-steps", type=_positive_int, help="cap every training run at this many steps")
    p.add_argument("--seed", type=_seed, help="seed of weights and samples [42]")
    p.add_argument("--prompt", help="prompt of the samples [ROMEO:]")
    for flag, field, typ, help_ in _TRAIN_FLAGS:   # the model flags exactly as `charnn train` has them
        if field in ("cell", "layers", "dropout", "encoding"):
            _add_train_flag(p, flag, field, typ, help_)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_experiment(sub: argparse._SubParsersAction) -> None:
    from .reproduce import NAMES

    p = sub.add_parser("experiment", help="run one of the seed's experiments and (re)build the report",
                       description="Run one experiment into DIR/NAME/ (results.json, runs, curves), then rebuild "
                                   "DIR/report.md and DIR/report.html from every experiment found in DIR. "
                                   "temperature and analyze use --checkpoint, else the best run of the "
                                   "optimizers/lr experiments in DIR, else train a model first.")
    p.add_argument("name", choices=NAMES, metavar="{" + ",".join(NAMES) + "}")
    _experiment_flags(p, "runs/experiments")
    p.add_argument("--checkpoint", metavar="CHECKPOINT_OR_RUN_DIR",
                   help="model for temperature / analyze (its own cell and size apply)")
    p.set_defaults(func=_cmd_experiment)


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="run all five experiments and write report.md and report.html",
                       description="Regenerate the seed's experiments (overfit, optimizers, lr, temperature, "
                                   "analyze) and write DIR/report.md and a self-contained DIR/report.html with "
                                   "plots, tables, samples and the seed's claims with verdicts. Default settings "
                                   "finish in under 15 minutes on 2 CPU cores, --quick in under 2.")
    _experiment_flags(p, "runs/reproduce")
    p.set_defaults(func=_cmd_reproduce)


# --------------------------------------------------------------------------------------------
# sweep / sweep-report (hyperparameter search on Optuna, docs/sweep.md)

def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import load_space
    from .sweep.study import SweepSpec, run_worker
    from .train.config import Config

    base = _load_toml(args.config) if args.config is not None else {}
    if args.data is not None:
        base["data"] = args.data
    if isinstance(base.get("data"), str) and base["data"]:
        base["data"] = str(Path(base["data"]).resolve())   # every worker and trial finds the corpus
    base = Config.from_dict(base, strict=True).to_dict()
    dims = load_space(args.space, base)
    if not (math.isfinite(args.max_minutes) and args.max_minutes >= 0):
        raise CLIError(f"--max-minutes must be a number >= 0 (0 = no limit), got {args.max_minutes}")
    out = Path(args.out)
    study = args.study or out.resolve().name
    if args.pruner != "none" and base["eval_every"] == 0:
        print("charnn: note: eval_every is 0, so trials are evaluated (and can be pruned) only at epoch ends; "
              "set eval_every in --config to prune earlier", file=sys.stderr)
    print(f"charnn: sweep study {study!r}, {args.trials} trials in all, into {out}/; searching "
          + "; ".join(d.describe() for d in dims), flush=True)
    spec = SweepSpec(dims=dims, base=base, out=out, trials=args.trials, study=study, storage=args.storage,
                     pruner=args.pruner, startup_trials=args.startup_trials, max_minutes=args.max_minutes,
                     seed=args.seed)
    try:
        rep = run_worker(spec, progress=not args.no_progress)
    except KeyboardInterrupt:
        print("charnn: interrupted again: stopped at once (a trial in progress was recorded as failed)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    states: dict[str, int] = {}
    for o in rep.outcomes:
        states[o.state.lower()] = states.get(o.state.lower(), 0) + 1
    ran = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"
    best = ("no completed trial yet" if rep.best is None else
            f"best: trial {rep.best.number}, val {rep.best.value:.4f} nats/char, {rep.best.user_attrs.get('run_dir')}")
    print(f"charnn: this worker ran {len(rep.outcomes)} trial(s) ({ran}); the study holds {rep.study_trials} "
          f"of {args.trials}; {best}")
    if rep.stopped_by is not None:
        print(f"charnn: stopped by {rep.stopped_by}; the other workers go on, and running this command again "
              f"continues the study", file=sys.stderr)
        return 128 + int(getattr(signal, rep.stopped_by, signal.SIGINT))
    where = str(out) if args.storage is None else f"--storage URL --study {study}"
    print(f"report: charnn sweep-report {where} --out {out / 'report'}")
    return 0


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    from .sweep.study import PRUNERS

    p = sub.add_parser("sweep", help="hyperparameter search on Optuna: one worker of a shared study",
                       description="Search training fields over the ranges and choices of SPACE.toml with "
                                   "Optuna (TPE sampler), each trial an ordinary run folder OUT/trial-NNNN/. "
                                   "Validation losses are reported to the study at every evaluation so the "
                                   "pruner stops poor trials early. Start the same command several times (on "
                                   "one machine with the default journal file, on many with a postgresql:// "
                                   "--storage) and the workers share one study of N trials in all.")
    p.add_argument("--space", required=True, metavar="SPACE.toml",
                   help="the search space: a [field] table per training field with low/high (log, step) or choices")
    p.add_argument("--trials", required=True, type=_whole, metavar="N",
                   help="trials in the study in all, over every worker (complete, pruned or failed)")
    p.add_argument("--config", metavar="BASE.toml", help="the fixed training fields (as charnn train --config)")
    p.add_argument("--data", metavar="PATH", help="corpus of every trial (default: the config's, else Tiny Shakespeare)")
    p.add_argument("--out", metavar="DIR", default="runs/sweep",
                   help="sweep folder: trial-NNNN/ run folders, sweep.json and the journal file [runs/sweep]")
    p.add_argument("--storage", metavar="URL", default=None,
                   help="postgresql://user@host:port/database to share the study across machines "
                        "(default: the journal file DIR/study.journal)")
    p.add_argument("--study", metavar="NAME", default=None, help="study name (default: the name of the --out folder)")
    p.add_argument("--pruner", choices=PRUNERS, default="median",
                   help="median: stop a trial worse than the median of earlier trials at the same step; "
                        "hyperband: successive halving over training steps; none [median]")
    p.add_argument("--startup-trials", type=_whole, default=3, metavar="N",
                   help="median pruner: trials that complete before it starts pruning [3]")
    p.add_argument("--max-minutes", type=_finite_float, default=0.0, metavar="M",
                   help="this worker starts no trial after M minutes (the one in progress finishes); 0 = no limit [0]")
    p.add_argument("--seed", type=_whole, default=None, metavar="S",
                   help="seed of the sampler (reproducible with one worker; default: random)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep_report(args: argparse.Namespace) -> int:
    from .sweep import storage as sweep_storage
    from .sweep.report import build
    from .sweep.study import SWEEP_FILE, open_study

    if (args.sweep_dir is None) == (args.storage is None):
        raise CLIError("give a sweep folder, or --storage URL --study NAME (not both)")
    if args.sweep_dir is not None:
        folder = Path(args.sweep_dir)
        try:
            held = json.loads((folder / SWEEP_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CLIError(f"{folder} is not a sweep folder (no {SWEEP_FILE})") from None
        except (OSError, ValueError) as exc:
            raise CLIError(f"cannot read {folder / SWEEP_FILE}: {exc}") from None
        if not isinstance(held, dict) or held.get("storage") != sweep_storage.JOURNAL:
            where = held.get("storage") if isinstance(held, dict) else "a database"
            raise CLIError(f"the study of {folder} lives in {where}: give --storage URL --study NAME instead")
        study_name = args.study or str(held.get("study"))
        store = sweep_storage.open_store(None, folder)
        out = Path(args.out) if args.out is not None else folder / "report"
    else:
        if args.study is None or args.out is None:
            raise CLIError("--storage needs --study NAME and --out DIR")
        study_name, store, out = args.study, sweep_storage.open_store(args.storage, None), Path(args.out)
    study = open_study(store, study_name, create=False)
    rep = build(study, out, top=args.top)
    print(f"best: trial {rep.best_number}, val {rep.best_value:.4f} nats/char")
    for note in rep.notes:
        print(f"note: {note}")
    print(f"report: {out / rep.written[0]} ({', '.join(rep.written[1:])})")
    return 0


def _add_sweep_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep-report", help="report of a sweep: best trials, Optuna's plots, the best config as a preset",
                       description="Write report.md (best trials table, failures, importances), history.png, "
                                   "importances.png, parallel_coordinates.png (Optuna's plots) and best.toml, "
                                   "the best trial's configuration for charnn train --config.")
    p.add_argument("sweep_dir", nargs="?", default=None, metavar="SWEEP_DIR",
                   help="the sweep's --out folder (its journal file holds the study)")
    p.add_argument("--storage", metavar="URL", default=None, help="instead of SWEEP_DIR: the study's postgresql:// URL")
    p.add_argument("--study", metavar="NAME", default=None, help="study name (default: the sweep folder's)")
    p.add_argument("--out", metavar="DIR", default=None, help="report folder (default: SWEEP_DIR/report)")
    p.add_argument("--top", type=_positive_int, default=10, metavar="K", help="rows of the best-trials table [10]")
    p.set_defaults(func=_cmd_sweep_report)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse's default prints usage too)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_train, _add_sample, _add_eval, _add_info, _add_inspect, _add_gradcheck, _add_serve,
    _add_experiment, _add_reproduce, _add_gradflow, _add_sweep, _add_sweep_report]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="charnn", description="Character-level RNN language models, from scratch in NumPy.")
    parser.add_argument("--version", action="version", version=f"charnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _user_errors() as exc:
        _err(f"charnn: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:   # Ctrl-C, e.g. during a long sample: end the line, say so, exit 130
        try:
            sys.stdout.write("\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        print("charnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:   # output piped into e.g. `head`, which closed early: not an error
        try:   # point stdout at /dev/null so the interpreter's final flush cannot fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except OSError as exc:   # a path the system refuses: a name too long, a file where a folder must be, EIO
        where = f" {exc.filename}" if exc.filename else ""
        print(f"charnn: error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
