"""One consumer instance of a real run: an OS process with ``concurrency`` workers.

The supervisor starts it as ``python -m busim.loadtest.worker SPEC`` with the
broker's and stores' URLs in the environment (never in a file: they may
carry passwords). The instance attaches to its group's queue, and each worker
takes a delivery, spends its ``processing_time`` in real time, commits its
effects to the state store, and acks it. The instance crashes itself (SIGKILL,
its own) where the scenario's ``crash`` says it crashes after a processing,
before the ack; crashes at a time come from the supervisor.

Every step is logged to the instance's journal before the next one starts,
so that the run can tell afterwards what a killed instance had received,
processed and acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from busim.engine.chains import EMITTING_OUTCOMES
from busim.engine.randomness import RandomStreams
from busim.engine.sampling import bernoulli_sampler, duration_sampler
from busim.loadtest.drivers import driver_class
from busim.loadtest.drivers.base import Consumption, Delivery, Driver, Outgoing, RunNames
from busim.loadtest.emissions import emitted_copy, is_emitted
from busim.loadtest.faults import crash_counts
from busim.loadtest.journal import Journal, Kind
from busim.loadtest.stores import open_store
from busim.loadtest.stores.base import RETRY, EffectTable, Store
from busim.scenario.schema import Consumer, Scenario

# The environment variables that carry the URLs to an instance.
BROKER_URL_VARIABLE = "BUSIM_BROKER_URL"
STORE_URL_VARIABLE = "BUSIM_STORE_URL"


@dataclass(frozen=True)
class InstanceSpec:
    """What an instance needs besides the URLs; written as JSON by the supervisor."""

    scenario: dict  # the scenario as JSON data, with its seed
    scheme: str  # the broker URL's scheme: picks the driver
    run_id: str
    group: str
    group_index: int  # the group's position in the scenario's consumers
    instance: int
    incarnation: int  # 0 for the first start, then one more per restart
    journal: str  # the path of this incarnation's journal
    effects: str  # the group's EffectTable (.npz), over the run's plan of messages
    copies: str  # per copy of the schedule, its message (.npy)
    locals: str  # per message of the run's plan, its group-local index in this group, or -1 (.npy)
    emits: list[str]  # per emits entry, per group-local message, the planned message its processing emits (.npy)
    store: str  # "redis" or "postgres"
    processed_before: int  # processings the instance's earlier incarnations finished (for crash.after_messages)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> InstanceSpec:
        return cls(**json.loads(path.read_text()))


class Instance:
    """A consumer instance's workers, between its consumption and its store."""

    def __init__(
        self, spec: InstanceSpec, consumer: Consumer, consumption: Consumption, store: Store, emitter: Driver | None
    ) -> None:
        self._spec = spec
        self._consumer = consumer
        self._consumption = consumption
        self._store = store
        self._emitter = emitter  # the broker, to publish emitted copies on; None for a consumer that emits nothing
        self._journal = Journal(Path(spec.journal), spec.instance, spec.incarnation)
        # In memory: a memory-mapped array costs microseconds per item read.
        self._copy_message = np.load(spec.copies)
        self._local = np.load(spec.locals)
        self._emits = [
            (entry.event, EMITTING_OUTCOMES[entry.when], np.load(path))
            for entry, path in zip(consumer.emits, spec.emits)
        ]
        self._emitted = 0
        streams = RandomStreams.from_seed(spec.scenario["seed"])
        names = ("consumer", consumer.name, str(spec.instance), str(spec.incarnation))
        self._processing_s = duration_sampler(consumer.processing_time, streams.generator(*names, "processing"))
        crash = consumer.crash
        self._crash_draw = bernoulli_sampler(crash.probability if crash else 0.0, streams.generator(*names, "crash"))
        self._crash_after = crash_counts(consumer, streams, spec.instance)
        self._processed = spec.processed_before
        self._seq = 0
        self._waiting: asyncio.Queue[tuple[int, Delivery]] = asyncio.Queue()
        self._free = consumer.concurrency
        self._changed = asyncio.Event()  # a worker took a delivery or became free: a pull may be due

    async def serve(self) -> None:
        """Take deliveries until the process is told to stop (SIGTERM) or killed."""
        await self._store.connect()
        await self._consumption.start()
        self._journal.log(Kind.READY, time.monotonic())
        tasks = [asyncio.create_task(self._work()) for _ in range(self._consumer.concurrency)]
        tasks.append(asyncio.create_task(self._receive()))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a worker or the receiver failed: the instance fails, with its traceback
        finally:
            for task in tasks:
                task.cancel()

    async def _receive(self) -> None:
        consumption = self._consumption
        journal = self._journal
        waiting = self._waiting
        while True:
            while not consumption.push and not (waiting.empty() and self._free):
                self._changed.clear()
                await self._changed.wait()
            deliveries = await consumption.receive(self._free)
            if not deliveries:
                continue
            first = self._seq + 1
            self._seq += len(deliveries)
            # The whole receive in one write: each entry is in the kernel before its delivery is worked on.
            journal.log_all(
                Kind.RECEIVED,
                time.monotonic(),
                [
                    (seq, delivery.copy, delivery.attempt, int(delivery.redelivered))
                    for seq, delivery in enumerate(deliveries, first)
                ],
            )
            for seq, delivery in enumerate(deliveries, first):
                waiting.put_nowait((seq, delivery))

    async def _work(self) -> None:
        journal, store, local = self._journal, self._store, self._local
        while True:
            seq, delivery = await self._waiting.get()
            self._free -= 1
            self._changed.set()
            planned = delivery.planned if is_emitted(delivery.copy) else self._copy_message[delivery.copy]
            message = int(local[planned])
            journal.log(Kind.TAKEN, time.monotonic(), seq, delivery.copy)
            begun = await store.begin(message)
            while True:
                processing_s = self._processing_s()
                if processing_s > 0:  # a no-op consumer need not give the loop a turn per message
                    await asyncio.sleep(processing_s)
                committed = await store.commit(message, begun)
                if committed.outcome != RETRY:
                    break
                journal.log(Kind.RETRIED, time.monotonic(), seq, delivery.copy)
                begun = await store.begin(message)
            outcome = committed.outcome
            if committed.lost_update:
                journal.log(Kind.LOST_UPDATE, time.monotonic(), seq, delivery.copy)
            journal.log(Kind.DONE, time.monotonic(), seq, delivery.copy, outcome=outcome)
            if self._emits:
                await self._emit(seq, message, outcome)
            self._processed += 1
            crash_draw = self._crash_draw()
            if crash_draw or self._processed in self._crash_after:
                journal.log(Kind.CRASHING, time.monotonic(), seq, delivery.copy)
                os.kill(os.getpid(), signal.SIGKILL)
            await store.record(message)  # the id, where the store records it after the effects
            try:
                await self._consumption.ack(delivery)
            except Exception as refused:
                journal.log(Kind.ACK_REFUSED, time.monotonic(), seq, delivery.copy)
                print(f"ack of copy {delivery.copy} refused: {refused!r}", file=sys.stderr)
            else:
                journal.log(Kind.ACKED, time.monotonic(), seq, delivery.copy)
            self._free += 1
            self._changed.set()

    async def _emit(self, seq: int, message: int, outcome: int) -> None:
        """Publish a copy of each event the processing's outcome emits, logged before it goes out and once the
        broker confirmed it (flag 1: the broker refused it)."""
        spec = self._spec
        assert self._emitter is not None
        for entry, (event, outcomes, planned) in enumerate(self._emits):
            if outcome not in outcomes:
                continue
            copy = emitted_copy(spec.group_index, spec.instance, spec.incarnation, self._emitted)
            self._emitted += 1
            outgoing = Outgoing(copy=copy, message=copy, event=event, planned=int(planned[message]))
            self._journal.log(Kind.EMITTING, time.monotonic(), seq, copy, entry)
            (accepted,) = await self._emitter.publish([outgoing])
            self._journal.log(Kind.EMITTED, time.monotonic(), seq, copy, entry, flag=int(not accepted))


