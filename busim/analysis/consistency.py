"""Consistency against an exactly-once reference.

The reference applies the same published messages exactly once each, in
publish order, to fresh state, with the same effect rules as the run. What
the run did differently (duplicates applied twice, losses never applied,
orders refused because a duplicate took their stock) shows as drift.
"""

from __future__ import annotations

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


def reference_acceptance(plan: EffectPlan, count: int) -> tuple[np.ndarray, list[list[int]]]:
    """Replay messages ``0..count-1`` once each, in order: which were accepted, and the final state."""
    state = plan.new_state()
    if not plan.has_effects:
        return np.ones(count, dtype=bool), state
    accepted = np.fromiter((plan.apply(state, message) for message in range(count)), dtype=bool, count=count)
    return accepted, state


def compare_counter(expected: CounterState, actual: CounterState) -> CounterConsistency:
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
    )


def out_of_order(ordering_key: list[np.ndarray] | np.ndarray, message: np.ndarray, processed_s: np.ndarray) -> int:
    """Messages processed after a later-published message of the same key had been.

    ``message`` holds group-local indices (publish order) of processed
    messages, ``processed_s`` when each was first processed, and
    ``ordering_key`` the key code of every group-local message.
    """
    return int(out_of_order_messages(ordering_key, message, processed_s)[0].size)


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
    key = np.asarray(ordering_key)[message]
    order = np.lexsort((message, processed_s, key))
    # Within a key, a message is out of order when an earlier-processed one was published after it.
    span = int(message.max()) + 1
    ranked = key[order] * span + message[order]
    highest_before = np.maximum.accumulate(np.concatenate([[-1], ranked[:-1]]))
    late = ranked < highest_before
    # Keys ascend, so a rank above this one's can only come from its own key: the remainder is a message.
    return message[order][late], highest_before[late] % span
