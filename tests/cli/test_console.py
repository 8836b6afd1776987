import io

from rich.console import Console

import busim
from busim.report.console import format_duration, render_result, simulation_progress
from tests.conftest import consumer, scenario


def test_durations_are_written_for_people():
    assert [format_duration(s) for s in (4.12e-4, 0.0123, 4.213, 185.0, None)] == [
        "412µs",
        "12.3ms",
        "4.21s",
        "3m05s",
        "—",
    ]


def test_the_progress_bar_follows_simulated_time_on_a_terminal():
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=100)
    subject = scenario(consumers=[consumer(processing_time="10ms")])
    seen = []
    with simulation_progress(console, subject, enabled=True) as on_progress:
        busim.simulate(subject, on_progress=lambda now_s: (seen.append(now_s), on_progress(now_s)))
    assert "simulating test" in output.getvalue()
    assert seen == sorted(seen) and seen[-1] >= subject.duration - subject.duration / 200


def test_a_consistent_run_says_so():
    output = io.StringIO()
    render_result(Console(file=output, width=120), busim.simulate(scenario()))
    assert "Consistent: every message's effects were applied exactly once." in output.getvalue()
