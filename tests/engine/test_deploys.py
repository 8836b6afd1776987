"""Deploys: instances stopped in batches, drained gracefully or killed, and back after their restart time.

With constant arrivals (10 a second) and processing times, every time in
these runs is a sum of those constants: the deploy windows are checked
exactly, against the delivery record.
"""

import numpy as np
import pytest

import busim
from busim.engine.records import DeliveryCause, Outcome
from busim.scenario.presets import PRESET_NAMES
from tests.conftest import consumer, scenario
from tests.engine.test_servers import flow, served


def deployed(broker, **fields):
    result = busim.simulate(scenario(duration=60, broker=broker, consumers=[consumer(**fields)]))
    return result, result.record.groups[0]


def rolling_deploy_of_four():
    """Four instances of 300 ms each (three hold 10/s exactly); a rolling deploy at 2 s, one at a time."""
    broker = {"preset": "rabbitmq", "latency": 0, "prefetch": 1}
    return deployed(broker, instances=4, processing_time="300ms", deploys=[{"at": "2s", "restart_time": "1s"}])


def test_a_rolling_deploy_takes_one_instance_down_at_a_time():
    result, group = rolling_deploy_of_four()
    windows = group.lifecycle
    deliveries = group.deliveries
    assert windows.deploy_instance.tolist() == [0, 1, 2, 3]
    # Each instance stops when the one before is back, drains what it holds, and is down 1 s after that.
    assert windows.deploy_stop_s[0] == 2.0
    assert windows.deploy_stop_s[1:].tolist() == windows.deploy_back_s[:-1].tolist()
    for instance, stop_s, drained_s, back_s in zip(
        windows.deploy_instance, windows.deploy_stop_s, windows.deploy_drained_s, windows.deploy_back_s
    ):
        mine = deliveries.instance == instance
        held_done_s = deliveries.done_s[mine & (deliveries.receive_s <= stop_s)]
        assert drained_s == max(stop_s, held_done_s.max())  # it finished what it held, and nothing more
        assert back_s == drained_s + 1.0
        received_s = deliveries.receive_s[mine]
        assert not np.any((received_s > stop_s) & (received_s < back_s))
        assert np.any((received_s >= back_s) & (received_s < back_s + 0.4))  # and it serves again
    # Instance 0 was idle at 2 s; instance 1 held the copy it received at 2.9 s until 3.2 s; and so on.
    assert windows.deploy_back_s.tolist() == pytest.approx([3.0, 4.2, 5.3, 6.3], abs=1e-9)
    # At every moment of the deploy, at most one instance is down: three serve, and the 10/s never wait.
    edges = np.sort(np.concatenate([windows.deploy_stop_s, windows.deploy_back_s]))
    for moment_s in (edges[:-1] + edges[1:]) / 2:
        down = (windows.deploy_stop_s < moment_s) & (moment_s < windows.deploy_back_s)
        assert np.count_nonzero(down) <= 1
    worker = result.summary.consumers["worker"]
    assert worker.by_reason["redelivered"] == {}
    assert worker.latency_s.queue_wait.max == 0.0


def held_at_30s(drain):
    """Two instances holding five each (one processing, four prefetched) when both are deployed at 30 s."""
    broker = {"preset": "rabbitmq", "latency": 0, "prefetch": 5}
    deploy = {"at": "30s", "kind": "all_at_once", "restart_time": "5s", "drain": drain}
    return deployed(broker, instances=2, processing_time="1s", deploys=[deploy])


def test_a_deploy_that_kills_brings_back_what_the_instances_held_as_a_crash_does():
    result, group = held_at_30s("kill")
    worker = result.summary.consumers["worker"]
    # RabbitMQ requeues the ten at once, labelled by the deploy; no crash is counted.
    assert worker.by_reason["redelivered"] == {"deploy": 10}
    assert worker.crashes == 0
    deliveries = group.deliveries
    aborted = deliveries.outcome == Outcome.ABORTED
    assert np.count_nonzero(aborted) == 10
    assert np.count_nonzero(aborted & ~np.isnan(deliveries.take_s)) == 2  # two in processing, eight prefetched
    assert set(deliveries.done_s[aborted].tolist()) == {30.0}
    assert group.lifecycle.deploy_drained_s.tolist() == [30.0, 30.0]
    assert group.lifecycle.deploy_back_s.tolist() == [35.0, 35.0]
    again = deliveries.cause == DeliveryCause.DEPLOY
    assert deliveries.receive_s[again].min() == 35.0  # nobody serves until the instances are back


def test_a_graceful_deploy_finishes_what_the_instances_held_and_brings_back_nothing():
    result, group = held_at_30s("graceful")
    worker = result.summary.consumers["worker"]
    assert worker.by_reason["redelivered"] == {}
    assert worker.redelivered == 0
    deliveries = group.deliveries
    assert not np.any(deliveries.outcome == Outcome.ABORTED)
    for instance in (0, 1):
        held = (deliveries.instance == instance) & (deliveries.receive_s <= 30.0)
        # The one in processing ends within the second; the four prefetched follow, one second each.
        assert group.lifecycle.deploy_drained_s[instance] == deliveries.done_s[held].max()
        assert 34.0 <= deliveries.done_s[held].max() <= 35.0
        assert group.lifecycle.deploy_back_s[instance] == group.lifecycle.deploy_drained_s[instance] + 5.0


def kafka_deploy(drain):
    broker = {"preset": "kafka", "latency": 0, "partitions": 4, "commit": "per-message", "session_timeout": "2s"}
    deploy = {"at": "10s", "restart_time": "1s", "drain": drain}
    return deployed(broker, instances=2, processing_time="100ms", deploys=[deploy])


