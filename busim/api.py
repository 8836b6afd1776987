"""The Python API: load a scenario, simulate it, read or save the result.

    >>> import busim
    >>> scenario = busim.load("scenarios/flash-sale.yaml")
    >>> result = busim.simulate(scenario)
    >>> result.summary.consumers["inventory"].latency_s.end_to_end.p99

The command line is a thin layer over these functions.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from busim.analysis import Summary, summarize
from busim.engine import RunRecord
from busim.engine import run as run_engine
from busim.engine.arrivals import expected_count
from busim.engine.simulation import ProgressCallback
from busim.errors import Problem, RunTooLargeError, ScenarioError
from busim.scenario import LoadedScenario, Scenario, load_scenario
from busim.scenario.loader import format_path
from busim.scenario.references import reference_problems
from busim.version import __version__

RESULT_SCHEMA = "busim.result/1"
# A run keeps a record of every delivery: about 0.5 GB per million messages a consumer group handles.
MAX_MESSAGES = 20_000_000
BYTES_PER_MESSAGE = 400


@dataclass(frozen=True)
class Source:
    """Where a scenario came from, for the record."""

    file: str | None = None
    sha256: str | None = None
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Result:
    """A finished run: its raw record, its summary, and how it was made."""

    record: RunRecord
    summary: Summary
    source: Source = Source()
    wall_time_s: float = 0.0

    @property
    def scenario(self) -> Scenario:
        """The scenario as run, with its seed filled in."""
        return self.record.scenario

    def to_dict(self) -> dict[str, Any]:
        """The results.json document (see docs/results.md)."""
        scenario = self.record.scenario
        return {
            "schema": RESULT_SCHEMA,
            "scenario": {
                "name": scenario.name,
                "description": scenario.description,
                "seed": scenario.seed,
                "file": self.source.file,
                "sha256": self.source.sha256,
                "overrides": list(self.source.overrides),
            },
            "run": {
                "wall_time_s": round(self.wall_time_s, 3),
                "busim_version": __version__,
                "python_version": platform.python_version(),
                "numpy_version": np.__version__,
                "simpy_version": simpy.__version__,
            },
            "sim_time_s": self.record.sim_time_s,
            "drained": self.record.drained,
            "messages": {"published": len(self.record.messages)},
            "publishers": {name: asdict(summary) for name, summary in self.summary.publishers.items()},
            "consumers": {name: asdict(summary) for name, summary in self.summary.consumers.items()},
            "consistency": {
                "consistent": self.summary.consistent,
                "violations": list(self.summary.violations),
            },
        }


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Read and validate a scenario file; ``overrides`` are ``KEY=VALUE`` strings.

    Raises:
        busim.errors.BusimError: the file is missing or the scenario invalid.
    """
    return load_scenario(path, overrides).scenario


def fresh_seed() -> int:
    """A seed from the operating system's entropy, for scenarios that name none."""
    return int(np.random.SeedSequence().entropy % (1 << 63))


def expected_group_messages(scenario: Scenario) -> float:
    """The mean number of messages the consumer groups handle together (a message counts once per group)."""
    per_event = {event: 0.0 for event in scenario.events}
    for publisher in scenario.publishers:
        per_event[publisher.event] += expected_count(publisher, scenario.duration)
    return sum(per_event[event] for consumer in scenario.consumers for event in set(consumer.subscribes))


def check_references(scenario: Scenario) -> None:
    """Check what relates the parts of a scenario built in code, as loading checks a file.

    Raises:
        ScenarioError: with every broken reference.
    """
    problems = reference_problems(scenario.model_dump())
    if problems:
        raise ScenarioError(
            [Problem("<scenario>", None, None, format_path(path), message) for path, message in problems]
        )


def check_size(scenario: Scenario, max_messages: int = MAX_MESSAGES) -> None:
    """Refuse a run that would not fit in memory, before it starts.

    Raises:
        RunTooLargeError: the consumer groups would handle more than ``max_messages`` messages.
    """
    expected = expected_group_messages(scenario)
    if expected > max_messages:
        raise RunTooLargeError(
            f"{scenario.name} would have its consumer groups handle about {expected:,.0f} messages, more than the "
            f"limit of {max_messages:,} (about {_bytes(expected * BYTES_PER_MESSAGE)} of memory for the "
            "records); shorten duration, lower the rates, set publishers[].count, or raise the limit "
            "with --max-messages"
        )


def _bytes(amount: float) -> str:
    return f"{amount / 1e9:,.1f} GB" if amount >= 1e9 else f"{max(amount / 1e6, 0.1):,.1f} MB"


def simulate(
    scenario: Scenario | LoadedScenario,
    seed: int | None = None,
    on_progress: ProgressCallback | None = None,
    max_messages: int = MAX_MESSAGES,
) -> Result:
    """Simulate a scenario and summarise the run.

    The seed is ``seed`` if given, else the scenario's, else a fresh one; the
    result's scenario records it, so that the run can be repeated exactly.

    Raises:
        RunTooLargeError: the run would handle more than ``max_messages`` messages (see :func:`check_size`).
    """
    source = Source()
    if isinstance(scenario, LoadedScenario):
        source = Source(scenario.file, scenario.sha256, scenario.overrides)
        scenario = scenario.scenario
    else:
        check_references(scenario)
    check_size(scenario, max_messages)
    if seed is None:
        seed = scenario.seed if scenario.seed is not None else fresh_seed()
    started = time.perf_counter()
    record = run_engine(scenario, seed, on_progress)
    summary = summarize(record)
    return Result(record=record, summary=summary, source=source, wall_time_s=time.perf_counter() - started)
