"""When publishers publish: Poisson or evenly spaced, at a piecewise-constant rate.

Both kinds map points of a unit-rate process through the inverse of the
cumulative rate Lambda(t): Poisson arrivals use the partial sums of Exp(1)
draws (a non-homogeneous Poisson process), uniform arrivals use 0, 1, 2, ...
so that the k-th message goes out when k messages are due.
"""

from __future__ import annotations

import numpy as np

from busim.scenario.schema import Publisher

_POISSON_BLOCK = 65536


def expected_count(publisher: Publisher, duration_s: float) -> float:
    """The mean number of messages ``publisher`` publishes in ``[0, duration_s)``."""
    ends = [step.at for step in publisher.rate[1:]] + [duration_s]
    total = sum(step.rate * max(0.0, min(end, duration_s) - step.at) for step, end in zip(publisher.rate, ends))
    return min(total, publisher.count) if publisher.count is not None else total


def publish_times(publisher: Publisher, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Publish times in seconds, sorted, inside ``[0, duration_s)``, capped by ``count``."""
    starts = np.array([step.at for step in publisher.rate if step.at < duration_s])
    rates = np.array([step.rate for step in publisher.rate if step.at < duration_s])
    if starts.size == 0 or starts[0] > 0:
        starts = np.concatenate([[0.0], starts])
        rates = np.concatenate([[0.0], rates])
    ends = np.append(starts[1:], duration_s)
    cumulative = np.concatenate([[0.0], np.cumsum(rates * (ends - starts))])
    total = cumulative[-1]
    limit = publisher.count if publisher.count is not None else np.inf

    if publisher.arrivals == "uniform":
        units = np.arange(int(min(np.ceil(total), limit)), dtype=float)
    else:
        blocks = []
        drawn, last = 0, 0.0
        while last < total and drawn < limit:
            block = last + np.cumsum(rng.exponential(1.0, _POISSON_BLOCK))
            blocks.append(block)
            drawn += block.size
            last = block[-1]
        units = np.concatenate(blocks) if blocks else np.empty(0)
    # The units ascend: those below the total are the first ones, and each step's are a run of them,
    # mapped in place, step by step. A unit that falls on a flat (zero-rate) stretch belongs to the next step.
    times_s = units[: min(int(np.searchsorted(units, total, side="left")), limit)]
    bounds = np.searchsorted(times_s, cumulative, side="left")
    for step, (start_s, rate) in enumerate(zip(starts, rates)):
        mine = times_s[bounds[step] : bounds[step + 1]]
        mine -= cumulative[step]
        mine /= rate
        mine += start_s
    return times_s
