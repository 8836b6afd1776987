"""Processing failures, the consumer's retries, what it does when it gives up, and slowdowns.

An attempt fails by chance (``failures.probability``, a draw per attempt)
or because its message is poison (``failures.poison``, drawn per message
when the group is built, fixed for the run). A failed attempt ends after
``after`` of its processing time. The worker retries in place, holding the
delivery, after a backoff; each retry is a delivery row of its own (cause
``retry``), with the broker's attempt of the delivery it retries. When no
retry is left the consumer gives up: ``nack`` hands the delivery back by the
broker's rule (:data:`NACKS`), ``dead_letter`` dead-letters it, ``drop`` and
``ack`` lose it.

A slowdown window multiplies every duration that starts inside it: a
processing time, or a broker latency.

Nothing here is scheduled on the clock: the consumer groups ask, per
attempt, whether it fails, how long it takes and how long to wait; only
failed deliveries and their retries are kept in dictionaries.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from busim.engine.handler import Handler
from busim.engine.log import DeliveryLog
from busim.engine.randomness import RandomStreams
from busim.engine.records import DeliveryCause, FailureRecord, Outcome
from busim.engine.sampling import bernoulli_sampler
from busim.scenario.schema import Backoff, Broker, Consumer, Slowdown

_NEVER = 1 << 62

# What a nack does on each preset: requeue at once; come back by the broker's own timer (visibility timeout, a
# claimer's pass; pending for good without one); come back after the consumer's backoff list (JetStream nak).
NACKS = {
    "ideal": "requeue",
    "rabbitmq": "requeue",
    "rabbitmq-quorum": "requeue",
    "sqs-standard": "timer",
    "sqs-fifo": "timer",
    "sns-sqs": "timer",
    "nats-jetstream": "delay",
    "redis-streams": "timer",
}


class Slowdowns:
    """Windows in which durations are stretched by a factor; windows do not overlap."""

    def __init__(self, windows: list[Slowdown] | None) -> None:
        ordered = sorted(windows or (), key=lambda window: window.start)
        self.starts_s = [window.start for window in ordered]
        self.ends_s = [window.to for window in ordered]
        self.factors = [window.factor for window in ordered]

    def __bool__(self) -> bool:
        return bool(self.starts_s)

    def factor_at(self, at_s: float) -> float:
        """The factor of a duration that starts at ``at_s`` (1 outside every window)."""
        index = bisect_right(self.starts_s, at_s) - 1
        if index >= 0 and at_s < self.ends_s[index]:
            return self.factors[index]
        return 1.0

    def factors_at(self, at_s: np.ndarray) -> np.ndarray:
        """:meth:`factor_at` over an array of start times."""
        factors = np.ones(at_s.size)
        for start_s, end_s, factor in zip(self.starts_s, self.ends_s, self.factors):
            factors[(at_s >= start_s) & (at_s < end_s)] = factor
        return factors


def backoff_s(backoff: Backoff | None, retry: int, rng: np.random.Generator) -> float:
    """How long a worker waits before its ``retry``-th retry (1 for the first)."""
    if backoff is None:
        return 0.0
    if backoff.exponential is not None:
        exponential = backoff.exponential
        wait_s = exponential.base * 2.0 ** min(retry - 1, 1023)
        if exponential.max is not None:
            wait_s = min(wait_s, exponential.max)
    else:
        wait_s = backoff.constant or 0.0
    if backoff.jitter == "full":
        wait_s = float(rng.uniform(0.0, wait_s))
    return wait_s


@dataclass(frozen=True)
class Stall:
    """A delivery that failed and held its worker (on Kafka, its partition) while it retried."""

    partition: int  # -1 on a queue
    start_s: float  # its first failed attempt started
    end_s: float  # its last attempt ended
    held_up: int  # records of the partition that had arrived behind it by then (0 on a queue)


class FailurePlan:
    """One consumer group's failures, retries, give-up and slowdowns."""

    def __init__(self, consumer: Consumer, broker: Broker, streams: RandomStreams, messages: int) -> None:
        failures = consumer.failures
        name = consumer.name
        self.slowdowns = Slowdowns(consumer.slowdowns)
        self.after = failures.after if failures is not None else 1.0
        probability = failures.probability if failures is not None else 0.0
        self._transient = bernoulli_sampler(probability, streams.generator("consumer", name, "failures"))
        poison = failures.poison if failures is not None else 0.0
        self.poison = (
            streams.generator("consumer", name, "poison").random(messages) < poison
            if poison > 0
            else np.zeros(messages, bool)
        )
        self._poison = bytearray(self.poison.tobytes())
        retry = consumer.retry
        self.retries = _NEVER if retry is not None and retry.attempts == "unlimited" else retry.attempts if retry else 0
        self._backoff = retry.backoff if retry is not None else None
        self._backoff_rng = streams.generator("consumer", name, "backoff")
        kafka = broker.preset == "kafka"
        self.action = consumer.on_give_up or ("ack" if kafka else "nack")
        self.retry_topic_delays_s = (
            tuple(broker.retry_topic.delays)
            if kafka and broker.kafka_retry == "retry_topic" and broker.retry_topic
            else ()
        )
        self.nack = NACKS.get(broker.preset, "requeue")
        self._nak_delays_s = tuple(broker.backoff or ())
        # The effects are written without a transaction, at the end of processing, before a failure at the end.
        self.partial_effects = self.after >= 1.0 and consumer.effects_isolation != "atomic" and bool(consumer.effects)
        self.failing: set[int] = set()  # deliveries whose attempt is failing
        self.retried: dict[int, int] = {}  # a retry's delivery -> how many retries its delivery has had
        self.stall_start_s: dict[int, float] = {}  # a retry's delivery -> when its first failed attempt started
        self.stalls: list[Stall] = []

    @classmethod
    def of(cls, consumer: Consumer, broker: Broker, streams: RandomStreams, messages: int) -> FailurePlan | None:
        """The plan of ``consumer``, or None where it neither fails nor slows down."""
        if consumer.failures is None and not consumer.slowdowns:
            return None
        return cls(consumer, broker, streams, messages)

    def attempt_s(self, delivery: int, message: int, processing_s: float, now: float) -> float:
        """How long an attempt at ``message`` that starts at ``now`` takes, and whether it fails (noted)."""
        processing_s *= self.slowdowns.factor_at(now)
        if self._poison[message] or self._transient():
            self.failing.add(delivery)
            processing_s *= self.after
        return processing_s

    def attempt_failed(self, handler: Handler, log: DeliveryLog, delivery: int, instance: int, now: float) -> bool:
        """A failed attempt at ``delivery`` ends at ``now``; returns whether its effects stay (written without a
        transaction before the failure)."""
        self.failing.discard(delivery)
        log.done_s[delivery] = now
        partial = False
        if self.partial_effects:
            partial = handler.handle(delivery, log.message[delivery], instance, now) == Outcome.APPLIED
        elif handler.reads_first:
            handler.abort(delivery)
        log.outcome[delivery] = Outcome.FAILED_AFTER_EFFECTS if partial else Outcome.FAILED
        return partial

    def retry(self, log: DeliveryLog, delivery: int, partial: bool, now: float) -> tuple[int, float] | None:
        """The worker's next retry of the failed ``delivery``: its row, and when it starts; None when no retry
        is left (the stall that began at the first failed attempt is then still open, under ``delivery``)."""
        retries = self.retried.pop(delivery, 0)
        start_s = self.stall_start_s.pop(delivery, log.take_s[delivery])
        if retries >= self.retries:
            self.stall_start_s[delivery] = start_s
            return None
        take_s = now + backoff_s(self._backoff, retries + 1, self._backoff_rng)
        cause = DeliveryCause.RETRY_AFTER_PARTIAL_EFFECT if partial else DeliveryCause.RETRY
        row = log.append(
            log.message[delivery],
            log.attempt[delivery],
            cause,
            log.instance[delivery],
            log.arrival_s[delivery],
            log.receive_s[delivery],
        )  # taken when the retry starts: a crash, or the end of the run, may come first
        self.retried[row] = retries + 1
        self.stall_start_s[row] = start_s
        return row, take_s

    def stall_ends(self, delivery: int, now: float, partition: int = -1, held_up: int = 0) -> None:
        """``delivery``, which had failed before, has had its last attempt."""
        self.retried.pop(delivery, None)
        self.stalls.append(Stall(partition, self.stall_start_s.pop(delivery), now, held_up))

    def nak_delay_s(self, attempt: int) -> float:
        """JetStream: the delay of a nak after the message's ``attempt``-th delivery."""
        delays = self._nak_delays_s
        return delays[min(attempt, len(delays)) - 1] if delays else 0.0

    def dead_letter_cause(self, message: int, limit: bool) -> int:
        """Why ``message`` is dead-lettered after failing: poison, or its delivery limit, or retries exhausted."""
        if self._poison[message]:
            return DeliveryCause.POISON
        return DeliveryCause.DELIVERY_LIMIT if limit else DeliveryCause.RETRIES_EXHAUSTED

    def record(self) -> FailureRecord:
        stalls = self.stalls
        return FailureRecord(
            poison=np.flatnonzero(self.poison),
            stall_partition=np.array([stall.partition for stall in stalls], np.int64),
            stall_start_s=np.array([stall.start_s for stall in stalls], np.float64),
            stall_end_s=np.array([stall.end_s for stall in stalls], np.float64),
            stall_held_up=np.array([stall.held_up for stall in stalls], np.int64),
        )
