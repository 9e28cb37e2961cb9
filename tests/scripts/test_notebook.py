"""notebooks/explore.ipynb runs top to bottom on the tiny run (nbclient, the venv's python3 kernel) and draws
its figures."""

import os
import shutil

import nbformat
from conftest import REPO, SHARED
from nbclient import NotebookClient

NOTEBOOK = REPO / "notebooks" / "explore.ipynb"


def test_notebook_executes_on_the_tiny_run(tiny_run, tmp_path, monkeypatch):
    run = shutil.copy(tiny_run, tmp_path / "run.h5")
    monkeypatch.setenv("LANDSCAPE_RUN", str(run))
    monkeypatch.setenv("LANDSCAPE_LIMIT", "100")
    monkeypatch.setenv("LANDSCAPE_DATA", str(SHARED / "data"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # raises on cell errors
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 7  # loss curves, histograms, bits, path, perturbation, surfaces, Hessian
    text = "".join(o.get("text", "") for o in outputs)
    assert str(run) in text and "distinct values" in text
