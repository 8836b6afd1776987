"""The capacity search on figures known in advance: the probes it makes, the answer and its notes."""

import pytest

from busim.errors import OverrideError, RunTooLargeError
from busim.planning.capacity import SearchSpace, search
from busim.planning.runner import KeyValue, key_value
from busim.planning.slo import Verdict, parse_objective
from tests.conftest import scenario
from tests.planning.fakes import outcome

# The n-th run of every probe is off by (n - 2) % of the figure: three runs give an interval of about ±2.5 %.
SPREAD = (-0.02, -0.01, 0.0, 0.01, 0.02, 0.03, 0.04, 0.05)


def backlog(of_value, measured: list[tuple[float, int]] | None = None):
    """A measure whose max_backlog at ``value`` is ``of_value(value)``, spread over its runs."""

    def measure(value: float, count: int):
        if measured is not None:
            measured.append((value, count))
        return outcome([of_value(value) * (1 + SPREAD[index % len(SPREAD)]) for index in range(count)])

    return measure


def objectives(text: str):
    return parse_objective(text, scenario())


def space(goal: str, start: float, integer: bool = True, **bounds: float) -> SearchSpace:
    return SearchSpace(
        key="consumers.worker.instances",
        goal=goal,  # type: ignore[arg-type]
        start=start,
        integer=integer,
        lowest=bounds.get("lowest", 1.0),
        highest=bounds.get("highest", 2.0**20),
    )


def test_the_smallest_whole_number_is_bracketed_by_doubling_then_bisected():
    # 100 / 14 = 7.14 fails a bound of 7, 100 / 15 = 6.67 meets it.
    answer = search(space("min", 1), objectives("max_backlog < 7"), backlog(lambda v: 100 / v), 3, 12)
    assert [(p.value, p.meets, p.phase) for p in answer.probes] == [
        (1, False, "bracket"),
        (2, False, "bracket"),
        (4, False, "bracket"),
        (8, False, "bracket"),
        (16, True, "bracket"),
        (12, False, "bisect"),
        (14, False, "bisect"),
        (15, True, "bisect"),
    ]
    assert answer.answer == 15
    assert answer.nearest_failing.value == 14
    assert answer.notes == ()
    # A count of instances reads as one: 15, not 15.0.
    assert {type(value) for value in [answer.answer, *(p.value for p in answer.probes)]} == {int}


def test_a_start_that_meets_is_halved_until_one_fails():
    answer = search(space("min", 64), objectives("max_backlog < 7"), backlog(lambda v: 100 / v), 3, 12)
    assert [p.value for p in answer.probes] == [64, 32, 16, 8, 12, 14, 15]
    assert answer.answer == 15


def test_the_largest_value_is_found_to_within_the_tolerance():
    # max_backlog = value / 100 < 5: the answer is just below 500 (the runs' spread takes a little off).
    answer = search(space("max", 100, integer=False), objectives("max_backlog < 5"), backlog(lambda v: v / 100), 3, 24)
    bracket = [p.value for p in answer.probes if p.phase == "bracket"]
    assert bracket == [100, 200, 400, 800]
    assert 0.98 * 500 < answer.answer < 500
    failing = answer.nearest_failing.value
    assert failing > answer.answer
    assert (failing - answer.answer) <= 0.01 * failing


def test_an_interval_across_the_bound_adds_replications_then_counts_as_not_meeting():
    measured: list[tuple[float, int]] = []
    # At 10 the runs give 9.8, 9.9, 10, 10.1, ...: their mean's interval straddles 10.05 however many there are.
    answer = search(
        space("min", 10, lowest=10, highest=11),
        objectives("max_backlog > 10.05"),
        backlog(lambda v: v, measured),
        3,
        12,
    )
    assert measured[:3] == [(10, 3), (10, 6), (10, 12)]
    first = answer.probes[0]
    assert (first.value, first.verdict, first.replications) == (10, Verdict.UNDECIDED, 12)
    assert answer.answer == 11
    assert answer.notes == ("1 probe still straddled a bound after 12 replications and counted as not meeting it",)


def test_no_answer_when_even_the_end_of_the_range_fails():
    answer = search(space("min", 1, highest=8), objectives("max_backlog < 7"), backlog(lambda v: 100 / v), 3, 3)
    assert [p.value for p in answer.probes] == [1, 2, 4, 8]
    assert answer.answer is None
    assert answer.notes == (
        "no value up to consumers.worker.instances=8, the end of the range searched, meets every objective",
    )


def test_the_end_of_the_range_meeting_is_said():
    answer = search(space("min", 4), objectives("max_backlog < 700"), backlog(lambda v: 100 / v), 3, 3)
    assert [p.value for p in answer.probes] == [4, 2, 1]
    assert answer.answer == 1
    assert answer.notes == ("consumers.worker.instances=1, the end of the range searched, meets every objective",)


def test_a_run_too_large_ends_the_search_with_what_it_found():
    def measure(value: float, count: int):
        if value > 100:
            raise RunTooLargeError("the run would need 40 GB")
        return outcome([value / 100] * count)

    answer = search(space("max", 10, integer=False), objectives("max_backlog < 5"), measure, 3, 3)
    assert [p.value for p in answer.probes] == [10, 20, 40, 80]
    assert answer.answer == 80
    assert answer.notes == ("the search stopped where a run would be too large: the run would need 40 GB",)


@pytest.mark.parametrize("goal", ["min", "max"])
def test_each_value_is_probed_once(goal):
    measured: list[tuple[float, int]] = []
    figure = (lambda v: 100 / v) if goal == "min" else (lambda v: v / 10)
    search(space(goal, 3), objectives("max_backlog < 7"), backlog(figure, measured), 3, 3)
    values = [value for value, _ in measured]
    assert len(values) == len(set(values))


@pytest.mark.parametrize(
    ("key", "integer"),
    [
        ("consumers.worker.crash.after_messages", True),  # a list of message counts
        ("consumers.worker.crash.probability", False),
        ("consumers.worker.crash.restart_after", False),
        ("consumers.worker.instances", True),
    ],
)
def test_a_key_under_an_unset_one_takes_the_numbers_of_its_own_type(key, integer):
    assert key_value(scenario(), key) == KeyValue(None if "crash" in key else 1.0, integer=integer)


def test_a_misspelt_key_under_an_unset_one_is_named():
    with pytest.raises(OverrideError) as refused:
        key_value(scenario(), "consumers.worker.crash.probabilty")
    assert str(refused.value) == (
        "--find consumers.worker.crash.probabilty: the scenario has no key 'probabilty' in "
        "consumers.worker.crash; did you mean 'probability'?"
    )
