"""One real run, from the first queue it creates to the last one it deletes.

:func:`run_real` sets the run up (the broker's resources named after the
run, each group's state store, every consumer instance as a process),
publishes the schedule open-loop in wall-clock time, drains, stops the
instances, reads what the broker and the stores say, deletes everything it
created (also after a failure or an interruption), and merges the journals
into the engine's record.

Open loop: each copy is due at the time the schedule gives it and is sent
then, whether or not the broker has confirmed earlier ones; batches of
copies that fall due together go out together, and their confirms are
awaited concurrently. Only when :data:`MAX_BATCHES_IN_FLIGHT` batches wait
for confirms does the generator wait for the broker, and the time it waited
is reported. How late each copy went out against its due time is its *lag*.

The generator sends at most every :data:`SEND_INTERVAL_S` (a millisecond),
everything due by then in one batch, and waits with the event loop's timers:
they round every wait up to the next millisecond, which the batching allows
for anyway. (A pacing thread, precise to tens of microseconds on an idle
machine, woke as late as the loop's timers once the cores were busy, and
cost a thread hand-off per wait.)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from busim.analysis.real import copies_sent
from busim.engine.effects import EffectPlan
from busim.engine.records import RunRecord
from busim.loadtest.drivers.base import Driver, Outgoing, RunNames
from busim.loadtest.emissions import EmissionPlan
from busim.loadtest.journal import ENTRY, Kind, entries_of, read_journals
from busim.loadtest.record import GroupOutcome, Publishing, record_of
from busim.loadtest.schedule import Schedule
from busim.loadtest.stores import open_admin, store_kind
from busim.loadtest.stores.base import EffectTable, StoreAdmin
from busim.loadtest.supervisor import GroupFiles, Supervisor
from busim.loadtest.target import BrokerTarget, StoreURLs, UnreachableError
from busim.scenario.schema import Scenario

MAX_BATCH = 2000  # copies in one publish call at most
# The generator sends at most this often: copies falling due meanwhile go out together at the next send,
# at most this late. Sending each copy the moment it is due cost a thread hand-off and a publish call per
# copy, which at 10,000 copies/s made the generator itself fall behind by tens of milliseconds.
SEND_INTERVAL_S = 0.001
# Publish calls awaiting their confirms before the generator waits for the broker: a second's worth at one
# send per SEND_INTERVAL_S. RabbitMQ confirms a persistent copy once it is on disk, some 100 ms later.
MAX_BATCHES_IN_FLIGHT = 1000
TICK_S = 0.25  # how often the run looks at its journals and the broker while it runs
_TAIL_READ_BYTES = 2048 * ENTRY.itemsize  # how much of a journal the live figures read at a time: 64 KiB
CONFIRM_GRACE_S = 5.0  # how long a stopped generator waits for the confirms of what it sent


@dataclass(frozen=True)
class LiveFigures:
    """What a running real run shows about itself, every :data:`TICK_S`."""

    phase: str  # starting, publishing, draining, stopping, cleaning up
    elapsed_s: float
    duration_s: float
    sent: int  # copies handed to the broker
    due: int  # copies due by now
    copies: int  # copies in the whole schedule
    send_rate_per_s: float  # over the last second
    due_rate_per_s: float  # the schedule's, over the last second
    consume_rate_per_s: float  # processings finished, over the last second
    backlog: int  # deliveries the broker still holds for the groups, and those the instances hold unfinished
    redeliveries: int
    crashes: int
    lag_p99_s: float | None  # the generator's lag over the copies sent so far


@dataclass(frozen=True)
class Sends:
    """What the load generator did: per copy, when due, sent and confirmed, and how long it waited for the broker."""

    due_s: np.ndarray
    copy_message: np.ndarray  # per copy, its message in the record; -1 for a copy never sent
    sent_s: np.ndarray
    confirmed_s: np.ndarray
    refused: np.ndarray
    waited_for_broker_s: float  # time the generator spent waiting for confirms before it could send more


@dataclass(frozen=True)
class RealRun:
    """A finished real run: its record, and what only a real run has."""

    record: RunRecord
    broker: str  # the URL, redacted
    driver: str  # the broker, for people
    run_id: str
    generator: Sends  # what the load generator did with each copy
    stores: dict[str, str]  # consumer -> the kind of store its state was kept in
    partial: bool  # interrupted: publishing stopped early
    wall_time_s: float


class RunInterrupted(Exception):
    """Raised inside a run when it is asked to stop; the run then drains, cleans up and reports."""


@dataclass
class _Tail:
    """The journals read so far: counts for the live display and for the drain check."""

    folder: Path
    offsets: dict[Path, int] = field(default_factory=dict)
    received: int = 0
    done: int = 0
    redeliveries: int = 0
    crashes: int = 0
    last_receipt: float = 0.0
    # (group index, instance, incarnation) -> deliveries received and not yet acked or given up
    holding: dict[tuple[int, int, int], int] = field(default_factory=dict)
    done_times: np.ndarray = field(default_factory=lambda: np.empty(0))  # of the last second or so

    def read(self) -> None:
        for path in self.folder.glob("g*.i*.journal"):
            self._read(path)

    def _read(self, path: Path) -> None:
        """The entries of the journal at ``path`` since the last look; read a stretch at a time, so as not to
        read the zeros a journal keeps ahead of its entries."""
        offset = self.offsets.get(path, 0)
        with path.open("rb") as stream:
            stream.seek(offset)
            while True:
                data = stream.read(_TAIL_READ_BYTES)
                entries = entries_of(data)
                if entries.size:
                    self._count(path, entries)
                    offset += entries.nbytes
                if entries.nbytes < _TAIL_READ_BYTES:
                    break
        self.offsets[path] = offset

    def _count(self, path: Path, entries: np.ndarray) -> None:
        group = int(path.name.split(".")[0][1:])
        kind = entries["kind"]
        receipts = kind == Kind.RECEIVED
        self.received += int(receipts.sum())
        self.redeliveries += int(np.count_nonzero(receipts & (entries["flag"] > 0)))
        self.crashes += int(np.count_nonzero(kind == Kind.CRASHING))
        finished = kind == Kind.DONE
        self.done += int(finished.sum())
        self.done_times = np.concatenate((self.done_times, entries["t"][finished]))
        if receipts.any():
            self.last_receipt = max(self.last_receipt, float(entries["t"][receipts].max()))
        key = (group, int(entries["instance"][0]), int(entries["incarnation"][0]))
        self.holding[key] = (
            self.holding.get(key, 0)
            + int(receipts.sum())
            - int(np.count_nonzero((kind == Kind.ACKED) | (kind == Kind.ACK_REFUSED)))
        )

    def held_by_live(self, group: int, alive: list[tuple[int, int]]) -> int:
        return sum(self.holding.get((group, instance, incarnation), 0) for instance, incarnation in alive)

    def rate(self, now: float) -> float:
        self.done_times = self.done_times[self.done_times > now - 1.0]
        return float(self.done_times.size)


def run_name(scenario: Scenario) -> str:
    """A run's own name, for every resource it creates: busim-<scenario>-<date>-<time>-<random>."""
    slug = "".join(c if c.isalnum() else "-" for c in scenario.name.lower()).strip("-")[:40] or "run"
    return f"busim-{slug}-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


