"""Emitted events: the messages a consumer publishes after processing, appended to the run's messages.

Each processing that ends as the consumer's ``emits`` entry asks (the effects
applied, or refused by a floor, or either) publishes one message of that
event when it ends, with a causal link to the message processed. A naive
consumer that processes a duplicate therefore emits a duplicate. An emitted
message reaches the broker when the emitter publishes it, or when the broker
comes back from an outage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from busim.engine.outages import Outages
from busim.engine.randomness import RandomStreams
from busim.engine.records import GroupRecord, Messages, Outcome
from busim.engine.sampling import sample_field
from busim.scenario.flows import Flow, carried_fields
from busim.scenario.schema import Scenario, SequenceField

EMITTING_OUTCOMES = {
    "accepted": (Outcome.APPLIED,),
    "rejected": (Outcome.REJECTED,),
    "always": (Outcome.APPLIED, Outcome.REJECTED),
}


def flows_of(scenario: Scenario) -> list[Flow]:
    """Each consumer's place in the chains: what it subscribes to and what it emits."""
    return [Flow(c.name, tuple(c.subscribes), tuple(emit.event for emit in c.emits)) for c in scenario.consumers]


def fields_of(scenario: Scenario) -> dict[str, tuple[str, ...]]:
    """The fields every message of each event carries (see :func:`busim.scenario.flows.carried_fields`)."""
    published = {publisher.event for publisher in scenario.publishers}
    declared = {name: tuple(event.fields) for name, event in scenario.events.items()}
    return carried_fields(declared, published, flows_of(scenario))


def emit(
    scenario: Scenario,
    group: GroupRecord,
    messages: Messages,
    streams: RandomStreams,
    outages: Outages,
    carried: dict[str, tuple[str, ...]],
    own: Sequence[Mapping[str, np.ndarray]] | None = None,
) -> Messages:
    """``messages`` with the messages ``group``'s consumer emitted appended, each event's in emit order.

    ``carried`` gives the fields each event's messages carry (:func:`fields_of`). ``own`` gives, per
    ``emits`` entry, the values of the event's own fields for the messages it emits (in the order of
    :func:`emitting_rows`), where they are known rather than drawn.
    """
    consumer = scenario.consumer(group.name)
    emitter = next(index for index, c in enumerate(scenario.consumers) if c.name == group.name)
    deliveries = group.deliveries
    for index, entry in enumerate(consumer.emits):
        rows = emitting_rows(group, entry.when)
        cause = group.message_ids[deliveries.message[rows]]
        publish_s = deliveries.done_s[rows]
        given = None if own is None else own[index]
        messages = append_emitted(
            scenario, emitter, entry.event, messages, cause, publish_s, streams, outages, carried, given
        )
    return messages


def emitting_rows(group: GroupRecord, when: str) -> np.ndarray:
    """The deliveries of ``group`` that emit under an ``emits`` entry's ``when``, in the order they emit (done)."""
    deliveries = group.deliveries
    rows = np.flatnonzero(np.isin(deliveries.outcome, EMITTING_OUTCOMES[when]))
    return rows[np.argsort(deliveries.done_s[rows], kind="stable")]


def append_emitted(
    scenario: Scenario,
    emitter: int,
    event: str,
    messages: Messages,
    cause: np.ndarray,
    publish_s: np.ndarray,
    streams: RandomStreams,
    outages: Outages,
    carried: dict[str, tuple[str, ...]],
    own: Mapping[str, np.ndarray] | None = None,
) -> Messages:
    """``messages`` with one message of ``event`` appended per ``cause``, emitted by consumer ``emitter`` at
    ``publish_s``, each with its fields: a sequence's next values, fresh draws, or its cause's values.

    ``own``, where given, holds the values of every field ``event`` declares, one per ``cause``: those are
    taken as they are, neither numbered nor drawn.
    """
    consumer = scenario.consumers[emitter]
    declared = scenario.events[event].fields
    already = messages.members[event].size
    new_fields = {}
    for name in carried[event]:
        generator = declared.get(name)
        if generator is not None and own is not None:
            new_fields[name] = np.asarray(own[name])
        elif isinstance(generator, SequenceField):
            new_fields[name] = generator.start + already + np.arange(cause.size, dtype=np.int64)
        elif generator is not None:
            rng = streams.generator("consumer", consumer.name, "emits", event, name)
            new_fields[name] = sample_field(generator, rng, cause.size)
        else:
            new_fields[name] = _inherited(messages, cause, name)
    return _appended(messages, event, publish_s, outages.defer(publish_s), cause, emitter, new_fields)


def _inherited(messages: Messages, cause: np.ndarray, name: str) -> np.ndarray:
    """The values of field ``name`` of the ``cause`` messages, whatever their events."""
    values: np.ndarray | None = None
    for index, event in enumerate(messages.event_names):
        mine = np.flatnonzero(messages.event[cause] == index)
        if mine.size == 0:
            continue
        column = messages.fields[event][name]
        picked = column[np.searchsorted(messages.members[event], cause[mine])]
        if values is None:
            values = np.empty(cause.size, dtype=picked.dtype)
        elif values.dtype != np.result_type(values.dtype, picked.dtype):
            values = values.astype(np.result_type(values.dtype, picked.dtype))
        values[mine] = picked
    return values if values is not None else np.empty(0, dtype=np.int64)


def _appended(
    messages: Messages,
    event: str,
    publish_s: np.ndarray,
    accept_s: np.ndarray,
    cause: np.ndarray,
    emitter: int,
    fields: dict[str, np.ndarray],
) -> Messages:
    count = publish_s.size
    ids = len(messages) + np.arange(count)
    event_index = messages.event_names.index(event)
    old = messages.fields[event]
    merged = {name: np.concatenate([old[name], values]) if name in old else values for name, values in fields.items()}
    return replace(
        messages,
        publish_s=np.concatenate([messages.publish_s, publish_s]),
        accept_s=np.concatenate([messages.accept_s, accept_s]),
        failed=np.concatenate([messages.failed, np.zeros(count, bool)]),
        publisher_crashed=np.concatenate([messages.publisher_crashed, np.zeros(count, bool)]),
        publisher=np.concatenate([messages.publisher, np.full(count, -1, messages.publisher.dtype)]),
        event=np.concatenate([messages.event, np.full(count, event_index, messages.event.dtype)]),
        cause=np.concatenate([messages.cause, cause.astype(messages.cause.dtype)]),
        emitter=np.concatenate([messages.emitter, np.full(count, emitter, np.int32)]),
        fields={**messages.fields, event: merged},
        members={**messages.members, event: np.concatenate([messages.members[event], ids])},
    )
