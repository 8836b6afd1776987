"""Shared test helpers: scenarios built in code, with only what a test varies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from busim.scenario.schema import Scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def consumer(**fields: Any) -> dict[str, Any]:
    """A consumer of Job events, named ``worker`` unless told otherwise."""
    return {"name": "worker", "subscribes": ["Job"], **fields}


def scenario(consumers: list[dict[str, Any]] | None = None, **changes: Any) -> Scenario:
    """A minimal valid scenario: Job events published evenly at 10/s for 10 s (100 messages).

    Each keyword replaces a top-level section of the scenario whole.
    """
    base = {
        "name": "test",
        "seed": 1,
        "duration": 10,
        "events": {"Job": {"key": "item", "fields": {"item": {"uniform_int": {"low": 1, "high": 5}}}}},
        "publishers": [{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 10}],
        "consumers": consumers or [consumer()],
    }
    return Scenario.model_validate(base | changes)


@pytest.fixture
def flash_sale_path() -> Path:
    return SCENARIOS / "flash-sale.yaml"


@pytest.fixture(scope="session")
def flash_sale_run(tmp_path_factory) -> Path:
    """The folder ``busim run scenarios/flash-sale.yaml`` writes, charts and reports included: one run shared
    by the tests that only read it (copy it with :func:`shutil.copytree` to change it)."""
    from typer.testing import CliRunner

    from busim.cli import app

    folder = tmp_path_factory.mktemp("flash-sale-run") / "run"
    ran = CliRunner().invoke(app, ["run", str(SCENARIOS / "flash-sale.yaml"), "--quiet", "--out", str(folder)])
    assert ran.exit_code == 0, ran.output
    return folder


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than the cores, since the real-broker tests spend much of their time
    waiting on brokers and consumer processes (measured on 2 cores: 240 s against 279 s for the suite)."""
    return (os.cpu_count() or 1) + 1
