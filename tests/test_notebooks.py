"""The notebooks run, through a Jupyter kernel, against the current API, so they cannot rot."""

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT


def executed(path):
    """The notebook run top to bottom in a fresh kernel, from the project's folder."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(ROOT)}}).execute()
    return notebook


def printed(notebook) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_runs_in_a_kernel(path):
    notebook = executed(path)
    errors = [output for cell in notebook.cells for output in cell.get("outputs", []) if output.output_type == "error"]
    assert errors == []
    text = printed(notebook)
    if path.stem == "quickstart":
        # The comparison table: the idempotent consumer never applies a duplicate, the naive one does.
        rows = [line.split() for line in text.splitlines() if line.split()[:1] in (["none"], ["dedup"])]
        assert len(rows) == 6
        assert all(row[2] == "0" for row in rows if row[0] == "dedup")
        assert any(int(row[2]) > 0 for row in rows if row[0] == "none")
    if path.stem == "broker-tradeoffs":
        # Every naive variant applies duplicates and no idempotent one does; idempotent Kafka refuses no order wrongly.
        table = [line.split() for line in text.splitlines() if len(line.split()) == 5]
        rows = {row[0]: row for row in table if row[1] != "p99"}
        for name in ("rabbitmq", "kafka", "sqs"):
            assert int(rows[name][2].replace(",", "")) > 0
            assert rows[f"{name}-idempotent"][2] == "0"
        assert rows["kafka-idempotent"][3] == "0"
        # The two chart cells show their figures inline.
        images = [
            output
            for cell in notebook.cells
            if cell.cell_type == "code"
            for output in cell.outputs
            if "image/png" in output.get("data", {})
        ]
        assert len(images) == 2
