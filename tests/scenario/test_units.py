import pytest
from hypothesis import given
from hypothesis import strategies as st

from busim.scenario.units import SECONDS_PER_DURATION_UNIT, parse_duration, parse_rate


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("2s", 2.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("40us", 4e-5),
        (" 1.5 s ", 1.5),
        (3, 3.0),
        ("7", 7.0),
        # Every spelling systemd and Go accept, short of days.
        ("5min", 300.0),
        ("5 min", 300.0),
        ("2 minutes", 120.0),
        ("30sec", 30.0),
        ("1 second", 1.0),
        ("1.5hr", 5400.0),
        ("2 hours", 7200.0),
        ("250msec", 0.25),
        ("3µs", 3e-6),  # the micro sign
        ("3μs", 3e-6),  # the Greek mu, which looks the same
        ("8usec", 8e-6),
    ],
)
def test_durations_parse_to_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("800/s", 800.0),
        ("60/min", 1.0),
        ("3600/h", 1.0),
        (12, 12.0),
        ("0.5", 0.5),
        # A rate takes every unit a duration takes: 90/m is 90/min, as 5m is 5min.
        ("90/m", 1.5),
        ("3/sec", 3.0),
        ("120 / minute", 2.0),
        ("2/ms", 2000.0),
    ],
)
def test_rates_parse_to_messages_per_second(text, per_second):
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "5 parsecs",
            "invalid duration '5 parsecs': expected seconds as a number or a string such as "
            "'250ms', '2s', '5min' (units: us, ms, s, min or m, h)",
        ),
        ("-3s", "a duration must be >= 0 (got '-3s')"),
        (
            True,
            "invalid duration true: expected seconds as a number or a string such as "
            "'250ms', '2s', '5min' (units: us, ms, s, min or m, h)",
        ),
        (  # units are case-sensitive: M, were it one, would be months
            "5M",
            "invalid duration '5M': expected seconds as a number or a string such as "
            "'250ms', '2s', '5min' (units: us, ms, s, min or m, h)",
        ),
        (float("inf"), "a duration must be finite (got inf)"),
    ],
)
def test_bad_durations_say_why(value, message):
    with pytest.raises(ValueError) as error:
        parse_duration(value)
    assert str(error.value) == message


@pytest.mark.parametrize("text", ["5 per second", "3/d", "5/s/s", "5min"])
def test_bad_rate_says_why(text):
    with pytest.raises(ValueError) as error:
        parse_rate(text)
    assert str(error.value) == (
        f"invalid rate '{text}': expected a number per second or a string such as '800/s', '50/min', '3/h' "
        "(per us, ms, s, min or m, h)"
    )


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False), st.sampled_from(sorted(SECONDS_PER_DURATION_UNIT)))
def test_any_duration_written_with_a_unit_reads_back(amount, unit):
    assert parse_duration(f"{amount!r}{unit}") == pytest.approx(amount * SECONDS_PER_DURATION_UNIT[unit])


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False), st.sampled_from(sorted(SECONDS_PER_DURATION_UNIT)))
def test_any_rate_written_with_a_unit_reads_back(amount, unit):
    assert parse_rate(f"{amount!r}/{unit}") == pytest.approx(amount / SECONDS_PER_DURATION_UNIT[unit])
