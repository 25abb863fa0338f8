"""The one-way dependency order: cli -> experiments/train/sample -> model/optim/data -> backend."""
import ast
from pathlib import Path

import charnn

PKG = Path(charnn.__file__).parent

# Lower number = lower layer. A module may import only modules of a strictly lower layer
# (or modules of the same layer listed in SAME_LAYER_OK).
LAYER = {
    "backend": 0,
    "config": 0,
    "workspace": 0.5,  # work buffers kept between training steps (cells, stack)
    "vocab": 1,
    "cells": 1,      # LSTM/GRU/RNN cell forward/backward pairs (issue 9)
    "schedule": 1,   # learning-rate schedules
    "kernels": 0.5,    # optional compiled (numba) kernels for the fast path; below model
    "parallel": 1,   # batch shards in threads with single-threaded BLAS (model and stack)
    "stack": 1.5,    # multi-layer model over any cell; below model, which dispatches to it
    "data": 2,
    "augment": 2,    # name swapping: a per-epoch rewrite of the training text (uses vocab)
    "model": 2,
    "optim": 2,
    "neural_cache": 2,  # continuous cache over the model's recent states, for evaluation
    "calibrate": 2,  # the output temperature fitted on held-out text (used by checkpoint, train, evaluate)
    "encoded": 2.5,  # large corpora encoded to a file and memory-mapped; uses data, used by corpus
    "gradcheck": 3,
    "reference": 3,
    "checkpoint": 3,
    "runlock": 3,    # one training session per run folder (flock)
    "corpus": 3,
    "metrics": 3,
    "textstats": 3,
    "sample": 3,     # text generation only (train samples at epoch ends); loading is the CLI's job
    "train": 4,
    "evaluate": 4,
    "experiments": 5,
    "report": 6,
    "cli": 7,
}
ENGINE = {"backend", "config", "vocab", "data", "model", "optim", "gradcheck", "reference",
          "cells", "stack", "schedule", "kernels", "encoded", "workspace", "neural_cache", "augment",
          "calibrate"}
NOT_IN_ENGINE = {"matplotlib", "tqdm", "rich", "argparse", "charnn.cli"}


def charnn_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    mods = set()
    depth = len(path.relative_to(PKG).parts)   # 2 inside a subpackage such as charnn/backend/
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if 1 <= node.level < depth:            # a sibling inside the same subpackage
                continue
            if node.level >= 1:
                base = (node.module or "").split(".")[0]
                if base:
                    mods.add(base)
                else:
                    mods.update(a.name.split(".")[0] for a in node.names)
            elif node.module and node.module.startswith("charnn."):
                mods.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("charnn."):
                    mods.add(a.name.split(".")[1])
    return mods


def external_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mods.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            mods.update(a.name.split(".")[0] for a in node.names)
    return mods


def modules():
    """(layer name, file) of every source file; a subpackage's files (backend/) carry its name."""
    for f in sorted(PKG.glob("*.py")):
        if f.stem != "__init__":
            yield f.stem, f
    for f in sorted(PKG.glob("*/*.py")):
        yield f.parent.name, f


def test_every_module_has_a_layer():
    missing = [name for name, _ in modules() if name not in LAYER and not name.startswith("_")]
    assert not missing, f"add these modules to LAYER: {missing}"


def test_imports_point_one_way():
    bad = []
    for name, f in modules():
        for dep in charnn_imports(f):
            if dep in LAYER and name in LAYER and LAYER[dep] >= LAYER[name] and dep != name:
                bad.append(f"{name} -> {dep}")
    assert not bad, f"imports against the dependency order: {bad}"


def test_engine_has_no_ui_dependencies():
    for name, f in modules():
        if name in ENGINE:
            ext = external_imports(f)
            assert not (ext & {"matplotlib", "tqdm", "rich", "torch"}), (name, ext)


def test_only_backend_imports_cupy():
    for name, f in modules():
        if name != "backend":
            assert "cupy" not in external_imports(f) and "cupyx" not in external_imports(f), name
