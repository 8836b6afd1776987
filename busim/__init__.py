"""busim: simulate an event bus and what its latency and failures do to your services.

The public API: :func:`load` a scenario, :func:`simulate` it, read the
:class:`Result`; :func:`replicate` runs it on independent seeds and gives
every metric a confidence interval; :func:`load_test` runs it against a real
broker instead, and :func:`calibrate` sets such a real run beside the
simulation of its scenario. :func:`sweep` runs a grid of key values and
:func:`capacity` searches a key for the value that meets objectives
(docs/capacity.md). See docs/ for the formats.
"""

from typing import Any

from busim.api import (
    Comparison,
    Replications,
    Result,
    calibrate,
    compare,
    load,
    read,
    replicate,
    simulate,
    variants,
)
from busim.errors import BusimError
from busim.planning.runner import capacity, sweep
from busim.scenario import Scenario
from busim.version import __version__

__all__ = [
    "BusimError",
    "Comparison",
    "Replications",
    "Result",
    "Scenario",
    "__version__",
    "calibrate",
    "capacity",
    "compare",
    "load",
    "load_test",
    "read",
    "replicate",
    "simulate",
    "sweep",
    "variants",
]


def __getattr__(name: str) -> Any:
    # load_test brings the brokers' clients with it: imported when first used, not with busim.
    if name == "load_test":
        from busim.loadtest.api import load_test

        return load_test
    raise AttributeError(f"module 'busim' has no attribute {name!r}")
