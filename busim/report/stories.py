"""``busim explain``: a run's folder simulated again, and its messages' stories told in words.

A run's folder holds no per-message data: its resolved ``scenario.yaml``
carries the seed, and a run is deterministic under its seed, so simulating
it again rebuilds the exact record. :func:`check_replay` makes sure it did,
against the folder's ``results.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from busim.analysis.stories import ANOMALY_KINDS, ANOMALY_ORDER, Anomaly, Happening, Stories, Story, What
from busim.engine.records import DedupMiss, DeliveryCause, LossReason, RunRecord
from busim.errors import BusimError, RunFolderError
from busim.report.console import literal
from busim.report.files import RESULTS_FILE, SCENARIO_FILE
from busim.report.views import reason_label
from busim.results import Result
from busim.scenario import Scenario
from busim.scenario.schema import did_you_mean
from busim.words import counted

DEFAULT_TOP = 5

# The figures of results.json that simulating a folder again must reproduce, per consumer.
CHECKED_FIGURES = ("delivered", "processed", "duplicate_effects", "lost", "dead_lettered", "stuck_pending")


def check_request(run: Result, message: int | None, anomaly: str | None, consumer: str | None) -> None:
    """Check what ``busim explain`` is asked for against the run read from its folder, before simulating it.

    Raises:
        BusimError: both a message and an anomaly, an unknown anomaly or consumer, or no such message.
    """
    if message is not None and anomaly is not None:
        raise BusimError("give --message or --anomaly, not both")
    if anomaly is not None and anomaly not in ANOMALY_KINDS:
        anomaly_kind(anomaly)  # raises, naming the kinds
    names = list(run.consumers)
    if consumer is not None and consumer not in names:
        hint = did_you_mean(consumer, names)
        raise BusimError(f"unknown consumer {consumer!r}{hint} (consumers: {', '.join(names)})")
    published = run.messages.published + run.messages.emitted
    if message is not None and not 0 <= message < published:
        valid = f"its messages are 0 to {published - 1:,}" if published else "it published no message"
        raise BusimError(f"no message {message:,} in this run: {valid}")


def anomaly_kind(text: str) -> str:
    """The anomaly kind ``text`` names, as ``--anomaly`` takes it: the kind, or the figure or the words that
    count it (duplicate_effects, wrongly-accepted, "out of order").

    Raises:
        BusimError: ``text`` names no anomaly.
    """
    word = "_".join(text.strip().lower().replace("-", " ").split())
    for kind in ANOMALY_KINDS:
        if word in (kind, f"{kind}s"):
            return kind
    raise BusimError(
        f"unknown anomaly {text!r}{did_you_mean(word, ANOMALY_KINDS)} (anomalies: {', '.join(ANOMALY_KINDS)})"
    )


def anomaly_orders() -> str:
    """Every anomaly kind with the order its stories are told in, for help texts."""
    return "; ".join(f"{kind} ({ANOMALY_ORDER[kind]})" for kind in ANOMALY_KINDS)


def check_replay(result: Result, then: Result, folder: Path) -> None:
    """Make sure that simulating the folder again (``result``) reproduced its results.json (``then``).

    Raises:
        RunFolderError: a headline figure differs, naming the first that does.
    """
    differences: list[tuple[str, object, object]] = [
        (f"messages {kind}", getattr(then.messages, kind), getattr(result.messages, kind))
        for kind in ("published", "emitted")
        if getattr(then.messages, kind) != getattr(result.messages, kind)
    ]
    if result.consumers != then.consumers:
        differences.append(("consumers", ", ".join(then.consumers), ", ".join(result.consumers)))
    else:
        for name in result.consumers:
            before, now = then.summary.consumers[name], result.summary.consumers[name]
            differences += [
                (f"{name} {figure}", getattr(before, figure), getattr(now, figure))
                for figure in CHECKED_FIGURES
                if getattr(before, figure) != getattr(now, figure)
            ]
    if differences:
        figure, earlier, again = differences[0]
        raise RunFolderError(
            f"{folder}: simulating its {SCENARIO_FILE} again does not give its {RESULTS_FILE} ({figure}: "
            f"{_shown(earlier)} there, {_shown(again)} now); it was written by another version of busim, or edited"
        )


def _shown(value: object) -> str:
    """A figure as the message shows it: counts grouped by thousands, names as they are, anything else as JSON."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return value if isinstance(value, str) else json.dumps(value)


def _seconds(time_s: float) -> str:
    return f"{time_s:.3f} s"


