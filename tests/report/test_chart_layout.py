"""Charts a reviewer can put on a slide: at 1280 x 720 pixels no text overlaps another or leaves the figure,
whatever the number of consumers or variants; every consumer is charted, coinciding variants are named,
and each title says which overrides produced the chart."""

import numpy as np
import pytest
from matplotlib.text import Text

import busim
from busim.report.charts import (
    CHARTS,
    COMPARISON_CHARTS,
    comparison_anomalies,
    comparison_latency_cdf,
    draw_charts,
    figure_title,
)
from busim.report.markdown import markdown_cell
from busim.report.run_report import write_comparison_report, write_report
from busim.scenario.loader import load_scenario
from tests.conftest import (
    ROOT,
    VARIANTS_COMPARED,
    consumer,
    eight_presets_compared,
    scenario,
    simulated,
    variants_compared,
)

# The order pipeline's run and variants as the file states them are shared with the other modules that read
# them (tests/conftest.py), in the one worker that runs them all.
pytestmark = VARIANTS_COMPARED

SMALL_PIPELINE = ROOT / "tests" / "data" / "small-pipeline.yaml"


@pytest.fixture(scope="module")
def order_pipeline_run():
    return simulated("order-pipeline.yaml")


@pytest.fixture(scope="module")
def order_pipeline_comparison():
    return variants_compared("order-pipeline.yaml")


@pytest.fixture(scope="module")
def eight_variants():
    return eight_presets_compared()


@pytest.fixture(scope="module")
def small_pipeline_run():
    """A run with an override to name: every chart, a chain's included."""
    return busim.simulate(load_scenario(SMALL_PIPELINE, ["seed=3"]))


def many_consumers(preset: str = "rabbitmq", count: int = 10):
    """Services of one topic, each crashing now and then and counting what it applies."""
    services = [
        consumer(
            name=f"service-{index}",
            crash={"probability": 0.02, "restart_after": "1s"},
            state={"count": {}},
            effects=[{"counter": "count", "key": "item", "add": 1}],
        )
        for index in range(count)
    ]
    return scenario(consumers=services, duration=20, broker={"preset": preset, "outages": [{"at": 5, "duration": 1}]})


@pytest.fixture(scope="module")
def many_consumers_run():
    return busim.simulate(many_consumers())


@pytest.fixture(scope="module")
def many_consumers_comparison():
    return busim.compare([("rabbitmq", many_consumers()), ("sqs-standard", many_consumers("sqs-standard"))])


@pytest.fixture(scope="module")
def eight_variants_of_many_consumers():
    presets = ["rabbitmq", "sqs-standard", "kafka", "sqs-fifo"] * 2
    return busim.compare(
        [(f"{preset}-with-a-longer-name-{index}", many_consumers(preset, 7)) for index, preset in enumerate(presets)]
    )


@pytest.fixture(scope="module")
def many_consumers_replicated():
    return busim.compare(
        [("rabbitmq", many_consumers()), ("sqs-standard", many_consumers("sqs-standard"))], replications=3
    )


def drawn_texts(figure, monkeypatch) -> list[Text]:
    """Every text the figure draws: titles, labels, tick labels, legend entries, bar labels, table cells."""
    drawn: list[Text] = []
    draw = Text.draw

    def recording(text, renderer):
        draw(text, renderer)
        if text.get_visible() and text.get_text().strip():
            drawn.append(text)

    monkeypatch.setattr(Text, "draw", recording)
    figure.canvas.draw()
    monkeypatch.setattr(Text, "draw", draw)
    return drawn


def layout_problems(figure, monkeypatch) -> list[str]:
    """Texts that leave the figure or overlap another, and log axes with fewer than three labelled ticks."""
    texts = drawn_texts(figure, monkeypatch)
    renderer = figure.canvas.get_renderer()
    boxes = [(text.get_text(), text.get_window_extent(renderer)) for text in texts]
    width, height = figure.canvas.get_width_height()
    problems = [
        f"leaves the figure: {text!r}"
        for text, box in boxes
        if box.x0 < -0.5 or box.y0 < -0.5 or box.x1 > width + 0.5 or box.y1 > height + 0.5
    ]
    for index, (text, box) in enumerate(boxes):
        for other, other_box in boxes[index + 1 :]:
            overlap_x = min(box.x1, other_box.x1) - max(box.x0, other_box.x0)
            overlap_y = min(box.y1, other_box.y1) - max(box.y0, other_box.y0)
            if overlap_x > 0.5 and overlap_y > 0.5:
                problems.append(f"overlap: {text!r} and {other!r}")
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if ax.get_visible() and axis.get_scale() == "log":
                labels = [label for label in axis.get_ticklabels(which="both") if label in texts]
                if 0 < len(labels) < 3:  # a panel that shares its neighbour's axis shows none
                    problems.append(f"a log axis with {len(labels)} labels: {ax.get_title()!r}")
    return problems


