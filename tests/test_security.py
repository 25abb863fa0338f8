"""No checkpoint can run code, exhaust memory or write outside its run folder.

- src/ never uses pickle, allow_pickle, np.load, eval/exec/compile or __import__, however imported or
  spelled (`from numpy import load`, `import_module` of a computed name, `getattr(np, "lo" + "ad")`):
  checked on the syntax tree of every source file, so comments and strings do not count.
- The loader bounds the header, checks every shape against the config, and checks the file's size
  before it reads one byte of array data (tracemalloc measures what a crafted file makes it allocate).
- Paths inside a checkpoint ('../' in the corpus path, the prompt, array names) are never write targets.
- Fuzzing the metadata and the bytes of a real checkpoint: every outcome is a load or a CheckpointError.
"""
from __future__ import annotations

import ast
import json
import os
import pickle
import re
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import charnn
from charnn.train import checkpoint
from charnn.train.checkpoint import CheckpointError

from ckcraft import TINY, changes, cli, join_file, meta_of, snapshot, split_file, with_meta
from clihelp import charnn as charnn_inprocess, write_corpus

SRC = Path(charnn.__file__).parent
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib", "torch"}
BANNED_NAMES = {"allow_pickle", "eval", "exec", "compile", "__import__", "__builtins__"} | BANNED_MODULES
IMPORTERS = {"import_module", "__import__"}


def banned_uses(source: str) -> list[str]:
    """What in a Python source could unpickle or run code, found on its syntax tree (so comments and
    strings do not count, and `re.compile` is fine):

    - importing a banned module (pickle, marshal, torch, ...), or `load` from numpy;
    - the names eval, exec, compile, __import__, __builtins__, allow_pickle (as a name or keyword);
    - numpy's `load` as an attribute, under whatever name numpy was imported;
    - `import_module(...)` of a computed or banned name; `getattr(numpy, ...)` of a computed name or "load".
    """
    tree = ast.parse(source)
    numpy_names = {"np", "numpy"} | {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                                     for a in node.names if a.name.split(".")[0] == "numpy"}
    found = []

    def const_str(node: ast.AST) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom):
            root = (node.module or "").split(".")[0]
            if root in BANNED_MODULES:
                found.append(f"{where}: from {node.module} import ...")
            elif root == "numpy" and any(a.name in ("load", "*") for a in node.names):
                found.append(f"{where}: from {node.module} import load")
            found += [f"{where}: import {a.name}" for a in node.names if a.name in BANNED_NAMES]
        elif isinstance(node, ast.Name) and node.id in BANNED_NAMES:
            found.append(f"{where}: {node.id}")
        elif isinstance(node, ast.keyword) and node.arg in BANNED_NAMES:
            found.append(f"{where}: {node.arg}=")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in numpy_names \
                and node.attr == "load":
            found.append(f"{where}: {node.value.id}.load")
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else None
            if name in IMPORTERS and node.args:
                target = const_str(node.args[0])
                if target is None or target.split(".")[0] in BANNED_MODULES:
                    found.append(f"{where}: {name}({ast.unparse(node.args[0])})")
            if name == "getattr" and len(node.args) >= 2 and isinstance(node.args[0], ast.Name) \
                    and node.args[0].id in numpy_names and const_str(node.args[1]) in (None, "load"):
                found.append(f"{where}: getattr({node.args[0].id}, {ast.unparse(node.args[1])})")
    return found


def test_source_has_no_pickle_eval_exec_or_np_load():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 10
    found = [f"{f.relative_to(SRC)} {use}" for f in files for use in banned_uses(f.read_text(encoding="utf-8"))]
    assert found == []


