"""Reading a run's folder back: results.json checked against its schema and against scenario.yaml.

Every way a results.json can be wrong ends in one line naming the file and
the first bad key, and exit code 2: never a traceback, whichever command
(``busim report``, ``busim explain``) reads the folder.
"""

import io
import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from busim.cli import app
from busim.report.charts import CHARTS, save_figure
from busim.report.console import render_outcome
from busim.report.folder import read_comparison_folder, read_run_folder
from tests.conftest import ROOT, VARIANTS_COMPARED, simulated

runner = CliRunner()
# A chain, state with a floor, a read model, crashes and invariants: every part of results.json a report draws.
SMALL_PIPELINE = ROOT / "tests" / "data" / "small-pipeline.yaml"
CHAIN = "OrderPlaced > inventory > StockReserved > payment"
EDITED = "the results and the scenario come from different runs, or were edited"
MISSING = "missing; the file was written by another version of busim, or edited"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    """A run's folder of the small pipeline."""
    folder = tmp_path_factory.mktemp("pipeline")
    ran = runner.invoke(app, ["run", str(SMALL_PIPELINE), "--out", str(folder), "--no-charts", "--quiet"])
    assert ran.exit_code == 0, ran.output
    return folder


def copy_run(source: Path, folder: Path, results: str | None = None) -> Path:
    """``source``'s results.json (or ``results`` instead) and scenario.yaml, alone in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "scenario.yaml", folder / "scenario.yaml")
    text = (source / "results.json").read_text() if results is None else results
    (folder / "results.json").write_text(text)
    return folder


def edited(pipeline: Path, folder: Path, change) -> Path:
    """A copy of the pipeline's folder whose results.json ``change(document)`` edited in place."""
    document = json.loads((pipeline / "results.json").read_text())
    change(document)
    return copy_run(pipeline, folder, json.dumps(document))


def report(folder: Path, *options: str):
    return runner.invoke(app, ["report", str(folder), "--no-charts", *options])


def refused(result, message: str) -> None:
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"busim: {message}\n")


def test_a_runs_folder_reads_back_as_the_document_its_run_wrote(pipeline):
    run_folder = read_run_folder(pipeline, "report")
    # The same document again, written from the result read: one schema writes and reads it.
    assert run_folder.result.to_dict() == json.loads((pipeline / "results.json").read_text())
    assert run_folder.result.record is None
    assert run_folder.result.scenario == run_folder.loaded.scenario
    assert list(run_folder.result.summary.consumers) == ["inventory", "payment"]


# The module's own folders take a fraction of a second to make: any worker may run its tests. The runs of
# the example scenarios are the ones other modules read, in the worker that runs them all.
@VARIANTS_COMPARED
@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda path: path.stem)
def test_the_schema_reads_what_every_example_scenario_writes(tmp_path, path):
    # The reader and the writer share the summaries' dataclasses; this keeps the envelope around them in step.
    result = simulated(path.name)
    folder = tmp_path
    (folder / "results.json").write_text(json.dumps(result.to_dict(), allow_nan=False))
    shutil.copy(path, folder / "scenario.yaml")
    read = read_run_folder(folder, "report").result
    # The very figures the run had, typed as it typed them, and written again as it wrote them.
    assert read.summary == result.summary
    assert (read.sim_time_s, read.drained, read.messages, read.stopped) == (
        result.sim_time_s,
        result.drained,
        result.messages,
        result.stopped,
    )
    assert read.to_dict() == result.to_dict()
    # And the console shows the run read back as it showed the run.
    assert rendered(read) == rendered(result)


def rendered(result) -> str:
    output = io.StringIO()
    render_outcome(Console(file=output, width=160, color_system=None), result)
    return output.getvalue()


