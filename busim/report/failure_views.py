"""The rows and sentences on processing failures: attempts, give-ups, poison messages, stalls, slowdowns.

Built once from the summary, as plain rows and words, for every view (the
console, Markdown, HTML) to render.
"""

from __future__ import annotations

from busim.analysis.failures import FailureSummary
from busim.analysis.summary import ConsumerSummary
from busim.report.tables import Cell, Row, count_cell, duration_cell, number_cell
from busim.scenario import Scenario
from busim.scenario.schema import Consumer
from busim.scenario.units import ABSENT, format_duration
from busim.words import counted

# What giving up does, by on_give_up and, for a nack, by the broker's rule.
_NACKS = {
    "ideal": "nacked: requeued",
    "rabbitmq": "nacked: requeued at the head",
    "rabbitmq-quorum": "nacked: requeued, counted toward delivery_limit",
    "sqs-standard": "left to the visibility timeout",
    "sqs-fifo": "left to the visibility timeout",
    "sns-sqs": "left to the visibility timeout",
    "nats-jetstream": "nak'ed",
    "redis-streams": "left pending for a claim",
}
_GIVE_UPS = {"dead_letter": "dead-lettered", "drop": "dropped", "ack": "acked and logged"}


def give_up_words(scenario: Scenario, consumer: Consumer) -> str:
    """What ``consumer`` does with a delivery whose attempts all failed, in the broker's terms."""
    broker = scenario.broker
    if broker.preset == "kafka":
        if broker.kafka_retry == "retry_topic" and broker.retry_topic is not None:
            delays = ", ".join(format_duration(delay) for delay in broker.retry_topic.delays)
            return f"forwarded to retry topics ({delays}), then a dead-letter topic"
        return f"{_GIVE_UPS[consumer.on_give_up or 'ack']}, after blocking its partition"
    action = consumer.on_give_up or "nack"
    return _NACKS[broker.preset] if action == "nack" else _GIVE_UPS[action]


def failure_rows(scenario: Scenario, consumers: dict[str, ConsumerSummary]) -> list[Row]:
    """Rows on processing failures and slowdowns; none unless some consumer has them.

    A consumer without them shows a dash.
    """
    figures = {name: consumer.failures for name, consumer in consumers.items()}
    if not any(figures.values()):
        return []
    several = sum(summary is not None for summary in figures.values()) > 1
    rows: list[Row] = []
    for label, cell, why in _ROWS:
        cells = tuple(cell(summary) if summary is not None else Cell(ABSENT) for summary in figures.values())
        parts = tuple(
            (name, words)
            for name, summary in figures.items()
            if summary is not None and (words := why(scenario, scenario.consumer(name), summary))
        )
        if all(cell.value in (0, None) for cell in cells) and label not in _ALWAYS:
            continue
        rows.append(Row(label, cells, "; ".join(f"{o}: {w}" if several else w for o, w in parts), why_parts=parts))
    return rows


def _attempts_why(_scenario: Scenario, _consumer: Consumer, summary: FailureSummary) -> str:
    return f"{summary.failed_attempts:,} failed, {counted(summary.retries, 'retry', 'retries')}"


def _given_up_why(scenario: Scenario, consumer: Consumer, summary: FailureSummary) -> str:
    return give_up_words(scenario, consumer) if summary.given_up else ""


def _stall_why(scenario: Scenario, _consumer: Consumer, summary: FailureSummary) -> str:
    if not summary.stalls:
        return ""
    words = f"{counted(summary.stalls, 'delivery', 'deliveries')} held their worker, longest "
    words += format_duration(summary.max_stall_s)
    if summary.stall_by_partition_s:
        worst = max(summary.stall_by_partition_s, key=summary.stall_by_partition_s.__getitem__)
        words += (
            f"; {counted(summary.held_up, 'record')} waited behind them, partition {worst} the longest "
            f"({format_duration(summary.stall_by_partition_s[worst])})"
        )
    return words


def _retry_delay_why(_scenario: Scenario, _consumer: Consumer, summary: FailureSummary) -> str:
    delay = summary.retry_delay_s
    if not delay.count:
        return ""
    return f"{counted(delay.count, 'message')} processed after a failure, late by up to {format_duration(delay.max)}"


def _slowed_why(_scenario: Scenario, consumer: Consumer, summary: FailureSummary) -> str:
    windows = consumer.slowdowns or ()
    return ", ".join(
        f"x{window.factor:g} from {format_duration(window.start)} to {format_duration(window.to)}" for window in windows
    )


def _none(_scenario: Scenario, _consumer: Consumer, _summary: FailureSummary) -> str:
    return ""


# (label, the cell of a consumer's figures, why)
_ROWS = (
    ("attempts", lambda summary: number_cell(summary.attempts), _attempts_why),
    ("given up", lambda summary: count_cell(summary.given_up), _given_up_why),
    ("poison messages", lambda summary: count_cell(summary.poison_messages), _none),
    ("time held by retries", lambda summary: duration_cell(summary.stall_s), _stall_why),
    ("retry delay p50", lambda summary: duration_cell(summary.retry_delay_s.p50), _retry_delay_why),
    ("slowed processings", lambda summary: number_cell(summary.slowed), _slowed_why),
)
_ALWAYS = ("attempts",)
