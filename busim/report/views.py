"""What a run, its replications or a comparison shows, built once as plain data.

Every table and text a user reads (publishers, consumers and why, latency,
chains, consistency and drift, reads, invariants, the verdict; and the
configuration, from :mod:`busim.report.settings`) is a
:class:`~busim.report.tables.TableView` or a few sentences here, without
Rich and without markup. The console (:mod:`busim.report.console`),
report.md and report.html render the same views, so they cannot disagree;
they style a cell by its tone and choose a layout, but never compute or
word a figure of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from busim.analysis.intervals import CONFIDENCE, Interval
from busim.analysis.invariants import (
    INVARIANT_METRICS,
    NOT_MEASURED,
    InvariantOutcome,
    bound_text,
    failed_invariants,
    measure_text,
)
from busim.analysis.latency import LatencySummary
from busim.analysis.summary import ConsumerSummary
from busim.report.failure_views import failure_rows
from busim.report.settings import configuration, format_rate
from busim.report.tables import (
    BLANK,
    Cell,
    Column,
    Heading,
    Row,
    TableView,
    Verdict,
    count_cell,
    duration_cell,
    number_cell,
    text_cell,
)
from busim.results import Comparison, Replications, Result
from busim.scenario import Scenario
from busim.scenario.schema import Consumer
from busim.scenario.units import ABSENT, format_duration
from busim.words import count_of, counted


# ---------------------------------------------------------------- what each shows
@dataclass(frozen=True)
class RunViews:
    """Everything a single run shows, in the order a report reads it."""

    heading: Heading
    verdict: Verdict
    key_figures: TableView
    publishers: TableView
    consumers: TableView
    latency: TableView
    generator: TableView | None  # a real run's load generator
    chains: TableView | None
    consistency: TableView | None
    most_drifted: tuple[tuple[str, str], ...]  # (which counter, its most drifted keys)
    invariants: TableView | None
    configuration: tuple[TableView, ...]

    @property
    def tables(self) -> tuple[TableView, ...]:
        """Every table of the results, in order (not the configuration)."""
        found = (self.key_figures, self.publishers, self.consumers, self.latency)
        extra = (self.generator, self.chains, self.consistency, self.invariants)
        return found + tuple(table for table in extra if table is not None)


@dataclass(frozen=True)
class ReplicationsViews:
    heading: Heading
    figures: TableView
    invariants: TableView | None
    verdict: Verdict


@dataclass(frozen=True)
class ComparisonViews:
    """Variants side by side: what each changes, a table per consumer, and each variant's verdict."""

    title: str
    how: str  # the same seed, or replications on the same seeds
    variants: TableView  # each variant and its overrides
    consumers: tuple[tuple[str, TableView], ...]  # (consumer, its figures across the variants)
    verdicts: tuple[tuple[str, Cell], ...]  # (variant, its verdict)
    replicated: bool = False
    note: str = ""


# ---------------------------------------------------------------- words


# A reason in the words of the broker at hand, where they differ from results.json's generic names.
_BROKER_WORDS = {
    "ack_timeout": {
        "rabbitmq": "consumer timeout",
        "rabbitmq-quorum": "consumer timeout",
        "sqs-standard": "visibility timeout",
        "sqs-fifo": "visibility timeout",
        "sns-sqs": "visibility timeout",
        "nats-jetstream": "ack wait",
        "redis-streams": "claimed when idle",
    },
    "crash_before_ack": {"kafka": "crash before commit"},
}


def reason_label(reason: str, preset: str) -> str:
    """How a reason of ``by_reason`` is named on ``preset``."""
    return _BROKER_WORDS.get(reason, {}).get(preset, reason.replace("_", " "))


def chain_labels(names: list[str]) -> list[str]:
    """Short labels for chains named ``Event > consumer > Event > consumer``: the consumers, unless two would match."""
    short = [" > ".join(name.split(" > ")[1::2]) for name in names]
    return short if len(set(short)) == len(short) else names


# ---------------------------------------------------------------- a run
def run_views(result: Result) -> RunViews:
    """Every table and text of a single run, simulated here or read back from its folder."""
    summary = result.summary
    drifted = tuple(
        (f"{name} {counter}", "; ".join(f"key {d.key}: {d.expected:,} → {d.actual:,}" for d in state.most_drifted[:3]))
        for name, consumer in summary.consumers.items()
        for counter, state in consumer.state.items()
        if state.most_drifted
    )
    has_state = any(consumer.state for consumer in summary.consumers.values())
    return RunViews(
        heading=_heading(result),
        verdict=_verdict(result),
        key_figures=_key_figures(result),
        publishers=_publishers(result),
        consumers=_consumers(result),
        latency=_latency(result),
        generator=_generator(result) if result.real is not None else None,
        chains=_chains(result) if summary.chains else None,
        consistency=_consistency(result) if has_state else None,
        most_drifted=drifted,
        invariants=invariants_table(summary.invariants) if summary.invariants else None,
        configuration=configuration(result.scenario),
    )


