"""A run's output folder read back: its results.json, checked against its schema, and the scenario it ran.

``busim report`` and ``busim explain`` start from a run's folder rather than
from a simulation, and read it with :func:`read_run_folder`. results.json is
checked strictly against the dataclasses that wrote it (the summaries of
:mod:`busim.analysis`, through :class:`ResultDocument`), and against the
folder's scenario.yaml, so that a file cut short, edited by hand or paired
with another run's scenario is refused naming the first bad key, instead of
failing halfway through a chart. Keys the schema does not know are ignored:
later versions of busim add keys and never rename or remove one
(docs/results.md).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NotRequired

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from pydantic_core import ErrorDetails, from_json
from typing_extensions import TypedDict, is_typeddict

from busim.analysis.chains import ChainSummary
from busim.analysis.invariants import COUNTER_MEASURES, InvariantOutcome
from busim.analysis.latency import LatencySummary
from busim.analysis.summary import ConsumerSummary, PublisherSummary
from busim.api import COMPARISON_SCHEMA, REPLICATIONS_SCHEMA, RESULT_SCHEMA, Result
from busim.engine.records import Stop
from busim.errors import RunFolderError
from busim.report.files import COMPARE_JSON, RESULTS_FILE, SCENARIO_FILE
from busim.scenario import LoadedScenario, Scenario, load_scenario
from busim.scenario.schema import INT64_MAX, INT64_MIN
from busim.words import counted


# ---------------------------------------------------------------- the schema of results.json
# What Result.to_dict() writes around the summaries; the summaries are the analysis's own dataclasses.
class ScenarioRecord(TypedDict):
    name: str
    description: str
    seed: int | None
    file: str | None
    sha256: str | None
    overrides: list[str]


class RunMetadata(TypedDict):
    wall_time_s: float
    busim_version: str
    python_version: str
    numpy_version: str
    simpy_version: str


class MessageCounts(TypedDict):
    published: int
    emitted: int


class Consistency(TypedDict):
    consistent: bool
    violations: list[str]


# Strict: "5" is not a count and 1 is not true; NaN and infinities are not numbers (json.dumps(allow_nan=False)
# writes none). The nested dataclasses and typed dicts take this configuration.
@with_config(ConfigDict(strict=True, allow_inf_nan=False))
class ResultDocument(TypedDict):
    """results.json of a single run (schema ``busim.result/1``), as :meth:`busim.api.Result.to_dict` writes it."""

    schema: Literal["busim.result/1"]
    scenario: ScenarioRecord
    run: RunMetadata
    sim_time_s: float
    drained: bool
    stopped: NotRequired[Stop | None]  # added to busim.result/1 later: older files lack it
    messages: MessageCounts
    publishers: dict[str, PublisherSummary]
    consumers: dict[str, ConsumerSummary]
    consistency: Consistency
    invariants: list[InvariantOutcome]
    chains: dict[str, ChainSummary]


@functools.cache
def _result_document() -> TypeAdapter[ResultDocument]:
    return TypeAdapter(ResultDocument)


# ---------------------------------------------------------------- a run's folder
@dataclass(frozen=True)
class RunView:
    """What the charts and reports of a run draw on: its scenario and its results.json document.

    Built from a finished run, or read back from a run's folder, so that a
    report can be drawn again without simulating.
    """

    scenario: Scenario
    document: dict[str, Any]

    @classmethod
    def of(cls, result: Result | RunView) -> RunView:
        return result if isinstance(result, RunView) else cls(result.scenario, result.to_dict())

    @property
    def consumers(self) -> dict[str, dict[str, Any]]:
        return self.document["consumers"]


@dataclass(frozen=True)
class RunFolder:
    """A single run's folder, read and checked: its resolved scenario and its results.json document."""

    path: Path
    loaded: LoadedScenario
    document: dict[str, Any]

    @property
    def view(self) -> RunView:
        return RunView(self.loaded.scenario, self.document)


