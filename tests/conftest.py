"""Shared test helpers: scenarios built in code, with only what a test varies."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import typer
import typer.core
import typer.main
import typer.testing
import yaml

from busim.scenario.schema import Scenario

if TYPE_CHECKING:
    import busim

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"

# Typer's CliRunner builds the whole click command of an app again on every invoke: some 50 ms of CPU,
# paid hundreds of times per test run. The command is the same each time (its callbacks look busim.cli's
# names up when called, so monkeypatching still reaches them), so each app's command is built once, for each
# value of the one variable Typer reads as it builds a command (its completion options depend on it).
SHELL_DETECTION_SWITCH = "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"


@cache
def _built_command(
    app: typer.Typer, shell_detection_switch: str | None
) -> typer.core.TyperGroup | typer.core.TyperCommand:
    return typer.main.get_command(app)


def _command(app: typer.Typer) -> typer.core.TyperGroup | typer.core.TyperCommand:
    """``app``'s click command, built once for each value of the switch."""
    return _built_command(app, os.environ.get(SHELL_DETECTION_SWITCH))


typer.testing._get_command = _command


@pytest.fixture(autouse=True)
def runs_in_the_test_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """busim's default worker count, one process per core, taken as one: the runs of a batch (busim compare, a
    replicated busim run) are made in the test's own process.

    Under xdist every core already runs tests, so a pool adds only the cost of starting its processes, about
    1.7 s of CPU for each command that uses one. The runs give the same results on any number of workers
    (tests/test_workers.py), and the tests of workers name their count.
    """
    import busim.api
    import busim.workers

    monkeypatch.setattr(busim.workers, "cores", lambda: 1)
    monkeypatch.setattr(busim.api, "cores", lambda: 1)


def consumer(**fields: Any) -> dict[str, Any]:
    """A consumer of Job events, named ``worker`` unless told otherwise."""
    return {"name": "worker", "subscribes": ["Job"], **fields}


def scenario(consumers: list[dict[str, Any]] | None = None, **changes: Any) -> Scenario:
    """A minimal valid scenario: Job events published evenly at 10/s for 10 s (100 messages).

    Each keyword replaces a top-level section of the scenario whole.
    """
    base = {
        "name": "test",
        "seed": 1,
        "duration": 10,
        "events": {"Job": {"key": "item", "fields": {"item": {"uniform_int": {"low": 1, "high": 5}}}}},
        "publishers": [{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 10}],
        "consumers": consumers or [consumer()],
    }
    return Scenario.model_validate(base | changes)


@pytest.fixture
def flash_sale_path() -> Path:
    return SCENARIOS / "flash-sale.yaml"


@pytest.fixture(scope="session")
def flash_sale_run(tmp_path_factory) -> Path:
    """The folder ``busim run scenarios/flash-sale.yaml`` writes, charts and reports included: one run shared
    by the tests that only read it (copy it with :func:`shutil.copytree` to change it)."""
    from typer.testing import CliRunner

    from busim.cli import app

    folder = tmp_path_factory.mktemp("flash-sale-run") / "run"
    ran = CliRunner().invoke(app, ["run", str(SCENARIOS / "flash-sale.yaml"), "--quiet", "--out", str(folder)])
    assert ran.exit_code == 0, ran.output
    return folder


@pytest.fixture(scope="session")
def flash_sale_compared(tmp_path_factory) -> Path:
    """The folder ``busim compare scenarios/flash-sale.yaml --vary broker.preset=rabbitmq,kafka --set duration=100s
    --quiet`` writes, charts included: one comparison shared by the tests that only read it."""
    from typer.testing import CliRunner

    from busim.cli import app

    folder = tmp_path_factory.mktemp("flash-sale-compared")
    arguments = ["compare", str(SCENARIOS / "flash-sale.yaml"), "--vary", "broker.preset=rabbitmq,kafka"]
    ran = CliRunner().invoke(app, [*arguments, "--set", "duration=100s", "--quiet", "--out", str(folder)])
    assert ran.exit_code == 0, ran.output
    return folder