def _heading(result: Result) -> Heading:
    scenario = result.scenario
    ran = "simulated" if result.real is None else f"ran for real on {result.real.driver} at {result.real.broker} for"
    if result.real is not None and result.real.partial:
        how = Cell(f"{ran} {format_duration(result.sim_time_s)}, interrupted: partial results", tone="bad")
    elif result.drained:
        how = Cell(f"{ran} {format_duration(result.sim_time_s)}, drained")
    elif result.stopped is not None:
        stop = result.stopped
        how = Cell(
            f"{ran} {format_duration(result.sim_time_s)}, stopped at {format_duration(stop.at_s)}: "
            f"{stop.consumer} in a delivery loop",
            tone="bad",
        )
    else:
        how = Cell(
            f"{ran} {format_duration(result.sim_time_s)}, stopped at duration + drain_timeout with work left",
            tone="bad",
        )
    counts = result.messages
    messages = counts.published + counts.emitted
    words = f"{counts.published:,} published, {counts.emitted:,} emitted" if counts.emitted else None
    return Heading(
        result.source.run_name(scenario.name),
        scenario.description,
        (Cell(f"seed {scenario.seed}", scenario.seed), how, Cell(words or counted(messages, "message"), messages)),
        result.source.overrides,
    )


def _verdict(result: Result) -> Verdict:
    verdict = _consistency_verdict(result)
    behind = result.real.generator.verdict() if result.real is not None else None
    notes = [behind] if behind is not None else []
    notes += [note for lifecycle in result.summary.lifecycle.values() for note in lifecycle.notes]
    if not notes:
        return verdict
    said = " ".join(f"Note: {note[0].upper()}{note[1:]}." for note in notes)
    return replace(verdict, headline=f"{verdict.headline} {said}")


def _consistency_verdict(result: Result) -> Verdict:
    summary = result.summary
    failed = failed_invariants(summary.invariants)
    items = result.violations + result.invariant_failures
    if summary.consistent and not failed:
        words = "Consistent: every message's effects were applied exactly once."
        if summary.invariants:
            words = "Consistent: every message's effects were applied exactly once, and every invariant holds."
        return Verdict(True, words)
    if summary.consistent:
        return Verdict(False, "Consistent with exactly-once processing, but invariants fail:", items)
    if failed:
        return Verdict(False, "Inconsistent with exactly-once processing, and invariants fail:", items)
    return Verdict(False, "Inconsistent with exactly-once processing:", items)


def _drift(consumer: ConsumerSummary) -> Cell:
    if not consumer.state:
        return Cell(ABSENT)
    drift = sum(state.abs_drift for state in consumer.state.values())
    return count_cell(drift)


def _key_figures(result: Result) -> TableView:
    """Per consumer, the figures that matter most: delivered, duplicate effects, lost, p99 latency, drift."""
    rows = tuple(
        Row(
            name,
            (
                number_cell(consumer.delivered),
                count_cell(consumer.duplicate_effects),
                count_cell(consumer.lost),
                duration_cell(consumer.latency_s.end_to_end.p99),
                _drift(consumer),
            ),
        )
        for name, consumer in result.summary.consumers.items()
    )
    columns = ("deliveries", "duplicate effects", "lost", "latency p99", "abs drift")
    return TableView("At a glance", tuple(Column(header) for header in columns), rows, label="consumer")


# The publishers' figures shown only where some publisher has them: (heading, summary attribute).
PUBLISHER_FIGURES = (
    ("failed", "failed"),
    ("resent", "resent"),
    ("deduplicated", "deduplicated"),
    ("crashed", "crashed"),
    ("lost to crash", "lost_to_crash"),
    ("relayed twice", "relayed_twice"),
)


def _publishers(result: Result) -> TableView:
    publishers = result.summary.publishers
    # Failures and resends only where the scenario can produce them, to keep the table narrow.
    extra = [
        (heading, attribute)
        for heading, attribute in PUBLISHER_FIGURES
        if any(getattr(publisher, attribute) for publisher in publishers.values())
    ]
    columns = (
        Column("published"),
        Column("delayed by an outage"),
        Column("longest delay"),
        *(Column(heading) for heading, _ in extra),
    )
    rows = tuple(
        Row(
            name,
            (
                number_cell(publisher.published),
                number_cell(publisher.delayed_by_outage),
                duration_cell(publisher.max_publish_delay_s) if publisher.delayed_by_outage else Cell(ABSENT),
                *(number_cell(getattr(publisher, attribute)) for _, attribute in extra),
            ),
        )
        for name, publisher in publishers.items()
    )
    return TableView("Publishers", columns, rows, label="publisher")


# Every figure of a consumer that the tables show: (row label, summary attribute, whether non-zero is an anomaly)
CONSUMER_ROWS = (
    ("messages subscribed", "subscribed", False),
    ("deliveries", "delivered", False),
    ("processed", "processed", False),
    ("duplicate deliveries", "duplicate_deliveries", True),
    ("duplicate effects", "duplicate_effects", True),
    ("redelivered", "redelivered", False),
    ("lost", "lost", True),
    ("dead-lettered", "dead_lettered", True),
    ("stuck pending", "stuck_pending", True),
    ("rejected", "rejected", False),
    ("wrongly rejected", "wrongly_rejected", True),
    ("wrongly accepted", "wrongly_accepted", True),
    ("oversold", "oversold", True),
    ("lost updates", "lost_updates", True),
    ("optimistic retries", "optimistic_retries", False),
    ("out of order", "out_of_order", False),
    ("in flight at end", "in_flight_at_end", True),
    ("max backlog", "max_backlog", False),
    ("idle instances", "idle_instances", True),
    ("busiest instance", "busiest_instance_share", False),
    ("publishes refused", "rejected_publishes", False),
    ("crashes", "crashes", False),
    ("recovery p50 / max", "recovery_s", False),
    ("emitted", "emitted", False),
)


