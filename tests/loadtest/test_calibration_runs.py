"""The three reference scenarios run against the local brokers, then calibrated: how close the simulation is.

Each real run is set beside 10 replications that publish its very messages. Count figures must be as the
simulation has them (see _check), before and after fitting, but for those docs/real-brokers.md explains ("How
close is the simulation?"): which message a killed instance held, and so the quantity its duplicate effect
doubles, is the broker's choice; RabbitMQ hands the requeued copies out among later ones as the real run's
timing has it; and on a busy machine an instance the scheduler holds up lets the other overtake it, so that a
few messages of a key are processed out of order where no simulated run of the declared times has any. After
fitting, the end-to-end and processing latency p50 and p99 are within 15 % of the real run's.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import busim
from busim.analysis.intervals import t_quantile
from busim.results.calibration import calibration_document
from tests.conftest import SCENARIOS
from tests.loadtest.runs import left_behind

EXPLAINED = {
    "rabbitmq-crash": {"out_of_order", "state.stock.abs_drift"},
    "jetstream-ack-wait": set(),
    "redis-claim": {"out_of_order", "state.stock.abs_drift"},
}
FITTED_LATENCY = [
    f"latency_s.{part}.{statistic}" for part in ("end_to_end", "processing") for statistic in ("p50", "p99")
]
REPLICATIONS = 10


def _check(name: str, declared: list[dict], after_fit: list[dict]) -> None:
    """Checks as calibration.json writes them: counts as the simulation has them, fitted latency within 15 %.

    A count every simulated run agrees on (one the broker's semantics decide) must be the real one. A count that
    varies from run to run must lie within 4 standard deviations of one run from the simulated mean: the report's
    95 % range leaves a figure of a perfect model outside one run in twenty, too often for a test of several
    figures; 4 standard deviations, about one in 16,000 for a normal figure.
    """
    for checks in (declared, after_fit):
        for check in checks:
            if check["unit"] != "count" or check["figure"] in EXPLAINED[name]:
                continue
            simulated = check["simulated"]
            if simulated["one_run_low"] == simulated["one_run_high"]:
                assert check["real"] == simulated["mean"], check
                continue
            # The interval of the mean is mean ± t · s / sqrt(n): s from its half-width.
            half = simulated["high"] - simulated["mean"]
            sd = half * math.sqrt(REPLICATIONS) / t_quantile(0.975, REPLICATIONS - 1)
            assert abs(check["real"] - simulated["mean"]) <= 4 * sd * math.sqrt(1 + 1 / REPLICATIONS), check
    fitted = {check["figure"]: check for check in after_fit}
    for figure in FITTED_LATENCY:
        assert abs(fitted[figure]["gap"]) <= 0.15, fitted[figure]


@pytest.mark.parametrize(("name", "url"), [("rabbitmq-crash", "amqp_url"), ("jetstream-ack-wait", "nats_url")])
def test_a_reference_run_lies_within_its_simulation_and_the_fit_brings_latency_within_15_percent(name, url, request):
    scenario = busim.load(SCENARIOS / "calibration" / f"{name}.yaml")
    real = busim.load_test(scenario, request.getfixturevalue(url))
    assert left_behind(real.real.run_id, scenario) == []
    calibration = busim.calibrate(real, replications=REPLICATIONS)
    document = json.loads(json.dumps(calibration_document(calibration)))
    _check(name, document["declared"]["checks"], document["fitted"]["checks"])


def test_busim_calibrate_writes_its_report_and_a_fitted_scenario_that_simulates_as_close(redis_url, tmp_path: Path):
    file = SCENARIOS / "calibration" / "redis-claim.yaml"
    out = tmp_path / "real"
    command = [sys.executable, "-m", "busim"]
    ran = subprocess.run(
        [*command, "run", str(file), "--broker", redis_url, "--out", str(out), "--quiet", "--no-charts"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    calibrated = subprocess.run(
        [*command, "calibrate", str(out), "--replications", str(REPLICATIONS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert calibrated.returncode == 0, calibrated.stderr
    assert "redis-claim on Redis Streams: how close is the simulation?" in calibrated.stdout
    for written in ("calibration.md", "calibration.html", "calibration.json", "calibrated.yaml"):
        assert (out / written).is_file(), written
    document = json.loads((out / "calibration.json").read_text())
    assert (document["schema"], document["replications"], len(document["seeds"])) == (
        "busim.calibration/1",
        REPLICATIONS,
        REPLICATIONS,
    )
    _check("redis-claim", document["declared"]["checks"], document["fitted"]["checks"])
    # calibrated.yaml is the fitted scenario: it loads, every fitted key says where it came from, and it simulates.
    text = (out / "calibrated.yaml").read_text()
    for key, note in document["fitted"]["notes"].items():
        assert f"# {note}" in text, key
    fitted = busim.load(out / "calibrated.yaml")
    assert fitted.broker.latency.kind == "empirical"
    assert busim.simulate(fitted).summary.consumers["inventory"].delivered == 201
