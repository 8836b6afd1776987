"""busim: simulate an event bus and what its latency and failures do to your services.

The public API: :func:`load` a scenario, :func:`simulate` it, read the
:class:`Result`. See docs/ for the scenario and results formats.
"""

from busim.api import Result, load, simulate
from busim.errors import BusimError
from busim.scenario import Scenario
from busim.version import __version__

__all__ = ["BusimError", "Result", "Scenario", "__version__", "load", "simulate"]
