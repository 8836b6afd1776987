"""The idempotent consumer's store of processed message ids, and how it fails.

A durable store (the default) is shared by the group's instances and
survives crashes; with ``durable: false`` each instance keeps its own ids in
memory, so a crash forgets them and another instance never saw them. A
``ttl`` forgets old ids, a ``capacity`` evicts the least recently seen one.
When a message processed before is not recognised, :meth:`DedupStore.miss`
says why, so that every duplicate effect that slips through has its cause.
"""

from __future__ import annotations

from collections import OrderedDict

from busim.engine.records import DedupMiss
from busim.scenario.schema import Dedup

_TTL_EXPIRED, _EVICTED = int(DedupMiss.TTL_EXPIRED), int(DedupMiss.EVICTED)
_STORE_LOST, _OTHER_INSTANCE = int(DedupMiss.STORE_LOST), int(DedupMiss.OTHER_INSTANCE)
_NOT_RECORDED = int(DedupMiss.NOT_RECORDED)


class DedupStore:
    """Processed ids with the time each was recorded, in order of last use."""

    def __init__(self, dedup: Dedup, instances: int) -> None:
        self._ttl_s = dedup.ttl
        self._capacity = dedup.capacity if isinstance(dedup.capacity, int) else None
        self._shared = dedup.durable
        self._stores: list[OrderedDict[int, float]] = [OrderedDict() for _ in range(1 if dedup.durable else instances)]
        # message -> why its id left the store it was in, and which instance's store that was
        self._forgotten: dict[int, tuple[int, int]] = {}

    def seen(self, message: int, instance: int, now: float) -> bool:
        """Whether ``instance`` finds ``message`` in its store at ``now`` (a hit counts as a use)."""
        store = self._stores[0 if self._shared else instance]
        seen_s = store.get(message)
        if seen_s is None:
            return False
        if self._ttl_s and now - seen_s > self._ttl_s:
            del store[message]
            self._forgotten[message] = (_TTL_EXPIRED, instance)
            return False
        if self._capacity is not None:
            store.move_to_end(message)
        return True

    def record(self, message: int, instance: int, now: float) -> None:
        store = self._stores[0 if self._shared else instance]
        store[message] = now
        if self._capacity is not None:
            store.move_to_end(message)
            if len(store) > self._capacity:
                evicted, _ = store.popitem(last=False)
                self._forgotten[evicted] = (_EVICTED, instance)

    def miss(self, message: int, instance: int) -> int:
        """Why ``instance`` did not recognise ``message``, which was processed before (a :class:`DedupMiss`).

        With stores per instance, an id that only another instance ever held
        was never in this one's store, whatever happened to it there.
        """
        if not self._shared and any(message in store for store in self._stores):
            return _OTHER_INSTANCE
        reason, holder = self._forgotten.get(message, (_OTHER_INSTANCE, instance))
        return reason if self._shared or holder == instance else _OTHER_INSTANCE

    def forget(self, message: int, instance: int) -> None:
        """The instance crashed before recording ``message``, which it had just recorded with its effects."""
        self._stores[0 if self._shared else instance].pop(message, None)
        self._forgotten[message] = (_NOT_RECORDED, instance)

    def lose(self, instance: int) -> None:
        """The instance crashed: an in-memory store is gone with it."""
        if self._shared:
            return
        store = self._stores[instance]
        for message in store:
            self._forgotten[message] = (_STORE_LOST, instance)
        store.clear()
