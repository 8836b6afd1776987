"""results.json and compare.json: the documents of :mod:`busim.results.model`, written and read by one schema.

A run's document is its :class:`~busim.results.model.Result` as JSON: the
analysis's own dataclasses (summaries, latency, invariants) under a few typed
mappings (:class:`ResultDocument`). The same pydantic adapter dumps it on
writing and validates it, strictly, on reading, so that a file cut short,
edited by hand or written by another version is refused naming the first bad
key (``consumers.inventory.lost: expected a whole number (got '5')``) instead
of failing halfway through a chart. Keys the schema does not know are
ignored: later versions of busim add keys and never rename or remove one
(docs/results.md).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from typing import Any, Literal, NotRequired

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from pydantic_core import ErrorDetails, from_json
from typing_extensions import TypedDict, is_typeddict

from busim.analysis.chains import ChainSummary
from busim.analysis.intervals import CONFIDENCE, mean_interval
from busim.analysis.invariants import COUNTER_MEASURES, InvariantOutcome
from busim.analysis.latency import LatencySummary
from busim.analysis.lifecycle import LifecycleSummary
from busim.analysis.real import RealFigures
from busim.analysis.summary import ConsumerSummary, PublisherSummary, Summary
from busim.engine.records import Stop
from busim.errors import RunFolderError, ScenarioError
from busim.results.model import (
    Comparison,
    MessageCounts,
    Replications,
    Result,
    RunMetadata,
    Source,
    signed_figure,
)
from busim.scenario import Scenario
from busim.scenario.schema import INT64_MAX, INT64_MIN
from busim.words import counted

RESULT_SCHEMA = "busim.result/1"
REPLICATIONS_SCHEMA = "busim.replications/1"
COMPARISON_SCHEMA = "busim.compare/1"


# ---------------------------------------------------------------- the schema
class ScenarioRecord(TypedDict):
    """Which scenario ran, from where, with which seed and overrides."""

    name: str
    description: str
    seed: int | None
    file: str | None
    sha256: str | None
    overrides: list[str]
    variant: NotRequired[str]  # added to busim.result/1 later, and only for a variant: older files lack it
    left_out: NotRequired[list[str]]  # added later, and only where overrides left part of the file out


class Consistency(TypedDict):
    consistent: bool
    violations: list[str]


class _Head(TypedDict):
    schema: Literal["busim.result/1"]
    scenario: ScenarioRecord
    run: RunMetadata
    mode: NotRequired[Literal["simulated", "real"]]  # added to busim.result/1 later: older files lack it
    real: NotRequired[RealFigures]  # a run against a real broker only


class RunFigures(TypedDict):
    """What one run found: a run's document without its head, as each replication's is written."""

    sim_time_s: float
    drained: bool
    stopped: NotRequired[Stop | None]  # added to busim.result/1 later: older files lack it
    messages: MessageCounts
    publishers: dict[str, PublisherSummary]
    consumers: dict[str, ConsumerSummary]
    consistency: Consistency
    invariants: list[InvariantOutcome]
    chains: dict[str, ChainSummary]
    lifecycle: NotRequired[dict[str, LifecycleSummary]]  # consumers with deploys or a scaler only


# Strict: "5" is not a count and 1 is not true; NaN and infinities are not numbers (json.dumps(allow_nan=False)
# writes none). The nested dataclasses and typed dicts take this configuration.
_STRICT = ConfigDict(strict=True, allow_inf_nan=False)


@with_config(_STRICT)
class ResultDocument(_Head, RunFigures):
    """results.json of a single run (schema ``busim.result/1``)."""


@with_config(_STRICT)
class ReplicatedRun(RunFigures):
    """One replication's document inside results.json of replications: a run's figures and its seed."""

    seed: int


@functools.cache
def _adapter(document: type) -> TypeAdapter[Any]:
    return TypeAdapter(document)


# ---------------------------------------------------------------- writing
def result_document(result: Result) -> dict[str, Any]:
    """results.json of one run, as plain JSON data."""
    head = {
        "schema": RESULT_SCHEMA,
        "scenario": _scenario_record(result.scenario, result.source),
        "run": result.run,
        "mode": result.mode,
    }
    if result.real is not None:
        head["real"] = result.real
    return _adapter(ResultDocument).dump_python(head | _figures(result), mode="json")


def _figures(result: Result) -> RunFigures:
    summary = result.summary
    return {
        "sim_time_s": result.sim_time_s,
        "drained": result.drained,
        "stopped": result.stopped,
        "messages": result.messages,
        "publishers": summary.publishers,
        "consumers": summary.consumers,
        "consistency": {"consistent": summary.consistent, "violations": list(summary.violations)},
        "invariants": list(summary.invariants),
        "chains": summary.chains,
    } | ({"lifecycle": summary.lifecycle} if summary.lifecycle else {})


def replications_document(replications: Replications) -> dict[str, Any]:
    """results.json of replications, as plain JSON data: each run's figures, and their means and intervals."""
    runs = [
        _adapter(ReplicatedRun).dump_python(_figures(result) | {"seed": seed}, mode="json")
        for result, seed in zip(replications.results, replications.seeds)
    ]
    figures = [{key: value for key, value in run.items() if key != "seed"} for run in runs]
    return {
        "schema": REPLICATIONS_SCHEMA,
        "scenario": _scenario_record(replications.scenario, replications.source),
        "run": dataclasses.asdict(replications.run),
        "replications": replications.runs,
        "confidence": CONFIDENCE,
        "seeds": list(replications.seeds),
        "metrics": _intervals(figures, ()),
        "results": runs,
        "invariants": _replicated_invariants(replications, figures),
    }


