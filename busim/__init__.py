"""busim: simulate an event bus and what its latency and failures do to your services.

The public API: :func:`load` a scenario, :func:`simulate` it, read the
:class:`Result`; :func:`replicate` runs it on independent seeds and gives
every metric a confidence interval. See docs/ for the formats.
"""

from busim.api import Comparison, Replications, Result, compare, load, read, replicate, simulate, variants
from busim.errors import BusimError
from busim.scenario import Scenario
from busim.version import __version__

__all__ = [
    "BusimError",
    "Comparison",
    "Replications",
    "Result",
    "Scenario",
    "__version__",
    "compare",
    "load",
    "read",
    "replicate",
    "simulate",
    "variants",
]
