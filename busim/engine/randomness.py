"""Independent random streams, one per component and purpose.

Every random draw in a run comes from a numpy Generator derived from the
scenario seed. A stream is addressed by names, for example
``("consumer", "inventory", "processing")``, and derived from the root
SeedSequence with a spawn key made from those names, not from the order in
which streams are created. Adding a consumer therefore leaves the publishers'
arrivals and every other consumer's draws unchanged.

The publishers' streams may come from a seed of their own: replications of
a real run then publish the very messages the run published (its arrival
times and payloads) while the broker's and the consumers' draws vary.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _word(name: str) -> int:
    """A stable 64-bit number for a name (Python's hash() varies per process)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")


class RandomStreams:
    """Hands out independent, reproducible Generators addressed by name."""

    def __init__(self, root: np.random.SeedSequence, publishing: np.random.SeedSequence | None = None) -> None:
        self._root = root
        self._publishing = root if publishing is None else publishing

    @classmethod
    def from_seed(cls, seed: int, publishing_seed: int | None = None) -> RandomStreams:
        """Streams of ``seed``; the publishers' streams of ``publishing_seed`` where it is given."""
        publishing = None if publishing_seed is None else np.random.SeedSequence(publishing_seed)
        return cls(np.random.SeedSequence(seed), publishing)

    def generator(self, *names: str) -> np.random.Generator:
        """The Generator of the stream addressed by ``names``; the same names give the same stream."""
        root = self._publishing if names[:1] == ("publisher",) else self._root
        key = root.spawn_key + tuple(_word(name) for name in names)
        sequence = np.random.SeedSequence(root.entropy, spawn_key=key)
        return np.random.Generator(np.random.PCG64(sequence))
