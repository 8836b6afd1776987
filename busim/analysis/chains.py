"""Event chains: which messages stand for the same event, and latency from a published message to the chain's end.

When a naive consumer processes a message twice it emits twice: two
messages, two ids, one business event. Under exactly-once processing there
would be one, so the analysis treats messages emitted by the same consumer,
for the same event, from the same (logical) cause as one logical message:
the first stands for it, the others are its twins, and effects of a twin
count as duplicate effects downstream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from busim.analysis.latency import LatencySummary
from busim.engine.records import GroupRecord, Messages, RunRecord
from busim.scenario.schema import Scenario


def logical_ids(messages: Messages) -> np.ndarray | None:
    """For each message, the first message standing for the same event (itself, unless it is a twin).

    None where no consumer emitted a message: then each message is its own
    event, and a run of millions needs no array to say so.
    """
    cause, event, emitter = messages.cause, messages.event, messages.emitter
    if not (cause >= 0).any():
        return None
    logical = np.arange(len(messages))
    first: dict[tuple[int, int, int], int] = {}
    # A cause always comes before what it caused, so one pass in id order sees causes settled.
    for message in np.flatnonzero(cause >= 0).tolist():
        lineage = (int(logical[cause[message]]), int(event[message]), int(emitter[message]))
        logical[message] = first.setdefault(lineage, message)
    return logical


@dataclass(frozen=True)
class Hop:
    """One step of a chain: a consumer processing one event."""

    event: str
    consumer: str
    messages: int  # messages of the event on this chain that reached the consumer's group
    duplicates: int  # of those, messages beyond one per published message: duplicates carried downstream
    latency_s: LatencySummary  # from the message's publish (or emission) to its first completed processing


@dataclass(frozen=True)
class ChainSummary:
    """A path from a published event through the consumers that emit and consume, to the chain's end."""

    hops: tuple[Hop, ...]
    published: int  # messages of the first event published after the warm-up
    completed: int  # of those, messages whose chain reached the last consumer and was processed there
    duplicate_completions: int  # processings at the last consumer beyond one per published message
    latency_s: LatencySummary  # from publish to the first completed processing at the last consumer

    @property
    def name(self) -> str:
        return chain_name(tuple((hop.event, hop.consumer) for hop in self.hops))


def chain_name(steps: tuple[tuple[str, str], ...]) -> str:
    """``OrderPlaced > inventory > StockReserved > payment``: the events and consumers in order."""
    return " > ".join(part for step in steps for part in step)


def chain_paths(scenario: Scenario) -> list[tuple[tuple[str, str], ...]]:
    """Every path of two or more hops from a published event to a consumer whose emits nobody consumes."""
    subscribers = {event: [c.name for c in scenario.consumers if event in c.subscribes] for event in scenario.events}
    paths: list[tuple[tuple[str, str], ...]] = []

    def extend(path: tuple[tuple[str, str], ...]) -> None:
        consumer = scenario.consumer(path[-1][1])
        onward = [(emit.event, name) for emit in consumer.emits for name in subscribers[emit.event]]
        onward = list(dict.fromkeys(onward))
        if not onward and len(path) > 1:
            paths.append(path)
        for step in onward:
            extend((*path, step))

    for event in dict.fromkeys(publisher.event for publisher in scenario.publishers):
        for name in subscribers[event]:
            extend(((event, name),))
    return paths


def summarize_chains(record: RunRecord, first_done_s: dict[str, np.ndarray]) -> dict[str, ChainSummary]:
    """Each chain's hops and end-to-end figures.

    ``first_done_s`` gives, per consumer, when each group-local message was
    first processed (NaN if never).
    """
    scenario, messages = record.scenario, record.messages
    groups = {group.name: group for group in record.groups}
    consumer_index = {c.name: index for index, c in enumerate(scenario.consumers)}
    chains = {}
    for path in chain_paths(scenario):
        hops = []
        for depth, (event, consumer) in enumerate(path):
            group = groups[consumer]
            local, root = _measured_on_path(record, group, path[: depth + 1], consumer_index)
            done_s = first_done_s[consumer][local]
            processed = ~np.isnan(done_s)
            hops.append(
                Hop(
                    event=event,
                    consumer=consumer,
                    messages=int(local.size),
                    duplicates=int(local.size - np.unique(root).size),
                    latency_s=LatencySummary.of(
                        done_s[processed] - messages.publish_s[group.message_ids[local[processed]]]
                    ),
                )
            )
        published = np.flatnonzero(
            (messages.event == messages.event_names.index(path[0][0]))
            & (messages.cause < 0)
            & (messages.publish_s >= scenario.warmup)
        )
        # The end: first completion per published message, over all its messages at the last hop.
        local, root = _measured_on_path(record, groups[path[-1][1]], path, consumer_index)
        done_s = first_done_s[path[-1][1]][local]
        processed = ~np.isnan(done_s)
        end_s = np.full(len(messages), np.inf)
        np.minimum.at(end_s, root[processed], done_s[processed])
        finished = published[np.isfinite(end_s[published])]
        chains[chain_name(path)] = ChainSummary(
            hops=tuple(hops),
            published=int(published.size),
            completed=int(finished.size),
            duplicate_completions=int(np.count_nonzero(processed) - finished.size),
            latency_s=LatencySummary.of(end_s[finished] - messages.publish_s[finished]),
        )
    return chains


def _measured_on_path(
    record: RunRecord, group: GroupRecord, path: tuple[tuple[str, str], ...], consumer_index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_on_path`, keeping the messages whose chain was published at or after the warm-up."""
    local, root = _on_path(record.messages, group, path, consumer_index)
    measured = record.messages.publish_s[root] >= record.scenario.warmup
    return local[measured], root[measured]


def _on_path(
    messages: Messages, group: GroupRecord, path: tuple[tuple[str, str], ...], consumer_index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The group-local indices of the group's messages whose lineage follows ``path``, and their roots."""
    ids = group.message_ids
    current = ids.copy()
    follows = np.ones(ids.size, dtype=bool)
    for depth in range(len(path) - 1, -1, -1):
        follows &= messages.event[current] == messages.event_names.index(path[depth][0])
        if depth == 0:
            follows &= messages.cause[current] < 0
            break
        follows &= messages.emitter[current] == consumer_index[path[depth - 1][1]]
        current = np.where(follows, messages.cause[current], current)
    local = np.flatnonzero(follows)
    return local, current[local]
