import math

import numpy as np

from busim.engine.arrivals import publish_times
from busim.engine.randomness import RandomStreams
from busim.engine.sampling import sample_durations, sample_field
from busim.scenario.schema import Publisher, Scenario


def publisher(**fields):
    return Publisher.model_validate({"name": "p", "event": "E", **fields})


def test_uniform_arrivals_are_evenly_spaced_and_follow_rate_steps():
    times = publish_times(publisher(arrivals="uniform", rate=[{"at": 0, "rate": 2}, {"at": 2, "rate": 4}]), 3, None)
    np.testing.assert_allclose(times, [0, 0.5, 1, 1.5, 2, 2.25, 2.5, 2.75])


def test_a_zero_rate_step_publishes_nothing_in_its_window():
    steps = [{"at": 0, "rate": 100}, {"at": 1, "rate": 0}, {"at": 2, "rate": 100}]
    times = publish_times(publisher(rate=steps), 3, np.random.default_rng(3))
    assert not np.any((times >= 1) & (times < 2))


def test_count_caps_the_number_of_messages():
    assert publish_times(publisher(rate=1000, count=7), 10, np.random.default_rng(1)).size == 7


def test_poisson_counts_per_step_match_their_rates():
    # A Poisson count with mean m has sd sqrt(m): allow 4 sd per step.
    steps = [{"at": 0, "rate": 50}, {"at": 30, "rate": 800}, {"at": 90, "rate": 100}]
    times = publish_times(publisher(rate=steps), 180, np.random.default_rng(7))
    counts = np.histogram(times, bins=[0, 30, 90, 180])[0]
    for count, mean in zip(counts, [1500, 48000, 9000]):
        assert abs(count - mean) <= 4 * math.sqrt(mean)
    assert np.all(np.diff(times) >= 0)


def test_zipf_field_follows_its_power_law():
    from busim.scenario.schema import ZipfField

    values = sample_field(ZipfField(kind="zipf", n=5, s=1.0), np.random.default_rng(1), 200_000)
    weights = 1 / np.arange(1, 6)
    expected = weights / weights.sum()
    observed = np.bincount(values, minlength=6)[1:] / values.size
    # Binomial sd of a frequency is sqrt(p (1 - p) / n) <= 0.0012 here; allow 4 sd.
    np.testing.assert_allclose(observed, expected, atol=4 * 0.0012)


def test_truncated_normal_is_never_negative():
    from busim.scenario.schema import NormalTime

    draws = sample_durations(NormalTime(kind="normal", mean=0.001, sd=0.01), np.random.default_rng(2), 10_000)
    assert draws.min() >= 0


def test_sequences_number_an_event_across_its_publishers():
    from busim.engine.outages import Outages
    from busim.engine.publishing import publish

    scenario = Scenario.model_validate(
        {
            "name": "s",
            "duration": 1,
            "events": {"E": {"fields": {"id": {"sequence": {"start": 100}}}}},
            "publishers": [
                {"name": "a", "event": "E", "arrivals": "uniform", "rate": 3},
                {"name": "b", "event": "E", "arrivals": "uniform", "rate": 2},
            ],
            "consumers": [{"name": "c", "subscribes": ["E"]}],
        }
    )
    messages = publish(scenario, RandomStreams.from_seed(1), Outages([]))
    assert messages.fields["E"]["id"].tolist() == [100, 101, 102, 103, 104]
    assert messages.publisher.tolist() == [0, 1, 0, 1, 0]  # the tie at t=0 goes to the first publisher
