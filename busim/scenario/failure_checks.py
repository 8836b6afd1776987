"""Checks of processing failures and slowdowns against the rest of a scenario: the broker, the run's length.

Like :mod:`busim.scenario.references`, they read the raw YAML data, and only
values whose shape is right.
"""

from __future__ import annotations

from typing import Any

from busim.scenario.references import Path, _entries, duration_seconds
from busim.scenario.schema import Scenario

# Presets whose broker has no dead-letter destination for a consumer to send a message to.
_NO_DEAD_LETTERS = {
    "nats-jetstream": "JetStream has no dead-letter stream: term the message with on_give_up: drop, "
    "or let max_deliver end its redeliveries",
    "redis-streams": "Redis Streams has no dead-letter stream: use on_give_up: ack (XACK and log) or drop",
}
_KAFKA_NACK = (
    "Kafka has no nack: a consumer either retries in place (broker.kafka_retry: blocking) or forwards the "
    "record to retry topics (kafka_retry: retry_topic); give up with dead_letter, drop or ack"
)

_RETRY_TOPICS = (
    "with kafka_retry: retry_topic a record whose attempts all failed goes to the retry topics, then to the "
    "dead-letter topic; leave on_give_up out, or set it to dead_letter"
)


def failure_problems(data: dict[str, Any]) -> list[tuple[Path, str]]:
    """Return ``(key path, message)`` for every give-up action the broker cannot take, and every slowdown after
    the run ends."""
    broker = data.get("broker")
    broker = broker if isinstance(broker, dict) else {}
    preset = broker.get("preset", "ideal")
    problems: list[tuple[Path, str]] = []
    for index, consumer in _entries(data, "consumers"):
        action = consumer.get("on_give_up")
        at = ("consumers", index, "on_give_up")
        if action == "nack" and preset == "kafka":
            problems.append((at, _KAFKA_NACK))
        elif action not in (None, "dead_letter") and broker.get("kafka_retry") == "retry_topic":
            problems.append((at, _RETRY_TOPICS))
        elif action == "dead_letter" and preset in _NO_DEAD_LETTERS:
            problems.append((at, _NO_DEAD_LETTERS[preset]))
        problems += _late_slowdowns(data, consumer.get("slowdowns"), ("consumers", index, "slowdowns"))
    problems += _late_slowdowns(data, broker.get("slowdowns"), ("broker", "slowdowns"))
    if broker.get("kafka_retry") == "retry_topic" and broker.get("retry_topic") is None:
        problems.append(
            (
                ("broker", "kafka_retry"),
                "kafka_retry: retry_topic needs the topics' delays, such as retry_topic: {delays: [1s, 10s, 60s]}",
            )
        )
    return problems


def _late_slowdowns(data: dict[str, Any], slowdowns: Any, at: Path) -> list[tuple[Path, str]]:
    """Slowdowns from after the run ends would do nothing."""
    duration_s = duration_seconds(data.get("duration"))
    drain_s = duration_seconds(data.get("drain_timeout", Scenario.model_fields["drain_timeout"].default))
    if duration_s is None or drain_s is None or not isinstance(slowdowns, list):
        return []
    horizon_s = duration_s + drain_s
    problems = []
    for index, slowdown in enumerate(slowdowns):
        start_s = duration_seconds(slowdown.get("from")) if isinstance(slowdown, dict) else None
        if start_s is not None and start_s >= horizon_s:
            problems.append(
                (
                    (*at, index, "from"),
                    f"this slowdown starts at {start_s:g}s, after the run ends "
                    f"(duration + drain_timeout: {horizon_s:g}s)",
                )
            )
    return problems
