"""A real run's record, kept in its folder (record.npz) so that ``busim explain`` can tell its stories.

A simulated run's folder needs no record: simulating its scenario again
under its seed rebuilds it exactly. A real run cannot be repeated, so its
record is kept: every array of each group's record, in one compressed numpy
file without pickled objects. What follows from the scenario and its seed
(the messages and their payloads, each group's selection, effects and key
codes, the reads of read models) is rebuilt, not stored; of an interrupted
run, only the messages the copies it sent published, cut as its record was.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from busim.engine.chains import emit, fields_of, flows_of
from busim.engine.effects import EffectPlan
from busim.engine.keys import key_codes
from busim.engine.outages import Outages
from busim.engine.queries import draw_all_reads
from busim.engine.randomness import RandomStreams
from busim.engine.records import Deliveries, GroupRecord, Messages, RunRecord
from busim.errors import RunFolderError
from busim.loadtest.schedule import Schedule
from busim.scenario.flows import stages
from busim.scenario.schema import Consumer, Scenario

RECORD_FILE = "record.npz"

# GroupRecord fields rebuilt from the scenario, or stored apart from the arrays; a real run refuses deploys, a
# scaler and processing failures, so it has no lifecycle and no failures to keep.
_REBUILT = ("name", "selection", "deliveries", "counters", "plan", "key_codes", "lifecycle", "failures")
_COUNTS = ("rejected_publishes", "lost_updates", "optimistic_retries")
_ARRAYS = tuple(field.name for field in dataclasses.fields(GroupRecord) if field.name not in _REBUILT + _COUNTS)
_DELIVERIES = tuple(field.name for field in dataclasses.fields(Deliveries))


def write_record(record: RunRecord, folder: Path, copies_sent: int) -> None:
    """Keep ``record`` in ``folder``; ``copies_sent``, the copies of the schedule the run sent, says which
    messages it holds (an interrupted run's record holds only those the copies sent published)."""
    arrays: dict[str, np.ndarray] = {
        "sim_time_s": np.array(record.sim_time_s),
        "drained": np.array(record.drained),
        "copies_sent": np.array(copies_sent),
    }
    for index, group in enumerate(record.groups):
        prefix = f"g{index}."
        for name in _ARRAYS:
            arrays[prefix + name] = getattr(group, name)
        for name in _DELIVERIES:
            arrays[f"{prefix}deliveries.{name}"] = getattr(group.deliveries, name)
        for name in _COUNTS:
            arrays[prefix + name] = np.array(getattr(group, name))
        for counter, state in group.counters.items():
            arrays[f"{prefix}counter.{counter}.values"] = state.values.astype(np.int64)
            if state.committed is not None:
                arrays[f"{prefix}counter.{counter}.committed"] = state.committed.astype(np.int64)
    with (folder / RECORD_FILE).open("wb") as stream:
        np.savez_compressed(stream, **arrays)


def read_record(folder: Path, scenario: Scenario) -> RunRecord:
    """The record a real run kept in ``folder``, with what its scenario (``scenario.yaml``, seed set) rebuilds.

    Raises:
        RunFolderError: the file is missing or does not hold the scenario's groups.
    """
    path = folder / RECORD_FILE
    if not path.is_file():
        raise RunFolderError(f"{folder}: no {RECORD_FILE} here; a real run keeps its record there for busim explain")
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise RunFolderError(f"{path}: not a record busim wrote ({error})") from None
    schedule = Schedule.of(scenario)
    if "copies_sent" in stored:  # a record from before copies_sent was kept holds the whole schedule
        schedule = schedule.cut(int(stored["copies_sent"]))
    messages = schedule.messages
    streams = RandomStreams.from_seed(scenario.seed or 0)
    carried = fields_of(scenario)
    groups: dict[str, GroupRecord] = {}
    indices = {consumer.name: index for index, consumer in enumerate(scenario.consumers)}
    for stage in stages(flows_of(scenario)):  # emitted messages appended as the run's record appended them
        for name in stage:
            groups[name] = _group(stored, f"g{indices[name]}.", scenario, scenario.consumer(name), messages, path)
        for name in stage:
            messages = emit(scenario, groups[name], messages, streams, Outages(()), carried)
    ordered = [groups[consumer.name] for consumer in scenario.consumers]
    streams = RandomStreams.from_seed(scenario.seed or 0)
    reads = draw_all_reads(scenario, ordered, streams)
    return RunRecord(
        scenario=scenario,
        messages=messages,
        groups=tuple(ordered),
        sim_time_s=float(stored["sim_time_s"]),
        drained=bool(stored["drained"]),
        reads=reads,
    )


def _group(
    stored: dict[str, np.ndarray], prefix: str, scenario: Scenario, consumer: Consumer, messages: Messages, path: Path
) -> GroupRecord:
    if f"{prefix}crash_s" not in stored:
        raise RunFolderError(f"{path}: holds no record of consumer {consumer.name}; it is not this run's record")
    selection = messages.select(list(dict.fromkeys(consumer.subscribes)))
    plan = EffectPlan(consumer, messages.common_fields(selection))
    values = [stored[f"{prefix}counter.{name}.values"].tolist() for name in plan.counter_names]
    committed_of = [stored.get(f"{prefix}counter.{name}.committed") for name in plan.counter_names]
    committed = (
        [column.tolist() for column in committed_of]
        if committed_of and all(column is not None for column in committed_of)
        else None
    )
    return GroupRecord(
        name=consumer.name,
        selection=selection,
        deliveries=Deliveries(**{name: stored[f"{prefix}deliveries.{name}"] for name in _DELIVERIES}),
        counters=plan.snapshot(values, committed),
        plan=plan,
        key_codes=key_codes(scenario, messages, selection)[0],
        **{name: stored[prefix + name] for name in _ARRAYS},
        **{name: int(stored[prefix + name]) for name in _COUNTS},
    )