def document(outcome: Result | Replications) -> dict[str, Any]:
    """results.json of a run or of replications, as plain JSON data."""
    return result_document(outcome) if isinstance(outcome, Result) else replications_document(outcome)


def comparison_document(comparison: Comparison) -> dict[str, Any]:
    """compare.json: each variant's scenario as run and its results.json, under its name."""
    return {
        "schema": COMPARISON_SCHEMA,
        "seed": comparison.seed,
        "variants": [
            {
                "name": name,
                "overrides": list(outcome.source.overrides),
                "scenario": outcome.scenario.model_dump(mode="json"),
                **({"folder": folder} if (folder := comparison.folder(name)) is not None else {}),
                "results": document(outcome),
            }
            for name, outcome in zip(comparison.names, comparison.outcomes)
        ],
    }


def json_text(data: dict[str, Any]) -> str:
    """A document as text: stable key order, so identical runs give identical files."""
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def _scenario_record(scenario: Scenario, source: Source) -> ScenarioRecord:
    record: ScenarioRecord = {
        "name": scenario.name,
        "description": scenario.description,
        "seed": scenario.seed,
        "file": source.file,
        "sha256": source.sha256,
        "overrides": list(source.overrides),
    }
    if source.variant is not None:
        record["variant"] = source.variant
    if source.left_out:
        record["left_out"] = list(source.left_out)
    return record


def _intervals(documents: list[Any], path: tuple[str | int, ...], signed: bool = False) -> Any:
    """Replace each number of the documents (which share a shape) by its mean and interval.

    True/false figures become the fraction of replications where they held;
    a key missing from some documents (a reason that did not occur) counts
    as 0 there. A statistic over no samples (null) is left out of its mean,
    and ``replications`` then says how many replications the mean is of.
    An interval of a figure that cannot be negative starts at 0 at the
    lowest. Lists and text are left out.
    """
    first = next((document for document in documents if document is not None), None)
    if first is None:
        return {"mean": None, "low": None, "high": None, "replications": 0}
    if isinstance(first, dict):
        keys = list(dict.fromkeys(key for document in documents for key in (document or {})))
        merged = {
            key: _intervals([(document or {}).get(key, 0) for document in documents], (*path, key), signed)
            for key in keys
        }
        return {key: value for key, value in merged.items() if value is not None}
    if isinstance(first, bool | int | float):
        values = [float(value) for value in documents if value is not None]
        interval = mean_interval(values)
        low = interval.low if signed or signed_figure(path) else max(interval.low, 0.0)
        figure: dict[str, Any] = {
            "mean": interval.mean,
            "low": None if math.isnan(interval.low) else low,
            "high": None if math.isnan(interval.high) else interval.high,
        }
        if len(values) < len(documents):
            figure["replications"] = len(values)
        return figure
    return None


