"""Broker presets: each real broker's keys, their defaults, and where each default comes from.

A preset is a named set of defaults for the ``broker`` section. The keys a
preset lists are the only broker keys that apply to it, besides the
:data:`COMMON_KEYS` that every preset accepts; a key that applies to another
preset is an error, not silently ignored. Defaults are written in the YAML
shape, so that the schema validates them exactly as it validates a file.

Every default carries its source: a page of the broker's documentation, a
published benchmark, or ``JUDGEMENT`` with the reason, where no documented
figure exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JUDGEMENT = "judgement"


@dataclass(frozen=True)
class Default:
    """A preset's default for one key, and its source."""

    value: Any  # in the YAML shape
    basis: str  # the documented setting or measurement, or "judgement: why"
    url: str = ""  # where it is documented

    @property
    def judgement(self) -> bool:
        return JUDGEMENT in self.basis


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    ordering: str  # the scope within which the broker keeps order, in words
    defaults: dict[str, Default] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        """Every broker key that applies to this preset."""
        return (*COMMON_KEYS, *(key for key in self.defaults if key not in COMMON_KEYS))


# Keys that every preset accepts: the faults busim injects, and the broker's speed limit.
COMMON_KEYS = (
    "preset",
    "delivery",
    "latency",
    "duplication",
    "loss",
    "publish_ack_loss",
    "throughput",
    "outages",
)

# Keys that mean the same thing under each broker's own name, for hints.
EQUIVALENT_KEYS = (
    ("ack_timeout", "consumer_timeout", "visibility_timeout", "ack_wait", "claim_min_idle", "max_poll_interval"),
    ("max_deliveries", "delivery_limit", "max_receive_count", "max_deliver"),
    ("prefetch", "max_poll_records", "batch_size", "max_ack_pending"),
    ("dedup_window", "idempotent_producer"),
)

_OMB = "https://www.confluent.io/blog/kafka-fastest-messaging-system/"
_KAFKA_CONSUMER = "https://kafka.apache.org/documentation/#consumerconfigs"
_KAFKA_PRODUCER = "https://kafka.apache.org/documentation/#producerconfigs"
_RABBIT_CONFIRMS = "https://www.rabbitmq.com/docs/confirms"
_RABBIT_CONSUMERS = "https://www.rabbitmq.com/docs/consumers#acknowledgement-timeout"
_RABBIT_QUORUM = "https://www.rabbitmq.com/docs/quorum-queues#poison-message-handling"
_RABBIT_LENGTH = "https://www.rabbitmq.com/docs/maxlength"
_SQS_VISIBILITY = (
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html"
)
_SQS_DLQ = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html"
_SQS_RECEIVE = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html"
_SQS_FIFO_DEDUP = (
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/"
    "FIFO-queues-exactly-once-processing.html"
)
_SQS_QUOTAS = (
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/"
    "troubleshooting-fifo-throttling-issues.html"
)
_SQS_STANDARD = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/standard-queues.html"
_SQS_LATENCY = "https://aws.amazon.com/sqs/faqs/"
_NATS_CONSUMERS = "https://docs.nats.io/nats-concepts/jetstream/consumers"
_NATS_STREAMS = "https://docs.nats.io/nats-concepts/jetstream/streams"
_REDIS_STREAMS = "https://redis.io/docs/latest/develop/data-types/streams/"

_AT_LEAST_ONCE = Default("at-least-once", "the reliable mode of every preset: ack after processing")

_KAFKA = Preset(
    name="kafka",
    title="Apache Kafka topic, consumer group with offset commits",
    ordering="per partition",
    defaults={
        "latency": Default(
            {"quantiles": {"p50": "3.0ms", "p99": "5.4ms", "p99.9": "18.3ms"}},
            "end-to-end latency at 200 MB/s in the OpenMessaging Benchmark results behind this comparison "
            "(its text quotes the p99, 5 ms)",
            _OMB,
        ),
        "partitions": Default(6, f"{JUDGEMENT}: a typical topic; the broker's own num.partitions default is 1"),
        "commit": Default("auto", "enable.auto.commit=true", _KAFKA_CONSUMER),
        "auto_commit_interval": Default("5s", "auto.commit.interval.ms=5000", _KAFKA_CONSUMER),
        "max_poll_records": Default(500, "max.poll.records=500", _KAFKA_CONSUMER),
        "session_timeout": Default("45s", "session.timeout.ms=45000 since Kafka 3.0", _KAFKA_CONSUMER),
        "max_poll_interval": Default("5m", "max.poll.interval.ms=300000", _KAFKA_CONSUMER),
        "idempotent_producer": Default(
            True, "enable.idempotence=true since Kafka 3.0 (in effect from 3.2)", _KAFKA_PRODUCER
        ),
    },
)

