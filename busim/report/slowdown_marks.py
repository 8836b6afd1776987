"""Slowdown windows on the time-axis charts: shaded as outages are, hatched, so that the two stay apart."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.patches import Patch

from busim.scenario import Scenario

SLOWDOWN_COLOUR = "#d9a441"
_ALPHA = 0.18


def shade_slowdowns(ax: Axes, scenario: Scenario, consumer: str | None = None) -> None:
    """Shade the broker's slowdowns, and ``consumer``'s (every consumer's where None)."""
    for window in _windows(scenario, consumer):
        ax.axvspan(window.start, window.to, color=SLOWDOWN_COLOUR, alpha=_ALPHA, hatch="//", linewidth=0)


def slowdown_key(scenario: Scenario) -> tuple[list[Patch], list[str]]:
    """The legend's entry for the shaded slowdowns, where there are any."""
    if not _windows(scenario, None):
        return [], []
    return [Patch(color=SLOWDOWN_COLOUR, alpha=_ALPHA, hatch="//")], ["slowdown"]


def _windows(scenario: Scenario, consumer: str | None) -> list:
    windows = list(scenario.broker.slowdowns or ())
    for entry in scenario.consumers:
        if consumer is None or entry.name == consumer:
            windows += entry.slowdowns or ()
    return windows
