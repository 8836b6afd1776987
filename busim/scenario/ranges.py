"""The values of one ``--vary`` axis: a list (``kafka,rabbitmq``) or a range (``1..64:x2``, ``10ms..1s:10``).

A range is ``START..END`` with an optional step after a colon:

- none: every integer from START to END (``1..64``);
- ``:xF``: geometric, START times F, F², ... up to END (``1..64:x2``), F > 1;
- ``:N``: N evenly spaced values, both ends included (``100/s..5000/s:10``), N >= 2;
- ``:+S``: arithmetic, START, START + S, ... up to END (``0..100:+10``, ``10ms..50ms:+10ms``).

END is included where the progression reaches it within float rounding. Both
ends are plain numbers, durations or rates (as :mod:`busim.scenario.units`
reads them), of one kind. Between integers written without a decimal point
and without a unit the values are integers, rounded where a step falls
between them; elsewhere they are floats in base units (seconds, per second).

Each value carries the text assigned to the key, which reads back as exactly
its number, and a short label that names it in variants, tables and charts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from busim.errors import OverrideError
from busim.scenario.loader import flow_text, read_value
from busim.scenario.units import parse_duration, parse_rate, written_kind

MAX_AXIS_VALUES = 1_000  # values on one axis: a grid multiplies them, and each is a simulation
# Relative: an end reached within float rounding counts as reached (1000 ** (1/3) is 9.999999999999998).
_TOLERANCE = 1e-9
# Float noise lies beyond the 15th significant digit (0.1 + 0.2 is 0.30000000000000004): values are rounded to it.
_SIGNIFICANT_DIGITS = 15
_SHOWN_VALUES = 12  # values a message lists before it cuts them short
_LABEL_DIGITS = 4  # a label's significant digits, more only where two labels would read the same

# START..END[:STEP]; the ends hold no colon, so a step's colon is the first.
_RANGE = re.compile(r"^\s*(?P<start>[^:]*?)\s*\.\.\s*(?P<end>[^:]*?)\s*(?::\s*(?P<step>.*?))?\s*$")
_NUMERIC_START = re.compile(r"^[-+]?\.?\d")
_INTEGER = re.compile(r"^\s*[-+]?\d+\s*$")
_POINTS = re.compile(r"^\d+$")
_STEP_HINT = "write :N for N points, :xF to multiply by F, or :+S to add S"
_KIND_WORDS = {"number": "a number", "duration": "a duration", "rate": "a rate"}
_PARSERS = {"number": float, "duration": parse_duration, "rate": parse_rate}  # each to base units

# Units a label is written in, with the amount that moves it up to the next: 999µs, then 1ms; 999s, then 16.67min.
_DURATION_LABEL_UNITS = (
    (1e-6, "µs", 1000),
    (1e-3, "ms", 1000),
    (1.0, "s", 1000),
    (60.0, "min", 60),
    (3600.0, "h", None),
)
_RATE_LABEL_UNITS = ((1.0, "s"), (60.0, "min"), (3600.0, "h"))


@dataclass(frozen=True)
class AxisValue:
    """One value of an axis."""

    text: str  # as assigned: KEY=text
    label: str  # as shown in names, tables and charts
    number: float | None  # in base units (seconds, per second, plain number) where numeric; None for words like kafka


@dataclass(frozen=True)
class Axis:
    """A key and the values it takes, in order."""

    key: str
    values: tuple[AxisValue, ...]


@dataclass(frozen=True)
class _End:
    written: str
    kind: str  # of units.QUANTITY_KINDS
    amount: float  # in base units
    integer: bool  # written as an integer: no decimal point, no exponent, no unit


def parse_axis(spec: str, flag: str = "--vary") -> Axis:
    """``KEY=V1,V2,...`` or ``KEY=START..END[:STEP]`` as an axis.

    A value list is read as YAML, as a file's values are; a plain word keeps
    its spelling (``off``, not the false YAML reads it as). Text counts as a
    range when both its ends begin like numbers (``1..64``, ``10ms..1s``) or
    it has a step (``a..b:10``); anything else is a list (``5..x`` is one
    word), and quoting (``'1..64'``) keeps a range a word.

    Raises:
        OverrideError: the spec is malformed, or its range is refused; the
            message names ``flag`` and echoes ``spec``.
    """
    key, equals, text = spec.partition("=")
    key = key.strip()
    source = f"{flag} {spec}"
    if not equals or not key or not text.strip():
        raise OverrideError(f"{source}: expected KEY=V1,V2,..., for example broker.preset=kafka,rabbitmq")
    match = _RANGE.match(text) if "," not in text else None
    if match and (
        match["step"] is not None or (_NUMERIC_START.match(match["start"]) and _NUMERIC_START.match(match["end"]))
    ):
        return Axis(key, _range(match["start"], match["end"], match["step"], source))
    return Axis(key, _listed(text, source))


# ---------------------------------------------------------------- lists
def _listed(text: str, source: str) -> tuple[AxisValue, ...]:
    """``V1,V2,...`` read as a YAML flow list, each value assigned and named as written."""
    # Read as a file's values are, within its limits: the text comes from the command line too.
    values, root = read_value(f"[{text}]", source, "the values are not valid YAML")
    nodes = root.value if root is not None else []
    if len(values) < 1:
        raise OverrideError(f"{source}: give at least one value")
    texts = [node.value if _plain(node) else flow_text(value) for value, node in zip(values, nodes, strict=True)]
    return tuple(AxisValue(text, text, _number_of(value)) for text, value in zip(texts, values, strict=True))


def _plain(node: yaml.Node) -> bool:
    """Whether ``node`` is an unquoted scalar, which reads the same on its own as in a flow list."""
    return isinstance(node, yaml.ScalarNode) and node.style is None


def _number_of(value: Any) -> float | None:
    """A listed value in base units: a number as it is, a duration in seconds, a rate per second; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        # Beyond floats (an integer of hundreds of digits) or not finite: a value, but no number to plot.
        return float(value) if abs(value) < 1e308 else None
    if isinstance(value, str):
        for parse in (parse_duration, parse_rate):
            try:
                return parse(value)
            except ValueError:
                continue
    return None


