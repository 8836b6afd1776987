"""Charts: valid PNG and SVG files whose titles state the scenario, and series that add up."""

import xml.etree.ElementTree as ElementTree

import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

import busim
from busim.analysis.series import window_length_s
from busim.report.charts import CHARTS, draw_charts, figure_title, save_figure, write_charts
from busim.report.files import write_run
from busim.report.folder import read_run_folder
from busim.scenario.loader import load_scenario
from tests.conftest import FLASH_SALE_RUNS, ROOT, SCENARIOS, consumer, scenario, simulated

pytestmark = FLASH_SALE_RUNS  # one worker: the runs the module shares run once

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL_PIPELINE = ROOT / "tests" / "data" / "small-pipeline.yaml"


# The flash sale has no event chains, so no chain-latency chart.
FLASH_SALE_CHARTS = [name for name in CHARTS if name != "chain-latency"]


@pytest.fixture(scope="module")
def flash_sale():
    return simulated("flash-sale.yaml")


def test_busim_run_writes_every_chart_as_png_and_svg_for_a_slide(flash_sale_run):
    assert not (flash_sale_run / "chain-latency.png").exists()
    for name in FLASH_SALE_CHARTS:
        png = (flash_sale_run / f"{name}.png").read_bytes()
        assert png.startswith(PNG_SIGNATURE)
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert (width, height) == (1280, 720)  # a 16:9 slide
        svg = ElementTree.parse(flash_sale_run / f"{name}.svg").getroot()
        title = svg.find("{http://www.w3.org/2000/svg}metadata")
        text = ElementTree.tostring(svg, encoding="unicode")
        assert title is not None and "flash-sale" in text


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("latency-cdf", "flash-sale: end-to-end latency, publish to first processing"),
        ("latency-over-time", "flash-sale: latency over time (per 2s window)"),
        ("throughput-backlog", "flash-sale: throughput and backlog"),
        ("delivery-funnel", "flash-sale: delivery funnel"),
        ("consistency", "flash-sale: state against an exactly-once reference, most drifted keys"),
    ],
)
def test_each_chart_states_the_scenario_and_labels_its_axes(flash_sale, name, title):
    figure = CHARTS[name](flash_sale)
    assert figure_title(figure) == title
    assert figure.get_suptitle() == title  # no override to name
    for ax in figure.axes:
        if ax.get_visible() and ax.has_data() and name != "delivery-funnel":  # the funnel's rows are named
            assert ax.get_ylabel() or figure.get_supylabel()
    assert figure.axes[-1].get_xlabel() or figure.get_supxlabel()
    # One legend, beside the axes: never over the data.
    legends = [ax.get_legend() for ax in figure.axes if ax.get_legend()] + figure.legends
    assert len(legends) == 1


def test_a_run_without_state_has_no_consistency_chart(tmp_path):
    written = write_charts(busim.simulate(scenario()), tmp_path)
    assert {path.name for chart in written for path in chart.paths} == {
        f"{name}.{suffix}" for name in FLASH_SALE_CHARTS if name != "consistency" for suffix in ("png", "svg")
    }


def test_a_run_with_event_chains_draws_each_chain_hop_by_hop():
    from tests.engine.test_chains import pipeline

    figure = CHARTS["chain-latency"](busim.simulate(pipeline()))
    assert figure_title(figure) == "pipeline: latency along each event chain"
    shipped, apologised = figure.axes
    assert [label.get_text() for label in shipped.get_yticklabels()] == [
        "OrderPlaced > inventory\np50 3ms · p99 3ms",
        "StockReserved > payment\np50 3ms · p99 3ms",
        "PaymentCaptured > shipping\np50 3ms · p99 3ms",
        "publish to the end\np50 9ms · p99 9ms",
    ]
    assert apologised.get_title() == "inventory > apology: 10 of 100 reached the end"
    # Each hop takes 3 ms and the chain 9 ms: the bars are the medians.
    widths = [bar.get_width() for bar in shipped.patches]
    assert widths == pytest.approx([0.003, 0.003, 0.003, 0.009])
    assert shipped.get_xscale() == "log" and apologised.get_xlabel()
    assert figure.legends


def texts(figure: Figure) -> list[str]:
    """Every text the figure shows, tick labels included, in the order it holds them."""
    figure.draw_without_rendering()  # tick labels are set as the figure is drawn
    return [text.get_text() for text in figure.findobj(Text) if text.get_visible() and text.get_text()]


