"""A consumer group's counters and processed ids on PostgreSQL: the idempotent-consumer pattern.

For a consumer whose dedup store commits with its effects
(``dedup.atomic_with_effects: true``), the processed id and the effects
commit in one transaction: both or neither, whatever kills the instance.
Each group has its own tables and function, named from the run's prefix and
the group (:func:`table_names`):

- ``<name>_state (counter, key, value, version)``: one row per counter key,
  ``counter`` the counter's index, ``key`` the key code;
- ``<name>_dedup (message, at)``: the processed ids, with when each was recorded;
- ``<name>_commit(...)``: a PL/pgSQL function that does a whole commit as one
  statement, so one round trip: record the id (``ON CONFLICT DO NOTHING``;
  already there: SKIPPED), lock the message's rows in key order (no
  deadlocks; one index lookup each), apply every effect or none with the floor checks, commit.

As in the engine (:class:`busim.engine.handler.Handler`), the id is
recorded even when a floor refuses the effects (REJECTED): the message was
processed, its outcome was the refusal. ``dedup.ttl`` treats an id recorded more
than ``ttl`` ago as absent. Values are ``bigint``: a counter pushed past
2^63 fails the commit instead of wrapping.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from busim.loadtest.stores.base import Commit, EffectTable, Store, StoreAdmin
from busim.loadtest.stores.slots import message_writes
from busim.scenario.schema import Consumer

_CONNECT_TIMEOUT_S = 5
MAX_CONNECTIONS = 4  # per instance: enough to overlap round trips, few enough for max_connections (100)
_IDENTIFIER_LENGTH = 63  # PostgreSQL truncates longer identifiers
_ISOLATIONS = {"atomic": 0, "read-modify-write": 1, "optimistic": 2}

_COMMIT_FUNCTION = """
CREATE OR REPLACE FUNCTION {commit}(
    message_id bigint, ttl_s double precision, isolation integer,  -- ttl_s: NULL without dedup, 0 forever
    slot_counters integer[], slot_keys bigint[], read_values bigint[], read_versions bigint[],
    effect_slots integer[], effect_changes bigint[], effect_floors bigint[],
    OUT outcome integer, OUT lost boolean)
LANGUAGE plpgsql AS $function$
DECLARE
    current_values bigint[] := ARRAY[]::bigint[];
    current_versions bigint[] := ARRAY[]::bigint[];
    current_value bigint;
    current_version bigint;
    new_values bigint[];
    slot_index integer;
BEGIN
    lost := false;
    IF ttl_s > 0 THEN
        INSERT INTO {dedup} AS processed (message, at) VALUES (message_id, clock_timestamp())
        ON CONFLICT (message) DO UPDATE SET at = excluded.at
        WHERE processed.at < excluded.at - make_interval(secs => ttl_s);
    ELSIF ttl_s = 0 THEN
        INSERT INTO {dedup} (message) VALUES (message_id) ON CONFLICT DO NOTHING;
    END IF;
    IF ttl_s IS NOT NULL AND NOT FOUND THEN
        outcome := 3;  -- SKIPPED: processed before
        RETURN;
    END IF;
    -- Lock the rows in the order of the slots, which is key order: two commits cannot deadlock.
    FOR slot_index IN 1 .. coalesce(array_length(slot_counters, 1), 0) LOOP
        SELECT state.value, state.version INTO current_value, current_version
        FROM {state} AS state
        WHERE state.counter = slot_counters[slot_index] AND state.key = slot_keys[slot_index]
        FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'counter % has no key % in %: create the store first',
                slot_counters[slot_index], slot_keys[slot_index], {state_text};
        END IF;
        current_values[slot_index] := current_value;
        current_versions[slot_index] := current_version;
    END LOOP;
    IF isolation = 2 AND current_versions IS DISTINCT FROM read_versions THEN
        IF ttl_s IS NOT NULL THEN
            DELETE FROM {dedup} WHERE message = message_id;  -- not processed: it will be again
        END IF;
        outcome := -1;  -- RETRY: an optimistic write met a changed version
        RETURN;
    END IF;
    new_values := CASE WHEN isolation = 1 THEN read_values ELSE current_values END;
    FOR effect IN 1 .. coalesce(array_length(effect_slots, 1), 0) LOOP
        slot_index := effect_slots[effect];
        new_values[slot_index] := new_values[slot_index] + effect_changes[effect];
        IF effect_floors[effect] IS NOT NULL AND effect_changes[effect] < 0
           AND new_values[slot_index] < effect_floors[effect] THEN
            outcome := 2;  -- REJECTED: the id stays recorded, nothing else is written
            RETURN;
        END IF;
    END LOOP;
    FOR slot_index IN 1 .. coalesce(array_length(slot_counters, 1), 0) LOOP
        UPDATE {state} AS state SET value = new_values[slot_index], version = state.version + 1
        WHERE state.counter = slot_counters[slot_index] AND state.key = slot_keys[slot_index];
    END LOOP;
    lost := isolation = 1 AND current_versions IS DISTINCT FROM read_versions;
    outcome := 1;  -- APPLIED