async def run_real(
    scenario: Scenario,
    target: BrokerTarget,
    stores: StoreURLs,
    on_live: Callable[[LiveFigures], None] | None = None,
    stop: asyncio.Event | None = None,
) -> RealRun:
    """Run ``scenario`` (with its seed set) against ``target``'s broker; see the module's docstring.

    ``stop``, when set, stops publishing: the run drains for at most its
    ``drain_timeout``, and its result is marked partial.
    """
    assert scenario.seed is not None, "a real run needs the scenario's seed"
    began = time.monotonic()
    names = RunNames(run_name(scenario))
    schedule = Schedule.of(scenario)
    stop = stop or asyncio.Event()
    folder = Path(tempfile.mkdtemp(prefix=f"{names.run_id}-"))
    driver = target.driver(target.url, scenario, names)
    admins: dict[str, StoreAdmin] = {}
    supervisor: Supervisor | None = None
    publishing: asyncio.Task[None] | None = None
    kinds = {consumer.name: store_kind(consumer) for consumer in scenario.consumers}
    try:
        files = _prepare(scenario, schedule, folder, kinds)
        try:
            await driver.connect()
        except Exception as error:
            raise UnreachableError.of(driver.title, target.url, error) from error
        await driver.setup()
        for consumer in scenario.consumers:
            kind = kinds[consumer.name]
            table = EffectTable.load(files[consumer.name].effects)
            admin = open_admin(kind, stores.of(kind), consumer, table, names.prefix, consumer.name)
            admins[consumer.name] = admin
            try:
                await admin.create()
            except Exception as error:
                raise UnreachableError.of(f"the state store ({kind})", stores.of(kind), error) from error
        supervisor = Supervisor(
            scenario,
            target.scheme,
            names.run_id,
            folder,
            files,
            target.url,
            {"redis": stores.redis, "postgres": stores.postgres},
        )
        show = on_live or (lambda figures: None)
        show(_starting(scenario, schedule))
        await supervisor.start()
        generator = _Publisher(driver, scenario, schedule)
        tail = _Tail(folder)
        start = time.monotonic()
        driver.clock = lambda: time.monotonic() - start
        supervisor.schedule_crashes(start)
        publishing = asyncio.create_task(generator.run(stop, start))
        horizon = start + scenario.horizon_s
        drained = False
        quiet_ticks = 0  # ticks in a row that found nothing left: two make the run drained
        stopped_at = math.inf  # when Ctrl-C stopped the run: it drains for at most drain_timeout from then
        while True:
            await asyncio.sleep(TICK_S)
            supervisor.check()
            generator.check()  # a publish that failed fails the run
            now = time.monotonic()
            if stop.is_set() and math.isinf(stopped_at):
                stopped_at = now
            # The broker first, then the journals: a copy handed out in between shows in the journals.
            left = await _left(driver, scenario)
            tail.read()
            phase = "publishing" if not publishing.done() else "draining"
            held = sum(
                tail.held_by_live(index, supervisor.alive(consumer.name))
                for index, consumer in enumerate(scenario.consumers)
            )
            show(_live(phase, scenario, schedule, generator, tail, now, start, held + (left or 0)))
            quiet_ticks = quiet_ticks + 1 if left == 0 and _idle(scenario, supervisor, tail) else 0
            if quiet_ticks >= 2 and publishing.done():
                drained = True
                break
            if now >= horizon or now >= stopped_at + scenario.drain_timeout:
                break
        await _stop_publishing(publishing)
        generator.check()
        end_s = time.monotonic() - start
        show(_live("stopping", scenario, schedule, generator, tail, time.monotonic(), start, 0))
        await supervisor.stop()
        fates = await driver.fates()
        outcomes = {}
        for index, consumer in enumerate(scenario.consumers):
            outcomes[consumer.name] = GroupOutcome(
                entries=read_journals(folder, f"g{index}.*journal"),
                counters=await admins[consumer.name].counters(),
                fates=[fate for fate in fates if fate.group == consumer.name],
            )
        # An interrupted run is about what it sent: the record holds those messages, not the whole schedule.
        recorded = copies_sent(generator.sent_s)  # as its figures say, for busim explain
        published = schedule.cut(recorded)
        publishing_record = Publishing(
            generator.sent_s[:recorded], generator.confirmed_s[:recorded], generator.refused[:recorded]
        )
        record = record_of(scenario, published, publishing_record, outcomes, start, end_s, drained)
        copy_message = np.full(len(schedule), -1, dtype=np.int64)
        copy_message[:recorded] = published.copy_message
        return RealRun(
            record=record,
            broker=target.redacted,
            driver=driver.title,
            run_id=names.run_id,
            generator=Sends(
                due_s=schedule.copy_due_s,
                copy_message=copy_message,
                sent_s=generator.sent_s,
                confirmed_s=generator.confirmed_s,
                refused=generator.refused,
                waited_for_broker_s=generator.waited_s,
            ),
            stores=kinds,
            partial=recorded < len(schedule),
            wall_time_s=time.monotonic() - began,
        )
    finally:
        if publishing is not None:
            await _stop_publishing(publishing)
        await _clean_up(driver, admins, supervisor, folder)


