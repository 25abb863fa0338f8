"""Checkpoints: arrays in a safetensors file, everything else as JSON in its metadata. No pickle.

File layout (safetensors): 8-byte little-endian header length n, n bytes of JSON header, raw data.
  arrays    param.<name>          the model parameters (W, U, V, b, c)
            optim.<slot>.<name>   optimizer state (Adam: m, v; SGD with momentum: buf)
            state.h               the hidden state carried into the next batch (B, H), if any
                                  ((L, S, B, H) for stacked LSTM/GRU/RNN models: charnn.nn.network)
  metadata  (every value a JSON string) format, format_version, config, vocab, step, epoch,
            batch_index, chars_seen, wall_s, train_s, best_val_loss, optimizer, rng, corpus, unigram,
            temperature (the output temperature fitted on held-out text, charnn.eval.calibrate; 1 when absent),
            digests ({array name: sha256 hex of its raw bytes}; absent in checkpoints written before it)

Loading validates before it allocates: the header's size is bounded and parsed by hand, the
format version must not be newer than this code, and every array must be present with the shape
and dtype the config and vocabulary imply; only then is the data read, and each array's bytes are
hashed and compared with the digest recorded at save time, so a flipped byte anywhere in the data
is refused with the array's name (safetensors itself has no checksum). Writes are atomic: a temp
file in the same folder, flushed and fsynced, then renamed over the old file.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from .config import Config, ConfigError
from .. import model
from ..data.vocab import Vocab, VocabError
from ..eval import calibrate
from ..nn import budget

FORMAT = "charnn.checkpoint"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 16 * 1024 * 1024      # a real header is a few kB (vocab, config, rng state)
OPTIM_SLOTS = {"adam": ("m", "v"), "sgd": ("buf",)}
_ST_DTYPES = {"float32": "F32", "float64": "F64"}
_ITEMSIZE = {"F32": 4, "F64": 8}
_TEMP_NAME = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")  # atomic_write_bytes's temp files


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, of another format, or does not fit its config."""


@dataclass
class Checkpoint:
    """Everything needed to continue a run exactly, or to sample and evaluate from it."""

    config: Config
    vocab: Vocab
    params: dict[str, np.ndarray]
    optim_state: dict[str, np.ndarray] = field(default_factory=dict)   # "m.W", "v.W", ...
    optim_hyper: dict[str, Any] = field(default_factory=dict)          # kind, lr, t, betas, ...
    h: np.ndarray | None = None          # carried hidden state for the next batch (None: zeros)
    step: int = 0                        # optimizer steps done
    epoch: int = 0                       # completed epochs
    batch_index: int = 0                 # next batch of the current epoch
    chars_seen: int = 0
    wall_s: float = 0.0                  # training wall time so far, over all sessions
    train_s: float = 0.0                 # of which in training steps (what Config.max_minutes counts)
    best_val_loss: float | None = None
    rng_state: dict[str, Any] | None = None   # np.random.Generator.bit_generator.state
    corpus: dict[str, Any] = field(default_factory=dict)   # path, chars, sha256, vocab_size
    unigram: list[int] | None = None     # character counts of the training split (eval baseline)
    temperature: float = 1.0             # output temperature τ fitted on held-out text (charnn.eval.calibrate)
    format_version: int = FORMAT_VERSION

    @property
    def num_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    @property
    def model_params(self) -> dict[str, np.ndarray]:
        """The network that evaluation and sampling use: `params` with V and c divided by the
        calibrated temperature (the training state, `params`, is what a resume continues from)."""
        return calibrate.apply(self.params, self.temperature)


# --------------------------------------------------------------------------------------------
# writing

def save(path: str | Path, ckpt: Checkpoint) -> None:
    """Write `ckpt` to `path` atomically (the old file stays whole until the new one is complete)."""
    arrays: dict[str, np.ndarray] = {}
    for k, p in ckpt.params.items():
        arrays[f"param.{k}"] = np.ascontiguousarray(p)
    for k, a in ckpt.optim_state.items():
        arrays[f"optim.{k}"] = np.ascontiguousarray(a)
    if ckpt.h is not None:
        arrays["state.h"] = np.ascontiguousarray(ckpt.h)
    best = ckpt.best_val_loss
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": ckpt.config.to_dict(),
        "vocab": ckpt.vocab.to_dict(),
        "step": int(ckpt.step),
        "epoch": int(ckpt.epoch),
        "batch_index": int(ckpt.batch_index),
        "chars_seen": int(ckpt.chars_seen),
        "wall_s": float(ckpt.wall_s),
        "train_s": float(ckpt.train_s),
        "best_val_loss": None if best is None or not math.isfinite(best) else float(best),
        "optimizer": ckpt.optim_hyper,
        "rng": ckpt.rng_state,
        "corpus": ckpt.corpus,
        "unigram": ckpt.unigram,
        "temperature": float(ckpt.temperature),
        "digests": {name: digest(a) for name, a in arrays.items()},
    }
    metadata = {k: json.dumps(v) for k, v in meta.items()}
    atomic_write_bytes(Path(path), st_save(arrays, metadata=metadata))


