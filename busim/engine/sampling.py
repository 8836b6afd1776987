"""Drawing durations and payload values, in numpy blocks.

The engine never draws one number at a time from numpy: a block sampler
(:func:`block_sampler`) draws a block and hands out its values, which keeps
the per-message cost to stepping through a list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain
from statistics import NormalDist
from typing import Any

import numpy as np

from busim.scenario.schema import (
    ChoiceField,
    ConstantField,
    ConstantTime,
    EmpiricalTime,
    ExponentialTime,
    LogNormalTime,
    NormalTime,
    QuantileTime,
    UniformIntField,
    UniformTime,
    ZipfField,
)

TimeDistribution = (
    ConstantTime | ExponentialTime | UniformTime | NormalTime | LogNormalTime | QuantileTime | EmpiricalTime
)
FieldGenerator = ConstantField | UniformIntField | ChoiceField | ZipfField

BLOCK_SIZE = 4096


def sample_durations(distribution: TimeDistribution, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw ``size`` durations in seconds (float64, never negative)."""
    match distribution:
        case ConstantTime(value=value):
            return np.full(size, value)
        case ExponentialTime(mean=mean):
            return rng.exponential(mean, size)
        case UniformTime(low=low, high=high):
            return rng.uniform(low, high, size)
        case NormalTime(mean=mean, sd=sd):
            return _truncated_normal(mean, sd, rng, size)
        case LogNormalTime(median=median, sigma=sigma):
            return rng.lognormal(np.log(median), sigma, size)
        case QuantileTime(points=points):
            return _through_quantiles(points, rng, size)
        case EmpiricalTime(points=points):
            return _inverse_transform(points, rng, size)
    raise TypeError(f"not a time distribution: {distribution!r}")


def _through_quantiles(points: dict[float, float], rng: np.random.Generator, size: int) -> np.ndarray:
    """Log-durations linear in the normal score between given percentiles, extended at both ends.

    Above the last given percentile the last segment goes on for two more
    nines of probability (to p99.99 after p99, p99.999 after p99.9) and
    stops: the draws beyond are that longest duration. Extended without end,
    the segment would invent a tail no measurement stated, and in an ordered
    queue one such draw holds up every copy behind it.
    """
    normal = NormalDist()
    scores = np.array([normal.inv_cdf(p / 100) for p in sorted(points)])
    logs = np.log([points[p] for p in sorted(points)])
    longest_score = normal.inv_cdf(1 - (1 - max(points) / 100) / 100)
    z = np.minimum(rng.standard_normal(size), longest_score)
    segment = np.searchsorted(scores, z)
    segment -= 1
    np.clip(segment, 0, scores.size - 2, out=segment)
    # Each segment's slope is worked out once and looked up; the draws become their log-durations in place,
    # with the same operations on the same operands as one expression would make, and so the same values.
    slope = np.diff(logs) / np.diff(scores)
    z -= scores[segment]
    z *= slope[segment]
    z += logs[segment]
    return np.exp(z, out=z)


def _inverse_transform(points: dict[float, float], rng: np.random.Generator, size: int) -> np.ndarray:
    """One uniform draw per duration, read through the percentiles with the duration linear between them.

    The percentiles run from 0 to 100, so every draw lies between the
    durations at p0 and p100; two percentiles with the same duration make an
    atom, drawn with the probability between them.
    """
    percentiles = sorted(points)
    return np.interp(rng.random(size) * 100, percentiles, [points[p] for p in percentiles])


def _truncated_normal(mean: float, sd: float, rng: np.random.Generator, size: int) -> np.ndarray:
    """Normal draws conditioned on being >= 0, by redrawing the negative ones."""
    values = rng.normal(mean, sd, size)
    negative = np.flatnonzero(values < 0)
    while negative.size:
        values[negative] = rng.normal(mean, sd, negative.size)
        negative = negative[values[negative] < 0]
    return values


# Hands out one value per call; calling it is the ``__next__`` of a chain of numpy blocks (see block_sampler).
BlockSampler = Callable[[], Any]


def block_sampler(draw: Callable[[int], np.ndarray]) -> BlockSampler:
    """Values one by one from blocks that ``draw(size)`` makes in numpy, each when the last runs out.

    The sampler is the C-level ``__next__`` of a chain of the blocks as
    lists: a value costs no Python call, the engine takes one per message.
    """

    def blocks() -> Iterator[list]:
        while True:
            yield draw(BLOCK_SIZE).tolist()

    return chain.from_iterable(blocks()).__next__


def duration_sampler(distribution: TimeDistribution, rng: np.random.Generator) -> BlockSampler:
    """Durations in seconds, one per call."""
    return block_sampler(lambda size: sample_durations(distribution, rng, size))


def first_durations(distribution: TimeDistribution, rng: np.random.Generator, count: int) -> np.ndarray:
    """The first ``count`` durations a :func:`duration_sampler` of a fresh ``rng`` hands out, at once.

    Drawn in the sampler's blocks: a distribution that redraws (a truncated
    normal) gives the same values only block by block.
    """
    blocks = [sample_durations(distribution, rng, BLOCK_SIZE) for _ in range(-(-count // BLOCK_SIZE))]
    return np.concatenate(blocks)[:count] if blocks else np.empty(0)


def bernoulli_sampler(p: float, rng: np.random.Generator) -> BlockSampler:
    """True with probability ``p``, one per call; with ``p`` 0 it draws nothing from ``rng``."""
    if p == 0:
        return block_sampler(lambda size: np.zeros(size, dtype=bool))
    return block_sampler(lambda size: rng.random(size) < p)


def sample_field(generator: FieldGenerator, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw ``size`` payload values; integer generators give int64 arrays.

    ``sequence`` fields are numbered across all publishers of an event, so
    :mod:`busim.engine.publishing` fills them in, not this function.
    """
    match generator:
        case ConstantField(value=value):
            return np.full(size, value, dtype=_dtype([value]))
        case UniformIntField(low=low, high=high):
            return rng.integers(low, high, size, endpoint=True, dtype=np.int64)
        case ChoiceField(values=values, weights=weights):
            index = _draw_index(np.ones(len(values)) if weights is None else np.asarray(weights, float), rng, size)
            return np.asarray(values, dtype=_dtype(values))[index]
        case ZipfField(n=n, s=s):
            weights = np.arange(1, n + 1, dtype=float) ** -s
            return _draw_index(weights, rng, size).astype(np.int64) + 1
    raise TypeError(f"not a field generator: {generator!r}")


def narrowed(values: np.ndarray) -> np.ndarray:
    """64-bit integers in 32 bits where all of them fit: for columns a run holds one per message.

    Payload values are drawn in 64 bits (the draws depend on it); whatever
    adds them up (effects, counters) widens them again first.
    """
    if values.dtype != np.int64 or values.size == 0:
        return values
    low, high = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    return values.astype(np.int32) if low <= values.min() and values.max() <= high else values


def _draw_index(weights: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Indices drawn with probability proportional to ``weights``, by inverse CDF."""
    cumulative = np.cumsum(weights)
    cumulative /= cumulative[-1]
    return np.minimum(np.searchsorted(cumulative, rng.random(size), side="right"), len(weights) - 1)


def _dtype(values: list[object]) -> type | np.dtype:
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.int64
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.float64
    return object