# ---------------------------------------------------------------- the document's shape
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda document: document.pop("consumers"), f"consumers: {MISSING}"),
        (lambda document: document.pop("publishers"), f"publishers: {MISSING}"),
        (
            lambda document: document["consumers"]["inventory"].pop("latency_s"),
            f"consumers.inventory.latency_s: {MISSING}",
        ),
        (
            lambda document: document["consumers"].update(payment=None),
            "consumers.payment: expected an object (got null)",
        ),
        (lambda document: document.update(consumers=[]), "consumers: expected an object (got an empty list)"),
        (
            lambda document: document["consumers"]["inventory"].update(lost="3"),
            "consumers.inventory.lost: expected a whole number (got '3')",
        ),
        (
            lambda document: document["publishers"]["order"].update(published=220.0),
            "publishers.order.published: expected a whole number (got 220.0)",
        ),
        (
            lambda document: document["consumers"]["inventory"]["latency_s"]["end_to_end"].update(p50="fast"),
            "consumers.inventory.latency_s.end_to_end.p50: expected a number or null (got 'fast')",
        ),
        (
            lambda document: document["consumers"]["inventory"]["latency_s"]["end_to_end"].update(p99=math.nan),
            "consumers.inventory.latency_s.end_to_end.p99: expected a number or null (got NaN)",
        ),
        (
            lambda document: document.update(sim_time_s=-math.inf),
            "sim_time_s: expected a number (got -Infinity)",
        ),
        (
            lambda document: document["consumers"]["payment"].update(crashes=10**30),
            "consumers.payment.crashes: expected a whole number within ±2^63 (got a whole number of 31 digits)",
        ),
        (
            lambda document: document.update(drained="no"),
            "drained: expected true or false (got 'no')",
        ),
        (
            lambda document: document["consumers"]["inventory"]["latency_quantiles_s"].__setitem__(3, [1.0, 2, 3]),
            "consumers.inventory.latency_quantiles_s[3]: expected a list of 2 numbers (got a list of 3)",
        ),
        (
            lambda document: document["consumers"]["inventory"]["latency_s"]["end_to_end"].update(p50=None),
            "consumers.inventory.latency_s.end_to_end.p50: expected a number, as count is 216 (got null)",
        ),
        (
            lambda document: document["consumers"]["payment"]["recovery_s"].update(max=2.5),
            "consumers.payment.recovery_s.max: expected null, as count is 0 (got 2.5)",
        ),
        (
            lambda document: document["chains"][CHAIN]["latency_s"].update(count=-1),
            f"chains['{CHAIN}'].latency_s.count: expected a whole number >= 0, a count (got -1)",
        ),
        (
            lambda document: document["consumers"]["inventory"].update(subscribed=-(2**63)),
            "consumers.inventory.subscribed: expected a whole number >= 0, a count (got -9223372036854775808)",
        ),
        (
            lambda document: document["consumers"]["inventory"]["state"]["stock"].update(lowest=-(2**63) - 1),
            "consumers.inventory.state.stock.lowest: expected a whole number within ±2^63 (got -9223372036854775809)",
        ),
        (
            lambda document: document["consumers"]["inventory"]["crash_times_s"].append(1e308),
            "consumers.inventory.crash_times_s[9]: expected a time within the run, from 0 to sim_time_s, 610 "
            "(got 1e+308)",
        ),
        (
            lambda document: document["consumers"]["inventory"]["series"]["backlog"].pop(),
            "consumers.inventory.series.backlog: expected one value per window, 61 as published has (got 60)",
        ),
        (
            lambda document: document["consumers"]["inventory"]["series"].update(window_s=0),
            "consumers.inventory.series.window_s: expected a number > 0 (got 0)",
        ),
        (
            lambda document: document["consumers"]["inventory"]["state"]["stock"].update(lowest=[55]),
            "consumers.inventory.state.stock.lowest: expected a whole number or null (got a list of 1)",
        ),
        (lambda document: document.update(invariants={}), "invariants: expected a list (got an object)"),
        (
            lambda document: document["invariants"][1].update(passed="yes"),
            "invariants[1].passed: expected true or false (got 'yes')",
        ),
        (
            lambda document: document["invariants"][0].update(bound="maximum"),
            "invariants[0].bound: expected 'max' or 'min' (got 'maximum')",
        ),
        (
            lambda document: document["invariants"][0].update(subject="stock"),
            "invariants[0].subject: expected consumer.counter for the lowest of a counter (got 'stock')",
        ),
        (
            lambda document: document["invariants"][2].pop("measured"),
            f"invariants[2].measured: {MISSING}",
        ),
        (lambda document: document.update(chains=[CHAIN]), "chains: expected an object (got a list of 1)"),
        (
            lambda document: document["chains"][CHAIN]["hops"][1]["latency_s"].update(count=None),
            f"chains['{CHAIN}'].hops[1].latency_s.count: expected a whole number (got null)",
        ),
        (
            lambda document: document["chains"][CHAIN].update(hops={"0": {}}),
            f"chains['{CHAIN}'].hops: expected a list (got an object)",
        ),
        (
            lambda document: document["consistency"].update(violations="none"),
            "consistency.violations: expected a list (got 'none')",
        ),
    ],
)
def test_a_results_json_that_departs_from_its_schema_is_refused_naming_the_first_bad_key(
    pipeline, tmp_path, change, problem
):
    folder = edited(pipeline, tmp_path, change)
    refused(report(folder), f"{folder / 'results.json'}: {problem}")


