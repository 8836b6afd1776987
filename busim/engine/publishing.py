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
    event_times, event_publishers = [], []
    fields: dict[str, dict[str, np.ndarray]] = {}
    for event_name in event_names:
        publishers = [(index, p) for index, p in enumerate(scenario.publishers) if p.event == event_name]
        times = [
            publish_times(publisher, scenario.duration, streams.generator("publisher", publisher.name, "arrivals"))
            for _, publisher in publishers
        ]
        merged = np.concatenate([np.empty(0), *times])
        order = np.argsort(merged, kind="stable")  # ties: publishers in scenario order
        event_times.append(merged[order])
        event_publishers.append(
            np.concatenate(
                [np.empty(0, np.int32)] + [np.full(t.size, i, np.int32) for (i, _), t in zip(publishers, times)]
            )[order]
        )
        fields[event_name] = {}
        for name, generator in scenario.events[event_name].fields.items():
            if isinstance(generator, SequenceField):
                values = generator.start + np.arange(merged.size, dtype=np.int64)
            else:
                values = np.concatenate(
                    [np.empty(0, np.int64)]
                    + [
                        sample_field(generator, streams.generator("publisher", publisher.name, "field", name), t.size)
                        for (_, publisher), t in zip(publishers, times)
                    ]
                )[order]
            fields[event_name][name] = values

    # Merge the events; a stable sort keeps each event's messages in their order, aligned with its fields.
    all_times = np.concatenate(event_times)
    order = np.argsort(all_times, kind="stable")
    event_of = np.concatenate([np.full(t.size, e, np.int32) for e, t in enumerate(event_times)])[order]
    published_s = all_times[order]
    return Messages(
        publish_s=published_s,
        accept_s=outages.defer(published_s),
        publisher=np.concatenate(event_publishers)[order],
        event=event_of,
        event_names=event_names,
        fields=fields,
        members={name: np.flatnonzero(event_of == e) for e, name in enumerate(event_names)},
    )
