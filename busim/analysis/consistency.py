"""Consistency against an exactly-once reference.

The reference applies the same published messages exactly once each, in
publish order, to fresh state, with the same effect rules as the run. What
the run did differently (duplicates applied twice, losses never applied,
orders refused because a duplicate took their stock) shows as drift.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from busim.engine.effects import EffectPlan
from busim.engine.records import CounterState

MOST_DRIFTED = 10


@dataclass(frozen=True)
class KeyDrift:
    key: object
    expected: int
    actual: int


@dataclass(frozen=True)
class CounterConsistency:
    """One counter of one consumer, compared key by key with the reference."""

    expected_total: int
    actual_total: int
    keys: int
    keys_diverged: int
    abs_drift: int
    most_drifted: tuple[KeyDrift, ...]
    lowest: int | None  # the lowest balance over the keys in the run (see CounterState.balance); None without keys
    highest: int | None  # the highest
    oversold: int  # units the accepted changes took the keys below the counter's floor


def reference_acceptance(
    plan: EffectPlan, count: int, messages: np.ndarray | None = None
) -> tuple[np.ndarray, list[list[int]]]:
    """Replay group-local ``messages`` (default: ``0..count-1``) once each, in order.

    Returns which of the ``count`` messages were accepted (those not
    replayed count as accepted) and the final state.
    """
    state = plan.new_state()
    accepted = np.ones(count, dtype=bool)
    replayed = np.arange(count) if messages is None else messages
    if plan.has_effects:
        accepted[replayed] = np.fromiter(plan.replay(state, _as_ints(replayed)), dtype=bool, count=replayed.size)
    return accepted, state


def _as_ints(values: np.ndarray, block: int = 65536) -> Iterator[int]:
    """``values`` as Python ints, a block at a time: a list of them all would cost 36 bytes each."""
    for start in range(0, values.size, block):
        yield from values[start : start + block].tolist()


def compare_counter(expected: CounterState, actual: CounterState) -> CounterConsistency:
    """Compare a counter of the run with the reference, key by key; its range is the run's.

    The lowest and highest balances are what counter invariants bound, read
    here and nowhere else. A balance is the initial value plus every change
    the consumer accepted: where concurrent writers lost updates it is below
    the stored value, and an oversold key shows below its floor.
    """
    drift = actual.values - expected.values
    order = np.argsort(-np.abs(drift), kind="stable")[:MOST_DRIFTED]
    return CounterConsistency(
        expected_total=int(expected.values.sum()),
        actual_total=int(actual.values.sum()),
        keys=len(actual.keys),
        keys_diverged=int(np.count_nonzero(drift)),
        abs_drift=int(np.abs(drift).sum()),
        most_drifted=tuple(
            KeyDrift(actual.keys[i], int(expected.values[i]), int(actual.values[i])) for i in order if drift[i] != 0
        ),
        lowest=int(actual.balance.min()) if actual.balance.size else None,
        highest=int(actual.balance.max()) if actual.balance.size else None,
        oversold=actual.oversold,
    )


def out_of_order(ordering_key: list[np.ndarray] | np.ndarray, message: np.ndarray, processed_s: np.ndarray) -> int:
    """How many messages were processed after a later-published message of the same key had been.

    ``message`` holds group-local indices (publish order) of processed
    messages, ``processed_s`` when each was first processed, and
    ``ordering_key`` the key code of every group-local message.
    """
    return int(np.count_nonzero(overtaken(ordering_key, message, processed_s)))


def overtaken(ordering_key: list[np.ndarray] | np.ndarray, message: np.ndarray, at_s: np.ndarray) -> np.ndarray:
    """Which of ``message`` had a later-published message of the same key come before them (at ``at_s``).

    Returns a mask aligned with ``message``.
    """
    if message.size == 0 or _in_order(message, at_s):
        return np.zeros(message.size, dtype=bool)
    order, ranked, highest_before = _ranked(ordering_key, message, at_s)
    mask = np.zeros(message.size, dtype=bool)
    mask[order] = ranked < highest_before
    return mask


def _ranked(
    ordering_key: list[np.ndarray] | np.ndarray, message: np.ndarray, at_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``message`` in order of key, then of ``at_s``: that order, each one's rank (key, then message, as one
    64-bit number) and the highest rank before it. Within a key, a message was overtaken when an earlier one
    (in time) was published after it: when a rank before it is higher."""
    key = np.asarray(ordering_key)[message]
    order = np.lexsort((message, at_s, key))
    # Built in place, in 64 bits from the start: the key codes are sorted as they come (32 bits, most often).
    ranked = key[order].astype(np.int64)
    ranked *= int(message.max()) + 1
    ranked += message[order]
    highest_before = np.empty_like(ranked)
    highest_before[0] = -1
    np.maximum.accumulate(ranked[:-1], out=highest_before[1:])
    return order, ranked, highest_before


def _in_order(message: np.ndarray, at_s: np.ndarray) -> bool:
    """Whether ``message`` ascends and ``at_s`` never falls along them: then none was overtaken, whatever the keys.

    A message is overtaken by a later-published one that came strictly
    earlier; listed in publish order and in time at once, none can be. One
    server serving a FIFO queue leaves its messages so, and this answers
    without the sorts.
    """
    return bool((message[1:] > message[:-1]).all()) and bool((at_s[1:] >= at_s[:-1]).all())  # no differences made


def out_of_order_messages(
    ordering_key: list[np.ndarray] | np.ndarray, message: np.ndarray, processed_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The messages :func:`out_of_order` counts, and which later-published message overtook each.

    Takes the arguments of :func:`out_of_order`. Returns two arrays of
    group-local indices, in order of key and then of processing: the
    messages processed out of order, and for each the latest-published
    message of its key that had been processed before it.
    """
    if message.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order, ranked, highest_before = _ranked(ordering_key, message, processed_s)
    late = ranked < highest_before
    # Keys ascend, so a rank above this one's can only come from its own key: the remainder is a message.
    return message[order][late], highest_before[late] % (int(message.max()) + 1)