_RABBIT_LATENCY = Default(
    {"quantiles": {"p50": "0.43ms", "p99": "0.73ms"}},
    "end-to-end latency at 30 MB/s in the OpenMessaging Benchmark results behind this comparison "
    "(its text quotes the p99, about 1 ms)",
    _OMB,
)
_RABBIT_CLASSIC = {
    "prefetch": Default(
        250,
        f"{JUDGEMENT}: the broker sets no limit by default and suggests 100 to 300; 250 is Spring AMQP's default",
        _RABBIT_CONFIRMS,
    ),
    "consumer_timeout": Default("30m", "consumer_timeout=1800000 ms", _RABBIT_CONSUMERS),
    "capacity": Default("unlimited", "no x-max-length by default", _RABBIT_LENGTH),
    "overflow": Default("drop-head", "overflow=drop-head by default", _RABBIT_LENGTH),
}

_SQS_LATENCY_DEFAULT = Default(
    {"quantiles": {"p50": "20ms", "p99": "100ms"}},
    f'"tens or low hundreds of milliseconds"; the percentiles are a {JUDGEMENT}',
    _SQS_LATENCY,
)
_SQS_DUPLICATION = Default(
    0.0001,
    f'"more than one copy of a message might be delivered"; the rate is a {JUDGEMENT}',
    _SQS_STANDARD,
)
_SQS_QUEUE = {
    "visibility_timeout": Default("30s", "30 seconds by default", _SQS_VISIBILITY),
    "max_receive_count": Default("unlimited", "no redrive policy by default", _SQS_DLQ),
    "batch_size": Default(1, "MaxNumberOfMessages=1 by default, at most 10", _SQS_RECEIVE),
}

