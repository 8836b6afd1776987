"""One result model: a run, replications and a comparison answer the same questions alike."""

import pytest

import busim
from busim.analysis.intervals import Interval, mean_interval
from tests.conftest import ROOT, consumer, scenario

FAULTY = scenario(
    broker={"latency": {"exponential": {"mean": "5ms"}}, "duplication": 0.05},
    consumers=[consumer(processing_time={"exponential": {"mean": "20ms"}}, crash={"probability": 0.02})],
)


def test_a_run_gives_each_figure_as_an_interval_of_its_one_value():
    result = busim.simulate(FAULTY, seed=7)
    assert result.runs == 1
    assert result.consumers == ("worker",) and result.publishers == ("source",)
    assert result.figure("worker", "duplicate_effects") == Interval(6.0, 6.0, 6.0, 1)
    p99 = result.summary.consumers["worker"].latency_s.end_to_end.p99
    assert result.figure("worker", "latency_s", "end_to_end", "p99").mean == p99
    # No value: a statistic over no samples, or a consumer or figure the run does not have.
    assert result.figure("worker", "staleness_age_s", "p50") is None
    assert result.figure("nobody", "lost") is None
    assert result.figure("worker", "no_such_figure") is None


def test_a_run_that_departs_from_exactly_once_says_so_and_fails():
    result = busim.simulate(FAULTY, seed=7)
    assert not result.consistent
    assert result.verdict == "inconsistent (1 violation)"
    assert result.failures == ("inconsistent with exactly-once processing: worker: 6 duplicate effects",)
    assert not result.passed


def test_replications_give_the_mean_and_interval_of_each_figure():
    replications = busim.replicate(FAULTY, replications=4, seed=7)
    values = [result.summary.consumers["worker"].duplicate_effects for result in replications.results]
    assert values == [3, 7, 4, 7]
    assert replications.runs == 4
    assert replications.figure("worker", "duplicate_effects") == mean_interval(values)
    assert replications.verdict == "consistent in 0 of 4 replications"
    assert replications.failures == ("inconsistent with exactly-once processing in 4 of 4 replications",)


def test_invariants_decide_what_fails_when_the_scenario_has_them():
    bounded = scenario(
        broker=FAULTY.broker.model_dump(),
        consumers=[consumer(processing_time={"exponential": {"mean": "20ms"}}, crash={"probability": 0.02})],
        invariants=[{"name": "few-duplicates", "consumer": "worker", "max": {"duplicate_effects": 5}}],
    )
    result = busim.simulate(bounded, seed=7)
    assert result.verdict == "inconsistent (1 violation); 0 of 1 invariant holds; fails few-duplicates"
    assert result.failures == ("invariant few-duplicates: worker duplicate effects <= 5 (measured 6)",)
    replications = busim.replicate(bounded, replications=4, seed=7)
    assert replications.verdict == (
        "consistent in 0 of 4 replications; invariants hold in 2 of 4 replications; fails few-duplicates"
    )
    assert replications.failures == (
        "invariant few-duplicates: worker duplicate effects <= 5 (failed in 2 of 4 replications)",
    )
    assert replications.invariant(0) == mean_interval([3, 7, 4, 7])
    assert replications.invariant_passes(0) == 2


def test_a_comparison_names_what_each_variant_changes():
    exact = FAULTY.model_copy(update={"broker": FAULTY.broker.model_copy(update={"duplication": 0.0})})
    variants = [("baseline", FAULTY), ("no duplicates", exact)]
    comparison = busim.compare(variants, seed=7)
    assert comparison.consumers == ("worker",)
    assert comparison.outcome("no duplicates") is comparison.outcomes[1]
    assert comparison.overrides("baseline") == ()  # scenarios built in code carry no overrides
    assert comparison.runs == 1


def test_the_variants_of_a_file_carry_their_overrides(flash_sale_path):
    variants = busim.variants(flash_sale_path, vary=["broker.duplication=0,0.01"], overrides=["broker.loss=0.001"])
    comparison = busim.compare(variants[:2], seed=3)
    assert [comparison.overrides(name) for name in comparison.names] == [
        ("broker.loss=0.001", "broker.duplication=0"),
        ("broker.loss=0.001", "broker.duplication=0.01"),
    ]


@pytest.mark.parametrize("count", [1, 3])
def test_run_simulates_once_or_replicates_as_busim_run_does(count):
    done = []
    outcome = busim.api.run(FAULTY, count, seed=7, on_run=lambda finished, total: done.append((finished, total)))
    assert outcome.runs == count
    assert done == [(run, count) for run in range(1, count + 1)]


def test_a_replicated_figure_has_the_same_interval_in_the_model_and_in_results_json():
    replications = busim.replicate(busim.load(ROOT / "tests" / "data" / "small-pipeline.yaml"), replications=3)
    metrics = replications.to_dict()["metrics"]["consumers"]["inventory"]
    drift = [result.summary.consumers["inventory"].state["stock"].abs_drift for result in replications.results]
    assert mean_interval(drift).low < 0  # a drift is never negative: its interval starts at 0
    for path in (("state", "stock", "abs_drift"), ("state", "stock", "keys_diverged"), ("duplicate_effects",)):
        figure, written = replications.figure("inventory", *path), metrics
        for key in path:
            written = written[key]
        assert (figure.mean, figure.low, figure.high) == (written["mean"], written["low"], written["high"])
    assert replications.figure("inventory", "state", "stock", "abs_drift").low == 0.0


def test_a_folder_reads_back_as_the_result_or_the_comparison_it_holds(tmp_path):
    from typer.testing import CliRunner

    from busim.cli import app

    small = str(ROOT / "tests" / "data" / "small-pipeline.yaml")
    runner = CliRunner()
    assert runner.invoke(app, ["run", small, "--out", str(tmp_path / "run"), "--no-charts", "-q"]).exit_code == 0
    compared = ["compare", small, "--vary", "broker.duplication=0,0.02", "--out", str(tmp_path / "cmp"), "-q"]
    assert runner.invoke(app, [*compared, "--no-charts"]).exit_code == 0
    run = busim.read(tmp_path / "run")
    assert isinstance(run, busim.Result) and run.record is None
    simulated = busim.simulate(busim.load(small))  # the file names its seed
    assert (run.summary, run.verdict, run.failures) == (simulated.summary, simulated.verdict, simulated.failures)
    comparison = busim.read(tmp_path / "cmp")
    assert isinstance(comparison, busim.Comparison) and len(comparison.names) == 2
    with pytest.raises(busim.BusimError, match=r"no results\.json here"):
        busim.read(tmp_path)