# Why a copy was delivered, as a clause: "the second after <clause>".
_CAUSES = {
    DeliveryCause.FIRST: "its first attempt",
    DeliveryCause.BROKER_DUPLICATE: "a duplicate copy the broker delivered",
    DeliveryCause.TRANSIT_LOSS: "a redelivery because an earlier attempt was lost in transit",
    DeliveryCause.CRASH_BEFORE_ACK: "a redelivery because the instance crashed before its ack",
    DeliveryCause.ACK_TIMEOUT: "a redelivery because the processing outlasted the ack timeout",
    DeliveryCause.CRASH_IN_FLIGHT: "a redelivery because the instance crashed while processing it",
    DeliveryCause.PRODUCER_RETRY: "a copy its publisher sent again after a lost publish ack",
    DeliveryCause.DEDUP_WINDOW_EXPIRED: (
        "a copy its publisher sent again after a lost publish ack, past the broker's deduplication window"
    ),
    DeliveryCause.PREFETCHED: "a redelivery because the instance crashed holding it unprocessed",
    DeliveryCause.OFFSET_REWIND: "a redelivery because the instance crashed before its offset was committed",
    DeliveryCause.REBALANCE: "a redelivery because its partition moved to another member",
    DeliveryCause.OUTBOX_RELAY: "a copy the outbox relay published again after its publisher crashed",
    DeliveryCause.INJECTED_DUPLICATE: "a second copy the load generator published, injected as broker.duplication asks",
    DeliveryCause.DEPLOY: "a redelivery because a deploy killed the instance holding it",
    DeliveryCause.PROCESSING_FAILED: "a redelivery because its processing failed and the consumer gave up on it",
    DeliveryCause.RETRY_AFTER_PARTIAL_EFFECT: (
        "the consumer's retry after a failed attempt that had already written its effects"
    ),
}

# Why an entry was left pending with nothing to deliver it again, as a clause.
_LEFT_PENDING = {
    DeliveryCause.CRASH_BEFORE_ACK: "the instance crashed after processing it, before its ack",
    DeliveryCause.CRASH_IN_FLIGHT: "the instance crashed while processing it",
    DeliveryCause.PREFETCHED: "the instance crashed holding it unprocessed, in the batch it had read",
    DeliveryCause.TRANSIT_LOSS: "its delivery was lost in transit, and the broker waits for an ack that never comes",
    DeliveryCause.DEPLOY: "a deploy killed the instance holding it",
}

# Why a message was lost, as a clause: "lost in inventory: <clause>".
_LOSSES = {
    LossReason.TRANSIT_LOSS: "an attempt was lost in transit, and nothing redelivered it",
    LossReason.CRASH_IN_FLIGHT: "the instance crashed while holding it, and at-most-once delivery never sends it again",
    LossReason.OVERFLOW_DROPPED: "the queue was full and dropped it, its oldest message",
    LossReason.OVERFLOW_REJECTED: "the queue was full and refused it until its publisher gave up",
    LossReason.PUBLISH_FAILED: "the broker was down for longer than its publisher kept retrying",
    LossReason.PUBLISHER_CRASH: (
        "its publisher crashed after committing its state and before publishing, with no outbox"
    ),
    LossReason.INJECTED_LOSS: "the load generator left it unpublished, a loss injected as broker.loss asks",
    LossReason.GIVEN_UP: "its processing failed on every attempt, and the consumer gave up on it",
}

# Why an idempotent consumer's store let a repeat through, as a clause.
_MISSES = {
    DedupMiss.TTL_EXPIRED: "the id was older than the store's ttl",
    DedupMiss.EVICTED: "the full store had evicted the id",
    DedupMiss.STORE_LOST: "the in-memory store was lost in a crash",
    DedupMiss.OTHER_INSTANCE: "another instance had processed it, and in-memory stores are not shared",
    DedupMiss.NOT_RECORDED: "the instance crashed after the effects, before recording the id",
}


def _label(cause: DeliveryCause | LossReason, preset: str) -> str:
    """A reason as results.json's by_reason names it, in the broker's own words."""
    return reason_label(cause.name.lower(), preset)


def _explained(cause: DeliveryCause | LossReason, preset: str) -> str:
    """A reason as a clause, with the broker's own name for it where that differs from busim's."""
    generic = cause.name.lower().replace("_", " ")
    label = _label(cause, preset)
    clause = (_CAUSES if isinstance(cause, DeliveryCause) else _LOSSES).get(cause)
    if clause is None:  # a reason without a sentence of its own: its name says it
        return label
    return clause if label == generic else f"{clause} ({label})"


