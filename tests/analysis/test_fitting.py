"""A scenario fitted to a run recovers the latency, per-message cost and restart time that run had."""

from __future__ import annotations

import numpy as np
import pytest

import busim
from busim.analysis.fitting import empirical, fit_to_run
from busim.report.files import calibrated_scenario_yaml
from busim.scenario import load_scenario
from busim.scenario.schema import EmpiricalTime
from tests.conftest import consumer, scenario


def _run_of(latency: str, processing: str, restart: str):
    """100 jobs 100 ms apart to one worker: each finds it idle, so its transit is the broker latency alone."""
    worker = consumer(processing_time=processing, crash={"after_messages": [50], "restart_after": restart})
    return scenario([worker], broker={"preset": "rabbitmq", "latency": latency})


def test_a_fit_to_a_run_of_other_numbers_recovers_that_run_s_latency_cost_and_restart_time():
    record = busim.simulate(_run_of("2ms", "5ms", "2s")).record
    declared = _run_of("1ms", "1ms", "0.5s")
    fitted = fit_to_run(declared, record)
    broker_latency = fitted.scenario.broker.latency
    (worker,) = fitted.scenario.consumers
    assert isinstance(broker_latency, EmpiricalTime) and set(broker_latency.points.values()) == {0.002}
    assert isinstance(worker.processing_time, EmpiricalTime) and set(worker.processing_time.points.values()) == {0.005}
    assert worker.crash.restart_after == 2.0
    # The worker is down from its 50th job (4.9 s) for 2 s: the 20 jobs published meanwhile, and the one at 7.0 s
    # while it catches up (21 jobs of 5 ms from 6.9 s), found it busy. The crashed job was processed twice.
    assert fitted.notes == {
        "broker.latency": "measured: publish to receipt of the 79 messages that found their group idle "
        "(median 2ms, p99 2ms)",
        "consumers.worker.processing_time": "measured: 5ms a message over 101 processings, against 1ms declared: "
        "4ms of overhead a message",
        "consumers.worker.crash.restart_after": "measured: instances served again 2s after a crash (1 crash), "
        "against 500ms declared: a real instance also starts its process and reconnects",
    }
    # Everything else is the declared scenario's, but for its description, which says what was fitted.
    assert fitted.scenario.description == (
        "Fitted to a real run: broker.latency, consumers.worker.processing_time, "
        "consumers.worker.crash.restart_after as measured."
    )
    unfitted = {"broker": declared.broker, "consumers": declared.consumers, "description": declared.description}
    assert fitted.scenario.model_copy(update=unfitted) == declared


def test_a_restart_time_the_run_did_not_exceed_is_kept_and_shorter_processing_is_the_run_s_own():
    record = busim.simulate(_run_of("2ms", "5ms", "2s")).record
    generous = _run_of("1ms", "10ms", "5s")
    fitted = fit_to_run(generous, record)
    (worker,) = fitted.scenario.consumers
    assert worker.crash == generous.consumers[0].crash
    assert set(worker.processing_time.points.values()) == {0.005}
    assert fitted.notes["consumers.worker.processing_time"] == (
        "measured: 5ms a message over 101 processings, against 10ms declared: shorter than the declared mean"
    )
    assert fitted.notes["consumers.worker.crash.restart_after"] == (
        "kept: instances served again 2s after a crash (1 crash), as declared"
    )


def test_a_busy_group_measures_no_latency_and_keeps_the_declared_one():
    # 40 jobs/s to a worker taking 30 ms: the queue is never empty after the first few, so no message tells the
    # broker's latency alone.
    busy = scenario(
        [consumer(processing_time="30ms")],
        publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 40}],
        broker={"preset": "rabbitmq", "latency": "1ms"},
    )
    fitted = fit_to_run(busy, busim.simulate(busy).record)
    assert fitted.scenario.broker == busy.broker
    assert fitted.notes["broker.latency"] == "kept: only 1 message found its group idle, fewer than the 20 a fit needs"


def test_the_empirical_fit_has_only_the_percentiles_its_sample_tells():
    samples = np.arange(1, 201) / 1000  # 1 ms to 200 ms
    points = empirical(samples)["empirical"]
    assert list(points) == [
        "p0", "p0.5", "p1", "p2.5", "p5", "p10", "p20", "p30", "p40", "p50", "p60", "p70", "p80", "p90", "p95",
        "p97.5", "p99", "p99.5", "p100",
    ]  # fmt: skip
    assert (points["p0"], points["p50"], points["p100"]) == (0.001, 0.1005, 0.2)
    assert list(empirical(samples[:20])["empirical"]) == ["p0", "p5", "p10", "p20", "p30", "p40", "p50", "p60", "p70",
                                                          "p80", "p90", "p95", "p100"]  # fmt: skip


def test_calibrated_yaml_loads_to_the_fitted_scenario_and_says_where_each_number_came_from(tmp_path):
    fitted = fit_to_run(_run_of("1ms", "1ms", "0.5s"), busim.simulate(_run_of("2ms", "5ms", "2s")).record)
    text = calibrated_scenario_yaml(fitted, "runs/real")
    path = tmp_path / "calibrated.yaml"
    path.write_text(text)
    assert load_scenario(path).scenario == fitted.scenario
    lines = text.splitlines()
    assert lines[0] == "# The scenario of the real run in runs/real, fitted to what the run measured (busim calibrate)."
    for key, note in [("  latency:", fitted.notes["broker.latency"]),
                      ("  processing_time:", fitted.notes["consumers.worker.processing_time"]),
                      ("    restart_after: 2.0", fitted.notes["consumers.worker.crash.restart_after"])]:  # fmt: skip
        at = lines.index(key)
        assert lines[at - 1] == key[: len(key) - len(key.lstrip())] + "# " + note


def test_a_crash_the_instance_never_came_back_from_tells_no_restart_time():
    # The worker crashes at its 95th job (9.4 s) and would restart after a minute; the run stops 2 s after the
    # last publish, so the 2.6 s from its crash to the end only bound the restart.
    worker = consumer(processing_time="5ms", crash={"after_messages": [95], "restart_after": "60s"})
    stopping = scenario([worker], drain_timeout=2)
    record = busim.simulate(stopping).record
    assert record.groups[0].crash_s.tolist() == [pytest.approx(9.405)] and not record.drained
    fitted = fit_to_run(stopping, record)
    assert fitted.scenario.consumers[0].crash == stopping.consumers[0].crash
    assert fitted.notes["consumers.worker.crash.restart_after"] == (
        "kept: no instance that crashed served again before the run ended"
    )