@pytest.mark.parametrize(
    ("text", "problem"),
    [("[]", "an empty list"), ("null", "null"), ('"busim"', "'busim'"), ("[{}, {}]", "a list of 2")],
)
def test_a_results_json_that_is_not_an_object_is_refused(pipeline, tmp_path, text, problem):
    folder = copy_run(pipeline, tmp_path, text)
    refused(report(folder), f"{folder / 'results.json'}: expected an object (got {problem})")


def test_a_long_text_is_echoed_cut_short(pipeline, tmp_path):
    folder = edited(pipeline, tmp_path, lambda document: document["messages"].update(published="x" * 100))
    refused(
        report(folder), f"{folder / 'results.json'}: messages.published: expected a whole number (got '{'x' * 40}'...)"
    )


def test_keys_a_later_busim_adds_are_left_out_and_the_report_is_drawn(pipeline, tmp_path):
    def added(document):
        document["added_later"] = {"anything": [1, 2]}
        document["consumers"]["inventory"]["added_later"] = 1

    folder = edited(pipeline, tmp_path, added)
    assert "added_later" not in json.dumps(read_run_folder(folder, "report").result.to_dict())
    drawn = report(folder, "--quiet")
    assert (drawn.exit_code, drawn.stderr) == (0, "")


def test_figures_no_run_gives_but_that_keep_the_schema_are_drawn(pipeline, tmp_path):
    # A reason busim does not know, a read model without a staleness summary, drift beyond 64 bits.
    def odd(document):
        inventory = document["consumers"]["inventory"]
        inventory["by_reason"]["missed_crashes"] = {"cosmic_ray": 1}
        inventory["staleness_age_s"] = None
        inventory["state"]["stock"]["most_drifted"][0].update(expected=-(2**63), actual=2**63 - 1)

    folder = edited(pipeline, tmp_path, odd)
    drawn = report(folder, "--quiet")
    assert (drawn.exit_code, drawn.stderr) == (0, "")
    markdown = (folder / "report.md").read_text()
    assert "| crashes | 9 | 0 | inventory: 1 scheduled crash did not happen: 1 cosmic ray |" in markdown
    assert "| staleness p50 | — | — | since the oldest event not yet applied |" in markdown
    # The charts that read these figures (the funnel reads the reasons, consistency the drift), drawn and saved
    # as report --charts saves them; no other chart reads them, and drawing every chart takes seconds.
    read = read_run_folder(folder, "report").result
    for name in ("delivery-funnel", "consistency"):
        saved = save_figure(CHARTS[name](read), tmp_path, name)
        assert [path.stat().st_size > 0 for path in saved] == [True, True]


def test_a_counters_values_and_keys_may_be_below_zero(pipeline, tmp_path):
    def below(document):
        stock = document["consumers"]["inventory"]["state"]["stock"]
        stock.update(expected_total=-3, actual_total=-5, lowest=-7, highest=-1)
        stock["most_drifted"][0].update(key=-2, expected=-1, actual=-4)

    assert report(edited(pipeline, tmp_path, below), "--quiet").exit_code == 0


def test_results_json_that_is_not_json_is_refused_with_where_it_breaks(pipeline, tmp_path):
    folder = copy_run(pipeline, tmp_path, '{\n  "schema": "busim.result/1",\n  "scenario": {"name": "small-pi')
    refused(
        report(folder), f"{folder / 'results.json'}: not valid JSON (EOF while parsing a string at line 3 column 32)"
    )
    (folder / "results.json").write_text("")
    refused(report(folder), f"{folder / 'results.json'}: not valid JSON (EOF while parsing a value at line 1 column 0)")
    (folder / "results.json").write_bytes(b'{"schema": "busim.result/1", "name": "\xff"}')
    refused(
        report(folder),
        f"{folder / 'results.json'}: cannot read it ('utf-8' codec can't decode byte 0xff in position 38: "
        "invalid start byte)",
    )


