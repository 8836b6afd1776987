"""``busim run`` and ``busim explain`` on a consumer whose processing fails: the figures, the verdict, the story."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from busim.cli import app
from tests.conftest import SCENARIOS

runner = CliRunner()

POISON = """\
name: poison
seed: 1
duration: 1s
drain_timeout: {drain}
events:
  Job: {{}}
publishers:
  - {{name: source, event: Job, arrivals: uniform, rate: 1/s, count: 1}}
broker:
  preset: {preset}
  latency: 1ms
consumers:
  - name: payment
    subscribes: [Job]
    processing_time: 10ms
    failures: {{poison: 1.0}}
    retry: {{attempts: 1, backoff: {{constant: 100ms}}}}
"""


def ran(tmp_path, preset, drain="10s"):
    source = tmp_path / "poison.yaml"
    source.write_text(POISON.format(preset=preset, drain=drain), encoding="utf-8")
    folder = tmp_path / "run"
    result = runner.invoke(app, ["run", str(source), "--out", str(folder), "--no-charts", "--quiet"])
    assert result.exit_code == 0, result.output
    return folder


def test_a_poison_message_on_a_quorum_queue_tells_its_attempts_and_its_dead_letter(tmp_path):
    # delivery_limit 1: two deliveries of two attempts each (one retry 100 ms later), then the dead letter.
    folder = ran(tmp_path, "rabbitmq-quorum\n  delivery_limit: 1")
    told = runner.invoke(app, ["explain", str(folder), "--message", "0"])
    assert told.exit_code == 0, told.output
    assert told.stdout.splitlines() == [
        "message 0 Job, published by source at 0.000 s",
        "  0.001 s  payment     reached the queue (attempt 1)",
        "  0.001 s  payment #0  received",
        "  0.001 s  payment #0  started processing",
        "  0.011 s  payment #0  processing failed before its effects: nothing was applied",
        "  0.111 s  payment #0  retried processing it",
        "  0.121 s  payment #0  processing failed before its effects: nothing was applied",
        "  0.122 s  payment     reached the queue (attempt 2, processing failed)",
        "  0.122 s  payment #0  received",
        "  0.122 s  payment #0  started processing",
        "  0.132 s  payment #0  processing failed before its effects: nothing was applied",
        "  0.232 s  payment #0  retried processing it",
        "  0.242 s  payment #0  processing failed before its effects: nothing was applied",
        "  0.242 s  payment     dead-lettered: a poison message, failing on every attempt",
        "  ! dead-lettered in payment at 0.242 s after 2 attempts: a poison message, failing on every attempt, "
        "never processed",
        "  ! processing failed in payment (a poison message: it fails on every attempt): 4 attempts failed, the "
        "first at 0.011 s, and no attempt processed it",
    ]
    document = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    payment = document["consumers"]["payment"]
    assert payment["by_reason"]["dead_lettered"] == {"poison": 1}
    figures = payment["failures"]
    assert (figures["attempts"], figures["failed_attempts"], figures["retries"], figures["given_up"]) == (4, 4, 2, 2)
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "| attempts | 4 | 4 failed, 2 retries |" in report
    assert "| given up | 2 | nacked: requeued, counted toward delivery_limit |" in report


def test_a_poison_message_on_a_classic_queue_is_still_failing_when_the_run_ends(tmp_path):
    folder = ran(tmp_path, "rabbitmq", drain="1s")
    told = runner.invoke(app, ["explain", str(folder), "--message", "0"])
    assert told.exit_code == 0, told.output
    lines = told.stdout.splitlines()
    # Rounds of 121 ms (two attempts of 10 ms, a backoff of 100 ms, 1 ms back to the queue) until the end at
    # 2 s: the 17th round's first attempt fails at 1.947 s, and its retry would start after the end.
    assert "  0.969 s  payment     reached the queue (attempt 9, processing failed)" in lines
    assert lines[-4:] == [
        "  1.937 s  payment #0  started processing",
        "  1.947 s  payment #0  processing failed before its effects: nothing was applied",
        "  1.947 s  payment     still failing when the run ended: a poison message, delivered again after every "
        "failure",
        "  ! processing failed in payment (a poison message: it fails on every attempt): 33 attempts failed, the "
        "first at 0.011 s, and no attempt processed it",
    ]
    # The messages whose processing failed, most failed attempts first: the one poison message.
    listed = runner.invoke(app, ["explain", str(folder)])
    assert [line.split() for line in listed.stdout.splitlines() if line.strip().startswith("failed")] == [
        ["failed", "1"]
    ]
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "still going round when the run ended: a classic queue requeues a nacked message without limit" in report


def test_compare_shows_what_each_variant_gave_up_on(tmp_path):
    result = runner.invoke(
        app, ["compare", str(SCENARIOS / "poison-payment.yaml"), "--out", str(tmp_path), "--no-charts", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    table = (tmp_path / "compare.md").read_text(encoding="utf-8")
    # The classic queue requeues the 3 poison orders without limit; a quorum queue gives them 21 deliveries each
    # (20 give-ups redelivered, the last dead-lettered); dead-lettering on give-up stops each at its first.
    assert "| given up | 859 | 63 (-93%) | 3 (-100%) |" in table
    assert "| poison still going round | 3 | 0 (-100%) | 0 (-100%) |" in table
