"""Publishing: every publisher's messages, merged into one table in publish order.

Publishing depends on nothing that happens later in the run, so all
messages are drawn up front in numpy rather than one by one during the
simulation. A publish made while the broker is down is accepted when it comes
back, unless that is later than the publisher keeps retrying
(``retries x publish_timeout``): then the publish fails. A publish whose
acknowledgement is lost (``broker.publish_ack_loss``) is sent again after
``publish_timeout``, while retries remain; the broker keeps the resend as a
second copy unless it deduplicates within a window that has not yet passed.

A publisher with ``crash`` crashes, with that probability per message, after
committing its own state and before its event is safely out. Without an
outbox the event is lost: the publisher's state says it happened, no
consumer ever hears of it. With an outbox the relay publishes it after the
restart: the crash falls before or after the relay's send with equal chance
(a uniform point in the window), so the event is either late or sent twice.
"""

from __future__ import annotations

import numpy as np

from busim.engine.arrivals import publish_times
from busim.engine.outages import Outages
from busim.engine.randomness import RandomStreams
from busim.engine.records import Messages, constant, joined, stable_order
from busim.engine.sampling import narrowed, sample_field
from busim.scenario.schema import Scenario, SequenceField


def publish(
    scenario: Scenario, streams: RandomStreams, outages: Outages, dedup_window_s: float | None = None
) -> Messages:
    """Draw every publisher's messages, their payloads, failures and resends.

    ``dedup_window_s`` is how long after a message the broker drops its
    resends (None: the broker keeps every resend).
    """
    event_names = tuple(scenario.events)
    event_times, event_publishers = [], []
    fields: dict[str, dict[str, np.ndarray]] = {}
    for event_name in event_names:
        publishers = [(index, p) for index, p in enumerate(scenario.publishers) if p.event == event_name]
        times = [
            publish_times(publisher, scenario.duration, streams.generator("publisher", publisher.name, "arrivals"))
            for _, publisher in publishers
        ]
        merged = joined(times or [np.empty(0)])
        order = stable_order((merged,))  # ties: publishers in scenario order
        event_times.append(merged[order])
        event_publishers.append(
            joined([constant(i, t.size, np.int32) for (i, _), t in zip(publishers, times)] or [np.empty(0, np.int32)])[
                order
            ]
        )
        fields[event_name] = {}
        for name, generator in scenario.events[event_name].fields.items():
            if isinstance(generator, SequenceField):
                values = generator.start + np.arange(merged.size, dtype=np.int64)
            else:
                values = np.concatenate(
                    [np.empty(0, np.int64)]
                    + [
                        sample_field(generator, streams.generator("publisher", publisher.name, "field", name), t.size)
                        for (_, publisher), t in zip(publishers, times)
                    ]
                )[order]
            fields[event_name][name] = narrowed(values)

    # Merge the events; a stable sort keeps each event's messages in their order, aligned with its fields.
    all_times = joined(event_times)
    order = stable_order((all_times,))
    event_of = joined([constant(e, t.size, np.int32) for e, t in enumerate(event_times)])[order]
    published_s = all_times[order]
    publisher = joined(event_publishers)[order]
    accept_s = outages.defer(published_s)
    retries = _per_message(np.array([_retries(p.retries) for p in scenario.publishers], dtype=float), publisher)
    timeout_s = _per_message(np.array([p.publish_timeout for p in scenario.publishers]), publisher)
    outbox = _per_message(np.array([p.outbox for p in scenario.publishers], dtype=bool), publisher)
    # A relay publishing from a durable outbox never gives up on an outage.
    failed = (accept_s - published_s > retries * timeout_s) & ~outbox
    crashed, sent = _crashes(scenario, streams, publisher)
    crashed &= ~failed
    restart_s = _per_message(
        np.array([p.crash.restart_after if p.crash else 0.0 for p in scenario.publishers]), publisher
    )
    failed |= crashed & ~outbox
    late = crashed & outbox & ~sent
    accept_s[late] = outages.defer(published_s[late] + restart_s[late])
    accept_s[failed] = np.nan
    relayed = np.flatnonzero(crashed & outbox & sent)
    # The crashed publisher sends nothing more itself: after its restart the relay publishes again.
    resend_message, resend_accept_s = _resends(
        scenario, streams, outages, publisher, accept_s, retries, timeout_s, crashed
    )
    resend_relayed = np.concatenate([np.zeros(resend_message.size, bool), np.ones(relayed.size, bool)])
    resend_message = np.concatenate([resend_message, relayed])
    resend_accept_s = np.concatenate([resend_accept_s, outages.defer(published_s[relayed] + restart_s[relayed])])
    after_s = resend_accept_s - accept_s[resend_message]
    resend_kept = np.ones(resend_message.size, dtype=bool)
    if dedup_window_s is not None:
        resend_kept[~resend_relayed] = after_s[~resend_relayed] > dedup_window_s
    # The relay is a new producer session after the restart: only a window on the message id (SQS FIFO,
    # NATS) drops its resend, not an idempotent producer's sequence numbers.
    relay_window_s = scenario.broker.dedup_window
    if relay_window_s:
        resend_kept[resend_relayed] = after_s[resend_relayed] > relay_window_s
    if np.array_equal(accept_s, published_s):
        accept_s = published_s  # accepted as published (no outage, nothing failed): one array for both
    return Messages(
        publish_s=published_s,
        accept_s=accept_s,
        failed=failed,
        resend_message=resend_message,
        resend_accept_s=resend_accept_s,
        resend_kept=resend_kept,
        resend_relayed=resend_relayed,
        publisher_crashed=crashed,
        cause=constant(-1, published_s.size, np.int32),  # messages are bounded far below 2^31
        emitter=constant(-1, published_s.size, np.int32),
        publisher=publisher,
        event=event_of,
        event_names=event_names,
        fields=fields,
        members={name: np.flatnonzero(event_of == e).astype(np.int32) for e, name in enumerate(event_names)},
    )


