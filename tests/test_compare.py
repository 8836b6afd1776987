"""busim compare: variants from files, a --vary grid or a variants block, run on common random numbers."""

import io
import json
import re
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

import busim
from busim.cli import app
from busim.errors import OverrideError, ScenarioError
from busim.report.console import render_comparison
from busim.report.run_report import comparison_markdown
from busim.scenario.variants import load_variants
from tests.conftest import (
    FLASH_SALE_RUNS,
    ROOT,
    SCENARIOS,
    VARIANTS_COMPARED,
    eight_presets_compared,
    variants_compared,
)

FLASH_SALE = SCENARIOS / "flash-sale.yaml"
TRADEOFFS = SCENARIOS / "broker-tradeoffs.yaml"
IDEMPOTENT = SCENARIOS / "flash-sale-idempotent.yaml"
SHORT = ["duration=100s"]  # the flash sale up to its last rate step, for speed


def test_each_vary_is_an_axis_and_the_variants_are_their_grid():
    variants = load_variants(
        [FLASH_SALE], ["broker.preset=rabbitmq,kafka,sqs-fifo", "consumers.inventory.idempotency=none,dedup"], SHORT
    )
    assert [variant.name for variant in variants] == [
        "preset=rabbitmq idempotency=none",
        "preset=rabbitmq idempotency=dedup",
        "preset=kafka idempotency=none",
        "preset=kafka idempotency=dedup",
        "preset=sqs-fifo idempotency=none",
        "preset=sqs-fifo idempotency=dedup",
    ]
    kafka_dedup = variants[3].loaded
    assert (kafka_dedup.scenario.broker.preset, kafka_dedup.scenario.consumers[0].idempotency) == ("kafka", "dedup")
    assert kafka_dedup.overrides == ("duration=100s", "broker.preset=kafka", "consumers.inventory.idempotency=dedup")


def test_a_variants_block_names_its_variants():
    variants = load_variants([TRADEOFFS], [], [])
    assert [variant.name for variant in variants] == [
        "rabbitmq",
        "rabbitmq-idempotent",
        "kafka",
        "kafka-idempotent",
        "sqs",
        "sqs-idempotent",
    ]
    assert variants[1].loaded.scenario.consumers[0].idempotency == "dedup"


@pytest.mark.parametrize(
    "path",
    [path for path in sorted(SCENARIOS.glob("*.yaml")) if "\nvariants:" in path.read_text()],
    ids=lambda path: path.name,
)
def test_a_shipped_scenarios_variants_include_the_scenario_as_written(path):
    # Each one asks its question of the scenario as written: a comparison leaving it out answers another.
    written = busim.load(path)
    assert [variant.name for variant in load_variants([path], [], []) if variant.loaded.scenario == written]


def test_several_files_are_one_variant_each():
    variants = load_variants([FLASH_SALE, SCENARIOS / "flash-sale-idempotent.yaml"], [], [])
    assert [variant.name for variant in variants] == ["flash-sale", "flash-sale-idempotent"]


