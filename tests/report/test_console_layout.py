"""The console's tables at 60, 80 and 200 columns, piped: no figure cut, no column dropped, no word split."""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache

import pytest
from rich.console import Console

import busim
from busim.report.console import render_comparison, render_outcome, render_preset, render_result
from busim.report.views import comparison_rows, comparison_views
from busim.scenario.variants import load_variants
from tests.conftest import ROOT, SCENARIOS, VARIANTS_COMPARED, simulated, variants_compared

pytestmark = VARIANTS_COMPARED  # one worker: the runs the module shares run once

WIDTHS = (60, 80, 200)


def printed(width: int, render: Callable[[Console], None]) -> str:
    output = io.StringIO()
    render(Console(file=output, width=width, force_terminal=False))
    text = output.getvalue()
    lines = text.splitlines()
    assert "…" not in text
    assert max(len(line) for line in lines) <= width
    assert not [line for line in lines if line != line.rstrip()], "a line ends in spaces"
    return text


@cache
def flash_sale_variants() -> busim.Comparison:
    """Six variants of the flash sale up to its last rate step: the rows of the whole sale, figures as wide."""
    vary = ["broker.preset=kafka,rabbitmq,sqs-standard", "consumers.inventory.instances=3,6"]
    variants = load_variants([SCENARIOS / "flash-sale.yaml"], vary, ["duration=100s"])
    return busim.compare([(variant.name, variant.loaded) for variant in variants])


@pytest.mark.parametrize("width", WIDTHS)
def test_a_comparison_shows_every_figure_whole_at_any_width(width):
    comparison = flash_sale_variants()
    text = printed(width, lambda console: render_comparison(console, comparison))
    words = text.split()
    for row in comparison_rows(comparison, "inventory"):
        if row.short and any(cell.value for cell in row.cells):
            for cell in row.cells:
                assert cell.text in words, (row.label, cell)
    # Every column a narrow layout needs is shown, and the legend explains only headings shown.
    if width < 200:
        assert ("rej." in words and "drift" in words and "inventory, continued" not in text) or width == 60
        assert "\ndup. effects: duplicate effects; wrong rej.: wrongly" in text
    else:
        assert "continued" not in text


def test_a_comparison_that_fits_200_columns_keeps_its_full_labels():
    comparison = variants_compared("order-pipeline.yaml")
    text = printed(200, lambda console: render_comparison(console, comparison))
    assert "continued" not in text and "dup. effects" not in text
    assert "\n  wrongly rejected            9               1 (-89%)      1 (-89%)       0 (-100%)\n" in text


def test_a_comparison_prints_its_title_variants_and_note_from_the_views():
    comparison = flash_sale_variants()
    views = comparison_views(comparison)
    text = printed(200, lambda console: render_comparison(console, comparison))
    assert text.startswith(f"{views.title}\nVariants run on the same seed.\nVariants\n")
    assert "  preset=kafka instances=6          broker.preset=kafka, consumers.inventory.instances=6\n" in text
    assert f"\n{views.note}\n" in text and "root seed" not in text


@cache
def payments() -> busim.Result:
    return simulated("payments-at-most-once.yaml")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_run_splits_its_tables_rather_than_cut_a_word_or_drop_a_column(width):
    text = printed(width, lambda console: render_result(console, payments()))
    lines = [line.strip() for line in text.splitlines()]
    for label in ("payment", "broker", "queue wait", "processing"):
        assert any(line.startswith(f"{label} ") for line in lines), label
    words = text.split()
    for heading in ("max", "p99.9", "abs", "drift", "keys"):
        assert heading in words
    assert any(line.startswith("duplicate deliveries ") for line in lines)
    assert "published at or after the 30s warm-up" in " ".join(text.split())
    if width == 200:
        assert "Latency: publish to first completed processing, published at or after the 30s warm-up\n" in text
        assert "continued" not in text


def test_the_most_drifted_keys_wrap_at_the_width_and_a_blank_line_follows():
    text = printed(60, lambda console: render_result(console, payments()))
    assert (
        "  most drifted payment charged_cents, expected → actual: key\n"
        "  2311: 21,493 → 11,494; key 3176: 17,994 → 7,995; key 1299:\n"
        "  6,997 → 1,998\n\nInconsistent"
    ) in text


def test_a_preset_shows_its_sources_values_whole_and_its_caption_from_the_left():
    text = printed(80, lambda console: render_preset(console, "kafka"))
    joined = " ".join(text.split())
    assert "auto.commit.interval.ms=5000" in text.split() or "auto.commit.interval.ms=5000" in joined
    assert "max.poll.interval.ms=300000" in joined
    assert "\nAlso accepted, with busim's defaults: " in text


def test_replications_stay_one_table_where_the_consumers_fit():
    replications = busim.replicate(busim.load(ROOT / "tests" / "data" / "small-pipeline.yaml"), 3)
    text = printed(100, lambda console: render_outcome(console, replications))
    assert "Mean of 3 replications\n" in text and "Mean of 3 replications:" not in text
    # A figure whose interval has no width is the figure alone, in the same format as the others.
    assert "[0.0, 0.0]" not in text and "3.67" not in text and "3.7 [0.0, 11.3]" in text
    assert f"\n{replications.verdict[:1].upper()}{replications.verdict[1:]}.\n" in text
    for failure in replications.failures:
        assert f"  - {failure}" in text


def test_replications_split_per_consumer_keep_only_that_consumers_rows():
    replications = busim.replicate(busim.load(ROOT / "tests" / "data" / "small-pipeline.yaml"), 3)
    text = printed(60, lambda console: render_outcome(console, replications))
    inventory, payment = text.split("Mean of 3 replications, continued")
    assert "stock drift (inventory)" in inventory and "charged drift (payment)" not in inventory
    assert "stock drift (inventory)" not in payment and "charged drift (payment)" in payment


def test_a_variant_without_queries_shows_no_stale_reads():
    paths = [ROOT / "tests" / "data" / "invariants.yaml", ROOT / "tests" / "data" / "small-pipeline.yaml"]
    variants = load_variants(paths, [], [])
    comparison = busim.compare([(variant.name, variant.loaded) for variant in variants])
    rows = {row.label: row for row in comparison_rows(comparison, "inventory")}
    assert rows["stale reads"].cells[0].text == "—"
    assert rows["stale reads"].cells[1].text != "—"


def test_a_replicated_comparison_shows_each_mean_with_its_interval_at_any_width():
    variants = load_variants(
        [ROOT / "tests" / "data" / "small-pipeline.yaml"], ["consumers.inventory.instances=1,2,3,4"], []
    )
    comparison = busim.compare([(variant.name, variant.loaded) for variant in variants], replications=3)
    for width in (60, 200):
        text = printed(width, lambda console: render_comparison(console, comparison))
        for row in comparison_rows(comparison, "inventory"):
            if width == 200 or (row.short and any(cell.value for cell in row.cells)):
                assert all(cell.text in " ".join(text.split()) for cell in row.cells), row.label
        assert "3 replications each, on the same seeds" in text