@pytest.mark.parametrize("snippet", [
    "import pickle", "import pickle as p", "from pickle import loads", "import torch.serialization",
    "x = eval('1')", "exec(code)", "f = compile(src, 'f', 'exec')", "m = __import__('os')",
    "y = np.load(p, allow_pickle=True)", "y = np.load(p)", "import numpy as xp\nxp.load(p)",
    "from numpy import load", "from numpy import *", "from numpy.lib.npyio import load as read",
    "import importlib\nm = importlib.import_module('pick' + 'le')", "from importlib import import_module\nimport_module(name)",
    "import importlib\nimportlib.import_module('pickle')", "getattr(np, 'lo' + 'ad')(p)", "getattr(numpy, 'load')",
    "f = getattr(np, name)", "b = __builtins__", "safe(x, allow_pickle=False)",
], ids=lambda s: s.splitlines()[-1][:40])
def test_the_scan_catches_each_way_in(snippet):
    assert banned_uses(snippet), snippet


def test_the_scan_ignores_comments_strings_and_lookalikes():
    ok = ("import re\nz = re.compile('eval')\n# exec and pickle in a comment\ns = 'np.load(p)'\n"
          "from importlib import resources\nimport importlib\nm = importlib.import_module('json')\n"
          "dt = getattr(np, 'float32')\nv = getattr(args, field)\nx = obj.load()\n")
    assert banned_uses(ok) == []


# --------------------------------------------------------------------------------------------------
# crafted files: bounded memory

@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("security")
    (root / "a").mkdir()
    corpus = write_corpus(root / "a", 6_000)     # root/a/tiny.txt; the run is root/a/b/run
    out = root / "a" / "b" / "run"
    assert charnn_inprocess("train", "--data", corpus, "--out", out, *TINY, "--max-steps", "4").rc == 0
    return out


@pytest.fixture(scope="module")
def good(run) -> bytes:
    return (run / "checkpoints" / "last.safetensors").read_bytes()


def peak_bytes_while(fn) -> int:
    """Peak memory Python and NumPy allocate while fn() runs (it must raise CheckpointError)."""
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as info:
            fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, str(info.value)


def test_header_claiming_exabytes_is_refused_without_allocating(tmp_path):
    p = tmp_path / "c.safetensors"
    p.write_bytes(struct.pack("<Q", 2**63 - 1) + b"{}" + b"\0" * 100)
    peak, msg = peak_bytes_while(lambda: checkpoint.load(p))
    assert "header length" in msg and peak < 1 << 20


def test_header_over_the_limit_is_not_read(tmp_path):
    """A (sparse) file as big as its header claims, just over the 16 MiB header limit: refused unread."""
    p = tmp_path / "c.safetensors"
    n = checkpoint.MAX_HEADER_BYTES + 1
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", n) + b"{")
        f.truncate(8 + n + 8)
    peak, msg = peak_bytes_while(lambda: checkpoint.load(p))
    assert "header length" in msg and peak < 1 << 20


def test_config_claiming_a_huge_model_is_refused_before_reading_data(tmp_path, good):
    """hidden_size 10^6 in the metadata and matching shapes in the header (W alone would be 8 TB):
    the file's size does not match what the header describes, so nothing is read."""
    header, data = split_file(good)
    meta = meta_of(good)
    H, V = 10**6, len(meta["vocab"]["codepoints"])
    shapes = {"param.W": [H, H], "param.U": [H, V], "param.V": [V, H], "param.b": [H], "param.c": [V]}
    off, new = 0, {"__metadata__": header["__metadata__"]}
    for name, shape in shapes.items():
        size = int(np.prod(shape)) * 8
        new[name] = {"dtype": "F64", "shape": shape, "data_offsets": [off, off + size]}
        off += size
    new["__metadata__"]["config"] = json.dumps({**meta["config"], "hidden_size": H})
    new["__metadata__"]["optimizer"] = json.dumps({**meta["optimizer"], "t": 0})
    p = tmp_path / "c.safetensors"
    p.write_bytes(join_file(new, data))
    peak, msg = peak_bytes_while(lambda: checkpoint.load(p))
    assert "truncated or damaged" in msg and peak < 8 << 20


def test_shapes_that_disagree_with_the_config_are_refused_before_reading_data(tmp_path, good):
    header, data = split_file(good)
    header["param.W"]["shape"] = [10**9, 10**9]
    p = tmp_path / "c.safetensors"
    p.write_bytes(join_file(header, data))
    peak, msg = peak_bytes_while(lambda: checkpoint.load(p))
    assert "shape" in msg and peak < 4 << 20


def refusal(tmp_path, header: dict, data: bytes) -> str:
    """Load a crafted file; it must be refused: return the message."""
    p = tmp_path / "c.safetensors"
    p.write_bytes(join_file(header, data))
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(p)
    return str(info.value)


def test_overlapping_arrays_are_refused(tmp_path, good):
    """Two arrays of one shape (a parameter and its Adam moment) given the same span: every name, dtype,
    shape and span length is right, so only the overlap check can refuse it."""
    header, data = split_file(good)
    assert header["optim.m.W"]["shape"] == header["param.W"]["shape"]
    header["optim.m.W"]["data_offsets"] = list(header["param.W"]["data_offsets"])
    assert "overlaps or has gaps" in refusal(tmp_path, header, data)


def test_a_gap_between_arrays_is_refused(tmp_path, good):
    header, data = split_file(good)
    last = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1])
    s, e = header[last]["data_offsets"]
    header[last]["data_offsets"] = [s + 8, e + 8]          # 8 unused bytes before the last array
    assert "overlaps or has gaps" in refusal(tmp_path, header, data + bytes(8))


