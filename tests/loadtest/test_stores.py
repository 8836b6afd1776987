"""The state and dedup stores against real Redis and PostgreSQL: the engine's rules, applied for real.

Every test creates its group's store under a random prefix and drops it in a
``finally``, so that parallel workers never meet and nothing is left behind.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import psycopg
import pytest
import redis.asyncio as redis

from busim.engine.effects import EffectPlan
from busim.engine.records import Outcome
from busim.loadtest.stores import open_admin, open_store, refusals, store_kind
from busim.loadtest.stores.base import RETRY, EffectTable, Store, StoreAdmin
from busim.loadtest.stores.memory import MemoryIds
from busim.loadtest.stores.postgres import table_names
from busim.loadtest.stores.redis import group_key
from busim.scenario.schema import Consumer, Dedup
from tests.conftest import consumer, scenario

TIMEOUT_S = 20.0
GROUP = "worker"
KINDS = ["redis", "postgres"]
APPLIED, REJECTED, SKIPPED = Outcome.APPLIED, Outcome.REJECTED, Outcome.SKIPPED


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, TIMEOUT_S))


def effects_of(items: list[int], **fields: Any) -> tuple[Consumer, EffectTable]:
    """A consumer of Job events with ``fields`` (state, effects, ...) and its table for messages of ``items``."""
    built = scenario([consumer(**fields)]).consumers[0]
    return built, EffectTable.of(EffectPlan(built, {"item": np.array(items)}))


TRANSFERS = {
    "Job": {
        "key": "item",
        "fields": {name: {"uniform_int": {"low": 1, "high": 3}} for name in ("item", "other", "quantity")},
    }
}


def transfers(messages: int, seed: int, **fields: Any) -> tuple[Consumer, EffectPlan]:
    """Messages each moving ``quantity`` of stock from ``item`` to ``other``, refused below 0, and counting sales:
    three effects over two counters, on slots that differ in order from one message to the next."""
    built = scenario(
        [
            consumer(
                state={"stock": {"initial": 4}, "sold": {}},
                effects=[
                    {"counter": "stock", "key": "other", "add": "quantity"},
                    {"counter": "sold", "key": "item", "add": "quantity"},
                    {"counter": "stock", "key": "item", "add": "-quantity", "floor": 0},
                ],
                **fields,
            )
        ],
        events=TRANSFERS,
    ).consumers[0]
    rng = np.random.default_rng(seed)
    return built, EffectPlan(built, {name: rng.integers(1, 4, messages) for name in ("item", "other", "quantity")})


def stock(initial: int, floor: int | None = None, **fields: Any) -> tuple[Consumer, EffectTable]:
    """Two messages, each taking one unit of item 1's stock."""
    return effects_of(
        [1, 1],
        state={"stock": {"initial": initial}},
        effects=[{"counter": "stock", "key": "item", "add": -1, "floor": floor}],
        **fields,
    )


