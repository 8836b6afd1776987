"""series.csv: every consumer's figures per time window, one row per window and consumer, for a spreadsheet.

The rows are each consumer's series (results.json's ``consumers.<name>.series``)
in long ("tidy") form, so that ``busim report`` can write the file again from
a run read back from its folder.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from busim.report.files import write_files
from busim.results import Result

SERIES_FILE = "series.csv"
SERIES_COLUMNS = (
    "window_start_s",
    "window_end_s",
    "consumer",
    "published",
    "processed",
    "throughput_per_s",
    "backlog",
    "latency_p50_s",
    "latency_p99_s",
)


def _seconds(value: float | None) -> str:
    """A time or a rate to the microsecond, without trailing zeros; empty for no value."""
    if value is None:
        return ""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def series_rows(result: Result) -> list[tuple[str, ...]]:
    """The rows of series.csv from a run: windows in time order, consumers in scenario order."""
    rows = []
    for name, consumer in result.summary.consumers.items():
        series = consumer.series
        window_s = series.window_s
        for index, processed in enumerate(series.processed):
            rows.append(
                (
                    _seconds(index * window_s),
                    _seconds((index + 1) * window_s),
                    name,
                    str(series.published[index]),
                    str(processed),
                    _seconds(processed / window_s),
                    str(series.backlog[index]),
                    _seconds(series.latency_p50_s[index]),
                    _seconds(series.latency_p99_s[index]),
                )
            )
    rows.sort(key=lambda row: float(row[0]))  # stable: each window's consumers stay in scenario order
    return rows


def series_csv(result: Result) -> str:
    """series.csv as text, with a header row."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(SERIES_COLUMNS)
    writer.writerows(series_rows(result))
    return text.getvalue()


def write_series(result: Result, folder: Path) -> list[Path]:
    """Write series.csv into ``folder``; return its path.

    Raises:
        OutputError: the folder cannot be written.
    """
    return write_files(folder, ((SERIES_FILE, series_csv(result)),))