# Rows that only a few scenarios can produce, left out while they are 0.
_ONLY_WHEN_SEEN = ("rejected_publishes", "idle_instances")
# Rows shown only where a consumer is set up to produce them.
_ONLY_WHEN_SET: dict[str, Callable[[Scenario, Consumer], bool]] = {
    "oversold": lambda _, consumer: consumer.effects_isolation != "atomic",
    "lost_updates": lambda _, consumer: consumer.effects_isolation == "read-modify-write",
    "optimistic_retries": lambda _, consumer: consumer.effects_isolation == "optimistic",
    "recovery_s": lambda _, consumer: consumer.snapshot_every is not None and consumer.crash is not None,
    "emitted": lambda _, consumer: bool(consumer.emits),
    "failures": lambda _, consumer: consumer.failures is not None,
    # Only a broker that waits for acks with nothing to redeliver (Redis without a claimer) leaves entries pending.
    "stuck_pending": lambda scenario, _: (
        scenario.broker.claim_interval == "off" and scenario.broker.delivery == "at-least-once"
    ),
}


def row_shown(scenario: Scenario, attribute: str, values: list[object]) -> bool:
    """Whether the consumers' table shows the row of ``attribute``, given each consumer's value."""
    if attribute in _ONLY_WHEN_SEEN and not any(values):
        return False
    set_up = _ONLY_WHEN_SET.get(attribute)
    return (
        not set_up
        or (any(values) and attribute != "recovery_s")
        or any(set_up(scenario, consumer) for consumer in scenario.consumers)
    )


# Why, by consumer: (consumer, or "" for all; words).
WhyParts = list[tuple[str, str]]


def _joined(parts: WhyParts, several: bool) -> str:
    return "; ".join(f"{owner}: {words}" if several and owner else words for owner, words in parts if words)


# Reasons named by a plural noun: counted, so that one reads "1 duplicate effect".
_COUNTED_REASONS = {"duplicate_effects": "duplicate effect"}


def _listed(counts: dict[str, int], name: Callable[[str], str]) -> str:
    return ", ".join(
        counted(count, _COUNTED_REASONS[reason]) if reason in _COUNTED_REASONS else f"{count:,} {name(reason)}"
        for reason, count in counts.items()
    )


def _reasons(result: Result, attribute: str) -> WhyParts:
    preset = result.scenario.broker.preset
    return [
        (name, _listed(consumer.by_reason.get(attribute) or {}, lambda reason: reason_label(reason, preset)))
        for name, consumer in result.summary.consumers.items()
        if consumer.by_reason.get(attribute)
    ]


def _busiest_why(result: Result, _attribute: str) -> WhyParts:
    if result.scenario.broker.preset == "kafka":
        return [("", "the share of its deliveries")]  # partitions, not instances, set the spread
    return [(name, _even_share(result.scenario.consumer(name))) for name in result.summary.consumers]


def _even_share(consumer: Consumer) -> str:
    if consumer.autoscale is not None:
        return "instances came and went with the scaler"
    return f"{1 / consumer.instances:.0%} would be an even share"


def _idle_why(result: Result, _attribute: str) -> WhyParts:
    broker = result.scenario.broker
    if broker.preset != "kafka":
        return []
    parts: WhyParts = []
    for name in result.summary.consumers:
        members = result.scenario.consumer(name).workers
        if members > (broker.partitions or 1):
            parts.append(("", f"{counted(members, 'member')} for {counted(broker.partitions or 1, 'partition')}"))
    return parts


def _duplicate_effects_why(result: Result, attribute: str) -> WhyParts:
    """The causes of duplicate effects, and why an idempotent consumer's store let them through."""
    several = len(result.summary.consumers) > 1
    why = _joined(_reasons(result, attribute), several)
    missed = _joined(_reasons(result, "dedup_missed"), several)
    if not missed:
        return _reasons(result, attribute)
    return [("", f"{why}; past the dedup store: {missed}")]


def _emitted_why(result: Result, _attribute: str) -> WhyParts:
    return [
        (name, ", ".join(f"{count:,} {event}" for event, count in consumer.emitted.items()))
        for name, consumer in result.summary.consumers.items()
        if consumer.emitted
    ]


def _recovery_why(result: Result, _attribute: str) -> WhyParts:
    return [
        (name, f"restart + replay of up to {counted(max(consumer.replayed_events), 'event')}")
        for name, consumer in result.summary.consumers.items()
        if consumer.replayed_events
    ]


def _stuck_pending_why(result: Result, attribute: str) -> WhyParts:
    """Why entries were left pending, how many were never processed, and how long the oldest had been idle."""
    reasons = _reasons(result, attribute)
    if not reasons:
        return []
    consumers = result.summary.consumers.values()
    note = stuck_pending_note(
        sum(consumer.stuck_pending for consumer in consumers),
        sum(consumer.stuck_pending_unprocessed for consumer in consumers),
        [consumer.stuck_pending_age_s.max for consumer in consumers],
    )
    return [("", _joined(reasons, len(result.summary.consumers) > 1) + note)]


