"""Large corpora: encoded once into a file of ids and memory-mapped, never held as a Python string.

A corpus larger than MMAP_THRESHOLD_BYTES on disk is streamed in chunks. A first pass finds its
distinct characters, its length and its sha256 (the very checksum `data.checksum` gives for the
whole text); a second writes the ids, in the vocabulary's compact dtype (uint8 for <= 256
symbols), to ``<cache>/<key>.ids`` with a JSON record ``<key>.json`` beside it. Later loads map the
file read-only (np.memmap) while the source files' paths, sizes and modification times, the
encoding options and the vocabulary are unchanged (they make up the key). The cache folder is
$CHARNN_CACHE_DIR, else ~/.cache/charnn.

Peak memory is then about one chunk of text, whatever the corpus size, and the ids live in the
page cache, shared between processes, instead of in each process's heap.
"""
from __future__ import annotations

import codecs
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .text import DataError, corpus_files, nul_error
from .vocab import Vocab

MMAP_THRESHOLD_BYTES = 32 * 2**20   # corpora above this size (bytes on disk) are memory-mapped
CHUNK_BYTES = 8 * 2**20             # bytes read and decoded at a time
_FORMAT = 1


def source_bytes(path: str | Path) -> int:
    """Total size on disk of a corpus (a file, or a folder's .txt files)."""
    return sum(f.stat().st_size for f in corpus_files(path))


def cache_dir() -> Path:
    """Where encoded corpora are kept: $CHARNN_CACHE_DIR, else ~/.cache/charnn."""
    env = os.environ.get("CHARNN_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "charnn"


def _checks_nul(encoding: str) -> bool:
    return encoding.lower().replace("-", "").replace("_", "") in ("utf8", "ascii", "latin1")


def _chunks(files: list[Path], encoding: str, byte_level: bool, chunk_bytes: int) -> Iterator[str]:
    """The corpus text piece by piece: files in order, joined by a newline (as `data.load_text`)."""
    codec = "latin-1" if byte_level else encoding
    try:
        make_decoder = codecs.getincrementaldecoder(codec)
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r}") from None
    check_nul = not byte_level and _checks_nul(encoding)
    for i, f in enumerate(files):
        if i:
            yield "\n"
        decoder = make_decoder("strict")
        offset = 0
        try:
            fh = open(f, "rb")
        except OSError as exc:
            raise DataError(f"cannot read {f}: {exc.strerror or exc}") from None
        with fh:
            while True:
                raw = fh.read(chunk_bytes)
                nul = raw.find(b"\x00") if check_nul else -1
                if nul >= 0:
                    raise nul_error(f, raw[:4] if offset == 0 else b"", offset + nul)
                pending = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as exc:
                    raise DataError(f"{f} is not valid {encoding} (bad byte at offset {offset - pending + exc.start}); "
                                    f"pass --encoding (e.g. latin-1) or --bytes for raw bytes") from None
                offset += len(raw)
                if text:
                    yield text
                if not raw:
                    break


def _key_material(files: list[Path], encoding: str, byte_level: bool, vocab: Vocab | None) -> dict[str, Any]:
    stats = []
    for f in files:
        st = f.stat()
        stats.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return {"format": _FORMAT, "files": stats, "encoding": "latin-1" if byte_level else encoding,
            "byte_level": byte_level, "vocab": None if vocab is None else vocab.to_dict()["codepoints"]}


def _open(ids_path: Path, meta: dict[str, Any]) -> tuple[Vocab, np.ndarray, str]:
    ids = np.memmap(ids_path, dtype=np.dtype(meta["dtype"]), mode="r", shape=(int(meta["n"]),))
    return Vocab.from_dict(meta["vocab"]), ids, str(meta["sha256"])


def _cached(ids_path: Path, meta_path: Path, material: dict[str, Any]) -> dict[str, Any] | None:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("material") != material:
            return None
        if ids_path.stat().st_size != int(meta["n"]) * np.dtype(meta["dtype"]).itemsize:
            return None
        return meta
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_encoded(path: str | Path, *, encoding: str = "utf-8", byte_level: bool = False,
                 vocab: Vocab | None = None, chunk_bytes: int = CHUNK_BYTES) -> tuple[Vocab, np.ndarray, str]:
    """(vocabulary, read-only memory-mapped ids, sha256 of the text) of a corpus on disk.

    Same results as reading the text with `data.read_corpus` and encoding it (`data.encode_corpus`,
    `data.checksum`), without ever holding the text. `vocab` given: encode with it (VocabError
    names characters it lacks); otherwise the corpus's sorted distinct characters.
    """
    files = corpus_files(path)
    material = _key_material(files, encoding, byte_level, vocab)
    key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]
    folder = cache_dir()
    ids_path, meta_path = folder / f"{key}.ids", folder / f"{key}.json"
    meta = _cached(ids_path, meta_path, material)
    if meta is not None:
        return _open(ids_path, meta)

    chars: set[str] = set()
    digest = hashlib.sha256()
    n = 0
    for piece in _chunks(files, encoding, byte_level, chunk_bytes):
        chars.update(piece)
        digest.update(piece.encode("utf-8", "surrogatepass"))
        n += len(piece)
    if n == 0:
        raise DataError(f"corpus {path} is empty")
    vocab = vocab or Vocab(chars)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = ids_path.with_name(f"{ids_path.name}.{os.getpid()}.tmp")
        ids = np.memmap(tmp, dtype=vocab.dtype, mode="w+", shape=(n,))
    except OSError as exc:
        raise DataError(f"cannot write the encoded corpus to {folder}: {exc.strerror or exc} "
                        f"(set CHARNN_CACHE_DIR to a writable folder)") from None
    try:
        pos = 0
        for piece in _chunks(files, encoding, byte_level, chunk_bytes):
            part = vocab.encode(piece)
            ids[pos:pos + len(part)] = part
            pos += len(part)
        ids.flush()
        del ids
        if pos != n or _key_material(files, encoding, byte_level, None if material["vocab"] is None else vocab) != material:
            raise DataError(f"corpus {path} changed while it was being encoded; try again")
        os.replace(tmp, ids_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    meta = {"material": material, "n": n, "dtype": vocab.dtype.str, "sha256": digest.hexdigest(),
            "vocab": vocab.to_dict()}
    tmp_meta = meta_path.with_name(f"{meta_path.name}.{os.getpid()}.tmp")
    tmp_meta.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp_meta, meta_path)
    return _open(ids_path, meta)
