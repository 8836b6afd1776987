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
    printed = output.getvalue()
    if path.stem == "quickstart":
        # The comparison table: the idempotent consumer never applies a duplicate, the naive one does.
        rows = [line.split() for line in printed.splitlines() if line.split()[:1] in (["none"], ["dedup"])]
        assert len(rows) == 6
        assert all(row[2] == "0" for row in rows if row[0] == "dedup")
        assert any(int(row[2]) > 0 for row in rows if row[0] == "none")
    if path.stem == "broker-tradeoffs":
        # Every naive variant applies duplicates and no idempotent one does; idempotent Kafka refuses no order wrongly.
        table = [line.split() for line in printed.splitlines() if len(line.split()) == 5]
        rows = {row[0]: row for row in table if row[1] != "p99"}
        for name in ("rabbitmq", "kafka", "sqs"):
            assert int(rows[name][2].replace(",", "")) > 0
            assert rows[f"{name}-idempotent"][2] == "0"
        assert rows["kafka-idempotent"][3] == "0"