def stuck_pending_note(stuck: int, unprocessed: int, idle_s: list[float | None]) -> str:
    """What follows the reasons entries were left pending: how many were never processed, and the
    longest any had been idle, given each consumer's longest (None: none left)."""
    longest = max((value for value in idle_s if value is not None), default=None)
    if longest is None:
        return ""
    waits = "it waits" if stuck == 1 else "they wait"
    return f"; {unprocessed:,} never processed; {waits} for a claim, idle up to {format_duration(longest)}"


def _crashes_why(result: Result, _attribute: str) -> WhyParts:
    return [
        (name, missed_crashes_note(consumer.by_reason.get("missed_crashes") or {}))
        for name, consumer in result.summary.consumers.items()
    ]


def missed_crashes_note(reasons: dict[str, int]) -> str:
    """Scheduled crashes that did not happen, and why, from ``by_reason.missed_crashes``."""
    missed = sum(reasons.values())
    if not missed:
        return ""
    why = _listed(reasons, lambda reason: _MISSED_CRASH_REASONS.get(reason, reason.replace("_", " ")))
    return f"{counted(missed, 'scheduled crash')} did not happen: {why}"


_MISSED_CRASH_REASONS = {"instance_down": "instance down then", "count_not_reached": "count never reached"}

_SPECIAL_WHY: dict[str, Callable[[Result, str], WhyParts]] = {
    "crashes": _crashes_why,
    "stuck_pending": _stuck_pending_why,
    "busiest_instance_share": _busiest_why,
    "idle_instances": _idle_why,
    "duplicate_effects": _duplicate_effects_why,
    "emitted": _emitted_why,
    "recovery_s": _recovery_why,
}


def _consumer_cells(attribute: str, anomaly: bool, values: list[Any]) -> tuple[Cell, ...]:
    if attribute == "recovery_s":
        return tuple(
            Cell(f"{format_duration(value.p50)} / {format_duration(value.max)}", value.p50)
            if value.count
            else Cell(ABSENT)
            for value in values
        )
    if attribute == "emitted":
        return tuple(
            Cell(f"{sum(value.values()):,}", sum(value.values())) if value else Cell(ABSENT) for value in values
        )
    if attribute == "busiest_instance_share":
        return tuple(Cell(f"{value:.0%}", value) for value in values)
    return tuple(count_cell(value) if anomaly else number_cell(value) for value in values)


def _consumers(result: Result) -> TableView:
    consumers = result.summary.consumers
    scenario = result.scenario
    several = len(consumers) > 1
    rows = []
    for label, attribute, anomaly in CONSUMER_ROWS:
        values = [getattr(consumer, attribute) for consumer in consumers.values()]
        if not row_shown(scenario, attribute, values):
            continue
        if attribute == "busiest_instance_share" and all(
            scenario.consumer(name).most_instances == 1 for name in consumers
        ):
            continue
        parts = _SPECIAL_WHY.get(attribute, _reasons)(result, attribute)
        parts = [(owner, words) for owner, words in parts if words]
        cells = _consumer_cells(attribute, anomaly, values)
        rows.append(Row(label, cells, _joined(parts, several), why_parts=tuple(parts)))
    rows += failure_rows(scenario, consumers)
    rows += read_rows(scenario, consumers)
    rows += lifecycle_rows(result)
    columns = tuple(Column(name) for name in consumers)
    return TableView("Consumers", columns, tuple(rows), why=True)


def read_rows(scenario: Scenario, consumers: dict[str, ConsumerSummary]) -> list[Row]:
    """Rows on the reads of the consumers' read models; none unless some consumer has ``queries``.

    A consumer without them shows a dash. The cells stay narrow, as the other
    rows' do; the share of stale reads goes with the why.
    """
    queried = {name: scenario.consumer(name).queries for name in consumers}
    if not any(queried.values()):
        return []
    stale, p50, p99, newest = [], [], [], []
    shares: WhyParts = []
    several = sum(queries is not None for queries in queried.values()) > 1
    for name, consumer in consumers.items():
        queries = queried[name]
        if queries is None:
            for cells in (stale, p50, p99, newest):
                cells.append(Cell(ABSENT))
            continue
        stale.append(number_cell(consumer.stale_reads))
        age_s = consumer.staleness_age_s
        p50.append(duration_cell(age_s.p50 if age_s else None))
        p99.append(duration_cell(age_s.p99 if age_s else None))
        newest.append(duration_cell(consumer.newest_missing_age_s.p50 if consumer.newest_missing_age_s else None))
        fraction = consumer.stale_read_fraction
        share = f"{fraction:.1%} of " if fraction is not None else ""
        shares.append(
            (name, f"{share}{counted(consumer.reads, 'read')} of {queries.counter} at {format_rate(queries.rate)}/s")
        )
    return [
        Row("stale reads", tuple(stale), _joined(shares, several), why_parts=tuple(shares)),
        Row("staleness p50", tuple(p50), "since the oldest event not yet applied"),
        Row("staleness p99", tuple(p99)),
        Row("newest missed p50", tuple(newest), "since the newest event not yet applied"),
    ]


