"""The one-way dependency order: cli -> apps, reproduce -> train -> eval -> model -> nn -> data -> backend."""
import ast
from pathlib import Path

import charnn

PKG = Path(charnn.__file__).parent

# Lower number = lower layer. A package (or top-level module) may import only from strictly lower
# layers; modules inside one package may import each other.
LAYER = {
    "_blas": 0,      # picks OpenBLAS's kernels before NumPy loads
    "backend": 0,    # NumPy or CuPy; the fused CUDA kernels
    "data": 1,       # text in: files, vocabulary, encoded corpus, batches
    "nn": 2,         # the network's parts: parameters, cells, layers, fast path, reader, generation, kernels
    "model": 3,      # the one model API over nn
    "sample": 3.5,   # text from a model: prompt in, characters out
    "eval": 4,       # calibration, the neural cache, gradient checks
    "train": 5,      # configuration, optimizers, schedules, the trainer, run folders, checkpoints
    "apps": 6,       # what the command line runs on a trained model
    "reproduce": 6.5,  # the seed's experiments and their report (with the Inside view of apps)
    "sweep": 6,      # hyperparameter sweeps on Optuna: space, storage, trials, workers, report
    "web": 6.5,      # `charnn serve`: the web app over apps (the Inside analysis), train and sample
    "cli": 7,
}
ENGINE = {"_blas", "backend", "data", "nn", "model", "sample", "eval"}
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
    """(layer name, file) of every source file: a subpackage's files carry the subpackage's name."""
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


def test_engine_never_imports_the_layers_above_it():
    above = {name for name, layer in LAYER.items() if layer >= LAYER["train"]}
    for name, f in modules():
        if name in ENGINE:
            assert not (charnn_imports(f) & above), (f.name, charnn_imports(f) & above)


def test_the_layering_test_sees_the_subpackages():
    names = {name for name, _ in modules()}
    assert {"nn", "data", "train", "eval", "apps", "reproduce", "model", "cli"} <= names
