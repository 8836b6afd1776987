"""The consumer's handler: what processing one delivery does, and when the instance crashes.

Both kinds of consumer group (a queue, a partitioned log) hand each finished
processing to a :class:`Handler`: it checks the dedup store, applies the
effects to the group's state, and counts down to the next crash.
"""

from __future__ import annotations

from busim.engine.effects import EffectPlan
from busim.engine.randomness import RandomStreams
from busim.engine.records import CounterState, Outcome
from busim.engine.sampling import duration_sampler
from busim.scenario.schema import Consumer

_NEVER = 1 << 62
# Plain ints for the hot path: an enum member lookup costs more than the work it labels.
_APPLIED, _REJECTED, _SKIPPED = int(Outcome.APPLIED), int(Outcome.REJECTED), int(Outcome.SKIPPED)


class Handler:
    """One consumer group's processing: its time, its dedup store, its effects, its crashes."""

    def __init__(self, consumer: Consumer, plan: EffectPlan, streams: RandomStreams, messages: int) -> None:
        self.processing_time = duration_sampler(
            consumer.processing_time, streams.generator("consumer", consumer.name, "processing")
        )
        self.restart_s = consumer.crash.restart_after if consumer.crash else 0.0
        self._plan = plan
        self._state = plan.new_state()
        self._has_effects = bool(consumer.effects)
        self._dedup_ttl_s = consumer.dedup_ttl
        self._dedup_at: list[float] | None = [-1.0] * messages if consumer.idempotency == "dedup" else None
        self._crash_rng = streams.generator("consumer", consumer.name, "crash")
        self._crash_probability = consumer.crash.probability if consumer.crash else 0.0
        self._until_crash = self._next_crash()

    def handle(self, message: int, now: float) -> int:
        """Process ``message`` at ``now``; returns the :class:`Outcome`.

        The id is checked and recorded in the same transaction as the effects.
        """
        dedup_at = self._dedup_at
        if dedup_at is not None:
            seen_s = dedup_at[message]
            if seen_s >= 0 and (self._dedup_ttl_s == 0 or now - seen_s <= self._dedup_ttl_s):
                return _SKIPPED
            dedup_at[message] = now
        if self._has_effects and not self._plan.apply(self._state, message):
            return _REJECTED
        return _APPLIED

    def crashes(self) -> bool:
        """Whether the instance crashes after this processing, before its ack."""
        self._until_crash -= 1
        if self._until_crash:
            return False
        self._until_crash = self._next_crash()
        return True

    def counters(self) -> dict[str, CounterState]:
        return self._plan.snapshot(self._state)

    def _next_crash(self) -> int:
        """How many processings until the next crash (the crashing one included)."""
        if self._crash_probability == 0:
            return _NEVER
        return int(self._crash_rng.geometric(self._crash_probability))
