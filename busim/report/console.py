"""Terminal output: the progress bar while simulating and the result tables after.

All Rich tables are built here, from a :class:`busim.results.Result`; nothing in
the engine or the analysis knows about them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from busim.analysis.intervals import CONFIDENCE, Interval
from busim.analysis.invariants import (
    COUNTER_MEASURES,
    NOT_MEASURED,
    InvariantOutcome,
    bound_text,
    measure_text,
)
from busim.engine.simulation import ProgressCallback
from busim.results import Comparison, Replications, Result
from busim.scenario import Scenario
from busim.scenario.presets import COMMON_KEYS, PRESETS, preset_rows
from busim.scenario.schema import Consumer
from busim.scenario.units import ABSENT, NEGLIGIBLE_S, format_duration  # noqa: F401 (used by the reports)
from busim.words import count_of, counted


def literal(text: RenderableType) -> RenderableType:
    """A string shown as written: Rich reads no markup (``[bold]``, ``[/]``) and no emoji code (``:smile:``) in
    it. Names, descriptions, keys and variants come from the user."""
    return Text(text) if isinstance(text, str) else text


class _Table(Table):
    """A table whose strings are shown as written (see :func:`literal`); styled cells are :class:`Text`."""

    def add_column(self, header: RenderableType = "", *args, **kwargs) -> None:  # type: ignore[override]
        super().add_column(literal(header), *args, **kwargs)

    def add_row(self, *renderables: RenderableType | None, **kwargs) -> None:  # type: ignore[override]
        super().add_row(*(None if cell is None else literal(cell) for cell in renderables), **kwargs)


def _table(title: str) -> Table:
    return _Table(title=Text(title), title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)


def _count(value: int) -> Text:
    return Text(f"{value:,}", style="bold red" if value else "dim")


def _progress(console: Console, *counts: ProgressColumn) -> Progress:
    """A transient bar: what it does, how far, ``counts``, its clock, the time taken and the time left."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),  # the scenario's name, as written
        BarColumn(),
        *counts,
        TextColumn("{task.fields[clock]}", markup=False),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@contextmanager
