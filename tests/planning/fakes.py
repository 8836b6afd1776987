"""Outcomes made up of known figures, to test the planning logic without simulating."""

from types import SimpleNamespace

from busim.results import Replications, Result


def outcome(values: list[float | None], consumer: str = "worker", figure: str = "max_backlog") -> Replications:
    """Replications whose runs gave ``consumer`` the ``values`` of ``figure`` (None: no value)."""
    results = tuple(
        Result(
            scenario=None,  # type: ignore[arg-type]
            summary=SimpleNamespace(consumers={consumer: SimpleNamespace(**{figure: value})}),  # type: ignore[arg-type]
            sim_time_s=0.0,
            drained=True,
            messages=None,  # type: ignore[arg-type]
        )
        for value in values
    )
    return Replications(scenario=None, seeds=tuple(range(len(values))), results=results)  # type: ignore[arg-type]