# ---------------------------------------------------------------- ranges
def _range(start_text: str, end_text: str, step: str | None, source: str) -> tuple[AxisValue, ...]:
    """The values of ``START..END[:STEP]``, refused as ``source`` when they cannot be."""
    start, end = _end(start_text, "start", source), _end(end_text, "end", source)
    if start.kind != end.kind:
        raise OverrideError(
            f"{source}: both ends must be of one kind ({start.written} is {_KIND_WORDS[start.kind]}, "
            f"{end.written} {_KIND_WORDS[end.kind]})"
        )
    if start.amount >= end.amount:
        relation = "is" if start.amount == end.amount else ">"
        raise OverrideError(f"{source}: the range must go up ({start.written} {relation} {end.written})")
    amounts = _amounts(start, end, step, source)
    if start.integer and end.integer and _whole_step(step):
        integers = [math.floor(amount + 0.5) for amount in amounts]  # half up, as people round
        if len(set(integers)) < len(integers):
            shown = ", ".join(str(integer) for integer in integers[:_SHOWN_VALUES])
            shown += ", …" if len(integers) > _SHOWN_VALUES else ""
            raise OverrideError(
                f"{source}: rounded to integers, the values repeat ({shown}); give fewer points, "
                f"or a decimal end ({start.written}.0..{end.written}) for values between integers"
            )
        return tuple(AxisValue(str(integer), str(integer), float(integer)) for integer in integers)
    amounts = [float(f"{amount:.{_SIGNIFICANT_DIGITS}g}") for amount in amounts]
    if len(set(amounts)) < len(amounts):
        raise OverrideError(f"{source}: the values are too close together to tell apart; give fewer points")
    texts = [_text(amount, start.kind) for amount in amounts]
    labels = _labels(amounts, start.kind) or texts
    return tuple(AxisValue(*value) for value in zip(texts, labels, amounts, strict=True))


def _whole_step(step: str | None) -> bool:
    """Whether ``step`` keeps integer ends on integers: all but a fractional ``+S`` (``0..1:+0.25`` steps
    between integers on purpose; ``1..64:x1.5`` and ``1..10:4`` round to whole numbers, as instances need)."""
    return step is None or not step.startswith("+") or bool(_INTEGER.match(step[1:]))


def _end(written: str, which: str, source: str) -> _End:
    """One end of a range, in base units."""
    kind = written_kind(written)
    if kind is None:
        raise OverrideError(
            f"{source}: the {which} {written!r} is not a number, a duration such as 10ms or a rate such as 100/s"
        )
    try:
        amount = _PARSERS[kind](written)
    except ValueError as error:
        raise OverrideError(f"{source}: the {which} {written}: {error}") from None
    if not math.isfinite(amount):
        raise OverrideError(f"{source}: the {which} {written} is not finite")
    return _End(written, kind, amount, kind == "number" and bool(_INTEGER.match(written)))