END
$function$
"""

_CALL = (
    "SELECT outcome, lost FROM {commit}(%s, %s, %s, %s::integer[], %s::bigint[], %s::bigint[], %s::bigint[],"
    " %s::integer[], %s::bigint[], %s::bigint[])"
)

_READ = """
SELECT state.value, state.version
FROM unnest(%s::integer[], %s::bigint[]) WITH ORDINALITY AS wanted (counter, key, slot)
CROSS JOIN LATERAL (  -- OFFSET 0 keeps it one index lookup per slot, never a scan of the table
    SELECT value, version FROM {state} WHERE counter = wanted.counter AND key = wanted.key OFFSET 0
) AS state
ORDER BY wanted.slot
"""


@dataclass(frozen=True)
class TableNames:
    state: str
    dedup: str
    commit: str


def table_names(prefix: str, group: str) -> TableNames:
    """The group's tables and function: the run's prefix and the group, lower case, ``[a-z0-9_]``, at
    most 63 characters, and a digest of both, so that names that clean up alike stay apart."""
    digest = hashlib.sha1(f"{prefix}\0{group}".encode()).hexdigest()[:8]
    cleaned = re.sub(r"[^a-z0-9_]", "_", f"{prefix}_{group}".lower())
    room = _IDENTIFIER_LENGTH - len(f"_{digest}_commit")
    base = f"{cleaned[:room]}_{digest}"
    return TableNames(state=f"{base}_state", dedup=f"{base}_dedup", commit=f"{base}_commit")


def _statement(template: str, names: TableNames) -> sql.Composed:
    return sql.SQL(template).format(
        state=sql.Identifier(names.state),
        dedup=sql.Identifier(names.dedup),
        commit=sql.Identifier(names.commit),
        state_text=sql.Literal(names.state),
    )


async def _connect(url: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)


class PostgresStore(Store):
    """One instance's view of its group's tables; a few connections, shared by its workers."""

    def __init__(self, url: str, consumer: Consumer, table: EffectTable, prefix: str, group: str) -> None:
        self.url = url
        self.table = table
        self.lost_updates = 0
        names = table_names(prefix, group)
        self._call = _statement(_CALL, names)
        self._read = _statement(_READ, names)
        dedup = consumer.dedup if consumer.idempotency == "dedup" else None
        self._ttl_s = dedup.ttl if dedup is not None else None  # None: no dedup
        self._isolation = _ISOLATIONS[consumer.effects_isolation]
        self._reads_first = consumer.effects_isolation != "atomic" and bool(table.effects)
        self._connection_count = min(consumer.concurrency, MAX_CONNECTIONS)
        self._connections: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()
        self._all: list[psycopg.AsyncConnection] = []

    async def connect(self) -> None:
        for _ in range(self._connection_count):
            connection = await _connect(self.url)
            self._all.append(connection)
            self._connections.put_nowait(connection)

    async def _fetch(self, query: sql.Composed, params: list[object]) -> list[tuple]:
        connection = await self._connections.get()
        try:
            cursor = await connection.execute(query, params)
            return await cursor.fetchall()
        finally:
            self._connections.put_nowait(connection)

    async def begin(self, message: int) -> object:
        """Read-modify-write and optimistic: the value and version of each slot the message writes."""
        if not self._reads_first:
            return None
        writes = message_writes(self.table, message)
        rows = await self._fetch(
            self._read,
            [[counter for counter, _ in writes.slots], [key_code for _, key_code in writes.slots]],
        )
        return [value for value, _ in rows], [version for _, version in rows]

    async def commit(self, message: int, begun: object) -> Commit:
        writes = message_writes(self.table, message)
        if self._reads_first and begun is None:
            raise ValueError(f"message {message}: commit without begin on a read-modify-write or optimistic store")
        read_values, read_versions = begun if self._reads_first else (None, None)  # type: ignore[misc]
        params = [
            message,
            self._ttl_s,
            self._isolation,
            [counter for counter, _ in writes.slots],
            [key_code for _, key_code in writes.slots],
            read_values,
            read_versions,
            [slot + 1 for slot, _, _ in writes.effects],
            [change for _, change, _ in writes.effects],
            [floor for _, _, floor in writes.effects],
        ]
        [(outcome, lost)] = await self._fetch(self._call, params)
        self.lost_updates += bool(lost)
        return Commit(int(outcome), bool(lost))

    async def close(self) -> None:
        for connection in self._all:
            await connection.close()
        self._all.clear()


class PostgresAdmin(StoreAdmin):
    """The run's side of a group's tables on PostgreSQL."""

    def __init__(self, url: str, table: EffectTable, prefix: str, group: str) -> None:
        self.url = url
        self.table = table
        self.names = table_names(prefix, group)

    async def create(self) -> None:
        names = self.names
        async with await _connect(self.url) as connection, connection.transaction():
            await connection.execute(
                _statement(
                    "CREATE TABLE IF NOT EXISTS {state} (counter integer NOT NULL, key bigint NOT NULL,"
                    " value bigint NOT NULL, version bigint NOT NULL DEFAULT 0, PRIMARY KEY (counter, key))",
                    names,
                )
            )
            await connection.execute(
                _statement(
                    "CREATE TABLE IF NOT EXISTS {dedup} (message bigint PRIMARY KEY,"
                    " at timestamptz NOT NULL DEFAULT clock_timestamp())",
                    names,
                )
            )
            await connection.execute(_statement("TRUNCATE {state}, {dedup}", names))
            await connection.execute(_statement(_COMMIT_FUNCTION, names))
            for counter, (initial, count) in enumerate(zip(self.table.initial, self.table.key_counts)):
                await connection.execute(
                    _statement(
                        "INSERT INTO {state} (counter, key, value) SELECT %s, key, %s FROM"
                        " generate_series(0, %s - 1) AS key",
                        names,
                    ),
                    [counter, initial, count],
                )
            await connection.execute(_statement("ANALYZE {state}", names))  # plans for its size, not a guess

    async def counters(self) -> list[np.ndarray]:
        """Per counter, every key's value by key code."""
        values = [[initial] * count for initial, count in zip(self.table.initial, self.table.key_counts)]
        async with await _connect(self.url) as connection:
            cursor = await connection.execute(_statement("SELECT counter, key, value FROM {state}", self.names))
            async for counter, key, value in cursor:
                values[counter][key] = value
        return [np.array(row, dtype=np.int64) for row in values]

    async def drop(self) -> None:
        async with await _connect(self.url) as connection:
            await connection.execute(_statement("DROP FUNCTION IF EXISTS {commit}", self.names))
            await connection.execute(_statement("DROP TABLE IF EXISTS {state}, {dedup}", self.names))