def test_a_run_read_back_from_its_folder_draws_the_charts_its_simulation_drew(tmp_path):
    # A chain, drifted state, crashes and an override to name: every chart, every part of results.json it reads.
    simulated = busim.simulate(load_scenario(SMALL_PIPELINE, ["broker.duplication=0.05"]))
    write_run(simulated, tmp_path)
    read = read_run_folder(tmp_path, "report").result
    assert read.record is None  # the figures come from results.json, not from the simulation
    drawn, drawn_again = draw_charts(simulated), draw_charts(read)
    assert list(drawn) == list(drawn_again) == list(CHARTS)
    for name, figure in drawn.items():
        assert figure_title(drawn_again[name]) == figure_title(figure)
        assert figure_title(figure).endswith(" — with broker.duplication=0.05")
        assert texts(drawn_again[name]) == texts(figure)
    # And the same files, mark for mark: the figures just compared, saved as write_charts saves them (drawing
    # every chart again would only repeat the work), as SVG, which holds every mark as text.
    (tmp_path / "simulated").mkdir()
    (tmp_path / "read").mkdir()
    svg = [
        [save_figure(figure, tmp_path / folder, name, ["svg"])[0].read_bytes() for name, figure in each.items()]
        for folder, each in (("simulated", drawn), ("read", drawn_again))
    ]
    assert svg[1] == svg[0]


def test_series_windows_add_up_to_the_run(flash_sale):
    inventory = flash_sale.summary.consumers["inventory"]
    series = inventory.series
    assert series.window_s == 2.0  # a 180 s run in about 120 windows
    assert sum(series.published) == inventory.subscribed
    assert sum(series.processed) == inventory.processed
    assert max(series.backlog) <= inventory.max_backlog
    # The 10 s outage from 60 s: nothing is processed in its windows.
    assert sum(series.processed[31:35]) == 0


@pytest.mark.parametrize(("end_s", "window_s"), [(180, 2.0), (1, 0.01), (600, 5.0), (3600, 50.0), (0, 1.0)])
def test_windows_are_round_and_about_a_hundred_and_twenty(end_s, window_s):
    assert window_length_s(end_s) == window_s


def test_latency_per_window_is_that_of_the_messages_published_in_it():
    # 100 messages at 10/s, 50 ms each, no queueing: 50 ms end to end in every window that has a message.
    result = busim.simulate(scenario(consumers=[consumer(processing_time="50ms")]))
    series = result.summary.consumers["worker"].series
    assert series.window_s == 0.1 and sum(series.published) == 100
    latencies = [value for value in series.latency_p50_s + series.latency_p99_s if value is not None]
    assert len(latencies) >= 2 * 80  # a window edge can fall on a publish time and take two messages
    assert latencies == pytest.approx([0.05] * len(latencies))


def test_busim_compare_draws_the_overlaid_latency_and_the_anomalies(flash_sale_compared):
    for name in ("compare-latency-cdf", "compare-anomalies"):
        assert (flash_sale_compared / f"{name}.png").read_bytes().startswith(PNG_SIGNATURE)
        assert "flash-sale" in (flash_sale_compared / f"{name}.svg").read_text()


def test_replicated_comparisons_draw_means_with_their_intervals():
    from busim.report.charts import comparison_anomalies, comparison_latency_cdf

    comparison = busim.compare(
        busim.variants(SCENARIOS / "flash-sale.yaml", ["broker.preset=rabbitmq,sqs-standard"], ["duration=100s"]),
        replications=3,
    )
    figure = comparison_anomalies(comparison)
    assert figure_title(figure) == (
        "flash-sale: departures from exactly-once by variant (means and 95 % intervals) — variants by broker.preset"
        " — every variant with duration=100s"
    )
    effects = comparison.outcomes[0].figure("inventory", "duplicate_effects")
    cells = [text.get_text() for text in figure.axes[0].texts]
    # The t interval's half-width, which the low end, raised to 0 for a count, no longer shows.
    assert f"{effects.mean:,.1f}\n± {effects.high - effects.mean:,.1f}" in cells
    with pytest.raises(ValueError, match="need single runs"):
        comparison_latency_cdf(comparison)