async def _stop_publishing(publishing: asyncio.Task[None]) -> None:
    """Stop the load generator, and wait until it has: nothing may publish once the run winds down."""
    publishing.cancel()
    await asyncio.gather(publishing, return_exceptions=True)


async def _clean_up(driver: Driver, admins: dict[str, StoreAdmin], supervisor: Supervisor | None, folder: Path) -> None:
    """Delete everything the run created, whatever state it is in, and see it through: a further
    interruption (another Ctrl-C) while it works does not stop it half-way."""

    async def clean() -> None:
        if supervisor is not None:
            with contextlib.suppress(Exception):
                await supervisor.stop()
        for admin in admins.values():
            with contextlib.suppress(Exception):
                await admin.drop()
        with contextlib.suppress(Exception):
            await driver.teardown()
        with contextlib.suppress(Exception):
            await driver.close()
        shutil.rmtree(folder, ignore_errors=True)

    cleaning = asyncio.ensure_future(clean())
    interrupted = False
    while not cleaning.done():
        try:
            await asyncio.shield(cleaning)
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError


def _prepare(scenario: Scenario, schedule: Schedule, folder: Path, kinds: dict[str, str]) -> dict[str, GroupFiles]:
    """Write what the instances load: each group's effects over the run's plan, where each message is in the
    group, and what each processing emits (:mod:`busim.loadtest.emissions`)."""
    plan = EmissionPlan.of(scenario, schedule.messages)
    messages = plan.messages
    copies = folder / "copies.npy"
    np.save(copies, schedule.copy_message)
    files = {}
    for index, consumer in enumerate(scenario.consumers):
        selection = messages.select(list(dict.fromkeys(consumer.subscribes)))
        effects = folder / f"g{index}.effects.npz"
        EffectTable.of(EffectPlan(consumer, messages.common_fields(selection))).save(effects)
        local = np.full(len(messages), -1, np.int64)
        local[selection.ids] = np.arange(selection.ids.size)
        locals_path = folder / f"g{index}.locals.npy"
        np.save(locals_path, local)
        emits = []
        for entry in range(len(consumer.emits)):
            path = folder / f"g{index}.emits{entry}.npy"
            np.save(path, plan.planned[index, entry])
            emits.append(path)
        files[consumer.name] = GroupFiles(index, effects, copies, locals_path, tuple(emits), kinds[consumer.name])
    return files