def _per_message(values: np.ndarray, publisher: np.ndarray) -> np.ndarray:
    """Each message's publisher's entry of ``values`` (one per publisher); with one publisher, its value
    broadcast (read-only) rather than copied once per message."""
    return np.broadcast_to(values[0], publisher.shape) if values.size == 1 else values[publisher]


def _crashes(scenario: Scenario, streams: RandomStreams, publisher: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which messages' publishers crashed around publishing them, and whether the relay had sent them first."""
    crashed = np.zeros(publisher.size, dtype=bool)
    sent = np.zeros(publisher.size, dtype=bool)
    for index, entry in enumerate(scenario.publishers):
        if entry.crash is None or entry.crash.probability == 0:
            continue
        mine = np.flatnonzero(publisher == index)
        point = streams.generator("publisher", entry.name, "crash").random(mine.size) / entry.crash.probability
        crashed[mine] = point < 1  # the crash falls inside the publish window
        sent[mine] = point < 0.5  # the crash came after the relay's send
    return crashed, sent


def _retries(retries: int | str) -> float:
    return float(retries) if isinstance(retries, int) else np.inf


def _resends(
    scenario: Scenario,
    streams: RandomStreams,
    outages: Outages,
    publisher: np.ndarray,
    accept_s: np.ndarray,
    retries: np.ndarray,
    timeout_s: np.ndarray,
    crashed: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Resends after lost publish acks: each message's ``k``-th resend goes ``k x publish_timeout`` after it.

    A publisher that crashed around a message (``crashed``) resends nothing of it.
    """
    ack_loss = scenario.broker.publish_ack_loss
    if ack_loss == 0 or accept_s.size == 0:
        return np.empty(0, np.int64), np.empty(0)
    lost_acks = np.array(retries)  # every ack lost: as many resends as retries (finite, see references)
    if ack_loss < 1:
        for index, entry in enumerate(scenario.publishers):
            mine = np.flatnonzero(publisher == index)
            rng = streams.generator("publisher", entry.name, "acks")
            lost_acks[mine] = rng.geometric(1 - ack_loss, mine.size) - 1  # acks lost before one arrives
    lost_acks = np.minimum(lost_acks, retries).astype(np.int64)
    lost_acks[np.isnan(accept_s) | crashed] = 0
    message = np.repeat(np.arange(accept_s.size), lost_acks)
    nth = np.arange(message.size) - np.repeat(np.cumsum(lost_acks) - lost_acks, lost_acks) + 1
    return message, outages.defer(accept_s[message] + nth * timeout_s[message])
