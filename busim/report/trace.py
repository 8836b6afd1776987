"""``busim run --trace``: every message's deliveries, as JSON Lines and as a Chrome trace.

``trace.jsonl`` holds one JSON object per message, in order of id, with
each consumer group's deliveries of it (see docs/results.md).
``trace.json`` is in the Chrome Trace Event Format, which Perfetto
(https://ui.perfetto.dev) and chrome://tracing open: one process per
publisher and per consumer group, one track per instance, a slice per
processing, and flow arrows from each publish to the processings of the
message. Both files are written as they are built, line by line, so that
a run of a million messages does not need its whole trace in memory.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from busim.engine.records import DeliveryCause, GroupRecord, LossReason, Outcome, RunRecord
from busim.errors import OutputError

TRACE_JSONL = "trace.jsonl"
TRACE_JSON = "trace.json"
TRACE_FILES = (TRACE_JSONL, TRACE_JSON)

# Each code of the record's enums by its name in results.json.
_CAUSES = {int(cause): cause.name.lower() for cause in DeliveryCause}
_REASONS = {int(reason): reason.name.lower() for reason in LossReason}
_OUTCOMES = {int(outcome): outcome.name.lower() for outcome in Outcome}
_CHUNK = 4096  # events written at a time: few writes, and never the whole trace in memory
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def write_trace(record: RunRecord, folder: Path) -> list[Path]:
    """Write trace.jsonl and trace.json into ``folder``; return their paths.

    Raises:
        OutputError: the folder cannot be written.
    """
    paths = [folder / TRACE_JSONL, folder / TRACE_JSON]
    try:
        with paths[0].open("w", encoding="utf-8") as out:
            write_trace_lines(record, out)
        with paths[1].open("w", encoding="utf-8") as out:
            write_chrome_trace(record, out)
    except OSError as error:
        raise OutputError(f"cannot write the trace to {folder}: {error.strerror or error}") from None
    return paths


def _times(values: np.ndarray) -> list[float | None]:
    """Times in seconds as plain floats, None where absent (NaN)."""
    return [None if math.isnan(value) else value for value in values.tolist()]


class _GroupColumns:
    """One group's record as plain lists, its deliveries grouped by message, for fast per-message access."""

    def __init__(self, record: RunRecord, group: GroupRecord) -> None:
        self.name = group.name
        deliveries = group.deliveries
        count = len(record.messages)
        self.local = np.full(count, -1, np.int64)
        self.local[group.message_ids] = np.arange(group.message_ids.size)
        self.local_list = self.local.tolist()
        order = np.argsort(deliveries.message, kind="stable")
        self.rows = order.tolist()
        self.first_row = np.searchsorted(deliveries.message[order], np.arange(group.message_ids.size + 1)).tolist()
        self.attempt = deliveries.attempt.tolist()
        self.cause = deliveries.cause.tolist()
        self.instance = deliveries.instance.tolist()
        self.arrival_s = deliveries.arrival_s.tolist()
        self.receive_s = deliveries.receive_s.tolist()
        self.take_s = _times(deliveries.take_s)
        self.done_s = _times(deliveries.done_s)
        self.outcome = deliveries.outcome.tolist()
        self.crashed = deliveries.crashed.tolist()
        fates = group.fates()
        self.lost: dict[int, tuple[float, int]] = {}
        for message, at_s, reason in zip(
            group.lost_message.tolist(), group.lost_s.tolist(), group.lost_reason.tolist()
        ):
            if fates.lost[message]:
                self.lost.setdefault(message, (at_s, reason))
        self.dead: dict[int, tuple[float, int]] = {}
        for message, at_s, cause in zip(
            group.dead_letter_message.tolist(), group.dead_letter_s.tolist(), group.dead_letter_cause.tolist()
        ):
            self.dead.setdefault(message, (at_s, cause))
        self.stuck: dict[int, tuple[float, int]] = {}
        for message, at_s, cause in zip(
            group.stuck_pending_message.tolist(), group.stuck_pending_s.tolist(), group.stuck_pending_cause.tolist()
        ):
            self.stuck.setdefault(message, (at_s, cause))

    def message_rows(self, local: int) -> list[int]:
        return self.rows[self.first_row[local] : self.first_row[local + 1]]


