"""tools/figures.py renders the figures of docs/derivation.md from charnn itself: the test runs it with
tiny settings into tmp_path, so the script cannot rot, and checks that the committed figures exist."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import matplotlib.image

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("unrolled.png", "vanishing.png", "gradflow-cells.png", "gradflow-lag.png")
PNG = b"\x89PNG\r\n\x1a\n"


def _tool():
    spec = importlib.util.spec_from_file_location("figures", ROOT / "tools" / "figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_figure_script_renders_every_figure(tmp_path, capsys):
    assert _tool().main(["--quick", "--out", str(tmp_path)]) == 0
    for name in FIGURES:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG, name
        img = matplotlib.image.imread(tmp_path / name)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400, (name, img.shape)
        assert img[..., :3].std() > 0.05, f"{name} is blank"
    out = capsys.readouterr().out
    assert "sigma_max" in out and "lstm 1x8" in out


def test_the_committed_figures_exist_and_the_docs_show_them():
    doc = (ROOT / "docs" / "derivation.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"\]\(img/([\w.-]+\.png)\)", doc))
    for name in FIGURES:
        path = ROOT / "docs" / "img" / name
        assert path.read_bytes()[:8] == PNG, f"docs/img/{name}: run `python tools/figures.py`"
        assert name in shown, f"docs/derivation.md does not show img/{name}"
