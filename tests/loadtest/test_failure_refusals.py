"""A real run refuses processing failures, retries and slowdowns, each at its place in the file."""

from __future__ import annotations

import pytest

from busim.errors import ScenarioError
from busim.loadtest.drivers.nats import NatsDriver
from busim.loadtest.refusals import check
from busim.scenario.loader import parse_yaml, validate

SCENARIO = """\
name: failing
duration: 10s
events:
  Job: {}
publishers:
  - {name: jobs, event: Job, rate: 10/s}
broker:
  preset: nats-jetstream
  backoff: [1s, 5s]
  slowdowns: [{from: 2s, to: 4s, factor: 3}]
consumers:
  - name: worker
    subscribes: [Job]
    failures: {probability: 0.1}
    retry: {attempts: 2}
    on_give_up: nack
    slowdowns: [{from: 2s, to: 4s, factor: 5}]
"""
WHY = "processing failures, retries and slowdowns are simulated only, not built for real runs;"


def test_every_failure_key_is_refused_for_a_real_run_at_its_line():
    document = parse_yaml(SCENARIO, "failing.yaml")
    with pytest.raises(ScenarioError) as refused:
        check(validate(document), NatsDriver, "failing.yaml", document)
    assert str(refused.value).splitlines() == [
        f"failing.yaml:9:3: broker.backoff: {WHY} remove broker.backoff to run for real",
        f"failing.yaml:10:3: broker.slowdowns: {WHY} remove broker.slowdowns to run for real",
        f"failing.yaml:14:5: consumers[0].failures: {WHY} remove failures to run for real",
        f"failing.yaml:15:5: consumers[0].retry: {WHY} remove retry to run for real",
        f"failing.yaml:16:5: consumers[0].on_give_up: {WHY} remove on_give_up to run for real",
        f"failing.yaml:17:5: consumers[0].slowdowns: {WHY} remove slowdowns to run for real",
    ]
