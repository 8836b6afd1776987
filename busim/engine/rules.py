"""The delivery rules of a broker, in the engine's own terms.

Each preset names its mechanisms the way its broker does (``visibility_timeout``,
``ack_wait``, ``delivery_limit``); the engine needs only a few ideas: when an
unacknowledged delivery comes back, how many attempts a message gets, how many
messages a consumer instance holds, and within which scope order is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from busim.scenario.schema import Broker

Ordering = Literal["none", "queue", "partition", "group"]

_ORDERING: dict[str, Ordering] = {
    "ideal": "queue",
    "kafka": "partition",
    "rabbitmq": "queue",
    "rabbitmq-quorum": "queue",
    "sqs-standard": "none",
    "sqs-fifo": "group",
    "sns-sqs": "none",
    "nats-jetstream": "queue",
    "redis-streams": "queue",
}


def _limit(value: int | str | None) -> int | None:
    return value if isinstance(value, int) else None


def _holding(broker: Broker, instances: int) -> int | None:
    """How many unacked deliveries one instance may hold, if the broker sets it per instance or per group."""
    if broker.prefetch is not None:  # per channel, so per instance
        return _limit(broker.prefetch) or _NO_LIMIT
    if broker.max_ack_pending is not None:  # per consumer: the group's instances share it
        limit = _limit(broker.max_ack_pending)
        return max(1, limit // instances) if limit else _NO_LIMIT
    return None


_NO_LIMIT = 1 << 62


_LIMITS_CALLS = ("sqs-standard", "sqs-fifo", "sns-sqs")  # throughput counts receive calls, not messages


def _throughput_per_s(broker: Broker) -> float:
    """Messages per second a queue hands out at most; SQS limits receive calls, each of up to batch_size messages."""
    if not isinstance(broker.throughput, float):
        return math.inf
    if broker.preset in _LIMITS_CALLS:
        return broker.throughput * (broker.batch_size or 1)
    return broker.throughput


@dataclass(frozen=True)
class DeliveryRules:
    """How one broker delivers, acknowledges and redelivers.

    ``None`` means "no such limit" or "no such timer" throughout.
    """

    at_least_once: bool
    ordering: Ordering
    ack_timeout_s: float | None  # an unacked delivery comes back this long after it was received
    claim_interval_s: float | None  # ... or, with a claimer, at the claimer's next pass after that
    requeue_on_crash: bool  # a crashed instance's unacked deliveries come back at once
    max_deliveries: int | None  # attempts before a message is dead-lettered
    batch_per_worker: int | None  # entries a worker reads at a time, and works through before it reads again
    prefetch_per_instance: int | None  # unacked deliveries an instance holds, topped up on each ack
    capacity: int | None  # copies waiting in a queue
    overflow: Literal["drop-head", "reject-publish"]
    throughput_per_s: float  # receives per second from a queue or partition (inf: no limit)
    throughput_counts_calls: bool  # throughput limits receive calls of up to batch_per_worker each (SQS)
    dedup_window_s: float | None  # producer retries within it are dropped by the broker
    partitions: int | None
    commit: Literal["auto", "per-message", "per-batch"]
    auto_commit_interval_s: float
    session_timeout_s: float
    max_poll_records: int
    max_poll_interval_s: float

    @property
    def reads_in_batches(self) -> bool:
        """Whether each worker reads batches of its own (more than one entry a read, no prefetch limit)."""
        return (self.batch_per_worker or 1) > 1 and self.prefetch_per_instance is None

    def held_per_instance(self, concurrency: int) -> int:
        """How many unacknowledged deliveries an instance of ``concurrency`` workers holds."""
        return self.prefetch_per_instance or (self.batch_per_worker or 1) * concurrency

    @classmethod
    def of(cls, broker: Broker, instances: int = 1) -> DeliveryRules:
        """The rules of ``broker`` for a consumer group of ``instances`` instances."""
        ack_timeout_s = broker.ack_timeout or broker.consumer_timeout or broker.visibility_timeout or broker.ack_wait
        claim_interval_s = broker.claim_interval if isinstance(broker.claim_interval, float) else None
        if broker.preset == "redis-streams":
            ack_timeout_s = broker.claim_min_idle if claim_interval_s is not None else None
        max_deliveries = _limit(broker.max_deliveries) or _limit(broker.max_receive_count) or _limit(broker.max_deliver)
        if _limit(broker.delivery_limit) is not None:
            # A quorum queue dead-letters a message returned more than delivery_limit times.
            max_deliveries = _limit(broker.delivery_limit) + 1
        if broker.idempotent_producer:
            dedup_window_s: float | None = math.inf
        elif broker.dedup_window:
            dedup_window_s = broker.dedup_window
        else:
            dedup_window_s = None
        return cls(
            at_least_once=broker.delivery == "at-least-once",
            ordering=_ORDERING[broker.preset],
            ack_timeout_s=ack_timeout_s,
            claim_interval_s=claim_interval_s,
            requeue_on_crash=broker.preset in ("rabbitmq", "rabbitmq-quorum"),
            max_deliveries=max_deliveries,
            batch_per_worker=broker.batch_size,
            prefetch_per_instance=_holding(broker, instances),
            capacity=_limit(broker.capacity),
            overflow=broker.overflow or "drop-head",
            throughput_per_s=_throughput_per_s(broker),
            throughput_counts_calls=broker.preset in _LIMITS_CALLS,
            dedup_window_s=dedup_window_s,
            partitions=broker.partitions,
            commit=broker.commit or "auto",
            auto_commit_interval_s=broker.auto_commit_interval or 5.0,
            session_timeout_s=broker.session_timeout if broker.session_timeout is not None else 45.0,
            max_poll_records=broker.max_poll_records or 500,
            max_poll_interval_s=broker.max_poll_interval or 300.0,
        )