RUN_CASES = [
    *(("order_pipeline_run", name) for name in CHARTS),
    *(("many_consumers_run", name) for name in CHARTS if name != "chain-latency"),
]
COMPARISON_CASES = [
    (case, name)
    for case in (
        "order_pipeline_comparison",
        "eight_variants",
        "many_consumers_comparison",
        "eight_variants_of_many_consumers",
    )
    for name in COMPARISON_CHARTS
] + [("many_consumers_replicated", "compare-anomalies")]


@pytest.mark.parametrize(
    ("case", "chart"),
    RUN_CASES + COMPARISON_CASES,
    ids=[f"{case}-{chart}" for case, chart in RUN_CASES + COMPARISON_CASES],
)
def test_every_chart_fits_a_slide_with_no_text_over_another(request, monkeypatch, case, chart):
    drawn = request.getfixturevalue(case)
    figure = (CHARTS if chart in CHARTS else COMPARISON_CHARTS)[chart](drawn)
    assert figure.canvas.get_width_height() == (1280, 720)
    assert layout_problems(figure, monkeypatch) == []


def test_the_layout_check_sees_overlapping_and_clipped_text(monkeypatch):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    figure = Figure(figsize=(10.24, 5.76), dpi=125)
    FigureCanvasAgg(figure)
    figure.text(0.1, 0.9, "first")
    figure.text(0.1, 0.9, "second")
    figure.text(0.99, 0.9, "cut off at the edge")
    ax = figure.add_axes((0.2, 0.2, 0.6, 0.5))
    ax.set_xscale("log")
    ax.set_xlim(2, 50)  # within a decade: one labelled tick, at 10
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks([])
    assert layout_problems(figure, monkeypatch) == [
        "leaves the figure: 'cut off at the edge'",
        "overlap: 'first' and 'second'",
        "a log axis with 1 labels: ''",
    ]


def flat(text: str) -> str:
    """A title as it reads, without the breaks that fit it to its panel."""
    return " ".join(text.split())


def test_a_comparison_charts_every_consumer_and_each_ones_departures(order_pipeline_comparison):
    latency = comparison_latency_cdf(order_pipeline_comparison)
    panels = [flat(ax.get_title()) for ax in latency.axes if ax.get_visible() and ax.has_data()]
    assert [title.split()[0] for title in panels] == ["inventory", "payment", "shipping"]
    table = comparison_anomalies(order_pipeline_comparison).axes[0]
    rows = [label.get_text() for label in table.get_yticklabels()]
    # Idempotent inventory stops the double charges downstream; the outbox stops the lost orders.
    assert rows == [
        "inventory: duplicate effects",
        "inventory: lost",
        "inventory: wrongly rejected",
        "inventory: wrongly accepted",
        "inventory: stock drift",
        "payment: duplicate effects",
        "payment: charged drift",
        "shipping: duplicate effects",
        "shipping: shipped drift",
    ]
    cells = np.array([text.get_text() for text in table.texts]).reshape(len(rows), 4)
    assert cells[rows.index("payment: duplicate effects")].tolist() == ["19", "0", "0", "0"]
    assert cells[rows.index("inventory: lost")].tolist() == ["3", "3", "0", "0"]


def test_coinciding_variants_are_named_not_hidden(order_pipeline_comparison):
    latency = comparison_latency_cdf(order_pipeline_comparison)
    inventory, payment, shipping = (flat(ax.get_title()) for ax in latency.axes if ax.get_visible() and ax.has_data())
    # The dedup store adds no latency: the inventory's distribution is that of the run as it is.
    assert inventory == "inventory as-is = idempotent-inventory"
    assert payment == "payment as-is ≈ idempotent-inventory ≈ plus-outbox ≈ plus-capacity (≈: within 2 %)"
    assert shipping == "shipping idempotent-inventory ≈ plus-outbox (≈: within 2 %)"


