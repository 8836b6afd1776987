"""The consumer's handler: what processing one delivery does, and when the instance crashes.

Both kinds of consumer group (a queue, a partitioned log) hand each
processing to a :class:`Handler`: :meth:`Handler.begin` when a worker starts
it and :meth:`Handler.handle` when it ends. The handler checks the dedup
store, applies the effects to the group's state with the consumer's
isolation, counts down to the next crash, and says how long the instance
takes to recover.

Isolation decides what concurrent workers on the same key do to each other:

- ``atomic``: read, check and write happen in one step when processing ends.
- ``read-modify-write``: the values are read when processing starts and
  written (read value plus change) when it ends, without a lock; a write
  that lands on a value changed since its read loses that change, and a
  floor checked against a stale read lets changes through that take the
  balance below it (oversell).
- ``optimistic``: the versions read when processing starts are checked when
  it ends; on a conflict nothing is written and the processing is done
  again, which costs latency and retries but loses nothing.
"""

from __future__ import annotations

import math

from busim.engine.dedup import DedupStore
from busim.engine.effects import EffectPlan
from busim.engine.randomness import RandomStreams
from busim.engine.records import CounterState, Outcome
from busim.engine.sampling import duration_sampler
from busim.scenario.schema import Consumer

_NEVER = 1 << 62
# Plain ints for the hot path: an enum member lookup costs more than the work it labels.
_APPLIED, _REJECTED, _SKIPPED = int(Outcome.APPLIED), int(Outcome.REJECTED), int(Outcome.SKIPPED)
RETRY = -1  # an optimistic write met a conflict: process the delivery again

Slot = tuple[int, int]  # (counter, key code)


