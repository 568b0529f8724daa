"""The model-selection notebook runs headless, cell by cell, without errors."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from .conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "model_selection.ipynb"


def test_model_selection_notebook_runs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )  # fmt: skip
    try:
        client.execute()  # raises CellExecutionError on any cell error
    finally:
        (NOTEBOOK.parent / "best_model.joblib").unlink(missing_ok=True)
    outputs = "\n".join(
        output.get("text", "") for cell in notebook.cells
        for output in cell.get("outputs", [])
    )  # fmt: skip
    assert "comparing ['efficientnet_lite0'" in outputs
    assert "validation accuracy: " in outputs
    assert "fine-tuned: " in outputs  # the fine-tuned candidate's row
    images = [
        output for cell in notebook.cells for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]  # fmt: skip
    # The two comparison plots and the confusion matrix.
    assert len(images) == 3
