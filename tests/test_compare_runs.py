"""busim compare with run folders: finished runs, simulated or real, read back and set beside simulated variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from matplotlib.text import Text
from typer.testing import CliRunner

import busim
import busim.api
from busim.cli import app
from busim.errors import BusimError
from busim.report.charts import comparison_anomalies, comparison_latency_cdf
from busim.scenario.units import format_duration
from tests.loadtest.conftest import require
from tests.loadtest.test_real_cli import REDIS_SCENARIO

runner = CliRunner()

# Redis Streams' preset, so that the same file also runs against a real Redis; 150 jobs in 3 s.
TINY = yaml.safe_load(REDIS_SCENARIO.format(name="tiny")) | {"duration": "3s"}


def _busim(*args: str | Path) -> object:
    result = runner.invoke(app, [str(arg) for arg in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_folder(tiny_file, tmp_path_factory) -> Path:
    """``busim run tiny.yaml --out .../sim``: a finished simulated run."""
    folder = tmp_path_factory.mktemp("runs") / "sim"
    ran = _busim("run", tiny_file, "--out", folder, "--quiet", "--no-charts")
    assert ran.exit_code == 0, ran.output
    return folder


@pytest.fixture(scope="module")
def replicated_folder(tiny_file, tmp_path_factory) -> Path:
    """``busim run tiny.yaml --replications 2 --out .../rep``: finished replications."""
    folder = tmp_path_factory.mktemp("runs") / "rep"
    ran = _busim("run", tiny_file, "--replications", "2", "--out", folder, "--quiet", "--no-charts")
    assert ran.exit_code == 0, ran.output
    return folder


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text(encoding="utf-8"))


def _simulated_scenarios(monkeypatch) -> list[str]:
    """The names of the scenarios busim compare simulates, in order, as it simulates them (with --workers 1:
    in this process)."""
    simulated: list[str] = []
    original = busim.api.simulate_checked

    def counting(scenario, *args, **kwargs):
        simulated.append(scenario.name)
        return original(scenario, *args, **kwargs)

    monkeypatch.setattr(busim.api, "simulate_checked", counting)
    return simulated


def test_a_run_folder_is_read_back_beside_a_simulated_file_and_every_header_says_which(
    run_folder, tiny_file, tmp_path, monkeypatch
):
    simulated = _simulated_scenarios(monkeypatch)
    out = tmp_path / "cmp"
    result = _busim(
        "compare", run_folder, tiny_file, "--set", "duration=2s", "--out", out, "--no-charts", "--workers", "1"
    )
    assert result.exit_code == 0, result.output
    assert simulated == ["tiny"]  # the file only: the folder is not simulated again
    document = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    first, second = document["variants"]
    assert (first["name"], first["folder"], second["name"], "folder" in second) == (
        "sim",
        str(run_folder),
        "tiny",
        False,
    )
    assert first["results"] == _results(run_folder)  # the folder's results as they were, unchanged
    assert second["overrides"] == ["duration=2s"]
    assert second["results"]["scenario"]["seed"] == 4
    markdown = (out / "compare.md").read_text(encoding="utf-8")
    assert "# tiny: 2 variants on seed 4\n" in markdown
    assert "|   | sim (simulated) | tiny (simulated) |" in markdown
    assert f"| sim (simulated) | finished run read from {run_folder} (seed 4) |" in markdown
    assert "| tiny (simulated) | duration=2s |" in markdown
    html = (out / "compare.html").read_text(encoding="utf-8")
    assert ">sim (simulated)</th>" in html and ">tiny (simulated)</th>" in html
    assert "\nsim (simulated)   consistent\ntiny (simulated)  consistent\n" in result.stdout


def test_a_folders_figures_are_its_own_and_the_replicated_variants_show_means(run_folder, tiny_file, tmp_path):
    out = tmp_path / "cmp"
    result = _busim("compare", run_folder, tiny_file, "--replications", "2", "--out", out, "--no-charts")
    assert result.exit_code == 0, result.output
    markdown = (out / "compare.md").read_text(encoding="utf-8")
    assert "|   | sim (simulated, 1 run) | tiny (simulated, 2 replications) |" in markdown
    p99_s = _results(run_folder)["consumers"]["worker"]["latency_s"]["end_to_end"]["p99"]
    row = next(line for line in markdown.splitlines() if line.startswith("| latency p99 |"))
    folder_cell, replicated_cell = row.split(" | ")[1:3]
    assert folder_cell == format_duration(p99_s)  # the single value, without an interval
    assert replicated_cell.count("[") == 1  # a mean with its interval
    document = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert [variant["results"]["schema"] for variant in document["variants"]] == [
        "busim.result/1",
        "busim.replications/1",
    ]


def test_a_folder_of_replications_shows_what_it_holds(replicated_folder, tiny_file, tmp_path, monkeypatch):
    simulated = _simulated_scenarios(monkeypatch)
    out = tmp_path / "cmp"
    result = _busim("compare", tiny_file, replicated_folder, "--out", out, "--no-charts", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert simulated == ["tiny"]
    comparison = busim.read(out)
    assert comparison.labels == ("tiny (simulated, 1 run)", "rep (simulated, 2 replications)")
    assert comparison.folders == (None, str(replicated_folder))
    held = _results(replicated_folder)["metrics"]["consumers"]["worker"]["latency_s"]["end_to_end"]["p99"]
    figure = comparison.outcome("rep").figure("worker", "latency_s", "end_to_end", "p99")
    assert (figure.mean, figure.low, figure.high) == (held["mean"], held["low"], held["high"])


def test_only_run_folders_compare_without_simulating(run_folder, replicated_folder, tmp_path, monkeypatch):
    simulated = _simulated_scenarios(monkeypatch)
    out = tmp_path / "cmp"
    result = _busim("compare", run_folder, replicated_folder, "--out", out, "--no-charts", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert simulated == []
    assert result.stdout.startswith(
        "tiny: 2 variants\nVariants run on their own seeds: each is a finished run, read back.\n"
    )


@pytest.mark.parametrize(
    ("options", "option"),
    [
        (["--vary", "duration=1s,2s"], "--vary"),
        (["--set", "duration=1s"], "--set"),
        (["--seed", "0"], "--seed"),
        (["--replications", "2"], "--replications"),
    ],
)
def test_an_option_that_changes_a_simulation_is_refused_with_only_run_folders(
    run_folder, replicated_folder, tmp_path, options, option
):
    result = _busim("compare", run_folder, replicated_folder, *options, "--out", tmp_path / "cmp")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"busim: {option}: applies to scenario files, and every one given is a run folder, compared as it ran; "
        "give a scenario file to simulate beside them, or drop it\n"
    )
    assert not (tmp_path / "cmp").exists()


def test_what_is_neither_a_run_folder_nor_a_scenario_file_is_refused_naming_it(run_folder, tiny_file, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = {
        empty: f"busim: {empty}: no results.json here; give the output folder of a busim run\n",
        run_folder / "results.json": (
            f"busim: {run_folder / 'results.json'}: neither a scenario file (.yaml) nor a run folder; "
            "give scenario files and the output folders of busim run\n"
        ),
        tmp_path / "missing": f"busim: {tmp_path / 'missing'}: no such scenario file or run folder\n",
    }
    for path, message in refused.items():
        result = _busim("compare", path, tiny_file, "--out", tmp_path / "cmp")
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", message)
    alone = _busim("compare", run_folder, "--out", tmp_path / "cmp")
    assert (alone.exit_code, alone.stderr) == (2, "busim: a comparison needs two or more variants (got sim)\n")
    twice = _busim("compare", run_folder, run_folder, "--out", tmp_path / "cmp")
    assert (twice.exit_code, twice.stderr) == (
        2,
        f"busim: variants named more than once: {run_folder}; give each a different name\n",
    )
    assert not (tmp_path / "cmp").exists()


def test_a_folder_named_like_a_file_goes_by_its_path(run_folder, tiny_file, tmp_path):
    named_alike = tmp_path / "tiny"
    named_alike.symlink_to(run_folder, target_is_directory=True)
    comparison = busim.compare([named_alike, ("tiny", busim.load(tiny_file))])
    assert comparison.names == (str(named_alike), "tiny")


def test_the_api_compares_a_folder_or_a_result_beside_a_scenario(run_folder, tiny_file):
    scenario = busim.load(tiny_file, ["duration=2s"])
    comparison = busim.compare([run_folder, ("short", scenario), ("again", busim.read(run_folder))], seed=9)
    assert comparison.names == ("sim", "short", "again")
    assert comparison.folders == (str(run_folder), None, None)
    assert comparison.labels == ("sim (simulated)", "short (simulated)", "again (simulated)")
    assert comparison.seed == 9
    assert comparison.outcome("short").scenario.seed == 9
    assert comparison.outcome("sim").scenario.seed == 4  # a finished run keeps its own
    assert comparison.outcome("sim").to_dict() == _results(run_folder)
    with pytest.raises(BusimError, match=r"^a seed and replications apply to the scenarios a comparison simulates"):
        busim.compare([run_folder, ("again", busim.read(run_folder))], seed=9)


def test_the_charts_legends_name_each_variants_mode(run_folder, tiny_file):
    comparison = busim.compare([run_folder, ("tiny", busim.load(tiny_file, ["duration=2s"]))])
    for chart in (comparison_latency_cdf, comparison_anomalies):
        # A column of the anomalies' table also says which earlier column it equals, on a line of its own.
        texts = {text.get_text().split("\n")[0] for text in chart(comparison).findobj(Text)}
        assert {"sim (simulated)", "tiny (simulated)"} <= texts, chart.__name__


def test_a_real_run_folder_sits_beside_a_simulated_variant(tiny_file, tmp_path):
    real = tmp_path / "redis-real"
    url = require("redis")
    ran = _busim("run", tiny_file, "--broker", url, "--set", "duration=1s", "--out", real, "--quiet", "--no-charts")
    assert ran.exit_code == 0, ran.output
    out = tmp_path / "cmp"
    result = _busim("compare", real, tiny_file, "--set", "duration=2s", "--out", out, "--no-charts")
    assert result.exit_code == 0, result.output
    document = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert [variant["results"]["mode"] for variant in document["variants"]] == ["real", "simulated"]
    assert "real" in document["variants"][0]["results"]
    markdown = (out / "compare.md").read_text(encoding="utf-8")
    assert "|   | redis-real (real) | tiny (simulated) |" in markdown
    html = (out / "compare.html").read_text(encoding="utf-8")
    assert ">redis-real (real)</th>" in html and ">tiny (simulated)</th>" in html
    comparison = busim.read(out)
    assert comparison.labels == ("redis-real (real)", "tiny (simulated)")
    texts = {text.get_text() for text in comparison_latency_cdf(comparison).findobj(Text)}
    assert {"redis-real (real)", "tiny (simulated)"} <= texts
