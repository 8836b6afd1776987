"""A real run's figures against where one simulated run falls: the prediction interval, verdicts and gaps."""

from __future__ import annotations

import math

import numpy as np
import pytest

import busim
from busim.analysis.calibration import FigureCheck, calibrate, consumer_figures, one_run_interval
from busim.analysis.intervals import Interval
from tests.conftest import consumer, scenario


def test_one_run_falls_within_the_student_t_prediction_interval_clipped_at_zero():
    # mean 3, s = sqrt(2.5), t(0.975, 4) = 2.7764 (tables): 3 ± 2.7764 · 1.5811 · sqrt(1 + 1/5) = 3 ± 4.8089.
    low, high = one_run_interval([1, 2, 3, 4, 5])
    assert (low, high) == (0.0, pytest.approx(7.8089, abs=1e-4))
    assert one_run_interval([10, 12]) == pytest.approx((0.0, 11 + 12.7062 * math.sqrt(2) * math.sqrt(1.5)), abs=1e-3)
    assert one_run_interval([4, 4, 4]) == (4.0, 4.0)  # every run agrees: only that value is within
    assert one_run_interval([7]) == (7.0, 7.0)
    assert all(math.isnan(bound) for bound in one_run_interval([]))


@pytest.mark.parametrize(
    ("real", "verdict", "gap"),
    [(50.0, "within", 0.0), (61.0, "above", 0.22), (39.0, "below", -0.22), (None, "not measured", None)],
)
def test_a_check_says_where_the_real_value_lies_and_how_far_from_the_simulated_mean(real, verdict, gap):
    check = FigureCheck("inventory", "redelivered", "count", Interval(50.0, 48.0, 52.0, 20), 40.0, 60.0, real)
    assert check.verdict == verdict
    assert check.gap == (None if gap is None else pytest.approx(gap))


def test_a_real_count_above_a_simulated_zero_has_no_relative_gap():
    check = FigureCheck("inventory", "lost", "count", Interval(0.0, 0.0, 0.0, 20), 0.0, 0.0, 3.0)
    assert (check.verdict, check.gap) == ("above", None)


def _crashing(probability: float):
    worker = consumer(
        processing_time="20ms",
        crash={"probability": probability, "restart_after": "1s"},
        state={"done": {"initial": 0}},
        effects=[{"counter": "done", "key": "item", "add": 1}],
    )
    return scenario([worker], publishers=[{"name": "source", "event": "Job", "arrivals": "poisson", "rate": 40}])


def test_the_same_run_is_within_every_figure_and_more_crashes_than_simulated_are_above():
    simulated = [busim.simulate(_crashing(0.01), seed=seed).summary for seed in (1, 2, 3)]
    itself = calibrate(simulated[0], simulated[:1] * 3)
    assert [check.verdict for check in itself.checks] == ["within"] * len(itself.checks)
    assert [check.figure for check in itself.checks] == consumer_figures(simulated[0].consumers["worker"])
    assert itself.checks[-1].figure == "latency_s.processing.p999"
    assert "state.done.abs_drift" in [check.figure for check in itself.checks]

    crashing = busim.simulate(_crashing(0.2), seed=1).summary  # 20 times the crash rate
    calibration = calibrate(crashing, simulated)
    crashes = next(check for check in calibration.checks if check.figure == "crashes")
    assert crashes.verdict == "above" and crashes.real == crashing.consumers["worker"].crashes
    assert crashes in calibration.outside()
    # The simulated curve is the mean of the runs' latency at each percentile.
    curve = calibration.curves["worker"]
    expected = np.mean(
        [[latency for _, latency in run.consumers["worker"].latency_quantiles_s] for run in simulated], 0
    )
    assert [latency for _, latency in curve.simulated] == pytest.approx(expected.tolist())
    assert curve.real == crashing.consumers["worker"].latency_quantiles_s


def test_replications_with_a_publishing_seed_publish_the_same_messages_and_draw_the_rest_anew():
    poisson = _crashing(0.05)
    first, second = (busim.simulate(poisson, seed=seed, publishing_seed=7).record for seed in (1, 2))
    assert np.array_equal(first.messages.publish_s, second.messages.publish_s)
    assert np.array_equal(first.messages.fields["Job"]["item"], second.messages.fields["Job"]["item"])
    assert not np.array_equal(first.groups[0].crash_s, second.groups[0].crash_s)
    # A publishing seed equal to the seed is the run of that seed.
    alone, pinned = busim.simulate(poisson, seed=7).record, busim.simulate(poisson, seed=7, publishing_seed=7).record
    assert np.array_equal(alone.groups[0].deliveries.done_s, pinned.groups[0].deliveries.done_s)
    own = busim.simulate(poisson, seed=1).record.messages.publish_s  # seed 1's own messages are others
    assert own.size != first.messages.publish_s.size or not np.array_equal(own, first.messages.publish_s)


def test_a_value_some_simulated_run_gave_is_within_however_narrow_the_t_interval():
    # Drifts of 3, 3, 3, 2: mean 2.75, s = 0.5, t(0.975, 3) = 3.1824: 2.75 ± 3.1824 · 0.5 · sqrt(1.25) = [0.97, 4.53]
    # holds 2 anyway; with nineteen 3s and one 2 the t interval, 2.95 ± 2.0930 · 0.2236 · sqrt(1.05) = [2.47, 3.43],
    # leaves out the 2 that one run gave.
    assert one_run_interval([3, 3, 3, 2]) == pytest.approx((0.9709, 4.5291), abs=1e-4)
    assert one_run_interval([3] * 19 + [2]) == (2.0, pytest.approx(3.4296, abs=1e-4))
