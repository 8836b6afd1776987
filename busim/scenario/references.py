"""Checks that relate several parts of a scenario to each other.

They read the raw YAML data rather than the validated model, so that a file
with a negative rate *and* a misspelt event name reports both at once. Each
check looks only at values whose shape is right; shapes are the schema's
business and are reported by it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextvars import ContextVar
from itertools import islice, pairwise
from typing import Any

from busim.scenario.flows import Flow, carried_fields, causes_first, find_loop
from busim.scenario.schema import MAX_WORKERS, Crash, Deploy, Scenario, did_you_mean
from busim.scenario.units import parse_duration
from busim.words import counted

Path = tuple[str | int, ...]


# Suggesting a near miss compares the word with every name it could be: thousands of misspelt
# references to thousands of names would take minutes. Past this many comparisons in one check
# (a second or so), and for words too long to have been typed, nothing is suggested.
SUGGESTION_COMPARISONS = 20_000
LISTED_NAMES = 50  # a message lists this many names at most: thousands would bury it
_comparisons_left: ContextVar[int] = ContextVar("comparisons_left", default=SUGGESTION_COMPARISONS)


def reference_problems(data: dict[str, Any]) -> list[tuple[Path, str]]:
    """Return ``(key path, message)`` for every broken cross-reference in ``data``."""
    budget = _comparisons_left.set(SUGGESTION_COMPARISONS)
    try:
        return _reference_problems(data)
    finally:
        _comparisons_left.reset(budget)


def _suggest(word: str, choices: Collection[str]) -> str:
    """:func:`did_you_mean`, within the comparisons left for this check."""
    left = _comparisons_left.get()
    if len(word) > 100 or len(choices) > left:
        return ""
    _comparisons_left.set(left - len(choices))
    return did_you_mean(word, choices)


def _listed(names: Collection[str]) -> str:
    shown = ", ".join(islice(names, LISTED_NAMES)) or "none"
    return shown if len(names) <= LISTED_NAMES else f"{shown}, … ({len(names):,} in all)"


def _reference_problems(data: dict[str, Any]) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = []
    problems += _unique_names(data, "publishers", "publisher")
    problems += _unique_names(data, "consumers", "consumer")
    problems += _unique_names(data, "invariants", "invariant")
    problems += _invariant_references(data)
    problems += _time_ranges(data)
    problems += _crash_schedules(data)
    problems += _deploy_schedules(data)
    problems += _endless_resends(data)
    problems += _failure_problems(data)
    events = data.get("events")
    if not isinstance(events, dict):
        return problems  # the schema reports it; every event reference would fail with it
    flows = _flows(data)
    fields = _carried_fields(data, events, flows)
    produced = _published(data) | {event for flow in flows for event in flow.emits}
    # An event nothing produces and that declares no fields of its own was meant to carry its cause's,
    # which are unknown: checks on them would only echo the mistake that left it without a producer.
    unknown = {event for event in events if event not in produced and not _fields_of(events[event])}
    subscribers: dict[str, list[Flow]] = {}
    for flow in flows:
        for event in set(flow.subscribes):
            subscribers.setdefault(event, []).append(flow)
    pending = list(unknown)
    while pending:  # and so are those that carry theirs down a chain
        for flow in subscribers.get(pending.pop(), []):
            for event in flow.emits:
                if event in events and event not in unknown and not _fields_of(events[event]):
                    unknown.add(event)
                    pending.append(event)
    fields = {event: names for event, names in fields.items() if event not in unknown}
    # A misspelt or malformed publisher's event, or emitter's, already explains why something is not produced.
    misspelt = any(e not in events for e in produced) or any(
        not isinstance(entry.get("event"), str) for entry in _producers(data)
    )
    problems += _event_keys(events, fields)
    for index, publisher in _entries(data, "publishers"):
        event = publisher.get("event")
        if isinstance(event, str) and event not in events:
            problems.append((("publishers", index, "event"), _undeclared_event(event, events)))
    for index, consumer in _entries(data, "consumers"):
        if not misspelt:
            problems += _unproduced(("consumers", index), consumer, events, produced)
        problems += _consumer_references(("consumers", index), consumer, events, fields)
        problems += _emitted_events(("consumers", index), consumer, events)
    problems += _loops(data)
    return problems


def _failure_problems(data: dict[str, Any]) -> list[tuple[Path, str]]:
    from busim.scenario.failure_checks import failure_problems  # which builds on this module's readers

    return failure_problems(data)


def _published(data: dict[str, Any]) -> set[str]:
    """The events publishers name; a publisher's event that is not a name (a list, say) is the schema's to report."""
    return {p["event"] for _, p in _entries(data, "publishers") if isinstance(p.get("event"), str)}


def _producers(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The publishers and the consumers' emits entries, each a mapping that names an event."""
    emits = [consumer.get("emits") for _, consumer in _entries(data, "consumers")]
    emitted = [entry for entries in emits if isinstance(entries, list) for entry in entries if isinstance(entry, dict)]
    return [publisher for _, publisher in _entries(data, "publishers")] + emitted