class _MessageColumns:
    """The published messages as plain lists: who published each, its payload and its times."""

    def __init__(self, record: RunRecord) -> None:
        messages = record.messages
        scenario = record.scenario
        self.count = len(messages)
        self.event = [messages.event_names[event] for event in messages.event.tolist()]
        names = [publisher.name for publisher in scenario.publishers]
        consumers = [consumer.name for consumer in scenario.consumers]
        # An emitted message's publisher is the consumer that emitted it.
        self.publisher = [
            names[publisher] if publisher >= 0 else consumers[emitter]
            for publisher, emitter in zip(messages.publisher.tolist(), messages.emitter.tolist())
        ]
        self.caused_by = [None if cause < 0 else cause for cause in messages.cause.tolist()]
        self.published_s = messages.publish_s.tolist()
        self.accepted_s = _times(messages.accept_s)
        position = np.empty(self.count, np.int64)
        self.columns: dict[str, list[tuple[str, list[Any]]]] = {}
        self.key: dict[str, str | None] = {}
        for event, members in messages.members.items():
            position[members] = np.arange(members.size)
            self.columns[event] = [(name, values.tolist()) for name, values in messages.fields[event].items()]
            self.key[event] = scenario.events[event].key
        self.position = position.tolist()
        self.resends: dict[int, list[dict[str, Any]]] = {}
        for message, accepted_s, kept in zip(
            messages.resend_message.tolist(), messages.resend_accept_s.tolist(), messages.resend_kept.tolist()
        ):
            self.resends.setdefault(message, []).append({"accepted_s": accepted_s, "kept": kept})

    def fields(self, message: int) -> dict[str, Any]:
        position = self.position[message]
        return {name: values[position] for name, values in self.columns[self.event[message]]}


def write_trace_lines(record: RunRecord, out: TextIO) -> None:
    """Write trace.jsonl to ``out``: one JSON object per message, in order of id."""
    messages = _MessageColumns(record)
    groups = [_GroupColumns(record, group) for group in record.groups]
    for message in range(messages.count):
        fields = messages.fields(message)
        key = messages.key[messages.event[message]]
        consumers = {}
        for group in groups:
            local = group.local_list[message]
            if local < 0:
                continue
            deliveries = [
                {
                    "attempt": group.attempt[row],
                    "cause": _CAUSES[group.cause[row]],
                    "instance": group.instance[row],
                    "arrival_s": group.arrival_s[row],
                    "receive_s": group.receive_s[row],
                    "take_s": group.take_s[row],
                    "done_s": group.done_s[row],
                    "outcome": _OUTCOMES[group.outcome[row]],
                    "crashed": group.crashed[row],
                }
                for row in group.message_rows(local)
            ]
            lost = group.lost.get(local)
            dead = group.dead.get(local)
            stuck = group.stuck.get(local)
            consumers[group.name] = {
                "deliveries": deliveries,
                "lost": None if lost is None else {"at_s": lost[0], "reason": _REASONS[lost[1]]},
                "dead_lettered": None if dead is None else {"at_s": dead[0], "cause": _CAUSES[dead[1]]},
                "stuck_pending": None if stuck is None else {"at_s": stuck[0], "cause": _CAUSES[stuck[1]]},
            }
        line = {
            "id": message,
            "event": messages.event[message],
            "publisher": messages.publisher[message],
            "caused_by": messages.caused_by[message],
            "key": None if key is None else fields[key],
            "fields": fields,
            "published_s": messages.published_s[message],
            "accepted_s": messages.accepted_s[message],
            "resends": messages.resends.get(message, []),
            "consumers": consumers,
        }
        out.write(_encode(line))
        out.write("\n")


def _us(time_s: float) -> int:
    """A time in the trace's unit, whole microseconds.

    Whole numbers, because Perfetto truncates ``ts * 1000`` to nanoseconds:
    a fractional timestamp can lose a nanosecond, and a processing that
    starts as the one before it ends would then overlap it. Rounding is
    monotonic, so slices that did not overlap still do not.
    """
    return round(time_s * 1e6)


