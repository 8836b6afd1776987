"""Durations and rates as users write them: ``250ms``, ``2s``, ``800/s``.

A duration is a number of seconds or a string with one of the units ``us``,
``ms``, ``s``, ``m``, ``h``. A rate is a number per second or a string
``N/s``, ``N/min`` or ``N/h``. Both parse to floats in SI units (seconds,
messages per second) and are never negative.
"""

from __future__ import annotations

import math
import re

SECONDS_PER_DURATION_UNIT = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
SECONDS_PER_RATE_UNIT = {"s": 1.0, "min": 60.0, "h": 3600.0}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_DURATION = re.compile(rf"^\s*({_NUMBER})\s*(us|µs|ms|s|m|h)?\s*$")
_RATE = re.compile(rf"^\s*({_NUMBER})\s*(?:/\s*(s|min|h))?\s*$")

DURATION_HINT = "expected seconds as a number or a string such as '250ms', '2s', '5m' (units: us, ms, s, m, h)"
RATE_HINT = "expected a number per second or a string such as '800/s', '50/min', '3/h'"


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


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
    raise ValueError(f"invalid duration {value!r}: {DURATION_HINT}")


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
            amount = float(match.group(1)) / SECONDS_PER_RATE_UNIT[match.group(2) or "s"]
            return _checked(amount, value, "a rate")
    raise ValueError(f"invalid rate {value!r}: {RATE_HINT}")