def url_of(kind: str, request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("redis_url" if kind == "redis" else "postgres_url")


@asynccontextmanager
async def group_store(
    kind: str, url: str, consumer: Consumer, table: EffectTable, instances: int = 1
) -> AsyncIterator[tuple[StoreAdmin, list[Store], str]]:
    """The group's store, created, with ``instances`` connected views; dropped on the way out."""
    prefix = f"busim-test-{secrets.token_hex(6)}"
    admin = open_admin(kind, url, consumer, table, prefix, GROUP)  # type: ignore[arg-type]
    stores: list[Store] = []
    try:
        await admin.create()
        for instance in range(instances):
            stores.append(open_store(kind, url, consumer, table, prefix, GROUP, instance))  # type: ignore[arg-type]
            await stores[-1].connect()
        yield admin, stores, prefix
    finally:
        for store in stores:
            await store.close()
        await admin.drop()


async def commit(store: Store, message: int) -> int:
    return (await store.commit(message, await store.begin(message))).outcome


@pytest.mark.parametrize("kind", KINDS)
def test_atomic_effects_are_all_or_none_at_the_floor(kind: str, request: pytest.FixtureRequest) -> None:
    """Stock 2, three sales of one: the third is refused whole (its sale is not counted), item 2 untouched."""
    url = url_of(kind, request)
    table_fields = {
        "state": {"sold": {}, "stock": {"initial": 2}},
        "effects": [
            {"counter": "sold", "key": "item", "add": 1},
            {"counter": "stock", "key": "item", "add": -1, "floor": 0},
        ],
        "idempotency": "dedup" if kind == "postgres" else "none",
    }
    built, table = effects_of([1, 1, 1, 2], **table_fields)

    async def scenario_run() -> tuple[list[int], list[np.ndarray]]:
        async with group_store(kind, url, built, table) as (admin, [store], _):
            outcomes = [await commit(store, message) for message in range(3)]
            return outcomes, await admin.counters()

    outcomes, (sold, remaining) = run(scenario_run())
    assert outcomes == [APPLIED, APPLIED, REJECTED]
    assert sold.tolist() == [2, 0] and remaining.tolist() == [0, 2]
    assert sold.dtype == np.int64


@pytest.mark.parametrize("kind", KINDS)
def test_read_modify_write_loses_the_overwritten_update(kind: str, request: pytest.FixtureRequest) -> None:
    url = url_of(kind, request)
    built, table = stock(
        10, effects_isolation="read-modify-write", idempotency="dedup" if kind == "postgres" else "none"
    )

    async def interleave() -> tuple[list[int], list[int], int]:
        async with group_store(kind, url, built, table, instances=2) as (admin, [first, second], _):
            begun = [await first.begin(0), await second.begin(1)]  # both read 10
            outcomes = [(await first.commit(0, begun[0])).outcome, (await second.commit(1, begun[1])).outcome]
            [values] = await admin.counters()
            return outcomes, [first.lost_updates, second.lost_updates], int(values[0])

    outcomes, lost_updates, value = run(interleave())
    assert outcomes == [APPLIED, APPLIED]
    assert lost_updates == [0, 1]
    assert value == 9  # the last write: 10 - 1, over the first one's 9


@pytest.mark.parametrize("kind", KINDS)
def test_read_modify_write_checks_the_floor_against_its_read(kind: str, request: pytest.FixtureRequest) -> None:
    """One unit left and two concurrent sales: both pass the floor they read (an oversell the record shows)."""
    url = url_of(kind, request)
    built, table = stock(1, floor=0, effects_isolation="read-modify-write")

    async def interleave() -> tuple[list[int], int]:
        async with group_store(kind, url, built, table) as (admin, [store], _):
            begun = [await store.begin(0), await store.begin(1)]
            outcomes = [(await store.commit(message, begun[message])).outcome for message in (0, 1)]
            [values] = await admin.counters()
            return outcomes, int(values[0])

    assert run(interleave()) == ([APPLIED, APPLIED], 0)


@pytest.mark.parametrize("kind", KINDS)
def test_optimistic_write_retries_after_a_concurrent_change(kind: str, request: pytest.FixtureRequest) -> None:
    url = url_of(kind, request)
    built, table = stock(10, effects_isolation="optimistic", idempotency="dedup" if kind == "postgres" else "none")

    async def interleave() -> tuple[list[int], list[int]]:
        async with group_store(kind, url, built, table, instances=2) as (admin, [first, second], _):
            begun = [await first.begin(0), await second.begin(1)]
            outcomes = [(await first.commit(0, begun[0])).outcome, (await second.commit(1, begun[1])).outcome]
            [after_conflict] = await admin.counters()
            outcomes.append(await commit(second, 1))  # processed again: reads 9
            [values] = await admin.counters()
            assert first.lost_updates == second.lost_updates == 0
            return outcomes, [int(after_conflict[0]), int(values[0])]

    outcomes, values = run(interleave())
    assert outcomes == [APPLIED, RETRY, APPLIED]
    assert values == [9, 8]  # the refused write wrote nothing


def _dedup_rows(url: str, prefix: str) -> list[int]:
    with psycopg.connect(url) as connection:
        query = f'SELECT message FROM "{table_names(prefix, GROUP).dedup}" ORDER BY message'
        return [message for (message,) in connection.execute(query)]


def test_postgres_commits_the_effects_and_the_id_together(postgres_url: str) -> None:
    """Two instances commit the same message: applied once, then skipped, in one transaction each."""
    built, table = stock(10, idempotency="dedup")
    assert store_kind(built) == "postgres"

    async def twice() -> tuple[list[int], int, list[int]]:
        async with group_store("postgres", postgres_url, built, table, instances=2) as (admin, [one, other], prefix):
            outcomes = [await commit(one, 0), await commit(other, 0)]
            [values] = await admin.counters()
            return outcomes, int(values[0]), _dedup_rows(postgres_url, prefix)

    assert run(twice()) == ([APPLIED, SKIPPED], 9, [0])


def test_postgres_records_the_id_of_a_refused_message(postgres_url: str) -> None:
    """As in the engine, a message whose effects a floor refused was processed: its id is recorded."""
    built, table = stock(0, floor=0, idempotency="dedup")

    async def refused() -> tuple[list[int], list[int]]:
        async with group_store("postgres", postgres_url, built, table) as (_, [store], prefix):
            outcomes = [await commit(store, 0), await commit(store, 0)]
            return outcomes, _dedup_rows(postgres_url, prefix)

    assert run(refused()) == ([REJECTED, SKIPPED], [0])


def test_postgres_failed_commit_records_no_id(postgres_url: str) -> None:
    """A commit that fails after recording the id rolls the id back with it: neither or both."""
    built, table = stock(10, idempotency="dedup")

    async def failing() -> tuple[list[int], int]:
        async with group_store("postgres", postgres_url, built, table) as (admin, [store], prefix):
            with psycopg.connect(postgres_url, autocommit=True) as connection:
                connection.execute(f'DELETE FROM "{table_names(prefix, GROUP).state}"')
            with pytest.raises(psycopg.errors.RaiseException, match="create the store first"):
                await commit(store, 0)
            rows = _dedup_rows(postgres_url, prefix)
            await admin.create()  # the counters back, the ids emptied
            return rows, await commit(store, 0)

    assert run(failing()) == ([], APPLIED)


def test_postgres_forgets_ids_after_the_ttl(postgres_url: str) -> None:
    built, table = stock(10, idempotency="dedup", dedup={"ttl": 1.0})  # long enough for a loaded machine's commit

    async def expiring() -> tuple[list[int], int]:
        async with group_store("postgres", postgres_url, built, table) as (admin, [store], _):
            outcomes = [await commit(store, 0), await commit(store, 0)]
            await asyncio.sleep(1.1)
            outcomes.append(await commit(store, 0))
            [values] = await admin.counters()
            return outcomes, int(values[0])

    assert run(expiring()) == ([APPLIED, SKIPPED, APPLIED], 8)


@pytest.mark.parametrize("ttl", [0, 60])
def test_redis_id_recorded_after_the_effects_can_miss(ttl: int, redis_url: str) -> None:
    """An instance killed between its effects and recording the id: the next delivery applies them again."""
    built, table = stock(10, idempotency="dedup", dedup={"atomic_with_effects": False, "ttl": ttl})
    assert store_kind(built) == "redis"

    async def crash_between() -> tuple[list[int], int]:
        async with group_store("redis", redis_url, built, table, instances=2) as (admin, [killed, other], _):
            outcomes = [await commit(killed, 0)]  # ... and killed before record()
            outcomes.append(await commit(other, 0))  # the redelivery: a duplicate effect
            await other.record(0)
            outcomes.append(await commit(killed, 0))
            [values] = await admin.counters()
            return outcomes, int(values[0])

    assert run(crash_between()) == ([APPLIED, APPLIED, SKIPPED], 8)


def test_redis_can_record_the_id_with_the_effects(redis_url: str) -> None:
    """Opened on Redis, a consumer that records its ids with its effects does so in the commit's script,
    refused messages included, and record() has nothing left to do."""
    built, table = stock(0, floor=0, idempotency="dedup")

    async def refused() -> list[int]:
        async with group_store("redis", redis_url, built, table, instances=2) as (_, [one, other], _):
            outcomes = [await commit(one, 0)]
            await one.record(0)
            return [*outcomes, await commit(other, 0), await commit(other, 1)]

    assert run(refused()) == [REJECTED, SKIPPED, REJECTED]


def test_redis_forgets_ids_after_the_ttl(redis_url: str) -> None:
    built, table = stock(10, idempotency="dedup", dedup={"atomic_with_effects": False, "ttl": 1.0})

    async def expiring() -> list[int]:
        async with group_store("redis", redis_url, built, table) as (_, [store], _):
            outcomes = [await commit(store, 0)]
            await store.record(0)
            outcomes.append(await commit(store, 0))
            await asyncio.sleep(1.1)
            outcomes.append(await commit(store, 0))
            return outcomes

    assert run(expiring()) == [APPLIED, SKIPPED, APPLIED]


@pytest.mark.parametrize("atomic_with_effects", [True, False])
def test_in_memory_ids_are_the_instance_own(atomic_with_effects: bool, redis_url: str) -> None:
    built, table = stock(10, idempotency="dedup", dedup={"durable": False, "atomic_with_effects": atomic_with_effects})
    assert store_kind(built) == "redis"

    async def two_instances() -> tuple[list[int], int]:
        async with group_store("redis", redis_url, built, table, instances=2) as (admin, [one, other], _):
            outcomes = [await commit(one, 0)]
            await one.record(0)
            outcomes += [await commit(one, 0), await commit(other, 0)]
            [values] = await admin.counters()
            return outcomes, int(values[0])

    assert run(two_instances()) == ([APPLIED, SKIPPED, APPLIED], 8)


def test_record_after_a_skip_does_not_renew_the_id(redis_url: str) -> None:
    """record() stores only the ids commit left unrecorded: a skipped delivery's id keeps its expiry."""
    built, table = stock(10, idempotency="dedup", dedup={"atomic_with_effects": False, "ttl": 60})

    async def skip_then_record() -> int:
        async with group_store("redis", redis_url, built, table) as (_, [store], prefix):
            await commit(store, 0)
            await store.record(0)
            client = redis.from_url(redis_url)
            try:
                key = f"{group_key(prefix, GROUP)}:dedup:0"
                await client.pexpire(key, 5_000)
                assert await commit(store, 0) == SKIPPED
                await store.record(0)
                return await client.pttl(key)
            finally:
                await client.aclose()

    assert 0 < run(skip_then_record()) <= 5_000


async def _redis_keys(url: str, prefix: str) -> list[bytes]:
    client = redis.from_url(url)
    try:
        return [key async for key in client.scan_iter(match=f"{prefix}*")]
    finally:
        await client.aclose()


def _postgres_objects(url: str, prefix: str) -> list[str]:
    base = table_names(prefix, GROUP).state.removesuffix("_state")
    with psycopg.connect(url) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE %s", [f"{base}%"]
        ).fetchall()
        functions = connection.execute("SELECT proname FROM pg_proc WHERE proname LIKE %s", [f"{base}%"]).fetchall()
    return [name for (name,) in tables + functions]


