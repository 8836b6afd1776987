"""Terminal output: the progress bars while simulating, and the views of :mod:`busim.report.views` in Rich.

The figures, labels and words come from the views; this module only styles
them and chooses a layout that fits the console's width: a table too wide
for it is split (one table per consumer, the variants turned to rows, the
columns that do not fit continued in another table) rather than cut, and a
column never gets narrower than its widest figure or longest word.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
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
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from busim.analysis.intervals import CONFIDENCE
from busim.engine.simulation import ProgressCallback
from busim.report.calibration import calibration_views
from busim.report.tables import Cell, Heading, Row, TableView, Tone, Verdict, legend
from busim.report.views import (
    comparison_views,
    replications_views,
    run_views,
)
from busim.results import Comparison, Replications, Result
from busim.results.calibration import CalibrationRun
from busim.scenario import Scenario
from busim.scenario.presets import COMMON_KEYS, PRESETS, preset_rows
from busim.scenario.units import format_duration

if TYPE_CHECKING:
    from busim.loadtest.runner import LiveFigures  # the live view draws them; the run's side needs no rich


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


@contextmanager
def real_run_progress(
    console: Console, scenario: Scenario, broker: str, enabled: bool
) -> Iterator[Callable[[LiveFigures], None] | None]:
    """A live view of a real run: elapsed against total, publish rate against the schedule's, consume rate,
    backlog, redeliveries, crashes and the generator's lag."""
    if not enabled:
        yield None
        return
    from rich.live import Live

    title = f"load-testing {scenario.name} on {broker}"
    with Live(Text(f"{title}: starting the consumer instances"), console=console, refresh_per_second=4) as live:

        def show(figures: LiveFigures) -> None:
            live.update(Group(Text(title, style="bold"), _live_table(figures)))

        yield show


def _live_table(figures: LiveFigures) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    lag = "" if figures.lag_p99_s is None else f", p99 lag {figures.lag_p99_s * 1e3:,.1f} ms"
    rows = (
        ("phase", f"{figures.phase}, {format_duration(figures.elapsed_s)} of {format_duration(figures.duration_s)}"),
        ("published", f"{figures.sent:,} of {figures.copies:,} ({figures.due:,} due){lag}"),
        ("publish rate", f"{figures.send_rate_per_s:,.0f}/s (schedule: {figures.due_rate_per_s:,.0f}/s)"),
        ("consume rate", f"{figures.consume_rate_per_s:,.0f}/s"),
        ("backlog", f"{figures.backlog:,}"),
        ("redeliveries", f"{figures.redeliveries:,}"),
        ("crashes", f"{figures.crashes:,}"),
    )
    for name, value in rows:
        table.add_row(name, value)
    return table


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


def _cell(cell: Cell) -> Text:
    text = Text(cell.text, style=_STYLES[cell.tone] or "")
    if cell.note:
        text.append(cell.note, style=_NOTE_STYLES[cell.note_tone] or "")
    return text


@dataclass(frozen=True)
class _Column:
    """A column ready to lay out: its heading, its cells, how it aligns, and how narrow it may get."""

    header: str
    cells: tuple[Text, ...]
    right: bool = False
    least: int = 1  # a figure whole, a heading's or a text's longest word: never cut
    style: str | None = None

    @property
    def natural(self) -> int:
        return max([len(self.header), *(cell.cell_len for cell in self.cells)])


def _longest_word(*texts: str) -> int:
    return max((len(word) for text in texts for word in text.split()), default=1)


