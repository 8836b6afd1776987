"""Broker presets: defaults that validate, resolve and round-trip, and keys that apply or do not."""

import math
from statistics import NormalDist

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from busim.engine.sampling import sample_durations
from busim.errors import ScenarioError
from busim.scenario import load_scenario
from busim.scenario.presets import PRESET_NAMES, PRESETS
from busim.scenario.schema import Broker, QuantileTime


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_every_presets_defaults_resolve_and_survive_a_round_trip_through_yaml(preset):
    broker = Broker.model_validate({"preset": preset})
    dumped = broker.model_dump()
    assert set(dumped) == set(PRESETS[preset].keys)
    assert Broker.model_validate(yaml.safe_load(yaml.safe_dump(dumped))) == broker


def test_a_given_key_overrides_the_preset_and_null_restores_its_default():
    assert Broker.model_validate({"preset": "kafka", "partitions": 24}).partitions == 24
    assert Broker.model_validate({"preset": "kafka", "partitions": None}).partitions == 6


def test_keys_of_other_presets_are_refused_with_the_presets_own_word_for_them():
    with pytest.raises(ValidationError) as error:
        Broker.model_validate({"preset": "nats-jetstream", "visibility_timeout": "10s", "partitions": 3})
    messages = {str(detail["loc"][0]): detail["msg"] for detail in error.value.errors()}
    assert messages == {
        "visibility_timeout": "Value error, visibility_timeout does not apply to preset nats-jetstream; "
        "nats-jetstream calls it ack_wait (leave it out or set it to null)",
        "partitions": "Value error, partitions does not apply to preset nats-jetstream; it applies to kafka "
        "(leave it out or set it to null)",
    }


def test_without_a_preset_the_broker_is_ideal():
    broker = Broker.model_validate({})
    assert (broker.preset, broker.latency.value, broker.ack_timeout) == ("ideal", 0.0, 30.0)


def test_sampled_durations_pass_through_the_given_quantiles():
    """With n = 10^6 draws the sample p-quantile's standard error, in normal scores, is
    sqrt(p (1 - p) / n) / phi(z_p): 0.0013, 0.0038 and 0.0094 for p50, p99 and p99.9; times the
    log-slope of Kafka's fit (0.25, 0.25, 1.6 per score) that is 0.03 %, 0.1 % and 1.5 % relative.
    The tolerances are about 4 of them."""
    kafka = Broker.model_validate({"preset": "kafka"}).latency
    assert isinstance(kafka, QuantileTime)
    draws = sample_durations(kafka, np.random.default_rng(7), 1_000_000)
    p50, p99, p999 = np.percentile(draws, [50, 99, 99.9])
    assert p50 == pytest.approx(0.0030, rel=0.0015)
    assert p99 == pytest.approx(0.0054, rel=0.005)
    assert p999 == pytest.approx(0.0183, rel=0.06)
    assert draws.min() > 0


def test_two_quantiles_make_a_lognormal():
    # p50 = median; p84.13 is one sigma up.
    two = QuantileTime.model_validate({"kind": "quantiles", "p50": 0.01, "p84.134474606854": 0.02})
    draws = sample_durations(two, np.random.default_rng(3), 400_000)
    assert np.std(np.log(draws)) == pytest.approx(np.log(2), rel=0.01)  # sd of the log-sd estimate: 0.11 %


def test_the_tail_goes_two_nines_beyond_the_last_percentile_and_stops():
    # p50 0.5 ms and p99 2 ms: sigma = ln 4 / z(0.99); the longest draw is the p99.99 of that lognormal.
    nats = QuantileTime.model_validate({"kind": "quantiles", "p50": "0.5ms", "p99": "2ms"})
    normal = NormalDist()
    sigma = math.log(4) / normal.inv_cdf(0.99)
    longest_s = 0.0005 * math.exp(sigma * normal.inv_cdf(0.9999))
    draws = sample_durations(nats, np.random.default_rng(5), 1_000_000)
    assert draws.max() == pytest.approx(longest_s, rel=1e-12)
    # About 1 in 10,000 draws is the longest: 100 expected, and fewer than 60 or more than 140 has
    # probability under 1e-4 (Poisson, 4 standard deviations).
    assert 60 <= np.count_nonzero(draws == draws.max()) <= 140


def test_quantiles_must_grow_with_the_percentile():
    with pytest.raises(ValidationError, match=r"p99 \(=0.002s\) must be longer than p50 \(=0.003s\)"):
        QuantileTime.model_validate({"kind": "quantiles", "p50": "3ms", "p99": "2ms"})


def test_another_preset_from_the_command_line_leaves_out_the_keys_of_the_files_preset(tmp_path):
    path = tmp_path / "tuned.yaml"
    path.write_text(
        "name: tuned\nduration: 1s\nevents: {E: {}}\npublishers: [{name: p, event: E, rate: 5/s}]\n"
        "broker: {preset: rabbitmq, prefetch: 10, outages: []}\nconsumers: [{name: c, subscribes: [E]}]\n"
    )
    loaded = load_scenario(path, ["broker.preset=nats-jetstream"])
    assert (loaded.scenario.broker.preset, loaded.scenario.broker.prefetch) == ("nats-jetstream", None)
    assert loaded.left_out == ("broker.prefetch: not a key of preset nats-jetstream",)
    loaded = load_scenario(path, ["broker.preset=nats-jetstream", "broker.prefetch=null"])
    assert (loaded.scenario.broker.preset, loaded.scenario.broker.prefetch) == ("nats-jetstream", None)
    # A key the override gives itself is no key of the file to leave out: it is refused, as the override.
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path, ["broker.preset=nats-jetstream", "broker.prefetch=5"])
    assert str(raised.value) == (
        "--set broker.prefetch=5: broker.prefetch: prefetch does not apply to preset nats-jetstream; "
        "nats-jetstream calls it max_ack_pending (leave it out or set it to null)"
    )