def _happening_text(happening: Happening, preset: str, effects: bool) -> str:
    """What a story line says about one happening."""
    what = happening.what
    if what == What.ARRIVED:
        reason = "" if happening.cause == DeliveryCause.FIRST else f", {_label(happening.cause, preset)}"
        return f"reached the queue (attempt {happening.attempt}{reason})"
    if what == What.LEFT_PENDING:
        return f"left pending ({_label(happening.cause, preset)}): unacknowledged, and no claimer takes it over"
    if what in (What.LOST, What.DEAD_LETTERED):
        label = _label(happening.cause, preset)
        if what == What.LOST:
            return f"lost: {label}"
        if happening.cause in _FAILED_DEAD_LETTERS:
            return f"dead-lettered: {_FAILED_DEAD_LETTERS[happening.cause]}"
        return f"dead-lettered: the delivery limit refused another attempt after {label}"
    if what == What.APPLIED and not effects:
        return "processed"
    if what == What.EMITTED:
        return f"emitted message {happening.other} {happening.other_event}"
    return _TEXTS[what]


# Why a message whose processing failed was dead-lettered, as a clause.
_FAILED_DEAD_LETTERS = {
    DeliveryCause.POISON: "a poison message, failing on every attempt",
    DeliveryCause.RETRIES_EXHAUSTED: "the consumer gave up after every attempt failed",
    DeliveryCause.DELIVERY_LIMIT: "the delivery limit refused another attempt after its processing failed",
}

_TEXTS = {
    What.PUBLISHED: "published",
    What.ACCEPTED: "accepted by the broker, back from an outage",
    What.PUBLISH_FAILED: "publish failed: the broker was down for longer than the publisher kept retrying",
    What.PUBLISHER_CRASHED: "never published: the publisher crashed after committing its state, and has no outbox",
    What.RELAYED_LATE: "published by the outbox relay after the publisher's restart",
    What.RELAYED: "published again by the outbox relay after the publisher's restart",
    What.RESENT: "sent again after a lost publish ack; the broker kept both copies",
    What.RESEND_DROPPED: "sent again after a lost publish ack; the broker dropped the copy as a duplicate",
    What.RECEIVED: "received",
    What.STARTED: "started processing",
    What.APPLIED: "applied its effects",
    What.REJECTED: "rejected: a floor refused the change, nothing was applied",
    What.SKIPPED: "skipped as a duplicate: processed before",
    What.ABORTED: "aborted: the instance crashed while processing it",
    What.ABANDONED: "dropped unprocessed: the instance crashed holding it",
    What.KILLED: "aborted: a deploy killed the instance holding it",
    What.CRASHED: "crashed after processing it, before acknowledging it",
    What.UNCOMMITTED: "crashed before committing its offset: the partition goes back to the last commit",
    What.FAILED: "processing failed before its effects: nothing was applied",
    What.FAILED_AFTER_EFFECTS: "processing failed after writing its effects without a transaction: they stay",
    What.RETRIED: "retried processing it",
    What.STILL_FAILING: "still failing when the run ended: a poison message, delivered again after every failure",
}

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def _ordinal(number: int) -> str:
    return _ORDINALS[number - 1] if number <= len(_ORDINALS) else f"{number}th"


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def anomaly_text(anomaly: Anomaly, preset: str) -> str:
    """One anomaly of a story, in a sentence."""
    where = anomaly.consumer
    if anomaly.kind == "duplicate_effect":
        causes = [_explained(cause, preset) for cause in anomaly.causes]
        if len(set(causes)) == 1 and len(causes) > 1:
            last = _ordinal(anomaly.applications)
            later = f"the second and {last}" if anomaly.applications == 3 else f"the second to the {last}"
            repeats = f"{later} each after {causes[0]}"
        else:
            repeats = ", ".join(f"the {_ordinal(number)} after {cause}" for number, cause in enumerate(causes, 2))
        parts = [repeats] if causes else []
        if anomaly.twins:
            twins = ", ".join(map(str, anomaly.twins))
            parts.append(
                f"{'a twin' if len(anomaly.twins) == 1 else 'twins'} emitted upstream for the same event "
                f"(message {twins}) applied them too"
            )
        if anomaly.dedup_missed:
            misses = "; ".join(dict.fromkeys(_MISSES[miss] for miss in anomaly.dedup_missed))
            parts.append(f"the dedup store let {'it' if len(anomaly.dedup_missed) == 1 else 'them'} through: {misses}")
        whose = "its event's effects" if anomaly.twins else "its effects"  # twins: messages of one event
        return f"duplicate effect in {where}: {whose} were applied {_times(anomaly.applications)}, " + "; ".join(parts)
    if anomaly.kind == "lost":
        return f"lost in {where} at {_seconds(anomaly.time_s)}: {_explained(anomaly.causes[0], preset)}"
    if anomaly.kind == "dead_lettered":
        after = f" after {anomaly.attempts} attempts" if anomaly.attempts > 1 else ""
        processed = "; it had been processed" if anomaly.processed else ", never processed"
        if anomaly.causes[0] in _FAILED_DEAD_LETTERS:
            return (
                f"dead-lettered in {where} at {_seconds(anomaly.time_s)}{after}: "
                f"{_FAILED_DEAD_LETTERS[anomaly.causes[0]]}{processed}"
            )
        return (
            f"dead-lettered in {where} at {_seconds(anomaly.time_s)}{after}: the delivery limit refused "
            f"{_explained(anomaly.causes[0], preset)}{processed}"
        )
    if anomaly.kind == "stuck_pending":
        processed = "it had been processed" if anomaly.processed else "never processed"
        idle = f" (idle since its delivery at {_seconds(anomaly.idle_since_s or 0)})"
        return (
            f"stuck pending in {where} from {_seconds(anomaly.time_s)}{idle}, {processed}: "
            f"{_LEFT_PENDING[anomaly.causes[0]]}; it waits in the pending-entries list for a claim "
            "(XCLAIM, or a claim_interval)"
        )
    if anomaly.kind == "wrongly_accepted":
        return (
            f"wrongly accepted in {where}: applied at {_seconds(anomaly.time_s)}, but applied exactly once in "
            "publish order a floor would have refused it"
        )
    if anomaly.kind == "wrongly_rejected":
        return (
            f"wrongly rejected in {where}: a floor refused it at {_seconds(anomaly.time_s)}, but applied "
            "exactly once in publish order it would have been accepted"
        )
    if anomaly.kind == "failed":
        poison = " (a poison message: it fails on every attempt)" if DeliveryCause.POISON in anomaly.causes else ""
        processed = "; a later attempt processed it" if anomaly.processed else ", and no attempt processed it"
        return (
            f"processing failed in {where}{poison}: {anomaly.attempts:,} "
            f"{'attempt' if anomaly.attempts == 1 else 'attempts'} failed, the first at "
            f"{_seconds(anomaly.time_s)}{processed}"
        )
    return (
        f"out of order in {where}: message {anomaly.overtaken_by}, published later with the same key, was processed "
        f"first, at {_seconds(anomaly.overtaken_s or 0)}; this one at {_seconds(anomaly.time_s)}"
    )


