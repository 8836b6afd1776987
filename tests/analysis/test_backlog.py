"""The backlog's steps: every arrival and receipt in time order, a receipt ahead of an arrival at the same time."""

from types import SimpleNamespace

import numpy as np
import pytest

from busim.analysis.series import backlog_steps

RECEIPT, DELIVERED_ARRIVAL, UNSERVED_ARRIVAL = 0, 1, 2  # the order of changes at equal times


def by_definition(received_s, arrived_s, unserved_s):
    """Each change sorted by time and then kind, the level counted up and never shown below zero."""
    changes = sorted(
        [(t, RECEIPT) for t in received_s]
        + [(t, DELIVERED_ARRIVAL) for t in arrived_s]
        + [(t, UNSERVED_ARRIVAL) for t in unserved_s]
    )
    level = np.cumsum([-1 if kind == RECEIPT else 1 for _, kind in changes])
    return [t for t, _ in changes], np.maximum(level, 0).tolist()


@pytest.mark.parametrize("seed", range(30))
def test_steps_are_the_changes_in_time_order(seed):
    # Whole seconds from a small range, so that arrivals and receipts often fall at the same time.
    rng = np.random.default_rng(seed)
    delivered = int(rng.integers(0, 10))
    arrived_s = rng.integers(0, 6, delivered).astype(float)
    received_s = arrived_s + rng.integers(0, 3, delivered)
    unserved_s = np.sort(rng.integers(0, 8, int(rng.integers(0, 6))).astype(float)) if seed % 2 else np.empty(0)
    group = SimpleNamespace(
        deliveries=SimpleNamespace(receive_s=received_s, arrival_s=arrived_s), unserved_arrival_s=unserved_s
    )
    times, level = backlog_steps(group)
    assert (times.tolist(), level.tolist()) == by_definition(received_s, arrived_s, unserved_s)
