"""What a real run publishes, and when: the simulation's own messages, as copies with due times.

The messages are the engine's (:func:`busim.engine.publishing.publish`, the
same seed giving the same arrival times, payloads and publisher faults), so
that a real run and its simulation publish the same schedule. Each message is
sent as one or more *copies*, in due order:

- its first copy at its publish time, unless its publisher crashed before
  publishing it (no outbox) or the run injects its loss (``broker.loss``);
- a resend ``k x publish_timeout`` later for each publish ack the scenario
  loses (``broker.publish_ack_loss``), and the outbox relay's copy after a
  publisher crash: the real broker decides whether it keeps them (NATS drops
  a resend inside its duplicate window, RabbitMQ and Redis keep it);
- a second copy right after the first where the run injects a duplicate
  (``broker.duplication``).

Nothing here talks to a broker; the publisher loop in :mod:`busim.loadtest.runner`
sends the copies as they fall due.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from busim.engine.outages import Outages
from busim.engine.publishing import publish
from busim.engine.randomness import RandomStreams
from busim.engine.records import DeliveryCause, LossReason, Messages
from busim.scenario.schema import Scenario


@dataclass(frozen=True)
class Schedule:
    """Every copy to publish, in due order, and the messages they are copies of."""

    messages: Messages  # the simulation's messages: publish_s is each one's intended send time
    copy_message: np.ndarray  # per copy: the message (int64)
    copy_due_s: np.ndarray  # per copy: when it is due, in seconds since the run started
    copy_cause: np.ndarray  # per copy: DeliveryCause of its first delivery (FIRST, PRODUCER_RETRY, ...)
    unsent: np.ndarray  # messages never sent: their publisher crashed without an outbox, or the run lost them
    unsent_reason: np.ndarray  # LossReason, aligned with unsent

    def __len__(self) -> int:
        return self.copy_message.size

    @classmethod
    def of(cls, scenario: Scenario) -> Schedule:
        """The schedule of ``scenario`` under its seed (which must be set)."""
        assert scenario.seed is not None, "a schedule needs the scenario's seed"
        streams = RandomStreams.from_seed(scenario.seed)
        messages = publish(scenario, streams, Outages(()), None)
        count = len(messages)
        broker = scenario.broker
        lost = np.zeros(count, dtype=bool)
        if broker.loss:
            lost = streams.generator("loadtest", "injected loss").random(count) < broker.loss
        duplicated = np.zeros(count, dtype=bool)
        if broker.duplication:
            duplicated = streams.generator("loadtest", "injected duplication").random(count) < broker.duplication
        crashed = messages.failed  # no outages here: only a publisher crash without an outbox fails a publish
        first = np.flatnonzero(~crashed & ~lost)
        resend_cause = np.where(messages.resend_relayed, DeliveryCause.OUTBOX_RELAY, DeliveryCause.PRODUCER_RETRY)
        # A relayed copy's publisher crashed before its own send (the relay's resend is then its first copy):
        # the engine marks those as accepted late, not resent.
        twins = first[duplicated[first]]
        copy_message = np.concatenate([first, twins, messages.resend_message])
        copy_due_s = np.concatenate([messages.accept_s[first], messages.accept_s[twins], messages.resend_accept_s])
        copy_cause = np.concatenate(
            [
                np.full(first.size, DeliveryCause.FIRST),
                np.full(twins.size, DeliveryCause.INJECTED_DUPLICATE),
                resend_cause,
            ]
        ).astype(np.int8)
        order = np.lexsort((np.arange(copy_due_s.size), copy_due_s))
        unsent = np.flatnonzero(crashed | lost)
        unsent_reason = np.where(crashed[unsent], LossReason.PUBLISHER_CRASH, LossReason.INJECTED_LOSS)
        return cls(
            messages=messages,
            copy_message=copy_message[order].astype(np.int64),
            copy_due_s=copy_due_s[order],
            copy_cause=copy_cause[order],
            unsent=unsent,
            unsent_reason=unsent_reason.astype(np.int8),
        )
