"""Event chains: which consumers emit which events, in what order they can run, what fields events carry.

A consumer that ``emits`` an event publishes one message of it after
processing a message; the emitted message carries the fields of the message
that caused it plus the fields its own event declares. These rules work on
plain names, so that the loader's cross-checks (on raw YAML data) and the
engine (on the validated scenario) share them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Flow:
    """One consumer's place in the chains: what it subscribes to and what it emits."""

    consumer: str
    subscribes: tuple[str, ...]
    emits: tuple[str, ...]


def emitters(flows: Sequence[Flow]) -> dict[str, list[str]]:
    """Event -> the consumers that emit it, in scenario order."""
    found: dict[str, list[str]] = {}
    for flow in flows:
        for event in dict.fromkeys(flow.emits):
            found.setdefault(event, []).append(flow.consumer)
    return found


def find_loop(flows: Sequence[Flow]) -> list[str] | None:
    """A loop of consumers each emitting an event the next subscribes to, or None; the first consumer repeats last."""
    by_name = {flow.consumer: flow for flow in flows}
    subscribers: dict[str, list[str]] = {}
    for flow in flows:
        for event in dict.fromkeys(flow.subscribes):
            subscribers.setdefault(event, []).append(flow.consumer)

    # Depth first through consumers and the events between them, with a stack of its own rather than
    # recursion (a chain may be thousands long), and each event visited once however many emit it.
    def successors(node: tuple[str, str]) -> Iterator[tuple[str, str]]:
        kind, name = node
        if kind == "consumer":
            return (("event", event) for event in dict.fromkeys(by_name[name].emits))
        return (("consumer", consumer) for consumer in subscribers.get(name, ()))

    state: dict[tuple[str, str], int] = {}  # 1: on the current path, 2: done
    for name in by_name:
        start = ("consumer", name)
        if start in state:
            continue
        state[start] = 1
        path = [(start, successors(start))]
        while path:
            node, pending = path[-1]
            for successor in pending:
                if state.get(successor) == 1:
                    on_path = [visited for visited, _ in path]
                    loop = [name for kind, name in on_path[on_path.index(successor) :] if kind == "consumer"]
                    return [*loop, loop[0]]
                if successor not in state:
                    state[successor] = 1
                    path.append((successor, successors(successor)))
                    break
            else:
                state[node] = 2
                path.pop()
    return None


def stages(flows: Sequence[Flow]) -> list[list[str]]:
    """Consumers grouped so that every consumer comes after those emitting what it subscribes to.

    A consumer depends only on the messages it receives, so consumers of one
    stage can be simulated together, and each stage once the earlier ones
    have ended. The flows must not loop (see :func:`find_loop`).
    """
    level = _levels(flows)
    grouped: dict[int, list[str]] = {}
    for flow in flows:
        grouped.setdefault(level[("consumer", flow.consumer)], []).append(flow.consumer)
    return [grouped[index] for index in sorted(grouped)]


def _levels(flows: Sequence[Flow]) -> dict[tuple[str, str], int]:
    """Each consumer's stage, one after the latest of those emitting what it subscribes to, and each event's.

    An event's stage is its latest emitter's. Computed depth first with a
    stack of its own, since a chain may be thousands long; on a loop, a
    consumer met again counts as stage 0.
    """
    emitted_by = emitters(flows)
    by_name = {flow.consumer: flow for flow in flows}

    def inputs(node: tuple[str, str]) -> list[tuple[str, str]]:
        kind, name = node
        if kind == "consumer":
            return [("event", event) for event in by_name[name].subscribes]
        return [("consumer", consumer) for consumer in emitted_by.get(name, [])]

    level: dict[tuple[str, str], int] = {}
    for flow in flows:
        start = ("consumer", flow.consumer)
        if start in level:
            continue
        level[start] = 0  # provisional, in case of a loop
        path = [(start, iter(inputs(start)))]
        while path:
            node, pending = path[-1]
            for other in pending:
                if other not in level:
                    level[other] = 0
                    path.append((other, iter(inputs(other))))
                    break
            else:
                path.pop()
                latest = max((level[other] for other in inputs(node)), default=-1)
                level[node] = latest + 1 if node[0] == "consumer" else latest
    return level


def causes_first(events: Iterable[str], flows: Sequence[Flow]) -> list[str]:
    """``events`` ordered so that each comes after the events its emitters subscribe to (where the flows do not loop).

    One pass in this order carries fields down a whole chain; the order
    they are declared in might take a pass per link.
    """
    level = _levels(flows)
    return sorted(events, key=lambda event: level.get(("event", event), -1))


def carried_fields(
    declared: Mapping[str, Sequence[str]], published: set[str], flows: Sequence[Flow]
) -> dict[str, tuple[str, ...]]:
    """The fields every message of each event has: its declared ones, plus those all its causes carry.

    An event that a publisher publishes carries only its declared fields, as
    do its emitted messages then; an event only consumers emit carries the
    fields common to every event its emitters subscribe to.
    """
    fields = {event: tuple(names) for event, names in declared.items()}
    emitted_by = emitters(flows)
    by_name = {flow.consumer: flow for flow in flows}
    carrying = causes_first([e for e in emitted_by if e in declared and e not in published], flows)
    common: dict[str, set[str] | None] = {}  # an emitter's causes' common fields, once per pass and emitter

    def common_of(name: str) -> set[str] | None:
        if name not in common:
            carried = [set(fields[cause]) for cause in by_name[name].subscribes if cause in fields]
            common[name] = set.intersection(*carried) if carried else None
        return common[name]

    for _ in range(len(declared)):  # enough passes for the longest chain
        changed = False
        common.clear()
        for event in carrying:
            causes = [found for found in map(common_of, emitted_by[event]) if found is not None]
            if not causes:
                continue
            inherited = set.intersection(*causes)
            merged = tuple(declared[event]) + tuple(sorted(inherited - set(declared[event])))
            if merged != fields[event]:
                fields[event] = merged
                changed = True
        if not changed:
            break
    return fields