def _laid(view: TableView, kept: Sequence[int], why: Sequence[str] | None = None) -> list[_Column]:
    """The label column, the value columns ``kept`` and the why column of ``view``."""
    labels = tuple(Text(f"  {row.label}" if row.sub else row.label) for row in view.rows)
    least = max(_longest_word(view.label), *(_longest_word(row.label) + 2 * row.sub for row in view.rows))
    found = [_Column(view.label, labels, least=least)]
    for index in kept:
        column = view.columns[index]
        cells = [row.cells[index] for row in view.rows]
        found.append(
            _Column(
                column.header,
                tuple(_cell(cell) for cell in cells),
                column.right,
                _least_width(column.header, cells, column.right),
            )
        )
    if view.why:
        whys = tuple(Text(row.why if why is None else why[number]) for number, row in enumerate(view.rows))
        found.append(_Column("why", whys, least=_longest_word(*(cell.plain for cell in whys)), style="dim"))
    return found


def _built(columns: list[_Column], title: str, caption: str = "", widths: Sequence[int] | None = None) -> Group:
    """A table of ``columns``; ``widths`` fixes each column's width, so that Rich never cuts a figure to fit."""
    table = _Table(box=box.SIMPLE_HEAD)
    for number, column in enumerate(columns):
        width = None if widths is None else widths[number]
        table.add_column(
            column.header,
            justify="right" if column.right else "left",
            style=column.style,
            width=width,
            min_width=None if width else column.least,
            no_wrap=width is None,
        )
    for cells in zip(*(column.cells for column in columns)):
        table.add_row(*cells, style="dim" if cells and cells[0].plain.startswith("  ") else None)
    return _titled(title, table, caption)


def _titled(title: str, table: Table, caption: str = "") -> Group:
    """``table`` under its title and over its caption, which wrap at the console's width, not the table's."""
    parts: list[RenderableType] = [Text(title, style="bold"), table]
    if caption:
        parts.append(Text(caption, style="dim"))
    return Group(*parts)


def _least_width(header: str, cells: list[Cell], figures: bool) -> int:
    """The narrowest a column may get: a figure whole (its change may go to a second line), a heading's or a
    text's longest word; never cut short with an ellipsis."""
    widths = [_longest_word(header, *(cell.full for cell in cells))]
    if figures:
        widths += [len(cell.text) for cell in cells]
    return max(widths)


def _overhead(columns: int) -> int:
    """The columns a table's edges, dividers and padding take beside its cells."""
    return 3 * columns + 1


def _widths(columns: list[_Column], width: int) -> list[int] | None:
    """Each column's width so that ``columns`` fit ``width``: the narrowest each may get, then room handed out
    toward each one's natural width, values first; None where they do not fit even at their narrowest."""
    widths = [column.least for column in columns]
    room = width - _overhead(len(columns)) - sum(widths)
    if room < 0:
        return None
    for number in range(len(columns)):  # the labels first: a label on one line keeps a row on one line
        grant = min(room, max(columns[number].natural - widths[number], 0))
        widths[number] += grant
        room -= grant
    return widths


def _split(console: Console, columns: list[_Column], title: str, caption: str = "") -> list[Group]:
    """The label column with as many value columns as fit the console, the rest in continued tables; a row
    whose cells in a part are all blank is left out of that part. Nothing is cut."""
    label, *values = columns
    why = [values.pop()] if values and values[-1].header == "why" and values[-1].style == "dim" else []
    groups: list[list[_Column]] = []
    for column in values:
        if groups and _widths([label, *groups[-1], column, *why], console.width) is not None:
            groups[-1].append(column)
        else:
            groups.append([column])
    groups = groups or [[]]
    tables: list[Group] = []
    for number, group in enumerate(groups):
        part = [label, *group, *why]
        if len(groups) > 1:
            keep = [row for row in range(len(label.cells)) if any(column.cells[row].plain for column in group)]
            part = [replace(column, cells=tuple(column.cells[row] for row in keep)) for column in part]
        widths = _widths(part, console.width)
        if widths is None:  # too narrow even for one figure beside the labels: let the labels fold
            widths = [max(console.width - _overhead(len(part)) - sum(c.least for c in part[1:]), 4)]
            widths += [column.least for column in part[1:]]
        named = title if number == 0 else f"{title}, continued"
        tables.append(_built(part, named, caption if number == len(groups) - 1 else "", widths))
    return tables


