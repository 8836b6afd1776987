"""The scenario: its format (schema), units, and reading it from YAML."""

from busim.scenario.loader import LoadedScenario, load_scenario
from busim.scenario.schema import Scenario

__all__ = ["LoadedScenario", "Scenario", "load_scenario"]
