"""The supervisor: starts every consumer instance as a process, kills and restarts them as the scenario says.

An instance that kills itself (a crash after a processing, before the ack:
see :mod:`busim.loadtest.worker`) and one the supervisor kills at a
scheduled time (``crash.at``, SIGKILL whatever it holds) are both restarted
after ``restart_after``, as a new incarnation with a journal of its own. An
instance that exits any other way has failed: the run stops and shows what
the instance wrote to its standard error.

The supervisor logs each start and kill to its group's journal, in the same
clock as the instances (``time.monotonic()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from busim.engine.randomness import RandomStreams
from busim.errors import BusimError
from busim.loadtest.journal import ENTRY, NO_INSTANCE, Journal, Kind, entries_of
from busim.loadtest.target import scrub
from busim.loadtest.worker import BROKER_URL_VARIABLE, STORE_URL_VARIABLE, InstanceSpec
from busim.scenario.schema import Consumer, Scenario

STOP_GRACE_S = 5.0  # how long a stopped instance has to detach before it is killed
READY_TIMEOUT_S = 60.0  # how long every instance has to attach to the broker at the start


class InstanceFailed(BusimError):
    """A consumer instance exited on its own: it could not connect, or it met an error."""


@dataclass(frozen=True)
class GroupFiles:
    """Where a group's instances find what they need, and write their journals."""

    index: int  # the group's position in scenario.consumers
    effects: Path
    copies: Path  # per copy of the schedule, its message
    locals: Path  # per message of the run's plan, its group-local index here, or -1
    emits: tuple[Path, ...]  # per emits entry, per group-local message, the planned message it emits
    store: str  # "redis" or "postgres"

    def journal(self, folder: Path, instance: int, incarnation: int) -> Path:
        return folder / f"g{self.index}.i{instance}.n{incarnation}.journal"

    def supervisor_journal(self, folder: Path) -> Path:
        return folder / f"g{self.index}.supervisor.journal"


@dataclass
class _Running:
    process: asyncio.subprocess.Process
    incarnation: int
    spec_path: Path
    stderr_path: Path
    killed: bool = False  # by the supervisor, at a scheduled time