def digest(a: np.ndarray) -> str:
    """sha256 (hex) of an array's raw bytes in C order: what `digests` records for each array."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(a)).cast("B")).hexdigest()


def _check_digests(p: Path, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Compare every array with its recorded digest; a checkpoint without `digests` (older) is not checked."""
    digests = meta.get("digests")
    if digests is None:
        return
    if not isinstance(digests, dict) or set(digests) != set(arrays):
        raise CheckpointError(f"{p}: its array digests do not list exactly its arrays (damaged file): "
                              f"use another checkpoint, e.g. the run's last or best")
    for name in sorted(arrays):
        if digests[name] != digest(arrays[name]):
            raise CheckpointError(f"{p}: array {name!r} is damaged (its bytes do not match the sha256 recorded "
                                  f"when it was saved): use another checkpoint, e.g. the run's last or best")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes so that `path` is always either the old file or the complete new one.

    Temp file in the same folder (so the rename cannot cross file systems), flush + fsync,
    os.replace, then fsync the folder so the rename itself survives a power cut.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # os.open with mode 0o666 honours the umask (mkstemp would make the file private, 0o600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def remove_stale_temps(folder: Path, keep: set[str] = frozenset()) -> list[Path]:
    """Delete temp files that an interrupted atomic_write_bytes left in `folder` (after a kill -9 or power cut).

    Only call it while no other process writes to the folder (train holds the run folder's lock).
    A file whose real path is in `keep` (an input of the run) is never removed, whatever its name.
    """
    removed = []
    if folder.is_dir():
        for q in folder.iterdir():
            if (_TEMP_NAME.match(q.name) and q.is_file() and not q.is_symlink()
                    and os.path.realpath(q) not in keep):
                try:
                    q.unlink()
                    removed.append(q)
                except OSError:
                    pass
    return removed


def _fsync_dir(folder: Path) -> None:
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:        # e.g. platforms without directory fds: the rename is still atomic
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# --------------------------------------------------------------------------------------------
# reading

