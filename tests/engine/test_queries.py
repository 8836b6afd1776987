"""Reads of a read model: a Poisson process over the publishing window, keys drawn as they are written."""

import numpy as np

import busim
from busim.engine.queries import draw_reads
from busim.engine.randomness import RandomStreams
from tests.conftest import consumer, scenario


def test_reads_come_as_a_poisson_process_and_read_keys_as_often_as_they_are_written():
    # 100 messages; each changes two keys of the counter, so each read picks one of 200 (message, effect) slots.
    result = busim.simulate(
        scenario(
            events={"Job": {"fields": {"item": {"uniform_int": {"low": 1, "high": 5}}, "shelf": {"constant": 9}}}},
            consumers=[
                consumer(
                    state={"stock": {}},
                    effects=[
                        {"counter": "stock", "key": "item", "add": -1},
                        {"counter": "stock", "key": "shelf", "add": -1},
                    ],
                    queries={"rate": 1000, "counter": "stock"},
                )
            ],
        )
    )
    reads = result.record.reads["worker"]
    # Poisson with mean 10,000: within 4 standard deviations (100 each).
    assert abs(len(reads) - 10_000) < 400
    assert np.all(np.diff(reads.at_s) >= 0) and reads.at_s[0] >= 0 and reads.at_s[-1] < 10
    # Each half of the window and each effect gets half of the reads, within 4 binomial standard deviations.
    half = 4 * np.sqrt(len(reads) * 0.25)
    assert abs(np.count_nonzero(reads.at_s < 5) - len(reads) / 2) < half
    assert abs(np.count_nonzero(reads.effect == 1) - len(reads) / 2) < half
    assert set(np.unique(reads.effect)) == {0, 1}
    # Every message equally likely: Pearson's statistic over 100 messages has 99 degrees of freedom
    # (mean 99, standard deviation 14); 169 is 5 of them above the mean.
    per_message = np.bincount(reads.message, minlength=100)
    expected = len(reads) / 100
    assert per_message.size == 100
    assert ((per_message - expected) ** 2 / expected).sum() < 169


def test_a_group_without_messages_has_no_key_to_read():
    reader = consumer(
        state={"seen": {}},
        effects=[{"counter": "seen", "key": "item", "add": 1}],
        queries={"rate": 50, "counter": "seen"},
    )
    queried = scenario(consumers=[reader]).consumers[0]
    assert len(draw_reads(queried, 10.0, 0, RandomStreams.from_seed(1))) == 0
    # About 500 reads when there are messages to read.
    assert 400 < len(draw_reads(queried, 10.0, 3, RandomStreams.from_seed(1))) < 600