def test_identical_variants_say_so(monkeypatch):
    same = busim.compare([("first", scenario()), ("again", scenario())])
    latency = comparison_latency_cdf(same)
    (panel,) = (ax for ax in latency.axes if ax.has_data())
    assert panel.get_title() == "worker: the same under every variant"
    table = comparison_anomalies(same)
    assert [label.get_text() for label in table.axes[0].get_xticklabels()] == ["first", "again\n= first"]
    assert [label.get_text() for label in table.axes[0].get_yticklabels()] == ["worker: none"]
    assert figure_title(table) == "test: departures from exactly-once by variant — every variant gives the same figures"
    assert layout_problems(table, monkeypatch) == []


def test_panels_too_small_for_the_names_call_the_variants_by_number(eight_variants_of_many_consumers):
    figure = comparison_latency_cdf(eight_variants_of_many_consumers)
    legend = next(ax.get_legend() for ax in figure.axes if ax.get_legend())
    assert legend.get_texts()[0].get_text() == "1  rabbitmq-with-a-longer-name-0"
    first = next(ax for ax in figure.axes if ax.has_data())
    # The same broker on the same seed gives the same curve.
    assert flat(first.get_title()) == "service-0 1 = 5; 2 = 6; 3 = 7; 4 = 8"


def test_a_row_equal_under_every_variant_says_so(order_pipeline_comparison):
    first_two = busim.Comparison(
        order_pipeline_comparison.names[:2], order_pipeline_comparison.outcomes[:2], order_pipeline_comparison.seed
    )
    rows = [label.get_text() for label in comparison_anomalies(first_two).axes[0].get_yticklabels()]
    # An idempotent inventory still loses the orders its publisher crashed before sending: no outbox.
    assert "inventory: lost (all equal)" in rows
    assert "inventory: duplicate effects" in rows


def test_each_title_names_the_overrides_that_produced_the_chart(
    small_pipeline_run, order_pipeline_comparison, eight_variants
):
    for figure in draw_charts(small_pipeline_run).values():
        assert figure_title(figure).endswith(" — with seed=3")
        assert figure.get_suptitle().endswith("\nwith seed=3")
    assert figure_title(comparison_anomalies(order_pipeline_comparison)) == (
        "order-pipeline: departures from exactly-once by variant — variants: as-is: no override; "
        "idempotent-inventory: consumers.inventory.idempotency=dedup; plus-outbox: "
        "consumers.inventory.idempotency=dedup, publishers.order.outbox=true; plus-capacity: "
        "consumers.inventory.idempotency=dedup, publishers.order.outbox=true, consumers.inventory.instances=5"
    )
    # A grid's variants are named after their values: the title names the key once.
    assert figure_title(comparison_latency_cdf(eight_variants)) == (
        "flash-sale: latency by variant — variants by broker.preset — every variant with duration=100s"
    )


def test_the_titles_reach_the_reports_from_the_chart_writers(order_pipeline_comparison, tmp_path):
    written = write_comparison_report(order_pipeline_comparison, tmp_path)
    assert [path.name for path in written] == [
        "compare-latency-cdf.png",
        "compare-latency-cdf.svg",
        "compare-anomalies.png",
        "compare-anomalies.svg",
        "compare.md",
        "compare.html",
    ]
    page = (tmp_path / "compare.html").read_text()
    assert "<figcaption>order-pipeline: departures from exactly-once by variant — variants: as-is: no override;" in page


def test_a_run_report_captions_each_chart_with_its_title(small_pipeline_run, tmp_path):
    write_report(small_pipeline_run, tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    title = "small-pipeline: delivery funnel — with seed=3"
    assert f"![{markdown_cell(title)}](delivery-funnel.png)" in markdown
    page = (tmp_path / "report.html").read_text()
    assert f"<figcaption>{title}</figcaption>" in page


def test_a_funnel_of_many_consumers_is_a_table(many_consumers_run):
    table = CHARTS["delivery-funnel"](many_consumers_run).axes[0]
    assert [label.get_text() for label in table.get_xticklabels()] == [f"service-{index}" for index in range(10)]
    subscribed = [text.get_text() for text in table.texts[:10]]
    assert subscribed == ["200"] * 10  # 200 Jobs in 20 s, every service subscribed to each
