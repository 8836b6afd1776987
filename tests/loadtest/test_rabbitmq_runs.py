"""Real runs against RabbitMQ: prefetched deliveries handed back by a killed consumer, as the broker does it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import busim
from busim.report.files import resolved_scenario_yaml
from tests.loadtest.runs import left_behind, real_scenario

# 1,000 orders at 500/s against two instances that take 5 ms each (400/s): a backlog builds, so each instance
# holds its full prefetch of 50. Instance 0 is killed after its 200th processing, after its effects and before
# its ack: RabbitMQ requeues the 50 it held, the 200th (processed) and 49 it had not started.
_CRASHING = {
    "instances": 2,
    "processing_time": "5ms",
    "crash": {"after_messages": 200, "instance": 0, "restart_after": "1s"},
}
_PUBLISHERS = [{"name": "orders", "event": "OrderPlaced", "arrivals": "uniform", "rate": 500}]
_BROKER = {"preset": "rabbitmq", "prefetch": 50}


def test_a_naive_consumer_killed_after_its_200th_message_applies_one_effect_twice(amqp_url, tmp_path: Path):
    scenario = real_scenario("rabbitmq", _CRASHING, broker=_BROKER, publishers=_PUBLISHERS)
    file = tmp_path / "crash.yaml"
    file.write_text(resolved_scenario_yaml(scenario))
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, "-m", "busim", "run", str(file), "--broker", amqp_url, "--out", str(out), "--no-charts"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads((out / "results.json").read_text())
    inventory = results["consumers"]["inventory"]
    assert (inventory["subscribed"], inventory["processed"], inventory["crashes"]) == (1_000, 1_000, 1)
    assert inventory["redelivered"] == 50
    assert inventory["by_reason"]["redelivered"] == {"crash_before_ack": 1, "prefetched": 49}
    assert inventory["duplicate_effects"] == 1
    assert inventory["lost"] == 0
    # The URL's password is in no output and no file; its redacted form is.
    assert "amqp://guest:***@127.0.0.1:5672/" in completed.stdout
    for text in [completed.stdout, completed.stderr] + [p.read_bytes().decode(errors="replace") for p in out.iterdir()]:
        assert "guest:guest" not in text


def test_an_idempotent_consumer_killed_the_same_way_applies_every_effect_once(amqp_url):
    idempotent = _CRASHING | {"idempotency": "dedup"}  # ids and effects in one PostgreSQL transaction
    scenario = real_scenario("rabbitmq", idempotent, broker=_BROKER, publishers=_PUBLISHERS)
    result = busim.load_test(scenario, amqp_url)
    assert left_behind(result.real.run_id, scenario) == []
    inventory = result.summary.consumers["inventory"]
    assert result.real is not None and result.real.stores == {"inventory": "postgres"}
    assert inventory.redelivered == 50
    assert inventory.duplicate_effects == 0
    assert inventory.state["stock"].abs_drift == 0
    assert result.consistent
