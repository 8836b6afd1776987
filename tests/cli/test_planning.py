"""busim sweep and busim capacity from the command line: what they write, and how they refuse bad input."""

import csv
import json

import pytest
from typer.testing import CliRunner

from busim.cli import app

runner = CliRunner()
KEY = "consumers.worker.instances"


def busim(*arguments):
    result = runner.invoke(app, [str(argument) for argument in arguments])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception  # not a bug
    return result


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--vary", f"{KEY}=8..1"],
            f"--vary {KEY}=8..1: the range must go up (8 > 1)\n",
        ),
        (
            ["--vary", f"{KEY}=1..4", "--figure", "p98"],
            "busim: --figure p98: no figure 'p98', of any consumer (worker); figures go by their names in "
            "results.json (docs/capacity.md#figures); did you mean 'p99'?\n",
        ),
        (
            ["--vary", "consumers.worker.instance=1..4"],
            "--vary consumers.worker.instance=1: consumers[0].instance: unknown key 'instance'; "
            "did you mean 'instances'?\n",
        ),
        (
            ["--vary", f"{KEY}=1..4", "--replications", "0"],
            "busim: --replications: must be >= 1 (got 0)\n",
        ),
        (
            ["--vary", f"{KEY}=1..4", "--workers", "0"],
            "busim: --workers: must be >= 1 (got 0)\n",
        ),
    ],
)
def test_a_bad_sweep_is_refused_before_anything_runs(queueing_file, tmp_path, arguments, message):
    out = tmp_path / "sweep"
    result = busim("sweep", queueing_file, *arguments, "--out", out)
    assert result.exit_code == 2
    if message is not None:
        assert result.stderr == message
    else:
        assert result.stderr.startswith("--vary consumers.worker.instance=1..4: ")
    assert not out.exists()


def test_a_sweep_writes_its_tidy_csv_and_json(queueing_file, tmp_path):
    out = tmp_path / "sweep"
    result = busim(
        "sweep", queueing_file, "--vary", f"{KEY}=1..4:x2", "--replications", "2", "--workers", "1",
        "--figure", "p99", "--figure", "max_backlog", "--out", out, "--no-charts", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    with (out / "sweep.csv").open(encoding="utf-8", newline="") as table:
        rows = list(csv.DictReader(table))
    assert [(row["point"], row[KEY], row["figure"]) for row in rows] == [
        ("0", "1", "p99"),
        ("0", "1", "max_backlog"),
        ("1", "2", "p99"),
        ("1", "2", "max_backlog"),
        ("2", "4", "p99"),
        ("2", "4", "max_backlog"),
    ]
    assert {row["runs"] for row in rows} == {"2"}
    document = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    assert document["schema"] == "busim.sweep/1"
    assert [point["values"][KEY] for point in document["points"]] == ["1", "2", "4"]
    backlog = [point["figures"]["worker.max_backlog"]["mean"] for point in document["points"]]
    assert backlog[0] > backlog[2]  # one instance falls behind, four keep up
    assert _written(out) == ["sweep.csv", "sweep.json", "sweep.md"]


def test_a_sweep_on_two_workers_writes_what_one_writes(queueing_file, tmp_path):
    documents = []
    for workers in ("1", "2"):
        out = tmp_path / workers
        result = busim(
            "sweep", queueing_file, "--vary", f"{KEY}=1..3", "--replications", "2", "--workers", workers, "--json",
            "--out", out, "--no-charts",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)
        del document["run"]  # how long it took
        documents.append(document)
    assert documents[0] == documents[1]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--find", KEY, "--slo", "p99 < 1s"],
            "busim: give --min (the smallest value that meets every objective, for a key where more helps, such "
            "as instances) or --max (the largest, where more hurts, such as a rate)\n",
        ),
        (
            ["--find", KEY, "--min", "--max", "--slo", "p99 < 1s"],
            "busim: give --min (the smallest value that meets every objective, for a key where more helps, such "
            "as instances) or --max (the largest, where more hurts, such as a rate)\n",
        ),
        (
            ["--find", "consumers.worker.instnaces", "--min", "--slo", "p99 < 1s"],
            "--find consumers.worker.instnaces: the scenario has no key 'instnaces' in consumers.worker; "
            "did you mean 'instances'?\n",
        ),
        (
            ["--find", "consumers.worker.idempotency", "--min", "--slo", "p99 < 1s"],
            "--find consumers.worker.idempotency: holds 'none', not a number; search a key that holds a number, "
            "such as consumers.NAME.instances or publishers.NAME.rate\n",
        ),
        (
            ["--find", KEY, "--min", "--slo", "p99 = 1s"],
            "busim: --slo p99 = 1s: expected FIGURE OP VALUE with OP one of < <= > >= ==, such as "
            "'inventory.p99 < 200ms' or 'lost == 0'\n",
        ),
        (
            ["--find", KEY, "--min", "--slo", "p99 < 1s", "--between", "8..2"],
            "busim: --between 8..2: the range must go up (8 is not below 2)\n",
        ),
        (
            ["--find", KEY, "--min", "--slo", "p99 < 1s", "--start", "2.5"],
            f"--find {KEY}: takes whole numbers; give a whole --start (got 2.5)\n",
        ),
        (
            ["--find", KEY, "--min", "--slo", "p99 < 1s", "--tolerance", "0"],
            "busim: --tolerance: must lie strictly between 0 and 100% (got 0)\n",
        ),
        (
            ["--find", KEY, "--min", "--slo", "p99 < 1s", "--replications", "8", "--max-replications", "4"],
            "busim: --max-replications 4 is below --replications 8; a probe starts with --replications runs and "
            "adds more up to --max-replications\n",
        ),
    ],
)
def test_a_bad_search_is_refused_before_anything_runs(queueing_file, tmp_path, arguments, message):
    out = tmp_path / "capacity"
    result = busim("capacity", queueing_file, *arguments, "--out", out)
    assert result.exit_code == 2
    assert result.stderr == message
    assert not out.exists()


