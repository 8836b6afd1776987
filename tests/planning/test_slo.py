"""Figures named as results.json names them, and objectives on them: parsing and verdicts."""

import math

import pytest

from busim.errors import BusimError
from busim.planning.figures import figures_of, parse_figure
from busim.planning.slo import Verdict, objectives_of, overall, parse_objective
from tests.conftest import consumer, scenario
from tests.planning.fakes import outcome

TWO = scenario(
    consumers=[
        consumer(name="inventory", effects=[{"counter": "stock", "key": "item", "add": -1}]),
        consumer(name="shipping"),
    ]
)


@pytest.mark.parametrize(
    ("text", "consumers", "path", "duration"),
    [
        ("inventory.p99", ["inventory"], ("latency_s", "end_to_end", "p99"), True),
        ("p50", ["inventory", "shipping"], ("latency_s", "end_to_end", "p50"), True),
        ("lost", ["inventory", "shipping"], ("lost",), False),
        ("shipping.latency_s.queue_wait.mean", ["shipping"], ("latency_s", "queue_wait", "mean"), True),
        ("inventory.state.stock.abs_drift", ["inventory"], ("state", "stock", "abs_drift"), False),
        ("drain_s", ["inventory", "shipping"], ("drain_s",), True),
        ("inventory.latency_p99", ["inventory"], ("latency_p99",), True),
        ("lost_fraction", ["inventory", "shipping"], ("lost_fraction",), False),
    ],
)
def test_a_figure_names_its_consumers_path_and_unit(text, consumers, path, duration):
    figures = parse_figure(text, TWO, "--slo")
    assert [figure.consumer for figure in figures] == consumers
    assert {figure.path for figure in figures} == {path}
    assert {figure.duration for figure in figures} == {duration}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "inventory.p98",
            "--slo inventory.p98: no figure 'p98'; figures go by their names in results.json "
            "(docs/capacity.md#figures); did you mean 'p99'?",
        ),
        (
            "backlog",
            "--slo backlog: no figure 'backlog', of any consumer (inventory, shipping); figures go by their names "
            "in results.json (docs/capacity.md#figures); did you mean 'max_backlog'?",
        ),
        ("billing.p99", "--slo billing.p99: no consumer 'billing' (consumers: inventory, shipping)"),
        (
            "inventroy.p99",
            "--slo inventroy.p99: no consumer 'inventroy'; did you mean 'inventory'? (consumers: inventory, shipping)",
        ),
        (
            "inventory.state.cash.abs_drift",
            "--slo inventory.state.cash.abs_drift: no figure 'state.cash.abs_drift'; figures go by their names in "
            "results.json (docs/capacity.md#figures); did you mean 'state.stock.abs_drift'?",
        ),
    ],
)
def test_an_unknown_figure_is_refused_naming_the_flag(text, message):
    with pytest.raises(BusimError) as refused:
        parse_figure(text, TWO, "--slo")
    assert str(refused.value) == message


def test_figures_named_twice_are_kept_once_in_order():
    figures = figures_of(["inventory.p99", "p99", "lost"], TWO, "--figure")
    assert [figure.label for figure in figures] == [
        "inventory.p99",
        "shipping.p99",
        "inventory.lost",
        "shipping.lost",
    ]


def test_an_objective_reads_a_duration_in_the_scenarios_units():
    (objective,) = parse_objective("inventory.p99 < 200ms", TWO)
    assert (objective.op, objective.bound, objective.label) == ("<", 0.2, "inventory.p99 < 200ms")
    lost = parse_objective("lost == 0", TWO)
    assert [o.label for o in lost] == ["inventory.lost == 0", "shipping.lost == 0"]
    (backlog,) = parse_objective("shipping.max_backlog<=1_000", TWO)
    assert (backlog.op, backlog.bound) == ("<=", 1000.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "inventory.p99 200ms",
            "--slo inventory.p99 200ms: expected FIGURE OP VALUE with OP one of < <= > >= ==, such as "
            "'inventory.p99 < 200ms' or 'lost == 0'",
        ),
        (
            "inventory.p99 < fast",
            "--slo inventory.p99 < fast: 'fast' is not a duration; expected seconds as a number or a string such as "
            "'250ms', '2s', '5min' (units: us, ms, s, min or m, h)",
        ),
        ("lost == none", "--slo lost == none: 'none' is not a number"),
        (
            "inventory.p99 < 250",
            "--slo inventory.p99 < 250: give the duration with its unit, such as 250ms or 250s (a bare number "
            "would be seconds)",
        ),
        ("lost < inf", "--slo lost < inf: the bound must be a finite number (got inf)"),
    ],
)
def test_a_malformed_objective_is_refused_naming_the_flag(text, message):
    with pytest.raises(BusimError) as refused:
        objectives_of([text], TWO)
    assert str(refused.value) == message


def _verdict(text: str, values: list[float | None]) -> Verdict:
    (objective,) = parse_objective(text, scenario())
    return objective.check(outcome(values)).verdict


@pytest.mark.parametrize(
    ("text", "values", "verdict"),
    [
        # mean 10, sd 1, 3 runs: the 95 % interval is 10 ± 4.303 × 1/√3 = 10 ± 2.484
        ("max_backlog < 13", [9, 10, 11], Verdict.MEETS),
        ("max_backlog < 12", [9, 10, 11], Verdict.UNDECIDED),
        ("max_backlog < 7", [9, 10, 11], Verdict.FAILS),
        ("max_backlog > 7", [9, 10, 11], Verdict.MEETS),
        ("max_backlog >= 12.4", [9, 10, 11], Verdict.UNDECIDED),
        ("max_backlog >= 12.5", [9, 10, 11], Verdict.FAILS),
        # equality: every run, exactly
        ("max_backlog == 0", [0, 0, 0], Verdict.MEETS),
        ("max_backlog == 0", [0, 0, 1], Verdict.FAILS),
        # one run: its value decides
        ("max_backlog < 10", [9], Verdict.MEETS),
        ("max_backlog < 10", [10], Verdict.FAILS),
        # a run without a value fails, as an invariant does
        ("max_backlog < 100", [1, None, 2], Verdict.FAILS),
    ],
)
def test_a_point_meets_an_objective_only_when_its_whole_interval_does(text, values, verdict):
    assert _verdict(text, values) is verdict


def test_the_margin_is_the_distance_from_the_intervals_nearer_end_to_the_bound():
    (below,) = parse_objective("max_backlog < 13", scenario())
    check = below.check(outcome([9, 10, 11]))
    half = 4.302652729749464 / math.sqrt(3)
    assert check.margin == pytest.approx(13 - (10 + half))
    (above,) = parse_objective("max_backlog > 5", scenario())
    assert above.check(outcome([9, 10, 11])).margin == pytest.approx(10 - half - 5)


def test_a_point_fails_when_one_objective_fails_and_is_undecided_when_one_straddles():
    low, straddles, high = (
        parse_objective(text, scenario())[0].check(outcome([9, 10, 11]))
        for text in ("max_backlog < 13", "max_backlog < 12", "max_backlog < 7")
    )
    assert overall([low, straddles]) is Verdict.UNDECIDED
    assert overall([low, straddles, high]) is Verdict.FAILS
    assert overall([low]) is Verdict.MEETS
