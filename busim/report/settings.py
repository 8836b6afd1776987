"""The configuration as run, in the words and units a scenario states it in: ``30min``, ``250ms``, ``700/s``.

Every setting of the broker, the publishers and the consumers, defaults
filled in, for the end of a report: never a bare number of seconds, and
never ``null``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from busim.report.tables import Column, Row, TableView, text_cell
from busim.scenario import Scenario
from busim.scenario.presets import COMMON_KEYS, PRESETS
from busim.scenario.units import ABSENT, parse_duration, parse_rate


def format_setting_duration(seconds: float) -> str:
    """A duration setting as a scenario can state it, exactly: ``30min``, ``2h``, ``45s``, ``1.5s``, ``250ms``."""
    if seconds >= 1:
        for scale, unit in ((3600.0, "h"), (60.0, "min")):
            if seconds >= scale and (seconds / scale).is_integer():
                return f"{seconds / scale:g}{unit}"
        return f"{seconds:g}s"
    if seconds == 0:
        return "0s"
    milliseconds = round(seconds * 1e3, 9)
    if milliseconds >= 1:
        return f"{milliseconds:g}ms"
    return f"{round(seconds * 1e6, 6):g}µs"


def format_rate(per_s: float) -> str:
    """A rate per second as a user would write it: ``1,000``, ``20``, ``0.5``."""
    return f"{per_s:,.0f}" if per_s >= 100 else f"{per_s:.3g}"


def _marks(annotation: Any) -> set[Callable[..., Any]]:
    """The parsers (durations, rates) that an annotation's validators name, through unions and Annotated."""
    found: set[Callable[..., Any]] = set()
    for item in getattr(annotation, "__metadata__", ()):
        func = getattr(item, "func", None)
        if func in (parse_duration, parse_rate):
            found.add(func)
    for argument in getattr(annotation, "__args__", ()) or ():
        found |= _marks(argument)
    return found


def setting_text(value: Any, marks: frozenset[Callable[..., Any]] = frozenset()) -> str:
    """A setting as a user would write it in YAML, on one line: durations and rates in their units
    (``30min``, ``250ms``, ``700/s``), a distribution as ``{exponential: {mean: 3ms}}``, and a setting
    left unset as a dash (never ``null``)."""
    if value is None:
        return ABSENT
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        applies = _applying_keys(value)
        # A required kind tags a distribution ({exponential: {...}}); a kind with a default is a key like any other.
        tagged = "kind" in fields and fields["kind"].is_required()
        items = [
            f"{key}: {setting_text(getattr(value, key), _field_marks(info))}"
            for key, info in fields.items()
            if not (tagged and key == "kind") and key in applies and getattr(value, key) not in (None, [], {})
        ]
        if "points" in fields:  # quantiles, as written: {p50: 3ms, p99: 5.4ms}
            points = value.points  # type: ignore[attr-defined]
            items = [f"p{percentile:g}: {format_setting_duration(duration)}" for percentile, duration in points.items()]
        inner = "{" + ", ".join(items) + "}"
        return f"{{{value.kind}: {inner}}}" if tagged else inner  # type: ignore[attr-defined]
    if isinstance(value, dict):
        if not value:
            return "none"
        return "{" + ", ".join(f"{key}: {setting_text(inner, marks)}" for key, inner in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(setting_text(inner, marks) for inner in value) + "]" if value else "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and parse_duration in marks:
        return format_setting_duration(float(value))
    if isinstance(value, int | float) and parse_rate in marks:
        return f"{format_rate(float(value))}/s"
    if isinstance(value, float) and value.is_integer():
        return f"{int(value)}"
    return str(value)


def _applying_keys(model: BaseModel) -> set[str]:
    """The keys that apply to ``model`` as set: those its serializer keeps (a random crash drops ``instance``,
    which only a scheduled crash reads)."""
    dumped = model.model_dump(mode="json")
    return set(dumped) if isinstance(dumped, dict) else set(type(model).model_fields)


def _field_marks(info: Any) -> frozenset[Callable[..., Any]]:
    """The parsers a model field names: on its own metadata, or within its annotation."""
    found = set(_marks(info.annotation))
    for item in info.metadata:
        func = getattr(item, "func", None)
        if func in (parse_duration, parse_rate):
            found.add(func)
    return frozenset(found)


def _settings_table(title: str, model: BaseModel, shown: Callable[[str], bool] = lambda _: True) -> TableView:
    applies = _applying_keys(model)
    rows = tuple(
        Row(key, (text_cell(setting_text(getattr(model, key), _field_marks(info))),))
        for key, info in type(model).model_fields.items()
        if shown(key) and key in applies
    )
    return TableView(title, (Column("value", right=False),), rows, label="key")


def configuration(scenario: Scenario) -> tuple[TableView, ...]:
    """The broker's, each publisher's and each consumer's settings as run, every default filled in."""
    broker = scenario.broker
    # The keys every broker takes and those of its preset; another preset's keys are unset and say nothing.
    applies = {*COMMON_KEYS, *PRESETS[broker.preset].defaults}
    return (
        _settings_table(
            f"Broker: {broker.preset}", broker, lambda key: key in applies or getattr(broker, key) is not None
        ),
        *(_settings_table(f"Publisher: {p.name}", p, lambda key: key != "name") for p in scenario.publishers),
        *(_settings_table(f"Consumer: {c.name}", c, lambda key: key != "name") for c in scenario.consumers),
    )