def read_header(path: str | Path) -> tuple[dict[str, Any], int, int]:
    """Parse the safetensors header without reading the data: (header dict, header length, file size)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} is not a file")
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{p} is not a safetensors checkpoint (only {size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > MAX_HEADER_BYTES or n > size - 8:
                raise CheckpointError(f"{p} is not a safetensors checkpoint, or is truncated "
                                      f"(header length {n} for a file of {size} bytes)")
            raw = f.read(n)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {p}: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):   # RecursionError: absurdly nested JSON
        raise CheckpointError(f"{p} is not a safetensors checkpoint (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{p} is not a safetensors checkpoint (its header is not a JSON object)")
    return header, n, size


def _decode_metadata(p: Path, header: Mapping[str, Any]) -> dict[str, Any]:
    raw = header.get("__metadata__")
    if not isinstance(raw, dict) or "format" not in raw:
        raise CheckpointError(f"{p} is a safetensors file but not a charnn checkpoint (no charnn metadata)")
    meta: dict[str, Any] = {}
    for k, v in raw.items():
        if not isinstance(v, str):
            raise CheckpointError(f"{p}: metadata value {k!r} is not a string")
        try:
            meta[k] = json.loads(v)
        except (ValueError, RecursionError):
            raise CheckpointError(f"{p}: metadata value {k!r} is not valid JSON") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a charnn checkpoint (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{p}: bad checkpoint format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{p} was written by a newer charnn (checkpoint format {version}; this "
                              f"charnn reads up to {FORMAT_VERSION}): upgrade charnn to use it")
    for key in ("config", "vocab", "step", "epoch", "batch_index", "optimizer"):
        if key not in meta:
            raise CheckpointError(f"{p}: checkpoint metadata lacks {key!r}")
    return meta


def model_shapes(cfg: Config, vocab_size: int) -> tuple[dict[str, tuple[int, ...]], tuple[int, ...]]:
    """(parameter name -> shape, carried-state shape) of the model `cfg` describes.

    The seed's one-layer RNN has W, U, V, b, c and a (B, H) state; other cells and layer counts have
    the stacked layout of `charnn.nn.network` (L{l}.W, L{l}.U, L{l}.b[, L{l}.bn], V, c) and an (L, S, B, H) state.
    """
    B, H = cfg.batch_size, cfg.hidden_size
    shapes = model.param_shapes(vocab_size, H, cell=cfg.cell, layers=cfg.layers, embed=cfg.embed)
    if cfg.cell == "rnn" and cfg.layers == 1:
        return shapes, (B, H)
    return shapes, (cfg.layers, 2 if cfg.cell == "lstm" else 1, B, H)


def expected_arrays(cfg: Config, vocab_size: int, optim_t: int) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """(required, optional) array name -> shape for a checkpoint of `cfg` and a vocabulary of `vocab_size`."""
    shapes, state = model_shapes(cfg, vocab_size)
    required = {f"param.{k}": shapes[k] for k in shapes}
    optional: dict[str, tuple[int, ...]] = {"state.h": state}
    slots = OPTIM_SLOTS[cfg.optimizer]
    needs_state = optim_t > 0 and (cfg.optimizer == "adam" or cfg.momentum > 0)
    for slot in slots:
        for k in shapes:
            (required if needs_state else optional)[f"optim.{slot}.{k}"] = shapes[k]
    return required, optional


def _check_arrays(p: Path, header: Mapping[str, Any], n: int, size: int, cfg: Config, vocab_size: int, optim_t: int) -> None:
    required, optional = expected_arrays(cfg, vocab_size, optim_t)
    want_dtype = _ST_DTYPES[cfg.dtype]
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if name not in required and name not in optional:
            raise CheckpointError(f"{p}: unexpected array {name!r} for this config")
        shape = required.get(name, optional.get(name))
        if not isinstance(info, dict):
            raise CheckpointError(f"{p}: bad header entry for {name!r}")
        if info.get("dtype") != want_dtype:
            raise CheckpointError(f"{p}: array {name!r} has dtype {info.get('dtype')}, expected {want_dtype} "
                                  f"({cfg.dtype} per its config)")
        if info.get("shape") != list(shape):
            raise CheckpointError(f"{p}: array {name!r} has shape {info.get('shape')}, expected {list(shape)} "
                                  f"for hidden size {cfg.hidden_size} and vocabulary {vocab_size}")
        off = info.get("data_offsets")
        if (not isinstance(off, list) or len(off) != 2 or not all(isinstance(o, int) for o in off)
                or off[1] - off[0] != math.prod(shape) * _ITEMSIZE[want_dtype] or off[0] < 0):
            raise CheckpointError(f"{p}: array {name!r} has bad data offsets {off!r}")
        spans.append(tuple(off))
    missing = sorted(set(required) - set(header))
    if missing:
        raise CheckpointError(f"{p}: checkpoint lacks array(s) {', '.join(missing)}")
    spans.sort()
    end = 0
    for s, e in spans:
        if s != end:
            raise CheckpointError(f"{p}: array data overlaps or has gaps (damaged file)")
        end = e
    if 8 + n + end != size:
        raise CheckpointError(f"{p} is truncated or damaged: {size} bytes, the header describes {8 + n + end}")


def peek(path: str | Path) -> tuple[Config, int, int]:
    """(config, vocabulary size, file size) of a checkpoint from its header alone, without reading
    its arrays: what a command needs to budget its memory before it loads the file."""
    p = Path(path)
    header, n, size = read_header(p)
    cfg, vocab, _ = _config_and_vocab(p, _decode_metadata(p, header))
    return cfg, len(vocab), size


def _config_and_vocab(p: Path, meta: Mapping[str, Any]) -> tuple[Config, Vocab, Mapping[str, Any]]:
    try:
        cfg = Config.from_dict(meta["config"], strict=True)
    except (ConfigError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{p}: the configuration it holds is invalid: {exc}") from None
    cps = meta["vocab"].get("codepoints") if isinstance(meta["vocab"], dict) else None
    if isinstance(cps, list) and len(cps) > cfg.max_vocab:
        raise CheckpointError(f"{p}: its vocabulary of {len(cps)} exceeds its own max_vocab {cfg.max_vocab}")
    try:
        vocab = Vocab.from_dict(meta["vocab"])
    except VocabError as exc:
        raise CheckpointError(f"{p}: the vocabulary it holds is invalid: {exc}") from None
    if len(vocab) < 1:
        raise CheckpointError(f"{p}: the vocabulary it holds is empty")
    return cfg, vocab, meta


def load(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint (see the module docstring for what is checked)."""
    p = Path(path)
    header, n, size = read_header(p)
    cfg, vocab, meta = _config_and_vocab(p, _decode_metadata(p, header))
    hyper = meta["optimizer"]
    if not isinstance(hyper, dict) or hyper.get("kind") != cfg.optimizer:
        raise CheckpointError(f"{p}: optimizer record {hyper!r} does not match the config ({cfg.optimizer})")
    optim_t = _whole(p, "optimizer step", hyper.get("t", 0))
    extras = _check_extras(p, meta, len(vocab))
    _check_arrays(p, header, n, size, cfg, len(vocab), optim_t)
    budget.check(budget.FIXED + 2 * size, f"loading the checkpoint {p}", "free memory, or use a machine with more")
    try:
        arrays = st_load(p.read_bytes())
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {p}: {exc.strerror or exc}") from None
    except Exception as exc:  # safetensors raises its own SafetensorError for damaged files
        raise CheckpointError(f"{p} is damaged: {exc}") from None
    _check_digests(p, meta, arrays)
    params = {k: arrays[f"param.{k}"] for k in model_shapes(cfg, len(vocab))[0]}
    optim_state = {k[len("optim."):]: a for k, a in arrays.items() if k.startswith("optim.")}
    return Checkpoint(
        config=cfg, vocab=vocab, params=params, optim_state=optim_state, optim_hyper=hyper,
        h=arrays.get("state.h"),
        step=_whole(p, "step", meta["step"]), epoch=_whole(p, "epoch", meta["epoch"]),
        batch_index=_whole(p, "batch_index", meta["batch_index"]),
        chars_seen=_whole(p, "chars_seen", meta.get("chars_seen", 0)),
        format_version=meta["format_version"], **extras,
    )


