"""Which store a consumer group uses, opening it, and the dedup settings no store can realise.

PostgreSQL where the consumer records its processed ids with its effects
(``idempotency: dedup`` with ``dedup.atomic_with_effects: true``, durable):
one transaction holds both, the idempotent-consumer pattern. Redis
everywhere else: one Lua script per commit, and the dedup id, where it is
not recorded with the effects, in a key of its own written after them.

The clients are imported only where a store of their kind is opened, so
that a consumer process loads one of them.
"""

from __future__ import annotations

from typing import Literal

from busim.loadtest.drivers.base import Refusal
from busim.loadtest.stores.base import EffectTable, Store, StoreAdmin
from busim.scenario.schema import Consumer

StoreKind = Literal["redis", "postgres"]
DEFAULT_URLS: dict[StoreKind, str] = {
    "redis": "redis://127.0.0.1:6379/0",
    "postgres": "postgresql://postgres@127.0.0.1:5432/postgres",
}


def store_kind(consumer: Consumer) -> StoreKind:
    dedup = consumer.dedup if consumer.idempotency == "dedup" else None
    if dedup is not None and dedup.durable and dedup.atomic_with_effects:
        return "postgres"
    return "redis"


def refusals(consumer: Consumer, index: int) -> list[Refusal]:
    """The settings of ``consumers[index]`` its store cannot realise."""
    dedup = consumer.dedup if consumer.idempotency == "dedup" else None
    if dedup is not None and dedup.durable and dedup.capacity != "unlimited":
        return [
            Refusal(
                f"consumers[{index}].dedup.capacity",
                "a shared store that evicts the least recently seen id is not realised on Redis or PostgreSQL;"
                " remove capacity, or set durable: false (each instance then keeps its own ids, evicting them)",
            )
        ]
    return []


def open_store(
    kind: StoreKind, url: str, consumer: Consumer, table: EffectTable, prefix: str, group: str, instance: int
) -> Store:
    """``instance``'s store of ``group`` in the run ``prefix``; not yet connected: call :meth:`Store.connect`.

    Neither store needs to know the instance: an in-memory dedup store is
    the process's own, whichever instance the process is.
    """
    if kind == "postgres":
        from busim.loadtest.stores.postgres import PostgresStore

        return PostgresStore(url, consumer, table, prefix, group)
    from busim.loadtest.stores.redis import RedisStore

    return RedisStore(url, consumer, table, prefix, group)


def open_admin(
    kind: StoreKind, url: str, consumer: Consumer, table: EffectTable, prefix: str, group: str
) -> StoreAdmin:
    """The run's side of ``group``'s store; each of its calls opens and closes its own connection."""
    if kind == "postgres":
        from busim.loadtest.stores.postgres import PostgresAdmin

        return PostgresAdmin(url, table, prefix, group)
    from busim.loadtest.stores.redis import RedisAdmin

    return RedisAdmin(url, table, prefix, group)
