"""The `charnn` command line: thin argument parsing over the library.

Every user error becomes one line on stderr and exit status 2 (never a traceback).
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

import numpy as np

EXIT_USAGE = 2


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _cmd_gradcheck(args: argparse.Namespace) -> int:
    from . import gradcheck, model

    rng = np.random.default_rng(args.seed)
    params = model.init_params(args.vocab_size, args.hidden_size, seed=args.seed, dtype=np.float64)
    inputs = rng.integers(0, args.vocab_size, size=(args.batch_size, args.max_len))
    targets = rng.integers(0, args.vocab_size, size=(args.batch_size, args.max_len))
    h0 = rng.uniform(-0.5, 0.5, size=(args.batch_size, args.hidden_size))
    max_checks = None if args.all else args.checks
    rows = gradcheck.gradcheck(params, inputs, targets, h0, max_checks=max_checks, seed=args.seed)
    print(f"gradient check (float64, vocab {args.vocab_size}, hidden {args.hidden_size}, "
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


def _add_gradcheck(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradcheck", help="check the hand-written gradients against finite differences",
                       description="Finite-difference check (float64) of every parameter's gradient and of dL/dh0.")
    p.add_argument("--vocab-size", type=_positive_int, default=11)
    p.add_argument("--hidden-size", type=_positive_int, default=16)
    p.add_argument("--batch-size", type=_positive_int, default=3)
    p.add_argument("--max-len", type=_positive_int, default=12)
    p.add_argument("--checks", type=_positive_int, default=60, help="elements checked per parameter (random)")
    p.add_argument("--all", action="store_true", help="check every element")
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=_cmd_gradcheck)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse's default prints usage too)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_gradcheck]


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
    except CLIError as exc:
        print(f"charnn: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