def read_run_folder(folder: Path, command: str) -> RunFolder:
    """Read a single run's folder (results.json and scenario.yaml, as ``busim run`` writes them) for ``command``.

    Raises:
        RunFolderError: the folder is missing or lacks either file; it holds replications or a comparison;
            results.json is not JSON, departs from its schema, or names other consumers or publishers than
            scenario.yaml.
        ScenarioError: its scenario.yaml is not a valid scenario.
    """
    if not folder.exists():
        raise RunFolderError(f"{folder}: no such folder; give the output folder of a busim run")
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: not a folder; give the output folder of a busim run")
    results = folder / RESULTS_FILE
    if not results.is_file() and (folder / COMPARE_JSON).is_file():
        raise RunFolderError(
            f"{folder}: holds a comparison ({COMPARE_JSON}); {command} needs a single run's folder, "
            "such as one made by busim run"
        )
    for path in (results, folder / SCENARIO_FILE):
        if not path.is_file():
            raise RunFolderError(f"{folder}: no {path.name} here; give the output folder of a busim run")
    try:
        text = results.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RunFolderError(f"{results}: cannot read it ({getattr(error, 'strerror', None) or error})") from None
    document = _checked_document(text, results, folder, command)
    loaded = load_scenario(folder / SCENARIO_FILE)
    _check_agreement(document, loaded.scenario, results)
    return RunFolder(folder, loaded, document)


def _checked_document(text: str, results: Path, folder: Path, command: str) -> dict[str, Any]:
    """results.json's text as the document of a single run, checked against :class:`ResultDocument`.

    Raises:
        RunFolderError: naming the first problem.
    """
    try:
        data = from_json(text)
    except ValueError as error:
        raise RunFolderError(f"{results}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{results}: expected an object (got {_got(data)})")
    schema = data.get("schema")
    if schema == REPLICATIONS_SCHEMA:
        count, seeds = data.get("replications"), data.get("seeds")
        how = "run one of them with --seed"
        if isinstance(seeds, list) and seeds and _whole(seeds[0]):
            how += f", e.g. --seed {seeds[0]}"
        held = counted(count, "replication") if _whole(count) else "replications"
        raise RunFolderError(f"{folder}: holds {held}; {command} needs a single run ({how})")
    if schema == COMPARISON_SCHEMA:
        raise RunFolderError(f"{folder}: holds a comparison; {command} needs a single run's folder")
    if schema != RESULT_SCHEMA:
        raise RunFolderError(
            f"{results}: not the results of a busim run (schema {_got(schema)}, not {RESULT_SCHEMA!r})"
        )
    adapter = _result_document()
    try:
        validated = adapter.validate_json(text, strict=True)
    except ValidationError as error:
        raise RunFolderError(f"{results}: {_problem(error.errors(include_url=False)[0])}") from None
    # The validated dataclasses as plain data again, as Result.to_dict() gives them: unknown keys left out.
    document = adapter.dump_python(validated)
    # What the schema cannot say, but every run's figures keep and the charts rely on. Checked on the document
    # as read where a message echoes a value that validation may have turned into a float.
    problem = (
        _whole_number_problem(document, ())
        or _statistics_problem(document, ())
        or _crash_times_problem(data)
        or _series_problem(data)
        or _invariants_problem(data)
    )
    if problem:
        raise RunFolderError(f"{results}: {problem}")
    return document


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# A counter's values, balances and keys (an event's field) can be below 0; every other whole number of a run
# counts something.
_SIGNED = ("expected_total", "actual_total", "lowest", "highest", "expected", "actual", "key")


