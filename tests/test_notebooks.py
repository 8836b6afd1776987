"""The notebooks run against the current API, so they cannot rot."""

import contextlib
import io
import json

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_code_cells_run_in_order(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    notebook = json.loads(path.read_text())
    namespace: dict = {}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                exec(compile("".join(cell["source"]), f"{path.name}:{cell['id']}", "exec"), namespace)
    assert "duplicate effects" in output.getvalue()
