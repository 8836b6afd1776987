"""Effects: what processing a message does to a consumer's keyed counters.

A consumer's effects are compiled once per run into per-message lists (key
code and integer change for each effect), so applying them while simulating
is a few list lookups. The same plan replays the exactly-once reference in
:mod:`busim.analysis.consistency`, so run and reference share one rule.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from busim.engine.records import CounterState
from busim.scenario.schema import Consumer


@dataclass(frozen=True)
class _CompiledEffect:
    counter: int
    key_code: array[int]  # per group-local message
    change: array[int]  # per group-local message
    floor: int | None


def encode_keys(columns: list[np.ndarray]) -> tuple[tuple[object, ...], list[np.ndarray]]:
    """Give the distinct values of several columns dense codes 0..K-1.

    Returns the distinct values (sorted where they can be, else in order of
    first appearance) and each column's codes. ``true`` and ``1`` are distinct
    keys, although Python holds them equal.
    """
    merged = np.concatenate(columns) if columns else np.empty(0, dtype=np.int64)
    if merged.dtype != object:
        # Each value's place in the sorted table is its code: searched for, as unique's inverse would be, but
        # without the inverse's sort of every value and its index arrays as long as the column.
        table = np.unique(merged)
        codes = np.searchsorted(table, merged)
        keys = tuple(table.tolist())
    else:
        index: dict[tuple[bool, object], int] = {}
        originals: list[object] = []
        values = merged.tolist()
        codes = np.empty(len(values), dtype=np.int64)
        for position, value in enumerate(values):
            code = index.setdefault((type(value) is bool, value), len(index))
            if code == len(originals):
                originals.append(value)
            codes[position] = code
        keys = tuple(originals)
    bounds = np.cumsum([0] + [column.size for column in columns])
    return keys, [codes[start:end] for start, end in pairwise(bounds)]


class EffectPlan:
    """A consumer's effects, ready to apply to group-local message indices."""

    def __init__(self, consumer: Consumer, fields: dict[str, np.ndarray]) -> None:
        """``fields`` holds each event field's values aligned with the group's messages."""
        self.counter_names = tuple(consumer.state)
        self.initial = tuple(consumer.state[name].initial for name in self.counter_names)
        keys_by_counter: list[list[np.ndarray]] = [[] for _ in self.counter_names]
        for effect in consumer.effects:
            keys_by_counter[self.counter_names.index(effect.counter)].append(fields[effect.key])
        tables = [encode_keys(columns) for columns in keys_by_counter]
        self.keys = tuple(table for table, _ in tables)
        used = [0] * len(self.counter_names)
        compiled = []
        for effect in consumer.effects:
            counter = self.counter_names.index(effect.counter)
            codes = tables[counter][1][used[counter]]
            used[counter] += 1
            if effect.add_field is None:
                change = np.full(codes.size, effect.add, dtype=np.int64)
            else:
                change = effect.add_sign * fields[effect.add_field].astype(np.int64)
            compiled.append(_CompiledEffect(counter, _compact(codes), _compact(change), effect.floor))
        self._effects = tuple(compiled)

    @property
    def has_effects(self) -> bool:
        return bool(self._effects)

    def compiled(self) -> list[tuple[int, array[int], array[int], int | None]]:
        """Each effect as ``(counter, key code per message, change per message, floor)``, in order."""
        return [(effect.counter, effect.key_code, effect.change, effect.floor) for effect in self._effects]

    def new_state(self) -> list[list[int]]:
        """Fresh counters: every key at its counter's initial value."""
        return [[initial] * len(keys) for initial, keys in zip(self.initial, self.keys)]

    def apply(self, state: list[list[int]], message: int) -> bool:
        """Apply the effects of ``message`` to ``state``; False if a floor refused them.

        The effects are all-or-nothing: a change that would take a counter
        below its floor (a decrease that ends under it) refuses them all.
        """
        effects = self._effects
        if len(effects) == 1:
            effect = effects[0]
            row = state[effect.counter]
            key = effect.key_code[message]
            change = effect.change[message]
            new = row[key] + change
            if effect.floor is not None and change < 0 and new < effect.floor:
                return False
            row[key] = new
            return True
        return self._apply(state, message, {})

    def replay(self, state: list[list[int]], messages: Iterable[int]) -> Iterator[bool]:
        """:meth:`apply` to each of ``messages`` in turn, yielding whether each was accepted.

        The analysis replays every message of a run this way; with one effect,
        the usual case, the loop reads its columns without a call per message.
        """
        if len(self._effects) != 1:
            for message in messages:
                yield self._apply(state, message, {})
            return
        effect = self._effects[0]
        row, key_code, change, floor = state[effect.counter], effect.key_code, effect.change, effect.floor
        for message in messages:
            key = key_code[message]
            delta = change[message]
            new = row[key] + delta
            if floor is not None and delta < 0 and new < floor:
                yield False
            else:
                row[key] = new
                yield True

    def add(self, state: list[list[int]], message: int) -> None:
        """Add the changes of ``message`` to ``state`` without checking floors (a ledger of accepted changes)."""
        for effect in self._effects:
            state[effect.counter][effect.key_code[message]] += effect.change[message]

    def slots(self, message: int) -> list[tuple[int, int]]:
        """The ``(counter, key code)`` slots the effects of ``message`` write, each once."""
        return list(dict.fromkeys((effect.counter, effect.key_code[message]) for effect in self._effects))

    def slot_codes(self) -> tuple[int, list[np.ndarray]]:
        """How many slots the counters have, and per effect the slot each message writes.

        A slot is a counter's key, numbered across all counters: ``(counter,
        key code)`` of :meth:`slots` as one number.
        """
        offsets = np.cumsum([0, *(len(keys) for keys in self.keys)])
        # 32 bits: a counter has never more keys than the run has messages.
        codes = [int(offsets[effect.counter]) + np.asarray(effect.key_code, dtype=np.int32) for effect in self._effects]
        return int(offsets[-1]), codes

    def apply_read(self, state: list[list[int]], message: int, read: dict[tuple[int, int], int]) -> bool:
        """Write the effects of ``message`` computed from values ``read`` earlier; False if a floor refused them.

        This is a read-modify-write without a lock: the values written are the
        ones read plus the changes, whatever other writers did in between, and
        the floor is checked against what was read.
        """
        return self._apply(state, message, dict(read))

    def _apply(self, state: list[list[int]], message: int, pending: dict[tuple[int, int], int]) -> bool:
        """Apply all effects or none, starting from ``pending`` values where given and ``state`` elsewhere."""
        for effect in self._effects:
            slot = (effect.counter, effect.key_code[message])
            change = effect.change[message]
            new = pending.get(slot, state[slot[0]][slot[1]]) + change
            if effect.floor is not None and change < 0 and new < effect.floor:
                return False
            pending[slot] = new
        for (counter, key), value in pending.items():
            state[counter][key] = value
        return True

    def floors(self) -> tuple[int | None, ...]:
        """Each counter's highest floor, or None where no effect sets one."""
        highest: list[int | None] = [None] * len(self.counter_names)
        for effect in self._effects:
            if effect.floor is not None:
                current = highest[effect.counter]
                highest[effect.counter] = effect.floor if current is None else max(current, effect.floor)
        return tuple(highest)

    def snapshot(self, state: list[list[int]], committed: list[list[int]] | None = None) -> dict[str, CounterState]:
        """The counters' values; ``committed`` holds what the accepted changes add up to, where that differs."""
        floors = self.floors()
        return {
            name: CounterState(
                keys=keys,
                values=_integers(values),
                initial=initial,
                floor=floor,
                committed=_integers(committed[index]) if committed is not None else None,
            )
            for index, (name, keys, values, initial, floor) in enumerate(
                zip(self.counter_names, self.keys, state, self.initial, floors)
            )
        }


def _compact(values: np.ndarray) -> array[int]:
    """64-bit integers per message, read one at a time as a list's are, each in the fewest bytes that hold
    them all: key codes and changes are mostly small (tens of keys, a quantity of a few units)."""
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    compact = next(array(code) for code in _TYPECODES if _fits(low, high, array(code).itemsize))
    compact.frombytes(values.astype(f"i{compact.itemsize}").view(np.uint8))
    return compact


# Signed integer typecodes of ``array``, narrowest first.
_TYPECODES = ("b", "h", "i", "q")


def _fits(low: int, high: int, itemsize: int) -> bool:
    bounds = np.iinfo(f"i{itemsize}")
    return bounds.min <= low and high <= bounds.max


def _integers(values: list[int]) -> np.ndarray:
    """Counter values as int64, or as Python integers where a run has pushed them past int64."""
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:
        return np.array(values, dtype=object)