def _whole_number_problem(value: object, path: tuple[str | int, ...]) -> str | None:
    """The first whole number that no run writes: beyond ±2^63 (numpy's counts are 64-bit), or a count below 0."""
    if _whole(value):
        signed = path[:1] == ("consumers",) and path[2:3] == ("state",) and path[-1] in _SIGNED
        if not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
            return f"{_path(path)}: expected a whole number within ±2^63 (got {_got(value)})"
        if value < 0 and not signed:  # type: ignore[operator]
            return f"{_path(path)}: expected a whole number >= 0, a count (got {_got(value)})"
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
                return f"{_path((*path, key))}: expected {expected}, as count is {count:,} (got {_got(value[key])})"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _statistics_problem(item, (*path, key))
        if found:
            return found
    return None


def _crash_times_problem(document: dict[str, Any]) -> str | None:
    """Crashes happen during the run: from 0 to ``sim_time_s``."""
    end_s = document["sim_time_s"]
    for name, consumer in document["consumers"].items():
        for index, time_s in enumerate(consumer["crash_times_s"]):
            if not 0 <= time_s <= end_s:
                return (
                    f"{_path(('consumers', name, 'crash_times_s', index))}: expected a time within the run, "
                    f"from 0 to sim_time_s, {end_s:g} (got {_got(time_s)})"
                )
    return None


_SERIES = ("published", "processed", "backlog", "latency_p50_s", "latency_p99_s")


def _series_problem(document: dict[str, Any]) -> str | None:
    """A consumer's series as the charts need it: positive windows, and one value per window in each list.

    ``document`` is results.json as read, checked against the schema: its values as written, to echo them.
    """
    for name, consumer in document["consumers"].items():
        series = consumer["series"]
        path = ("consumers", name, "series")
        if series["window_s"] <= 0:
            return f"{_path((*path, 'window_s'))}: expected a number > 0 (got {_got(series['window_s'])})"
        windows = len(series["published"])
        for key in _SERIES[1:]:
            if len(series[key]) != windows:
                return (
                    f"{_path((*path, key))}: expected one value per window, {windows:,} as published has "
                    f"(got {len(series[key]):,})"
                )
    return None


def _invariants_problem(document: dict[str, Any]) -> str | None:
    """An invariant's bound on a counter names it as ``consumer.counter``, as the report spells it out."""
    for index, outcome in enumerate(document["invariants"]):
        if outcome["metric"] in COUNTER_MEASURES.values() and "." not in outcome["subject"]:
            return (
                f"{_path(('invariants', index, 'subject'))}: expected consumer.counter for the {outcome['metric']} "
                f"of a counter (got {_got(outcome['subject'])})"
            )
    return None


def _check_agreement(document: dict[str, Any], scenario: Scenario, results: Path) -> None:
    """results.json must name the consumers and publishers of scenario.yaml, no more, no fewer.

    Raises:
        RunFolderError: naming the first that one has and the other lacks.
    """
    for section, names in (
        ("consumers", [consumer.name for consumer in scenario.consumers]),
        ("publishers", [publisher.name for publisher in scenario.publishers]),
    ):
        listed = ", ".join(names)
        for name in document[section]:
            if name not in names:
                raise RunFolderError(
                    f"{results}: {_path((section, name))}: not in {SCENARIO_FILE} (its {section}: {listed}); "
                    "the two files come from different runs, or were edited"
                )
        for name in names:
            if name not in document[section]:
                raise RunFolderError(
                    f"{results}: {section}: lacks {name}, one of the {section} of {SCENARIO_FILE}; "
                    "the two files come from different runs, or were edited"
                )


# ---------------------------------------------------------------- problems in words
def _problem(error: ErrorDetails) -> str:
    """One validation error as ``key.path: message``, in the words of results.json rather than of Python."""
    location = tuple(error["loc"])
    if error["type"] == "missing":
        message = "missing; the file was written by another version of busim, or edited"
    else:
        expected = _describe(_annotation_at(ResultDocument, location))
        message = f"expected {expected} (got {_got(error['input'])})"
    return f"{_path(location)}: {message}" if location else message


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


def _got(value: object) -> str:
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
