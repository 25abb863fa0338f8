"""The docs name real code and stay presentable.

Every `charnn.module.name` written in docs/*.md, README.md and BENCHMARKS.md resolves:
docs/derivation.md ties each equation to the function that implements it by writing its dotted
name in backticks (e.g. `charnn.model.backward`). If a function is renamed or removed, this test
names the stale reference so the text is fixed along with the code.

docs/cli.md, the command-line reference, is generated from the argument parser by
tools/gen_cli_reference.py, and the test fails when the two disagree.

The pages a newcomer reads hold no machine paths, issue numbers or work diary.
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
BENCHMARKS = ROOT / "BENCHMARKS.md"
CLI_DOC = ROOT / "docs" / "cli.md"
PAGES = [README, BENCHMARKS, *DOCS]
PRESETS = sorted((ROOT / "configs").glob("*.toml"))

# A dotted name inside inline code: `charnn.model.backward`, `charnn.train.optim.Adam.step()`.
INLINE_CODE = re.compile(r"`([^`\n]+)`")
DOTTED = re.compile(r"(?<![\w./-])(charnn(?:\.[A-Za-z_]\w*)+)")
# Inside a ```python block: `from charnn.x import a, b` binds a and b; then a.attr is checked too.
FROM_IMPORT = re.compile(r"^[ \t]*from[ \t]+(charnn(?:\.\w+)*)[ \t]+import[ \t]+(?:\(([\w\s,]+)\)|([\w \t,]+))", re.M)
PY_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)

# Names the derivation must tie its equations to (the public engine API).
REQUIRED_IN_DERIVATION = {
    "charnn.model.forward", "charnn.model.backward", "charnn.model.loss_and_grads",
    "charnn.model.step", "charnn.model.generate", "charnn.model.evaluate",
    "charnn.train.optim.clip_by_value", "charnn.train.optim.clip_by_global_norm",
    "charnn.train.optim.Adam.step", "charnn.train.optim.SGD.step", "charnn.eval.gradcheck.gradcheck",
    "charnn.data.Batches",
}

# What a page for a newcomer does not hold: paths of one machine, issue numbers, the work diary.
NOT_IN_PAGES = {
    "a machine path": re.compile(r"(?<![\w.~$])/(?:work|root|home|Users)/"),
    "an issue number": re.compile(r"\bissues?\s*#?\d+|(?<![\w(\[/&#])#\d+\b", re.I),
    "a work session": re.compile(r"\bsessions?\b", re.I),
    "a preset version": re.compile(r"\bv[1-9]\b"),
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
    assert CLI_DOC in DOCS, "docs/cli.md is missing: run `python tools/gen_cli_reference.py`"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_code_name_in_docs_resolves(doc: Path):
    names = names_in_markdown(doc.read_text(encoding="utf-8"))
    bad = broken(names)
    assert not bad, f"{doc.name} names code that does not exist: {bad}"


def test_derivation_ties_the_equations_to_the_engine():
    names = names_in_markdown((ROOT / "docs" / "derivation.md").read_text(encoding="utf-8"))
    missing = REQUIRED_IN_DERIVATION - names
    assert not missing, f"docs/derivation.md no longer names: {sorted(missing)}"


@pytest.mark.parametrize("page", [README, BENCHMARKS], ids=lambda p: p.name)
def test_every_code_name_in_readme_and_benchmarks_resolves(page: Path):
    names = names_in_markdown(page.read_text(encoding="utf-8"))
    bad = broken(names)
    assert not bad, f"{page.name} names code that does not exist: {bad}"


def test_name_extraction():
    text = ("Implemented in `charnn.model.backward`, see `charnn.train.optim.Adam.step()`; not `numpy.sum`;\n"
            "load with `charnn.train.checkpoint.load(charnn.train.checkpoint.resolve(run))`; "
            "not `runs/charnn.log`.\n"
            "```python\nfrom charnn.data import Batches, split\nfrom charnn import (\n    model,\n)\n"
            "x = charnn.train.optim.Adam\nloss = model.loss_and_grads(p, a, b)\n```\n")
    assert names_in_markdown(text) == {
        "charnn.model.backward", "charnn.train.optim.Adam.step", "charnn.train.checkpoint.load",
        "charnn.train.checkpoint.resolve", "charnn.data", "charnn.data.Batches", "charnn.data.split",
        "charnn.model", "charnn.train.optim.Adam", "charnn.model.loss_and_grads"}
    assert broken({"charnn.model.backward", "charnn.train.optim.Adam.step"}) == []
    assert broken({"charnn.model.no_such_function"}) and broken({"charnn.no_such_module.f"})


def _cli_reference_tool():
    """tools/gen_cli_reference.py, imported by path (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_cli_reference", ROOT / "tools" / "gen_cli_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_docs_cli_reference_matches_the_parser():
    tool = _cli_reference_tool()
    assert tool.CLI_DOC == CLI_DOC
    assert CLI_DOC.exists(), "docs/cli.md is missing: run `python tools/gen_cli_reference.py`"
    block = tool.current_block(CLI_DOC.read_text(encoding="utf-8"))
    assert block is not None, "docs/cli.md lost its CLI reference markers: see tools/gen_cli_reference.py"
    expected = tool.render()
    if block != expected:
        pytest.fail("docs/cli.md no longer matches charnn.cli.build_parser() (a subcommand or flag was "
                    "added or changed): run `python tools/gen_cli_reference.py` and commit "
                    "docs/cli.md.\n" + tool.diff(block, expected)[:4000], pytrace=False)


def test_docs_cli_reference_covers_every_subcommand():
    from charnn.cli import build_parser

    tool = _cli_reference_tool()
    progs = [prog for prog, _ in tool.help_texts()]
    subs = {a.dest: a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)}
    names = {f"charnn {name}" for action in subs.values() for name in action.choices}
    assert progs[0] == "charnn" and names <= set(progs) and len(progs) == len(set(progs))
    assert "## `charnn gradcheck`" in tool.render()


def test_readme_links_the_docs_and_keeps_the_ci_test_command():
    text = README.read_text(encoding="utf-8")
    # .ci/run runs exactly this command; the README is where a newcomer finds it.
    assert 'pip install -e ".[test]" && python -m pytest' in text
    for target in ("docs/cli.md", "docs/derivation.md", "docs/cells.md", "BENCHMARKS.md"):
        assert f"]({target})" in text, f"README.md no longer links to {target}"
    assert tool_markers_absent(text), "the generated CLI reference lives in docs/cli.md, not in README.md"


def tool_markers_absent(text: str) -> bool:
    return "cli-reference:start" not in text and "cli-reference:end" not in text


@pytest.mark.parametrize("page", PAGES + PRESETS, ids=lambda p: p.name)
def test_pages_hold_no_machine_paths_issue_numbers_or_diary(page: Path):
    found = []
    for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        for what, pattern in NOT_IN_PAGES.items():
            m = pattern.search(line)
            if m:
                found.append(f"line {n}: {what} ({m.group(0)!r})")
    assert not found, f"{page.relative_to(ROOT)} holds: " + "; ".join(found)
