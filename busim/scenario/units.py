"""Durations and rates as users write them (``250ms``, ``2s``, ``5min``, ``800/s``), and durations as they read them.

A duration is a number of seconds or a string of a number and a unit: ``us``,
``ms``, ``s``, ``min`` (or ``m``), ``h``, or the longer spellings systemd
accepts (``sec``, ``minutes``, ``hr``, ...) and their plurals (``mins``); a
space may come between. A rate is a number per second or a string ``N/UNIT``
with any of the same units (``800/s``, ``50/min``, ``50/m``, ``3/h``). Both
parse to floats in SI units (seconds, messages per second) and are never
negative.
"""

from __future__ import annotations

import math
import re

# Case matters (as in Go and systemd): M, were it a unit, would be months. No days: scenarios
# run for seconds to hours, and 24h says a day plainly. Rates take the same units: 50/m is 50/min.
SECONDS_PER_DURATION_UNIT = {
    **dict.fromkeys(("us", "µs", "μs", "usec"), 1e-6),  # the micro sign and the Greek mu, as Go reads both
    **dict.fromkeys(("ms", "msec"), 1e-3),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# Longest first, so that "ms" is not read as "m" followed by junk.
_UNIT = "|".join(re.escape(unit) for unit in sorted(SECONDS_PER_DURATION_UNIT, key=len, reverse=True))
_DURATION = re.compile(rf"^\s*({_NUMBER})\s*({_UNIT})?\s*$")
_RATE = re.compile(rf"^\s*({_NUMBER})\s*(?:/\s*({_UNIT}))?\s*$")

# The same forms for a JSON Schema (ECMA-262 regular expressions), where a sign never comes: a duration
# or a rate is never negative.
_UNSIGNED = r"\+?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
DURATION_PATTERN = rf"^\s*{_UNSIGNED}\s*(?:{_UNIT})?\s*$"
RATE_PATTERN = rf"^\s*{_UNSIGNED}\s*(?:/\s*(?:{_UNIT}))?\s*$"

DURATION_HINT = "expected seconds as a number or a string such as '250ms', '2s', '5min' (units: us, ms, s, min or m, h)"
RATE_HINT = "expected a number per second or a string such as '800/s', '50/min', '3/h' (per us, ms, s, min or m, h)"


QUANTITY_KINDS = ("number", "duration", "rate")
_PLAIN_NUMBER = re.compile(rf"^\s*{_NUMBER}\s*$")
_WITH_UNIT = re.compile(rf"^\s*{_NUMBER}\s*(?:{_UNIT})\s*$")
_PER_UNIT = re.compile(rf"^\s*{_NUMBER}\s*/\s*(?:{_UNIT})\s*$")


def written_kind(text: str) -> str | None:
    """What ``text`` is written as, of :data:`QUANTITY_KINDS`: a plain number (``12``), a duration
    (a number and a unit, ``10ms``), a rate (a number per unit, ``100/s``); None for anything else."""
    for kind, pattern in zip(QUANTITY_KINDS, (_PLAIN_NUMBER, _WITH_UNIT, _PER_UNIT), strict=True):
        if pattern.match(text):
            return kind
    return None


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an integer beyond a float's range, as infinite as 1e999
            return math.inf
    return None


def _written(value: object) -> str:
    """``value`` as YAML writes it in a message: ``true`` and ``null``, not Python's ``True`` and ``None``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return "(a mapping)" if isinstance(value, dict) else "(a list)"
    return repr(value)


def _checked(amount: float, value: object, what: str) -> float:
    if not math.isfinite(amount):
        raise ValueError(f"{what} must be finite (got {value!r})")
    if amount < 0:
        raise ValueError(f"{what} must be >= 0 (got {value!r})")
    return amount


def parse_duration(value: object) -> float:
    """Return ``value`` as seconds.

    Raises:
        ValueError: the value is not a duration, or is negative or infinite.
    """
    number = _number(value)
    if number is not None:
        return _checked(number, value, "a duration")
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            amount = float(match.group(1)) * SECONDS_PER_DURATION_UNIT[match.group(2) or "s"]
            return _checked(amount, value, "a duration")
    raise ValueError(f"invalid duration {_written(value)}: {DURATION_HINT}")


def parse_rate(value: object) -> float:
    """Return ``value`` as messages per second.

    Raises:
        ValueError: the value is not a rate, or is negative or infinite.
    """
    number = _number(value)
    if number is not None:
        return _checked(number, value, "a rate")
    if isinstance(value, str):
        match = _RATE.match(value)
        if match:
            amount = float(match.group(1)) / SECONDS_PER_DURATION_UNIT[match.group(2) or "s"]
            return _checked(amount, value, "a rate")
    raise ValueError(f"invalid rate {_written(value)}: {RATE_HINT}")


def duration_json_schema(positive: bool = False) -> dict[str, object]:
    """What a duration may be written as, for a JSON Schema: seconds, or a string of a number and a unit."""
    bound = {"exclusiveMinimum": 0} if positive else {"minimum": 0}
    return {
        "anyOf": [{"type": "number", **bound}, {"type": "string", "pattern": DURATION_PATTERN}],
        "description": "seconds, or a number and a unit: 250ms, 2s, 5min (us, ms, s, min or m, h)",
    }


def rate_json_schema(positive: bool = False) -> dict[str, object]:
    """What a rate may be written as, for a JSON Schema: per second, or a string such as 800/s."""
    bound = {"exclusiveMinimum": 0} if positive else {"minimum": 0}
    return {
        "anyOf": [{"type": "number", **bound}, {"type": "string", "pattern": RATE_PATTERN}],
        "description": "messages per second, or a number per unit of time: 800/s, 50/min, 3/h",
    }


# ---------------------------------------------------------------- and back, for people
ABSENT = "—"  # a figure with no value: no sample of it, or none measured
_DURATION_UNITS = ((1e-6, "µs"), (1e-3, "ms"), (1.0, "s"))
NEGLIGIBLE_S = 1e-9  # shorter than any time a scenario can state meaningfully


def format_duration(seconds: float | None) -> str:
    """A duration for people, to three significant digits: ``412µs``, ``12.3ms``, ``4.21s``, ``3m05s``."""
    if seconds is None:
        return ABSENT
    if abs(seconds) < NEGLIGIBLE_S:
        return "0s"  # rounding noise of float arithmetic, such as a queue wait of 3.5e-17 s
    for scale, unit in _DURATION_UNITS:
        text = f"{seconds / scale:.3g}"
        # Move up a unit when rounding reaches the next one (999.96µs is 1ms, 59.97s is 1m00s).
        if float(text) < (60 if unit == "s" else 1000) and "e" not in text:
            return f"{text}{unit}"
    minutes, rest = divmod(round(seconds), 60)
    if minutes >= 60:
        hours, minutes = divmod(minutes, 60)
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{rest:02d}s"
