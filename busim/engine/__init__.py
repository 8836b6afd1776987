"""The simulation core: a SimPy model of publishers, a broker and consumer groups.

It reads a validated Scenario and returns a RunRecord of numpy arrays. It
never prints, renders, reads files or looks at the wall clock.
"""

from busim.engine.records import RunRecord
from busim.engine.simulation import run

__all__ = ["RunRecord", "run"]
