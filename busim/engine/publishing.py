"""Publishing: every publisher's messages, merged into one table in publish order.

Publishing depends on nothing that happens later in the run (publishers
retry through an outage until the broker is back), so all messages are
drawn up front in numpy rather than one by one during the simulation.
"""

from __future__ import annotations

import numpy as np

from busim.engine.arrivals import publish_times
from busim.engine.outages import Outages
from busim.engine.randomness import RandomStreams
from busim.engine.records import Messages
from busim.engine.sampling import sample_field
from busim.scenario.schema import Scenario, SequenceField


def publish(scenario: Scenario, streams: RandomStreams, outages: Outages) -> Messages:
    """Draw every publisher's messages and their payloads."""
    event_names = tuple(scenario.events)
    times, publisher_index, event_index = [], [], []
    payloads: list[dict[str, np.ndarray]] = []
    for index, publisher in enumerate(scenario.publishers):
        published_s = publish_times(publisher, scenario.duration, streams.generator("publisher", publisher.name, "arrivals"))
        times.append(published_s)
        publisher_index.append(np.full(published_s.size, index, dtype=np.int32))
        event_index.append(np.full(published_s.size, event_names.index(publisher.event), dtype=np.int32))
        fields = scenario.events[publisher.event].fields
        payloads.append(
            {
                name: sample_field(generator, streams.generator("publisher", publisher.name, "field", name), published_s.size)
                for name, generator in fields.items()
            }
        )
    all_times = np.concatenate(times)
    order = np.argsort(all_times, kind="stable")  # ties: publishers in scenario order
    publisher_of = np.concatenate(publisher_index)[order]
    event_of = np.concatenate(event_index)[order]

    # Each message's position within its own publisher's block, to pick its payload.
    offsets = np.cumsum([0] + [t.size for t in times])
    position = order - offsets[publisher_of]
    members: dict[str, np.ndarray] = {}
    fields: dict[str, dict[str, np.ndarray]] = {}
    for event_id, event_name in enumerate(event_names):
        ids = np.flatnonzero(event_of == event_id)
        members[event_name] = ids
        declared = scenario.events[event_name].fields
        fields[event_name] = {}
        for field_name, generator in declared.items():
            if isinstance(generator, SequenceField):
                fields[event_name][field_name] = generator.start + np.arange(ids.size, dtype=np.int64)
                continue
            parts = [payloads[p][field_name] for p in range(len(scenario.publishers)) if field_name in payloads[p] and scenario.publishers[p].event == event_name]
            values = np.empty(ids.size, dtype=np.result_type(*parts) if parts else np.int64)
            for p, publisher in enumerate(scenario.publishers):
                if publisher.event != event_name:
                    continue
                mine = publisher_of[ids] == p
                values[mine] = payloads[p][field_name][position[ids[mine]]]
            fields[event_name][field_name] = values
    published_s = all_times[order]
    return Messages(
        publish_s=published_s,
        accept_s=outages.defer(published_s),
        publisher=publisher_of,
        event=event_of,
        event_names=event_names,
        fields=fields,
        members=members,
    )
