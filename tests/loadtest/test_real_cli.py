"""busim run --broker as a user runs it: refusals at their place, interruption, clean-up."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from typer.testing import CliRunner

from busim.cli import app
from tests.conftest import SCENARIOS

REDIS_SCENARIO = """\
name: {name}
seed: 4
duration: 30s
drain_timeout: 5s
events:
  Job:
    fields:
      item: {{uniform_int: {{low: 1, high: 3}}}}
publishers:
  - {{name: jobs, event: Job, arrivals: uniform, rate: 50/s}}
broker:
  preset: redis-streams
consumers:
  - name: worker
    subscribes: [Job]
    instances: 2
    processing_time: 2ms
    state:
      done: {{initial: 0}}
    effects:
      - {{counter: done, key: item, add: 1}}
"""


def _busim(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "busim", *args], capture_output=True, text=True, timeout=timeout_s)


def test_a_preset_the_broker_does_not_run_is_refused_naming_both(redis_url):
    completed = _busim("run", str(SCENARIOS / "flash-sale.yaml"), "--broker", redis_url)
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        f"busim: --broker {redis_url}: the scenario's broker is preset rabbitmq, but redis:// is Redis Streams, "
        "which runs preset redis-streams; add --set broker.preset=redis-streams to run this scenario against it"
    )


REFUSED = """\
name: refused
duration: 10s
events:
  Job:
    fields:
      item: {uniform_int: {low: 1, high: 3}}
  Done:
    fields:
      stamp: {sequence: {start: 1}}
publishers:
  - {name: jobs, event: Job, rate: 5/s}
broker:
  preset: redis-streams
  latency: 5ms
  outages:
    - {at: 2s, duration: 1s}
consumers:
  - name: worker
    subscribes: [Job]
    snapshot_every: 100
    emits:
      - {event: Done}
  - name: audit
    subscribes: [Done]
    state:
      seen: {}
    effects:
      - {counter: seen, key: stamp, add: 1}  # a field Done numbers of its own: realised, not refused
"""


def test_every_key_a_driver_cannot_realise_is_refused_at_its_place(redis_url, tmp_path: Path):
    file = tmp_path / "refused.yaml"
    file.write_text(REFUSED)
    completed = _busim("run", str(file), "--broker", redis_url)
    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [
        f"{file}:14:3: broker.latency: a real broker's latency is what the run measures, not a setting; remove the "
        "key to run for real",
        f"{file}:15:3: broker.outages: cutting the broker's connections for an outage is not built for real runs; "
        "add --set broker.outages=[] to run without it",
        f"{file}:20:5: consumers[0].snapshot_every: event-sourced recovery (replaying events after a restart) is "
        "not built for real runs",
    ]


def test_a_url_busim_cannot_drive_is_refused():
    completed = _busim("run", str(SCENARIOS / "flash-sale.yaml"), "--broker", "kafka://user:hunter2@127.0.0.1:9092")
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        "busim: --broker kafka://user:***@127.0.0.1:9092: busim drives amqp://, amqps://, redis://, rediss://, "
        "nats://, not kafka"
    )


def _published(client: redis.Redis, name: str) -> bool:
    return any(client.xlen(key) for key in client.scan_iter(match=f"busim-{name}*", _type="stream"))


def test_ctrl_c_stops_publishing_writes_partial_results_and_leaves_nothing_behind(redis_url, tmp_path: Path):
    name = f"sigint-{time.time_ns() % 10**9}"
    scenario = tmp_path / "jobs.yaml"
    scenario.write_text(REDIS_SCENARIO.format(name=name))
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "busim", "run", str(scenario), "--broker", redis_url, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 60
        while not _published(client, name) and time.monotonic() < deadline:  # the instances start, publishing too
            time.sleep(0.2)
        time.sleep(1)  # a second of the 30 s schedule
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "busim: stopping: no more publishing" in stderr
    results = json.loads((out / "results.json").read_text())
    assert results["mode"] == "real" and results["real"]["partial"] is True
    generator = results["real"]["generator"]
    sent = generator["sent"]
    assert 0 < sent < generator["copies"] == 1500  # stopped part-way through the 30 s schedule
    # Every figure is about what was sent: the 1,500 - sent copies never sent are neither published nor missed.
    assert results["messages"]["published"] == sent
    worker = results["consumers"]["worker"]
    assert worker["subscribed"] == worker["processed"] == sent  # drained what was sent
    assert worker["lost"] == worker["in_flight_at_end"] == worker["duplicate_effects"] == 0
    done = worker["state"]["done"]
    assert done["expected_total"] == done["actual_total"] == sent  # the reference counts the sent jobs only
    assert done["abs_drift"] == 0
    assert "never processed" not in stdout and "drifts" not in stdout
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"busim-{name}*")) == []
    finally:
        client.close()
    workers = subprocess.run(["pgrep", "-f", f"busim-{name}"], capture_output=True, text=True)
    assert workers.stdout == ""
    # A real run cannot be simulated again: its folder keeps its record, and explain tells from it.
    # In this process: the run's own process is what this test is about.
    runner = CliRunner()
    story = runner.invoke(app, ["explain", str(out), "--message", "0"])
    assert story.exit_code == 0, story.stderr
    assert "message 0 Job" in story.stdout and "worker #" in story.stdout and "applied its effects" in story.stdout
    last = runner.invoke(app, ["explain", str(out), "--message", str(sent)])  # the first message not sent is absent
    assert last.exit_code != 0 and f"no message {sent} in this run: its messages are 0 to {sent - 1}" in last.stderr
    # Its figures cover part of the schedule: calibrate, which simulates the whole schedule, refuses it.
    calibration = runner.invoke(app, ["calibrate", str(out), "--no-charts"])
    assert calibration.exit_code == 2
    assert calibration.stderr.strip() == (
        f"busim: {out}: holds an interrupted run (partial: it sent {sent:,} of its schedule's 1,500 copies); "
        "calibrate sets a run beside simulations of its whole schedule, so it needs a run that finished: "
        "run the scenario again to the end (with a shorter --set duration=... if it takes too long)"
    )
    assert not list(out.glob("calibrat*"))


def test_a_broker_that_does_not_answer_is_named_without_its_password(tmp_path: Path):
    file = tmp_path / "jobs.yaml"
    file.write_text(REDIS_SCENARIO.format(name="unreachable").replace("redis-streams", "rabbitmq"))
    completed = _busim("run", str(file), "--broker", "amqp://guest:hunter2@127.0.0.1:1/", "--out", str(tmp_path / "o"))
    assert completed.returncode == 2
    assert completed.stderr.startswith("busim: cannot reach RabbitMQ at amqp://guest:***@127.0.0.1:1/: ")
    assert "hunter2" not in completed.stderr + completed.stdout
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "o").exists()  # nothing written