def lifecycle_rows(result: Result) -> list[Row]:
    """Rows on deploys and scaling; none unless some consumer deploys or scales, and a dash for one that
    does neither."""
    lifecycles = result.summary.lifecycle
    if not lifecycles:
        return []
    columns: list[list[Cell]] = [[], [], [], []]  # deploys, delayed by them, peak instances, scale changes
    windows: WhyParts = []
    costs: WhyParts = []
    rebalances: WhyParts = []
    for name in result.summary.consumers:
        lifecycle = lifecycles.get(name)
        if lifecycle is None:
            for cells in columns:
                cells.append(Cell(ABSENT))
            continue
        figures = (len(lifecycle.deploys), lifecycle.delayed_by_deploys, lifecycle.peak_instances)
        for cells, value in zip(columns, (*figures, lifecycle.scale_changes)):
            cells.append(number_cell(value))
        if lifecycle.deploys:
            windows.append(
                (name, ", ".join(_window_text(window.start_s, window.end_s) for window in lifecycle.deploys))
            )
        cost = f"{lifecycle.instance_seconds:,.0f} instance-seconds"
        if lifecycle.backlog_drain_s is not None:
            cost += f"; the backlog drained {format_duration(lifecycle.backlog_drain_s)} after its peak"
        costs.append((name, cost))
        if lifecycle.rebalances is not None:
            rebalances.append((name, counted(lifecycle.rebalances, "rebalance")))
    several = len(lifecycles) > 1
    deploys, delayed, peak, changes = (tuple(cells) for cells in columns)
    return [
        Row("deploys", deploys, _joined(windows, several), why_parts=tuple(windows)),
        Row("delayed by deploys", delayed, "messages that waited for a worker during a deploy"),
        Row("peak instances", peak, _joined(costs, several), why_parts=tuple(costs)),
        Row("scale changes", changes, _joined(rebalances, several), why_parts=tuple(rebalances)),
    ]


def _window_text(start_s: float, end_s: float | None) -> str:
    """A deploy's window, from its start to its end or the run's."""
    return f"{format_duration(start_s)} to {format_duration(end_s) if end_s is not None else 'the end'}"


_LATENCY_COLUMNS = ("count", "mean", "p50", "p90", "p99", "p99.9", "max")


def _warm_up_note(scenario: Scenario) -> str:
    warmup = scenario.warmup
    return f", published at or after the {format_duration(warmup)} warm-up" if warmup else ""


def _latency(result: Result) -> TableView:
    note = _warm_up_note(result.scenario)
    if not result.drained:
        note += ", of the messages processed before the run stopped"
    real = result.real
    rows = []
    for name, consumer in result.summary.consumers.items():
        latency = consumer.latency_s
        parts = (
            (("broker", latency.broker), ("queue wait", latency.queue_wait))
            if real is None
            else (("from send", real.latency_from_send_s[name]),)
        )
        for label, summary, sub in (
            (name, latency.end_to_end, False),
            *((label, part, True) for label, part in parts),
            ("processing", latency.processing, True),
        ):
            rows.append(_latency_row(label, summary, sub))
    columns = tuple(Column(heading) for heading in _LATENCY_COLUMNS)
    if real is None:
        return TableView(f"Latency: publish to first completed processing{note}", columns, tuple(rows))
    return TableView(
        f"Latency: due time to first completed processing{note}",
        columns,
        tuple(rows),
        caption="Measured from each message's due time in the schedule, and (from send) from when it actually "
        "went out. A real broker does not show when it enqueued a message: latency is not split into broker "
        "and queue wait.",
    )


def _latency_row(label: str, summary: LatencySummary, sub: bool) -> Row:
    values = (summary.mean, summary.p50, summary.p90, summary.p99, summary.p999, summary.max)
    return Row(label, (number_cell(summary.count), *map(duration_cell, values)), sub=sub)


def _generator(result: Result) -> TableView:
    """A real run's load generator against its schedule: one row per figure, a column for the broker."""
    assert result.real is not None
    generator = result.real.generator
    lag = generator.lag_s
    rows = (
        Row("copies due", (number_cell(generator.copies),)),
        Row("sent", (number_cell(generator.sent),)),
        Row("refused by the broker", (count_cell(generator.refused),)),
        Row("lag p50", (duration_cell(lag.p50),)),
        Row("lag p99", (duration_cell(lag.p99),)),
        Row("lag max", (duration_cell(lag.max),)),
        Row("waited for confirms", (duration_cell(generator.waited_for_broker_s),)),
    )
    caption = (
        "Lag: how late each copy went out against its due time. Copies: each message, and the duplicates and "
        "resends the scenario injects."
    )
    return TableView("Load generator", (Column(result.real.driver),), rows, caption=caption)


def _chains(result: Result) -> TableView:
    chains = result.summary.chains
    rows, captions = [], []
    for chain, path in zip(chains.values(), chain_labels(list(chains))):
        latency = chain.latency_s
        rows.append(
            Row(
                path,
                (
                    number_cell(chain.completed),
                    count_cell(chain.duplicate_completions),
                    *map(duration_cell, (latency.p50, latency.p99, latency.max)),
                ),
            )
        )
        for hop in chain.hops:
            hop_latency = hop.latency_s
            rows.append(
                Row(
                    f"{hop.event} > {hop.consumer}",
                    (
                        number_cell(hop.messages),
                        count_cell(hop.duplicates),
                        *map(duration_cell, (hop_latency.p50, hop_latency.p99, hop_latency.max)),
                    ),
                    sub=True,
                )
            )
        first, last = chain.hops[0], chain.hops[-1]
        duplicates = chain.duplicate_completions
        captions.append(
            f"{path}: {count_of(chain.completed, chain.published, f'{first.event} message')} reached {last.consumer}"
            + (f", with {counted(duplicates, 'duplicate')}" if duplicates else "")
        )
    columns = tuple(Column(heading) for heading in ("messages", "dups", "p50", "p99", "max"))
    title = f"Event chains: latency from publish to the last consumer{_warm_up_note(result.scenario)}"
    return TableView(title, columns, tuple(rows), caption="\n".join(captions))


