"""Fixtures of the report tests: a scenario file small enough to sweep and search in a fraction of a second."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import consumer

QUEUEING = {
    "name": "test",
    "seed": 7,
    "duration": 10,
    "events": {"Job": {"key": "item", "fields": {"item": {"uniform_int": {"low": 1, "high": 5}}}}},
    "publishers": [{"name": "source", "event": "Job", "arrivals": "poisson", "rate": 20}],
    "consumers": [consumer(processing_time={"exponential": {"mean": 0.08}})],
}


@pytest.fixture(scope="session")
def queueing_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Jobs at 20/s for 10 s (poisson, seed 7) to one worker instance taking 80 ms on average: one instance falls
    behind, four keep up. A file, as sweeps and searches load one per point; the broker's keys left to its preset."""
    path = tmp_path_factory.mktemp("planning") / "queueing.yaml"
    path.write_text(yaml.safe_dump(QUEUEING, sort_keys=False), encoding="utf-8")
    return path
