"""A scenario fitted to a real run: the broker's latency and each consumer's per-message cost as measured.

Three numbers of a scenario are guesses that a real run measures:

- the broker's ``latency``, from publish to a consumer's receipt. Only a
  message that found its group idle (fewer copies in its instances or on
  their way than free workers, those of an instance down after a crash
  counted as busy) measures it alone: any other waited for a worker or a
  prefetch slot as well. Those messages' transit times, publish (the
  time the schedule meant, so the generator's lag is in them) to receipt,
  become an ``empirical`` latency. With fewer than
  :data:`MIN_SAMPLES` such messages, the declared latency is kept.
- a consumer's ``processing_time``: the time from a worker taking a
  delivery to its processing ending, plus, for single-worker instances, the
  pause between one message's end and the next one's take while it was
  already waiting (the ack and the client's bookkeeping). The measured
  cost's quantiles become an ``empirical`` processing time. Where it exceeds
  the declared one, the excess is the consumer's overhead; where it falls
  short of the declared mean (a real worker draws its processing times from
  the seed too, and a few hundred draws stray), the run is reproduced as it
  was.
- a consumer's ``crash.restart_after``, where its instances took longer to
  serve again after a crash than declared: a real instance also starts a
  process, imports and reconnects. The mean measured recovery replaces it;
  a crash the instance never came back from before the run ended tells none.

Every fitted number says where it came from, for a comment in the fitted file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from busim.engine.randomness import RandomStreams
from busim.engine.records import GroupRecord, RunRecord
from busim.engine.sampling import sample_durations
from busim.scenario.schema import Consumer, Scenario
from busim.scenario.units import format_duration
from busim.words import counted

MIN_SAMPLES = 20  # fewer measurements than this fit nothing: the quantiles would be noise
# The percentiles an empirical distribution is written at, where there are enough samples to tell them.
FIT_PERCENTILES = (0, 0.5, 1, 2.5, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9, 100)
DECLARED_DRAWS = 100_000  # draws that estimate a declared distribution's mean (to 0.3 % for an exponential)


@dataclass(frozen=True)
class Fitted:
    """The fitted scenario, and per key path that was changed or kept, where its value came from."""

    scenario: Scenario
    notes: dict[str, str]  # "broker.latency", "consumers.inventory.processing_time" -> a sentence


def fit_to_run(scenario: Scenario, record: RunRecord) -> Fitted:
    """``scenario`` with the broker latency, processing times and restart times the real run ``record``
    measured."""
    data = scenario.model_dump(mode="json")
    notes: dict[str, str] = {}
    transit_s = np.concatenate([_idle_transit_s(record, group, scenario) for group in record.groups])
    if transit_s.size >= MIN_SAMPLES:
        data["broker"]["latency"] = empirical(transit_s)
        notes["broker.latency"] = (
            f"measured: publish to receipt of the {transit_s.size:,} messages that found their group idle "
            f"(median {format_duration(np.median(transit_s))}, p99 {format_duration(np.percentile(transit_s, 99))})"
        )
    else:
        found = f"{counted(transit_s.size, 'message')} found {'its' if transit_s.size == 1 else 'their'} group"
        notes["broker.latency"] = f"kept: only {found} idle, fewer than the {MIN_SAMPLES} a fit needs"
    streams = RandomStreams.from_seed(scenario.seed if scenario.seed is not None else 0)
    for index, (consumer, group) in enumerate(zip(scenario.consumers, record.groups, strict=True)):
        key = f"consumers.{consumer.name}.processing_time"
        cost_s, pause_s = _per_message_cost_s(group, consumer)
        if cost_s.size < MIN_SAMPLES:
            notes[key] = (
                f"kept: only {counted(cost_s.size, 'processing')} ended, fewer than the {MIN_SAMPLES} a fit needs"
            )
            continue
        declared_s = float(
            sample_durations(
                consumer.processing_time, streams.generator("calibration", consumer.name), DECLARED_DRAWS
            ).mean()
        )
        measured_s = float(cost_s.mean())
        # The pause between messages is the worker's too: a simulated processing, and its figures, include it.
        between = f" ({format_duration(pause_s)} of it between messages)" if pause_s else ""
        if measured_s > declared_s:
            against = f"{format_duration(measured_s - declared_s)} of overhead a message"
        else:
            against = "shorter than the declared mean"
        data["consumers"][index]["processing_time"] = empirical(cost_s)
        notes[key] = (
            f"measured: {format_duration(measured_s)} a message{between} over {cost_s.size:,} processings, "
            f"against {format_duration(declared_s)} declared: {against}"
        )
    for index, (consumer, group) in enumerate(zip(scenario.consumers, record.groups, strict=True)):
        if consumer.crash is None or group.crash_s.size == 0:
            continue
        key = f"consumers.{consumer.name}.crash.restart_after"
        recovered_s = _recovered_s(group)
        if recovered_s.size == 0:
            notes[key] = "kept: no instance that crashed served again before the run ended"
            continue
        recovery_s = float(recovered_s.mean())
        declared_s = consumer.crash.restart_after
        crashes = counted(recovered_s.size, "crash", "crashes")
        if recovery_s <= declared_s:
            notes[key] = (
                f"kept: instances served again {format_duration(recovery_s)} after a crash ({crashes}), as declared"
            )
            continue
        data["consumers"][index]["crash"]["restart_after"] = float(f"{recovery_s:.6g}")
        notes[key] = (
            f"measured: instances served again {format_duration(recovery_s)} after a crash ({crashes}), against "
            f"{format_duration(declared_s)} declared: a real instance also starts its process and reconnects"
        )
    fitted = [key for key, note in notes.items() if note.startswith("measured")]
    if fitted:
        data["description"] = " ".join(
            part for part in (scenario.description, f"Fitted to a real run: {', '.join(fitted)} as measured.") if part
        )
    return Fitted(Scenario.model_validate(data), notes)


def _recovered_s(group: GroupRecord) -> np.ndarray:
    """The recovery times of the crashes after which the instance received a delivery again: for an instance
    that never did before the run ended, the time from its crash to the end only bounds its recovery."""
    deliveries = group.deliveries
    back = [
        bool(np.any((deliveries.instance == instance) & (deliveries.receive_s > crash_s)))
        for crash_s, instance in zip(group.crash_s, group.crash_instance, strict=True)
    ]
    return group.recovery_s[np.array(back, dtype=bool)] if back else np.empty(0)


def empirical(samples_s: np.ndarray) -> dict[str, dict[str, float]]:
    """An ``empirical`` distribution through the samples' quantiles, as a scenario writes it."""
    percentiles = [p for p in FIT_PERCENTILES if _tellable(p, samples_s.size)]
    values = np.percentile(samples_s, percentiles)
    values = np.maximum.accumulate(np.maximum(values, 0.0))  # rounding must not make them decrease
    return {"empirical": {f"p{p:g}": float(f"{value:.6g}") for p, value in zip(percentiles, values, strict=True)}}