def test_a_document_of_another_kind_is_refused(pipeline, tmp_path):
    folder = edited(pipeline, tmp_path, lambda document: document.update(schema="busim.result/2"))
    refused(
        report(folder),
        f"{folder / 'results.json'}: not the results of a busim run (schema 'busim.result/2', not 'busim.result/1')",
    )
    folder = edited(pipeline, tmp_path, lambda document: document.pop("schema"))
    refused(
        report(folder),
        f"{folder / 'results.json'}: not the results of a busim run (schema null, not 'busim.result/1')",
    )


# ---------------------------------------------------------------- against scenario.yaml
def test_a_consumer_the_scenario_does_not_have_is_refused(pipeline, tmp_path):
    def extra(document):
        document["consumers"]["shipping"] = document["consumers"]["payment"]

    folder = edited(pipeline, tmp_path, extra)
    refused(
        report(folder),
        f"{folder / 'results.json'}: consumers.shipping: not in scenario.yaml (its consumers: inventory, payment); "
        f"{EDITED}",
    )


def test_a_consumer_of_the_scenario_that_results_json_lacks_is_refused(pipeline, tmp_path):
    folder = edited(pipeline, tmp_path, lambda document: document["consumers"].pop("inventory"))
    refused(
        report(folder),
        f"{folder / 'results.json'}: consumers: lacks inventory, one of the consumers of scenario.yaml; {EDITED}",
    )


def test_publishers_must_agree_with_the_scenario_too(pipeline, tmp_path):
    def renamed(document):
        document["publishers"] = {"shop": document["publishers"]["order"]}

    folder = edited(pipeline, tmp_path, renamed)
    refused(
        report(folder),
        f"{folder / 'results.json'}: publishers.shop: not in scenario.yaml (its publishers: order); {EDITED}",
    )


def test_a_scenario_yaml_that_is_not_a_scenario_is_refused_with_its_line(pipeline, tmp_path):
    folder = copy_run(pipeline, tmp_path)
    scenario = folder / "scenario.yaml"
    scenario.write_text(scenario.read_text().replace("duration: 10.0", "duration: -1"))
    result = report(folder)
    assert (result.exit_code, result.stderr) == (2, f"{scenario}:5:11: duration: a duration must be >= 0 (got -1)\n")


# ---------------------------------------------------------------- the folder
@pytest.mark.parametrize("command", ["report", "explain"])
def test_a_folder_that_holds_no_run_is_refused(pipeline, tmp_path, command):
    missing = tmp_path / "nowhere"
    refused(
        runner.invoke(app, [command, str(missing)]), f"{missing}: no such folder; give the output folder of a busim run"
    )
    a_file = copy_run(pipeline, tmp_path / "file") / "results.json"
    refused(
        runner.invoke(app, [command, str(a_file)]), f"{a_file}: not a folder; give the output folder of a busim run"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(
        runner.invoke(app, [command, str(empty)]),
        f"{empty}: no results.json here; give the output folder of a busim run",
    )
    half = copy_run(pipeline, tmp_path / "half")
    (half / "scenario.yaml").unlink()
    refused(
        runner.invoke(app, [command, str(half)]),
        f"{half}: no scenario.yaml here; give the output folder of a busim run",
    )


@pytest.mark.parametrize("command", ["report", "explain"])
def test_replications_are_refused_with_a_seed_to_run_one_of_them(tmp_path, command):
    folder = tmp_path / "replicated"
    ran = runner.invoke(
        app, ["run", str(SMALL_PIPELINE), "--out", str(folder), "--quiet", "--replications", "2", "--no-charts"]
    )
    assert ran.exit_code == 0, ran.output
    seed = json.loads((folder / "results.json").read_text())["seeds"][0]
    refused(
        runner.invoke(app, [command, str(folder)]),
        f"{folder}: holds 2 replications; {command} needs a single run "
        f"(run one of them with --seed, e.g. --seed {seed})",
    )
    (folder / "results.json").write_text('{"schema": "busim.replications/1"}')
    refused(
        runner.invoke(app, [command, str(folder)]),
        f"{folder}: holds replications; {command} needs a single run (run one of them with --seed)",
    )


@pytest.mark.parametrize("command", ["explain"])
def test_a_comparison_is_refused(pipeline, tmp_path, command):
    folder = tmp_path / "compared"
    folder.mkdir()
    (folder / "compare.json").write_text('{"schema": "busim.compare/1"}')
    refused(
        runner.invoke(app, [command, str(folder)]),
        f"{folder}: holds a comparison (compare.json); {command} needs a single run's folder, such as one made by "
        "busim run",
    )
    copy_run(pipeline, folder, '{"schema": "busim.compare/1", "variants": []}')
    refused(
        runner.invoke(app, [command, str(folder)]),
        f"{folder}: holds a comparison; {command} needs a single run's folder",
    )


def test_explain_reads_the_folder_as_report_does(pipeline, tmp_path):
    folder = edited(pipeline, tmp_path, lambda document: document["consumers"]["inventory"].update(lost="3"))
    refused(
        runner.invoke(app, ["explain", str(folder)]),
        f"{folder / 'results.json'}: consumers.inventory.lost: expected a whole number (got '3')",
    )
    told = runner.invoke(app, ["explain", str(copy_run(pipeline, tmp_path / "intact")), "--message", "1"])
    assert told.exit_code == 0, told.output
    assert told.stdout.startswith("message 1 OrderPlaced")


# ---------------------------------------------------------------- fuzzing
# JSON values a hand, an editor or a broken disk might leave in place of a good one.
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**63, -(2**63) - 1, 10**30, 2**53 + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0, 1e-300, 1e300]),
    st.text(max_size=12),
    st.sampled_from(["", "[/]", "[bold]x", "$\\frac$", "<script>", "a|b", "inventory", "p50", "lowest", "\x00"]),
    st.lists(st.integers(), max_size=3),
    st.lists(st.lists(st.floats(), max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


# Values of the same kind as the one they replace, but odd: what passes the schema and reaches the charts.
ODD = {
    type(None): st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    bool: st.booleans(),
    int: st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, -1, 2**63 - 1, -(2**63)])),
    float: st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([None, 0.0, -0.0, -1.0, 1e308, -1e308, 5e-324]),
    ),
    str: st.one_of(st.text(max_size=12), st.sampled_from(["", "[/]", "$\\frac$", "a > b", "x.y", "lowest"])),
}