@dataclass
class Supervisor:
    """Every instance of every consumer group of one run."""

    scenario: Scenario
    scheme: str
    run_id: str
    folder: Path  # the run's working folder: specs, journals, standard errors
    groups: dict[str, GroupFiles]
    broker_url: str
    store_urls: dict[str, str]  # store kind -> URL
    _running: dict[tuple[str, int], _Running] = field(default_factory=dict)
    _incarnations: dict[tuple[str, int], int] = field(default_factory=dict)
    _journals: dict[str, Journal] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _failure: InstanceFailed | None = None
    _stopping: bool = False

    async def start(self) -> None:
        """Start every instance, and wait until each has attached to the broker."""
        for name, files in self.groups.items():
            self._journals[name] = Journal(files.supervisor_journal(self.folder))
            for instance in range(self.scenario.consumer(name).instances):
                await self._spawn(name, instance)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._all_ready():
            self.check()
            if time.monotonic() > deadline:
                raise InstanceFailed(
                    f"the consumer instances did not attach to the broker within {READY_TIMEOUT_S:g} s"
                )
            await asyncio.sleep(0.05)

    def schedule_crashes(self, start: float) -> None:
        """Kill instances at the scenario's ``crash.at`` times, counted from ``start`` (monotonic)."""
        streams = RandomStreams.from_seed(self.scenario.seed or 0)
        for consumer in self.scenario.consumers:
            if consumer.crash is None or not consumer.crash.at:
                continue
            rng = streams.generator("consumer", consumer.name, "crash instance")
            for at_s in sorted(consumer.crash.at):
                self._keep(asyncio.create_task(self._kill_at(consumer, start + at_s, rng)))

    def check(self) -> None:
        """Raise the failure of an instance that exited on its own, if one has."""
        if self._failure is not None:
            raise self._failure

    def alive(self, group: str) -> list[tuple[int, int]]:
        """``(instance, incarnation)`` of each running instance of ``group``."""
        return [(instance, run.incarnation) for (name, instance), run in self._running.items() if name == group]

    @property
    def restarting(self) -> bool:
        """Some instance is down, waiting to be restarted."""
        return any(
            (name, instance) not in self._running
            for name in self.groups
            for instance in range(self.scenario.consumer(name).instances)
        )

    async def stop(self) -> None:
        """Stop every instance: SIGTERM, then SIGKILL for those still there after :data:`STOP_GRACE_S`."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        running = list(self._running.values())
        for run in running:
            with contextlib.suppress(ProcessLookupError):
                run.process.send_signal(signal.SIGTERM)
        if running:
            await asyncio.wait([asyncio.create_task(run.process.wait()) for run in running], timeout=STOP_GRACE_S)
            for run in running:
                if run.process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        run.process.kill()
            await asyncio.gather(*(run.process.wait() for run in running), return_exceptions=True)
        self._running.clear()
        for journal in self._journals.values():
            journal.close()
        self._journals.clear()

    # ------------------------------------------------------------ internals
    @property
    def _urls(self) -> list[str]:
        return [self.broker_url, *self.store_urls.values()]

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _all_ready(self) -> bool:
        for (name, instance), run in self._running.items():
            path = self.groups[name].journal(self.folder, instance, run.incarnation)
            if not _holds_an_entry(path):
                return False
        return True

    async def _spawn(self, group: str, instance: int) -> None:
        key = (group, instance)
        incarnation = self._incarnations.get(key, -1) + 1
        self._incarnations[key] = incarnation
        files = self.groups[group]
        spec = InstanceSpec(
            scenario=self.scenario.model_dump(mode="json"),
            scheme=self.scheme,
            run_id=self.run_id,
            group=group,
            instance=instance,
            incarnation=incarnation,
            journal=str(files.journal(self.folder, instance, incarnation)),
            group_index=files.index,
            effects=str(files.effects),
            copies=str(files.copies),
            locals=str(files.locals),
            emits=[str(path) for path in files.emits],
            store=files.store,
            processed_before=self._processed(group, instance, incarnation),
        )
        stem = f"g{files.index}.i{instance}.n{incarnation}"
        spec_path = self.folder / f"{stem}.spec.json"
        spec.write(spec_path)
        stderr_path = self.folder / f"{stem}.stderr"
        environment = os.environ | {
            BROKER_URL_VARIABLE: self.broker_url,
            STORE_URL_VARIABLE: self.store_urls[files.store],
        }
        with stderr_path.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "busim.loadtest.worker",
                str(spec_path),
                stdin=asyncio.subprocess.PIPE,  # never written: its end of file tells the instance the run is gone
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                env=environment,
                start_new_session=True,  # a Ctrl-C at the terminal reaches the run, which stops the instances itself
            )
        self._journals[group].log(Kind.STARTED, time.monotonic(), instance, flag=incarnation)
        run = _Running(process, incarnation, spec_path, stderr_path)
        self._running[key] = run
        self._keep(asyncio.create_task(self._watch(group, instance, run)))

    def _processed(self, group: str, instance: int, incarnation: int) -> int:
        """Processings the instance's earlier incarnations finished."""
        import numpy as np

        files = self.groups[group]
        done = 0
        for earlier in range(incarnation):
            entries = entries_of(files.journal(self.folder, instance, earlier).read_bytes())
            done += int(np.count_nonzero(entries["kind"] == Kind.DONE))
        return done

    async def _watch(self, group: str, instance: int, run: _Running) -> None:
        code = await run.process.wait()
        if self._stopping:
            return
        self._running.pop((group, instance), None)
        crashed_itself = code == -signal.SIGKILL and self._crashed_itself(group, instance, run.incarnation)
        if not (crashed_itself or run.killed):
            stderr = scrub(run.stderr_path.read_text(errors="replace"), self._urls).strip().splitlines()[-15:]
            detail = "\n".join(stderr) or "(nothing on its standard error)"
            self._failure = InstanceFailed(
                f"consumer {group} instance {instance} exited with code {code}; its last words:\n{detail}"
            )
            return
        if not run.killed:
            self._journals[group].log(Kind.KILLED, time.monotonic(), instance, flag=run.incarnation)
        consumer = self.scenario.consumer(group)
        await asyncio.sleep(consumer.crash.restart_after if consumer.crash else 0.0)
        if not self._stopping:
            await self._spawn(group, instance)

    def _crashed_itself(self, group: str, instance: int, incarnation: int) -> bool:
        path = self.groups[group].journal(self.folder, instance, incarnation)
        entries = entries_of(path.read_bytes())
        return entries.size > 0 and entries["kind"][-1] == Kind.CRASHING

    async def _kill_at(self, consumer: Consumer, at: float, rng) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        crash = consumer.crash
        assert crash is not None
        live = sorted(instance for (name, instance) in self._running if name == consumer.name)
        target = int(crash.instance) if crash.instance != "random" else None
        if target is None and live:
            target = live[int(rng.integers(len(live)))]
        run = self._running.get((consumer.name, target)) if target is not None else None
        journal = self._journals[consumer.name]
        if run is not None and (
            run.process.returncode is not None or self._crashed_itself(consumer.name, target, run.incarnation)
        ):
            run = None  # it has just crashed by itself: down already, as far as this crash is concerned
        if run is None:
            journal.log(Kind.MISSED_CRASH, time.monotonic(), NO_INSTANCE if target is None else target)
            return
        run.killed = True
        with contextlib.suppress(ProcessLookupError):
            run.process.kill()
        journal.log(Kind.KILLED, time.monotonic(), target, flag=run.incarnation)


def _holds_an_entry(path: Path) -> bool:
    """Whether the journal at ``path`` exists and holds an entry (an instance's first is READY)."""
    try:
        with path.open("rb") as stream:
            return entries_of(stream.read(ENTRY.itemsize)).size > 0
    except FileNotFoundError:
        return False
