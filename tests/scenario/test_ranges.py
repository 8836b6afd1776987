import re

import pytest

from busim.errors import OverrideError
from busim.scenario.loader import load_scenario
from busim.scenario.ranges import MAX_AXIS_VALUES, Axis, AxisValue, parse_axis
from tests.conftest import SCENARIOS

FLASH_SALE = SCENARIOS / "flash-sale.yaml"


def _texts(spec: str) -> list[str]:
    return [value.text for value in parse_axis(spec).values]


def _labels(spec: str) -> list[str]:
    return [value.label for value in parse_axis(spec).values]


def _numbers(spec: str) -> list[float | None]:
    return [value.number for value in parse_axis(spec).values]


def test_a_range_of_integers_is_every_integer_between_its_ends():
    axis = parse_axis("consumers.inventory.instances=1..5")
    assert axis == Axis(
        "consumers.inventory.instances",
        tuple(AxisValue(str(count), str(count), float(count)) for count in range(1, 6)),
    )


@pytest.mark.parametrize(
    ("spec", "texts"),
    [
        ("k=1..64:x2", ["1", "2", "4", "8", "16", "32", "64"]),
        ("k=1..100:x2", ["1", "2", "4", "8", "16", "32", "64"]),  # 100 is not on the progression
        ("k=1..1000:x10", ["1", "10", "100", "1000"]),  # 1000 ** (1/3) falls short of 10 by rounding
        ("k=1..10:4", ["1", "4", "7", "10"]),
        ("k=1..4:3", ["1", "3", "4"]),  # 2.5 rounds half up
        ("k=0..100:+25", ["0", "25", "50", "75", "100"]),
        ("k=-5..5:+5", ["-5", "0", "5"]),
        ("k=1..10:x3.5", ["1", "4"]),  # 3.5 rounds half up; 12.25 is past 10
        ("k=1.0..3", ["1.0", "2.0", "3.0"]),  # a decimal end: floats
        ("k=0.1..0.5:+0.1", ["0.1", "0.2", "0.3", "0.4", "0.5"]),  # not 0.30000000000000004
        ("k=0..1:+0.25", ["0.0", "0.25", "0.5", "0.75", "1.0"]),  # a fractional step between integer ends
        ("k=0.0..1:5", ["0.0", "0.25", "0.5", "0.75", "1.0"]),
        ("k=1e-5..1e-3:x10", ["1.0e-05", "0.0001", "0.001"]),  # as YAML reads a float back, not as a word
    ],
)
def test_each_form_of_range_gives_its_values(spec, texts):
    assert _texts(spec) == texts


def test_numbers_of_a_plain_range_are_its_values():
    assert _numbers("k=0.0..1:5") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert _numbers("k=1..64:x4") == [1.0, 4.0, 16.0, 64.0]


def test_durations_are_assigned_in_seconds_and_named_in_the_unit_they_reach():
    axis = parse_axis("broker.ack_timeout=10ms..1s:x10")
    assert [(value.text, value.label, value.number) for value in axis.values] == [
        ("0.01s", "10ms", 0.01),
        ("0.1s", "100ms", 0.1),
        ("1.0s", "1s", 1.0),
    ]
    assert _labels("k=250us..2h:x30") == ["250µs", "7.5ms", "225ms", "6.75s", "202.5s", "1.688h"]
    assert _texts("k=10ms..50ms:+10ms") == ["0.01s", "0.02s", "0.03s", "0.04s", "0.05s"]
    assert _texts("k=10ms..30ms:+0.01") == ["0.01s", "0.02s", "0.03s"]  # a plain step is in seconds


def test_rates_are_assigned_per_second_and_named_in_one_unit_per_axis():
    axis = parse_axis("publishers.order-service.rate=100/s..5000/s:10")
    assert [value.text for value in axis.values][:3] == ["100.0/s", "644.444444444444/s", "1188.88888888889/s"]
    assert [value.label for value in axis.values] == [
        "100/s",
        "644.4/s",
        "1189/s",
        "1733/s",
        "2278/s",
        "2822/s",
        "3367/s",
        "3911/s",
        "4456/s",
        "5000/s",
    ]
    assert axis.values[-1].number == 5000.0
    # The smallest rate is below 1/s: the whole axis counts per minute.
    assert _labels("k=50/min..500/min:4") == ["50/min", "200/min", "350/min", "500/min"]
    assert _labels("k=30/h..1/s:x10") == ["30/h", "300/h", "3000/h"]


def test_labels_take_more_digits_only_where_two_would_read_the_same():
    assert _labels("k=1000.0..1001:3") == ["1000", "1000.5", "1001"]
    assert _labels("k=1s..1.002s:3") == ["1s", "1.001s", "1.002s"]
    assert _labels("k=1.0..3") == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("key", "spec", "read"),
    [
        ("consumers.inventory.instances", "1..64:x2", lambda scenario: scenario.consumers[0].instances),
        ("broker.loss", "0.001..0.5:7", lambda scenario: scenario.broker.loss),
        ("broker.loss", "0..0.3:+0.1", lambda scenario: scenario.broker.loss),
        ("drain_timeout", "1ms..2h:x7", lambda scenario: scenario.drain_timeout),
        ("drain_timeout", "10ms..20s:9", lambda scenario: scenario.drain_timeout),
        ("publishers.order-service.rate", "100/s..5000/s:10", lambda scenario: scenario.publishers[0].rate[0].rate),
        ("publishers.order-service.rate", "7/min..3/s:6", lambda scenario: scenario.publishers[0].rate[0].rate),
    ],
)
def test_each_value_assigned_reads_back_as_its_number(key, spec, read):
    axis = parse_axis(f"{key}={spec}")
    for value in axis.values:
        scenario = load_scenario(FLASH_SALE, [f"{key}={value.text}"]).scenario
        assert read(scenario) == value.number, value.text


