"""Reads of a consumer's read model: when they come and which key each one reads.

A consumer with ``queries`` serves reads from the counters it builds. The
reads do not touch the simulation (a read changes nothing), so they are drawn
up front as arrays from a stream of their own, and adding queries leaves
every other draw of the run unchanged; :mod:`busim.analysis.reads` decides
which of them saw a stale value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from busim.engine.randomness import RandomStreams
from busim.engine.records import GroupRecord, Reads
from busim.scenario.schema import Consumer, Scenario


def draw_reads(consumer: Consumer, duration_s: float, message_count: int, streams: RandomStreams) -> Reads:
    """The reads of ``consumer``'s queried counter over the publishing window ``[0, duration_s)``.

    They arrive as a Poisson process at ``queries.rate`` reads per second.
    Each reads the key of one of the group's ``message_count`` messages,
    drawn uniformly (and, when several effects change the counter, of one of
    those effects, drawn uniformly), so that a key is read as often as it is
    written. A group without messages has no key to read, and no reads.

    Raises:
        ValueError: ``consumer`` has no ``queries``.
    """
    if consumer.queries is None:
        raise ValueError(f"consumer {consumer.name!r} has no queries to draw reads for")
    effects = sum(effect.counter == consumer.queries.counter for effect in consumer.effects)
    slots = message_count * effects
    if slots == 0:
        return Reads(at_s=np.empty(0), message=np.empty(0, np.int64), effect=np.empty(0, np.int64))
    rng = streams.generator("consumer", consumer.name, "queries")
    # Given their number, the times of a Poisson process on a window are independent and uniform on it.
    count = int(rng.poisson(consumer.queries.rate * duration_s))
    at_s = np.sort(rng.uniform(0.0, duration_s, count))
    slot = rng.integers(0, slots, count)
    return Reads(at_s=at_s, message=slot // effects, effect=slot % effects)


def draw_all_reads(scenario: Scenario, groups: Sequence[GroupRecord], streams: RandomStreams) -> dict[str, Reads]:
    """The reads of every consumer with ``queries``, by name; ``groups`` in the scenario's order of consumers."""
    return {
        consumer.name: draw_reads(consumer, scenario.duration, group.message_ids.size, streams)
        for consumer, group in zip(scenario.consumers, groups)
        if consumer.queries is not None
    }
