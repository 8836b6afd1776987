"""Work that cannot finish is refused up front, with what it would cost; a flag raises each limit."""

import time

import pytest
from typer.testing import CliRunner

import busim.api
import busim.cli
from busim.cli import app
from tests.conftest import SCENARIOS

runner = CliRunner()
FLASH_SALE = str(SCENARIOS / "flash-sale.yaml")


@pytest.fixture
def no_simulation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("simulated work it should have refused")

    for name in ("run_scenario", "compare"):
        monkeypatch.setattr(busim.cli, name, refuse)


def refused(*arguments: str) -> str:
    """What ``busim ARGUMENTS`` says when it refuses, with exit code 2 and no traceback."""
    result = runner.invoke(app, list(arguments))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.stderr


def test_too_many_replications_are_refused_with_their_cost(no_simulation, tmp_path):
    assert refused("run", FLASH_SALE, "--replications", "5000", "--out", str(tmp_path / "out")) == (
        "busim: 5,000 replications would be 5,000 simulations of about 52,500 messages each, 262,500,000 messages "
        "in all: about 1.5 hours at 50,000 messages a second; the limit is 1,000 (raise it with --max-runs)\n"
    )
    assert not (tmp_path / "out").exists()


def test_max_runs_raises_and_lowers_the_limit(no_simulation, tmp_path):
    said = refused("run", FLASH_SALE, "--replications", "3", "--max-runs", "2", "--out", str(tmp_path))
    assert "the limit is 2 (raise it with --max-runs)" in said


def test_a_huge_vary_grid_is_refused_before_a_variant_is_built(no_simulation, tmp_path):
    values = ",".join(str(index / 1e6) for index in range(1000))
    started = time.perf_counter()
    said = refused("compare", FLASH_SALE, "--vary", f"broker.duplication={values}", "--vary", f"broker.loss={values}")
    assert time.perf_counter() - started < 5  # building a million variants would take hours
    assert said == (
        "--vary makes 1,000 x 1,000 = 1,000,000 variants, more than the limit of 1,000 simulations "
        "(raise it with --max-runs)\n"
    )


def test_variants_times_replications_are_counted_together(no_simulation, tmp_path):
    said = refused("compare", FLASH_SALE, "--vary", "broker.preset=kafka,rabbitmq", "--replications", "600")
    assert said.startswith("busim: 2 variants x 600 replications would be 1,200 simulations")


def test_a_run_that_needs_more_memory_than_the_machine_has_is_refused_with_the_estimate(
    monkeypatch, no_simulation, tmp_path
):
    monkeypatch.setattr(busim.api, "available_memory_bytes", lambda: 120e6)
    # 150 MB for the process and 400 bytes for each of the 52,500 messages: 171 MB, 0.16 GiB.
    assert refused("run", FLASH_SALE, "--out", str(tmp_path / "out")) == (
        "busim: flash-sale would need about 0.16 GiB of memory for the 52,500 messages its consumer groups handle, "
        "more than the 0.11 GiB this machine has available; shorten duration, lower the rates, set "
        "publishers[].count, or allow more with --max-memory\n"
    )


def test_a_run_of_more_messages_than_the_limit_is_refused_with_what_it_would_need(no_simulation, tmp_path):
    assert refused("run", FLASH_SALE, "--max-messages", "50000", "--out", str(tmp_path / "out")) == (
        "busim: flash-sale would have its consumer groups handle about 52,500 messages, more than the limit of "
        "50,000, and need about 0.16 GiB of memory; shorten duration, lower the rates, set publishers[].count, or "
        "raise the limit with --max-messages\n"
    )


def test_an_hour_at_10000_a_second_is_within_the_default_limits():
    """36 million messages: within MAX_MESSAGES, and about 13.6 GiB at 400 bytes each, which 16 GiB allows."""
    hour = busim.load(FLASH_SALE, ["duration=1h", "publishers.order-service.rate=10000/s"])
    assert busim.api.expected_group_messages(hour) == pytest.approx(36e6)
    busim.api.check_size(hour, max_memory_bytes=16 * 2**30)


def test_max_memory_sets_the_budget_instead_of_the_machine(monkeypatch, tmp_path):
    monkeypatch.setattr(busim.api, "available_memory_bytes", lambda: 120e6)
    command = ["run", FLASH_SALE, "--out", str(tmp_path), "-q", "--no-charts", "--max-memory"]
    allowed = runner.invoke(app, [*command, "1GB"])
    assert allowed.exit_code == 0, allowed.output
    assert "more than the limit of 0.10 GiB (--max-memory)" in refused(*command, "0.1GiB")


def test_an_amount_of_memory_must_look_like_one():
    said = refused("run", FLASH_SALE, "--max-memory", "lots")
    assert "expected an amount of memory such as 800MB, 16GB or 2GiB (got 'lots')" in said
