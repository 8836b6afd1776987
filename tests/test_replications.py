"""Replications: independent seeds spawned from one root, and every metric as a mean with its interval."""

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

import busim
from busim.analysis.intervals import mean_interval
from busim.api import replication_seeds
from busim.cli import app
from busim.report.files import results_json
from tests.conftest import SCENARIOS, consumer, scenario

FAULTY = scenario(
    broker={"latency": {"exponential": {"mean": "5ms"}}, "duplication": 0.05},
    consumers=[consumer(processing_time={"exponential": {"mean": "20ms"}}, crash={"probability": 0.02})],
)


def test_replication_seeds_are_spawned_from_the_root_and_repeat():
    seeds = replication_seeds(42, 5)
    assert seeds == replication_seeds(42, 5)
    assert len(set(seeds)) == 5 and all(0 <= seed < 2**63 for seed in seeds)
    assert replication_seeds(42, 3) == seeds[:3]  # more replications extend the list, never reshuffle it
    assert replication_seeds(43, 5) != seeds


def test_each_replication_is_the_single_run_with_its_seed():
    replications = busim.replicate(FAULTY, replications=3, seed=7)
    documents = replications.to_dict()["results"]
    for seed, result, document in zip(replications.seeds, replications.results, documents):
        single = busim.simulate(FAULTY, seed=seed)
        assert result.summary == single.summary
        assert result.scenario.seed == seed
        assert document["consumers"] == single.to_dict()["consumers"]
        assert document["seed"] == seed


def test_every_metric_gets_the_mean_and_interval_of_its_replications():
    replications = busim.replicate(FAULTY, replications=4, seed=7)
    metrics = replications.to_dict()["metrics"]
    values = [result.summary.consumers["worker"].duplicate_deliveries for result in replications.results]
    interval = metrics["consumers"]["worker"]["duplicate_deliveries"]
    assert interval["mean"] == pytest.approx(np.mean(values))
    assert interval["low"] < interval["mean"] < interval["high"]
    assert replications.figure("worker", "duplicate_deliveries").low == interval["low"]
    # The seeds are not a figure to average.
    assert "seed" not in metrics
    # True/false figures become the fraction of replications where they held.
    assert metrics["drained"] == {"mean": 1.0, "low": 1.0, "high": 1.0}


def test_replications_are_deterministic_under_the_root_seed():
    first = json.loads(results_json(busim.replicate(FAULTY, replications=3, seed=11)))
    second = json.loads(results_json(busim.replicate(FAULTY, replications=3, seed=11)))
    del first["run"], second["run"]
    assert first == second


def test_the_scenario_can_ask_for_replications(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(SCENARIOS / "flash-sale.yaml"),
            "--set",
            "replications=3",
            "--set",
            "duration=100s",
            "--out",
            str(tmp_path),
        ],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    assert "Mean of 3 replications" in result.stdout
    assert "the 95% confidence interval of the mean" in result.stdout
    assert re.search(r"\nConsistent in \d of 3 replications[.;]", result.stdout)
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["schema"] == "busim.replications/1"
    assert document["replications"] == 3 and len(document["seeds"]) == 3
    assert "replications: 3" in (tmp_path / "scenario.yaml").read_text()


def test_a_statistic_without_samples_in_some_replications_says_how_many_it_is_of():
    # One message at most per run at a rate of 0.15/s for 10 s: some replications process none.
    sparse = scenario(publishers=[{"name": "source", "event": "Job", "rate": 0.15}])
    replications = busim.replicate(sparse, replications=6, seed=3)
    counts = [result.summary.consumers["worker"].latency_s.end_to_end.count for result in replications.results]
    assert 0 in counts and any(counts)
    p99 = replications.to_dict()["metrics"]["consumers"]["worker"]["latency_s"]["end_to_end"]["p99"]
    assert p99["replications"] == sum(1 for count in counts if count)
    interval = replications.figure("worker", "latency_s", "end_to_end", "p99")
    assert interval.replications == p99["replications"]
    # A count's interval starts at 0, in results.json as on the console, where the t interval reaches below.
    processed = [result.summary.consumers["worker"].processed for result in replications.results]
    assert mean_interval(processed).low < 0
    written = replications.to_dict()["metrics"]["consumers"]["worker"]["processed"]
    assert (written["low"], replications.figure("worker", "processed").low) == (0.0, 0.0)
    assert written["high"] == mean_interval(processed).high


def test_replications_are_bounded():
    with pytest.raises(ValueError, match="replications must be 1 to 10,000"):
        busim.replicate(FAULTY, replications=0)
    result = CliRunner().invoke(app, ["run", str(SCENARIOS / "flash-sale.yaml"), "--replications", "10001"])
    assert result.exit_code == 2


def test_replications_show_the_stale_reads_of_consumers_with_queries():
    import io

    from rich.console import Console

    from busim.report.console import render_replications

    counted = {"state": {"seen": {}}, "effects": [{"counter": "seen", "key": "item", "add": 1}]}
    reader = consumer(
        processing_time={"exponential": {"mean": "50ms"}}, queries={"rate": 50, "counter": "seen"}, **counted
    )
    replications = busim.replicate(scenario(consumers=[reader, consumer(name="plain")]), 3)
    stale = [result.summary.consumers["worker"].stale_reads for result in replications.results]
    assert replications.figure("worker", "stale_reads").mean == pytest.approx(sum(stale) / 3)
    # Without queries there is no staleness summary to look into.
    assert replications.figure("plain", "staleness_age_s", "p50") is None
    output = io.StringIO()
    render_replications(Console(file=output, width=120, color_system=None), replications)
    lines = [line.strip() for line in output.getvalue().splitlines()]
    (row,) = [line for line in lines if line.startswith("stale reads (worker)")]
    assert row.endswith("65.0 [15.1, 114.9]")  # the mean of the replications' 63, 86 and 46, under root seed 1
    assert not any("(plain)" in line for line in lines)