def _replicated_invariants(replications: Replications, figures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each bound of the invariants over the replications: in how many it held, and its measured mean and interval.

    Every replication checks the same bounds in the same order.
    """
    replicated = []
    for index, first in enumerate(figures[0]["invariants"]):
        measured = [document["invariants"][index]["measured"] for document in figures]
        signed = first["metric"] in COUNTER_MEASURES.values()
        replicated.append(
            {
                **{key: first[key] for key in ("name", "subject", "metric", "bound", "limit")},
                "passed": replications.invariant_passes(index),
                "replications": replications.runs,
                "measured": _intervals(measured, (), signed),
            }
        )
    return replicated


# ---------------------------------------------------------------- reading
@with_config(_STRICT)
class _ReplicationsHead(TypedDict):
    schema: Literal["busim.replications/1"]
    scenario: ScenarioRecord
    run: RunMetadata
    results: list[dict[str, Any]]  # each a ReplicatedRun, checked one by one


class _Variant(TypedDict):
    name: str
    overrides: list[str]
    scenario: NotRequired[dict[str, Any]]  # added to busim.compare/1 later: older files lack it
    folder: NotRequired[str]  # the finished run's folder it was read from, not simulated for the comparison
    results: dict[str, Any]  # a ResultDocument, or replications'


@with_config(_STRICT)
class _ComparisonHead(TypedDict):
    schema: Literal["busim.compare/1"]
    seed: int
    variants: list[_Variant]


def parse_json(text: str, source: str) -> dict[str, Any]:
    """A document's text as a JSON object.

    Raises:
        RunFolderError: ``source: not valid JSON (...)``, or not an object.
    """
    try:
        data = from_json(text)
    except ValueError as error:
        raise RunFolderError(f"{source}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{source}: expected an object (got {json_words(data)})")
    return data


def read_outcome(
    data: dict[str, Any],
    scenario: Scenario,
    source: str,
    scenario_name: str = "scenario.yaml",
    at: tuple[str | int, ...] = (),
) -> Result | Replications:
    """A run's or replications' results.json (parsed) as a :class:`Result` or :class:`Replications`.

    ``scenario`` is the scenario as run, read from ``scenario_name``; ``at``
    is where the document lies inside ``source``, for messages.

    Raises:
        RunFolderError: ``source: key.path: problem`` for the first problem.
    """
    kind = data.get("schema")
    if kind == RESULT_SCHEMA:
        typed = _validated(ResultDocument, data, source, at)
        _check_agreement(typed, scenario, source, at, scenario_name)
        result = _result(typed, scenario, _source(typed["scenario"]), typed["run"])
        return dataclasses.replace(result, real=typed.get("real"))
    if kind == REPLICATIONS_SCHEMA:
        head = _validated(_ReplicationsHead, data, source, at)
        if not head["results"]:
            raise RunFolderError(f"{source}: {_path((*at, 'results'))}: expected a run per replication (got none)")
        results, runs = [], []
        for index, run in enumerate(head["results"]):
            typed = _validated(ReplicatedRun, run, source, (*at, "results", index))
            runs.append(typed)
            _check_agreement(typed, scenario, source, (*at, "results", index), scenario_name)
            one = scenario.model_copy(update={"seed": typed["seed"]})
            results.append(_result(typed, one, _source(head["scenario"]), RunMetadata()))
        seeds = tuple(
            typed_seed for typed_seed in (result.scenario.seed for result in results) if typed_seed is not None
        )
        return Replications(scenario, seeds, tuple(results), _source(head["scenario"]), head["run"])
    where = f"{_path((*at, 'schema'))}: " if at else ""
    raise RunFolderError(
        f"{source}: {where}not the results of a busim run (schema {json_words(kind)}, not {RESULT_SCHEMA!r})"
    )


def read_comparison(data: dict[str, Any], source: str) -> Comparison:
    """compare.json (parsed) as a :class:`Comparison`: each variant's scenario and results read and checked.

    Raises:
        RunFolderError: ``source: key.path: problem`` for the first problem.
    """
    from busim.scenario.loader import Document, validate  # the checks scenario.yaml gets

    head = _validated(_ComparisonHead, data, source, ())
    if not head["variants"]:
        raise RunFolderError(f"{source}: variants: expected one or more (got an empty list)")
    names, outcomes, folders = [], [], []
    for index, variant in enumerate(head["variants"]):
        at: tuple[str | int, ...] = ("variants", index)
        if "scenario" not in variant:
            raise RunFolderError(
                f"{source}: {_path((*at, 'scenario'))}: missing; the file was written by an earlier busim, "
                "so run busim compare again"
            )
        where = _path((*at, "scenario"))
        try:
            scenario = validate(Document(variant["scenario"], source))
        except ScenarioError as error:
            first = error.problems[0]
            inside = f"{where}{'' if first.path.startswith('[') else '.'}{first.path}" if first.path else where
            raise RunFolderError(f"{source}: {inside}: {first.message}") from None
        outcomes.append(read_outcome(variant["results"], scenario, source, _path((*at, "scenario")), (*at, "results")))
        names.append(variant["name"])
        folders.append(variant.get("folder"))
    found = tuple(folders) if any(folder is not None for folder in folders) else ()
    return Comparison(tuple(names), tuple(outcomes), head["seed"], found)


def _source(record: ScenarioRecord) -> Source:
    return Source(
        record["file"],
        record["sha256"],
        tuple(record["overrides"]),
        record.get("variant"),
        tuple(record.get("left_out", ())),
    )


def _result(typed: Any, scenario: Scenario, source: Source, run: RunMetadata) -> Result:
    """A :class:`Result` from its validated document, without the raw record a simulation keeps."""
    summary = Summary(
        publishers=typed["publishers"],
        consumers=typed["consumers"],
        violations=tuple(typed["consistency"]["violations"]),
        chains=typed["chains"],
        invariants=tuple(typed["invariants"]),
        lifecycle=typed.get("lifecycle", {}),
    )
    return Result(
        scenario=scenario,
        summary=summary,
        sim_time_s=typed["sim_time_s"],
        drained=typed["drained"],
        messages=typed["messages"],
        stopped=typed.get("stopped"),
        source=source,
        run=run,
    )


def _validated(document: type, data: Any, source: str, at: tuple[str | int, ...]) -> Any:
    """``data`` checked against ``document`` (a typed dict of the schema), typed; lists read as tuples.

    Raises:
        RunFolderError: ``source: key.path: problem``, the path from the top of ``source``.
    """
    adapter = _adapter(document)
    try:
        typed = adapter.validate_json(json.dumps(data), strict=True)
    except ValidationError as error:
        raise RunFolderError(f"{source}: {_problem(error.errors(include_url=False)[0], document, at)}") from None
    if document in (ResultDocument, ReplicatedRun):
        # What the schema cannot say, but every run's figures keep and the reports rely on. Checked on the
        # document as read where a message echoes a value that validation may have turned into a float.
        dumped = adapter.dump_python(typed)
        problem = (
            _whole_number_problem(dumped, at)
            or _statistics_problem(dumped, at)
            or _crash_times_problem(data, at)
            or _series_problem(data, at)
            or _invariants_problem(data, at)
        )
        if problem:
            raise RunFolderError(f"{source}: {problem}")
    return typed


def _check_agreement(
    typed: Any, scenario: Scenario, source: str, at: tuple[str | int, ...], scenario_name: str
) -> None:
    """The results must name the consumers and publishers of their scenario, no more, no fewer.

    ``scenario_name`` says where the scenario is: scenario.yaml beside results.json, or inside compare.json.

    Raises:
        RunFolderError: naming the first that one has and the other lacks.
    """
    for section, names in (
        ("consumers", [consumer.name for consumer in scenario.consumers]),
        ("publishers", [publisher.name for publisher in scenario.publishers]),
    ):
        listed = ", ".join(names)
        for name in typed[section]:
            if name not in names:
                raise RunFolderError(
                    f"{source}: {_path((*at, section, name))}: not in {scenario_name} (its {section}: {listed}); "
                    "the results and the scenario come from different runs, or were edited"
                )
        for name in names:
            if name not in typed[section]:
                raise RunFolderError(
                    f"{source}: {_path((*at, section))}: lacks {name}, one of the {section} of {scenario_name}; "
                    "the results and the scenario come from different runs, or were edited"
                )


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _whole_number_problem(value: object, path: tuple[str | int, ...]) -> str | None:
    """The first whole number that no run writes: beyond ±2^63 (numpy's counts are 64-bit), or a count below 0."""
    if _whole(value):
        signed = signed_figure(path)
        if not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
            return f"{_path(path)}: expected a whole number within ±2^63 (got {json_words(value)})"
        if value < 0 and not signed:  # type: ignore[operator]
            return f"{_path(path)}: expected a whole number >= 0, a count (got {json_words(value)})"
        return None
    if isinstance(value, dict):
        items: typing.Iterable[tuple[str | int, object]] = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _whole_number_problem(item, (*path, key))
        if found:
            return found
    return None


_STATISTICS = tuple(field.name for field in dataclasses.fields(LatencySummary) if field.name != "count")


def _statistics_problem(value: object, path: tuple[str | int, ...]) -> str | None:
    """The first summary of durations (``{count, mean, p50, ..., max}``) whose statistics are null when it
    has samples, or numbers when it has none."""
    if isinstance(value, dict) and "count" in value and all(key in value for key in _STATISTICS):
        count = value["count"]
        for key in _STATISTICS:
            if (value[key] is None) != (count == 0):
                expected = "null" if count == 0 else "a number"
                got = json_words(value[key])
                return f"{_path((*path, key))}: expected {expected}, as count is {count:,} (got {got})"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _statistics_problem(item, (*path, key))
        if found:
            return found
    return None


def _crash_times_problem(document: dict[str, Any], at: tuple[str | int, ...]) -> str | None:
    """Crashes happen during the run: from 0 to ``sim_time_s``."""
    end_s = document["sim_time_s"]
    for name, consumer in document["consumers"].items():
        for index, time_s in enumerate(consumer["crash_times_s"]):
            if not 0 <= time_s <= end_s:
                return (
                    f"{_path((*at, 'consumers', name, 'crash_times_s', index))}: expected a time within the run, "
                    f"from 0 to sim_time_s, {end_s:g} (got {json_words(time_s)})"
                )
    return None


_SERIES = ("published", "processed", "backlog", "latency_p50_s", "latency_p99_s")


def _series_problem(document: dict[str, Any], at: tuple[str | int, ...]) -> str | None:
    """A consumer's series as the charts need it: positive windows, and one value per window in each list.

    ``document`` is results.json as read, checked against the schema: its values as written, to echo them.
    """
    for name, consumer in document["consumers"].items():
        series = consumer["series"]
        path = (*at, "consumers", name, "series")
        if series["window_s"] <= 0:
            return f"{_path((*path, 'window_s'))}: expected a number > 0 (got {json_words(series['window_s'])})"
        windows = len(series["published"])
        for key in _SERIES[1:]:
            if len(series[key]) != windows:
                return (
                    f"{_path((*path, key))}: expected one value per window, {windows:,} as published has "
                    f"(got {len(series[key]):,})"
                )
    return None


def _invariants_problem(document: dict[str, Any], at: tuple[str | int, ...]) -> str | None:
    """An invariant's bound on a counter names it as ``consumer.counter``, as the report spells it out."""
    for index, outcome in enumerate(document["invariants"]):
        if outcome["metric"] in COUNTER_MEASURES.values() and "." not in outcome["subject"]:
            return (
                f"{_path((*at, 'invariants', index, 'subject'))}: expected consumer.counter for the "
                f"{outcome['metric']} of a counter (got {json_words(outcome['subject'])})"
            )
    return None


# ---------------------------------------------------------------- problems in words
def _problem(error: ErrorDetails, document: type, at: tuple[str | int, ...]) -> str:
    """One validation error as ``key.path: message``, in the words of results.json rather than of Python.

    ``at`` is where the document checked lies in its file.
    """
    location = tuple(error["loc"])
    if error["type"] == "missing":
        message = "missing; the file was written by another version of busim, or edited"
    else:
        expected = _describe(_annotation_at(document, location))
        message = f"expected {expected} (got {json_words(error['input'])})"
    where = (*at, *location)
    return f"{_path(where)}: {message}" if where else message


def _path(location: tuple[str | int, ...]) -> str:
    """``("consumers", "inventory", "crash_times_s", 0)`` -> ``consumers.inventory.crash_times_s[0]``.

    A key that is not a plain name (a chain's, with spaces and ``>``) is quoted.
    """
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.replace("_", "a").replace("-", "a").replace(":", "a").isalnum():
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def _annotation_at(annotation: Any, location: tuple[str | int, ...]) -> Any:
    """The type the schema expects at ``location`` below ``annotation``; Any where it cannot tell."""
    for part in location:
        annotation = _non_null(annotation)
        origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is dict:
            annotation = arguments[1]
        elif origin is list or (origin is tuple and arguments[-1:] == (Ellipsis,)):
            annotation = arguments[0]
        elif origin is tuple and isinstance(part, int) and part < len(arguments):
            annotation = arguments[part]
        elif (is_typeddict(annotation) or dataclasses.is_dataclass(annotation)) and isinstance(part, str):
            annotation = typing.get_type_hints(annotation).get(part, Any)
        else:
            return Any
    return annotation


def _non_null(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    arguments = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
    if _is_union(annotation) and len(arguments) == 1:
        return arguments[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _describe(annotation: Any) -> str:
    """What a value of ``annotation`` looks like in JSON: ``a number or null``, ``an object``."""
    if _is_union(annotation):
        nullable = type(None) in typing.get_args(annotation)
        described = _describe(_non_null(annotation)) if nullable else "a value"
        return f"{described} or null" if nullable else described
    if annotation in _WORDS:
        return _WORDS[annotation]
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " or ".join(repr(argument) for argument in arguments)
    if origin is tuple and arguments[-1:] != (Ellipsis,):
        kinds = {_describe(argument) for argument in arguments}
        return (
            f"a list of {counted(len(arguments), 'number')}" if kinds == {"a number"} else f"a list of {len(arguments)}"
        )
    if origin in (list, tuple):
        return "a list"
    if origin is dict or is_typeddict(annotation) or dataclasses.is_dataclass(annotation):
        return "an object"
    return "a value"


_SHOWN_TEXT = 40  # characters of a string a message echoes


def json_words(value: object) -> str:
    """A value as a message echoes it, in the words of JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, int) and abs(value) >= 10**30:
        return f"a whole number of {counted(len(str(abs(value))), 'digit')}"
    if isinstance(value, str):
        return repr(value) if len(value) <= _SHOWN_TEXT else repr(value[:_SHOWN_TEXT]) + "..."
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}" if value else "an empty list"
    return repr(value)
