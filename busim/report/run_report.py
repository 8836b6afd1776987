"""A run's report for a review board: report.md and a self-contained report.html.

Both are drawn from the run's results document and resolved scenario (a
:class:`~busim.report.charts.RunView`), so ``busim report RUN_DIR`` draws
them again from a run's folder without simulating. The HTML embeds its
charts as SVG and loads nothing from the network.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from busim.analysis.invariants import InvariantOutcome
from busim.errors import OutputError
from busim.report.charts import RunView, write_charts
from busim.report.console import (
    ABSENT,
    CONSUMER_ROWS,
    PUBLISHER_FIGURES,
    chain_labels,
    compared_consumers,
    comparison_rows,
    comparison_verdicts,
    format_duration,
    invariant_rows,
    missed_crashes_note,
    read_rows,
    reason_label,
    row_shown,
    stuck_pending_note,
)
from busim.report.files import write_files
from busim.report.markdown import markdown_cell, markdown_text
from busim.results import Comparison
from busim.scenario.presets import shown
from busim.words import counted

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
COMPARE_HTML_FILE = "compare.html"

_LATENCY = (("mean", "mean"), ("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p999"), ("max", "max"))


def _overrides_note(document: dict[str, Any]) -> str:
    """The overrides a run had, which its scenario file does not show."""
    overrides = (document.get("scenario") or {}).get("overrides") or []
    return " Overrides: " + "; ".join(f"--set {override}" for override in overrides) + "." if overrides else ""


def sections(view: RunView) -> list[tuple[str, list[list[str]] | str]]:
    """The report's sections in order: (heading, a table as rows with a header row first, or text)."""
    scenario, document = view.scenario, view.document
    broker = scenario.broker.model_dump()
    found: list[tuple[str, list[list[str]] | str]] = [
        (
            "Run",
            f"Seed {scenario.seed}; simulated {format_duration(document['sim_time_s'])}; "
            f"{counted(document['messages']['published'], 'message')} published"
            + (f", {emitted:,} emitted by consumers; " if (emitted := document["messages"].get("emitted")) else "; ")
            + (
                "the bus drained."
                if document["drained"]
                else f"stopped at {format_duration(stop['at_s'])}: {stop['consumer']} in a delivery loop."
                if (stop := document.get("stopped"))
                else "stopped at duration + drain_timeout with work left."
            )
            + _overrides_note(document),
        ),
        (
            f"Broker: {scenario.broker.preset}",
            [["key", "value"]] + [[key, shown(value)] for key, value in broker.items()],
        ),
        (
            "Publishers",
            [["publisher", "event", "arrivals", "rate", "retries", "publish timeout", "crash", "outbox"]]
            + [
                [
                    publisher.name,
                    publisher.event,
                    publisher.arrivals,
                    ", ".join(f"{step.rate:g}/s from {step.at:g}s" for step in publisher.rate),
                    str(publisher.retries),
                    format_duration(publisher.publish_timeout),
                    shown(publisher.crash.model_dump()) if publisher.crash else "none",
                    "yes" if publisher.outbox else "no",
                ]
                for publisher in scenario.publishers
            ],
        ),
        *(
            (
                f"Consumer: {consumer.name}",
                [["key", "value"]] + [[key, shown(value)] for key, value in settings.items()],
            )
            for consumer in scenario.consumers
            for settings in [{key: value for key, value in consumer.model_dump().items() if key != "name"}]
        ),
        ("Publishing", _publishing_table(view)),
        ("Results", _figures_table(view)),
        ("Latency, publish to first completed processing", _latency_table(view)),
    ]
    if document.get("chains"):
        found.append(("Event chains, publish to the last consumer", _chains_table(document["chains"])))
    if document.get("invariants"):
        found.append(("Invariants", _invariants_table(document["invariants"])))
    verdict = document["consistency"]
    found.append(
        (
            "Verdict",
            "Consistent: every message's effects were applied exactly once."
            if verdict["consistent"]
            else "Inconsistent with exactly-once processing: " + "; ".join(verdict["violations"]) + ".",
        )
    )
    return found


