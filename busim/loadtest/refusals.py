"""What a real run cannot realise: every such key of a scenario, found before anything starts.

A key is realised when the run makes the real broker, publisher or
consumer behave as the key says. Keys whose value is the preset's default
describe the real broker's own behaviour (its latency, its limits) and need
nothing. Every other key that the run cannot realise is refused, all of them
in one error, each at its place in the file: never silently ignored.
"""

from __future__ import annotations

import re
from typing import Any

from busim.errors import Problem, ScenarioError
from busim.loadtest.drivers.base import Driver, Refusal
from busim.loadtest.stores import refusals as store_refusals
from busim.scenario.loader import Document
from busim.scenario.schema import Broker, Consumer, Scenario


def refusals(scenario: Scenario, driver: type[Driver]) -> list[Refusal]:
    """Every key of ``scenario`` that a run on ``driver``'s broker cannot realise."""
    found = _common(scenario) + driver.refusals(scenario)
    for index, consumer in enumerate(scenario.consumers):
        found += store_refusals(consumer, index)
    return sorted(found, key=lambda refusal: _order(scenario, refusal.path))


def check(scenario: Scenario, driver: type[Driver], source: str, document: Document | None = None) -> None:
    """Raise a :class:`ScenarioError` listing every refusal, each located in ``document`` where there is one."""
    found = refusals(scenario, driver)
    if not found:
        return
    problems = []
    for refusal in found:
        if document is None:
            problems.append(Problem(source, None, None, refusal.path, refusal.reason))
        else:
            mark = document.key_mark(parse_path(refusal.path))
            problems.append(Problem(mark.source, mark.line, mark.column, refusal.path, refusal.reason))
    problems.sort(key=lambda problem: (problem.line or 0, problem.column or 0))
    raise ScenarioError(problems)


def parse_path(path: str) -> tuple[str | int, ...]:
    """``consumers[0].crash.at`` -> ``("consumers", 0, "crash", "at")``."""
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        parts.append(int(index) if index else name)
    return tuple(parts)


def _common(scenario: Scenario) -> list[Refusal]:
    broker = scenario.broker
    default = Broker.model_validate({"preset": broker.preset})
    found = []
    if broker.latency != default.latency:
        found.append(
            Refusal(
                "broker.latency",
                "a real broker's latency is what the run measures, not a setting; remove the key to run for real",
            )
        )
    if broker.throughput != default.throughput:
        found.append(
            Refusal("broker.throughput", "a real broker's throughput is what the run measures; remove the key")
        )
    if broker.outages:
        found.append(
            Refusal(
                "broker.outages",
                "cutting the broker's connections for an outage is not built for real runs; "
                "add --set broker.outages=[] to run without it",
            )
        )
    for key in ("slowdowns", "backoff", "kafka_retry", "retry_topic"):
        if getattr(broker, key) is not None:
            found.append(Refusal(f"broker.{key}", f"{_NOT_BUILT} remove broker.{key} to run for real"))
    for index, consumer in enumerate(scenario.consumers):
        where = f"consumers[{index}]"
        found += _failure_refusals(consumer, where)
        if consumer.snapshot_every is not None:
            found.append(
                Refusal(
                    f"{where}.snapshot_every",
                    "event-sourced recovery (replaying events after a restart) is not built for real runs",
                )
            )
        if consumer.deploys:
            found.append(
                Refusal(
                    f"{where}.deploys",
                    "stopping and restarting instances for a deploy is not built for real runs; "
                    f"add --set consumers.{consumer.name}.deploys=[] to run without it",
                )
            )
        if consumer.autoscale is not None:
            found.append(
                Refusal(
                    f"{where}.autoscale",
                    "scaling instances is not built for real runs, which keep the starting instances; "
                    "remove the key to run for real",
                )
            )
    return found


_NOT_BUILT = "processing failures, retries and slowdowns are simulated only, not built for real runs;"


def _failure_refusals(consumer: Consumer, where: str) -> list[Refusal]:
    """A real consumer fails, retries and slows down as its own code does, not as the scenario says."""
    keys = ("failures", "retry", "on_give_up", "slowdowns")
    return [
        Refusal(f"{where}.{key}", f"{_NOT_BUILT} remove {key} to run for real")
        for key in keys
        if getattr(consumer, key) is not None
    ]


def _order(scenario: Scenario, path: str) -> tuple[Any, ...]:
    """File order, roughly: broker keys, then consumers by index, then the rest."""
    parts = parse_path(path)
    section = list(Scenario.model_fields).index(str(parts[0])) if parts and parts[0] in Scenario.model_fields else 99
    return (section, *(str(part) for part in parts[1:]))
