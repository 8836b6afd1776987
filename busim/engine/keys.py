"""Ordering keys: which messages share an ordering scope, and which partition a key goes to."""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import blake2b

import numpy as np

from busim.engine.effects import encode_keys
from busim.engine.records import Messages, Selection, constant, joined
from busim.scenario.schema import Scenario


@dataclass(frozen=True)
class _WholeEvent:
    """The scope of an event without a key: all of its messages, and nothing else."""

    event: str


def key_codes(scenario: Scenario, messages: Messages, selection: Selection) -> tuple[np.ndarray, list[object]]:
    """The ordering key of each of the selection's messages, as a code, and the value of each code.

    Messages with a key share a scope with every message (of any event) that
    has the same key value; the messages of an event without a key form a
    scope of their own, whose value is a :class:`_WholeEvent`. Codes take 32
    bits at most (there are never more keys than messages), fewer where the
    keys are fewer.
    """
    if not any(scenario.events[event].key for event in selection.events):
        # No keys: each event is one scope, and its code is its place among the events.
        sizes = [messages.members[event].size for event in selection.events]
        codes = joined([constant(code, size, np.int32) for code, size in enumerate(sizes)] or [np.empty(0, np.int32)])
        return selection.in_order(codes), [_WholeEvent(event) for event in selection.events]
    columns = []
    for event in selection.events:
        key = scenario.events[event].key
        size = messages.members[event].size
        columns.append(messages.fields[event][key] if key else np.full(size, _WholeEvent(event), object))
    if not columns:
        return np.empty(0, np.int32), []
    values, codes = encode_keys([np.concatenate(columns)])
    return selection.in_order(codes[0].astype(_code_dtype(len(values)))), list(values)


def _code_dtype(keys: int) -> type[np.signedinteger]:
    """The narrowest integers that number ``keys`` keys: a byte each for the tens of products of a shop."""
    return next(dtype for dtype in (np.int8, np.int16, np.int32) if keys <= np.iinfo(dtype).max + 1)


def stable_partition(value: object, partitions: int) -> int:
    """The partition of a key value: a hash that does not change between runs or machines."""
    digest = blake2b(repr(value).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def partition_of(scenario: Scenario, messages: Messages, selection: Selection, partitions: int) -> np.ndarray:
    """Each message's partition: by a stable hash of its key, round robin (by message id) without one."""
    codes, values = key_codes(scenario, messages, selection)
    by_code = np.array([stable_partition(value, partitions) for value in values], dtype=np.int64)
    partition = by_code[codes] if codes.size else np.empty(0, np.int64)  # its own array: written below
    keyless = np.array([isinstance(value, _WholeEvent) for value in values], dtype=bool)
    if keyless.any():
        # Chosen when the message is produced, so every group sees a message in the same partition.
        spread = keyless[codes]
        partition[spread] = selection.ids[spread] % partitions
    return partition