def _figures_table(view: RunView) -> list[list[str]]:
    names = list(view.consumers)
    rows = [["", *names, "why"]]
    preset = view.scenario.broker.preset
    for label, key, _ in CONSUMER_ROWS:
        if not row_shown(view.scenario, key, [view.consumers[name][key] for name in names]):
            continue
        if key == "recovery_s":
            cells = [_recovery(view.consumers[name][key]) for name in names]
            rows.append([label, *cells, "restart plus replay since the last snapshot"])
            continue
        if key == "emitted":
            rows.append([label, *(_emitted(view.consumers[name][key]) for name in names), ""])
            continue
        if key == "busiest_instance_share":
            rows.append([label, *(f"{view.consumers[name][key]:.0%}" for name in names), "of deliveries"])
            continue
        why = "; ".join(
            (f"{name}: " if len(names) > 1 else "")
            + ", ".join(f"{count:,} {reason_label(reason, preset)}" for reason, count in reasons.items())
            for name, reasons in ((name, view.consumers[name]["by_reason"].get(key) or {}) for name in names)
            if reasons
        )
        if key == "duplicate_effects":
            missed = "; ".join(
                (f"{name}: " if len(names) > 1 else "")
                + ", ".join(f"{count:,} {reason.replace('_', ' ')}" for reason, count in reasons.items())
                for name, reasons in (
                    (name, view.consumers[name]["by_reason"].get("dedup_missed") or {}) for name in names
                )
                if reasons
            )
            why += f"; past the dedup store: {missed}" if missed else ""
        if key == "crashes":
            why = "; ".join(
                (f"{name}: " if len(names) > 1 else "") + note
                for name in names
                if (note := missed_crashes_note(view.consumers[name]["by_reason"].get("missed_crashes") or {}))
            )
        if key == "stuck_pending" and why:
            why += stuck_pending_note(
                sum(view.consumers[name]["stuck_pending"] for name in names),
                sum(view.consumers[name]["stuck_pending_unprocessed"] for name in names),
                [view.consumers[name]["stuck_pending_age_s"]["max"] for name in names],
            )
        rows.append([label, *(f"{view.consumers[name][key]:,}" for name in names), why])
    rows += [[label, *cells, why] for label, cells, why in read_rows(view.scenario, view.consumers)]
    for name in names:
        for counter, state in view.consumers[name]["state"].items():
            cells = [
                f"{state['abs_drift']:,} over {counted(state['keys_diverged'], 'key')}" if other == name else ""
                for other in names
            ]
            rows.append([f"{counter} drift", *cells, "against the exactly-once reference"])
    return rows


def _publishing_table(view: RunView) -> list[list[str]]:
    """What happened to the publishers' messages, as the console's publishers table says it."""
    publishers = view.document["publishers"]
    columns = [("published", "published"), ("delayed by an outage", "delayed_by_outage")]
    columns += [
        (heading, key) for heading, key in PUBLISHER_FIGURES if any(publisher[key] for publisher in publishers.values())
    ]
    rows = [["publisher", *(heading for heading, _ in columns)]]
    rows += [[name, *(f"{publisher[key]:,}" for _, key in columns)] for name, publisher in publishers.items()]
    return rows


def _recovery(summary: dict[str, Any]) -> str:
    return f"{format_duration(summary['p50'])} / {format_duration(summary['max'])}" if summary["count"] else ABSENT


