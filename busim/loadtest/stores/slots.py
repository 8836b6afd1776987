"""What one message writes: its slots, each once, and its effects in order, by slot.

Both stores send a message's writes in this shape, and a read-modify-write
or optimistic consumer computes its new values from it with the engine's
rule (:meth:`busim.engine.effects.EffectPlan.apply_read`).
"""

from __future__ import annotations

from dataclasses import dataclass

from busim.loadtest.stores.base import EffectTable


@dataclass(frozen=True)
class MessageWrites:
    # (counter, key code) of each slot written, once, in order: a store that locks them in this order
    # cannot deadlock with another message's commit
    slots: tuple[tuple[int, int], ...]
    effects: tuple[tuple[int, int, int | None], ...]  # (slot index, change, floor) of each effect, in order


def message_writes(table: EffectTable, message: int) -> MessageWrites:
    effects = table.slots(message)
    slots = sorted({(counter, key_code) for counter, key_code, _, _ in effects})
    index = {slot: position for position, slot in enumerate(slots)}
    return MessageWrites(
        tuple(slots),
        tuple((index[counter, key_code], change, floor) for counter, key_code, change, floor in effects),
    )


def written_values(writes: MessageWrites, read: list[int]) -> list[int] | None:
    """Each slot's new value, from the values ``read`` (one per slot) plus the changes; None if a floor refuses.

    The effects are all-or-nothing: a decrease that ends below its floor
    refuses them all.
    """
    values = list(read)
    for slot, change, floor in writes.effects:
        value = values[slot] + change
        if floor is not None and change < 0 and value < floor:
            return None
        values[slot] = value
    return values