def test_a_search_prints_its_answer_and_writes_its_document(queueing_file, tmp_path):
    out = tmp_path / "capacity"
    result = busim(
        "capacity", queueing_file, "--find", KEY, "--min", "--slo", "worker.max_backlog < 10", "--slo", "lost == 0",
        "--replications", "2", "--max-replications", "4", "--workers", "1", "--out", out, "--no-charts",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads((out / "capacity.json").read_text(encoding="utf-8"))
    assert document["schema"] == "busim.capacity/1"
    answer = int(document["answer"])
    assert result.stdout.startswith(f"{KEY} = {answer}: the smallest value that meets every objective")
    assert [probe["verdict"] for probe in document["probes"] if probe["value"] == answer] == ["meets"]
    assert _written(out) == ["capacity.json", "capacity.md"]


def _written(folder) -> list[str]:
    """The files a command wrote for its user (not busim's own bookkeeping, which starts with a dot)."""
    return sorted(path.name for path in folder.iterdir() if not path.name.startswith("."))


def test_a_search_that_finds_no_value_exits_with_1(queueing_file, tmp_path):
    result = busim(
        "capacity", queueing_file, "--find", KEY, "--min", "--slo", "worker.p99 < 1ms", "--between", "1..2",
        "--start", "1", "--replications", "2", "--max-replications", "2", "--workers", "1", "--no-charts",
        "--out", tmp_path / "none",
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{KEY}: no value tried (2 probes, 1 to 2) meets every")


def test_a_search_stops_before_it_passes_max_runs(queueing_file, tmp_path):
    result = busim(
        "capacity", queueing_file, "--find", KEY, "--min", "--slo", "worker.max_backlog < 10", "--start", "1",
        "--replications", "2", "--max-replications", "2", "--max-runs", "3", "--workers", "1", "--json",
        "--out", tmp_path / "stopped",
    )  # fmt: skip
    document = json.loads(result.stdout)
    assert [probe["value"] for probe in document["probes"]] == [1]
    assert document["notes"][0] == (
        "the search stopped: 2 more runs at 2 would pass the limit of 3 runs (raise it with --max-runs)"
    )
