"""One simulation run: build the components, run the clock, collect the record.

The lifecycle is fixed: publish every message (arrays), then run the
consumers stage by stage (those that emit events before those that consume
them): build one consumer group per consumer of the stage, schedule the
outages, run the SimPy clock until the stage has drained or ``duration +
drain_timeout`` is reached, and append the messages its consumers emitted.
Finally, freeze what happened into a :class:`RunRecord`.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable

import numpy as np

from busim.engine.broker import BrokerLink
from busim.engine.chains import emit, fields_of, flows_of
from busim.engine.clock import Clock
from busim.engine.consumer import ConsumerGroup
from busim.engine.effects import EffectPlan
from busim.engine.keys import key_codes, partition_of
from busim.engine.log import TooManyDeliveries
from busim.engine.outages import Outages
from busim.engine.partitions import PartitionedGroup
from busim.engine.publishing import publish
from busim.engine.queries import draw_all_reads
from busim.engine.randomness import RandomStreams
from busim.engine.records import DeliveryCause, GroupRecord, LossReason, Messages, RunRecord, Stop
from busim.engine.rules import DeliveryRules
from busim.engine.servers import ServedGroup, fifo_applies, serve_fifo
from busim.scenario.flows import stages
from busim.scenario.schema import Consumer, Publisher, Scenario

PROGRESS_STEPS = 200
# A full collection takes some 30 ms: under 3 % of a stage this large, and below it what waits for the
# collector's own schedule is small.
COLLECT_AFTER_MESSAGES = 100_000
DEFAULT_PUBLISH_TIMEOUT_S = Publisher.model_fields["publish_timeout"].default

ProgressCallback = Callable[[float], None]


def run(
    scenario: Scenario, seed: int, on_progress: ProgressCallback | None = None, publishing_seed: int | None = None
) -> RunRecord:
    """Simulate ``scenario`` with ``seed`` (the publishers' draws with ``publishing_seed``, where given).

    Consumers run in stages (see :func:`busim.scenario.flows.stages`): a
    consumer depends only on the messages it receives, so those emitting
    events run, and their emitted messages are appended, before the
    consumers of those events start. ``on_progress`` is called with the
    simulated time in seconds, about :data:`PROGRESS_STEPS` times over the
    publishing window of each stage (scaled so that it ends at ``duration``).
    """
    scenario = scenario.model_copy(update={"seed": seed})
    streams = RandomStreams.from_seed(seed, publishing_seed)
    outages = Outages(scenario.broker.outages)
    messages = publish(scenario, streams, outages, DeliveryRules.of(scenario.broker).dedup_window_s)
    ordered = stages(flows_of(scenario))
    carried = fields_of(scenario)
    records: dict[str, GroupRecord] = {}
    drained = True
    stopped: Stop | None = None
    for index, names in enumerate(ordered):
        progress = on_progress
        if on_progress is not None and len(ordered) > 1:
            share_s = scenario.duration / len(ordered)
            progress = _scaled(on_progress, index * share_s, share_s / scenario.duration, scenario.duration)
        env = Clock()
        consumers = [scenario.consumer(name) for name in names]
        built = [_build_group(env, scenario, consumer, messages, streams, outages) for consumer in consumers]
        groups = [group for group, _ in built]
        try:
            drained &= _run_clock(env, scenario, groups, outages, progress)
        except TooManyDeliveries as loop:
            # A delivery loop: keep what happened until then, and say so.
            drained = False
            looping = next(group for group in groups if group.log is loop.log)
            stopped = Stop(looping.consumer.name, loop.now, len(loop.log), loop.log.messages)
        for group, codes in built:
            record = group.record(scenario.horizon_s, codes)
            records[record.name] = record
            messages = emit(scenario, record, messages, streams, outages, carried)
        # The groups and their clock refer to one another (callbacks), so only the cycle collector frees
        # their queues and per-message state: at once where that is much, before the next stage (or the
        # analysis) needs the memory.
        handled = sum(group.log.messages for group in groups)
        env = built = groups = group = looping = None  # type: ignore[assignment]
        if handled >= COLLECT_AFTER_MESSAGES:
            gc.collect()
    groups_in_order = tuple(records[consumer.name] for consumer in scenario.consumers)
    reads = draw_all_reads(scenario, groups_in_order, streams)
    return RunRecord(
        scenario=scenario,
        messages=messages,
        groups=groups_in_order,
        sim_time_s=_end_s(scenario, messages, groups_in_order, drained, stopped),
        drained=drained,
        reads=reads,
        stopped=stopped,
    )


def _scaled(on_progress: ProgressCallback, offset_s: float, scale: float, end_s: float) -> ProgressCallback:
    return lambda now_s: on_progress(offset_s + min(now_s, end_s) * scale)


def _run_clock(
    env: Clock,
    scenario: Scenario,
    groups: list[ConsumerGroup | PartitionedGroup | ServedGroup],
    outages: Outages,
    on_progress: ProgressCallback | None,
) -> bool:
    """Run ``groups`` until they have no work left or the horizon; whether they drained."""
    horizon_s = scenario.horizon_s
    for start_s, end_s in zip(outages.starts_s, outages.ends_s):
        if start_s < horizon_s:
            for group in groups:
                env.call_at(start_s, group.pause)
                env.call_at(end_s, group.resume)
    for group in groups:
        group.start()

    # Progress steps: fine over the publishing window, coarser while draining.
    publish_step_s = scenario.duration / PROGRESS_STEPS
    drain_step_s = max(publish_step_s, scenario.drain_timeout / PROGRESS_STEPS)
    stop_s = math.nextafter(horizon_s, math.inf)  # SimPy stops before events due at `until`
    while any(group.has_work_left() for group in groups):
        next_s = env.peek()
        if next_s > horizon_s:
            break
        step_s = publish_step_s if next_s < scenario.duration else drain_step_s
        env.run(until=min(stop_s, next_s + step_s))
        if on_progress is not None:
            on_progress(min(env.now, horizon_s))
    if on_progress is not None:
        # Groups served by the recursion are done before the clock starts: the run has reached their end too.
        reached_s = max([env.now, *(group.end_s for group in groups if isinstance(group, ServedGroup))])
        on_progress(min(reached_s, horizon_s))
    return not any(group.has_work_left() for group in groups)


def _build_group(
    env: Clock,
    scenario: Scenario,
    consumer: Consumer,
    messages: Messages,
    streams: RandomStreams,
    outages: Outages,
) -> tuple[ConsumerGroup | PartitionedGroup | ServedGroup, np.ndarray]:
    """One consumer group with its own queue (or its own offsets in a partitioned log), and its messages' key codes."""
    rules = DeliveryRules.of(scenario.broker, consumer.instances)
    selection = messages.select(list(dict.fromkeys(consumer.subscribes)))
    plan = EffectPlan(consumer, messages.common_fields(selection))
    codes = key_codes(scenario, messages, selection)[0]
    link = BrokerLink(scenario.broker, consumer.name, streams, outages)
    ids = selection.ids
    accepted = np.flatnonzero(~messages.failed[ids])
    resent = messages.resend_message[messages.resend_kept]
    resent_here = np.isin(resent, ids)
    retry_cause = DeliveryCause.PRODUCER_RETRY if rules.dedup_window_s is None else DeliveryCause.DEDUP_WINDOW_EXPIRED
    relayed = messages.resend_relayed[messages.resend_kept][resent_here]
    resend_cause = np.where(relayed, DeliveryCause.OUTBOX_RELAY, retry_cause)
    copy_message = _then(accepted, selection.local(resent[resent_here])).astype(np.int32)  # see DeliveryLog
    copy_accept_s = _then(messages.accept_s[ids[accepted]], messages.resend_accept_s[messages.resend_kept][resent_here])
    copy_cause = _then(np.full(accepted.size, DeliveryCause.FIRST, np.int8), resend_cause.astype(np.int8))
    if rules.ordering == "partition":
        partition = partition_of(scenario, messages, selection, rules.partitions or 1)
        first = link.first_attempts(copy_message, copy_accept_s, copy_cause, partition)
        group: ConsumerGroup | PartitionedGroup | ServedGroup = PartitionedGroup(
            env, consumer, link, rules, plan, first, selection, streams, partition
        )
    else:
        scope = {"none": None, "queue": np.zeros(ids.size, np.int8), "group": codes}[rules.ordering]
        first = link.first_attempts(copy_message, copy_accept_s, copy_cause, scope)
        served = None
        outage_free = not scenario.broker.slowdowns and not any(
            start_s <= scenario.horizon_s for start_s in outages.starts_s
        )
        if fifo_applies(consumer, rules, plan, first, outage_free):
            served = serve_fifo(consumer, rules, plan, first, selection, streams, scenario.horizon_s)
        # Emitted messages (publisher -1) take the last entries: a consumer retries a refused publish forever.
        # Only a queue with a capacity refuses publishes: elsewhere the per-message arrays would go unread.
        publisher = messages.publisher[ids] if rules.capacity is not None else None
        republish_s = np.array([*(p.publish_timeout for p in scenario.publishers), DEFAULT_PUBLISH_TIMEOUT_S])
        republish_limit = np.array(
            [p.retries if isinstance(p.retries, int) else -1 for p in scenario.publishers] + [-1]
        )
        group = (
            served
            if served is not None
            else ConsumerGroup(
                env,
                consumer,
                link,
                rules,
                plan,
                first,
                selection,
                streams,
                codes if rules.ordering == "group" else None,
                republish_s[publisher] if publisher is not None else None,
                republish_limit[publisher] if publisher is not None else None,
            )
        )
    for message in np.flatnonzero(messages.failed[ids]).tolist():
        reason = LossReason.PUBLISHER_CRASH if messages.publisher_crashed[ids[message]] else LossReason.PUBLISH_FAILED
        group.publish_failed(message, float(messages.publish_s[ids[message]]), reason)
    return group, codes


def _then(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """``first`` followed by ``then``: ``first`` itself where ``then`` is empty (arrays as long as the run)."""
    return np.concatenate([first, then]) if then.size else first


def _end_s(
    scenario: Scenario, messages: Messages, records: tuple[GroupRecord, ...], drained: bool, stopped: Stop | None
) -> float:
    """When the run ended: its last activity if it drained, when it stopped, or the horizon."""
    if drained:
        return _last_activity_s(messages, records)
    return stopped.at_s if stopped is not None else scenario.horizon_s


def _last_activity_s(messages: Messages, records: tuple[GroupRecord, ...]) -> float:
    """When the last thing happened: an acceptance, a processing, a loss, a dead letter, a crash or the end
    of a deploy (a crash or a deploy scheduled after the bus drained still happens, and the run lasts until
    it)."""
    times = [messages.accept_s]
    for record in records:
        times += [record.deliveries.done_s, record.lost_s, record.dead_letter_s, record.crash_s, record.missed_crash_s]
        if record.lifecycle is not None:
            times.append(record.lifecycle.deploy_back_s)
    # Each column's latest on its own (fmax passes over NaN): no copy of columns as long as the run.
    latest = [float(np.fmax.reduce(column)) for column in times if column.size]
    return max((time_s for time_s in latest if not math.isnan(time_s)), default=0.0)