def test_a_graceful_deploy_on_kafka_rebalances_as_each_member_leaves_and_joins():
    result, group = kafka_deploy("graceful")
    lifecycle = group.lifecycle
    # Leaving commits and rebalances at once; joining rebalances again: four rebalances for two instances.
    assert lifecycle.rebalance_s.tolist() == [
        lifecycle.deploy_drained_s[0],
        lifecycle.deploy_back_s[0],
        lifecycle.deploy_drained_s[1],
        lifecycle.deploy_back_s[1],
    ]
    assert result.summary.consumers["worker"].redelivered == 0
    assert result.summary.consumers["worker"].duplicate_effects == 0


def test_a_deploy_that_kills_on_kafka_rewinds_and_waits_for_the_session_to_expire():
    result, group = kafka_deploy("kill")
    lifecycle = group.lifecycle
    worker = result.summary.consumers["worker"]
    # Instance 0 is killed at 10 s holding a record (labelled by the deploy); it is back at 11 s, but the group
    # rebalances only once its old session expires at 12 s; then instance 1 likewise, from 12 s.
    assert set(worker.by_reason["redelivered"]) == {"deploy"}
    assert lifecycle.deploy_stop_s.tolist() == [10.0, 11.0]
    assert lifecycle.rebalance_s.tolist() == [12.0, 13.0]


@pytest.mark.parametrize(
    "lifecycle",
    [
        {"deploys": [{"at": "5s"}]},
        {"autoscale": {"min": 1, "max": 2, "metric": "lag_s", "target": 1}},
    ],
    ids=["deploys", "autoscale"],
)
def test_a_group_whose_instances_stop_and_start_runs_on_the_general_engine(lifecycle):
    assert not served(flow(**lifecycle))


def test_a_real_run_refuses_deploys_and_a_scaler_at_their_place():
    from busim.loadtest.drivers.rabbitmq import RabbitMQDriver
    from busim.loadtest.refusals import refusals

    lifecycle = consumer(
        instances=2,
        deploys=[{"at": "5s"}],
        autoscale={"min": 1, "max": 4, "metric": "backlog_per_instance", "target": 10},
    )
    found = refusals(scenario([lifecycle], broker={"preset": "rabbitmq"}), RabbitMQDriver)
    assert [(refusal.path, refusal.reason) for refusal in found] == [
        (
            "consumers[0].autoscale",
            "scaling instances is not built for real runs, which keep the starting instances; "
            "remove the key to run for real",
        ),
        (
            "consumers[0].deploys",
            "stopping and restarting instances for a deploy is not built for real runs; "
            "add --set consumers.worker.deploys=[] to run without it",
        ),
    ]


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("drain", ["graceful", "kill"])
def test_deploys_with_a_scaler_and_crashes_always_end_and_a_graceful_one_redelivers_nothing(preset, drain):
    """Two deploys, a scaler on lag and random crashes, together on every preset: every deploy ends and the
    bus drains; only a kill brings copies back by the deploy."""
    lifecycle = consumer(
        instances=3,
        concurrency=2,
        processing_time={"exponential": {"mean": "150ms"}},
        deploys=[
            {"at": "3s", "restart_time": "1s", "drain": drain},
            {"at": "12s", "kind": "all_at_once", "restart_time": "2s", "drain": drain},
        ],
        autoscale={"min": 1, "max": 6, "metric": "lag_s", "target": 0.2, "interval": "1s", "scale_up_delay": "1s"},
        crash={"probability": 0.02, "restart_after": "1s"},
    )
    result = busim.simulate(
        scenario(
            [lifecycle],
            duration=20,
            broker={"preset": preset},
            publishers=[{"name": "source", "event": "Job", "rate": 30}],
        )
    )
    assert result.drained
    figures = result.summary.lifecycle["worker"]
    assert [window.end_s is not None for window in figures.deploys] == [True, True]
    if drain == "graceful":
        assert figures.redelivered_by_deploys == 0
    assert figures.redelivered_by_deploys == result.summary.consumers["worker"].by_reason["redelivered"].get(
        "deploy", 0
    )


def test_a_deploy_after_the_bus_has_drained_still_happens_and_the_run_lasts_until_it():
    result = busim.simulate(
        scenario(
            [consumer(processing_time="10ms", deploys=[{"at": "100s", "restart_time": "5s"}])],
            broker={"preset": "rabbitmq"},
        )
    )
    assert result.summary.lifecycle["worker"].deploys[0].end_s == 105.0
    assert result.sim_time_s == 105.0


def test_a_deploy_due_while_another_is_under_way_waits_for_it_to_end():
    # Ten-second jobs held one per instance: the first rolling deploy's drains take up to 10 s each, so it is
    # still under way at 12 s, when the second is due; the second starts when the first has ended.
    broker = {"preset": "rabbitmq", "latency": 0, "prefetch": 1}
    deploys = [{"at": "1s", "restart_time": "1s"}, {"at": "12s", "kind": "all_at_once", "restart_time": "1s"}]
    _, group = deployed(broker, instances=2, processing_time="10s", deploys=deploys)
    lifecycle = group.lifecycle
    first, second = lifecycle.deploy == 0, lifecycle.deploy == 1
    assert lifecycle.deploy_back_s[first].max() > 12.0
    assert lifecycle.deploy_stop_s[second].min() == lifecycle.deploy_back_s[first].max()
    assert lifecycle.deploy_instance.tolist() == [0, 1, 0, 1]