@pytest.mark.parametrize("kind", KINDS)
def test_drop_leaves_nothing_and_is_safe_twice(kind: str, request: pytest.FixtureRequest) -> None:
    url = url_of(kind, request)
    dedup = {"ttl": 60} if kind == "postgres" else {"atomic_with_effects": False, "ttl": 60}
    built, table = stock(10, idempotency="dedup", dedup=dedup, effects_isolation="optimistic")

    async def leftovers() -> tuple[list[object], list[object]]:
        async with group_store(kind, url, built, table) as (admin, [store], prefix):
            await commit(store, 0)
            await store.record(0)
            before = await _redis_keys(url, prefix) if kind == "redis" else _postgres_objects(url, prefix)
            await admin.drop()
        after = await _redis_keys(url, prefix) if kind == "redis" else _postgres_objects(url, prefix)
        return before, after

    before, after = run(leftovers())
    assert len(before) == (2 if kind == "redis" else 3)  # the counter and the id; two tables and the function
    assert after == []


def test_drop_before_create_is_safe(redis_url: str, postgres_url: str) -> None:
    built, table = stock(10)

    async def drop_only() -> None:
        for kind, url in (("redis", redis_url), ("postgres", postgres_url)):
            await open_admin(kind, url, built, table, f"busim-test-{secrets.token_hex(6)}", GROUP).drop()  # type: ignore[arg-type]

    run(drop_only())


