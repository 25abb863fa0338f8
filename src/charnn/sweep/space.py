"""The search space of a sweep: for some training fields, a range or a list of choices.

A space file is TOML with one table per `charnn.train.config.Config` field:

    [lr]                      a float range, sampled log-uniformly:  lr ~ exp(U(ln low, ln high))
    low = 1e-4
    high = 3e-2
    log = true
    [hidden_size]             a list of choices, one drawn per trial
    choices = [64, 128, 256]
    [layers]                  an int range (a whole-number field), optionally with a step
    low = 1
    high = 3

Fields not named keep the value of the base configuration. Everything is checked before the first
trial: unknown fields and keys, low > high, a log range that reaches 0, and every bound or choice
against the field's own rules (through Config), so a sweep never starts on a space it cannot run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from ..train.config import Config, ConfigError, read_toml

RANGE_KEYS = frozenset({"low", "high", "log", "step"})
_FIELD_TYPES = {f.name: str(f.type) for f in fields(Config)}
# A field a sweep does not vary: the corpus is the sweep's own (--data); trials compare on one text.
FIXED = frozenset({"data"})


class SpaceError(ValueError):
    """The space file cannot be used (a user error: one line, exit status 2)."""


@dataclass(frozen=True)
class Dimension:
    """One searched field: a range [low, high] (int or float, optionally log or stepped) or choices."""

    name: str
    kind: str                          # "float" | "int" | "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """Draw this field's value for an Optuna trial."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.name} in {list(self.choices)}"
        how = " (log)" if self.log else (f" (step {self.step:g})" if self.step else "")
        return f"{self.name} in [{self.low:g}, {self.high:g}]{how}"


def load_space(path: str | Path, base: Mapping[str, Any]) -> list[Dimension]:
    """Read and check a space file against the base configuration `base` (a Config dict)."""
    raw = read_toml(path, "space file", SpaceError)
    return parse_space(raw, base, where=str(path))


def parse_space(raw: Mapping[str, Any], base: Mapping[str, Any], where: str = "space") -> list[Dimension]:
    """The dimensions of a parsed space file, each bound and choice checked against Config."""
    if not raw:
        raise SpaceError(f"{where}: no fields to search (give a [field] table with low/high or choices)")
    dims = []
    for key, spec in raw.items():
        name = key.replace("-", "_")
        if name not in _FIELD_TYPES:
            raise SpaceError(f"{where}: unknown training field [{key}] (known: {', '.join(_FIELD_TYPES)})")
        if name in FIXED:
            raise SpaceError(f"{where}: [{key}] cannot be searched (the corpus is the sweep's --data)")
        if not isinstance(spec, dict):
            raise SpaceError(f"{where}: {key} must be a table ([{key}] with low/high or choices), got {spec!r}")
        dim = _dimension(name, spec, f"{where}: [{key}]")
        _check_against_config(dim, base, f"{where}: [{key}]")
        dims.append(dim)
    return dims


def _number(value: Any, want: str, what: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpaceError(f"{what} must be a finite number, got {value!r}")
    if want == "int" and not (isinstance(value, int) or value.is_integer()):
        raise SpaceError(f"{what} must be a whole number (the field is an int), got {value!r}")
    return int(value) if want == "int" else float(value)


def _dimension(name: str, spec: Mapping[str, Any], where: str) -> Dimension:
    ftype = _FIELD_TYPES[name]
    if "choices" in spec:
        extra = sorted(set(spec) - {"choices"})
        if extra:
            raise SpaceError(f"{where}: choices cannot be combined with {', '.join(extra)}")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}: choices must be a non-empty list, got {choices!r}")
        if len(set(map(repr, choices))) != len(choices):
            raise SpaceError(f"{where}: choices repeat a value: {choices!r}")
        for c in choices:
            if not isinstance(c, (bool, int, float, str)):
                raise SpaceError(f"{where}: a choice must be a number, a string or true/false, got {c!r}")
        return Dimension(name, "choice", choices=tuple(choices))
    unknown = sorted(set(spec) - RANGE_KEYS)
    if unknown:
        raise SpaceError(f"{where}: unknown key(s) {', '.join(unknown)} (a range has low, high, log, step; "
                         f"or give choices)")
    if "low" not in spec or "high" not in spec:
        raise SpaceError(f"{where}: give both low and high (or a list of choices)")
    if ftype not in ("int", "float"):
        raise SpaceError(f"{where}: {name} is a {ftype} field: give a list of choices, not a range")
    low = _number(spec["low"], ftype, f"{where} low")
    high = _number(spec["high"], ftype, f"{where} high")
    if low > high:
        raise SpaceError(f"{where}: low ({low:g}) is above high ({high:g})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise SpaceError(f"{where}: a log range needs low > 0, got {low:g}")
    step = spec.get("step")
    if step is not None:
        step = _number(step, ftype, f"{where} step")
        if step <= 0:
            raise SpaceError(f"{where}: step must be > 0, got {step:g}")
        if log:
            raise SpaceError(f"{where}: a range is either log or stepped, not both")
    return Dimension(name, ftype, low=low, high=high, log=log, step=step)


def _check_against_config(dim: Dimension, base: Mapping[str, Any], where: str) -> None:
    """Each end of a range and each choice must make a valid Config with the base's other fields."""
    values = dim.choices if dim.kind == "choice" else (dim.low, dim.high)
    for v in values:
        try:
            Config.from_dict({**base, dim.name: v}, strict=True)
        except ConfigError as exc:
            raise SpaceError(f"{where}: {v!r} is not a usable value: {exc}") from None


def suggest_config(trial: Any, dims: list[Dimension], base: Mapping[str, Any]) -> Config:
    """The trial's configuration: the base with each dimension's drawn value.

    Raises ConfigError when the drawn values do not go together (e.g. min_lr above a drawn lr).
    """
    drawn = {d.name: d.suggest(trial) for d in dims}
    return Config.from_dict({**base, **drawn}, strict=True)
