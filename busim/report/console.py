"""Terminal output: the progress bars while simulating, and the views of :mod:`busim.report.views` in Rich.

The figures, labels and words come from the views; this module only styles
them and chooses a layout that fits the terminal: a table too wide for it
is split (one table per consumer, the variants turned to rows, figures
continued in a second table) rather than cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from busim.engine.simulation import ProgressCallback
from busim.report.tables import Cell, Heading, Row, TableView, Tone, Verdict, legend
from busim.report.views import (
    ComparisonViews,
    comparison_views,
    replications_views,
    run_views,
)
from busim.results import Comparison, Replications, Result
from busim.scenario import Scenario
from busim.scenario.presets import COMMON_KEYS, PRESETS, preset_rows
from busim.scenario.units import ABSENT, format_duration


def literal(text: RenderableType) -> RenderableType:
    """A string shown as written: Rich reads no markup (``[bold]``, ``[/]``) and no emoji code (``:smile:``) in
    it. Names, descriptions, keys and variants come from the user."""
    return Text(text) if isinstance(text, str) else text


class _Table(Table):
    """A table whose strings are shown as written (see :func:`literal`); styled cells are :class:`Text`."""

    def add_column(self, header: RenderableType = "", *args, **kwargs) -> None:  # type: ignore[override]
        super().add_column(literal(header), *args, **kwargs)

    def add_row(self, *renderables: RenderableType | None, **kwargs) -> None:  # type: ignore[override]
        super().add_row(*(None if cell is None else literal(cell) for cell in renderables), **kwargs)


def _table(title: str) -> Table:
    return _Table(title=Text(title), title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)


def _progress(console: Console, *counts: ProgressColumn) -> Progress:
    """A transient bar: what it does, how far, ``counts``, its clock, the time taken and the time left."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),  # the scenario's name, as written
        BarColumn(),
        *counts,
        TextColumn("{task.fields[clock]}", markup=False),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@contextmanager
