"""What every broker driver does, on the run's side and on a consumer instance's side.

A driver realises a scenario's broker on a real one. On the run's side
(the load generator's process) it creates the run's own resources, publishes
copies of messages, reports what the broker dead-lettered or dropped, and
deletes everything it created. On a consumer instance's side it attaches to
one consumer group's queue and hands deliveries to the instance's workers.

A message body carries the copy's number and, for a copy a consumer emitted,
the message it is in the run's plan (:func:`encode_copy`). The copy table of
:class:`~busim.loadtest.schedule.Schedule` tells which message a published
copy is a copy of and why it was sent; an emitted copy's number is the
emitter's own (:mod:`busim.loadtest.emissions`). Everything else a consumer
needs (the message's fields, its effects) is in the run's plan, keyed by
message.

Names: every resource a run creates carries the run's name
(:attr:`RunNames.prefix`), so that clean-up deletes exactly what the run
created and nothing else.
"""

from __future__ import annotations

import asyncio
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from busim.scenario.schema import Scenario

_BODY = struct.Struct("<qq")  # the copy's number, and an emitted copy's message in the plan (-1 otherwise)


def encode_copy(copy: int, planned: int = -1) -> bytes:
    """A message body: the copy's number, and for an emitted copy its message in the run's plan."""
    return _BODY.pack(copy, planned)


def decode_copy(body: bytes) -> int:
    return _BODY.unpack_from(body)[0]


def decode_planned(body: bytes) -> int:
    """An emitted copy's message in the run's plan; -1 for a copy the load generator published."""
    return _BODY.unpack_from(body)[1]


@dataclass(frozen=True)
class Refusal:
    """A scenario key a driver cannot realise on its broker, and why."""

    path: str  # the key path, as in error messages: broker.outages, consumers[0].emits
    reason: str


@dataclass(frozen=True)
class RunNames:
    """The names of one run's resources on the broker and in the state stores."""

    run_id: str  # busim-<scenario>-<date>-<time>-<random>, unique per run

    @property
    def prefix(self) -> str:
        return self.run_id

    def queue(self, group: str) -> str:
        return f"{self.run_id}.{group}"

    def dead_letters(self, group: str) -> str:
        return f"{self.run_id}.{group}.dead-letters"

    def event(self, event: str) -> str:
        return f"{self.run_id}.{event}"


@dataclass(frozen=True)
class Outgoing:
    """One copy of a message to publish: its number (the body), its message, and its event (the routing).

    Copies of one message (an injected duplicate, a resend) share ``message``: a broker that deduplicates
    by message id (NATS ``Nats-Msg-Id``) sees them as one.
    """

    copy: int
    message: int
    event: str
    planned: int = -1  # an emitted copy's message in the run's plan (what its effects are), carried in the body


@dataclass
class Delivery:
    """One delivery handed to a consumer instance."""

    copy: int
    attempt: int  # the broker's delivery count (1 = first), or 0 where the broker does not tell
    redelivered: bool  # the broker's redelivered flag (or attempt > 1)
    token: object  # the driver's handle, for the ack
    planned: int = -1  # an emitted copy's message in the run's plan (decode_planned); -1 for a published copy


@dataclass(frozen=True)
class BrokerFate:
    """What the broker did with a copy besides delivering it, as it reports after the run."""

    group: str
    copy: int
    kind: str  # "dead_letter": moved to the dead-letter queue; "dropped": dropped by a length limit
    reason: str  # the broker's word: delivery_limit, maxlen, max_deliver, ...
    at_s: float  # when, in the run's clock; NaN where the broker does not say


_Item = TypeVar("_Item")


@dataclass
class _Batch(Generic[_Item]):
    items: list[_Item]
    sent: asyncio.Future[None]


