"""notebooks/tour.ipynb runs top to bottom on a fresh install and is committed without outputs."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TOUR = ROOT / "notebooks" / "tour.ipynb"


def test_committed_tour_has_no_outputs():
    nb = nbformat.read(TOUR, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, (f"notebooks/tour.ipynb is stored with outputs in cells {dirty}: clear them "
                       f"(jupyter nbconvert --clear-output --inplace notebooks/tour.ipynb)")


@pytest.fixture
def kernel_name(tmp_path, monkeypatch) -> str:
    """A kernel spec that runs this very interpreter, so the kernel sees the installed charnn."""
    from ipykernel.kernelspec import install

    name = "charnn-tour-test"
    install(kernel_name=name, prefix=str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter" / "share" / "jupyter"))
    return name


def gradcheck_results(text: str) -> dict[str, str]:
    """parameter -> "pass" / "FAIL" for each row of the gradient-check tables in `text`."""
    return {line.split()[0]: line.split()[-1] for line in text.splitlines()
            if len(line.split()) > 1 and line.split()[-1] in ("pass", "FAIL")}


def test_gradcheck_rows_count_once():
    table = "parameter  shape  checked  max rel error  result\nW  (8, 8)  40  1e-09  pass\nh0  (3, 8)  24  4e-10  FAIL"
    assert gradcheck_results(table) == {"W": "pass", "h0": "FAIL"}


def test_tour_executes(tmp_path, monkeypatch, kernel_name):
    monkeypatch.setenv("CHARNN_TOUR_SECONDS", "4")     # a few seconds of training instead of a minute
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(TOUR, as_version=4)
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=300,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()   # raises CellExecutionError, naming the cell, if any cell fails

    text = "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.outputs if out.output_type == "stream")
    assert "loss by hand" in text                       # the hand-written pass ran and matched
    assert gradcheck_results(text) == dict.fromkeys(["W", "U", "V", "b", "c", "h0"], "pass")
    for temp in ("0.5", "1.0", "1.5"):
        assert f"--- temperature {temp} ---" in text
    assert "stopped after" in text                      # the high-level train() cell ran
    images = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type in ("display_data", "update_display_data") and "image/png" in out.get("data", {})]
    assert images, "the training cell drew no loss plot"