async def _main(spec: InstanceSpec) -> None:
    scenario = Scenario.model_validate(spec.scenario)
    consumer = scenario.consumer(spec.group)
    names = RunNames(spec.run_id)
    driver = driver_class(spec.scheme)(os.environ[BROKER_URL_VARIABLE], scenario, names)
    table = EffectTable.load(Path(spec.effects))
    store = open_store(
        spec.store, os.environ[STORE_URL_VARIABLE], consumer, table, spec.run_id, spec.group, spec.instance
    )
    consumption = driver.consumption(spec.group, spec.instance)
    emitter = None
    if consumer.emits:
        await driver.connect()
        emitter = driver
    instance = Instance(spec, consumer, consumption, store, emitter)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    serving = asyncio.create_task(instance.serve())
    stopping = asyncio.create_task(stop.wait())
    orphaned = asyncio.create_task(_run_gone())
    done, _ = await asyncio.wait({serving, stopping, orphaned}, return_when=asyncio.FIRST_COMPLETED)
    serving.cancel()
    orphaned.cancel()
    if serving in done:
        serving.result()  # a failure: let it show, with its traceback, in the instance's log
    # Stopped: unacknowledged deliveries go back to the broker as the connection closes.
    closing = [consumption.close(), store.close(), *([emitter.close()] if emitter is not None else [])]
    await asyncio.gather(*closing, return_exceptions=True)


async def _run_gone() -> None:
    """Return when the run that started this instance is gone: the supervisor holds the other end of the
    instance's standard input, and the kernel closes it when the run's process dies, however it dies."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()  # nothing is ever written: this returns at end of file


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    asyncio.run(_main(InstanceSpec.read(Path(args[0]))))


if __name__ == "__main__":
    main()