def _one_in(n: int):
    return st.integers(1, n).map(lambda drawn: drawn == 1)


def _node(document, data) -> tuple[object, object, object]:
    """A node below the top of ``document``, reached by walking down: (its parent, its key, the node)."""
    parent, key, node = None, None, document
    while isinstance(node, dict | list) and node and (parent is None or not data.draw(_one_in(4))):
        parent, key = node, data.draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
        node = node[key]
    return parent, key, node


def _bend(document, data) -> None:
    """Change ``document`` within its shape: a value replaced by an odd one of its kind, a list made shorter
    or longer, an entry of a mapping dropped or another added."""
    parent, key, node = _node(document, data)
    if parent is None or key == "schema":
        return
    if isinstance(node, list) and node and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(node) - 1))
        if data.draw(st.booleans()):
            node.insert(index, node[index])
        else:
            node.pop(index)
    elif isinstance(node, dict) and node and data.draw(st.booleans()):
        if data.draw(st.booleans()):
            node.pop(data.draw(st.sampled_from(list(node))))
        else:
            node[data.draw(st.sampled_from(["ghost", "x$y$", "[/]"]))] = next(iter(node.values()))
    elif type(node) in ODD:
        parent[key] = data.draw(ODD[type(node)])


def _break(document, data) -> object:
    """Change ``document`` out of its shape: a key deleted, renamed or added, a value of another kind or
    rewrapped, or the whole document replaced."""
    if data.draw(_one_in(20)):
        return data.draw(VALUES)
    parent, key, node = _node(document, data)
    operation = data.draw(st.sampled_from(["delete", "replace", "add", "rename", "wrap", "unwrap", "stringify"]))
    if operation == "add" and isinstance(node, dict):
        node[data.draw(st.text(max_size=8))] = data.draw(VALUES)
    elif parent is None:
        return document
    elif operation == "delete":
        del parent[key]
    elif operation == "rename" and isinstance(parent, dict):
        parent[data.draw(st.sampled_from([*parent, "ghost", "inventory", "payment", "order"]))] = parent.pop(key)
    elif operation == "wrap":
        parent[key] = [node] if data.draw(st.booleans()) else {"0": node}
    elif operation == "unwrap" and isinstance(node, dict):
        parent[key] = list(node.values())
    elif operation == "stringify":
        parent[key] = json.dumps(node)
    else:
        parent[key] = data.draw(VALUES)
    return document