def _lanes(group: _GroupColumns) -> tuple[list[int], int]:
    """A lane for each delivery processed, so that an instance's overlapping processings sit on separate tracks.

    Returns each row's lane (-1 where no worker took it) and how many lanes
    the busiest instance needed (its concurrency at most).
    """
    lane = [-1] * len(group.take_s)
    taken = sorted((take_s, row) for row, take_s in enumerate(group.take_s) if take_s is not None)
    busy: dict[int, list[tuple[float, int]]] = {}  # per instance: (end, lane) of its processings under way
    free: dict[int, list[int]] = {}
    opened: dict[int, int] = {}
    for take_s, row in taken:
        instance = group.instance[row]
        running, idle = busy.setdefault(instance, []), free.setdefault(instance, [])
        while running and running[0][0] <= take_s:
            heapq.heappush(idle, heapq.heappop(running)[1])
        if idle:
            lane[row] = heapq.heappop(idle)
        else:
            lane[row] = opened.get(instance, 0)
            opened[instance] = lane[row] + 1
        done_s = group.done_s[row]
        heapq.heappush(running, (math.inf if done_s is None else done_s, lane[row]))
    return lane, max(opened.values(), default=1)


@dataclass(frozen=True)
class _Tracks:
    """A consumer group's process in the trace: a track per instance (per worker lane when they overlap),
    and one for its queue at the broker.

    Thread ids are unique across the trace, and never 0, which Perfetto
    keeps for the idle task.
    """

    name: str
    pid: int
    first_tid: int
    instances: int
    lanes: int
    lane: list[int]  # each delivery row's lane (-1: never taken)

    def worker(self, instance: int, lane: int = 0) -> int:
        return self.first_tid + instance * self.lanes + lane

    @property
    def queue(self) -> int:
        return self.first_tid + self.instances * self.lanes

    def metadata(self) -> Iterator[str]:
        yield _metadata("process_name", self.pid, self.queue, {"name": self.name})
        yield _metadata("process_sort_index", self.pid, self.queue, {"sort_index": self.pid})
        yield _metadata("thread_name", self.pid, self.queue, {"name": f"{self.name} queue"})
        yield _metadata("thread_sort_index", self.pid, self.queue, {"sort_index": -1})
        for instance in range(self.instances):
            for lane in range(self.lanes):
                track = f"{self.name} #{instance}" + (f" worker {lane}" if self.lanes > 1 else "")
                yield _metadata("thread_name", self.pid, self.worker(instance, lane), {"name": track})
                order = instance * self.lanes + lane
                yield _metadata("thread_sort_index", self.pid, self.worker(instance, lane), {"sort_index": order})


def _metadata(name: str, pid: int, tid: int, args: dict[str, Any]) -> str:
    return _encode({"name": name, "ph": "M", "pid": pid, "tid": tid, "args": args})


def _instant(name: str, category: str, time_s: float, pid: int, tid: int, args: dict[str, Any]) -> str:
    """An instant event on one track."""
    return _encode(
        {"name": name, "cat": category, "ph": "i", "s": "t", "ts": _us(time_s), "pid": pid, "tid": tid, "args": args}
    )