def _consistency(result: Result) -> TableView:
    rows = tuple(
        Row(
            name,
            (
                text_cell(counter),
                number_cell(state.expected_total),
                number_cell(state.actual_total),
                count_cell(state.keys_diverged),
                count_cell(state.abs_drift),
            ),
        )
        for name, consumer in result.summary.consumers.items()
        for counter, state in consumer.state.items()
    )
    columns = (Column("counter", right=False), *(Column(h) for h in ("expected", "actual", "keys off", "abs drift")))
    return TableView("State against an exactly-once reference", columns, rows, label="consumer")


# ---------------------------------------------------------------- invariants
def invariant_rows(outcomes: Iterable[InvariantOutcome]) -> list[tuple[str, str, str, bool]]:
    """Each bound checked: the invariant's name, what it checks, the measured value, whether it held."""
    return [
        (outcome.name, bound_text(outcome), measure_text(outcome.measured, outcome.metric), outcome.passed)
        for outcome in outcomes
    ]


_INVARIANT_COLUMNS = (Column("checks", right=False), Column("measured"), Column("result", right=False))


def invariants_table(outcomes: tuple[InvariantOutcome, ...]) -> TableView:
    rows = tuple(
        Row(
            name,
            (
                text_cell(check),
                Cell(measured, outcome.measured),
                Cell("PASS", True, "good") if passed else Cell("FAIL", False, "bad"),
            ),
        )
        for outcome, (name, check, measured, passed) in zip(outcomes, invariant_rows(outcomes))
    )
    return TableView("Invariants", _INVARIANT_COLUMNS, rows, label="invariant")


# ---------------------------------------------------------------- replications
# (row label, path below consumers.<name>, a duration, a short label for narrow layouts or "")
FIGURE_ROWS = (
    ("latency mean", ("latency_s", "end_to_end", "mean"), True, ""),
    ("latency p50", ("latency_s", "end_to_end", "p50"), True, "p50"),
    ("latency p99", ("latency_s", "end_to_end", "p99"), True, "p99"),
    ("latency p99.9", ("latency_s", "end_to_end", "p999"), True, ""),
    ("duplicate deliveries", ("duplicate_deliveries",), False, ""),
    ("duplicate effects", ("duplicate_effects",), False, "dup. effects"),
    ("redelivered", ("redelivered",), False, ""),
    ("lost", ("lost",), False, "lost"),
    ("dead-lettered", ("dead_lettered",), False, "dead"),
    ("wrongly rejected", ("wrongly_rejected",), False, "wrong rej."),
    ("wrongly accepted", ("wrongly_accepted",), False, ""),
    ("out of order", ("out_of_order",), False, "out of order"),
    ("in flight at end", ("in_flight_at_end",), False, ""),
    ("max backlog", ("max_backlog",), False, ""),
    ("crashes", ("crashes",), False, ""),
)

# The figures on a read model's reads, where a consumer has queries: (label, path, a duration, short label).
READ_FIGURES = (
    ("stale reads", ("stale_reads",), False, "stale reads"),
    ("staleness p50", ("staleness_age_s", "p50"), True, "stale p50"),
    ("staleness p99", ("staleness_age_s", "p99"), True, "stale p99"),
)

# Figures of the consistency patterns, each where some consumer is set up for it: (label, path, a duration,
# short label, the row of the consumers' table that says when).
PATTERN_FIGURES = (
    ("stuck pending", ("stuck_pending",), False, "stuck pending", "stuck_pending"),
    ("oversold", ("oversold",), False, "oversold", "oversold"),
    ("lost updates", ("lost_updates",), False, "lost updates", "lost_updates"),
    ("optimistic retries", ("optimistic_retries",), False, "optimistic retries", "optimistic_retries"),
    ("recovery mean", ("recovery_s", "mean"), True, "recovery mean", "recovery_s"),
    ("recovery max", ("recovery_s", "max"), True, "recovery max", "recovery_s"),
    ("failed attempts", ("failures", "failed_attempts"), False, "failed", "failures"),
    ("given up", ("failures", "given_up"), False, "given up", "failures"),
    ("poison still going round", ("failures", "poison_in_flight"), False, "poison looping", "failures"),
)

Figure = tuple[str, tuple[str, ...], bool, str]


def _patterns(scenarios: list[Scenario], consumers: list[str]) -> list[Figure]:
    return [
        (label, path, duration, short)
        for label, path, duration, short, attribute in PATTERN_FIGURES
        if any(
            _ONLY_WHEN_SET[attribute](scenario, scenario.consumer(name))
            for scenario in scenarios
            for name in consumers
            if name in {consumer.name for consumer in scenario.consumers}
        )
    ]


