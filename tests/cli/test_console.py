import io

from rich.console import Console

import busim
from busim.report.console import render_result, simulation_progress
from busim.scenario.units import format_duration
from tests.conftest import consumer, scenario


def test_durations_are_written_for_people():
    cases = {
        4.12e-4: "412µs",
        0.0123: "12.3ms",
        4.213: "4.21s",
        185.0: "3m05s",
        None: "—",
        0: "0s",
        0.00099996: "1ms",
        59.97: "1m00s",
        7300: "2h01m",
        3e-9: "0.003µs",
        3.5e-17: "0s",  # float noise in a difference of times, not a duration
        -1e-12: "0s",
    }
    assert {seconds: format_duration(seconds) for seconds in cases} == cases


def test_the_progress_bar_follows_simulated_time_on_a_terminal():
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=100)
    # Crashes keep the group on the clock of the general engine (busim.engine.servers computes the others at once).
    subject = scenario(consumers=[consumer(processing_time="10ms", crash={"probability": 0.01, "restart_after": "1s"})])
    seen = []
    with simulation_progress(console, subject, enabled=True) as on_progress:
        result = busim.simulate(subject, on_progress=lambda now_s: (seen.append(now_s), on_progress(now_s)))
    assert "simulating test" in output.getvalue()
    # About one report per 1/200 of the publishing window, in order, up to the end of the last activity.
    assert 150 <= len(seen) <= 250
    assert seen == sorted(seen) and seen[-1] >= result.record.sim_time_s


def test_a_run_computed_at_once_reports_that_it_reached_its_end():
    subject = scenario(consumers=[consumer(processing_time="10ms")])
    seen = []
    result = busim.simulate(subject, on_progress=seen.append)
    assert seen == [result.record.sim_time_s]


def test_a_consistent_run_says_so():
    output = io.StringIO()
    render_result(Console(file=output, width=120), busim.simulate(scenario()))
    assert "Consistent: every message's effects were applied exactly once." in output.getvalue()


def test_reasons_are_named_in_the_brokers_own_words():
    from busim.report.views import reason_label

    assert reason_label("ack_timeout", "sqs-fifo") == "visibility timeout"
    assert reason_label("ack_timeout", "nats-jetstream") == "ack wait"
    assert reason_label("crash_before_ack", "kafka") == "crash before commit"
    assert reason_label("crash_before_ack", "rabbitmq") == "crash before ack"


def test_the_runs_progress_bar_counts_runs_and_shows_the_current_runs_clock():
    from busim.report.console import count_progress

    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=120)
    subject = scenario(consumers=[consumer(processing_time="10ms")])
    with count_progress(console, "replicating test", 3, enabled=True) as bar:
        replications = busim.replicate(subject, 3, on_replication=bar.run_done, on_progress=bar.simulated)
    shown = output.getvalue()
    assert "replicating test" in shown and "3/3" in shown and "run at t=" in shown
    assert len(replications.seeds) == 3
    with count_progress(console, "quiet", 3, enabled=False) as bar:
        assert bar is None


def test_reads_are_shown_only_for_consumers_with_queries():
    from tests.analysis.test_reads import crash_and_loss

    queried = crash_and_loss().scenario
    plain = queried.consumers[0].model_copy(update={"name": "plain", "queries": None})
    output = io.StringIO()
    result = busim.simulate(queried.model_copy(update={"consumers": [*queried.consumers, plain]}))
    render_result(Console(file=output, width=120, color_system=None), result)
    lines = [line.strip() for line in output.getvalue().splitlines()]
    # The counts are worked out in tests/analysis/test_reads.py.
    assert "stale reads               151       —   77.0% of 196 reads of seen at 20/s" in lines
    assert "staleness p50           4.52s       —   since the oldest event not yet applied" in lines
    assert "staleness p99           9.77s       —" in lines
    output = io.StringIO()
    render_result(Console(file=output, width=120, color_system=None), busim.simulate(scenario()))
    assert "stale" not in output.getvalue()