def view_tables(console: Console, view: TableView) -> list[Group]:
    """``view`` laid out for the console's width: split into continued tables rather than cut."""
    return _split(console, _laid(view, range(len(view.columns))), view.title, view.caption)


# A why column narrower than this reads as a column of fragments: below it, a table is split.
_WHY_WIDTH = 24


def _consumer_tables(console: Console, view: TableView) -> list[Group]:
    """The consumers' table, or one table per consumer where the consumers side by side leave the why no room."""
    whole = _laid(view, range(len(view.columns)))
    widths = _widths(whole, console.width)
    # Only a view with a why needs room for it; without, the consumers stay side by side, split where they must.
    roomy = widths is not None and (not view.why or widths[-1] >= min(_WHY_WIDTH, whole[-1].natural))
    if len(view.columns) < 2 or roomy or (not view.why):
        return _split(console, whole, view.title, view.caption)
    tables: list[Group] = []
    for index, column in enumerate(view.columns):
        why = ["; ".join(words for owner, words in row.why_parts if owner in ("", column.header)) for row in view.rows]
        part = _laid(view, [index], why)
        keep = [row for row, cell in enumerate(part[1].cells) if cell.plain]
        part = [replace(c, cells=tuple(c.cells[row] for row in keep)) for c in part]
        tables += _split(console, part, f"{view.title}: {column.header}", view.caption)
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
    show(console, _heading(views.heading, f" · {result.wall_time_s:.2f}s ({rate:,.0f} msg/s)"))
    show(console, *view_tables(console, views.publishers))
    show(console, *_consumer_tables(console, views.consumers))
    if views.generator is None:
        show(console, *view_tables(console, views.latency))
    else:  # a real run's latency and generator tables carry captions: a line after each
        show(console, *view_tables(console, views.latency), Text())
        show(console, *view_tables(console, views.generator), Text())
    if views.chains is not None:
        show(console, *view_tables(console, views.chains), Text())
    if views.consistency is not None:
        show(console, *view_tables(console, views.consistency))
        if views.most_drifted:
            drifted = Table.grid()  # wrapped lines keep their indent
            drifted.add_column(width=2)
            drifted.add_column()
            for which, keys in views.most_drifted:
                drifted.add_row("", Text.assemble((f"most drifted {which}, expected → actual: ", "dim"), keys))
            show(console, drifted, Text())
    if views.invariants is not None:
        show(console, *view_tables(console, views.invariants))
    show(console, _verdict(views.verdict))


def render_replications(console: Console, replications: Replications) -> None:
    """Print each consumer's figures as a mean with its confidence interval, and how often runs were consistent."""
    views = replications_views(replications)
    show(console, _heading(views.heading, f" · {replications.wall_time_s:.2f}s"))
    show(console, *_consumer_tables(console, views.figures))
    if views.invariants is not None:
        show(console, *view_tables(console, views.invariants))
    show(console, _verdict(views.verdict))


class _Trimmed:
    """A renderable without the spaces Rich pads its lines with: piped output and logs keep no trailing blanks."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in console.render_lines(self.renderable, options, pad=False, new_lines=False):
            while line and not line[-1].text.rstrip():
                line.pop()
            if line:
                last = line[-1]
                line[-1] = Segment(last.text.rstrip(), last.style, last.control)
            yield from line
            yield Segment.line()


def show(console: Console, *renderables: RenderableType) -> None:
    """Print ``renderables`` at the console's width, one after another, without trailing spaces."""
    for renderable in renderables:
        console.print(_Trimmed(renderable))