def intervaltext_cell(interval: Interval, duration: bool) -> str:
    """A mean, with its interval when there are two replications or more; an interval below 0 shown from 0."""
    show = format_duration if duration else (lambda value: f"{value:,.1f}")
    alone = format_duration(interval.mean) if duration else f"{interval.mean:,.0f}"
    if interval.replications < 2:  # a single run's interval has NaN ends, which no duration formats
        return alone
    # Every figure shown is a count or a duration: an interval reaching below 0 is shown from 0.
    low, high = show(max(interval.low, 0.0)), show(interval.high)
    if interval.low == interval.high or low == high == show(interval.mean):
        return alone
    return f"{show(interval.mean)} [{low}, {high}]"


def _interval_cell(interval: Interval | None, duration: bool) -> Cell:
    if interval is None:
        return Cell(ABSENT)
    return Cell(intervaltext_cell(interval, duration), interval.mean)


def replications_views(replications: Replications) -> ReplicationsViews:
    """Each consumer's figures as a mean with its confidence interval, and how often runs were consistent."""
    scenario = replications.scenario
    count = replications.runs
    names = list(replications.consumers)
    rows = []
    for label, path, duration, _ in (*FIGURE_ROWS, *_patterns([scenario], names)):
        rows.append(Row(label, tuple(_interval_cell(replications.figure(name, *path), duration) for name in names)))
    several = len(names) > 1
    for name in names:
        for counter in scenario.consumer(name).state:
            cell = _interval_cell(replications.figure(name, "state", counter, "abs_drift"), False)
            label = f"{counter} drift ({name})" if several else f"{counter} drift"
            rows.append(Row(label, tuple(cell if other == name else BLANK for other in names)))
    for name in names:
        if scenario.consumer(name).queries is None:
            continue
        for label, path, duration, _ in READ_FIGURES:
            cell = _interval_cell(replications.figure(name, *path), duration)
            shown = f"{label} ({name})" if several else label
            rows.append(Row(shown, tuple(cell if other == name else BLANK for other in names)))
    figures = TableView(
        f"Mean of {counted(count, 'replication')}",
        tuple(Column(name) for name in names),
        tuple(rows),
        caption=f"[low, high]: the {CONFIDENCE:.0%} confidence interval of the mean",
    )
    heading = Heading(
        replications.source.run_name(scenario.name),
        scenario.description,
        (
            Cell(f"root seed {scenario.seed}", scenario.seed),
            Cell(f"{counted(count, 'replication')} on seeds spawned from it", count),
        ),
        tuple(replications.source.overrides),
    )
    verdict = Verdict(
        replications.consistent and not replications.invariant_failures,
        f"{replications.verdict[:1].upper()}{replications.verdict[1:]}.",
        replications.failures,
    )
    invariants = _replicated_invariants(replications) if replications.invariants else None
    return ReplicationsViews(heading, figures, invariants, verdict)


def _replicated_invariants(replications: Replications) -> TableView:
    """Each bound of the invariants: its measured mean and interval, and in how many replications it held."""
    count = replications.runs
    rows = []
    for index, outcome in enumerate(replications.invariants):
        interval = replications.invariant(index)
        passed = replications.invariant_passes(index)
        rows.append(
            Row(
                outcome.name,
                (
                    text_cell(bound_text(outcome)),
                    Cell(_measured_interval(interval, outcome), None if interval is None else interval.mean),
                    Cell(f"passed in {passed} of {count}", passed, "good" if passed == count else "bad"),
                ),
            )
        )
    return TableView("Invariants", _INVARIANT_COLUMNS, tuple(rows), label="invariant")


def _measured_interval(interval: Interval | None, outcome: InvariantOutcome) -> str:
    if interval is None:
        return NOT_MEASURED
    if interval.replications < 2:
        return measure_text(interval.mean, outcome.metric)
    if interval.low == interval.high:
        return measure_text(interval.mean, outcome.metric)
    if INVARIANT_METRICS.get(outcome.metric, "count") == "count":  # as the tables of figures show a mean of counts
        return f"{interval.mean:,.1f} [{interval.low:,.1f}, {interval.high:,.1f}]"
    # The model has clamped the interval at 0 where the figure cannot be negative.
    shown = (measure_text(value, outcome.metric) for value in (interval.mean, interval.low, interval.high))
    return "{} [{}, {}]".format(*shown)