class AckPipeline(Generic[_Item]):
    """Acks, each awaited by the worker that processed its delivery, sent together: one write for many.

    A worker hands its delivery's ack over only after its own processing, as
    before; the acks handed over while one batch is being written go out
    together in the next write. :meth:`send` returns when its item's batch
    was written (or raises what writing it raised), so that the worker logs
    its ack only once it is out of the process. Per message, a Python
    round trip to the broker's client becomes a list append.
    """

    def __init__(self, write: Callable[[list[_Item]], Awaitable[None]]) -> None:
        self._write = write
        self._open: _Batch[_Item] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def send(self, item: _Item) -> None:
        batch = self._open
        if batch is None:
            batch = self._open = _Batch([], asyncio.get_running_loop().create_future())
        batch.items.append(item)
        if self._writer is None:
            # Started, not run: the acks of the workers that finish in this turn of the loop join the batch.
            self._writer = asyncio.get_running_loop().create_task(self._write_all())
        await asyncio.shield(batch.sent)

    async def _write_all(self) -> None:
        try:
            while (batch := self._open) is not None:
                self._open = None
                try:
                    await self._write(batch.items)
                except Exception as error:
                    batch.sent.set_exception(error)
                    batch.sent.exception()  # seen here: a worker may have stopped waiting
                else:
                    batch.sent.set_result(None)
        finally:
            self._writer = None


class Consumption(ABC):
    """One consumer instance's attachment to its group's queue."""

    # Push drivers (RabbitMQ) deliver up to their prefetch whatever the workers do; pull drivers are asked
    # for more only when a worker is free and nothing received waits.
    push: ClassVar[bool] = False

    @abstractmethod
    async def start(self) -> None:
        """Connect and attach to the group's queue; deliveries may follow."""

    @abstractmethod
    async def receive(self, free: int) -> list[Delivery]:
        """The next deliveries, waiting until there is at least one; ``free`` workers are idle.

        Return an empty list after at most about a second with nothing to
        deliver, so that the instance can look at the clock.
        """

    @abstractmethod
    async def ack(self, delivery: Delivery) -> None:
        """Acknowledge ``delivery``: the broker will not deliver it again."""

    @abstractmethod
    async def close(self) -> None:
        """Detach and disconnect; unacknowledged deliveries go back to the broker."""


class Driver(ABC):
    """A broker, as one run uses it."""

    schemes: ClassVar[tuple[str, ...]]  # URL schemes that select this driver
    presets: ClassVar[tuple[str, ...]]  # scenario presets it realises
    title: ClassVar[str]  # the broker, for people: "RabbitMQ"

    def __init__(self, url: str, scenario: Scenario, names: RunNames) -> None:
        self.url = url
        self.scenario = scenario
        self.names = names
        # The run's clock, seconds since it started, for the times of fates; the run sets it when it starts.
        self.clock: Callable[[], float] = time.monotonic

    @classmethod
    @abstractmethod
    def refusals(cls, scenario: Scenario) -> list[Refusal]:
        """Every key of ``scenario`` this driver cannot realise (beyond what every driver refuses)."""

    @abstractmethod
    async def connect(self) -> None:
        """Connect the run's side (publishing, setting up, reading fates)."""

    @abstractmethod
    async def setup(self) -> None:
        """Create every queue, exchange, stream and consumer group the run needs, named after the run."""

    @abstractmethod
    async def publish(self, batch: Sequence[Outgoing]) -> list[bool]:
        """Publish ``batch`` in order; per copy, whether the broker accepted it (a full queue may refuse).

        Returns when the broker has confirmed every copy of the batch.
        """

    async def pending(self, group: str) -> int | None:
        """Copies the broker still holds for ``group`` and will deliver without anyone's help (ready, or
        unacknowledged and due to come back); None where the broker does not say."""
        return None

    @abstractmethod
    async def fates(self) -> list[BrokerFate]:
        """Copies the broker dead-lettered or dropped, as far as it tells; read after the consumers stop."""

    @abstractmethod
    async def teardown(self) -> None:
        """Delete everything :meth:`setup` created; safe to call twice, or after a failed setup."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect the run's side."""

    @abstractmethod
    def consumption(self, group: str, instance: int) -> Consumption:
        """An instance's attachment to ``group``'s queue (called in the instance's own process)."""