@pytest.mark.parametrize("offsets", [[0, 8], [-8, 56], ["0", "64"], [0], None, [0, 64, 128], [0.0, 64.0]],
                         ids=["wrong-length", "negative", "strings", "one", "missing", "three", "floats"])
def test_bad_data_offsets_are_refused_by_name(tmp_path, good, offsets):
    """param.b (8 float64 = 64 bytes) with offsets that are not a span of 64 bytes from >= 0."""
    header, data = split_file(good)
    assert header["param.b"]["shape"] == [8] and header["param.b"]["dtype"] == "F64"
    header["param.b"]["data_offsets"] = offsets
    assert "array 'param.b' has bad data offsets" in refusal(tmp_path, header, data)


# --------------------------------------------------------------------------------------------------
# crafted files: no code runs, nothing is written outside the run folder

def test_a_pickle_posing_as_a_checkpoint_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    ck = tmp_path / "model.safetensors"
    ck.write_bytes(pickle.dumps(Payload()))
    expr = tmp_path / "expr.safetensors"     # Python code where JSON is expected in the metadata
    expr.write_bytes(with_meta_raw(f"__import__('os').mkdir({str(marker)!r})"))
    for path in (ck, expr):
        for cmd in ("info", "sample", "eval"):
            cli(cmd, path).one_line_error()
    assert not marker.exists()


def with_meta_raw(config_text: str) -> bytes:
    """A safetensors file whose metadata 'config' is the raw text given (not JSON)."""
    meta = {"format": json.dumps(checkpoint.FORMAT), "format_version": "1", "config": config_text}
    return join_file({"__metadata__": meta}, b"")


def test_paths_inside_a_checkpoint_are_never_write_targets(run, good, tmp_path):
    """A run whose checkpoint names '../' paths: every command reads at most, and a resume writes only
    inside the run folder given on the command line."""
    root = run.parent.parent.parent              # run = root/a/b/run, the corpus is root/a/tiny.txt
    meta = meta_of(good)
    escaped = "../../../tiny.txt"                # from run/checkpoints/, the real corpus
    crafted = with_meta(good, config={**meta["config"], "data": escaped, "prompt": "../../evil"},
                        corpus={**meta["corpus"], "path": "../../../../../../tmp/evil"})
    header, data = split_file(crafted)
    header["__metadata__"]["../../evil.safetensors"] = json.dumps("/etc/passwd")   # an extra key: ignored
    (run / "checkpoints" / "last.safetensors").write_bytes(join_file(header, data))
    (run / "checkpoints" / "best.safetensors").unlink()
    cwd = run / "checkpoints"
    before = snapshot(root)
    for args in (["info", run], ["sample", run, "--length", "5", "--prompt", ""], ["eval", run, "--json"]):
        r = cli(*args, cwd=cwd)
        assert r.rc == 0 and "Traceback" not in r.err, (args, r.err)
    assert changes(before, snapshot(root)) == []
    r = cli("train", "--resume", run, "--max-steps", "6", "--no-progress", cwd=cwd)
    assert r.rc == 0, r.err
    changed = changes(before, snapshot(root))
    run_rel = str(run.relative_to(root))
    assert changed and all(c.startswith(run_rel + os.sep) for c in changed), changed
    assert checkpoint.load(run / "checkpoints" / "last.safetensors").step == 6


