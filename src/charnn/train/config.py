"""The one configuration object of a run.

Its fields mirror the seed document's ``CFG`` class (MAX_LEN, GRAD_MIN/GRAD_MAX, HIDDEN_SIZE, LR,
TRAIN_SIZE_FRACTION, EPOCHS, TEMPERATURE, SEED, BETA1, BETA2, EPS) with the seed's values as
defaults, plus the few knobs a real tool needs (batch size, optimizer, dtype, ...).
It is frozen: a run's configuration never changes after it starts; `replace` makes a new one.
"""
from __future__ import annotations

import codecs
import dataclasses
import json
import math
import os
import stat
from dataclasses import dataclass, fields
from typing import Any, Mapping


class ConfigError(ValueError):
    """A configuration value is out of range or of the wrong kind (a user error, not a bug)."""


@dataclass(frozen=True)
class Config:
    # --- the seed's CFG -------------------------------------------------------------------
    data: str = ""                  # CFG.PATH; "" means the embedded Tiny Shakespeare corpus
    max_len: int = 100              # CFG.MAX_LEN: characters per training sequence (BPTT length)
    grad_clip: float = 5.0          # CFG.GRAD_MIN/GRAD_MAX = -5/5: clip each gradient element to ±grad_clip
    hidden_size: int = 256          # CFG.HIDDEN_SIZE
    lr: float = 5e-3                # CFG.LR
    train_fraction: float = 0.9     # CFG.TRAIN_SIZE_FRACTION
    epochs: int = 5                 # CFG.EPOCHS
    temperature: float = 1.5        # CFG.TEMPERATURE (for the samples printed while training)
    seed: int = 42                  # CFG.SEED
    beta1: float = 0.9              # CFG.BETA1 (Adam)
    beta2: float = 0.999            # CFG.BETA2 (Adam)
    eps: float = 1e-8               # CFG.EPS (Adam)
    # --- beyond the seed ------------------------------------------------------------------
    batch_size: int = 32            # parallel streams; 1 reproduces the seed exactly
    optimizer: str = "adam"         # "adam" | "sgd"
    momentum: float = 0.0           # SGD momentum (0 = plain SGD)
    clip_norm: float = 0.0          # optional global-norm clipping after value clipping; 0 = off
    carry_state: bool = True        # truncated BPTT: carry h across consecutive chunks of a stream
    random_offset: bool = False     # each epoch starts the B streams at a random rotation of the training text
    dtype: str = "float32"          # "float32" | "float64"
    prompt: str = "ROMEO:"          # prompt of the samples printed while training
    sample_length: int = 300        # characters generated for each of those samples
    max_steps: int = 0              # stop after this many optimizer steps in total; 0 = no limit
    max_minutes: float = 0.0        # stop after this many minutes of training steps (validation, samples and
                                    # checkpoint writes not counted); 0 = no limit. A cosine schedule then
                                    # decays over these minutes instead of over the steps (charnn.train.schedule)
    min_steps: int = 0              # with max_minutes: the hidden size is the largest multiple of 64 up to
                                    # hidden_size whose step, timed on this machine at the start, leaves room for
                                    # this many steps in the budget (charnn.train.sizing); 0 = hidden_size as given
    reg_exposure: float = 0.0       # with min_steps: the exposure x = (P / N)·E (parameters per training character
                                    # times the epochs the budget reads) that dropout, weight_drop and weight_decay
                                    # are set for; a run whose budget gives less has them scaled by
                                    # x / reg_exposure (charnn.train.sizing); 0 = as given
    reg_ramp: float = 0.0           # dropout, weight_drop and weight_decay rise linearly from 0 to their value over
                                    # this share of the run (of the budget's minutes with max_minutes, else of the
                                    # steps), so the early steps learn unregularised; 0 = full strength throughout
    eval_every: int = 0             # validation every N steps (besides each epoch end); 0 = only at epoch ends
    log_every: int = 10             # write a metrics.jsonl line every N steps
    device: str = "cpu"             # "cpu" | "cuda"
    # --- cells, layers, dropout, schedules (docs/cells.md) --------------------------------------
    cell: str = "rnn"               # "rnn" (the seed's tanh cell) | "lstm" | "gru"
    layers: int = 1                 # stacked recurrent layers
    embed: int = 0                  # input embedding width D (torch-rnn's wordvec_size); 0 = one-hot input
    dropout: float = 0.0            # inverted dropout between layers and before the output layer (training only)
    locked_dropout: bool = False    # one dropout mask per sequence, shared by its T steps (variational dropout)
    weight_drop: float = 0.0        # DropConnect on the recurrent weights W, one mask per batch (training only)
    weight_decay: float = 0.0       # Adam only: decoupled weight decay of the weight matrices (AdamW); 0 = off
    lr_schedule: str = "constant"   # "constant" | "step" (× lr_decay every lr_decay_every epochs) | "cosine"
    warmup_steps: int = 0           # linear warm-up of the learning rate over the first N steps
    lr_decay: float = 0.97          # step schedule: factor per decay (char-rnn's default)
    lr_decay_every: float = 1.0     # step schedule: epochs between decays
    lr_decay_after: float = 0.0     # step schedule: epochs before the first decay
    min_lr: float = 0.0             # cosine schedule: the rate it decays to at the last step
    eval_streams: int = 1           # validation reads the split as N parallel streams (1 = exact, batch 1)
    calibration_fraction: float = 0.0  # share of the text, at the start of the training split, held out of
                                    # training to fit the output temperature on (charnn.eval.calibrate); 0 = off
    val_fraction: float = 0.0       # share of the corpus that validates, just before the test split; 0 = all of
                                    # the text between the first train_fraction and the test split (the seed's 10%)
    test_fraction: float = 0.0      # share of the corpus, at its end, held out for `charnn eval --split test` only:
                                    # nothing in training reads it; 0 = no test split
    # --- how the corpus is read ---------------------------------------------------------------
    encoding: str = "utf-8"         # text encoding of the corpus files
    byte_level: bool = False        # --bytes: model raw bytes (vocabulary <= 256), ignoring encoding
    max_vocab: int = 10_000         # refuse corpora with more distinct characters (binary data?)
    # --- fine-tuning (docs/finetune.md) ---------------------------------------------------------
    init_from: str = ""             # start from this checkpoint's weights and vocabulary; "" = a fresh init
    extend_vocab: bool = False      # with init_from: add the corpus's new characters as new rows

    def __post_init__(self) -> None:
        _derive_train_fraction(self)
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, strict: bool = True) -> "Config":
        """Build a Config from a mapping; unknown keys are an error when `strict`."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown and strict:
            raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)} "
                              f"(known: {', '.join(known)})")
        kwargs = {}
        for k, v in d.items():
            if k not in known:
                continue
            kwargs[k] = _coerce(k, v, known[k].type)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_toml(self) -> str:
        """The config as TOML `key = value` lines: what `--config FILE.toml` reads back."""
        lines = []
        for k, v in self.to_dict().items():
            if isinstance(v, bool):
                text = "true" if v else "false"
            elif isinstance(v, str):
                # a JSON string is a TOML basic string once DEL is escaped too (TOML forbids it raw)
                text = json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
            else:
                text = repr(v)
            lines.append(f"{k} = {text}")
        return "\n".join(lines)


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _coerce(name: str, value: Any, type_name: Any) -> Any:
    want = _TYPES.get(str(type_name), None)
    if want is None:
        return value
    if want is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{name}' must be true or false, got {value!r}")
    if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if want is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if want is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if want is str and isinstance(value, str):
        return value
    raise ConfigError(f"config key '{name}' must be {want.__name__}, got {value!r}")


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")


def _non_negative(name: str, value: Any, zero_means: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a number >= 0 (0 = {zero_means}), got {value!r}")


def _derive_train_fraction(cfg: Config) -> None:
    """With a validation share given, training takes the rest: train_fraction = 1 − val − test (so the
    recorded config says what trained)."""
    v, t = cfg.val_fraction, cfg.test_fraction
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (v, t)) and v > 0:
        object.__setattr__(cfg, "train_fraction", float(1.0 - v - t))


def _validate_splits(cfg: Config) -> None:
    """train | val | test: each share in range, the three summing to 1."""
    for name in ("val_fraction", "test_fraction"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and 0.0 <= v < 1.0):
            raise ConfigError(f"{name.replace('_', '-')} must be in [0, 1), got {v!r}")
    if not (math.isfinite(cfg.train_fraction) and 0.0 < cfg.train_fraction < 1.0):
        raise ConfigError(f"train-fraction must be strictly between 0 and 1, got {cfg.train_fraction!r}"
                          + (" (training takes what val-fraction and test-fraction leave)" if cfg.val_fraction else ""))
    if cfg.val_fraction == 0 and cfg.train_fraction + cfg.test_fraction >= 1.0:
        raise ConfigError(f"train-fraction {cfg.train_fraction:g} and test-fraction {cfg.test_fraction:g} leave no "
                          f"validation text: give --val-fraction (training then takes the rest) or a smaller "
                          f"--train-fraction")


def validate(cfg: Config) -> None:
    """Raise ConfigError with a one-line message for the first out-of-range field."""
    for name in ("max_len", "hidden_size", "batch_size", "epochs", "log_every"):
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{name.replace('_', '-')} must be a whole number >= 1, got {v!r}")
    for name in ("lr", "grad_clip", "temperature", "eps"):
        _positive(name.replace("_", "-"), getattr(cfg, name))
    _validate_splits(cfg)
    for name in ("beta1", "beta2"):
        v = getattr(cfg, name)
        if not (math.isfinite(v) and 0.0 <= v < 1.0):
            raise ConfigError(f"{name} must be in [0, 1), got {v!r}")
    if not (math.isfinite(cfg.momentum) and 0.0 <= cfg.momentum < 1.0):
        raise ConfigError(f"momentum must be in [0, 1), got {cfg.momentum!r}")
    if not (math.isfinite(cfg.clip_norm) and cfg.clip_norm >= 0.0):
        raise ConfigError(f"clip-norm must be >= 0 (0 = off), got {cfg.clip_norm!r}")
    if cfg.optimizer not in ("adam", "sgd"):
        raise ConfigError(f"unknown optimizer {cfg.optimizer!r}: choose adam or sgd")
    if cfg.dtype not in ("float32", "float64"):
        raise ConfigError(f"unknown dtype {cfg.dtype!r}: choose float32 or float64")
    if cfg.device not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {cfg.device!r}: choose cpu or cuda")
    for name in ("seed", "max_steps", "min_steps", "eval_every", "sample_length"):
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"{name.replace('_', '-')} must be a whole number >= 0, got {v!r}")
    _non_negative("max-minutes", cfg.max_minutes, "no limit")
    _non_negative("reg-exposure", cfg.reg_exposure, "the regularisers as given")
    if not (isinstance(cfg.reg_ramp, (int, float)) and not isinstance(cfg.reg_ramp, bool)
            and math.isfinite(cfg.reg_ramp) and 0.0 <= cfg.reg_ramp <= 1.0):
        raise ConfigError(f"reg-ramp must be a share of the run in [0, 1] (0 = no ramp), got {cfg.reg_ramp!r}")
    _validate_cells(cfg)
    _validate_reading(cfg)


def _validate_reading(cfg: Config) -> None:
    """The corpus-reading fields."""
    try:
        if not getattr(codecs.lookup(cfg.encoding), "_is_text_encoding", True):   # e.g. base64, rot13
            raise LookupError(cfg.encoding)
    except (LookupError, TypeError, ValueError):
        raise ConfigError(f"unknown text encoding {cfg.encoding!r:.60} (e.g. utf-8, latin-1, utf-16)") from None
    if not isinstance(cfg.init_from, str):
        raise ConfigError(f"init-from must be a checkpoint or run folder path, got {cfg.init_from!r}")
    if not isinstance(cfg.extend_vocab, bool):
        raise ConfigError(f"extend-vocab must be true or false, got {cfg.extend_vocab!r}")
    if cfg.extend_vocab and not cfg.init_from:
        raise ConfigError("extend-vocab needs --init-from (it adds rows to a trained model's vocabulary)")
    if not isinstance(cfg.max_vocab, int) or isinstance(cfg.max_vocab, bool) or cfg.max_vocab < 1:
        raise ConfigError(f"max-vocab must be a whole number >= 1, got {cfg.max_vocab!r}")


def _validate_cells(cfg: Config) -> None:
    """The cell, layer, dropout and schedule fields."""
    if not (isinstance(cfg.embed, int) and not isinstance(cfg.embed, bool) and 0 <= cfg.embed <= 100_000):
        raise ConfigError(f"embed must be a whole number in [0, 100000] (0 = one-hot input), got {cfg.embed!r}")
    if cfg.cell not in ("rnn", "lstm", "gru"):
        raise ConfigError(f"unknown cell {cfg.cell!r}: choose rnn, lstm or gru")
    if cfg.lr_schedule not in ("constant", "step", "cosine"):
        raise ConfigError(f"unknown lr-schedule {cfg.lr_schedule!r}: choose constant, step or cosine")
    for name in ("layers", "eval_streams"):
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{name.replace('_', '-')} must be a whole number >= 1, got {v!r}")
    if not isinstance(cfg.warmup_steps, int) or isinstance(cfg.warmup_steps, bool) or cfg.warmup_steps < 0:
        raise ConfigError(f"warmup-steps must be a whole number >= 0, got {cfg.warmup_steps!r}")
    if not (math.isfinite(cfg.dropout) and 0.0 <= cfg.dropout < 1.0):
        raise ConfigError(f"dropout must be in [0, 1), got {cfg.dropout!r}")
    if not (isinstance(cfg.weight_drop, (int, float)) and not isinstance(cfg.weight_drop, bool)
            and math.isfinite(cfg.weight_drop) and 0.0 <= cfg.weight_drop < 1.0):
        raise ConfigError(f"weight-drop must be in [0, 1), got {cfg.weight_drop!r}")
    cf = cfg.calibration_fraction
    if not (isinstance(cf, (int, float)) and not isinstance(cf, bool) and math.isfinite(cf)
            and 0.0 <= cf < cfg.train_fraction / 2):
        raise ConfigError(f"calibration-fraction must be >= 0 and below half the train-fraction "
                          f"({cfg.train_fraction / 2:g}), got {cf!r}")
    if not isinstance(cfg.random_offset, bool):
        raise ConfigError(f"random-offset must be true or false, got {cfg.random_offset!r}")
    if not isinstance(cfg.locked_dropout, bool):
        raise ConfigError(f"locked-dropout must be true or false, got {cfg.locked_dropout!r}")
    if not (math.isfinite(cfg.weight_decay) and 0.0 <= cfg.weight_decay < 1.0):
        raise ConfigError(f"weight-decay must be in [0, 1), got {cfg.weight_decay!r}")
    if cfg.weight_decay > 0.0 and cfg.optimizer != "adam":
        raise ConfigError("weight-decay needs --optimizer adam (it is AdamW's decoupled decay)")
    if not (math.isfinite(cfg.lr_decay) and 0.0 < cfg.lr_decay <= 1.0):
        raise ConfigError(f"lr-decay must be in (0, 1], got {cfg.lr_decay!r}")
    _positive("lr-decay-every", cfg.lr_decay_every)
    if not (math.isfinite(cfg.lr_decay_after) and cfg.lr_decay_after >= 0.0):
        raise ConfigError(f"lr-decay-after must be >= 0 epochs, got {cfg.lr_decay_after!r}")
    if not (math.isfinite(cfg.min_lr) and 0.0 <= cfg.min_lr <= cfg.lr):
        raise ConfigError(f"min-lr must be between 0 and lr ({cfg.lr!r}), got {cfg.min_lr!r}")


MAX_TOML_BYTES = 1 << 20     # a config or space file is a few hundred bytes


def read_toml(path: str | os.PathLike, what: str, error: type[Exception]) -> dict[str, Any]:
    """The TOML file at `path` as a dict; every failure is `error` with one line naming `what`
    ("config file", "space file") and the path. The file must be regular and small: a FIFO would
    block and /dev/zero never ends, so both are refused before the file is opened."""
    try:
        import tomllib
    except ModuleNotFoundError:      # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what} {path} is not a regular file: give a TOML file")
        if st.st_size > MAX_TOML_BYTES:
            raise error(f"{what} {path} is {st.st_size:,} bytes, too big for a TOML {what} "
                        f"(at most {MAX_TOML_BYTES:,}): give a TOML file")
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}") from None