def test_store_kind_follows_where_the_id_is_recorded() -> None:
    def kind(**fields: Any) -> str:
        return store_kind(scenario([consumer(**fields)]).consumers[0])

    assert kind() == "redis"
    assert kind(idempotency="dedup") == "postgres"
    assert kind(idempotency="dedup", dedup={"atomic_with_effects": False}) == "redis"
    assert kind(idempotency="dedup", dedup={"durable": False}) == "redis"


def test_a_shared_store_with_a_capacity_is_refused() -> None:
    def refused(**dedup: Any) -> list[str]:
        built = scenario([consumer(idempotency="dedup", dedup=dedup)]).consumers[0]
        return [refusal.path for refusal in refusals(built, 3)]

    assert refused(capacity=100) == ["consumers[3].dedup.capacity"]
    assert refused(capacity=100, durable=False) == []
    assert refused() == []


def test_memory_ids_evict_the_least_recently_seen() -> None:
    ids = MemoryIds(Dedup(capacity=2, durable=False))
    ids.record(1)
    ids.record(2)
    assert ids.seen(1)  # a use: 2 is now the least recently seen
    ids.record(3)
    assert [ids.seen(message) for message in (1, 2, 3)] == [True, False, True]


def test_table_names_are_short_plain_and_distinct() -> None:
    long_prefix = "busim-" + "Flash:Sale-" * 10 + "20261206-0530-x7f3"
    names = [table_names(long_prefix, group) for group in ("a-b", "a_b")]
    for name in names:
        for identifier in (name.state, name.dedup, name.commit):
            assert len(identifier) <= 63
            assert set(identifier) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")
    assert names[0].state != names[1].state