def _amounts(start: _End, end: _End, step: str | None, source: str) -> list[float]:
    """The values from ``start`` to ``end`` by ``step``, in base units; ``end`` itself where they reach it."""
    if step is None and start.kind != "number":
        raise OverrideError(f"{source}: a range of {start.kind}s needs a step; {_STEP_HINT}")
    step = "+1" if step is None else step
    if _POINTS.match(step):
        points = int(step)
        if points < 2:
            raise OverrideError(f"{source}: a range of N points needs N >= 2, for its two ends (got {points})")
        _check_count(points - 1, source)
        span = end.amount - start.amount
        return [start.amount + span * index / (points - 1) for index in range(points - 1)] + [end.amount]
    if step.startswith("x"):
        factor = _factor(step, source)
        if start.amount <= 0:
            raise OverrideError(f"{source}: a range that multiplies must start above 0 (got {start.written})")
        steps = math.log(end.amount / start.amount) / math.log(factor)
        amounts = [start.amount * factor**index for index in range(_check_count(steps, source))]
    elif step.startswith("+"):
        increment = _increment(step, start, source)
        steps = (end.amount - start.amount) / increment
        amounts = [start.amount + increment * index for index in range(_check_count(steps, source))]
    else:
        raise OverrideError(f"{source}: unknown step {step!r}; {_STEP_HINT}")
    if math.isclose(amounts[-1], end.amount, rel_tol=_TOLERANCE):
        amounts[-1] = end.amount  # reached within rounding: the end as written, not 64.00000000000001
    return amounts


def _factor(step: str, source: str) -> float:
    """The F of ``:xF``; more than 1."""
    try:
        factor = float(step[1:])
    except ValueError:
        raise OverrideError(f"{source}: unknown step {step!r}; {_STEP_HINT}") from None
    if not factor > 1 or not math.isfinite(factor):
        raise OverrideError(f"{source}: a range that multiplies must multiply by more than 1 (got {step})")
    return factor


def _increment(step: str, start: _End, source: str) -> float:
    """The S of ``:+S``, of the kind of the ends (``+10ms`` or ``+0.01`` between durations); more than 0."""
    written = step[1:]
    if written_kind(written) not in ("number", start.kind):
        kind = _KIND_WORDS[start.kind] + ("" if start.kind == "number" else ", as the ends are, or a plain number")
        raise OverrideError(f"{source}: the step {step} must add {kind}")
    try:
        increment = _PARSERS[start.kind](written)
    except ValueError:  # a negative duration or rate
        increment = -1.0
    if not increment > 0 or not math.isfinite(increment):
        raise OverrideError(f"{source}: a range that adds must add more than 0 (got {step})")
    return increment


def _check_count(steps: float, source: str) -> int:
    """How many values ``steps`` steps past the start make (the start and each whole step); refused past the cap."""
    count = math.floor(steps * (1 + _TOLERANCE) + _TOLERANCE) + 1 if steps < 1e15 else math.inf
    if count > MAX_AXIS_VALUES:
        shown = f"{count:,}" if math.isfinite(count) else "too many"
        raise OverrideError(
            f"{source}: the range makes {shown} values, more than the {MAX_AXIS_VALUES:,} an axis may have; "
            "take a larger step (:x2, :+10) or fewer points (:10)"
        )
    return count


# ---------------------------------------------------------------- texts and labels
def _text(amount: float, kind: str) -> str:
    """What is assigned to the key: ``amount`` in base units, reading back as exactly ``amount``."""
    if kind == "duration":
        return f"{amount!r}s"
    if kind == "rate":
        return f"{amount!r}/s"
    return flow_text(amount)


def _labels(amounts: list[float], kind: str) -> list[str] | None:
    """Short names for ``amounts``, to as few significant digits as keep them apart (4 or more); None if none do."""
    # One unit for a whole axis of rates, that of its smallest, so that a column reads alike.
    rate_unit = next(
        ((scale, unit) for scale, unit in _RATE_LABEL_UNITS if amounts[0] * scale >= 1), _RATE_LABEL_UNITS[-1]
    )
    for digits in range(_LABEL_DIGITS, 18):
        if kind == "duration":
            labels = [_duration_label(amount, digits) for amount in amounts]
        elif kind == "rate":
            labels = [f"{_significant(amount * rate_unit[0], digits)}/{rate_unit[1]}" for amount in amounts]
        else:
            labels = [_significant(amount, digits) for amount in amounts]
        if len(set(labels)) == len(labels):
            return labels
    return None


def _duration_label(seconds: float, digits: int) -> str:
    """A duration in the largest unit it reaches: ``250µs``, ``10ms``, ``1.5s``, ``2min``, ``1h``."""
    if seconds == 0:
        return "0s"
    for scale, unit, limit in _DURATION_LABEL_UNITS:
        text = _significant(seconds / scale, digits)
        # Move up a unit when rounding reaches the next one (999.96µs is 1ms).
        if limit is None or float(text) < limit:
            return f"{text}{unit}"
    raise AssertionError("the last unit has no limit")


def _significant(number: float, digits: int) -> str:
    """``number`` to ``digits`` significant digits, without a trailing ``.0`` or an exponent where it is whole."""
    rounded = float(f"{number:.{digits}g}")
    return str(int(rounded)) if rounded.is_integer() and abs(rounded) < 1e16 else repr(rounded)