def test_array_names_with_paths_are_refused(tmp_path, good):
    header, data = split_file(good)
    header["../../evil"] = header.pop("param.c")
    p = tmp_path / "c.safetensors"
    p.write_bytes(join_file(header, data))
    with pytest.raises(CheckpointError, match="unexpected array"):
        checkpoint.load(p)


def test_nul_in_a_checkpoints_corpus_path_is_an_error_not_a_crash(run, good, tmp_path):
    p = tmp_path / "c.safetensors"
    p.write_bytes(with_meta(good, config={**meta_of(good)["config"], "data": "tiny\x00.txt"}))
    cli("eval", p).one_line_error("not found")


def test_overwrite_never_deletes_outside_the_run_folder(run, tmp_path):
    corpus = run.parent.parent / "tiny.txt"
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoints").symlink_to(outside, target_is_directory=True)    # a run file that points away
    (out / "metrics.jsonl").symlink_to(outside / "keep.txt")
    r = cli("train", "--data", corpus, "--out", out, "--overwrite", *TINY, "--max-steps", "2")
    assert r.rc == 0, r.err
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"] and (outside / "keep.txt").read_text() == "mine"
    assert not (out / "checkpoints").is_symlink() and (out / "checkpoints" / "last.safetensors").is_file()


# --------------------------------------------------------------------------------------------------
# fuzzing: whatever the metadata or the bytes, the loader answers with a checkpoint or a CheckpointError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
META_KEYS = ["format", "format_version", "config", "vocab", "step", "epoch", "batch_index", "chars_seen",
             "wall_s", "train_s", "best_val_loss", "optimizer", "rng", "corpus", "unigram", "temperature"]


@FUZZ
@given(key=st.sampled_from(META_KEYS), value=json_values, subkey=st.none() | st.text(max_size=12))
def test_fuzzed_metadata_loads_or_is_a_checkpoint_error(good, tmp_path, key, value, subkey):
    meta = meta_of(good)
    if subkey is not None and isinstance(meta.get(key), dict):     # change one field inside (e.g. config.lr)
        value = {**meta[key], subkey: value}
    p = tmp_path / "fuzz.safetensors"
    p.write_bytes(with_meta(good, **{key: value}))
    try:
        ck = checkpoint.load(p)
    except CheckpointError:
        return
    assert ck.num_params > 0 and len(ck.vocab) > 0


def arrays_of(ck: checkpoint.Checkpoint) -> dict[str, np.ndarray]:
    return {**{f"param.{k}": a for k, a in ck.params.items()}, **{f"optim.{k}": a for k, a in ck.optim_state.items()},
            **({} if ck.h is None else {"state.h": ck.h})}


def same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
                                        and a[k].tobytes() == b[k].tobytes() for k in a)


def array_at(header: dict, i: int) -> str:
    """The array whose data holds byte i of the data section."""
    (name,) = [k for k, v in header.items() if k != "__metadata__" and v["data_offsets"][0] <= i < v["data_offsets"][1]]
    return name