async def _left(driver: Driver, scenario: Scenario) -> int | None:
    """What the broker still holds for the groups and will deliver without help; None where it does not say."""
    total = 0
    for consumer in scenario.consumers:
        pending = await driver.pending(consumer.name)
        if pending is None:
            return None
        total += pending
    return total


def _idle(scenario: Scenario, supervisor: Supervisor, tail: _Tail) -> bool:
    """No instance is down awaiting its restart, and none holds a delivery it has not finished with."""
    if supervisor.restarting:
        return False
    return not any(
        tail.held_by_live(index, supervisor.alive(consumer.name)) for index, consumer in enumerate(scenario.consumers)
    )


class _Publisher:
    """The open-loop load generator: sends each copy when due, without waiting for earlier confirms."""

    def __init__(self, driver: Driver, scenario: Scenario, schedule: Schedule) -> None:
        self._driver = driver
        self._schedule = schedule
        self._start = 0.0  # set by run()
        self._event_names = list(scenario.events)
        self._copy_event = schedule.messages.event[schedule.copy_message]  # per copy, its event's index
        count = len(schedule)
        self.sent_s = np.full(count, np.nan)
        self.confirmed_s = np.full(count, np.nan)
        self.refused = np.zeros(count, dtype=bool)
        self.sent = 0
        self.waited_s = 0.0
        self._failure: BaseException | None = None
        np.percentile(np.zeros(1), 99)  # numpy's first percentile takes some 10 ms: not on the run's clock

    def check(self) -> None:
        """Raise the error of a publish that failed, if one has: the run cannot go on without its publisher."""
        if self._failure is not None:
            raise self._failure

    async def run(self, stop: asyncio.Event, start: float) -> None:
        """Publish the schedule, its times counted from ``start`` (monotonic), until done or ``stop`` is set."""
        self._start = start
        due = self._schedule.copy_due_s
        count = due.size
        in_flight: set[asyncio.Task[None]] = set()
        sent = 0
        next_send_s = 0.0
        try:
            while sent < count and not stop.is_set():
                now_s = time.monotonic() - start
                wake_s = max(float(due[sent]), next_send_s)
                if wake_s > now_s:
                    await asyncio.sleep(min(wake_s - now_s, TICK_S))
                    continue
                next_send_s = now_s + SEND_INTERVAL_S
                upto = min(int(np.searchsorted(due, now_s, side="right")), sent + MAX_BATCH)
                if len(in_flight) >= MAX_BATCHES_IN_FLIGHT:
                    waited = time.monotonic()
                    _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    self.waited_s += time.monotonic() - waited
                    continue
                task = asyncio.create_task(self._send(sent, upto))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                task.add_done_callback(self._settled)
                sent = upto
                self.sent = sent
                await asyncio.sleep(0)  # let confirms and the clock in
        finally:
            if in_flight:  # their confirms, for a while; then they are given up
                _, late = await asyncio.wait(in_flight, timeout=CONFIRM_GRACE_S)
                for task in late:
                    task.cancel()

    def _settled(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    async def _send(self, first: int, upto: int) -> None:
        self.sent_s[first:upto] = time.monotonic() - self._start  # as it goes out: the lag counts any queueing
        names = self._event_names
        # Made per batch, not for the whole schedule up front: a long run's millions of copies need no objects.
        batch = [
            Outgoing(copy, message, names[event])
            for copy, message, event in zip(
                range(first, upto),
                self._schedule.copy_message[first:upto].tolist(),
                self._copy_event[first:upto].tolist(),
                strict=True,
            )
        ]
        accepted = await self._driver.publish(batch)
        self.confirmed_s[first:upto] = time.monotonic() - self._start
        self.refused[first:upto] = ~np.asarray(accepted, dtype=bool)

    def lag_p99_s(self) -> float | None:
        if not self.sent:
            return None
        lag = self.sent_s[: self.sent] - self._schedule.copy_due_s[: self.sent]
        recent = lag[-20_000:]
        recent = recent[~np.isnan(recent)]
        return float(np.percentile(recent, 99)) if recent.size else None


def _starting(scenario: Scenario, schedule: Schedule) -> LiveFigures:
    return LiveFigures("starting", 0.0, scenario.duration, 0, 0, len(schedule), 0.0, 0.0, 0.0, 0, 0, 0, None)


def _live(
    phase: str,
    scenario: Scenario,
    schedule: Schedule,
    generator: _Publisher,
    tail: _Tail,
    now: float,
    start: float,
    backlog: int,
) -> LiveFigures:
    # Every TICK_S while the generator publishes in the same event loop: searches, not scans, so that the
    # copies falling due meanwhile are not held up (a scan of a long run's schedule takes milliseconds).
    elapsed_s = now - start
    due = schedule.copy_due_s
    sent_s = generator.sent_s[: generator.sent]  # in the order sent: non-decreasing
    return LiveFigures(
        phase=phase,
        elapsed_s=elapsed_s,
        duration_s=scenario.duration,
        sent=generator.sent,
        due=int(np.searchsorted(due, elapsed_s, side="right")),
        copies=due.size,
        send_rate_per_s=float(sent_s.size - np.searchsorted(sent_s, elapsed_s - 1.0, side="right")),
        due_rate_per_s=float(np.diff(np.searchsorted(due, [elapsed_s - 1.0, elapsed_s], side="right"))[0]),
        consume_rate_per_s=tail.rate(now),
        backlog=backlog,
        redeliveries=tail.redeliveries,
        crashes=tail.crashes,
        lag_p99_s=generator.lag_p99_s(),
    )
