"""Faults a real run brings about itself, drawn as the simulation draws them."""

from __future__ import annotations

from busim.engine.randomness import RandomStreams
from busim.scenario.schema import Consumer


def crash_counts(consumer: Consumer, streams: RandomStreams, instance: int) -> set[int]:
    """The counts of processings (from the instance's first start) after which ``instance`` crashes.

    With ``instance: random`` each count's instance is drawn as the simulation draws it.
    """
    crash = consumer.crash
    if crash is None or not crash.after_messages:
        return set()
    counts = crash.after_messages
    if crash.instance == "random":
        rng = streams.generator("consumer", consumer.name, "crash count instance")
        instances = rng.integers(consumer.instances, size=len(counts)).tolist()
    else:
        instances = [int(crash.instance)] * len(counts)
    return {count for count, chosen in zip(counts, instances) if chosen == instance}
