"""The one error hierarchy busim reports to its users.

Everything a user can cause (a bad scenario, a missing file, a bad override)
raises a :class:`BusimError`; the command line prints it without a traceback
and exits with code 2. Any other exception is a bug in busim and keeps its
traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class BusimError(Exception):
    """Base class of every error caused by input rather than by a bug."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario, located in the text it came from.

    ``source`` names where the value came from: a file path, or the
    ``--set KEY=VALUE`` override that supplied it. ``line`` and ``column`` are
    1-based and absent for overrides. ``path`` is the key path inside the
    scenario, for example ``publishers[1].rate``; empty for the whole file.
    ``cause`` names what made a value in the file wrong where the file alone
    is right (``caused by --set duration=60s``), and the grid point or variant
    a problem belongs to; empty when there is nothing to add.
    """

    source: str
    line: int | None
    column: int | None
    path: str
    message: str
    cause: str = ""

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        told = f"{self.message} ({self.cause})" if self.cause else self.message
        if self.path:
            return f"{where}: {self.path}: {told}"
        return f"{where}: {told}"


class ScenarioError(BusimError):
    """A scenario is invalid; carries every problem found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("a ScenarioError needs at least one problem")
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


class ScenarioFileError(BusimError):
    """A scenario file cannot be read: it is missing, a folder, or not text."""


class OverrideError(BusimError):
    """A ``--set KEY=VALUE`` override is malformed or names no scenario key."""


class OutputError(BusimError):
    """The output folder cannot be created or written."""


class RunTooLargeError(BusimError):
    """A run would handle more messages than the memory limit allows."""


class RunFolderError(BusimError):
    """A run's folder is missing, incomplete, or disagrees with what simulating it again gives."""
