"""The docs name real code: every `charnn.module.name` written in docs/*.md and README.md resolves.

docs/derivation.md ties each equation to the function that implements it by writing its dotted
name in backticks (e.g. `charnn.model.backward`). If a function is renamed or removed, this test
names the stale reference so the text is fixed along with the code.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
README = ROOT / "README.md"

# A dotted name inside inline code: `charnn.model.backward`, `charnn.optim.Adam.step()`.
INLINE_CODE = re.compile(r"`([^`\n]+)`")
DOTTED = re.compile(r"(?<![\w./-])(charnn(?:\.[A-Za-z_]\w*)+)")
# Inside a ```python block: `from charnn.x import a, b` binds a and b; then a.attr is checked too.
FROM_IMPORT = re.compile(r"^[ \t]*from[ \t]+(charnn(?:\.\w+)*)[ \t]+import[ \t]+(?:\(([\w\s,]+)\)|([\w \t,]+))", re.M)
PY_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)

# Names the derivation must tie its equations to (the public engine API).
REQUIRED_IN_DERIVATION = {
    "charnn.model.forward", "charnn.model.backward", "charnn.model.loss_and_grads",
    "charnn.model.step", "charnn.model.generate", "charnn.model.evaluate",
    "charnn.optim.clip_by_value", "charnn.optim.clip_by_global_norm",
    "charnn.optim.Adam.step", "charnn.optim.SGD.step", "charnn.gradcheck.gradcheck",
    "charnn.data.Batches",
}


def resolve(name: str) -> object:
    """Import the longest module prefix of a dotted name, then getattr the rest."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)   # AttributeError names the missing piece
        return obj
    raise ModuleNotFoundError(name)


def names_in_markdown(text: str) -> set[str]:
    """Every charnn name a Markdown text uses: in inline code and in ```python blocks."""
    names = set()
    for block in PY_BLOCK.findall(text):
        names.update(DOTTED.findall(block))
        for module, in_parens, on_line in FROM_IMPORT.findall(block):
            imported = [n.strip() for n in (in_parens or on_line).split(",") if n.strip()]
            for alias in imported:
                names.add(f"{module}.{alias}")
                # alias.attr.attr... (e.g. model.loss_and_grads after `from charnn import model`)
                for chain in re.findall(rf"(?<![\w.]){alias}((?:\.[A-Za-z_]\w*)+)", block):
                    names.add(f"{module}.{alias}{chain}")
    text = PY_BLOCK.sub("", text)
    for span in INLINE_CODE.findall(text):
        names.update(DOTTED.findall(span))
    return names


def broken(names: set[str]) -> list[str]:
    bad = []
    for name in sorted(names):
        try:
            resolve(name)
        except (ImportError, AttributeError) as exc:
            bad.append(f"{name} ({type(exc).__name__}: {exc})")
    return bad


def test_docs_exist():
    assert ROOT / "docs" / "derivation.md" in DOCS


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_code_name_in_docs_resolves(doc: Path):
    names = names_in_markdown(doc.read_text(encoding="utf-8"))
    bad = broken(names)
    assert not bad, f"{doc.name} names code that does not exist: {bad}"


def test_derivation_ties_the_equations_to_the_engine():
    names = names_in_markdown((ROOT / "docs" / "derivation.md").read_text(encoding="utf-8"))
    missing = REQUIRED_IN_DERIVATION - names
    assert not missing, f"docs/derivation.md no longer names: {sorted(missing)}"


def test_every_code_name_in_readme_resolves():
    names = names_in_markdown(README.read_text(encoding="utf-8"))
    assert not broken(names), f"README.md names code that does not exist: {broken(names)}"


def test_name_extraction():
    text = ("Implemented in `charnn.model.backward`, see `charnn.optim.Adam.step()`; not `numpy.sum`;\n"
            "load with `charnn.checkpoint.load(charnn.checkpoint.resolve(run))`; not `runs/charnn.log`.\n"
            "```python\nfrom charnn.data import Batches, split\nfrom charnn import (\n    model,\n)\n"
            "x = charnn.optim.Adam\nloss = model.loss_and_grads(p, a, b)\n```\n")
    assert names_in_markdown(text) == {
        "charnn.model.backward", "charnn.optim.Adam.step", "charnn.checkpoint.load", "charnn.checkpoint.resolve",
        "charnn.data", "charnn.data.Batches", "charnn.data.split", "charnn.model", "charnn.optim.Adam",
        "charnn.model.loss_and_grads"}
    assert broken({"charnn.model.backward", "charnn.optim.Adam.step"}) == []
    assert broken({"charnn.model.no_such_function"}) and broken({"charnn.no_such_module.f"})


def _cli_reference_tool():
    """tools/gen_cli_reference.py, imported by path (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_cli_reference", ROOT / "tools" / "gen_cli_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_cli_reference_matches_the_parser():
    tool = _cli_reference_tool()
    block = tool.current_block(README.read_text(encoding="utf-8"))
    assert block is not None, "README.md lost its CLI reference markers: see tools/gen_cli_reference.py"
    expected = tool.render()
    if block != expected:
        pytest.fail("README.md's CLI reference no longer matches charnn.cli.build_parser() (a subcommand "
                    "or flag was added or changed): run `python tools/gen_cli_reference.py` and commit "
                    "README.md.\n" + tool.diff(block, expected)[:4000], pytrace=False)


def test_cli_reference_covers_every_subcommand():
    from charnn.cli import build_parser

    tool = _cli_reference_tool()
    progs = [prog for prog, _ in tool.help_texts()]
    subs = {a.dest: a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)}
    names = {f"charnn {name}" for action in subs.values() for name in action.choices}
    assert progs[0] == "charnn" and names <= set(progs) and len(progs) == len(set(progs))
    assert "### `charnn gradcheck`" in tool.render()