def _names(values: Any) -> tuple[str, ...]:
    return tuple(value for value in values if isinstance(value, str)) if isinstance(values, list) else ()


def _flows(data: dict[str, Any]) -> list[Flow]:
    flows = []
    for _, consumer in _entries(data, "consumers"):
        emits = consumer.get("emits")
        emitted = [entry.get("event") for entry in emits if isinstance(entry, dict)] if isinstance(emits, list) else []
        name = consumer.get("name")
        if isinstance(name, str):
            flows.append(Flow(name, _names(consumer.get("subscribes")), _names(emitted)))
    return flows


def _carried_fields(data: dict[str, Any], events: dict[str, Any], flows: list[Flow]) -> dict[str, dict[str, Any]]:
    """Each event's fields, with the raw generator of declared ones and None for those carried from a cause."""
    declared = {name: tuple(_fields_of(event)) for name, event in events.items()}
    carried = carried_fields(declared, _published(data), flows)
    generators = {
        name: {field: _fields_of(events[name]).get(field, _CARRIED) for field in carried[name]} for name in carried
    }
    # A carried field takes the generator of the field it is carried from.
    causes: dict[str, list[str]] = {event: [] for event in events}
    for flow in flows:
        for event in dict.fromkeys(flow.emits):
            if event in causes:
                causes[event] += flow.subscribes
    ordered = causes_first(generators, flows)  # causes first: one pass usually settles every field
    for _ in range(len(events)):
        changed = False
        for name in ordered:
            fields = generators[name]
            for field, generator in fields.items():
                if generator is _CARRIED:
                    found = [generators[c][field] for c in causes[name] if c in generators and field in generators[c]]
                    fields[field] = next((g for g in found if g is not _CARRIED), _CARRIED)
                    changed |= fields[field] is not _CARRIED
        if not changed:
            break
    return generators


_CARRIED = None  # a field carried from a cause whose generator is not known (yet)


def _unproduced(
    at: Path, consumer: dict[str, Any], events: dict[str, Any], produced: set[Any]
) -> list[tuple[Path, str]]:
    """A subscription to a declared event that no publisher publishes and no consumer emits receives nothing."""
    subscribes = consumer.get("subscribes")
    return [
        (
            (*at, "subscribes", index),
            f"nothing produces {event}: no publisher publishes it and no consumer emits it",
        )
        for index, event in enumerate(subscribes if isinstance(subscribes, list) else [])
        if isinstance(event, str) and event in events and event not in produced
    ]


def _emitted_events(at: Path, consumer: dict[str, Any], events: dict[str, Any]) -> list[tuple[Path, str]]:
    emits = consumer.get("emits")
    problems: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for index, entry in enumerate(emits if isinstance(emits, list) else []):
        event = entry.get("event") if isinstance(entry, dict) else None
        if not isinstance(event, str):
            continue
        if event not in events:
            problems.append(((*at, "emits", index, "event"), _undeclared_event(event, events)))
        elif event in seen:
            problems.append(
                (
                    (*at, "emits", index, "event"),
                    f"{event} is emitted by an earlier entry too; one entry per event "
                    "(when: always emits it after every processing)",
                )
            )
        seen.add(event)
    return problems


def _loops(data: dict[str, Any]) -> list[tuple[Path, str]]:
    """Consumers that feed each other in a circle would emit without end."""
    flows = {flow.consumer: flow for flow in _flows(data)}
    loop = find_loop(list(flows.values()))
    if loop is None:
        return []
    steps = []
    for sender, receiver in pairwise(loop):
        events = [event for event in flows[sender].emits if event in flows[receiver].subscribes]
        steps.append(f"{sender} emits {' and '.join(events)} to {receiver}")
    index = next(i for i, consumer in _entries(data, "consumers") if consumer.get("name") == loop[0])
    return [
        (
            ("consumers", index, "emits"),
            f"event chains loop: {', '.join(steps)}, without end; drop one of these emits",
        )
    ]