def story_lines(story: Story, scenario: Scenario) -> list[str]:
    """A message's story as text: a heading, one line per happening, then its anomalies."""
    preset = scenario.broker.preset
    payload = ", ".join(f"{name}={value}" for name, value in story.fields)
    origin = (
        f"emitted by {story.publisher} at {_seconds(story.published_s)}, processing message {story.caused_by}"
        if story.caused_by is not None
        else f"published by {story.publisher} at {_seconds(story.published_s)}"
    )
    lines = [f"message {story.message} {story.event}{f' ({payload})' if payload else ''}, {origin}"]
    # The heading says when it was published; the lines tell the rest.
    shown = [happening for happening in story.happenings if happening.what != What.PUBLISHED]
    times = [_seconds(happening.time_s) for happening in shown]
    who = [happening.service + ("" if happening.instance is None else f" #{happening.instance}") for happening in shown]
    time_width = max(map(len, times), default=0)
    who_width = max(map(len, who), default=0)
    effects = {consumer.name: bool(consumer.effects) for consumer in scenario.consumers}
    for happening, time, service in zip(shown, times, who):
        text = _happening_text(happening, preset, effects.get(happening.service, True))
        lines.append(f"  {time:>{time_width}}  {service:<{who_width}}  {text}")
    if story.anomalies:
        lines += [f"  ! {anomaly_text(anomaly, preset)}" for anomaly in story.anomalies]
    else:
        lines.append("  no anomaly")
    return lines


def _print_lines(console: Console, lines: Iterable[str]) -> None:
    for line in lines:
        # As written: names and field values are the user's, and may hold [bold] or :smile:.
        console.print(line, markup=False, emoji=False, highlight=False, soft_wrap=True)


def render_story(console: Console, stories: Stories, message: int, consumer: str | None = None) -> None:
    """Print the story of one message (in one consumer, if named)."""
    story = stories.story(message, None if consumer is None else [consumer])
    _print_lines(console, story_lines(story, stories.record.scenario))