@FUZZ
@given(data=st.data())
def test_fuzzed_bytes_are_refused_or_provably_harmless(good, tmp_path, data):
    """Up to 4 bytes changed anywhere, maybe cut short. Every array byte is covered by a digest, so:
    a changed byte in the array data, or a cut, is refused (one changed byte: the message names its
    array); a file that loads has only header bytes changed and arrays identical to the original,
    and where the header still parses to the same JSON (a changed space), it loads as the original."""
    header, _ = split_file(good)
    data_start = len(good) - len(split_file(good)[1])
    raw = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4))):
        # half the changes in the header, which is small, so that both parts are well covered
        lo, hi = (0, data_start - 1) if data.draw(st.booleans()) else (data_start, len(raw) - 1)
        i = data.draw(st.integers(lo, hi))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.none() | st.integers(0, len(raw) - 1))
    if cut is not None:
        raw = raw[:cut]
    changed = [i for i in range(len(raw)) if raw[i] != good[i]]
    p = tmp_path / "fuzz.safetensors"
    p.write_bytes(bytes(raw))
    in_data = [i for i in changed if i >= data_start]
    try:
        ck = checkpoint.load(p)
    except CheckpointError as exc:
        if cut is None and len(changed) == 1 and in_data:
            name = array_at(header, in_data[0] - data_start)
            assert name in str(exc), (name, str(exc))
        return
    assert cut is None, f"a file cut at byte {cut} of {len(good)} loaded"
    assert in_data == [], f"changed array bytes {in_data} loaded without an error"
    original = checkpoint.load(good_path(tmp_path, good))
    assert same_arrays(arrays_of(ck), arrays_of(original))
    try:
        same_json = json.loads(bytes(raw[8:data_start])) == json.loads(good[8:data_start])
    except ValueError:
        same_json = False
    if same_json:
        assert (ck.config, ck.vocab, ck.step, ck.epoch, ck.batch_index, ck.rng_state, ck.best_val_loss) == (
            original.config, original.vocab, original.step, original.epoch, original.batch_index,
            original.rng_state, original.best_val_loss)


def good_path(tmp_path: Path, good: bytes) -> Path:
    p = tmp_path / "good.safetensors"
    if not p.exists():
        p.write_bytes(good)
    return p


def test_each_arrays_bytes_are_checked(good, tmp_path):
    """One changed byte at the start, middle and end of every array's data: each refused, naming its array."""
    header, payload = split_file(good)
    data_start = len(good) - len(payload)
    for name, info in header.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        for i in (s, (s + e) // 2, e - 1):
            raw = bytearray(good)
            raw[data_start + i] ^= 0x01                       # the lowest mantissa bit: a tiny change
            p = tmp_path / "one.safetensors"
            p.write_bytes(bytes(raw))
            with pytest.raises(CheckpointError, match=re.escape(name)):
                checkpoint.load(p)


def test_numba_disk_cache_stays_with_the_compiled_kernels():
    """Numba's cache=True unpickles its index files from __pycache__ beside the kernels' source: the
    folder whose .pyc files Python already runs, so it trusts nothing new. It must stay confined to
    the kernels module and never be pointed at a run folder or any path a user passes."""
    import re
    from pathlib import Path

    import charnn

    for f in Path(charnn.__file__).parent.rglob("*.py"):
        text = f.read_text()
        if re.search(r"cache\s*=\s*True", text):
            assert f.name == "kernels.py" and f.parent.name == "nn", f
        assert "NUMBA_CACHE_DIR" not in text and not re.search(r"cache_dir\s*=", text), f


def load_without(good: bytes, tmp_path, key: str):
    """The checkpoint as written before metadata `key` existed (the key deleted), loaded."""
    header, data = split_file(good)
    del header["__metadata__"][key]
    old = tmp_path / "old.safetensors"
    old.write_bytes(join_file(header, data))
    return checkpoint.load(old)


def load_with(good: bytes, tmp_path, **meta):
    """The checkpoint with crafted metadata values, loaded."""
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(with_meta(good, **meta))
    return checkpoint.load(bad)


def test_train_s_is_optional_and_must_be_a_number(good, tmp_path):
    """Checkpoints written before time budgets have no train_s: they load with 0; a crafted one is refused."""
    assert load_without(good, tmp_path, "train_s").train_s == 0.0
    with pytest.raises(CheckpointError, match="train_s"):
        load_with(good, tmp_path, train_s="1800")


@pytest.mark.parametrize("value", ["1.1", -1.0, 0.0, True, [1.1]])
def test_temperature_is_optional_and_must_be_a_positive_number(good, tmp_path, value):
    """Checkpoints written before calibration have no temperature: they load with 1; a crafted one is refused."""
    assert load_without(good, tmp_path, "temperature").temperature == 1.0
    with pytest.raises(CheckpointError, match="temperature"):
        load_with(good, tmp_path, temperature=value)
