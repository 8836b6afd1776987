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
sends the copies as they fall due. An interrupted run sends only the first
copies: :meth:`Schedule.cut` is the part of the schedule they published, the
messages every figure of the run is about.
"""

from __future__ import annotations

import dataclasses
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
    copy_resend: np.ndarray  # per copy: its row in the messages' resends; -1 for a first copy or a duplicate
    scheduled_id: np.ndarray  # per message: its id in the whole schedule (the emission plan numbers those); a cut
    # keeps a prefix of the schedule's messages, so this is their own index there
    whole: Messages  # the whole schedule's messages: ``messages`` itself, unless the schedule was cut
    # Messages of a cut none of whose copies went out before the run stopped (an outbox relay due after the
    # stop): not published yet, not lost. Empty for a whole schedule.
    unpublished: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, np.int64))

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
        copy_resend = np.concatenate([np.full(first.size + twins.size, -1), np.arange(messages.resend_message.size)])
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
            copy_resend=copy_resend[order].astype(np.int64),
            scheduled_id=np.arange(count, dtype=np.int64),
            whole=messages,
        )

    def cut(self, sent: int) -> Schedule:
        """The part of the schedule its first ``sent`` copies published, as an interrupted run published it.

        It holds the schedule's first messages, up to the last whose publish time came before the stop (the
        due time of the first copy not sent) or one of whose copies was sent: a prefix, so that each keeps
        its id in the schedule, as the run's workers, the broker's payloads and the simulation know it. Of
        those, the messages the run meant to leave unsent (a publisher crash, an injected loss) stay unsent;
        those none of whose copies went out before the stop (an outbox relay due after it) are unpublished,
        neither sent nor lost. Of the resends, those sent; copies keep their numbers.
        """
        if sent >= len(self):
            return self
        if sent < 0:
            raise ValueError(f"copies sent must be >= 0 (got {sent})")
        stopped_s = float(self.copy_due_s[sent])  # the due time of the first copy not sent
        sent_message = self.copy_message[:sent]
        # Messages are in publish order, and no copy is due before its message's publish time.
        count = int(np.searchsorted(self.messages.publish_s, stopped_s, side="left"))
        if sent:
            count = max(count, int(sent_message.max()) + 1)
        ids = np.arange(count)
        new_id = np.full(len(self.messages), -1, dtype=np.int64)
        new_id[ids] = ids
        unsent_kept = self.unsent < count
        accounted = np.zeros(count, dtype=bool)
        accounted[sent_message] = True
        accounted[self.unsent[unsent_kept]] = True
        resend = self.copy_resend[:sent]
        is_resend = resend >= 0
        resends = np.sort(resend[is_resend])
        copy_resend = np.full(sent, -1, dtype=np.int64)
        copy_resend[is_resend] = np.searchsorted(resends, resend[is_resend])
        return Schedule(
            messages=_only(self.messages, ids, new_id, resends),
            copy_message=sent_message,
            copy_due_s=self.copy_due_s[:sent],
            copy_cause=self.copy_cause[:sent],
            unsent=self.unsent[unsent_kept],
            unsent_reason=self.unsent_reason[unsent_kept],
            copy_resend=copy_resend,
            scheduled_id=self.scheduled_id[:count],
            whole=self.whole,
            unpublished=np.flatnonzero(~accounted),
        )


def _only(messages: Messages, ids: np.ndarray, new_id: np.ndarray, resends: np.ndarray) -> Messages:
    """``messages`` (published ones, none emitted) with only messages ``ids`` (ascending; ``new_id`` renumbers
    them) and only the resends at rows ``resends`` (ascending)."""
    members, fields = {}, {}
    for event, event_members in messages.members.items():
        kept = new_id[event_members] >= 0
        members[event] = new_id[event_members[kept]]
        fields[event] = {name: values[kept] for name, values in messages.fields[event].items()}
    return dataclasses.replace(
        messages,
        publish_s=messages.publish_s[ids],
        accept_s=messages.accept_s[ids],
        failed=messages.failed[ids],
        publisher=messages.publisher[ids],
        event=messages.event[ids],
        fields=fields,
        members=members,
        resend_message=new_id[messages.resend_message[resends]],
        resend_accept_s=messages.resend_accept_s[resends],
        resend_kept=messages.resend_kept[resends],
        resend_relayed=messages.resend_relayed[resends],
        publisher_crashed=messages.publisher_crashed[ids],
        cause=messages.cause[ids],
        emitter=messages.emitter[ids],
    )
