"""The broker's path to one consumer group: latency, loss, duplication, outages.

Every delivery attempt to a group takes its own latency draw. An attempt is
lost in transit with probability ``loss``; an attempt that is not lost also
delivers a second copy with probability ``duplication`` (with its own
latency draw). A delivery that would land inside an outage lands when the
outage ends.

First attempts depend only on publishing, so they are drawn for all messages
at once; redeliveries are drawn one at a time from the same streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from busim.engine.outages import Outages
from busim.engine.randomness import RandomStreams
from busim.engine.records import DeliveryCause
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

    def first_attempts(self, accept_s: np.ndarray) -> FirstAttempts:
        """Attempt every message once, at the time the broker accepted it."""
        count = accept_s.size
        lost = self._loss_rng.random(count) < self.broker.loss if self.broker.loss else np.zeros(count, bool)
        duplicated = (
            (self._duplication_rng.random(count) < self.broker.duplication) & ~lost
            if self.broker.duplication
            else np.zeros(count, bool)
        )
        delivered = np.flatnonzero(~lost)
        copies = np.flatnonzero(duplicated)
        latency_s = sample_durations(self.broker.latency, self._latency_rng, delivered.size + copies.size)
        message = np.concatenate([delivered, copies])
        arrival_s = self.outages.defer(accept_s[message] + latency_s)
        cause = np.concatenate(
            [
                np.full(delivered.size, DeliveryCause.FIRST, np.int8),
                np.full(copies.size, DeliveryCause.BROKER_DUPLICATE, np.int8),
            ]
        )
        order = np.lexsort((cause, message, arrival_s))
        return FirstAttempts(
            arrival_s=arrival_s[order],
            message=message[order],
            cause=cause[order],
            lost=np.flatnonzero(lost),
            lost_s=accept_s[lost],
        )

    def arrival(self, sent_s: float) -> float:
        """When an attempt sent at ``sent_s`` reaches the group's queue."""
        return self.outages.defer_one(sent_s + self.latency())
