"""Figures only a real run has: the load generator's lag, and latency from the actual send.

A real run's record is analysed as a simulated one's (:mod:`busim.analysis.summary`);
these figures add what the wall clock shows about the generator itself. A
copy's *lag* is how late it went out against its due time. Latency is
measured from the due time (the schedule's, so that a generator falling
behind cannot hide the wait: no coordinated omission) and, here, also from
the actual send.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from busim.analysis.events import first_processing
from busim.analysis.latency import LatencySummary
from busim.engine.records import RunRecord

# The generator fell behind its schedule when its p99 lag exceeds this: beyond it, the latencies measured
# from the due time carry the generator's own delay.
BEHIND_LAG_S = 0.005
# Parts of the latency a real broker cannot show, left absent (null) in a real run's figures.
NOT_OBSERVED = ("latency_s.broker", "latency_s.queue_wait")


@dataclass(frozen=True)
class GeneratorFigures:
    """What the load generator did against its schedule."""

    copies: int  # copies the schedule holds (first copies, injected duplicates, resends)
    sent: int  # copies sent before the run ended
    refused: int  # copies the broker refused (a full queue with reject-publish)
    lag_s: LatencySummary  # how late each copy went out against its due time
    waited_for_broker_s: float  # time the generator waited for confirms before it could send more
    behind: bool  # the p99 lag exceeds BEHIND_LAG_S
    # The schedule's first copies, up to the last sent (copies_sent): the part of the schedule the run's record
    # holds, which busim explain cuts again. None in results written before it was kept.
    recorded: int | None = None

    @property
    def bottleneck(self) -> str | None:
        """Who held the generator back where it fell behind: ``broker`` or ``generator`` (itself).

        A wait for confirms delays every copy due meanwhile by as long as it lasts: where the generator
        waited for the broker at least half as long as its worst lag, the broker held it back.
        """
        if not self.behind:
            return None
        worst_s = self.lag_s.max or 0.0
        return "broker" if self.waited_for_broker_s >= 0.5 * worst_s else "generator"

    def verdict(self) -> str | None:
        """A sentence for the verdict where the generator fell behind; None where it kept to its schedule."""
        if not self.behind or self.lag_s.p99 is None:
            return None
        lag = f"p99 lag {self.lag_s.p99 * 1e3:,.1f} ms, max {(self.lag_s.max or 0.0) * 1e3:,.1f} ms"
        if self.bottleneck == "broker":
            return (
                f"the load generator fell behind its schedule ({lag}) waiting for the broker's confirms: "
                "the broker, not the generator, was the bottleneck"
            )
        return (
            f"the load generator fell behind its schedule ({lag}) on its own: the generator, not the broker, "
            "was the bottleneck, so these figures understate what the broker can take"
        )


@dataclass(frozen=True)
class RealFigures:
    """A real run's own figures, beside the figures every run has."""

    broker: str  # the URL the run drove, without its password
    driver: str  # the broker, for people: RabbitMQ, Redis Streams, NATS JetStream
    run_id: str  # the name of every resource the run created (and deleted)
    partial: bool  # interrupted: publishing stopped before the schedule's end
    stores: dict[str, str]  # consumer -> where its state was kept: redis or postgres
    generator: GeneratorFigures
    latency_from_send_s: dict[str, LatencySummary]  # consumer -> end-to-end latency from the actual send
    not_observed: tuple[str, ...] = NOT_OBSERVED


def generator_figures(
    due_s: np.ndarray, sent_s: np.ndarray, refused: np.ndarray, waited_for_broker_s: float
) -> GeneratorFigures:
    sent = ~np.isnan(sent_s)
    lag = LatencySummary.of(sent_s[sent] - due_s[sent])
    return GeneratorFigures(
        copies=int(due_s.size),
        sent=int(np.count_nonzero(sent)),
        refused=int(np.count_nonzero(refused)),
        lag_s=lag,
        waited_for_broker_s=round(waited_for_broker_s, 6),
        behind=lag.p99 is not None and lag.p99 > BEHIND_LAG_S,
        recorded=copies_sent(sent_s),
    )


def copies_sent(sent_s: np.ndarray) -> int:
    """How many of the schedule's first copies an interrupted run published, given when each was sent (NaN
    for a copy that never was): up to the last handed to the broker's client. An earlier copy whose send
    never started counts too: the run stopped after its turn, so its message was due before the stop.
    """
    went_out = np.flatnonzero(~np.isnan(sent_s))
    return int(went_out[-1]) + 1 if went_out.size else 0


def latency_from_send(record: RunRecord, first_sent_s: np.ndarray) -> dict[str, LatencySummary]:
    """Per consumer: from each message's first actual send to its first completed processing, after the warm-up.

    ``first_sent_s`` holds, per message, when its earliest copy went out (NaN if none did).
    """
    found = {}
    for group in record.groups:
        deliveries = group.deliveries
        rows = first_processing(deliveries)
        ids = group.message_ids[deliveries.message[rows]]
        measured = record.messages.publish_s[ids] >= record.scenario.warmup
        latency = deliveries.done_s[rows][measured] - first_sent_s[ids][measured]
        found[group.name] = LatencySummary.of(latency[~np.isnan(latency)])
    return found


def first_sent(copy_message: np.ndarray, sent_s: np.ndarray, messages: int) -> np.ndarray:
    """Per message, when its earliest copy was sent; NaN for messages never sent."""
    earliest = np.full(messages, math.inf)
    sent = ~np.isnan(sent_s)
    np.minimum.at(earliest, copy_message[sent], sent_s[sent])
    earliest[np.isinf(earliest)] = np.nan
    return earliest