def _tellable(percentile: float, count: int) -> bool:
    """A sample of ``count`` tells the ``percentile``: at least one sample lies beyond it on each side."""
    tail = min(percentile, 100 - percentile) / 100
    return tail == 0 or tail * count >= 1


def _idle_transit_s(record: RunRecord, group: GroupRecord, scenario: Scenario) -> np.ndarray:
    """Publish to receipt of the group's first deliveries whose message found the group idle: a worker free
    and no earlier message waiting."""
    deliveries = group.deliveries
    consumer = next(c for c in scenario.consumers if c.name == group.name)
    workers = consumer.instances * consumer.concurrency
    first = np.flatnonzero(deliveries.attempt == 1)
    if first.size == 0:
        return np.empty(0)
    publish_s = record.messages.publish_s[group.selection.ids[deliveries.message[first]]]
    receive_s = deliveries.receive_s[first]
    done_s = np.where(np.isnan(deliveries.done_s), np.inf, deliveries.done_s)
    # At each publish: deliveries received and not yet done, earlier messages and copies handed back (after a
    # crash, an ack timeout) not yet received, and the workers of instances down after a crash.
    in_instances = _count_at_or_before(deliveries.receive_s, publish_s) - _count_at_or_before(done_s, publish_s)
    published_before = np.searchsorted(np.sort(publish_s), publish_s, side="left")
    on_their_way = published_before - _count_at_or_before(receive_s, publish_s, strict=True)
    again = deliveries.attempt > 1
    on_their_way += _count_at_or_before(deliveries.arrival_s[again], publish_s, strict=True)
    on_their_way -= _count_at_or_before(deliveries.receive_s[again], publish_s, strict=True)
    back_s = group.crash_s + np.where(np.isnan(group.recovery_s), np.inf, group.recovery_s)
    down = _count_at_or_before(group.crash_s, publish_s) - _count_at_or_before(back_s, publish_s)
    idle = in_instances + on_their_way + down * consumer.concurrency < workers
    return (receive_s - publish_s)[idle]


def _count_at_or_before(times_s: np.ndarray, at_s: np.ndarray, strict: bool = False) -> np.ndarray:
    return np.searchsorted(np.sort(times_s), at_s, side="left" if strict else "right")


def _per_message_cost_s(group: GroupRecord, consumer: Consumer) -> tuple[np.ndarray, float]:
    """Each ended processing's take to end, plus the median pause a single-worker instance made between a
    message's end and the take of one already waiting; and that pause (0 where it cannot be told)."""
    deliveries = group.deliveries
    ended = ~np.isnan(deliveries.done_s) & ~np.isnan(deliveries.take_s)
    processing_s = (deliveries.done_s - deliveries.take_s)[ended]
    if consumer.concurrency != 1:
        return processing_s, 0.0
    pauses: list[np.ndarray] = []
    for instance in np.unique(deliveries.instance):
        rows = np.flatnonzero((deliveries.instance == instance) & ended)
        rows = rows[np.argsort(deliveries.take_s[rows], kind="stable")]
        pause_s = deliveries.take_s[rows[1:]] - deliveries.done_s[rows[:-1]]
        waiting = (deliveries.receive_s[rows[1:]] <= deliveries.done_s[rows[:-1]]) & (pause_s >= 0)
        pauses.append(pause_s[waiting])
    pause_s = np.concatenate(pauses) if pauses else np.empty(0)
    if pause_s.size < MIN_SAMPLES:
        return processing_s, 0.0
    median_pause_s = float(np.median(pause_s))
    return processing_s + median_pause_s, median_pause_s