def _emitted(counts: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {event}" for event, count in counts.items()) or ABSENT


def _invariants_table(invariants: list[dict]) -> list[list[str]]:
    outcomes = tuple(InvariantOutcome(**outcome) for outcome in invariants)
    rows = [["invariant", "checks", "measured", "result"]]
    rows += [
        [name, check, measured, "PASS" if passed else "FAIL"]
        for name, check, measured, passed in invariant_rows(outcomes)
    ]
    return rows


def _chains_table(chains: dict[str, Any]) -> list[list[str]]:
    rows = [["chain, then its hops", "published", "reached the end / messages", "duplicates", "p50", "p99", "max"]]
    for chain, consumers in zip(chains.values(), chain_labels(list(chains))):
        latency = chain["latency_s"]
        rows.append(
            [
                consumers,
                f"{chain['published']:,}",
                f"{chain['completed']:,}",
                f"{chain['duplicate_completions']:,}",
                *(format_duration(latency[key]) for key in ("p50", "p99", "max")),
            ]
        )
        for hop in chain["hops"]:
            hop_latency = hop["latency_s"]
            rows.append(
                [
                    f"{hop['event']} > {hop['consumer']}",
                    "",
                    f"{hop['messages']:,}",
                    f"{hop['duplicates']:,}",
                    *(format_duration(hop_latency[key]) for key in ("p50", "p99", "max")),
                ]
            )
    return rows


def _latency_table(view: RunView) -> list[list[str]]:
    rows = [["consumer", "count", *(label for label, _ in _LATENCY)]]
    for name, consumer in view.consumers.items():
        end_to_end = consumer["latency_s"]["end_to_end"]
        rows.append([name, f"{end_to_end['count']:,}", *(format_duration(end_to_end[key]) for _, key in _LATENCY)])
    return rows


def report_markdown(view: RunView, charts: dict[str, str]) -> str:
    """report.md; ``charts`` maps each chart's file (PNG, beside the report) to its title.

    Every text is escaped (:mod:`busim.report.markdown`): names, descriptions and values are the user's.
    """
    lines = [f"# {markdown_cell(view.scenario.name)}", ""]
    if view.scenario.description:
        lines += [markdown_text(view.scenario.description), ""]
    for heading, content in sections(view):
        lines += [f"## {markdown_cell(heading)}", ""]
        if isinstance(content, str):
            lines += [markdown_text(content), ""]
            continue
        header, *body = content
        lines.append("| " + " | ".join(markdown_cell(cell) for cell in header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(markdown_cell(cell) for cell in row) + " |" for row in body]
        lines.append("")
        if heading == "Latency, publish to first completed processing" and charts:
            lines += ["## Charts", ""]
            lines += [f"![{markdown_cell(title)}]({file})" for file, title in charts.items()]
            lines.append("")
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.75rem; text-align: right; }
th:first-child, td:first-child, td:last-child { text-align: left; }
figure { margin: 1rem 0 2rem; }
figure svg { width: 100%; height: auto; }
.verdict-ok { color: #009E73; font-weight: bold; }
.verdict-bad { color: #D55E00; font-weight: bold; }
"""


def report_html(view: RunView, charts: dict[str, str]) -> str:
    """report.html, self-contained; ``charts`` maps each chart's title to its SVG text."""
    parts = [f"<h1>{html.escape(view.scenario.name)}</h1>"]
    if view.scenario.description:
        parts.append(f"<p>{html.escape(view.scenario.description)}</p>")
    for heading, content in sections(view):
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(content, str):
            css = ""
            if heading == "Verdict":
                css = ' class="verdict-ok"' if view.document["consistency"]["consistent"] else ' class="verdict-bad"'
            parts.append(f"<p{css}>{html.escape(content)}</p>")
            continue
        header, *body = content
        parts.append(_html_table(header, body))
        if heading == "Latency, publish to first completed processing" and charts:
            parts.append("<h2>Charts</h2>")
            parts += _figures(charts)
    return _page(f"{view.scenario.name}: busim report", parts)


def comparison_html(comparison: Comparison, charts: dict[str, str]) -> str:
    """compare.html, self-contained: the variants side by side, their verdicts and charts."""
    name = comparison.outcomes[0].scenario.name
    parts = [f"<h1>{html.escape(name)}: {len(comparison.names)} variants on seed {comparison.seed}</h1>"]
    for consumer in compared_consumers(comparison):
        parts.append(f"<h2>{html.escape(consumer)}</h2>")
        rows = [[label, *(cell.plain for cell in cells)] for label, cells in comparison_rows(comparison, consumer)]
        parts.append(_html_table(["", *comparison.names], rows))
    parts.append("<p>Changes are against the first variant.</p><h2>Verdicts</h2>")
    verdicts = [[variant, verdict] for variant, (verdict, _) in zip(comparison.names, comparison_verdicts(comparison))]
    parts.append(_html_table(["variant", "verdict"], verdicts))
    if charts:
        parts.append("<h2>Charts</h2>")
        parts += _figures(charts)
    return _page(f"{name}: busim comparison", parts)


def _page(title: str, body: list[str]) -> str:
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
    ]
    return "\n".join([*head, *body, "</body>", "</html>", ""])


def _html_table(header: list[str], body: list[list[str]]) -> str:
    rows = ["<tr>" + "".join(f"<th>{html.escape(cell)}</th>" for cell in header) + "</tr>"]
    rows += ["<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in body]
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def _figures(charts: dict[str, str]) -> list[str]:
    return [
        f"<figure>{_inline(svg)}<figcaption>{html.escape(title)}</figcaption></figure>" for title, svg in charts.items()
    ]


def _inline(svg: str) -> str:
    """An SVG file's markup without its XML prologue and doctype, to sit inside HTML."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def write_report(view: RunView, folder: Path, charts: bool = True) -> list[Path]:
    """Draw the charts (unless ``charts`` is false) and write report.md and report.html into ``folder``.

    Raises:
        OutputError: the folder cannot be written.
    """
    written: list[Path] = []
    markdown_charts: dict[str, str] = {}
    html_charts: dict[str, str] = {}
    try:
        if charts:
            for chart in write_charts(view, folder):
                written += chart.paths
                markdown_charts[f"{chart.name}.png"] = chart.title
                html_charts[chart.title] = chart.path("svg").read_text(encoding="utf-8")
    except OSError as error:
        raise OutputError(f"cannot write the report to {folder}: {error.strerror or error}") from None
    return written + write_files(
        folder,
        ((MARKDOWN_FILE, report_markdown(view, markdown_charts)), (HTML_FILE, report_html(view, html_charts))),
    )


def is_report_file(name: str) -> bool:
    """Whether a file of a run's or a comparison's folder is part of its report (report.md, report.html,
    compare.md, compare.html, a chart), which ``busim report`` writes anew."""
    from busim.report.charts import CHARTS, COMPARISON_CHARTS, FORMATS
    from busim.report.files import COMPARE_MARKDOWN

    charts = {f"{chart}.{suffix}" for chart in (*CHARTS, *COMPARISON_CHARTS) for suffix in FORMATS}
    return name in (MARKDOWN_FILE, HTML_FILE, COMPARE_MARKDOWN, COMPARE_HTML_FILE) or name in charts


def write_comparison_report(comparison: Comparison, folder: Path, charts: bool = True) -> list[Path]:
    """Draw the comparison charts (unless ``charts`` is false) and write compare.html into ``folder``.

    Raises:
        OutputError: the folder cannot be written.
    """
    from busim.report.charts import write_comparison_charts

    try:
        drawn = write_comparison_charts(comparison, folder) if charts else []
        written = [path for chart in drawn for path in chart.paths]
        svgs = {chart.title: chart.path("svg").read_text(encoding="utf-8") for chart in drawn}
        path = folder / COMPARE_HTML_FILE
        path.write_text(comparison_html(comparison, svgs), encoding="utf-8")
    except OSError as error:
        raise OutputError(f"cannot write the comparison to {folder}: {error.strerror or error}") from None
    return [*written, path]