def simulation_progress(console: Console, scenario: Scenario, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A progress bar of simulated time over the publishing window, then draining."""
    if not enabled:
        yield None
        return
    progress = _progress(console)
    task = progress.add_task(f"simulating {scenario.name}", total=scenario.duration, clock="")

    def report(now_s: float) -> None:
        phase = "publishing" if now_s < scenario.duration else "draining"
        progress.update(
            task,
            completed=min(now_s, scenario.duration),
            clock=f"{phase}, t={format_duration(now_s)} of {format_duration(scenario.duration)}",
        )

    with progress:
        yield report


@dataclass(frozen=True)
class RunCallbacks:
    """What moves a progress bar while ``busim run`` simulates: after each run, and as simulated time passes."""

    on_run: Callable[[int, int], None] | None = None
    on_progress: ProgressCallback | None = None


@contextmanager
def run_progress(console: Console, scenario: Scenario, runs: int, enabled: bool) -> Iterator[RunCallbacks]:
    """A progress bar of one run's simulated time, or of ``runs`` replications done."""
    if runs > 1:
        with count_progress(console, f"replicating {scenario.name}", runs, enabled) as bar:
            yield RunCallbacks(bar.run_done, bar.simulated) if bar else RunCallbacks()
    else:
        with simulation_progress(console, scenario, enabled) as on_progress:
            yield RunCallbacks(on_progress=on_progress)


# ---------------------------------------------------------------- cells and tables
_STYLES: dict[Tone, str | None] = {"bad": "bold red", "good": "bold green", "quiet": "dim", None: None}
_NOTE_STYLES: dict[Tone, str | None] = {"bad": "red", "good": "green", "quiet": "dim", None: None}


def _cell(cell: Cell, brief: bool = False) -> Text:
    if brief:
        return Text(cell.brief or cell.text, style=_STYLES[cell.tone] or "")
    text = Text(cell.text, style=_STYLES[cell.tone] or "")
    if cell.note:
        text.append(cell.note, style=_NOTE_STYLES[cell.note_tone] or "")
    return text


def rich_table(
    view: TableView,
    columns: Sequence[int] | None = None,
    why: Sequence[str] | None = None,
    no_wrap: bool = False,
    title: str | None = None,
) -> Table:
    """``view`` as a Rich table; ``columns`` keeps some value columns only, ``why`` replaces each row's why,
    ``no_wrap`` keeps every figure on one line."""
    kept = list(range(len(view.columns))) if columns is None else list(columns)
    table = _table(view.title if title is None else title)
    # Where the table is too wide, a long label folds onto a second line rather than lose its end.
    table.add_column(view.label, overflow="fold")
    for index in kept:
        column = view.columns[index]
        table.add_column(
            column.header,
            justify="right" if column.right else "left",
            no_wrap=no_wrap,
            min_width=_least_width(column.header, [row.cells[index] for row in view.rows], column.right),
        )
    if view.why:
        table.add_column("why", style="dim")
    for number, row in enumerate(view.rows):
        label = f"  {row.label}" if row.sub else row.label
        cells = [_cell(row.cells[index]) for index in kept]
        if view.why:
            cells.append(Text(row.why if why is None else why[number]))
        table.add_row(label, *cells, style="dim" if row.sub else None)
    if view.caption:
        table.caption = Text(view.caption)
        table.caption_justify = "left"
    return table


def _least_width(header: str, cells: list[Cell], figures: bool) -> int:
    """The narrowest a column may get: a figure whole (its change may go to a second line), a heading's or a
    text's longest word; never cut short with an ellipsis."""
    words = [word for cell in cells for word in cell.full.split()] + header.split()
    widths = [len(word) for word in words]
    if figures:
        widths += [len(cell.text) for cell in cells]
    return max(widths, default=1)


def _fits(console: Console, table: Table, spare: int = 0, wrapped: bool = False) -> bool:
    """Whether ``table`` fits the console's width with ``spare`` columns left over: on its natural lines, or
    ``wrapped`` where its headings and texts may wrap (never a figure)."""
    measured = console.measure(table, options=console.options.update_width(_UNBOUNDED))
    return (measured.minimum if wrapped else measured.maximum) + spare <= console.width


_UNBOUNDED = 100_000  # columns: wide enough to measure any table at its natural width


# A why column narrower than this reads as a column of fragments: below it, a table is split.
_WHY_WIDTH = 24


def _consumer_tables(console: Console, view: TableView) -> list[Table]:
    """The consumers' table, or one table per consumer where the consumers side by side leave the why no room."""
    whole = rich_table(view, no_wrap=True)
    figures_only = rich_table(TableView(view.title, view.columns, view.rows), no_wrap=True)
    if len(view.columns) < 2 or _fits(console, figures_only, _WHY_WIDTH):
        return [whole]
    tables = []
    for index, column in enumerate(view.columns):
        why = ["; ".join(words for owner, words in row.why_parts if owner in ("", column.header)) for row in view.rows]
        tables.append(rich_table(view, [index], why, no_wrap=True, title=f"{view.title}: {column.header}"))
    return tables


# ---------------------------------------------------------------- a run
def _heading(heading: Heading, wall: str = "") -> Panel:
    facts = Text(" · ").join(Text(cell.text, style=_STYLES[cell.tone] or "") for cell in heading.facts)
    if wall:
        facts.append(wall)
    lines = [Text(heading.description), facts]
    if heading.overrides:
        lines.append(Text("overrides: " + " · ".join(f"--set {override}" for override in heading.overrides)))
    return Panel(Group(*[line for line in lines if line.plain]), title=Text(heading.name, style="bold"), expand=False)


def _verdict(verdict: Verdict) -> RenderableType:
    if not verdict.items:
        return Text(verdict.headline, style="bold green" if verdict.good else "bold red")
    items = Table.grid(padding=(0, 1))  # a grid keeps wrapped lines indented under their item
    items.add_column(justify="right", width=3)
    items.add_column()
    for item in verdict.items:
        items.add_row("-", Text(item), style="red")
    return Group(Text(verdict.headline, style="bold red"), items)


def render_outcome(console: Console, outcome: Result | Replications) -> None:
    """Print a run's or replications' tables and verdict."""
    if isinstance(outcome, Replications):
        render_replications(console, outcome)
    else:
        render_result(console, outcome)


def render_result(console: Console, result: Result) -> None:
    """Print the result tables and the verdict."""
    views = run_views(result)
    messages = result.messages.published + result.messages.emitted
    rate = messages / result.wall_time_s if result.wall_time_s > 0 else 0
    console.print(_heading(views.heading, f" · {result.wall_time_s:.2f}s ({rate:,.0f} msg/s)"))
    console.print(rich_table(views.publishers))
    for table in _consumer_tables(console, views.consumers):
        console.print(table)
    console.print(rich_table(views.latency))
    if views.chains is not None:
        console.print(rich_table(views.chains))
        console.print()
    if views.consistency is not None:
        console.print(rich_table(views.consistency))
        if views.most_drifted:
            drifted = Text()
            for which, keys in views.most_drifted:
                drifted.append(f"  most drifted {which}, expected → actual: ", style="dim")
                drifted.append(f"{keys}\n")
            drifted.rstrip()
            console.print(drifted, soft_wrap=True)
    if views.invariants is not None:
        console.print(rich_table(views.invariants))
    console.print(_verdict(views.verdict))


def render_replications(console: Console, replications: Replications) -> None:
    """Print each consumer's figures as a mean with its confidence interval, and how often runs were consistent."""
    views = replications_views(replications)
    console.print(_heading(views.heading, f" · {replications.wall_time_s:.2f}s"))
    for table in _consumer_tables(console, views.figures):
        console.print(table)
    if views.invariants is not None:
        console.print(rich_table(views.invariants))
    console.print(_verdict(views.verdict))


# ---------------------------------------------------------------- a comparison
# More variants than this are shown one per row, with the key figures only.
WIDE_COMPARISON = 3
# Figures per table where the variants are rows: more would not fit 80 columns beside the variants' names.
_COMPACT_FIGURES_PER_TABLE = 6
_COMPACT_MIN_WIDTH = 6  # figures line up in columns at least this wide


def render_comparison(console: Console, comparison: Comparison) -> None:
    """Print the variants side by side, each figure with its change from the first variant; where that does
    not fit the width, one row per variant with the key figures."""
    views = comparison_views(comparison)
    console.print(
        Text.assemble(
            (f"Comparing {len(comparison.names)} variants", "bold"), f" · {views.how} (root seed {comparison.seed})"
        )
    )
    abbreviated: dict[str, Row] = {}
    for consumer, view in views.consumers:
        wide = rich_table(view, no_wrap=True)
        if len(view.columns) <= WIDE_COMPARISON and _fits(console, wide):
            console.print(wide)
            continue
        rows = _compact_rows(view)
        abbreviated.update((row.short, row) for row in rows)
        for table in _compact(console, views, consumer, view, rows):
            console.print(table)
    if legend(abbreviated.values()):
        console.print(Text(legend(abbreviated.values()), style="dim"))
    verdicts = Table.grid(padding=(0, 2))
    for name, cell in views.verdicts:
        verdicts.add_row(Text(name, style="bold"), Text(cell.text, style="green" if cell.tone == "good" else "red"))
    console.print(verdicts)


def _compact_rows(view: TableView) -> list[Row]:
    """The figures a narrow layout shows: those with a short label, less those that are 0 (or absent) under
    every variant, which make no difference here."""
    shown = [row for row in view.rows if row.short and any(cell.value for cell in row.cells)]
    return shown or [row for row in view.rows if row.short][:1]


def _compact(console: Console, views: ComparisonViews, consumer: str, view: TableView, shown: list[Row]) -> list[Table]:
    """One row per variant, the figures as columns; what does not fit goes to a continued table."""
    names = [column.header for column in view.columns]
    base = f"{consumer}{' (means of the replications)' if views.replicated else ''}"
    tables: list[Table] = []
    start = 0
    while start < len(shown):
        size = min(_COMPACT_FIGURES_PER_TABLE, len(shown) - start)
        while True:
            part = shown[start : start + size]
            table = _variants_as_rows(f"{base}{', continued' if start else ''}", names, part, fold=False)
            if size == 1 or _fits(console, table, wrapped=True):
                break
            size -= 1
        if not _fits(console, table, wrapped=True):  # names too long for any figure beside them: fold, not cut
            table = _variants_as_rows(f"{base}{', continued' if start else ''}", names, part, fold=True)
        tables.append(table)
        start += size
    return tables


def _variants_as_rows(title: str, names: list[str], rows: list[Row], fold: bool) -> Table:
    table = _table(title)
    table.add_column("variant", no_wrap=not fold, overflow="fold")
    for row in rows:
        least = _least_width(row.short, [Cell(cell.brief or cell.text) for cell in row.cells], figures=True)
        table.add_column(row.short, justify="right", min_width=max(least, _COMPACT_MIN_WIDTH))
    for index, name in enumerate(names):
        table.add_row(
            name, *(Text(ABSENT) if row.cells[index].text == ABSENT else _cell(row.cells[index], True) for row in rows)
        )
    return table


def presets_table() -> Table:
    """Every broker preset in one line each."""
    table = _table("Broker presets (busim presets NAME shows one in full)")
    table.add_column("preset", no_wrap=True)
    table.add_column("models")
    table.add_column("order kept", style="dim")
    for preset in PRESETS.values():
        table.add_row(preset.name, preset.title, preset.ordering)
    return table


def render_preset(console: Console, name: str) -> None:
    """One preset's keys, defaults and the basis of each default, then its sources, unbroken."""
    preset = PRESETS[name]
    table = _table(f"{preset.name}: {preset.title}; order kept {preset.ordering}")
    table.add_column("key", no_wrap=True)
    table.add_column("default")
    table.add_column("basis")
    sources: list[str] = []
    for key, default, basis, url in preset_rows(name):
        if url and url not in sources:
            sources.append(url)
        table.add_row(key, default, f"{basis} [{sources.index(url) + 1}]" if url else basis)
    common = [key for key in COMMON_KEYS if key not in preset.defaults and key != "preset"]
    table.caption = Text(f"Also accepted, with busim's defaults: {', '.join(common)} (docs/brokers.md)")
    console.print(table)
    for number, url in enumerate(sources, start=1):
        console.print(f"  [{number}] {url}", soft_wrap=True, highlight=False, markup=False)


@contextmanager
def count_progress(console: Console, description: str, total: int, enabled: bool) -> Iterator[RunsProgress | None]:
    """A progress bar of runs done out of ``total`` (replications, variants), the current run's simulated
    time, and the time left."""
    if not enabled:
        yield None
        return
    progress = _progress(console, MofNCompleteColumn())
    task = progress.add_task(description, total=total, clock="")
    with progress:
        yield RunsProgress(progress, task)


class RunsProgress:
    """The callbacks that move a runs progress bar: one per finished run, one per step of simulated time."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def run_done(self, done: int, _total: int) -> None:
        self._progress.update(self._task, completed=done)

    def simulated(self, now_s: float) -> None:
        self._progress.update(self._task, clock=f"run at t={format_duration(now_s)}")