def test_a_bad_variant_is_reported_as_the_variant(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(FLASH_SALE.read_text() + "variants:\n  typo: {broker.preset: kafk}\n")
    with pytest.raises(OverrideError) as error:
        load_variants([path], [], [])
    assert str(error.value).startswith(f"{path}: variants.typo: broker.preset: unknown preset 'kafk'")


@pytest.mark.parametrize(
    ("files", "vary", "message"),
    [
        ([FLASH_SALE, FLASH_SALE], ["broker.preset=kafka"], "--vary varies one scenario file"),
        ([FLASH_SALE], [], "nothing to compare"),
        ([FLASH_SALE], ["broker.preset"], "--vary broker.preset: expected KEY=V1,V2"),
    ],
)
def test_nothing_to_compare_is_an_error(files, vary, message):
    with pytest.raises(OverrideError, match=message):
        load_variants(files, vary, [])


def test_every_variant_runs_on_the_same_seed_and_so_the_same_traffic():
    variants = load_variants([FLASH_SALE], ["broker.preset=rabbitmq,kafka,sqs-standard"], SHORT)
    comparison = busim.compare([(variant.name, variant.loaded) for variant in variants], seed=5)
    assert {outcome.scenario.seed for outcome in comparison.outcomes} == {5}
    published = [outcome.record.messages.publish_s for outcome in comparison.outcomes]
    assert all((times == published[0]).all() for times in published)
    effects = [outcome.summary.consumers["inventory"].duplicate_effects for outcome in comparison.outcomes]
    assert len(set(effects)) > 1  # the brokers differ, not the traffic


REPLICATED_VARIANTS = pytest.mark.xdist_group("replicated-variants")  # one worker runs the fixture once


@pytest.fixture(scope="module")
def replicated_variants():
    """Two variants replicated twice, and the progress ``busim.compare`` reported as ``(done, total)``."""
    progress: list[tuple[int, int]] = []
    variants = load_variants([FLASH_SALE], ["broker.preset=rabbitmq,kafka"], [*SHORT, "replications=2"])
    comparison = busim.compare(variants, seed=5, on_run=lambda done, total: progress.append((done, total)))
    return comparison, progress


@REPLICATED_VARIANTS
def test_replicated_variants_share_their_replication_seeds(replicated_variants):
    comparison, _ = replicated_variants
    assert comparison.outcomes[0].seeds == comparison.outcomes[1].seeds


def test_compare_prints_the_variants_side_by_side_and_writes_its_files(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(FLASH_SALE),
            "--vary",
            "broker.preset=rabbitmq,sqs-fifo",
            "--set",
            SHORT[0],
            "--out",
            str(tmp_path),
            "--no-charts",
        ],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    assert "inventory: change against preset=rabbitmq" in result.stdout
    document = json.loads((tmp_path / "compare.json").read_text())
    assert document["schema"] == "busim.compare/1"
    assert [variant["name"] for variant in document["variants"]] == ["preset=rabbitmq", "preset=sqs-fifo"]
    assert document["variants"][1]["results"]["consumers"]["inventory"]["subscribed"] > 0
    markdown = (tmp_path / "compare.md").read_text()
    assert "|   | preset=rabbitmq | preset=sqs-fifo |" in markdown
    assert "| preset=sqs-fifo | broker.preset=sqs-fifo |" in markdown  # what the variant changes


def test_many_variants_are_shown_one_per_row(tmp_path):
    arguments = ["compare", str(TRADEOFFS), "--set", SHORT[0], "--out", str(tmp_path), "--no-charts"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    rows = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ") and line.split()]
    assert {"rabbitmq", "kafka-idempotent", "sqs-idempotent"} <= set(rows)
    assert Path(tmp_path / "compare.md").exists()


def test_variants_may_not_change_the_shared_seed_or_replications():
    with pytest.raises(OverrideError, match="every variant runs on the same seed and replications"):
        load_variants([FLASH_SALE], ["seed=1,2"], [])


def test_validate_checks_every_variant_and_reports_them_all(tmp_path):
    path = tmp_path / "variants.yaml"
    path.write_text(
        FLASH_SALE.read_text() + "variants:\n  a: {broker.preset: kafk}\n  b: {consumers.inventory.instances: 0}\n"
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}: variants.a: broker.preset: unknown preset 'kafk'" in result.stderr
    assert f"{path}: variants.b: consumers[0].instances: must be >= 1 (got 0)" in result.stderr


@VARIANTS_COMPARED
def test_variants_whose_consumers_keep_different_counters_compare():
    # Four variants keep `stock`; a fifth renames it `units`. Both drifts show, "—" where a variant has none.
    renamed = [
        "consumers.inventory.state={units: {initial: 1500}}",
        "consumers.inventory.effects=[{counter: units, key: productId, add: -quantity, floor: 0}]",
    ]
    (variant,) = load_variants([FLASH_SALE], ["broker.preset=ideal,sqs-fifo"], [*SHORT, *renamed])[:1]
    # The four that keep `stock` are finished runs of the eight-preset comparison: the same scenario, seed and
    # duration as load_variants would give them; only the fifth is simulated here.
    presets = eight_presets_compared()
    kept = [f"preset={preset}" for preset in ("rabbitmq", "kafka", "sqs-standard", "nats-jetstream")]
    finished = [(name, presets.outcomes[presets.names.index(name)]) for name in kept]
    comparison = busim.compare([*finished, (variant.name, variant.loaded)])
    assert comparison.names == (*kept, "preset=ideal")
    output = io.StringIO()
    render_comparison(Console(file=output, width=120, color_system=None), comparison)
    assert "stock drift" in output.getvalue() and "units drift" in output.getvalue()
    markdown = comparison_markdown(comparison)
    assert "| stock drift |" in markdown and "| units drift |" in markdown
    assert "| units drift | — | — | — | — |" in markdown


@FLASH_SALE_RUNS
def test_compare_html_embeds_the_tables_verdicts_and_charts(flash_sale_compared):
    from html.parser import HTMLParser

    tags: list[str] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append(tag)
            assert not any(name in ("src", "href") and not value.startswith("#") for name, value in attrs)

    page = (flash_sale_compared / "compare.html").read_text()
    Tags().feed(page)
    # What each variant changes, the verdicts, the inventory's figures; the two charts.
    assert tags.count("svg") == 2 and tags.count("table") == 3
    assert "<h1>flash-sale: 2 variants on seed 42</h1>" in page


@REPLICATED_VARIANTS
def test_progress_counts_every_run_of_every_variant(replicated_variants):
    _, progress = replicated_variants
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.parametrize(
    ("vary", "message"),
    [
        (["broker.preset=kafka"], "a comparison needs two or more variants (got preset=kafka)"),
        (["broker.preset=kafka,kafka"], "variants named more than once: preset=kafka"),
    ],
)
def test_a_comparison_needs_two_distinct_variants(vary, message):
    with pytest.raises(OverrideError, match=re.escape(message)):
        load_variants([FLASH_SALE], vary, [])


def test_every_bad_variant_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        FLASH_SALE.read_text()
        + "variants:\n  a: {broker.preset: kafk}\n  b: {consumers.nobody.instances: 2}\n  c: {seed: 7}\n"
    )
    with pytest.raises(OverrideError) as error:
        load_variants([path], [], [])
    lines = str(error.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["variants.a", "variants.b", "variants.c"]


def test_a_comparison_shows_the_stale_reads_of_consumers_with_queries():
    from busim.report.views import comparison_rows
    from tests.conftest import consumer, scenario

    counted = {"state": {"seen": {}}, "effects": [{"counter": "seen", "key": "item", "add": 1}]}
    slow = consumer(
        processing_time={"exponential": {"mean": "50ms"}}, queries={"rate": 50, "counter": "seen"}, **counted
    )
    variants = [
        ("slow", scenario(consumers=[slow, consumer(name="plain")])),
        ("instant", scenario(consumers=[{**slow, "processing_time": 0}, consumer(name="plain")])),
    ]
    comparison = busim.compare(variants)
    rows = {row.label: [cell.full for cell in row.cells] for row in comparison_rows(comparison, "worker")}
    # Processing that takes no time applies every message the instant it is published: no read is stale.
    assert rows["stale reads"] == ["53", "0 (-100%)"]
    assert rows["staleness p50"] == ["40.5ms", "—"]
    assert rows["staleness p99"] == ["159ms", "—"]
    assert not any(row.label.startswith("stale") for row in comparison_rows(comparison, "plain"))
    output = io.StringIO()
    render_comparison(Console(file=output, width=60, color_system=None), busim.compare(variants * 2))
    assert "  variant      p50     p99   stale reads       p50     p99\n" in output.getvalue()
    assert "  slow      36.6ms   219ms            53    40.5ms   159ms\n" in output.getvalue()


@VARIANTS_COMPARED
def test_snapshot_intervals_compare_by_recovery_time():
    from busim.report.views import comparison_rows

    comparison = variants_compared("event-sourced-recovery.yaml")
    means = [outcome.summary.consumers["inventory"].recovery_s.mean for outcome in comparison.outcomes]
    assert comparison.names == ("every-100", "every-1000", "every-10000", "every-100000")
    assert means == sorted(means) and means[0] < means[-1]
    # Each recovery is the 2 s restart plus the events since the last snapshot at 2,000 a second.
    for outcome, every in zip(comparison.outcomes, (100, 1000, 10000, 100000)):
        inventory = outcome.summary.consumers["inventory"]
        assert all(n < every for n in inventory.replayed_events)
        assert inventory.recovery_times_s == pytest.approx(tuple(2 + n / 2000 for n in inventory.replayed_events))
    labels = [row.label for row in comparison_rows(comparison, "inventory")]
    assert {"recovery mean", "recovery max"} <= set(labels)


@VARIANTS_COMPARED
def test_at_80_columns_no_figure_of_many_variants_is_left_out():
    from busim.report.console import render_comparison

    comparison = variants_compared("order-pipeline.yaml")
    output = io.StringIO()
    render_comparison(Console(file=output, width=80, color_system=None), comparison)
    printed = output.getvalue()
    assert "inventory, continued" in printed and "stock drift" in printed
    assert max(len(line.rstrip()) for line in printed.splitlines() if not line.startswith("Wrote")) <= 80
    assert "…" not in printed


def test_vary_axes_of_the_same_last_key_are_named_by_as_much_of_the_key_as_tells_them_apart():
    variants = load_variants(
        [SCENARIOS / "order-pipeline.yaml"],
        ["consumers.inventory.instances=3,4", "consumers.payment.instances=2"],
        [],
    )
    assert [variant.name for variant in variants] == [
        "inventory.instances=3 payment.instances=2",
        "inventory.instances=4 payment.instances=2",
    ]


def test_run_variant_runs_one_variant_of_the_variants_block(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            *("run", str(TRADEOFFS), "--variant", "kafka-idempotent", "--set", SHORT[0]),
            *("--out", str(tmp_path), "--json", "--no-charts"),
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["scenario"]["overrides"] == [
        "duration=100s",
        "broker.preset=kafka",
        "consumers.inventory.idempotency=dedup",
    ]
    resolved = yaml.safe_load((tmp_path / "scenario.yaml").read_text())
    assert (resolved["broker"]["preset"], resolved["consumers"][0]["idempotency"]) == ("kafka", "dedup")


@pytest.mark.parametrize(
    ("file", "name", "message"),
    [
        (
            TRADEOFFS,
            "kafka-idempotnet",
            f"{TRADEOFFS}: --variant kafka-idempotnet: no such variant; did you mean 'kafka-idempotent'? "
            "(variants: rabbitmq, rabbitmq-idempotent, kafka, kafka-idempotent, sqs, sqs-idempotent)\n",
        ),
        (
            FLASH_SALE,
            "kafka",
            f"{FLASH_SALE}: --variant kafka: the scenario has no variants: block to pick from\n",
        ),
    ],
)
def test_run_refuses_a_variant_the_file_does_not_have(tmp_path, file, name, message):
    result = CliRunner().invoke(app, ["run", str(file), "--variant", name, "--out", str(tmp_path / "out")])
    assert (result.exit_code, result.stderr) == (2, message)
    assert not (tmp_path / "out").exists()


def test_variants_that_share_no_consumer_are_refused_before_running(tmp_path):
    data = ROOT / "tests" / "data"
    files = [str(data / "crash-and-loss.yaml"), str(data / "small-pipeline.yaml")]
    result = CliRunner().invoke(app, ["compare", *files, "--out", str(tmp_path / "out")])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "busim: the variants share no consumer to compare "
        "(crash-and-loss: worker; small-pipeline: inventory, payment)\n"
    )


def test_compare_json_prints_the_text_of_compare_json(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            *("compare", str(FLASH_SALE), "--vary", "broker.preset=rabbitmq,kafka", "--set", SHORT[0]),
            *("--out", str(tmp_path), "--json", "--no-charts"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == (tmp_path / "compare.json").read_text(encoding="utf-8")


def test_a_variant_runs_into_a_folder_of_its_own_that_names_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran = CliRunner().invoke(
        app,
        ["run", str(TRADEOFFS), "--variant", "kafka-idempotent", "--set", SHORT[0], "--no-charts"],
        env={"COLUMNS": "200"},
    )
    assert ran.exit_code == 0, ran.output
    name = yaml.safe_load(TRADEOFFS.read_text())["name"]
    runs = tmp_path / "runs" / f"{name}@kafka-idempotent"
    assert [path.name for path in (tmp_path / "runs").iterdir()] == [runs.name]  # the scenario's own latest untouched
    assert f"{name} (variant kafka-idempotent)" in ran.stdout
    assert json.loads((runs / "latest" / "results.json").read_text())["scenario"]["variant"] == "kafka-idempotent"
    heading = f"# {name} (variant kafka-idempotent)\n"
    assert (runs / "latest" / "report.md").read_text().startswith(heading)
    assert f"<h1>{name} (variant kafka-idempotent)</h1>" in (runs / "latest" / "report.html").read_text()
    # busim report and busim explain take the variant's folder of runs as they take a scenario's.
    (runs / "latest" / "report.md").unlink()
    redrawn = CliRunner().invoke(app, ["report", str(runs), "--no-charts", "--quiet"])
    assert redrawn.exit_code == 0, redrawn.output
    assert (runs / "latest" / "report.md").read_text().startswith(heading)
    explained = CliRunner().invoke(app, ["explain", str(runs)])
    assert explained.exit_code == 0, explained.output


def _description(path: Path) -> str:
    return yaml.safe_load(path.read_text())["description"]


@FLASH_SALE_RUNS
def test_compare_md_opens_with_the_question_and_links_its_charts(flash_sale_compared):
    markdown = (flash_sale_compared / "compare.md").read_text()
    assert markdown.startswith(f"# flash-sale: 2 variants on seed 42\n\n{_description(FLASH_SALE)}\n\n## Variants\n")
    for chart in ("compare-latency-cdf", "compare-anomalies"):
        assert f"]({chart}.png)" in markdown and (flash_sale_compared / f"{chart}.png").is_file()
    html = (flash_sale_compared / "compare.html").read_text()
    assert f"<h1>flash-sale: 2 variants on seed 42</h1>\n<p>{_description(FLASH_SALE)}</p>\n" in html


def test_a_comparison_of_several_files_asks_each_files_question(tmp_path):
    result = CliRunner().invoke(
        app, ["compare", str(FLASH_SALE), str(IDEMPOTENT), "--set", SHORT[0], "--out", str(tmp_path), "--no-charts"]
    )
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "compare.md").read_text()
    assert (
        f"flash-sale: {_description(FLASH_SALE)}\n\nflash-sale-idempotent: {_description(IDEMPOTENT)}\n\n" in markdown
    )


def test_replications_of_a_variant_name_it(tmp_path):
    ran = CliRunner().invoke(
        app,
        ["run", str(TRADEOFFS), "--variant", "kafka", "--set", SHORT[0], "--replications", "2", "--out", str(tmp_path)],
        env={"COLUMNS": "200"},
    )
    assert ran.exit_code == 0, ran.output
    name = yaml.safe_load(TRADEOFFS.read_text())["name"]
    assert f"{name} (variant kafka)" in ran.stdout
    assert json.loads((tmp_path / "results.json").read_text())["scenario"]["variant"] == "kafka"


def test_a_set_key_of_one_preset_applies_to_the_points_of_that_preset_only():
    variants = load_variants(
        [FLASH_SALE],
        ["broker.preset=kafka,rabbitmq", "consumers.inventory.instances=2,3"],
        [*SHORT, "broker.prefetch=50", "broker[max_poll_records]=20"],
    )
    taken = [
        (
            variant.name,
            variant.loaded.scenario.broker.prefetch,
            variant.loaded.scenario.broker.max_poll_records,
            variant.left_out,
        )
        for variant in variants
    ]
    assert taken == [
        ("preset=kafka instances=2", None, 20, ("--set broker.prefetch=50",)),
        ("preset=kafka instances=3", None, 20, ("--set broker.prefetch=50",)),
        ("preset=rabbitmq instances=2", 50, None, ("--set broker[max_poll_records]=20",)),
        ("preset=rabbitmq instances=3", 50, None, ("--set broker[max_poll_records]=20",)),
    ]
    assert variants[0].loaded.overrides == (
        "duration=100s",
        "broker[max_poll_records]=20",
        "broker.preset=kafka",
        "consumers.inventory.instances=2",
    )


def test_a_varied_key_of_one_preset_applies_to_the_points_of_that_preset_only():
    variants = load_variants([FLASH_SALE], ["broker.prefetch=10,50", "broker.preset=rabbitmq,kafka"], SHORT)
    assert [(v.name, v.loaded.scenario.broker.prefetch, v.left_out) for v in variants] == [
        ("prefetch=10 preset=rabbitmq", 10, ()),
        ("prefetch=10 preset=kafka", None, ("--vary broker.prefetch=10",)),
        ("prefetch=50 preset=rabbitmq", 50, ()),
        ("prefetch=50 preset=kafka", None, ("--vary broker.prefetch=50",)),
    ]


@pytest.mark.parametrize(
    ("vary", "overrides", "message"),
    [
        (
            ["consumers.inventory.instances=1,2", "consumers[inventory].instances=3,4"],
            [],
            "--vary consumers[inventory].instances: varied twice; give all of its values in one --vary",
        ),
        (
            ["consumers.inventory.instances=1,2"],
            ["consumers.inventory.instances=8"],
            "--set consumers.inventory.instances=8: --vary consumers.inventory.instances sets it at every point; "
            "drop the --set, or give its value in the --vary",
        ),
        (
            ["consumers.inventory.crash=null,{probability: 0.01}"],
            ["consumers.inventory.crash.restart_after=5s"],
            "--set consumers.inventory.crash.restart_after=5s: --vary consumers.inventory.crash sets it at every "
            "point; drop the --set, or give its value in the --vary",
        ),
    ],
)
def test_a_key_varied_twice_or_also_set_is_refused(vary, overrides, message):
    with pytest.raises(OverrideError) as error:
        load_variants([FLASH_SALE], vary, [*SHORT, *overrides])
    assert str(error.value) == message


def test_a_set_key_of_no_point_s_preset_is_refused_as_without_a_grid():
    with pytest.raises(ScenarioError) as error:
        load_variants([FLASH_SALE], ["broker.preset=kafka,rabbitmq"], [*SHORT, "broker.visibility_timeout=5s"])
    assert str(error.value) == (
        "--set broker.visibility_timeout=5s: broker.visibility_timeout: visibility_timeout does not apply to "
        "preset kafka; kafka calls it max_poll_interval (leave it out or set it to null) (at point preset=kafka)"
    )


def test_a_grid_point_keeps_its_axis_values():
    variants = load_variants([FLASH_SALE], ["consumers.inventory.instances=1..4:x2", "broker.loss=0,0.5"], SHORT)
    assert [variant.name for variant in variants] == [
        "instances=1 loss=0",
        "instances=1 loss=0.5",
        "instances=2 loss=0",
        "instances=2 loss=0.5",
        "instances=4 loss=0",
        "instances=4 loss=0.5",
    ]
    assert [tuple(value.number for value in variant.values) for variant in variants][-1] == (4.0, 0.5)
    assert [variant.loaded.scenario.consumers[0].instances for variant in variants] == [1, 1, 2, 2, 4, 4]
    assert all(variant.left_out == () for variant in variants)