# ---------------------------------------------------------------- a comparison
def comparison_views(comparison: Comparison) -> ComparisonViews:
    """The variants side by side, each figure with its change from the first variant; each variant's header
    says whether it ran for real or simulated, and whether it was read back from a finished run's folder."""
    folders = [comparison.folder(name) for name in comparison.names]
    simulated = [outcome for outcome, folder in zip(comparison.outcomes, folders) if folder is None]
    replicated = comparison.replicated
    count = max((outcome.runs for outcome in simulated), default=1)
    how = f"{counted(count, 'replication')} each, on the same seeds" if count > 1 else "the same seed"
    if not simulated:
        how = "their own seeds: each is a finished run, read back"
    elif len(simulated) < len(folders):
        how += "; a finished run as it ran, on its own seed"
    overrides = [comparison.overrides(name) for name in comparison.names]
    # What all variants share (a --set given to every one) says nothing about how they differ.
    shared = set.intersection(*(set(found) for found in overrides)) if overrides else set()
    variants = TableView(
        "Variants",
        (Column("changes", right=False),),
        tuple(
            Row(label, (text_cell(_changes(outcome, folder, [o for o in found if o not in shared])),))
            for label, outcome, folder, found in zip(comparison.labels, comparison.outcomes, folders, overrides)
        ),
        label="variant",
        caption=f"Every variant also sets {', '.join(o for o in overrides[0] if o in shared)}." if shared else "",
    )
    tables = []
    for consumer in comparison.consumers:
        title = f"{consumer}: change against {comparison.names[0]}"
        if replicated:
            title += f" (means; [low, high] {CONFIDENCE:.0%} confidence interval)"
        columns = tuple(Column(label) for label in comparison.labels)
        tables.append((consumer, TableView(title, columns, tuple(comparison_rows(comparison, consumer)))))
    verdicts = tuple(
        (label, Cell(words, good, "good" if good else "bad"))
        for label, (words, good) in zip(comparison.labels, comparison_verdicts(comparison))
    )
    name = comparison.outcomes[0].scenario.name
    seeded = f" on seed {comparison.seed}" if simulated else ""
    return ComparisonViews(
        title=f"{name}: {len(comparison.names)} variants{seeded}",
        how=how,
        variants=variants,
        consumers=tuple(tables),
        verdicts=verdicts,
        replicated=replicated,
        note=f"Changes are against the first variant, {comparison.names[0]}.",
    )


def _changes(outcome: Result | Replications, folder: str | None, overrides: list[str]) -> str:
    """What a variant changes, and what of the file that leaves out; for a finished run, where it was read
    from and the seed it ran on."""
    left_out = f"leaves out {'; '.join(outcome.source.left_out)}" if outcome.source.left_out else ""
    changes = f"{', '.join(overrides)} ({left_out})" if overrides and left_out else ", ".join(overrides) or left_out
    if folder is None:
        return changes or "the scenario as written"
    seed = "root seed" if isinstance(outcome, Replications) else "seed"
    ran = f"{counted(outcome.runs, 'replication')} on {seed}" if outcome.runs > 1 else seed
    read = f"finished run read from {folder} ({ran} {outcome.scenario.seed})"
    if isinstance(outcome, Result) and outcome.real is not None and outcome.real.partial:
        generator = outcome.real.generator
        read += (
            f", interrupted: it sent {generator.sent:,} of its schedule's {generator.copies:,} copies, and its "
            "figures cover only those"
        )
    return read + (f": {changes}" if changes else "")


def _compared_figures(comparison: Comparison, consumer: str) -> list[Figure]:
    """Every figure of ``consumer`` that the variants compare: the main ones, drift, reads and patterns."""
    counters = dict.fromkeys(
        counter for outcome in comparison.outcomes for counter in outcome.scenario.consumer(consumer).state
    )
    drift = [(f"{counter} drift", ("state", counter, "abs_drift"), False, f"{counter} drift") for counter in counters]
    scenarios = [outcome.scenario for outcome in comparison.outcomes]
    queried = any(scenario.consumer(consumer).queries for scenario in scenarios)
    return [*FIGURE_ROWS, *drift, *(READ_FIGURES if queried else ()), *_patterns(scenarios, [consumer])]


def comparison_rows(comparison: Comparison, consumer: str) -> list[Row]:
    """Each figure of ``consumer`` across the variants, with its change from the first variant."""
    rows = []
    for label, path, duration, short in _compared_figures(comparison, consumer):
        # A variant whose consumer has no queries has no reads: absent, not 0.
        read = any(path == figure[1] for figure in READ_FIGURES)
        figures = [
            None if read and outcome.scenario.consumer(consumer).queries is None else outcome.figure(consumer, *path)
            for outcome in comparison.outcomes
        ]
        if all(figure is None for figure in figures):
            continue
        cells = tuple(_compared(figure, figures[0], duration) for figure in figures)
        rows.append(Row(label, cells, short=short))
    return rows


def _compared(figure: Interval | None, baseline: Interval | None, duration: bool) -> Cell:
    if figure is None:
        return Cell(ABSENT)
    plain = _interval_cell(figure, duration)
    if baseline is None or figure is baseline:
        return plain
    change = figure.mean - baseline.mean
    if change == 0:
        return plain
    if baseline.mean and abs(change / baseline.mean) >= 9:
        note = f" (x{figure.mean / baseline.mean:,.0f})"
    elif baseline.mean:
        if abs(change / baseline.mean) < 0.005:
            return plain
        note = f" ({change / abs(baseline.mean):+.0%})"
    else:
        note = f" ({'+' if change > 0 else '-'}{format_duration(abs(change)) if duration else count_text(abs(change))})"
    return replace(plain, note=note, note_tone="bad" if change > 0 else "good")


def count_text(count: float) -> str:
    """A count as a whole number where it is one (a single run's), else to one decimal (a mean)."""
    return f"{count:,.0f}" if float(count).is_integer() else f"{count:,.1f}"


def comparison_verdicts(comparison: Comparison) -> list[tuple[str, bool]]:
    """Each variant's verdict in words, and whether it passed as ``busim run --fail-on-violation`` judges a run:
    by its invariants where it has them, else by exactly-once processing."""
    return [(outcome.verdict, outcome.passed) for outcome in comparison.outcomes]