@cache
def simulated(file: str) -> busim.Result:
    """The run of ``scenarios/<file>`` as the file states it, once per test process: deterministic under the
    file's seed and immutable, it serves every test that only reads it."""
    import busim

    return busim.simulate(busim.load(SCENARIOS / file))


@cache
def variants_compared(file: str) -> busim.Comparison:
    """The comparison of the variants block of ``scenarios/<file>`` as the file states it, run once per test
    process: the run is deterministic under the file's seed and a Comparison is immutable, so the tests that
    only read it share it. Mark those tests ``VARIANTS_COMPARED`` so that one process runs them all."""
    import busim
    from busim.scenario.variants import load_variants

    variants = load_variants([SCENARIOS / file], [], [])
    return busim.compare([(variant.name, variant.loaded) for variant in variants])


@cache
def eight_presets_compared() -> busim.Comparison:
    """The flash sale's first 100 s on eight broker presets, compared, once per test process (as
    :func:`variants_compared`, mark the tests that read it ``VARIANTS_COMPARED``)."""
    import busim
    from busim.scenario.variants import load_variants

    presets = "rabbitmq,rabbitmq-quorum,sqs-standard,sqs-fifo,sns-sqs,nats-jetstream,redis-streams,kafka"
    variants = load_variants([SCENARIOS / "flash-sale.yaml"], [f"broker.preset={presets}"], ["duration=100s"])
    return busim.compare([(variant.name, variant.loaded) for variant in variants])


# Tests that share a run through a fixture or a cache run in one worker, which then runs it once
# (--dist loadgroup); every other test goes to whichever worker is free. A test takes one group only:
# the groups of a module and of its test would join into a third.
VARIANTS_COMPARED = pytest.mark.xdist_group("variants-compared")
FLASH_SALE_RUNS = pytest.mark.xdist_group("flash-sale-runs")  # flash_sale_run and flash_sale_compared


# Debian's headless Chromium renders report.html in a test. Where it is missing and apt can install it (the CI
# machine runs as root), the install (some 40 s on a fresh machine) starts with the session, in the background,
# rather than in the test's worker; the test's own install waits for the dpkg lock and finds it done.
CHROMIUM_INSTALL = ["apt-get", "-o", "DPkg::Lock::Timeout=900", "install", "-y", "-q", "chromium"]


def can_install_chromium() -> bool:
    return shutil.which("chromium") is None and shutil.which("apt-get") is not None and os.geteuid() == 0


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput") and can_install_chromium():  # once, in the controlling process
        session.config.stash[_CHROMIUM_INSTALLING] = subprocess.Popen(
            CHROMIUM_INSTALL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    installing = session.config.stash.get(_CHROMIUM_INSTALLING, None)
    if installing is not None:
        installing.wait(timeout=900)


_CHROMIUM_INSTALLING = pytest.StashKey[subprocess.Popen]()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than the cores, since the real-broker tests spend much of their time
    waiting on brokers and consumer processes (measured on 2 cores: 240 s against 279 s for the suite)."""
    return (os.cpu_count() or 1) + 1


QUEUEING = {
    "name": "test",
    "seed": 7,
    "duration": 10,
    "events": {"Job": {"key": "item", "fields": {"item": {"uniform_int": {"low": 1, "high": 5}}}}},
    "publishers": [{"name": "source", "event": "Job", "arrivals": "poisson", "rate": 20}],
    "consumers": [consumer(processing_time={"exponential": {"mean": 0.08}})],
}


@pytest.fixture(scope="session")
def queueing_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Jobs at 20/s for 10 s (poisson, seed 7) to one worker instance taking 80 ms on average: one instance falls
    behind, four keep up. A file, as sweeps and searches load one per point; the broker's keys left to its preset."""
    path = tmp_path_factory.mktemp("planning") / "queueing.yaml"
    path.write_text(yaml.safe_dump(QUEUEING, sort_keys=False), encoding="utf-8")
    return path
