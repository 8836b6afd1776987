"""The broker's path to one consumer group: latency, loss, duplication, outages.

Every delivery attempt to a group takes its own latency draw. An attempt is
lost in transit with probability ``loss``; an attempt that is not lost also
delivers a second copy with probability ``duplication`` (with its own
latency draw). A delivery that would land inside an outage lands when the
outage ends.

Every copy keeps its own latency draw. Within an ordering scope (a queue, a
partition, a message group) the broker keeps the order in which it accepted
the copies, so a copy reaches the queue no earlier than the copy ahead of it:
head-of-line blocking, by which a slow copy holds up those behind it and the
tail grows with the load. An unordered broker (SQS standard) lets every copy
arrive at its own time.

First attempts depend only on publishing, so they are drawn for all copies
at once; redeliveries are drawn one at a time from the same streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from busim.engine.failures import Slowdowns
from busim.engine.outages import Outages
from busim.engine.randomness import RandomStreams
from busim.engine.records import DeliveryCause, stable_order
from busim.engine.sampling import bernoulli_sampler, duration_sampler, sample_durations
from busim.scenario.schema import Broker


@dataclass(frozen=True)
class FirstAttempts:
    """The broker's first attempts to a group, as arrays.

    ``arrival_s``, ``message`` and ``cause`` list every copy that reaches the
    group's queue, sorted by arrival; ``lost`` lists the messages whose first
    attempt was lost in transit, and ``lost_s`` when that attempt was sent.
    """

    arrival_s: np.ndarray
    message: np.ndarray
    cause: np.ndarray
    lost: np.ndarray
    lost_s: np.ndarray


class BrokerLink:
    """Delivery attempts from the broker to one consumer group."""

    def __init__(self, broker: Broker, group: str, streams: RandomStreams, outages: Outages) -> None:
        self.broker = broker
        self.outages = outages
        self._latency_rng = streams.generator("broker", group, "latency")
        self._loss_rng = streams.generator("broker", group, "loss")
        self._duplication_rng = streams.generator("broker", group, "duplication")
        # Redeliveries continue the same streams after the first attempts' draws.
        self.latency = duration_sampler(broker.latency, self._latency_rng)
        self.lost = bernoulli_sampler(broker.loss, self._loss_rng)
        self.duplicated = bernoulli_sampler(broker.duplication, self._duplication_rng)
        self._slowdowns = Slowdowns(broker.slowdowns)  # latency x factor for attempts sent in a window

    def first_attempts(
        self, message: np.ndarray, accept_s: np.ndarray, cause: np.ndarray, scope: np.ndarray | None
    ) -> FirstAttempts:
        """Attempt every accepted copy once, at the time the broker accepted it.

        ``message``, ``accept_s`` and ``cause`` describe the copies the broker
        accepted (a message and any producer retries the broker kept);
        ``scope`` gives each message's ordering scope, or None when the broker
        keeps no order.
        """
        count = message.size
        lost = self._loss_rng.random(count) < self.broker.loss if self.broker.loss else np.zeros(count, bool)
        duplicated = (
            (self._duplication_rng.random(count) < self.broker.duplication) & ~lost
            if self.broker.duplication
            else np.zeros(count, bool)
        )
        # Every array here is as long as the run has messages: none is copied that need not be, and each
        # is freed as soon as it is done with.
        copy_message, copy_accept_s, copy_cause = message, accept_s, cause.astype(np.int8, copy=False)
        if lost.any() or duplicated.any():
            kept = np.count_nonzero(~lost)
            delivered = np.concatenate([np.flatnonzero(~lost), np.flatnonzero(duplicated)])
            copy_message = message[delivered]
            copy_accept_s = accept_s[delivered]
            copy_cause = cause[delivered].astype(np.int8)
            copy_cause[kept:] = DeliveryCause.BROKER_DUPLICATE
            del delivered
        del duplicated
        arrival_s = sample_durations(self.broker.latency, self._latency_rng, copy_message.size).astype(
            float, copy=False
        )
        if self._slowdowns:
            arrival_s *= self._slowdowns.factors_at(copy_accept_s)
        arrival_s += copy_accept_s
        if scope is not None:
            copy_scope = scope[copy_message]
            in_accept_order = stable_order((copy_cause, copy_message, copy_accept_s, copy_scope))
            del copy_accept_s
            arrival_s[in_accept_order] = running_max_by_segment(arrival_s[in_accept_order], copy_scope[in_accept_order])
            del in_accept_order, copy_scope
        else:
            del copy_accept_s
        if self.outages.starts_s:  # else the times stay as they are, and so does the array
            arrival_s = self.outages.defer(arrival_s)
        order = stable_order((copy_cause, copy_message, arrival_s))
        arrival_s = arrival_s[order]
        copy_message = copy_message[order]
        return FirstAttempts(
            arrival_s=arrival_s,
            message=copy_message,
            cause=copy_cause[order],
            lost=message[lost],
            lost_s=accept_s[lost],
        )

    def arrival(self, sent_s: float) -> float:
        """When an attempt sent at ``sent_s`` reaches the group's queue."""
        latency_s = self.latency()
        if self._slowdowns:
            latency_s *= self._slowdowns.factor_at(sent_s)
        return self.outages.defer_one(sent_s + latency_s)


def running_max_by_segment(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """The running maximum of ``values``, restarted wherever ``segment`` changes.

    ``segment`` must be grouped (equal values adjacent). Across segments the maximum runs over
    the ranks of the values, offset by segment, in int64: exact, unlike an
    offset added to the float values themselves.
    """
    count = values.size
    if count == 0:
        return values.copy()
    if segment[0] == segment[-1] and not (segment != segment[0]).any():
        return np.maximum.accumulate(values)  # one segment (a single queue): no ranks needed
    by_value = np.argsort(values, kind="stable")
    rank = np.empty(count, np.int64)
    rank[by_value] = np.arange(count)
    offset = np.cumsum(np.r_[True, segment[1:] != segment[:-1]])
    offset -= 1
    offset *= count
    # The ranks offset, their running maximum and the offset taken off again, all in one array.
    rank += offset
    np.maximum.accumulate(rank, out=rank)
    rank -= offset
    return values[by_value[rank]]