def simulation_progress(console: Console, scenario: Scenario, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A progress bar of simulated time over the publishing window, then draining."""
    if not enabled:
        yield None
        return
    progress = _progress(console)
    task = progress.add_task(f"simulating {scenario.name}", total=scenario.duration, clock="")

    def report(now_s: float) -> None:
        phase = "publishing" if now_s < scenario.duration else "draining"
        progress.update(
            task,
            completed=min(now_s, scenario.duration),
            clock=f"{phase}, t={format_duration(now_s)} of {format_duration(scenario.duration)}",
        )

    with progress:
        yield report


@dataclass(frozen=True)
class RunCallbacks:
    """What moves a progress bar while ``busim run`` simulates: after each run, and as simulated time passes."""

    on_run: Callable[[int, int], None] | None = None
    on_progress: ProgressCallback | None = None


@contextmanager
def run_progress(console: Console, scenario: Scenario, runs: int, enabled: bool) -> Iterator[RunCallbacks]:
    """A progress bar of one run's simulated time, or of ``runs`` replications done."""
    if runs > 1:
        with count_progress(console, f"replicating {scenario.name}", runs, enabled) as bar:
            yield RunCallbacks(bar.run_done, bar.simulated) if bar else RunCallbacks()
    else:
        with simulation_progress(console, scenario, enabled) as on_progress:
            yield RunCallbacks(on_progress=on_progress)


def render_outcome(console: Console, outcome: Result | Replications) -> None:
    """Print a run's or replications' tables and verdict."""
    if isinstance(outcome, Replications):
        render_replications(console, outcome)
    else:
        render_result(console, outcome)


def render_result(console: Console, result: Result) -> None:
    """Print the result tables and the consistency verdict."""
    console.print(_heading(result))
    console.print(_publishers_table(result))
    console.print(_consumers_table(result))
    console.print(_latency_table(result))
    if result.summary.chains:
        console.print(_chains_table(result))
        console.print()
    if any(consumer.state for consumer in result.summary.consumers.values()):
        console.print(_consistency_table(result))
        drifted = _most_drifted(result)
        if drifted.plain:
            console.print(drifted, soft_wrap=True)
    if result.summary.invariants:
        console.print(_invariants_table(result.summary.invariants))
    console.print(_verdict(result))


def _heading(result: Result) -> Panel:
    scenario = result.scenario
    messages = result.messages.published + result.messages.emitted
    rate = messages / result.wall_time_s if result.wall_time_s > 0 else 0
    if result.drained:
        drained = "drained"
    elif result.stopped is not None:
        stop = result.stopped  # its consumer is a name, which carries no markup
        drained = f"[red]stopped at {format_duration(stop.at_s)}: {stop.consumer} in a delivery loop[/]"
    else:
        drained = "[red]stopped at duration + drain_timeout with work left[/]"
    lines = [
        Text(scenario.description),
        Text.from_markup(
            f"seed [bold]{scenario.seed}[/] · simulated {format_duration(result.sim_time_s)}, {drained} · "
            f"{counted(messages, 'message')} in {result.wall_time_s:.2f}s ({rate:,.0f} msg/s)",
            emoji=False,  # a consumer's name may hold :fire:, an emoji code
        ),
        Text("overrides: " + " · ".join(f"--set {override}" for override in result.source.overrides))
        if result.source.overrides
        else Text(""),
    ]
    return Panel(Group(*[line for line in lines if line.plain]), title=Text(scenario.name, style="bold"), expand=False)


# The publishers' figures shown only where some publisher has them: (heading, summary attribute).
PUBLISHER_FIGURES = (
    ("failed", "failed"),
    ("resent", "resent"),
    ("deduplicated", "deduplicated"),
    ("crashed", "crashed"),
    ("lost to crash", "lost_to_crash"),
    ("relayed twice", "relayed_twice"),
)


def _publishers_table(result: Result) -> Table:
    table = _table("Publishers")
    table.add_column("publisher")
    table.add_column("published", justify="right")
    table.add_column("delayed by an outage", justify="right")
    table.add_column("longest delay", justify="right")
    publishers = result.summary.publishers.values()
    # Failures and resends only where the scenario can produce them, to keep the table narrow.
    extra = [
        (heading, attribute)
        for heading, attribute in PUBLISHER_FIGURES
        if any(getattr(publisher, attribute) for publisher in publishers)
    ]
    for heading, _ in extra:
        table.add_column(heading, justify="right")
    for name, publisher in result.summary.publishers.items():
        table.add_row(
            name,
            f"{publisher.published:,}",
            f"{publisher.delayed_by_outage:,}",
            format_duration(publisher.max_publish_delay_s) if publisher.delayed_by_outage else ABSENT,
            *(f"{getattr(publisher, attribute):,}" for _, attribute in extra),
        )
    return table


# Every figure of a consumer that the tables show:
# (row label, summary attribute, whether a non-zero value is an anomaly)
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


def _consumers_table(result: Result) -> Table:
    consumers = result.summary.consumers
    table = _table("Consumers")
    table.add_column("", no_wrap=True)
    for name in consumers:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("why", style="dim")
    for label, attribute, anomaly in CONSUMER_ROWS:
        values = [getattr(consumer, attribute) for consumer in consumers.values()]
        if not row_shown(result.scenario, attribute, values):
            continue
        if attribute == "recovery_s":
            cells = [
                f"{format_duration(value.p50)} / {format_duration(value.max)}" if value.count else ABSENT
                for value in values
            ]
        elif attribute == "emitted":
            cells = [f"{sum(value.values()):,}" if value else ABSENT for value in values]
        elif attribute == "busiest_instance_share":
            if all(result.scenario.consumer(name).instances == 1 for name in consumers):
                continue
            cells = [f"{value:.0%}" for value in values]
        else:
            cells = [_count(value) if anomaly else f"{value:,}" for value in values]
        why = _SPECIAL_WHY.get(attribute, _reasons)(result, attribute)
        table.add_row(label, *cells, why)
    for label, cells, why in read_rows(
        result.scenario, {name: asdict(consumer) for name, consumer in consumers.items()}
    ):
        table.add_row(label, *cells, why)
    return table


def read_rows(scenario: Scenario, consumers: dict[str, dict]) -> list[tuple[str, list[str], str]]:
    """Rows on the reads of the consumers' read models: (label, a cell per consumer, why).

    ``consumers`` holds each consumer's results.json figures. There are no
    rows unless some consumer has ``queries``; a consumer without them shows
    a dash. The cells stay narrow, as the other rows' do; the share of stale
    reads goes with the why.
    """
    queried = {name: scenario.consumer(name).queries for name in consumers}
    if not any(queried.values()):
        return []
    stale, p50, p99, newest, shares = [], [], [], [], []
    several = sum(queries is not None for queries in queried.values()) > 1
    for name, figures in consumers.items():
        queries = queried[name]
        if queries is None:
            stale.append(ABSENT)
            p50.append(ABSENT)
            p99.append(ABSENT)
            newest.append(ABSENT)
            continue
        stale.append(f"{figures['stale_reads']:,}")
        age_s = figures["staleness_age_s"] or {}  # null: none measured
        p50.append(format_duration(age_s.get("p50")))
        p99.append(format_duration(age_s.get("p99")))
        newest.append(format_duration((figures.get("newest_missing_age_s") or {}).get("p50")))
        fraction = figures["stale_read_fraction"]
        share = f"{fraction:.1%} of " if fraction is not None else ""
        reads = f"{share}{counted(figures['reads'], 'read')} of {queries.counter} at {_rate(queries.rate)}/s"
        shares.append(f"{name}: {reads}" if several else reads)
    return [
        ("stale reads", stale, "; ".join(shares)),
        ("staleness p50", p50, "since the oldest event not yet applied"),
        ("staleness p99", p99, ""),
        ("newest missed p50", newest, "since the newest event not yet applied"),
    ]


def _rate(per_s: float) -> str:
    """A rate per second as a user would write it: ``1,000``, ``20``, ``0.5``."""
    return f"{per_s:,.0f}" if per_s >= 100 else f"{per_s:.3g}"


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
    """How the console names a reason of ``by_reason`` on ``preset``."""
    return _BROKER_WORDS.get(reason, {}).get(preset, reason.replace("_", " "))


def _busiest_why(result: Result, _attribute: str) -> str:
    if result.scenario.broker.preset == "kafka":
        return "of deliveries"  # partitions, not instances, set the spread
    several = len(result.summary.consumers) > 1
    return "; ".join(
        f"{name + ': ' if several else ''}of deliveries (even: {1 / result.scenario.consumer(name).instances:.0%})"
        for name in result.summary.consumers
    )


def _idle_why(result: Result, _attribute: str) -> str:
    broker = result.scenario.broker
    if broker.preset != "kafka":
        return ""
    parts = []
    for name in result.summary.consumers:
        members = result.scenario.consumer(name).workers
        if members > (broker.partitions or 1):
            parts.append(f"{counted(members, 'member')} for {counted(broker.partitions or 1, 'partition')}")
    return "; ".join(parts)


def _duplicate_effects_why(result: Result, attribute: str) -> str:
    """The causes of duplicate effects, and why an idempotent consumer's store let them through."""
    why = _reasons(result, attribute)
    missed = _reasons(result, "dedup_missed")
    return f"{why}; past the dedup store: {missed}" if missed else why


def _per_event(result: Result, attribute: str) -> str:
    several = len(result.summary.consumers) > 1
    parts = []
    for name, consumer in result.summary.consumers.items():
        listed = ", ".join(f"{count:,} {event}" for event, count in getattr(consumer, attribute).items())
        if listed:
            parts.append(f"{name}: {listed}" if several else listed)
    return "; ".join(parts)


def _recovery_why(result: Result, _attribute: str) -> str:
    parts = []
    for name, consumer in result.summary.consumers.items():
        if consumer.replayed_events:
            most = max(consumer.replayed_events)
            parts.append(f"{name}: restart + replay of up to {counted(most, 'event')}")
    return "; ".join(parts)


def _stuck_pending_why(result: Result, attribute: str) -> str:
    """Why entries were left pending, how many were never processed, and how long the oldest had been
    idle: they wait for a claim."""
    why = _reasons(result, attribute)
    consumers = result.summary.consumers.values()
    idle = [consumer.stuck_pending_age_s.max for consumer in consumers]
    unprocessed = sum(consumer.stuck_pending_unprocessed for consumer in consumers)
    stuck = sum(consumer.stuck_pending for consumer in consumers)
    return why + stuck_pending_note(stuck, unprocessed, idle) if why else why


def stuck_pending_note(stuck: int, unprocessed: int, idle_s: list[float | None]) -> str:
    """What follows the reasons entries were left pending: how many were never processed, and the
    longest any had been idle, given each consumer's longest (None: none left)."""
    longest = max((value for value in idle_s if value is not None), default=None)
    if longest is None:
        return ""
    waits = "it waits" if stuck == 1 else "they wait"
    return f"; {unprocessed:,} never processed; {waits} for a claim, idle up to {format_duration(longest)}"


def _crashes_why(result: Result, _attribute: str) -> str:
    several = len(result.summary.consumers) > 1
    parts = []
    for name, consumer in result.summary.consumers.items():
        note = missed_crashes_note(consumer.by_reason["missed_crashes"])
        if note:
            parts.append(f"{name}: {note}" if several else note)
    return "; ".join(parts)


def missed_crashes_note(reasons: dict[str, int]) -> str:
    """Scheduled crashes that did not happen, and why, from ``by_reason.missed_crashes``."""
    missed = sum(reasons.values())
    if not missed:
        return ""
    why = ", ".join(
        f"{count:,} {_MISSED_CRASH_REASONS.get(reason, reason.replace('_', ' '))}" for reason, count in reasons.items()
    )
    return f"{counted(missed, 'scheduled crash')} did not happen: {why}"


_MISSED_CRASH_REASONS = {"instance_down": "instance down then", "count_not_reached": "count never reached"}

_SPECIAL_WHY = {
    "crashes": _crashes_why,
    "stuck_pending": _stuck_pending_why,
    "busiest_instance_share": _busiest_why,
    "idle_instances": _idle_why,
    "duplicate_effects": _duplicate_effects_why,
    "emitted": _per_event,
    "recovery_s": _recovery_why,
}


def _reasons(result: Result, attribute: str) -> str:
    parts = []
    several = len(result.summary.consumers) > 1
    preset = result.scenario.broker.preset
    for name, consumer in result.summary.consumers.items():
        reasons = consumer.by_reason.get(attribute) or {}
        listed = ", ".join(f"{count:,} {reason_label(reason, preset)}" for reason, count in reasons.items())
        if listed:
            parts.append(f"{name}: {listed}" if several else listed)
    return "; ".join(parts)


def _latency_table(result: Result) -> Table:
    warmup = result.scenario.warmup
    note = f", published at or after the {format_duration(warmup)} warm-up" if warmup else ""
    if not result.drained:
        note += ", of the messages processed before the run stopped"
    table = _table(f"Latency: publish to first completed processing{note}")
    for heading in ("", "count", "mean", "p50", "p90", "p99", "p99.9", "max"):
        table.add_column(heading, justify="right" if heading else "left")
    for name, consumer in result.summary.consumers.items():
        latency = consumer.latency_s
        parts = (
            (name, latency.end_to_end, None),
            ("  broker", latency.broker, "dim"),
            ("  queue wait", latency.queue_wait, "dim"),
            ("  processing", latency.processing, "dim"),
        )
        table.columns[0].no_wrap = True
        for label, summary, style in parts:
            values = (summary.mean, summary.p50, summary.p90, summary.p99, summary.p999, summary.max)
            table.add_row(label, f"{summary.count:,}", *map(format_duration, values), style=style)
    return table


def _chains_table(result: Result) -> Table:
    warmup = result.scenario.warmup
    note = f", published at or after the {format_duration(warmup)} warm-up" if warmup else ""
    table = _table(f"Event chains: latency from publish to the last consumer{note}")
    for heading in ("", "messages", "dups", "p50", "p99", "max"):
        table.add_column(heading, justify="right" if heading else "left")
    table.columns[0].no_wrap = True
    captions = []
    labels = chain_labels(list(result.summary.chains))
    for chain, path in zip(result.summary.chains.values(), labels):
        latency = chain.latency_s
        table.add_row(
            path,
            f"{chain.completed:,}",
            _count(chain.duplicate_completions),
            *map(format_duration, (latency.p50, latency.p99, latency.max)),
        )
        for hop in chain.hops:
            hop_latency = hop.latency_s
            table.add_row(
                f"  {hop.event} > {hop.consumer}",
                f"{hop.messages:,}",
                _count(hop.duplicates),
                *map(format_duration, (hop_latency.p50, hop_latency.p99, hop_latency.max)),
                style="dim",
            )
        first, last = chain.hops[0], chain.hops[-1]
        duplicates = chain.duplicate_completions
        captions.append(
            f"{path}: {count_of(chain.completed, chain.published, f'{first.event} message')} reached {last.consumer}"
            + (f", with {counted(duplicates, 'duplicate')}" if duplicates else "")
        )
    table.caption = Text("\n".join(captions))
    table.caption_justify = "left"
    return table


def chain_labels(names: list[str]) -> list[str]:
    """Short labels for chains named ``Event > consumer > Event > consumer``: the consumers, unless two would match."""
    short = [" > ".join(name.split(" > ")[1::2]) for name in names]
    return short if len(set(short)) == len(short) else names


def _consistency_table(result: Result) -> Table:
    table = _table("State against an exactly-once reference")
    for heading in ("consumer", "counter", "expected", "actual", "keys off", "abs drift"):
        table.add_column(heading, justify="left" if heading in ("consumer", "counter") else "right")
    for name, consumer in result.summary.consumers.items():
        for counter, consistency in consumer.state.items():
            table.add_row(
                name,
                counter,
                f"{consistency.expected_total:,}",
                f"{consistency.actual_total:,}",
                _count(consistency.keys_diverged),
                _count(consistency.abs_drift),
            )
    return table


def _most_drifted(result: Result) -> Text:
    text = Text()
    for name, consumer in result.summary.consumers.items():
        for counter, consistency in consumer.state.items():
            if consistency.most_drifted:
                listed = "; ".join(
                    f"key {drift.key}: {drift.expected:,} → {drift.actual:,}" for drift in consistency.most_drifted[:3]
                )
                text.append(f"  most drifted {name} {counter}, expected → actual: ", style="dim")
                text.append(f"{listed}\n")
    text.rstrip()
    return text


def invariant_rows(outcomes: tuple[InvariantOutcome, ...]) -> list[tuple[str, str, str, bool]]:
    """Each bound checked: the invariant's name, what it checks, the measured value, whether it held."""
    return [
        (outcome.name, bound_text(outcome), measure_text(outcome.measured, outcome.metric), outcome.passed)
        for outcome in outcomes
    ]


def _result_word(passed: bool) -> Text:
    return Text("PASS", style="bold green") if passed else Text("FAIL", style="bold red")


def _invariants_frame() -> Table:
    table = _table("Invariants")
    for heading in ("invariant", "checks", "measured", "result"):
        table.add_column(heading, justify="right" if heading == "measured" else "left")
    return table


def _invariants_table(outcomes: tuple[InvariantOutcome, ...]) -> Table:
    table = _invariants_frame()
    for name, check, measured, passed in invariant_rows(outcomes):
        table.add_row(name, check, measured, _result_word(passed))
    return table


def _verdict(result: Result) -> Text | Group:
    if result.summary.consistent:
        return Text("Consistent: every message's effects were applied exactly once.", style="bold green")
    items = Table.grid(padding=(0, 1))  # a grid keeps wrapped lines indented under their item
    items.add_column(justify="right", width=3)
    items.add_column()
    for violation in result.summary.violations:
        items.add_row("-", Text(violation), style="red")
    return Group(Text("Inconsistent with exactly-once processing:", style="bold red"), items)


def presets_table() -> Table:
    """Every broker preset in one line each."""
    table = _table("Broker presets (busim presets NAME shows one in full)")
    table.add_column("preset", no_wrap=True)
    table.add_column("models")
    table.add_column("order kept", style="dim")
    for preset in PRESETS.values():
        table.add_row(preset.name, preset.title, preset.ordering)
    return table


def render_preset(console: Console, name: str) -> None:
    """One preset's keys, defaults and the basis of each default, then its sources, unbroken."""
    preset = PRESETS[name]
    table = _table(f"{preset.name}: {preset.title}; order kept {preset.ordering}")
    table.add_column("key", no_wrap=True)
    table.add_column("default")
    table.add_column("basis")
    sources: list[str] = []
    for key, default, basis, url in preset_rows(name):
        if url and url not in sources:
            sources.append(url)
        table.add_row(key, default, f"{basis} [{sources.index(url) + 1}]" if url else basis)
    common = [key for key in COMMON_KEYS if key not in preset.defaults and key != "preset"]
    table.caption = Text(f"Also accepted, with busim's defaults: {', '.join(common)} (docs/brokers.md)")
    console.print(table)
    for number, url in enumerate(sources, start=1):
        console.print(f"  [{number}] {url}", soft_wrap=True, highlight=False, markup=False)


@contextmanager
def count_progress(console: Console, description: str, total: int, enabled: bool) -> Iterator[RunsProgress | None]:
    """A progress bar of runs done out of ``total`` (replications, variants), the current run's simulated
    time, and the time left."""
    if not enabled:
        yield None
        return
    progress = _progress(console, MofNCompleteColumn())
    task = progress.add_task(description, total=total, clock="")
    with progress:
        yield RunsProgress(progress, task)


class RunsProgress:
    """The callbacks that move a runs progress bar: one per finished run, one per step of simulated time."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def run_done(self, done: int, _total: int) -> None:
        self._progress.update(self._task, completed=done)

    def simulated(self, now_s: float) -> None:
        self._progress.update(self._task, clock=f"run at t={format_duration(now_s)}")


# (row label, path below consumers.<name>, a duration)
_REPLICATED_ROWS = (
    ("latency mean", ("latency_s", "end_to_end", "mean"), True),
    ("latency p50", ("latency_s", "end_to_end", "p50"), True),
    ("latency p99", ("latency_s", "end_to_end", "p99"), True),
    ("latency p99.9", ("latency_s", "end_to_end", "p999"), True),
    ("duplicate deliveries", ("duplicate_deliveries",), False),
    ("duplicate effects", ("duplicate_effects",), False),
    ("redelivered", ("redelivered",), False),
    ("lost", ("lost",), False),
    ("dead-lettered", ("dead_lettered",), False),
    ("wrongly rejected", ("wrongly_rejected",), False),
    ("wrongly accepted", ("wrongly_accepted",), False),
    ("out of order", ("out_of_order",), False),
    ("in flight at end", ("in_flight_at_end",), False),
    ("max backlog", ("max_backlog",), False),
    ("crashes", ("crashes",), False),
)


def render_replications(console: Console, replications: Replications) -> None:
    """Print each consumer's figures as a mean with its confidence interval, and how often runs were consistent."""
    scenario = replications.scenario
    count = len(replications.seeds)
    console.print(
        Panel(
            Group(
                Text(scenario.description),
                Text.from_markup(
                    f"root seed [bold]{scenario.seed}[/] · {counted(count, 'replication')} on seeds spawned from it · "
                    f"{replications.wall_time_s:.2f}s"
                ),
            ),
            title=Text(scenario.name, style="bold"),
            expand=False,
        )
    )
    table = _table(f"Mean of {counted(count, 'replication')}")
    table.caption = Text(f"[low, high]: the {CONFIDENCE:.0%} confidence interval of the mean")
    table.caption_justify = "left"
    table.add_column("", no_wrap=True)
    names = replications.consumers
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    patterns = [
        (label, path, duration)
        for label, path, duration, attribute in _PATTERN_FIGURES
        if any(_ONLY_WHEN_SET[attribute](scenario, scenario.consumer(name)) for name in names)
    ]
    for label, path, duration in (*_REPLICATED_ROWS, *patterns):
        cells: list[Text | str] = []
        for name in names:
            interval = replications.figure(name, *path)
            cells.append(ABSENT if interval is None else _interval_text(interval, duration))
        table.add_row(label, *cells)
    for name in names:
        for counter in scenario.consumer(name).state:
            interval = replications.figure(name, "state", counter, "abs_drift")
            cell = ABSENT if interval is None else _interval_text(interval, False)
            table.add_row(
                f"{counter} drift ({name})" if len(names) > 1 else f"{counter} drift",
                *([cell if other == name else "" for other in names]),
            )
    for name in names:
        if scenario.consumer(name).queries is None:
            continue
        for label, path, duration in READ_FIGURES:
            interval = replications.figure(name, *path)
            cell = ABSENT if interval is None else _interval_text(interval, duration)
            table.add_row(
                f"{label} ({name})" if len(names) > 1 else label,
                *([cell if other == name else "" for other in names]),
            )
    console.print(table)
    if replications.summaries[0].invariants:
        console.print(_replicated_invariants_table(replications))
    consistent = sum(summary.consistent for summary in replications.summaries)
    style = "bold green" if consistent == count else "bold red"
    console.print(
        Text(f"Consistent with exactly-once processing in {count_of(consistent, count, 'replication')}.", style=style)
    )


def _replicated_invariants_table(replications: Replications) -> Table:
    """Each bound of the invariants: its measured mean and interval, and in how many replications it held."""
    count = replications.runs
    table = _invariants_frame()
    for index, outcome in enumerate(replications.invariants):
        interval = replications.invariant(index)
        passed = replications.invariant_passes(index)
        table.add_row(
            outcome.name,
            bound_text(outcome),
            _measured_interval(interval, outcome),
            Text(f"passed in {passed} of {count}", style="bold green" if passed == count else "bold red"),
        )
    return table


def _measured_interval(interval: Interval | None, outcome: InvariantOutcome) -> str:
    if interval is None:
        return NOT_MEASURED
    if interval.replications < 2:
        return measure_text(interval.mean, outcome.metric)
    # A consumer's figures are never negative; a counter's values can be.
    low = interval.low if outcome.metric in COUNTER_MEASURES.values() else max(interval.low, 0.0)
    shown = (measure_text(value, outcome.metric) for value in (interval.mean, low, interval.high))
    return "{} [{}, {}]".format(*shown)


def _at(document: dict, path: tuple[str, ...]) -> object:
    for key in path:
        if document is None:  # under a summary with no samples (staleness without queries)
            return None
        document = document[key]
    return document


def _interval_text(interval: Interval, duration: bool) -> Text:
    show = format_duration if duration else (lambda value: f"{value:,.1f}")
    if interval.replications < 2:
        return Text(format_duration(interval.mean) if duration else f"{interval.mean:,.0f}")
    # Every figure shown is a count or a duration: an interval reaching below 0 is shown from 0.
    return Text(f"{show(interval.mean)} [{show(max(interval.low, 0.0))}, {show(interval.high)}]")


def render_comparison(console: Console, comparison: Comparison) -> None:
    """Print the variants side by side, each figure with its change from the first variant."""
    first = comparison.outcomes[0]
    replicated = isinstance(first, Replications)
    count = len(first.seeds) if isinstance(first, Replications) else 1
    how = f"{counted(count, 'replication')} each, on the same seeds" if replicated else "the same seed"
    console.print(
        Text.from_markup(f"[bold]Comparing {len(comparison.names)} variants[/] · {how} (root seed {comparison.seed})")
    )
    if len(comparison.names) > WIDE_COMPARISON:
        for consumer in compared_consumers(comparison):
            for table in _compact_comparison(comparison, consumer):
                console.print(table)
        console.print(_comparison_verdicts(comparison))
        return
    for consumer in compared_consumers(comparison):
        title = f"{consumer}: change against {comparison.names[0]}"
        table = _table(title if not replicated else f"{title} (means; [low, high] 95% confidence interval)")
        table.add_column("", no_wrap=True)
        for name in comparison.names:
            table.add_column(name, justify="right")
        for label, cells in comparison_rows(comparison, consumer):
            table.add_row(label, *cells)
        console.print(table)
    console.print(_comparison_verdicts(comparison))


# More variants than this are shown one per row, with the key figures only.
WIDE_COMPARISON = 3
_COMPACT_COLUMNS = (
    ("p50", ("latency_s", "end_to_end", "p50"), True),
    ("p99", ("latency_s", "end_to_end", "p99"), True),
    ("dup. effects", ("duplicate_effects",), False),
    ("lost", ("lost",), False),
    ("dead", ("dead_lettered",), False),
    ("wrong rej.", ("wrongly_rejected",), False),
    ("out of order", ("out_of_order",), False),
)


# Figures per compact table: more than this would not fit 80 columns beside the variants' names.
_COMPACT_FIGURES_PER_TABLE = 6


def _compact_comparison(comparison: Comparison, consumer: str) -> list[Table]:
    """One row per variant; figures beyond what one table holds go to a second (and third) one."""
    replicated = isinstance(comparison.outcomes[0], Replications)
    columns = [
        *_COMPACT_COLUMNS,
        *_drift_columns(comparison, consumer),
        *_read_columns(comparison, consumer, _COMPACT_READ_COLUMNS),
        *_pattern_columns(comparison, consumer),
    ]
    figures = [[_figure(outcome, consumer, path) for _, path, _ in columns] for outcome in comparison.outcomes]
    # Leave out the figures that are 0 for every variant: they make no difference here.
    shown = [
        index for index in range(len(columns)) if any(row[index] is not None and row[index].mean for row in figures)
    ]
    tables = []
    for start in range(0, max(len(shown), 1), _COMPACT_FIGURES_PER_TABLE):
        part = shown[start : start + _COMPACT_FIGURES_PER_TABLE]
        title = f"{consumer}{' (means of the replications)' if replicated else ''}{', continued' if start else ''}"
        table = _table(title)
        # Names up to 22 characters stay whole; longer ones fold rather than squeeze the figures out.
        if max(len(name) for name in comparison.names) <= 22:
            table.add_column("variant", no_wrap=True)
        else:
            table.add_column("variant", overflow="fold", width=22)
        for index in part:
            table.add_column(columns[index][0], justify="right", min_width=6)
        for name, row in zip(comparison.names, figures):
            table.add_row(name, *(ABSENT if row[i] is None else _short(row[i].mean, columns[i][2]) for i in part))
        tables.append(table)
    return tables


def _drift_columns(comparison: Comparison, consumer: str) -> list[tuple[str, tuple[str, ...], bool]]:
    """A drift figure for every counter that some variant's consumer keeps."""
    counters = dict.fromkeys(
        counter for outcome in comparison.outcomes for counter in outcome.scenario.consumer(consumer).state
    )
    return [(f"{counter} drift", ("state", counter, "abs_drift"), False) for counter in counters]


# The figures on a read model's reads, where a consumer has queries: (label, path, a duration).
READ_FIGURES = (
    ("stale reads", ("stale_reads",), False),
    ("staleness p50", ("staleness_age_s", "p50"), True),
    ("staleness p99", ("staleness_age_s", "p99"), True),
)


_COMPACT_READ_COLUMNS = tuple(
    (label.replace("staleness", "stale"), path, duration) for label, path, duration in READ_FIGURES
)


def _read_columns(
    comparison: Comparison, consumer: str, figures: tuple[tuple[str, tuple[str, ...], bool], ...] = READ_FIGURES
) -> list[tuple[str, tuple[str, ...], bool]]:
    """The stale-read ``figures``, where some variant's consumer has queries."""
    if any(outcome.scenario.consumer(consumer).queries for outcome in comparison.outcomes):
        return list(figures)
    return []


# Figures of the consistency patterns, each compared where some variant's consumer is set up for it.
_PATTERN_FIGURES = (
    ("stuck pending", ("stuck_pending",), False, "stuck_pending"),
    ("oversold", ("oversold",), False, "oversold"),
    ("lost updates", ("lost_updates",), False, "lost_updates"),
    ("optimistic retries", ("optimistic_retries",), False, "optimistic_retries"),
    ("recovery mean", ("recovery_s", "mean"), True, "recovery_s"),
    ("recovery max", ("recovery_s", "max"), True, "recovery_s"),
)


def _pattern_columns(comparison: Comparison, consumer: str) -> list[tuple[str, tuple[str, ...], bool]]:
    """Isolation and recovery figures, where some variant's consumer is set up to produce them."""
    return [
        (label, path, duration)
        for label, path, duration, attribute in _PATTERN_FIGURES
        if any(
            _ONLY_WHEN_SET[attribute](outcome.scenario, outcome.scenario.consumer(consumer))
            for outcome in comparison.outcomes
        )
    ]


def _short(value: float, duration: bool) -> str:
    return format_duration(value) if duration else f"{value:,.0f}"


def comparison_verdicts(comparison: Comparison) -> list[tuple[str, bool]]:
    """Each variant's verdict in words, and whether it passed as ``busim run --fail-on-violation`` judges a run."""
    return [(outcome.verdict, outcome.passed) for outcome in comparison.outcomes]


def _comparison_verdicts(comparison: Comparison) -> Table:
    table = Table.grid(padding=(0, 2))
    for name, (verdict, good) in zip(comparison.names, comparison_verdicts(comparison)):
        table.add_row(Text(name, style="bold"), Text(verdict, style="green" if good else "red"))
    return table


def comparison_rows(comparison: Comparison, consumer: str) -> list[tuple[str, list[Text]]]:
    """Each figure of ``consumer`` across the variants, with its change from the first variant."""
    rows = []
    for label, path, duration in (
        *_REPLICATED_ROWS,
        *_drift_columns(comparison, consumer),
        *_read_columns(comparison, consumer),
        *_pattern_columns(comparison, consumer),
    ):
        figures = [_figure(outcome, consumer, path) for outcome in comparison.outcomes]
        if all(figure is None for figure in figures):
            continue
        rows.append((label, [_compared(figure, figures[0], duration) for figure in figures]))
    return rows


def compared_consumers(comparison: Comparison) -> list[str]:
    """The consumers that every variant has."""
    return list(comparison.consumers)


def _figure(outcome: Result | Replications, consumer: str, path: tuple[str, ...]) -> Interval | None:
    """A figure of one consumer, or None where the variant has no such figure or no sample of it."""
    return outcome.figure(consumer, *path)


def _compared(figure: Interval | None, baseline: Interval | None, duration: bool) -> Text:
    if figure is None:
        return Text(ABSENT)
    text = _interval_text(figure, duration)
    if baseline is None or figure is baseline:
        return text
    change = figure.mean - baseline.mean
    if change == 0:
        return text
    if baseline.mean and abs(change / baseline.mean) >= 9:
        note = f" (x{figure.mean / baseline.mean:,.0f})"
    elif baseline.mean:
        if abs(change / baseline.mean) < 0.005:
            return text
        note = f" ({change / abs(baseline.mean):+.0%})"
    else:
        note = f" ({'+' if change > 0 else '-'}{format_duration(abs(change)) if duration else f'{abs(change):,.1f}'})"
    return text + Text(note, style="red" if change > 0 else "green")