def _check_extras(p: Path, meta: Mapping[str, Any], vocab_size: int) -> dict[str, Any]:
    """The optional metadata, each checked for its type: a crafted value is a CheckpointError, not a crash later."""
    def number(name: str, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise CheckpointError(f"{p}: metadata {name} must be a number, got {v!r:.80}")
        return float(v)

    best, rng, corpus, unigram = (meta.get(k) for k in ("best_val_loss", "rng", "corpus", "unigram"))
    if rng is not None:
        try:   # the trainer's sampling generator is a PCG64: the state must be one it accepts
            np.random.PCG64().state = rng
        except (TypeError, ValueError, KeyError, OverflowError):
            raise CheckpointError(f"{p}: the random-generator state it holds is invalid") from None
    if corpus is not None and not isinstance(corpus, dict):
        raise CheckpointError(f"{p}: metadata corpus must be an object, got {corpus!r:.80}")
    if unigram is not None and (not isinstance(unigram, list) or len(unigram) != vocab_size or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in unigram)):
        raise CheckpointError(f"{p}: unigram counts do not match the vocabulary")
    wall, train_s = meta.get("wall_s", 0.0), meta.get("train_s", 0.0)     # train_s: absent before max_minutes
    tau = meta.get("temperature", 1.0)                                   # absent before calibration
    tau = 1.0 if tau is None else number("temperature", tau)
    if not (math.isfinite(tau) and tau > 0):
        raise CheckpointError(f"{p}: metadata temperature must be a finite number > 0, got {tau!r}")
    return {"temperature": tau, "wall_s": 0.0 if wall is None else number("wall_s", wall),
            "train_s": 0.0 if train_s is None else number("train_s", train_s),
            "best_val_loss": None if best is None else number("best_val_loss", best),
            "rng_state": rng, "corpus": corpus or {}, "unigram": unigram}


def _whole(p: Path, name: str, v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise CheckpointError(f"{p}: metadata {name} must be a whole number >= 0, got {v!r}")
    return v


def resolve(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (its best checkpoint, else its last)."""
    p = Path(path)
    if p.is_dir():
        for name in ("best.safetensors", "last.safetensors"):
            for cand in (p / "checkpoints" / name, p / name):
                if cand.is_file():
                    return cand
        raise CheckpointError(f"{p} is a folder without checkpoints (expected {p / 'checkpoints' / 'best.safetensors'})")
    if not p.exists():
        raise CheckpointError(f"checkpoint or run folder not found: {p}")
    return p
