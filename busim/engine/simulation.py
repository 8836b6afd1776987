"""One simulation run: build the components, run the clock, collect the record.

The lifecycle is fixed: publish every message (arrays), build one consumer
group per entry of ``consumers``, schedule the outages, run the SimPy clock
until everything has drained or ``duration + drain_timeout`` is reached, and
freeze what happened into a :class:`RunRecord`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import simpy

from busim.engine.broker import BrokerLink
from busim.engine.consumer import ConsumerGroup
from busim.engine.effects import EffectPlan
from busim.engine.outages import Outages
from busim.engine.publishing import publish
from busim.engine.randomness import RandomStreams
from busim.engine.records import GroupRecord, Messages, RunRecord
from busim.scenario.schema import Scenario

PROGRESS_STEPS = 200

ProgressCallback = Callable[[float], None]


def run(scenario: Scenario, seed: int, on_progress: ProgressCallback | None = None) -> RunRecord:
    """Simulate ``scenario`` with ``seed``.

    ``on_progress`` is called with the simulated time in seconds, about
    :data:`PROGRESS_STEPS` times over the publishing window.
    """
    scenario = scenario.model_copy(update={"seed": seed})
    streams = RandomStreams.from_seed(seed)
    outages = Outages(scenario.broker.outages)
    messages = publish(scenario, streams, outages)
    env = simpy.Environment()

    groups = []
    for consumer in scenario.consumers:
        events = list(dict.fromkeys(consumer.subscribes))
        selection = messages.select(events)
        plan = EffectPlan(consumer, messages.common_fields(selection))
        link = BrokerLink(scenario.broker, consumer.name, streams, outages)
        groups.append(ConsumerGroup(env, consumer, link, plan, messages.accept_s[selection.ids], selection, streams))

    horizon_s = scenario.horizon_s
    for start_s, end_s in zip(outages.starts_s, outages.ends_s):
        if start_s < horizon_s:
            for group in groups:
                env.timeout(start_s).callbacks.append(group.pause)
                env.timeout(end_s).callbacks.append(group.resume)
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
    drained = not any(group.has_work_left() for group in groups)
    records = tuple(group.record(horizon_s) for group in groups)
    return RunRecord(
        scenario=scenario,
        messages=messages,
        groups=records,
        sim_time_s=_last_activity_s(messages, records) if drained else horizon_s,
        drained=drained,
    )


def _last_activity_s(messages: Messages, records: tuple[GroupRecord, ...]) -> float:
    times = [messages.accept_s[-1:]] if len(messages) else []
    for record in records:
        times += [record.deliveries.done_s, record.lost_s, record.dead_letter_s]
    merged = np.concatenate(times) if times else np.empty(0)
    merged = merged[~np.isnan(merged)]
    return float(merged.max()) if merged.size else 0.0