def _endless_resends(data: dict[str, Any]) -> list[tuple[Path, str]]:
    """Every publish ack lost and a publisher that never gives up would resend forever."""
    broker = data.get("broker")
    if not isinstance(broker, dict) or broker.get("publish_ack_loss") != 1:
        return []
    endless = [
        str(publisher.get("name"))
        for _, publisher in _entries(data, "publishers")
        if publisher.get("retries", "unlimited") == "unlimited"
    ]
    if not endless:
        return []
    return [
        (
            ("broker", "publish_ack_loss"),
            f"with every publish ack lost, {', '.join(endless)} would resend forever; "
            "give publishers[].retries a number or lower publish_ack_loss",
        )
    ]


def duration_seconds(value: Any) -> float | None:
    try:
        return parse_duration(value)
    except ValueError:
        return None


def _time_ranges(data: dict[str, Any]) -> list[tuple[Path, str]]:
    """Rate steps after publishing ends and outages after the run ends would silently do nothing."""
    duration_s = duration_seconds(data.get("duration"))
    drain_s = duration_seconds(data.get("drain_timeout", Scenario.model_fields["drain_timeout"].default))
    if duration_s is None or drain_s is None:
        return []
    problems: list[tuple[Path, str]] = []
    for index, publisher in _entries(data, "publishers"):
        steps = publisher.get("rate")
        for step_index, step in enumerate(steps if isinstance(steps, list) else []):
            at_s = duration_seconds(step.get("at")) if isinstance(step, dict) else None
            if at_s is not None and at_s >= duration_s:
                problems.append(
                    (
                        ("publishers", index, "rate", step_index, "at"),
                        f"this step starts at {at_s:g}s, when publishing has ended (duration: {duration_s:g}s)",
                    )
                )
    broker = data.get("broker")
    outages = broker.get("outages") if isinstance(broker, dict) else None
    horizon_s = duration_s + drain_s
    for index, outage in enumerate(outages if isinstance(outages, list) else []):
        at_s = duration_seconds(outage.get("at")) if isinstance(outage, dict) else None
        if at_s is not None and at_s >= horizon_s:
            problems.append(
                (
                    ("broker", "outages", index, "at"),
                    f"this outage starts at {at_s:g}s, after the run ends (duration + drain_timeout: {horizon_s:g}s)",
                )
            )
    return problems


def _crash_schedules(data: dict[str, Any]) -> list[tuple[Path, str]]:
    """A scheduled crash must name an instance the consumer has, and come while the run goes on.

    A crash of a fixed instance while it is still restarting from the one
    before would do nothing, and so would an ``instance`` given for crashes
    by probability, which happen on whichever instance processed a message.
    """
    duration_s = duration_seconds(data.get("duration"))
    drain_s = duration_seconds(data.get("drain_timeout", Scenario.model_fields["drain_timeout"].default))
    problems: list[tuple[Path, str]] = []
    for index, consumer in _entries(data, "consumers"):
        crash = consumer.get("crash")
        if not isinstance(crash, dict):
            continue
        at = ("consumers", index, "crash")
        instance = crash.get("instance", 0)
        scheduled_keys = {"at", "after_messages"} & set(crash)
        if "instance" in crash and not scheduled_keys and "probability" in crash:
            problems.append(
                (
                    (*at, "instance"),
                    "instance chooses where a scheduled crash (at, after_messages) happens; "
                    "a crash by probability happens on the instance that has just processed a message",
                )
            )
        instances = consumer.get("instances", 1)
        known = isinstance(instance, int) and isinstance(instances, int) and not isinstance(instance, bool)
        if known and instance >= instances > 0:
            numbered = "instance 0" if instances == 1 else f"instances 0 to {instances - 1}"
            problems.append(
                ((*at, "instance"), f"{consumer.get('name', 'this consumer')} has {numbered} (got {instance})")
            )
        times = crash.get("at")
        times = times if isinstance(times, list) else [times] if "at" in crash else []
        scheduled = [(duration_seconds(time), time_index) for time_index, time in enumerate(times)]
        scheduled = sorted((time_s, time_index) for time_s, time_index in scheduled if time_s is not None)
        if duration_s is not None and drain_s is not None:
            horizon_s = duration_s + drain_s
            for time_s, time_index in scheduled:
                if time_s > horizon_s:
                    problems.append(
                        (
                            (*at, "at", time_index) if isinstance(crash.get("at"), list) else (*at, "at"),
                            f"this crash comes at {time_s:g}s, after the run ends "
                            f"(duration + drain_timeout: {horizon_s:g}s)",
                        )
                    )
        restart_s = duration_seconds(crash.get("restart_after", Crash.model_fields["restart_after"].default))
        if restart_s is not None:
            problems += _crashes_while_down(at, instance, instances, scheduled, restart_s)
    return problems


