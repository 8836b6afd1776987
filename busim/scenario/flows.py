"""Event chains: which consumers emit which events, in what order they can run, what fields events carry.

A consumer that ``emits`` an event publishes one message of it after
processing a message; the emitted message carries the fields of the message
that caused it plus the fields its own event declares. These rules work on
plain names, so that the loader's cross-checks (on raw YAML data) and the
engine (on the validated scenario) share them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    feeds = {
        flow.consumer: [other.consumer for other in flows if set(flow.emits) & set(other.subscribes)] for flow in flows
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for successor in feeds[name]:
            if state.get(successor) == 1:
                return [*path[path.index(successor) :], successor]
            if successor not in state:
                loop = visit(successor, path)
                if loop:
                    return loop
        path.pop()
        state[name] = 2
        return None

    for name in by_name:
        if name not in state:
            loop = visit(name, [])
            if loop:
                return loop
    return None


def stages(flows: Sequence[Flow]) -> list[list[str]]:
    """Consumers grouped so that every consumer comes after those emitting what it subscribes to.

    A consumer depends only on the messages it receives, so consumers of one
    stage can be simulated together, and each stage once the earlier ones
    have ended. The flows must not loop (see :func:`find_loop`).
    """
    emitted_by = emitters(flows)
    level: dict[str, int] = {}

    def level_of(flow: Flow) -> int:
        if flow.consumer not in level:
            level[flow.consumer] = 0  # provisional, in case of a loop
            upstream = [by_name[name] for event in flow.subscribes for name in emitted_by.get(event, [])]
            level[flow.consumer] = 1 + max((level_of(other) for other in upstream), default=-1)
        return level[flow.consumer]

    by_name = {flow.consumer: flow for flow in flows}
    grouped: dict[int, list[str]] = {}
    for flow in flows:
        grouped.setdefault(level_of(flow), []).append(flow.consumer)
    return [grouped[index] for index in sorted(grouped)]


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
    for _ in range(len(declared)):  # enough passes for the longest chain
        changed = False
        for event, consumers in emitted_by.items():
            if event not in declared or event in published:
                continue
            causes = [cause for name in consumers for cause in by_name[name].subscribes if cause in fields]
            if not causes:
                continue
            inherited = set.intersection(*(set(fields[cause]) for cause in causes))
            merged = tuple(declared[event]) + tuple(sorted(inherited - set(declared[event])))
            if merged != fields[event]:
                fields[event] = merged
                changed = True
        if not changed:
            break
    return fields
