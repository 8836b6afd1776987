"""Consumers' state and dedup stores on a real database: Redis by default, PostgreSQL for transactions.

- :mod:`~busim.loadtest.stores.base`: what a store does (:class:`Store`, :class:`StoreAdmin`, :class:`EffectTable`).
- :mod:`~busim.loadtest.stores.choice`: which store a consumer uses, opening it, what no store realises.
- :mod:`~busim.loadtest.stores.redis`: counters and ids on Redis, one Lua script per commit.
- :mod:`~busim.loadtest.stores.postgres`: counters and ids in one PostgreSQL transaction per commit.
- :mod:`~busim.loadtest.stores.memory`: an instance's own ids in memory (``durable: false``).
- :mod:`~busim.loadtest.stores.slots`: what one message writes.
"""

from busim.loadtest.stores.choice import DEFAULT_URLS, StoreKind, open_admin, open_store, refusals, store_kind

__all__ = ["DEFAULT_URLS", "StoreKind", "open_admin", "open_store", "refusals", "store_kind"]