@pytest.mark.parametrize("isolation", ["atomic", "read-modify-write", "optimistic"])
@pytest.mark.parametrize("kind", KINDS)
def test_one_at_a_time_the_store_agrees_with_the_engine(
    kind: str, isolation: str, request: pytest.FixtureRequest
) -> None:
    """Without concurrency every isolation is the engine's sequential rule: same outcomes, same counters."""
    url = url_of(kind, request)
    built, plan = transfers(
        60, seed=7, effects_isolation=isolation, idempotency="dedup" if kind == "postgres" else "none"
    )
    expected_state = plan.new_state()
    expected = [APPLIED if plan.apply(expected_state, message) else REJECTED for message in range(60)]
    assert REJECTED in expected and APPLIED in expected

    async def one_at_a_time() -> tuple[list[int], list[list[int]]]:
        async with group_store(kind, url, built, EffectTable.of(plan)) as (admin, [store], _):
            outcomes = [await commit(store, message) for message in range(60)]
            return outcomes, [values.tolist() for values in await admin.counters()]

    assert run(one_at_a_time()) == (expected, expected_state)


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_atomic_commits_neither_deadlock_nor_lose(kind: str, request: pytest.FixtureRequest) -> None:
    """Two instances of four workers each, writing the same few keys in varying orders: every change counted."""
    url = url_of(kind, request)
    messages = 300
    built, plan = transfers(messages, seed=11, idempotency="dedup" if kind == "postgres" else "none")

    async def racing() -> tuple[list[int], list[list[int]]]:
        async with group_store(kind, url, built, EffectTable.of(plan), instances=2) as (admin, stores, _):
            pending = list(range(messages))
            outcomes = [0] * messages

            async def worker(store: Store) -> None:
                while pending:
                    message = pending.pop()
                    outcomes[message] = await commit(store, message)

            await asyncio.gather(*(worker(store) for store in stores for _ in range(4)))
            return outcomes, [values.tolist() for values in await admin.counters()]

    outcomes, counters = run(racing())
    accepted = plan.new_state()
    for message, outcome in enumerate(outcomes):
        assert outcome in (APPLIED, REJECTED)
        if outcome == APPLIED:
            plan.add(accepted, message)
    assert counters == accepted
    stock, _ = counters
    assert min(stock) >= 0
