"""The README shows what busim prints, and its commands are the ones CI runs.

Every console sample in the README (a code block without a language that is
not a command) follows a ``<!-- sample: COMMAND -->`` line, and is what
COMMAND prints at 80 columns: all of it, or a part of it that ends where the
printed paragraph or table ends, so that a line the README leaves out shows.
"""

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

import busim
from busim.cli import app
from tests.conftest import ROOT, SCENARIOS

pytestmark = pytest.mark.xdist_group("readme")  # one worker: the module's shared runs run once

README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"(?:<!-- sample: (?P<command>[^\n]*) -->\n)?```(?P<language>\w*)\n(?P<body>.*?)\n```", re.DOTALL)
COMMANDS = ("busim ", "pip ")
RUN_FOLDER = re.compile(r"\d{8}-\d{6}(?:-\d+)?")  # runs/<name>/<date>-<time>: the time of the run


def console_samples() -> list[tuple[str | None, str]]:
    """``(command, sample)`` for every console sample in the README, in order; command None where unmarked."""
    return [
        (match["command"], match["body"])
        for match in BLOCK.finditer(README)
        if not match["language"] and not match["body"].startswith(COMMANDS)
    ]


def test_every_console_sample_names_the_command_that_prints_it():
    samples = console_samples()
    assert len(samples) == 8
    assert [sample.splitlines()[0] for command, sample in samples if command is None] == []


_PRINTED: dict[tuple[str, bool], list[str]] = {}  # two samples may show parts of one command's output


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder to run the README's commands in, beside the scenarios as in a checkout."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "scenarios").symlink_to(SCENARIOS)
    return folder


def printed(command: str, charts: bool = True) -> list[str]:
    """What ``command`` prints on stdout at 80 columns, run in the current folder, line by line;
    ``charts``: draw the charts too (they change only the last line, the files written)."""
    if (command, charts) not in _PRINTED:
        arguments = shlex.split(command)[1:] + ([] if charts or arguments_draw_none(command) else ["--no-charts"])
        runner = CliRunner()
        if arguments[0] == "explain" and not Path(arguments[1]).exists():  # explain tells a run's stories
            ran = runner.invoke(app, ["run", f"scenarios/{Path(arguments[1]).name}.yaml", "--no-charts", "-q"])
            assert ran.exit_code == 0, ran.output
        result = runner.invoke(app, arguments, env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        _PRINTED[command, charts] = [RUN_FOLDER.sub("DATE-TIME", line.rstrip()) for line in result.stdout.splitlines()]
    return _PRINTED[command, charts]


def arguments_draw_none(command: str) -> bool:
    """Whether ``command`` draws no charts anyway."""
    return command.split()[1] not in ("run", "compare") or "--no-charts" in command


@pytest.mark.parametrize(
    ("command", "sample"),
    [sample for sample in console_samples() if sample[0] is not None],
    ids=lambda value: value.splitlines()[0][:40],
)
def test_the_sample_is_what_its_command_prints(workdir, monkeypatch, command, sample):
    monkeypatch.chdir(workdir)
    lines = printed(command, charts=any(line.startswith("Wrote ") for line in sample.splitlines()))
    expected = [RUN_FOLDER.sub("DATE-TIME", line) for line in sample.splitlines()]
    starts = [index for index, line in enumerate(lines) if line == expected[0]]
    matches = [start for start in starts if lines[start : start + len(expected)] == expected]
    assert matches, "\n".join(lines)
    end = matches[0] + len(expected)
    assert end == len(lines) or lines[end] == "", f"the sample stops before the printed lines do: {lines[end]!r}"


def test_ci_runs_the_readme_test_command():
    printed = subprocess.run(["bash", ".ci/run", "--print"], cwd=ROOT, capture_output=True, text=True, check=True)
    block = re.search(r"<!-- test command[^\n]*\n```\n([^\n]+)\n```", README)
    assert block is not None
    assert printed.stdout == block.group(1) + "\n" == "pip install -e '.[test]' && python -m pytest\n"


def test_the_scheduled_crash_does_what_the_readme_says():
    command = re.search(r"## Faults on a schedule\n.*?```\n(busim run [^\n]+)\n```", README, re.DOTALL).group(1)
    assignment = "consumers.inventory.crash={at: 72s, instance: 1}"
    assert command == f"busim run scenarios/flash-sale.yaml --set '{assignment}'"
    inventory = busim.simulate(busim.load(SCENARIOS / "flash-sale.yaml", [assignment])).summary.consumers["inventory"]
    assert inventory.crash_times_s == (72.0,)
    assert inventory.by_reason["redelivered"] == {"crash_in_flight": 1, "prefetched": 249}
    assert inventory.duplicate_effects == 0