def _deploy_schedules(data: dict[str, Any]) -> list[tuple[Path, str]]:
    """Each deploy must take down no more instances than the consumer has, start while the run goes on,
    and start after the one before can have ended (its batches, each down for ``restart_time``)."""
    duration_s = duration_seconds(data.get("duration"))
    drain_s = duration_seconds(data.get("drain_timeout", Scenario.model_fields["drain_timeout"].default))
    horizon_s = duration_s + drain_s if duration_s is not None and drain_s is not None else None
    problems: list[tuple[Path, str]] = []
    for index, consumer in _entries(data, "consumers"):
        deploys = consumer.get("deploys")
        instances = consumer.get("instances", 1)
        if not isinstance(deploys, list) or not isinstance(instances, int) or not 1 <= instances <= MAX_WORKERS:
            continue  # an instance count out of range is the schema's to report
        name = consumer.get("name", "this consumer")
        timed: list[tuple[float, float, int]] = []  # (start, shortest length, index)
        for deploy_index, deploy in enumerate(deploys):
            if not isinstance(deploy, dict):
                continue
            at = ("consumers", index, "deploys", deploy_index)
            kind = deploy.get("kind", Deploy.model_fields["kind"].default)
            unavailable = deploy.get("max_unavailable") or 1
            if kind == "all_at_once" and deploy.get("max_unavailable") is not None:
                problems.append(
                    (
                        (*at, "max_unavailable"),
                        "max_unavailable applies only to kind: rolling (all_at_once takes down every instance)",
                    )
                )
            elif isinstance(unavailable, int) and not isinstance(unavailable, bool) and unavailable > instances:
                problems.append(
                    (
                        (*at, "max_unavailable"),
                        f"{name} has {counted(instances, 'instance')}: no more can be down at once (got {unavailable})",
                    )
                )
            at_s = duration_seconds(deploy.get("at"))
            restart_s = duration_seconds(deploy.get("restart_time", 0))
            if at_s is None or restart_s is None:
                continue
            if horizon_s is not None and at_s >= horizon_s:
                problems.append(
                    (
                        (*at, "at"),
                        f"this deploy starts at {at_s:g}s, after the run ends "
                        f"(duration + drain_timeout: {horizon_s:g}s)",
                    )
                )
            rolling = kind != "all_at_once" and isinstance(unavailable, int) and unavailable >= 1
            batches = -(-instances // unavailable) if rolling else 1
            timed.append((at_s, batches * restart_s, deploy_index))
        timed.sort()
        for (before_s, length_s, _), (after_s, _, deploy_index) in pairwise(timed):
            if after_s < before_s + length_s or after_s == before_s:
                problems.append(
                    (
                        ("consumers", index, "deploys", deploy_index, "at"),
                        f"this deploy starts at {after_s:g}s, before the one at {before_s:g}s can have ended "
                        f"({before_s + length_s:g}s at the earliest); deploys of a consumer come one after another",
                    )
                )
    return problems


def _crashes_while_down(
    at: Path, instance: Any, instances: Any, scheduled: list[tuple[float, int]], restart_s: float
) -> list[tuple[Path, str]]:
    """Scheduled crashes that would find their instance still restarting from an earlier one.

    A crash at the very time of another finds its instance down too (it
    restarts after both). With ``instance: random``, a crash finds none up
    when every instance crashed within ``restart_after`` before it.
    """
    problems: list[tuple[Path, str]] = []
    for index, (time_s, time_index) in enumerate(scheduled):
        earlier = [before_s for before_s, _ in scheduled[:index] if time_s < before_s + restart_s or time_s == before_s]
        if instance == "random":
            if isinstance(instances, int) and len(earlier) >= instances >= 1:
                every = "the one instance is" if instances == 1 else f"all {instances} instances are"
                problems.append(
                    (
                        (*at, "at", time_index),
                        f"{every} still restarting at {time_s:g}s from the crashes before it "
                        f"(restart_after: {restart_s:g}s)",
                    )
                )
        elif earlier:
            before_s = earlier[-1]
            if before_s == time_s:
                message = f"instance {instance} crashes twice at {time_s:g}s"
            else:
                message = (
                    f"instance {instance} is still restarting at {time_s:g}s from its crash at {before_s:g}s "
                    f"(restart_after: {restart_s:g}s)"
                )
            problems.append(((*at, "at", time_index), f"{message}; crash another instance, or use instance: random"))
    return problems


def _entries(data: dict[str, Any], section: str) -> Iterator[tuple[int, dict[str, Any]]]:
    entries = data.get(section)
    if isinstance(entries, list):
        for index, entry in enumerate(entries):
            if isinstance(entry, dict):
                yield index, entry


def _fields_of(event: Any) -> dict[str, Any]:
    if isinstance(event, dict) and isinstance(event.get("fields"), dict):
        return event["fields"]
    return {}


def _undeclared_event(name: str, events: dict[str, Any]) -> str:
    return f"event {name!r} is not declared under events{_suggest(name, events)} (declared: {_listed(events)})"


def _event_keys(events: dict[str, Any], carried: dict[str, dict[str, Any]]) -> list[tuple[Path, str]]:
    problems = []
    for name, event in events.items():
        key = event.get("key") if isinstance(event, dict) else None
        if name not in carried:
            continue
        fields = carried[name]
        if isinstance(key, str) and key not in fields:
            problems.append(
                (("events", name, "key"), f"key {key!r} is not one of the event's fields{_declared(key, fields)}")
            )
    return problems


def _declared(name: str, fields: dict[str, Any]) -> str:
    return f"{_suggest(name, fields)} (fields: {_listed(fields)})"


def _unique_names(data: dict[str, Any], section: str, what: str) -> list[tuple[Path, str]]:
    problems = []
    first_index: dict[str, int] = {}
    for index, entry in _entries(data, section):
        name = entry.get("name")
        if not isinstance(name, str):
            continue
        if name in first_index:
            problems.append(
                ((section, index, "name"), f"another {what} is named {name!r} ({section}[{first_index[name]}])")
            )
        else:
            first_index[name] = index
    return problems


def _integer_generator(generator: Any) -> bool:
    """Whether a raw field generator yields integers only, so that it can be added to a counter."""
    if not isinstance(generator, dict) or len(generator) != 1:
        return True  # malformed: the schema reports it
    ((kind, params),) = generator.items()
    if kind == "constant":
        return isinstance(params, int) and not isinstance(params, bool)
    if kind == "choice" and isinstance(params, dict) and isinstance(params.get("values"), list):
        return all(isinstance(v, int) and not isinstance(v, bool) for v in params["values"])
    return True


def _consumer_references(
    at: Path, consumer: dict[str, Any], events: dict[str, Any], carried: dict[str, dict[str, Any]]
) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = []
    subscribed = []
    subscribes = consumer.get("subscribes")
    if isinstance(subscribes, list):
        for index, event in enumerate(subscribes):
            if not isinstance(event, str):
                continue
            if event in events:
                subscribed.append(event)
            else:
                problems.append(((*at, "subscribes", index), _undeclared_event(event, events)))
    state = consumer.get("state") if isinstance(consumer.get("state"), dict) else {}
    effects = consumer.get("effects")
    problems += _queried_counter(at, consumer.get("queries"), state, effects if isinstance(effects, list) else [])
    if not isinstance(effects, list):
        return problems
    for index, effect in enumerate(effects):
        if not isinstance(effect, dict):
            continue
        here = (*at, "effects", index)
        counter = effect.get("counter")
        if isinstance(counter, str) and counter not in state:
            problems.append(
                (
                    (*here, "counter"),
                    f"counter {counter!r} is not declared in this consumer's state"
                    f"{_suggest(counter, state)} (declared: {_listed(state)})",
                )
            )
        key = effect.get("key")
        add = effect.get("add")
        add_field = add.removeprefix("-") if isinstance(add, str) else None
        for event in subscribed:
            if event not in carried:
                continue
            fields = carried[event]
            if isinstance(key, str) and key not in fields:
                problems.append(((*here, "key"), f"{key!r} is not a field of event {event}{_declared(key, fields)}"))
            if add_field is None:
                continue
            if add_field not in fields:
                problems.append(
                    ((*here, "add"), f"{add_field!r} is not a field of event {event}{_declared(add_field, fields)}")
                )
            elif fields[add_field] is not _CARRIED and not _integer_generator(fields[add_field]):
                problems.append(
                    (
                        (*here, "add"),
                        f"field {add_field!r} of event {event} does not hold integers, "
                        "so it cannot be added to a counter",
                    )
                )
    return problems


def _invariant_references(data: dict[str, Any]) -> list[tuple[Path, str]]:
    """Each invariant's consumer is declared, and its counter is kept by that consumer, or by exactly one."""
    counters: dict[str, dict[str, None]] = {}  # consumer name -> its counters (a dict: in order, found at once)
    for _, consumer in _entries(data, "consumers"):
        name, state = consumer.get("name"), consumer.get("state")
        if isinstance(name, str):
            counters[name] = dict.fromkeys(state) if isinstance(state, dict) else {}
    keepers_of: dict[str, list[str]] = {}  # counter -> the consumers keeping one of that name
    for name, kept in counters.items():
        for kept_counter in kept:
            keepers_of.setdefault(kept_counter, []).append(name)
    queried = {
        consumer["name"]
        for _, consumer in _entries(data, "consumers")
        if consumer.get("queries") and isinstance(consumer.get("name"), str)
    }
    problems: list[tuple[Path, str]] = []
    for index, invariant in _entries(data, "invariants"):
        here: Path = ("invariants", index)
        consumer, counter = invariant.get("consumer"), invariant.get("counter")
        if isinstance(consumer, str) and consumer in counters and consumer not in queried:
            # A consumer without reads has no stale-read fraction: the bound could only fail.
            for bound in ("max", "min"):
                limits = invariant.get(bound)
                if isinstance(limits, dict) and "stale_read_fraction" in limits:
                    problems.append(
                        (
                            (*here, bound, "stale_read_fraction"),
                            f"{consumer} serves no reads; give it queries: {{rate, counter}} to bound its stale reads",
                        )
                    )
        if isinstance(consumer, str) and consumer not in counters:
            problems.append(
                (
                    (*here, "consumer"),
                    f"consumer {consumer!r} is not declared under consumers"
                    f"{_suggest(consumer, counters)} (declared: {_listed(counters)})",
                )
            )
            continue
        if not isinstance(counter, str):
            continue
        if isinstance(consumer, str):
            kept = counters[consumer]
            if counter not in kept:
                problems.append(
                    (
                        (*here, "counter"),
                        f"counter {counter!r} is not declared in {consumer}'s state"
                        f"{_suggest(counter, kept)} (declared: {_listed(kept)})",
                    )
                )
            continue
        keepers = keepers_of.get(counter, [])
        if len(keepers) > 1:
            listed = _listed(keepers[:-1]) + f" and {keepers[-1]}" if len(keepers) <= LISTED_NAMES else _listed(keepers)
            problems.append(((*here, "counter"), f"counter {counter!r} is kept by {listed}; name the consumer"))
        elif not keepers:
            problems.append(
                (
                    (*here, "counter"),
                    f"counter {counter!r} is not declared in any consumer's state"
                    f"{_suggest(counter, keepers_of)} (declared: {_listed(keepers_of)})",
                )
            )
    return problems


def _queried_counter(at: Path, queries: Any, state: dict[str, Any], effects: list[Any]) -> list[tuple[Path, str]]:
    """Reads need a counter of the consumer's own state, and an effect on it to give them keys."""
    counter = queries.get("counter") if isinstance(queries, dict) else None
    if not isinstance(counter, str):
        return []  # missing or malformed: the schema reports it
    here = (*at, "queries", "counter")
    if counter not in state:
        return [
            (
                here,
                f"counter {counter!r} is not declared in this consumer's state"
                f"{_suggest(counter, state)} (declared: {_listed(state)})",
            )
        ]
    changed = [
        effect["counter"] for effect in effects if isinstance(effect, dict) and isinstance(effect.get("counter"), str)
    ]
    changed = list(dict.fromkeys(changed))
    if counter not in changed:
        return [
            (
                here,
                f"no effect changes counter {counter!r}, so its reads have no keys; "
                f"query a counter that an effect changes{_suggest(counter, changed)} "
                f"(changed: {_listed(changed)})",
            )
        ]
    return []