# ---------------------------------------------------------------- a comparison
def render_comparison(console: Console, comparison: Comparison) -> None:
    """Print the variants side by side, each figure with its change from the first variant; where that does
    not fit the width, one row per variant with the key figures."""
    views = comparison_views(comparison)
    show(console, Text(views.title, style="bold"), Text(f"Variants run on {views.how}."))
    show(console, *view_tables(console, views.variants))
    abbreviated: dict[str, Row] = {}
    for consumer, view in views.consumers:
        wide = _laid(view, range(len(view.columns)))
        if sum(column.natural for column in wide) + _overhead(len(wide)) <= console.width:
            show(console, _built(wide, view.title, view.caption))
            continue
        rows = _compact_rows(view)
        abbreviated.update((row.short, row) for row in rows)
        title = f"{consumer}{f' (means; [low, high] {CONFIDENCE:.0%} confidence interval)' if views.replicated else ''}"
        show(console, *_split(console, _variants_as_rows(view, rows), title))
    if legend(abbreviated.values()):
        show(console, Text(legend(abbreviated.values()), style="dim"))
    show(console, Text(views.note, style="dim"))
    verdicts = Table.grid(padding=(0, 2))
    verdicts.add_column(no_wrap=True)
    verdicts.add_column()
    for name, cell in views.verdicts:
        verdicts.add_row(Text(name, style="bold"), Text(cell.text, style="green" if cell.tone == "good" else "red"))
    show(console, verdicts)


def _compact_rows(view: TableView) -> list[Row]:
    """The figures a narrow layout shows: those with a short label, less those that are 0 (or absent) under
    every variant, which make no difference here."""
    shown = [row for row in view.rows if row.short and any(cell.value for cell in row.cells)]
    return shown or [row for row in view.rows if row.short][:1]


def _variants_as_rows(view: TableView, rows: list[Row]) -> list[_Column]:
    """One row per variant, the figures (without their change) as columns."""
    names = [column.header for column in view.columns]
    columns = [_Column("variant", tuple(Text(name) for name in names), least=_longest_word("variant", *names))]
    for row in rows:
        cells = [Cell(cell.text, cell.value, cell.tone) for cell in row.cells]
        columns.append(
            _Column(row.short, tuple(_cell(cell) for cell in cells), True, _least_width(row.short, cells, True))
        )
    return columns


# ---------------------------------------------------------------- a calibration
def render_calibration(console: Console, run: CalibrationRun) -> None:
    """Print each consumer's figures against the scenario as declared, the latency figures after fitting, and
    after each which figures lie outside where one simulated run falls."""
    views = calibration_views(run)
    show(console, Text(views.title, style="bold"), Text(f"Simulated: {views.replications}.", style="dim"))
    for title, tables, outside in (
        ("The scenario as declared", views.declared, views.declared_outside),
        ("After fitting the scenario to the run", views.after_fit, views.after_fit_outside),
    ):
        show(console, Text(""), Text(title, style="bold underline"), Text(views.key, style="dim"))
        for view in tables:
            show(console, *view_tables(console, view))
        show(console, Text(outside, style="green" if outside.startswith(("All ", "The ")) else "red"))


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
    rows = []
    sources: list[str] = []
    for key, default, basis, url in preset_rows(name):
        if url and url not in sources:
            sources.append(url)
        rows.append((key, default, f"{basis} [{sources.index(url) + 1}]" if url else basis))
    keys, defaults, bases = zip(*rows)
    columns = [
        _Column("key", tuple(map(Text, keys)), least=max(map(len, keys))),
        _Column("default", tuple(map(Text, defaults)), least=_longest_word(*defaults)),
        _Column("basis", tuple(map(Text, bases)), least=_longest_word(*bases)),
    ]
    common = [key for key in COMMON_KEYS if key not in preset.defaults and key != "preset"]
    caption = f"Also accepted, with busim's defaults: {', '.join(common)} (docs/brokers.md)"
    show(console, *_split(console, columns, f"{preset.name}: {preset.title}; order kept {preset.ordering}", caption))
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
