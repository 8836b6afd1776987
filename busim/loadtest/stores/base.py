"""What a consumer's state store does, and the effects it applies.

A consumer instance applies each message's effects (:class:`EffectTable`,
compiled from the engine's :class:`~busim.engine.effects.EffectPlan`, so
that run and exactly-once reference share one rule) to a real store, with
the consumer's isolation and dedup settings:

- :meth:`Store.begin` when a worker takes a delivery (a read-modify-write or
  optimistic consumer reads here);
- :meth:`Store.commit` when its processing ends: the dedup check, then the
  effects, all or none, as one step where the isolation asks for it;
- :meth:`Store.record` after the effects, before the ack: the dedup id, where
  it is not recorded with the effects (``dedup.atomic_with_effects: false``).

Counter ``c``'s value for key code ``k`` is addressed by the pair; the run's
side creates the store (:meth:`StoreAdmin.create`), reads every counter at
the end (:meth:`StoreAdmin.counters`) and deletes it (:meth:`StoreAdmin.drop`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from busim.engine.effects import EffectPlan

RETRY = -1  # commit's answer to an optimistic write that met a changed version: process again


class Commit(NamedTuple):
    """What a commit did: its outcome, and whether its write overwrote a change made since its read."""

    outcome: int  # an Outcome (APPLIED, REJECTED, SKIPPED), or RETRY
    lost_update: bool = False  # read-modify-write only


@dataclass(frozen=True)
class StoredEffect:
    counter: int  # index into EffectTable.counters
    key_code: np.ndarray  # per group-local message
    change: np.ndarray  # per group-local message
    floor: int | None


@dataclass(frozen=True)
class EffectTable:
    """A consumer's effects per group-local message, as arrays a process can load quickly."""

    counters: tuple[str, ...]
    initial: tuple[int, ...]
    key_counts: tuple[int, ...]  # distinct keys per counter: codes 0..n-1
    effects: tuple[StoredEffect, ...]

    @classmethod
    def of(cls, plan: EffectPlan) -> EffectTable:
        return cls(
            counters=plan.counter_names,
            initial=plan.initial,
            key_counts=tuple(len(keys) for keys in plan.keys),
            effects=tuple(
                StoredEffect(counter, np.asarray(key_code, np.int64), np.asarray(change, np.int64), floor)
                for counter, key_code, change, floor in plan.compiled()
            ),
        )

    def slots(self, message: int) -> list[tuple[int, int, int, int | None]]:
        """``(counter, key code, change, floor)`` of each effect of group-local ``message``, in order."""
        return [
            (effect.counter, int(effect.key_code[message]), int(effect.change[message]), effect.floor)
            for effect in self.effects
        ]

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {
            "counters": np.array(self.counters, dtype=object),
            "initial": np.array(self.initial, dtype=object),
            "key_counts": np.array(self.key_counts, dtype=np.int64),
            "effect_counter": np.array([effect.counter for effect in self.effects], dtype=np.int64),
            "effect_floor": np.array([effect.floor for effect in self.effects], dtype=object),
        }
        for index, effect in enumerate(self.effects):
            arrays[f"key_code_{index}"] = effect.key_code
            arrays[f"change_{index}"] = effect.change
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> EffectTable:
        with np.load(path, allow_pickle=True) as data:
            floors = data["effect_floor"].tolist()
            return cls(
                counters=tuple(data["counters"].tolist()),
                initial=tuple(int(value) for value in data["initial"].tolist()),
                key_counts=tuple(data["key_counts"].tolist()),
                effects=tuple(
                    StoredEffect(int(counter), data[f"key_code_{index}"], data[f"change_{index}"], floors[index])
                    for index, counter in enumerate(data["effect_counter"].tolist())
                ),
            )


class Store(ABC):
    """One consumer instance's view of its group's state and dedup store."""

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def begin(self, message: int) -> object:
        """A worker took ``message`` (group-local index); what it read, for :meth:`commit`."""

    @abstractmethod
    async def commit(self, message: int, begun: object) -> Commit:
        """Its processing ended: an :class:`~busim.engine.records.Outcome` (APPLIED, REJECTED,
        SKIPPED), or :data:`RETRY` for an optimistic conflict (nothing written on SKIPPED or RETRY), and
        whether the write overwrote a change made since its read (read-modify-write)."""

    async def record(self, message: int) -> None:  # noqa: B027 - a no-op unless the id is recorded apart
        """Record ``message``'s id after its effects, where the dedup store does not record it with them."""

    lost_updates: int = 0  # read-modify-write: writes that overwrote a change made since their read, in all

    @abstractmethod
    async def close(self) -> None: ...


class StoreAdmin(ABC):
    """The run's side of a group's store: create it, read it at the end, drop it."""

    @abstractmethod
    async def create(self) -> None:
        """Create the group's counters (every key at its initial value) and its dedup store, empty."""

    @abstractmethod
    async def counters(self) -> list[np.ndarray]:
        """Per counter, the value of every key code, as int64 (object for values past int64)."""

    @abstractmethod
    async def drop(self) -> None:
        """Delete every key and table :meth:`create` made; safe to call twice or after a failed create."""