_PRESETS = (
    Preset(
        name="ideal",
        title="A textbook queue: no latency, no faults, one FIFO queue per consumer group",
        ordering="per queue",
        defaults={
            "latency": Default("0s", f"{JUDGEMENT}: an ideal broker adds no delay"),
            "ack_timeout": Default("30s", f"{JUDGEMENT}: a common ack timeout"),
            "max_deliveries": Default("unlimited", f"{JUDGEMENT}: no dead-letter queue unless asked for"),
            "capacity": Default("unlimited", f"{JUDGEMENT}: an ideal queue never fills"),
            "overflow": Default("drop-head", f"{JUDGEMENT}: as RabbitMQ, when a capacity is set"),
        },
    ),
    _KAFKA,
    Preset(
        name="rabbitmq",
        title="RabbitMQ classic queue, competing consumers with manual acks",
        ordering="per queue, broken by requeues",
        defaults={"latency": _RABBIT_LATENCY, **_RABBIT_CLASSIC},
    ),
    Preset(
        name="rabbitmq-quorum",
        title="RabbitMQ quorum queue: replicated, with a delivery limit",
        ordering="per queue, broken by requeues",
        defaults={
            "latency": Default(
                {"quantiles": {"p50": "0.9ms", "p99": "2.5ms"}},
                f"{JUDGEMENT}: the classic queue's latency plus a Raft round trip to a majority before "
                "the message is enqueued; no published end-to-end percentiles",
            ),
            **_RABBIT_CLASSIC,
            "delivery_limit": Default(
                20, "delivery-limit=20 since RabbitMQ 4.0; every return counts, as in 4.0", _RABBIT_QUORUM
            ),
        },
    ),
    Preset(
        name="sqs-standard",
        title="Amazon SQS standard queue",
        ordering="none (best-effort)",
        defaults={
            "latency": _SQS_LATENCY_DEFAULT,
            "duplication": _SQS_DUPLICATION,
            **_SQS_QUEUE,
        },
    ),
    Preset(
        name="sqs-fifo",
        title="Amazon SQS FIFO queue, message groups by the event key",
        ordering="per message group (the event key)",
        defaults={
            "latency": _SQS_LATENCY_DEFAULT,
            "throughput": Default("300/s", "300 transactions per second per API action without batching", _SQS_QUOTAS),
            **_SQS_QUEUE,
            "dedup_window": Default("5m", "a 5-minute deduplication interval", _SQS_FIFO_DEDUP),
        },
    ),
    Preset(
        name="sns-sqs",
        title="Amazon SNS topic fanning out to one SQS standard queue per consumer group",
        ordering="none (best-effort)",
        defaults={
            "latency": Default(
                {"quantiles": {"p50": "45ms", "p99": "200ms"}},
                f"{JUDGEMENT}: the SQS latency plus an SNS hop of tens of milliseconds",
            ),
            "duplication": _SQS_DUPLICATION,
            **_SQS_QUEUE,
        },
    ),
    Preset(
        name="nats-jetstream",
        title="NATS JetStream stream with a durable pull consumer",
        ordering="per stream, broken by redeliveries",
        defaults={
            "latency": Default(
                {"quantiles": {"p50": "0.5ms", "p99": "2ms"}},
                f"{JUDGEMENT}: sub-millisecond median for a replicated stream on a LAN; no published percentiles",
            ),
            "ack_wait": Default("30s", "AckWait=30s", _NATS_CONSUMERS),
            "max_deliver": Default("unlimited", "MaxDeliver=-1", _NATS_CONSUMERS),
            "max_ack_pending": Default(1000, "MaxAckPending=1000", _NATS_CONSUMERS),
            "dedup_window": Default("2m", "Duplicates window of 2 minutes", _NATS_STREAMS),
            "capacity": Default("unlimited", "MaxMsgs=-1", _NATS_STREAMS),
            "overflow": Default("drop-head", "Discard=old", _NATS_STREAMS),
        },
    ),
    Preset(
        name="redis-streams",
        title="Redis stream read by a consumer group (XREADGROUP, XACK, XAUTOCLAIM)",
        ordering="per stream, broken by claims",
        defaults={
            "latency": Default(
                {"quantiles": {"p74.11": "1ms", "p99.9": "2ms"}},
                "latency tests: 74.11% of messages within 1 ms, 99.9% within 2 ms",
                _REDIS_STREAMS,
            ),
            "batch_size": Default(1, f"{JUDGEMENT}: XREADGROUP COUNT 1"),
            "claim_interval": Default("off", "nothing is redelivered unless a consumer claims it", _REDIS_STREAMS),
            "claim_min_idle": Default("60s", f"{JUDGEMENT}: the min-idle-time a claimer passes to XAUTOCLAIM"),
            "capacity": Default("unlimited", "no MAXLEN unless XADD trims", _REDIS_STREAMS),
        },
    ),
)

PRESETS: dict[str, Preset] = {preset.name: preset for preset in _PRESETS}
PRESET_NAMES = tuple(PRESETS)
# Every key that applies to some preset.
BROKER_KEYS = tuple(dict.fromkeys(key for preset in _PRESETS for key in preset.keys))


def defaults_of(preset: str) -> dict[str, Any]:
    """The preset's defaults in the YAML shape."""
    return {key: default.value for key, default in PRESETS[preset].defaults.items()}


def shown(value: Any) -> str:
    """A default as a user would write it in YAML, on one line."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {shown(inner)}" for key, inner in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(shown(inner) for inner in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def preset_rows(preset: str) -> list[tuple[str, str, str, str]]:
    """``(key, default, basis, url)`` for each key a preset sets, in the preset's order."""
    return [
        (key, shown(default.value), default.basis, default.url) for key, default in PRESETS[preset].defaults.items()
    ]


def inapplicable_hint(key: str, preset: str) -> str:
    """Why ``key`` does not apply to ``preset``, and what to write instead."""
    message = f"{key} does not apply to preset {preset}"
    remedy = "leave it out or set it to null"
    for group in EQUIVALENT_KEYS:
        if key in group:
            here = [other for other in group if other in PRESETS[preset].defaults]
            if here:
                return f"{message}; {preset} calls it {here[0]} ({remedy})"
    users = [name for name, other in PRESETS.items() if key in other.defaults]
    return f"{message}; it applies to {', '.join(users)} ({remedy})"
