"""Emitted events in a real run: the plan of what consumers may emit, and the numbers of emitted copies.

A consumer with ``emits`` publishes, after processing a message, one message
per ``emits`` entry its outcome matches. A simulation appends the emitted
messages after the emitting stage has run; in a real run every consumer runs
at once, so a downstream instance must know an emitted message's effects the
moment it arrives. The *plan* holds one possible message per emitting
consumer, entry and message of its group, appended with the engine's own
:func:`~busim.engine.chains.append_emitted`, stage by stage: an emitted copy
carries its planned message in its body, and its consumers apply that
message's effects.

An emitted message is therefore its planned message: the fields it carries
from its cause, and the fields its event declares of its own (a sequence, a
random draw) as the plan drew them, once per cause and entry. A duplicate
processing of a cause emits the very same values, as a service that derives
an event from its cause does; a simulation numbers or draws them afresh for
each emission.

After the run, the real emitted messages (one per emitting processing, a
duplicate processing emitting a duplicate) are appended to the run's messages
by the engine's :func:`~busim.engine.chains.emit`, numbered as a simulation
numbers them, each with its planned message's own fields
(:meth:`EmissionPlan.emitted`, :meth:`EmissionPlan.own_fields`): the figures
and the exactly-once reference use the values the run's store applied.

An emitted copy's number is its emitter's own: :func:`emitted_copy` packs the
emitting consumer, instance, incarnation and a counter above
:data:`EMITTED`, so that numbers never collide across processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from busim.engine.chains import append_emitted, fields_of, flows_of
from busim.engine.outages import Outages
from busim.engine.randomness import RandomStreams
from busim.engine.records import Messages
from busim.scenario.flows import stages
from busim.scenario.schema import Scenario

EMITTED = 1 << 62  # emitted copies' numbers start here; the load generator's copies stay below
_CONSUMER_BITS, _INSTANCE_BITS, _INCARNATION_BITS, _COUNTER_BITS = 6, 12, 12, 31


def emitted_copy(consumer: int, instance: int, incarnation: int, counter: int) -> int:
    """The number of the ``counter``-th copy an instance's incarnation emitted (counting from 0)."""
    if consumer >= 1 << _CONSUMER_BITS or instance >= 1 << _INSTANCE_BITS or counter >= 1 << _COUNTER_BITS:
        raise OverflowError("too many consumers, instances or emissions to number emitted copies")
    incarnation %= 1 << _INCARNATION_BITS
    number = (((consumer << _INSTANCE_BITS) | instance) << _INCARNATION_BITS | incarnation) << _COUNTER_BITS
    return EMITTED | number | counter


def is_emitted(copy: int) -> bool:
    return copy >= EMITTED


@dataclass(frozen=True)
class EmissionPlan:
    """The published messages, then every message consumers could emit."""

    messages: Messages
    # (emitting consumer's index, emits entry's index) -> per group-local message of the emitter, the planned
    # message its processing emits under that entry.
    planned: dict[tuple[int, int], np.ndarray]

    @classmethod
    def of(cls, scenario: Scenario, messages: Messages) -> EmissionPlan:
        carried = fields_of(scenario)
        streams = RandomStreams.from_seed(scenario.seed or 0)  # inherited fields draw nothing
        outages = Outages(())
        planned: dict[tuple[int, int], np.ndarray] = {}
        indices = {consumer.name: index for index, consumer in enumerate(scenario.consumers)}
        for stage in stages(flows_of(scenario)):
            for name in stage:
                index = indices[name]
                consumer = scenario.consumers[index]
                if not consumer.emits:
                    continue
                causes = messages.select(list(dict.fromkeys(consumer.subscribes))).ids
                for entry_index, entry in enumerate(consumer.emits):
                    first = len(messages)
                    messages = append_emitted(
                        scenario,
                        index,
                        entry.event,
                        messages,
                        causes,
                        np.zeros(causes.size),
                        streams,
                        outages,
                        carried,
                    )
                    planned[index, entry_index] = first + np.arange(causes.size, dtype=np.int64)
        return cls(messages, planned)

    def emitted(self, scenario: Scenario, emitter: int, entry: int, causes: np.ndarray) -> np.ndarray:
        """The planned message that processing each of ``causes`` (messages of the plan, in consumer
        ``emitter``'s group) emits under the consumer's ``entry``-th ``emits`` entry."""
        subscribed = list(dict.fromkeys(scenario.consumers[emitter].subscribes))
        return self.planned[emitter, entry][self.messages.select(subscribed).local(causes)]

    def own_fields(self, scenario: Scenario, event: str, planned: np.ndarray) -> dict[str, np.ndarray]:
        """The values of the fields ``event`` declares of its own, in its ``planned`` messages."""
        at = np.searchsorted(self.messages.members[event], planned)
        fields = self.messages.fields[event]
        return {name: fields[name][at] for name in scenario.events[event].fields}