def _fuzz(pipeline: Path, data, commands: list[list[str]], breaking: bool = True) -> None:
    """Change the pipeline's results.json (within its shape three times in four, or always unless ``breaking``),
    then run each command on it."""
    document = json.loads((pipeline / "results.json").read_text())
    if breaking and data.draw(_one_in(4)):
        for _ in range(data.draw(st.integers(1, 2))):
            document = _break(document, data)
    else:
        for _ in range(data.draw(st.integers(1, 6))):
            _bend(document, data)
    text = json.dumps(document)
    if breaking and data.draw(_one_in(20)):  # cut short, as by a full disk
        text = text[: data.draw(st.integers(0, len(text)))]
    with tempfile.TemporaryDirectory() as temporary:
        folder = copy_run(pipeline, Path(temporary) / "run", text)
        for command in commands:
            result = runner.invoke(app, [command[0], str(folder), *command[1:]])
            assert result.exit_code in (0, 2), (command, result.exception, result.output)
            if result.exit_code == 2:
                assert result.stderr.startswith("busim: ") and result.stderr.count("\n") == 1, result.stderr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_edit_of_results_json_makes_report_or_explain_fail_with_a_traceback(pipeline, data):
    _fuzz(pipeline, data, [["report", "--no-charts"], ["explain"]][data.draw(st.integers(0, 1)) :])


# Each example draws every chart (2 s): a few, of edits that keep the schema, so that the charts are drawn.
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_edit_of_results_json_makes_the_charts_fail_with_a_traceback(pipeline, data):
    _fuzz(pipeline, data, [["report"]], breaking=False)


# ---------------------------------------------------------------- a comparison's folder
@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> Path:
    """A comparison's folder: the small pipeline with and without broker duplicates, replicated twice."""
    folder = tmp_path_factory.mktemp("compared")
    command = ["compare", str(SMALL_PIPELINE), "--vary", "broker.duplication=0,0.02", "--replications", "2"]
    ran = runner.invoke(app, [*command, "--out", str(folder), "--no-charts", "--quiet"])
    assert ran.exit_code == 0, ran.output
    return folder


def test_busim_report_draws_a_comparison_again_from_its_folder(compared):
    before = {name: (compared / name).read_text() for name in ("compare.json", "compare.md", "compare.html")}
    drawn = report(compared)
    assert (drawn.exit_code, drawn.stderr) == (0, "")
    assert drawn.stdout == f"Wrote compare.md, compare.html in {compared}\n"
    assert {name: (compared / name).read_text() for name in before} == before


def test_a_comparison_reads_back_as_the_document_it_wrote(compared):
    comparison = read_comparison_folder(compared)
    assert comparison.to_dict() == json.loads((compared / "compare.json").read_text())
    assert len(comparison.names) == 2
    assert [outcome.runs for outcome in comparison.outcomes] == [2, 2]


def edited_comparison(compared: Path, folder: Path, change) -> Path:
    document = json.loads((compared / "compare.json").read_text())
    change(document)
    folder.mkdir()
    (folder / "compare.json").write_text(json.dumps(document))
    return folder


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda document: document["variants"][1]["results"]["results"][0]["consumers"]["payment"].update(lost="5"),
            "variants[1].results.results[0].consumers.payment.lost: expected a whole number (got '5')",
        ),
        (
            lambda document: document["variants"][0].pop("scenario"),
            "variants[0].scenario: missing; the file was written by an earlier busim, so run busim compare again",
        ),
        (
            lambda document: document["variants"][0]["scenario"]["consumers"].pop(),
            "variants[0].scenario.invariants[1].consumer: consumer 'payment' is not declared under consumers "
            "(declared: inventory)",
        ),
        (
            lambda document: document["variants"][0]["results"]["results"][1]["consumers"].update(
                shipping=document["variants"][0]["results"]["results"][1]["consumers"]["payment"]
            ),
            "variants[0].results.results[1].consumers.shipping: not in variants[0].scenario (its consumers: "
            f"inventory, payment); {EDITED}",
        ),
        (lambda document: document.update(variants=[]), "variants: expected one or more (got an empty list)"),
    ],
    ids=["a count as text", "no scenario", "a scenario that breaks a reference", "a consumer too many", "no variants"],
)
def test_a_compare_json_that_departs_from_its_schema_is_refused_naming_the_first_bad_key(
    compared, tmp_path, change, problem
):
    folder = edited_comparison(compared, tmp_path / "edited", change)
    refused(report(folder), f"{folder / 'compare.json'}: {problem}")