class Handler:
    """One consumer group's processing: its time, its dedup store, its effects, its crashes."""

    def __init__(self, consumer: Consumer, plan: EffectPlan, streams: RandomStreams, messages: int) -> None:
        self.processing_time = duration_sampler(
            consumer.processing_time, streams.generator("consumer", consumer.name, "processing")
        )
        crash = consumer.crash
        self._restart_s = crash.restart_after if crash else 0.0
        self.plan = plan  # the record keeps it, for the analysis
        self._state = plan.new_state()
        self._has_effects = plan.has_effects
        self._crash_rng = streams.generator("consumer", consumer.name, "crash")
        self._crash_probability = crash.probability if crash else 0.0
        self._until_crash = self._next_crash()
        # Scheduled crashes: by time (instance -1: drawn when the crash comes), and by each instance's count.
        self._instance_rng = streams.generator("consumer", consumer.name, "crash instance")  # at a time
        random_instance = crash is not None and crash.instance == "random"
        fixed = -1 if random_instance or crash is None else int(crash.instance)
        self.crash_times: list[tuple[float, int]] = [(at_s, fixed) for at_s in sorted(crash.at)] if crash else []
        self._processed_by = [0] * consumer.most_instances
        self._crash_after: set[tuple[int, int]] = set()  # (instance, its processings when it crashes)
        if crash is not None and crash.after_messages:
            counts = crash.after_messages
            instances = (
                streams.generator("consumer", consumer.name, "crash count instance")
                .integers(consumer.instances, size=len(counts))
                .tolist()
                if random_instance
                else [fixed] * len(counts)
            )
            self._crash_after = set(zip(instances, counts))
        # Scheduled crashes that did not happen: (time or NaN, instance or -1, count or -1).
        self._missed_crashes: list[tuple[float, int, int]] = []
        # Without a crash probability or counts, no processing ends in a crash: callers need not ask.
        self.may_crash = self._crash_probability > 0 or bool(self._crash_after)

        dedup = consumer.dedup if consumer.idempotency == "dedup" else None
        self._store = DedupStore(dedup, consumer.most_instances) if dedup is not None else None
        self._records_with_effects = dedup is None or dedup.atomic_with_effects
        self._processed = bytearray(messages) if dedup is not None else None
        self._just_recorded = -1  # the message whose id the last processing recorded
        self.dedup_misses: dict[int, int] = {}  # delivery -> DedupMiss, for processings the store let through

        isolation = consumer.effects_isolation
        self.reads_first = isolation != "atomic" and self._has_effects
        self._optimistic = isolation == "optimistic"
        self._reads: dict[int, tuple[dict[Slot, int], dict[Slot, int]]] = {}  # delivery -> (values, versions)
        self._versions = [[0] * len(row) for row in self._state] if self.reads_first else None
        self._committed = plan.new_state() if isolation == "read-modify-write" and self._has_effects else None
        self.lost_updates = 0  # writes that overwrote a change made since their read
        self.optimistic_retries = 0  # optimistic writes refused for a changed version, and processed again

        self._snapshot_every = consumer.snapshot_every
        self._replay_rate_per_s = consumer.replay_rate or 1.0
        self._since_snapshot = 0
        self.recoveries: list[tuple[float, int]] = []  # per crash: (recovery_s, events replayed)

    def begin(self, delivery: int, message: int) -> None:
        """A worker starts processing ``delivery``: read the values (and versions) it will write."""
        versions = self._versions
        assert versions is not None  # only called when reads_first
        slots = self.plan.slots(message)
        state = self._state
        self._reads[delivery] = (
            {slot: state[slot[0]][slot[1]] for slot in slots},
            {slot: versions[slot[0]][slot[1]] for slot in slots},
        )

    def handle(self, delivery: int, message: int, instance: int, now: float) -> int:
        """Finish processing ``delivery`` of ``message`` at ``now``; returns the :class:`Outcome`, or :data:`RETRY`."""
        store = self._store
        if store is not None:
            self._just_recorded = -1  # read only where there is a store
            if store.seen(message, instance, now):
                if self.reads_first:
                    del self._reads[delivery]  # nothing to write
                return _SKIPPED
        if self._optimistic and self._conflicts(delivery):
            self.optimistic_retries += 1
            return RETRY
        if store is not None:
            processed = self._processed
            if processed[message]:
                self.dedup_misses[delivery] = store.miss(message, instance)
            processed[message] = 1
            store.record(message, instance, now)
            self._just_recorded = message
        outcome = _APPLIED
        if self._has_effects:
            accepted = self._write(delivery, message) if self.reads_first else self.plan.apply(self._state, message)
            if not accepted:
                outcome = _REJECTED
        if self._snapshot_every is not None:
            self._since_snapshot += 1
            if self._since_snapshot == self._snapshot_every:
                self._since_snapshot = 0
        return outcome

    def _conflicts(self, delivery: int) -> bool:
        versions = self._versions
        _, read = self._reads[delivery]
        if any(versions[counter][key] != version for (counter, key), version in read.items()):
            del self._reads[delivery]
            return True
        return False

    def _write(self, delivery: int, message: int) -> bool:
        """Write the effects of ``delivery`` from the values it read when it started."""
        values, read_versions = self._reads.pop(delivery)
        if self._optimistic:
            accepted = self.plan.apply(self._state, message)
        else:
            accepted = self.plan.apply_read(self._state, message, values)
            if accepted:
                self.plan.add(self._committed, message)
        if accepted:
            versions = self._versions
            clobbered = False
            for (counter, key), version in read_versions.items():
                clobbered |= versions[counter][key] != version
                versions[counter][key] += 1
            self.lost_updates += clobbered
        return accepted

    def abort(self, delivery: int) -> None:
        """The processing of ``delivery`` ended without writing (its instance crashed)."""
        self._reads.pop(delivery, None)

    def crashes(self, instance: int) -> bool:
        """Whether ``instance`` crashes after the processing it has just finished, before its ack."""
        scheduled = False
        if self._crash_after:  # counts of processings only matter while a crash waits for one
            processed = self._processed_by[instance] + 1
            self._processed_by[instance] = processed
            scheduled = (instance, processed) in self._crash_after
            if scheduled:
                self._crash_after.discard((instance, processed))
        self._until_crash -= 1
        if self._until_crash:
            return scheduled
        self._until_crash = self._next_crash()
        return True

    def crashing_instance(self, instance: int, alive: list[bool], at_s: float) -> int | None:
        """The instance a crash scheduled at ``at_s`` for ``instance`` hits (-1: one of the live ones,
        drawn), or None, recorded as missed.

        None when the instance is down (still restarting or replaying), or
        when every instance is: a crash of what is down changes nothing.
        """
        if instance < 0:
            live = [index for index, up in enumerate(alive) if up]
            if live:
                return live[int(self._instance_rng.integers(len(live)))]
        elif alive[instance]:
            return instance
        self._missed_crashes.append((at_s, instance, -1))
        return None

    def missed_crashes(self) -> list[tuple[float, int, int]]:
        """Scheduled crashes that did not happen: ``(time, instance, -1)`` for a time that found its
        instance down, ``(NaN, instance, count)`` for a count the instance never reached."""
        unreached = [(math.nan, instance, count) for instance, count in sorted(self._crash_after)]
        return self._missed_crashes + unreached

    def crash(self, instance: int, after_processing: bool = True) -> float:
        """``instance`` crashed; returns how long it takes to come back, in seconds.

        ``after_processing``: it crashed right after a processing, before the
        ack (else at a scheduled time, whatever it was doing). An in-memory
        dedup store is lost; an id recorded after the effects rather than
        with them was not recorded. An event-sourced consumer replays the
        events since its last snapshot before it serves again.
        """
        store = self._store
        if store is not None:
            if after_processing and not self._records_with_effects and self._just_recorded >= 0:
                store.forget(self._just_recorded, instance)
            store.lose(instance)
        replayed = self._since_snapshot if self._snapshot_every is not None else 0
        recovery_s = self._restart_s + replayed / self._replay_rate_per_s
        self.recoveries.append((recovery_s, replayed))
        return recovery_s

    def restart(self, instance: int) -> None:
        """``instance`` stopped to start again as a new process (a deploy): an in-memory dedup store is gone."""
        if self._store is not None:
            self._store.lose(instance)

    def counters(self) -> dict[str, CounterState]:
        return self.plan.snapshot(self._state, self._committed)

    def _next_crash(self) -> int:
        """How many processings until the next crash (the crashing one included)."""
        if self._crash_probability == 0:
            return _NEVER
        return int(self._crash_rng.geometric(self._crash_probability))