def render_anomaly(
    console: Console, stories: Stories, kind: str, consumer: str | None = None, top: int = DEFAULT_TOP
) -> None:
    """Print how many messages show ``kind``, then the stories of the ``top`` worst."""
    ids = stories.with_anomaly(kind, consumer)
    names = stories.consumers
    where = consumer if consumer is not None else names[0] if len(names) == 1 else "any consumer"
    if ids.size == 0:
        _print_lines(console, [f"No message shows {kind} in {where}."])
        return
    count = f"{counted(ids.size, 'message')} {'shows' if ids.size == 1 else 'show'} {kind} in {where}"
    order = f", {ANOMALY_ORDER[kind]}" if ids.size > 1 else ""
    listed = (f"; the first {top}:" if top > 1 else "; the first:") if ids.size > top else ":"
    _print_lines(console, [count + order + listed])
    for message in ids[:top].tolist():
        console.print()
        render_story(console, stories, message, consumer)


def render_overview(console: Console, stories: Stories, folder: Path, consumer: str | None = None) -> None:
    """Print how many messages show each anomaly per consumer (or in one), and how to ask for their stories."""
    scenario = stories.record.scenario
    published = len(stories.record.messages)
    ids = f"ids 0 to {published - 1:,}" if published else "none published"
    _print_lines(console, [f"{scenario.name}, seed {scenario.seed}: {counted(published, 'message')} ({ids})"])
    counts = {name: count for name, count in stories.counts().items() if consumer in (None, name)}
    table = Table(title="Messages with each anomaly", title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)
    table.add_column("anomaly", no_wrap=True)
    for name in counts:
        table.add_column(literal(name), justify="right", no_wrap=True)
    for kind in ANOMALY_KINDS:
        table.add_row(kind, *(f"{counts[name][kind]:,}" for name in counts))
    console.print(table)
    _print_lines(console, crash_lines(stories.record, consumer) + deploy_lines(stories.record, consumer))
    _print_lines(
        console,
        [
            f"busim explain {folder} --message ID tells a message's story;",
            f"busim explain {folder} --anomaly KIND tells the stories of the {DEFAULT_TOP} worst messages "
            "with that anomaly (--top N for more, --consumer NAME for one consumer); busim explain --help "
            "says the order of each.",
        ],
    )


CRASHES_LISTED = 10


def crash_lines(record: RunRecord, consumer: str | None = None) -> list[str]:
    """When each consumer's instances crashed, the first :data:`CRASHES_LISTED` of each: a crash that
    touched no message shows in no story."""
    lines = []
    for group in record.groups:
        if consumer not in (None, group.name) or not group.crash_s.size:
            continue
        crashes = list(zip(group.crash_s.tolist(), group.crash_instance.tolist()))
        listed = ", ".join(f"#{instance} at {_seconds(at_s)}" for at_s, instance in crashes[:CRASHES_LISTED])
        more = f", and {len(crashes) - CRASHES_LISTED:,} more" if len(crashes) > CRASHES_LISTED else ""
        lines.append(f"Crashes in {group.name} ({len(crashes):,}): {listed}{more}.")
    return lines


def deploy_lines(record: RunRecord, consumer: str | None = None) -> list[str]:
    """When each consumer's instances were down for a deploy, the first :data:`CRASHES_LISTED` of each."""
    lines = []
    for group in record.groups:
        lifecycle = group.lifecycle
        if consumer not in (None, group.name) or lifecycle is None or not lifecycle.deploy.size:
            continue
        windows = list(
            zip(lifecycle.deploy_instance.tolist(), lifecycle.deploy_stop_s.tolist(), lifecycle.deploy_back_s.tolist())
        )
        listed = ", ".join(
            f"#{instance} from {_seconds(stop_s)}"
            + (" to the end" if math.isnan(back_s) else f" to {_seconds(back_s)}")
            for instance, stop_s, back_s in windows[:CRASHES_LISTED]
        )
        more = f", and {len(windows) - CRASHES_LISTED:,} more" if len(windows) > CRASHES_LISTED else ""
        lines.append(f"Deployed in {group.name} ({counted(len(windows), 'instance')} down in turn): {listed}{more}.")
    return lines


def render_explanation(
    console: Console,
    result: Result,
    folder: Path,
    message: int | None = None,
    anomaly: str | None = None,
    consumer: str | None = None,
    top: int = DEFAULT_TOP,
) -> None:
    """Print what ``busim explain`` was asked for: a message's story, an anomaly's worst stories, or the counts.

    ``folder`` is the run's folder, for the commands the counts suggest.
    """
    stories = Stories(result.record)
    if message is not None:
        render_story(console, stories, message, consumer)
    elif anomaly is not None:
        render_anomaly(console, stories, anomaly, consumer, top)
    else:
        render_overview(console, stories, folder, consumer)
