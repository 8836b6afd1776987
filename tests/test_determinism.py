"""Same file and seed, same results: byte for byte, apart from the `run` section."""

import json

import numpy as np

import busim
from busim.engine.randomness import RandomStreams
from busim.report.files import results_json
from tests.conftest import SCENARIOS, consumer, scenario


def results_without_run(result) -> str:
    document = json.loads(results_json(result))
    document.pop("run")
    return json.dumps(document, indent=2)


def test_the_same_file_and_seed_give_identical_results():
    path = SCENARIOS / "flash-sale.yaml"
    first = busim.simulate(busim.scenario.load_scenario(path))
    second = busim.simulate(busim.scenario.load_scenario(path))
    assert results_without_run(first) == results_without_run(second)


def test_another_seed_gives_other_results():
    path = SCENARIOS / "flash-sale.yaml"
    first = busim.simulate(busim.load(path))
    other = busim.simulate(busim.load(path), seed=43)
    assert other.scenario.seed == 43
    assert results_without_run(first) != results_without_run(other)


def test_a_scenario_without_a_seed_records_the_one_it_drew():
    result = busim.simulate(scenario(seed=None))
    assert isinstance(result.scenario.seed, int)
    again = busim.simulate(result.scenario)
    assert results_without_run(again) == results_without_run(result)


def test_adding_a_consumer_changes_neither_publishing_nor_the_other_consumers():
    faults = {"latency": {"exponential": {"mean": "5ms"}}, "loss": 0.01, "duplication": 0.01}
    first = consumer(name="first", processing_time={"exponential": {"mean": "20ms"}}, crash={"probability": 0.01})
    publishers = [{"name": "source", "event": "Job", "arrivals": "poisson", "rate": 50}]
    alone = busim.simulate(scenario(publishers=publishers, broker=faults, consumers=[first]))
    together = busim.simulate(
        scenario(publishers=publishers, broker=faults, consumers=[consumer(name="second"), first])
    )
    np.testing.assert_array_equal(alone.record.messages.publish_s, together.record.messages.publish_s)
    mine, theirs = alone.record.groups[0].deliveries, together.record.groups[1].deliveries
    np.testing.assert_array_equal(mine.take_s, theirs.take_s)
    np.testing.assert_array_equal(mine.message, theirs.message)


def test_streams_are_addressed_by_name_not_by_creation_order():
    streams = RandomStreams.from_seed(42)
    a = streams.generator("consumer", "inventory", "processing").random(3)
    streams.generator("publisher", "orders", "arrivals")
    b = RandomStreams.from_seed(42).generator("consumer", "inventory", "processing").random(3)
    c = RandomStreams.from_seed(42).generator("consumer", "inventory", "crash").random(3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