@pytest.mark.parametrize(
    ("spec", "values"),
    [
        ("broker.preset=kafka,rabbitmq", [("kafka", "kafka", None), ("rabbitmq", "rabbitmq", None)]),
        ("k=3,4.5", [("3", "3", 3.0), ("4.5", "4.5", 4.5)]),
        ("k=250ms,800/s,off", [("250ms", "250ms", 0.25), ("800/s", "800/s", 800.0), ("off", "off", None)]),
        ("k=5..x", [("5..x", "5..x", None)]),  # not a range: one word, as before ranges
        ("k=a..b", [("a..b", "a..b", None)]),
        ("k='1..64'", [("1..64", "1..64", None)]),  # quoted: a word
        ("k=1..4,8", [("1..4", "1..4", None), ("8", "8", 8.0)]),  # a list holds words, never ranges
        ("k=[1,2]", [("[1, 2]", "[1, 2]", None)]),
    ],
)
def test_a_list_is_its_values_as_written(spec, values):
    assert [(value.text, value.label, value.number) for value in parse_axis(spec).values] == values


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("consumers.inventory.instances=64..1", "the range must go up (64 > 1)"),
        ("k=5..5", "the range must go up (5 is 5)"),
        ("k=1s..10ms:3", "the range must go up (1s > 10ms)"),
        ("k=1..64:x1", "a range that multiplies must multiply by more than 1 (got x1)"),
        ("k=1..64:x0.5", "a range that multiplies must multiply by more than 1 (got x0.5)"),
        ("k=0..64:x2", "a range that multiplies must start above 0 (got 0)"),
        ("k=1..64:1", "a range of N points needs N >= 2, for its two ends (got 1)"),
        ("k=1..64:+0", "a range that adds must add more than 0 (got +0)"),
        ("k=1s..2s:+-1s", "a range that adds must add more than 0 (got +-1s)"),
        ("k=1s..2s:+5/s", "the step +5/s must add a duration, as the ends are, or a plain number"),
        ("k=1..2:+1s", "the step +1s must add a number"),
        ("k=1..64:y2", "unknown step 'y2'; write :N for N points, :xF to multiply by F, or :+S to add S"),
        ("k=1..64:xx", "unknown step 'xx'; write :N for N points, :xF to multiply by F, or :+S to add S"),
        ("k=1ms..5/s:3", "both ends must be of one kind (1ms is a duration, 5/s a rate)"),
        ("k=0..1s:3", "both ends must be of one kind (0 is a number, 1s a duration)"),
        ("k=a..b:10", "the start 'a' is not a number, a duration such as 10ms or a rate such as 100/s"),
        ("k=1..5q", "the end '5q' is not a number, a duration such as 10ms or a rate such as 100/s"),
        ("k=1..1e999", "the end 1e999 is not finite"),
        (
            "k=10ms..1s",
            "a range of durations needs a step; write :N for N points, :xF to multiply by F, or :+S to add S",
        ),
        (
            "k=1..4:5",
            "rounded to integers, the values repeat (1, 2, 3, 3, 4); give fewer points, "
            "or a decimal end (1.0..4) for values between integers",
        ),
        (
            "k=1..10:x1.5",
            "rounded to integers, the values repeat (1, 2, 2, 3, 5, 8); give fewer points, "
            "or a decimal end (1.0..10) for values between integers",
        ),
        (
            "k=1..5000",
            "the range makes 5,000 values, more than the 1,000 an axis may have; "
            "take a larger step (:x2, :+10) or fewer points (:10)",
        ),
        (
            "k=0..1:1001",
            "the range makes 1,001 values, more than the 1,000 an axis may have; "
            "take a larger step (:x2, :+10) or fewer points (:10)",
        ),
        (
            "k=1..2:+1e-300",
            "the range makes too many values, more than the 1,000 an axis may have; "
            "take a larger step (:x2, :+10) or fewer points (:10)",
        ),
        (
            "k=0..1:20",
            "rounded to integers, the values repeat (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, …); give fewer points, "
            "or a decimal end (0.0..1) for values between integers",
        ),
    ],
)
def test_a_bad_range_is_refused_naming_the_flag_and_echoing_it(spec, message):
    with pytest.raises(OverrideError) as error:
        parse_axis(spec)
    assert str(error.value) == f"--vary {spec}: {message}"


def test_an_axis_may_hold_as_many_values_as_the_cap():
    assert len(parse_axis(f"k=1..{MAX_AXIS_VALUES}").values) == MAX_AXIS_VALUES
    assert len(parse_axis(f"k=0.0..1:{MAX_AXIS_VALUES}").values) == MAX_AXIS_VALUES


def test_the_flag_is_named_as_given():
    with pytest.raises(OverrideError, match=re.escape("--axis k=64..1: the range must go up (64 > 1)")):
        parse_axis("k=64..1", flag="--axis")
    with pytest.raises(OverrideError, match=re.escape("--vary k: expected KEY=V1,V2,...")):
        parse_axis("k")


def test_a_listed_integer_beyond_floats_is_a_value_with_no_number_to_plot():
    huge = "9" * 400
    axis = parse_axis(f"consumers.inventory.instances={huge},2")
    assert [(value.text, value.number) for value in axis.values] == [(huge, None), ("2", 2.0)]