def chrome_trace_lines(record: RunRecord) -> Iterator[str]:
    """The Chrome trace's events as JSON texts: metadata, then each message's, then crashes and losses.

    A flow event follows the slice it binds to, at the same timestamp, as
    Perfetto binds a flow event to the slice open on its track when it reads
    it. The events written for every message and every processing are
    formatted from templates: encoding each as a dict would take most of
    the time of writing the trace.
    """
    scenario = record.scenario
    messages = _MessageColumns(record)
    groups = [_GroupColumns(record, group) for group in record.groups]
    # Publishers first, then consumer groups, each in scenario order: pids, tids and sort order alike.
    publisher_pid = {publisher.name: index + 1 for index, publisher in enumerate(scenario.publishers)}
    tracks = []
    next_tid = len(publisher_pid) + 1
    for index, group in enumerate(groups):
        lane, lanes = _lanes(group)
        instances = scenario.consumer(group.name).most_instances  # a scaler may start more than it starts with
        tracks.append(_Tracks(group.name, len(publisher_pid) + index + 1, next_tid, instances, lanes, lane))
        next_tid = tracks[-1].queue + 1

    for name, pid in publisher_pid.items():
        yield _metadata("process_name", pid, pid, {"name": name})
        yield _metadata("process_sort_index", pid, pid, {"sort_index": pid})
        yield _metadata("thread_name", pid, pid, {"name": name})
    for track in tracks:
        yield from track.metadata()

    names = {event: _encode(event) for event in record.messages.event_names}
    end_s = record.sim_time_s
    for message in range(messages.count):
        name = names[messages.event[message]]
        emitter = record.messages.emitter[message]
        if emitter >= 0:
            # Emitted by a consumer: on its group's queue track, where the arrow to its consumers starts.
            pid, tid = tracks[emitter].pid, tracks[emitter].queue
        else:
            pid = tid = publisher_pid[messages.publisher[message]]
        published_us = _us(messages.published_s[message])
        accepted_s = messages.accepted_s[message]
        yield (
            f'{{"name":{name},"cat":"publish","ph":"i","s":"t","ts":{published_us!r},"pid":{pid},"tid":{tid},'
            f'"args":{{"message":{message},"accepted_s":{_number(accepted_s)},'
            f'"failed":{"true" if accepted_s is None else "false"}}}}}'
        )
        flows = []
        for index, group in enumerate(groups):
            local = group.local_list[message]
            if local < 0:
                continue
            rows = [row for row in group.message_rows(local) if group.take_s[row] is not None]
            if rows:
                flows.append((index, sorted(rows, key=group.take_s.__getitem__)))
        for index, _ in flows:
            yield _flow("s", _flow_id(message, index, len(groups)), published_us, pid, tid)
        for index, rows in flows:
            group, track = groups[index], tracks[index]
            for number, row in enumerate(rows, start=1):
                take_s = group.take_s[row]
                done_s = group.done_s[row]
                tid = track.worker(group.instance[row], track.lane[row])
                take_us = _us(take_s)
                duration_us = _us(done_s if done_s is not None else max(end_s, take_s)) - take_us
                yield (
                    f'{{"name":{name},"cat":"processing","ph":"X","ts":{take_us!r},"dur":{duration_us!r},'
                    f'"pid":{track.pid},"tid":{tid},"args":{{"message":{message},'
                    f'"attempt":{group.attempt[row]},"cause":"{_CAUSES[group.cause[row]]}",'
                    f'"outcome":"{_OUTCOMES[group.outcome[row]]}"}}}}'
                )
                phase = "f" if number == len(rows) else "t"
                yield _flow(phase, _flow_id(message, index, len(groups)), take_us, track.pid, tid)

    for record_group, group, track in zip(record.groups, groups, tracks):
        for crash_s, instance in zip(record_group.crash_s.tolist(), record_group.crash_instance.tolist()):
            yield _instant("crash", "crash", crash_s, track.pid, track.worker(instance), {"instance": instance})
        message_ids = record_group.message_ids.tolist()
        for local, (at_s, reason) in sorted(group.lost.items()):
            args = {"message": message_ids[local], "reason": _REASONS[reason]}
            yield _instant("lost", "loss", at_s, track.pid, track.queue, args)
        for local, (at_s, cause) in sorted(group.dead.items()):
            args = {"message": message_ids[local], "cause": _CAUSES[cause]}
            yield _instant("dead-lettered", "dead letter", at_s, track.pid, track.queue, args)
        for local, (at_s, cause) in sorted(group.stuck.items()):
            args = {"message": message_ids[local], "cause": _CAUSES[cause]}
            yield _instant("left pending", "stuck pending", at_s, track.pid, track.queue, args)


def _number(value: float | None) -> str:
    return "null" if value is None else repr(value)


def _flow_id(message: int, group: int, groups: int) -> int:
    """One flow per message and group: from its publish through each processing of it there."""
    return message * groups + group + 1


def _flow(phase: str, flow_id: int, ts: int, pid: int, tid: int) -> str:
    """A flow event; the last of a flow binds to the processing that encloses it, not to the next slice."""
    bind = ',"bp":"e"' if phase == "f" else ""
    return f'{{"name":"message","cat":"flow","ph":"{phase}","id":{flow_id},"ts":{ts!r},"pid":{pid},"tid":{tid}{bind}}}'


def write_chrome_trace(record: RunRecord, out: TextIO) -> None:
    """Write trace.json to ``out``: ``{"traceEvents": [...], "displayTimeUnit": "ms"}``, one event a line."""
    out.write('{"traceEvents":[\n')
    chunk: list[str] = []
    separator = ""
    for line in chrome_trace_lines(record):
        chunk.append(line)
        if len(chunk) == _CHUNK:
            out.write(separator + ",\n".join(chunk))
            chunk.clear()
            separator = ",\n"
    if chunk:
        out.write(separator + ",\n".join(chunk))
    out.write('\n],"displayTimeUnit":"ms"}\n')
