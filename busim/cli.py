"""The ``busim`` command: parse options, call the API, render, set the exit code.

Exit codes: 0 for a completed run, 1 with ``--fail-on-violation`` when an
invariant of the scenario fails (without invariants: when the run departs
from exactly-once processing), 2 for bad input, 70 for a bug in busim, 141
when the reader of the output closes it early (``busim run ... | head``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn

import typer
from rich.console import Console as RichConsole
from rich.text import Text
from typer.core import TyperGroup

from busim.api import (
    DEFAULT_CALIBRATION_REPLICATIONS,
    MAX_MESSAGES,
    FinishedRun,
    affordable_workers,
    calibrate,
    check_comparable,
    check_names,
    check_size,
    compare,
    expected_group_messages,
    finished_run,
    memory_needed_bytes,
    read_real_run,
    simulate,
)
from busim.api import run as run_scenario
from busim.errors import BusimError, OverrideError, ScenarioError
from busim.loadtest.target import DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, StoreURLs, redact
from busim.report.console import (
    count_progress,
    presets_table,
    real_run_progress,
    render_calibration,
    render_comparison,
    render_outcome,
    render_preset,
    run_progress,
    simulation_progress,
)
from busim.report.files import (
    CALIBRATED_FILE,
    RESULTS_FILE,
    calibrated_scenario_yaml,
    comparison_json,
    results_json,
    write_comparison,
    write_run,
)
from busim.report.folder import is_comparison_folder, read_comparison_folder, read_run_folder
from busim.report.output import (
    CHART_SUFFIXES,
    DOCUMENT_NAMES,
    LATEST,
    OutputFolder,
    new_run_folder,
    point_latest,
    resolve_run_folder,
    run_folder_name,
)
from busim.report.series_csv import SERIES_FILE, write_series
from busim.report.stories import (
    ANOMALY_KINDS,
    DEFAULT_TOP,
    anomaly_kind,
    anomaly_orders,
    check_replay,
    check_request,
    render_explanation,
)
from busim.report.trace import write_trace
from busim.results import Replications, Result
from busim.scenario import LoadedScenario, Scenario, load_scenario
from busim.scenario.json_schema import SCHEMA_FILE
from busim.scenario.presets import PRESET_NAMES, PRESETS
from busim.scenario.schema import MAX_REPLICATIONS, unknown_preset
from busim.scenario.starter import (
    DEFAULT_NAME,
    DEFAULT_PRESET,
    check_preset,
    schema_reference,
    starter_path,
    starter_text,
)
from busim.scenario.units import format_duration
from busim.scenario.variants import Variant, load_variant, load_variants
from busim.version import __version__
from busim.words import counted
from busim.workers import SCHEDULER_ADDRESS_VARIABLE, InProcess, Workers, as_workers

EXIT_VIOLATION = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL_ERROR = 70  # sysexits' EX_SOFTWARE: not 1, which --fail-on-violation gives its own meaning
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_CLOSED_OUTPUT = 141  # 128 + SIGPIPE: the reader of busim's output stopped reading (busim run ... | head)
MAX_RUNS = 1_000
ROUGH_MESSAGES_PER_S = 50_000  # what a busy scenario simulates, with its analysis, on a laptop's core


class Console(RichConsole):
    """Rich's console for busim's output, which a reader may close early: see :class:`_Commands`."""

    def on_broken_pipe(self) -> None:
        # Rich would exit with 1, the code of a failed invariant.
        self.quiet = True
        raise BrokenPipeError


class _Commands(TyperGroup):
    """busim's commands, ending quietly where the reader of their output has closed it, as ``head`` does."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The output still buffered would fail again as Python exits: it goes nowhere instead.
            with suppress(OSError, ValueError):  # an output without a file descriptor, as in a test's runner
                nowhere = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(nowhere, sys.stdout.fileno())
                finally:
                    os.close(nowhere)
            raise typer.Exit(EXIT_CLOSED_OUTPUT) from None


app = typer.Typer(
    cls=_Commands,
    name="busim",
    help="Simulate an event bus and see what its latency, duplicates, losses and outages do to your services.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _report(error: BusimError) -> None:
    """Print a user's error on stderr, without a traceback.

    Scenario and override problems already start with where they come from
    (``FILE:LINE:COL:`` or ``--set KEY=VALUE:``); other errors get the program's name.
    """
    located = isinstance(error, ScenarioError | OverrideError)
    typer.echo(str(error) if located else f"busim: {error}", err=True)


class _OptionError(typer.BadParameter):
    """A bad option value, told in one line as every other bad input is: ``busim: --top: must be >= 1 (got 0)``."""

    def show(self, file: IO[Any] | None = None) -> None:
        where = self.param.opts[0] if self.param is not None and self.param.opts else None
        typer.echo(f"busim: {where}: {self.message}" if where else f"busim: {self.message}", err=True)


def _whole_number(minimum: int, maximum: int | None = None):
    """A parser for an integer option that says plainly what it wants."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise _OptionError(f"expected a whole number (got {text!r})") from None
        if value < minimum:
            raise _OptionError(f"must be >= {minimum} (got {value})")
        if maximum is not None and value > maximum:
            raise _OptionError(f"must be <= {maximum:,} (got {value})")
        return value

    return parse


def _claim(out: Path | None, runs: Path, command: str, inputs: list[Path]) -> OutputFolder:
    """The output folder of a run: ``out``, or a new folder of its own in ``runs`` (its ``latest`` the newest).

    Raises:
        OutputError: busim may not, or cannot, write there.
    """
    if out is not None:
        return OutputFolder.claim(out, command, inputs)
    return OutputFolder.claim(new_run_folder(runs), command, inputs, fresh=True)


def _write(
    output: OutputFolder,
    write: Callable[[Path], None],
    *,
    own_folder: bool = False,
    replaces: Callable[[str], bool] = lambda _name: True,
) -> list[Path]:
    """Write the files with ``write`` into ``output``'s staging folder and move them into place; their names.

    ``own_folder``: the folder was made for this run, and its ``latest``
    link now points at it. ``replaces`` is passed to :meth:`OutputFolder.commit`.
    On busim's own errors, the folder is left as it was and the command fails.
    """
    try:
        write(output.staging)
        written = output.commit(replaces)
    except BusimError as error:
        output.abandon()
        _fail(error)
    if own_folder:
        point_latest(output.path)
    return written


@contextmanager
def _told(output: OutputFolder) -> Iterator[None]:
    """busim's own errors while a command's runs run (a cluster out of reach, a run too large): the output
    folder left as it was, the error on stderr, exit 2."""
    try:
        yield
    except BusimError as error:
        output.abandon()
        _fail(error)


def _deliver(
    console: Console,
    output: OutputFolder,
    own_folder: bool,
    document: str,
    write: Callable[[Path], None],
    render: Callable[[], None],
    as_json: bool,
    show: bool,
) -> None:
    """Write a command's files with ``write``; then print its JSON ``document`` alone (--json), or what
    ``render`` prints and the files written (unless --quiet)."""
    written = _write(output, write, own_folder=own_folder)
    if as_json:
        sys.stdout.write(document)
    elif show:
        render()
        console.print(_wrote(written, output.path, own_folder), style="dim", highlight=False, soft_wrap=True)


class _Terminated(Exception):
    """SIGTERM arrived: stop as for Ctrl-C."""


def _terminate(_signal: int, _frame: object) -> None:
    raise _Terminated


@contextmanager
def _interruptible(output: OutputFolder) -> Iterator[None]:
    """On Ctrl-C or SIGTERM: say what was kept, leave ``output`` as it was before (or complete), exit 130 or 143."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: nothing to install
        previous = None
    try:
        yield
    except (KeyboardInterrupt, _Terminated) as stop:
        code = EXIT_TERMINATED if isinstance(stop, _Terminated) else EXIT_INTERRUPTED
        if output.committed:
            kept = f"the results in {output.path} are complete"
        else:
            output.abandon()
            # A folder made for this run is gone again; one that was there is left as it was.
            kept = (
                f"nothing was written, and {output.path} is as it was"
                if output.path.exists()
                else "nothing was written"
            )
        typer.echo(f"busim: {'terminated' if code == EXIT_TERMINATED else 'interrupted'}; {kept}", err=True)
        raise typer.Exit(code) from None
    finally:
        output.abandon()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKMGT]i?B|B)?\s*$")
_BYTES_PER_UNIT = {
    None: 1,
    "B": 1,
    **{f"{prefix}B": 1000**power for power, prefix in enumerate("kMGT", 1)},
    **{f"{prefix}iB": 1024**power for power, prefix in enumerate("KMGT", 1)},
    "KB": 1000,
}


def _memory_size(text: str) -> float:
    """An amount of memory as people write it: ``800MB``, ``16GB``, ``2GiB`` (a bare number is bytes)."""
    match = _SIZE.match(text)
    if match is None:
        raise _OptionError(f"expected an amount of memory such as 800MB, 16GB or 2GiB (got {text!r})")
    return float(match.group(1)) * _BYTES_PER_UNIT[match.group(2)]


MaxMemory = Annotated[
    float | None,
    typer.Option(
        "--max-memory",
        help="The memory a run may use, such as 16GB (default: what the machine has available); a run that "
        "would need more is refused before it starts.",
        parser=_memory_size,
        metavar="SIZE",
    ),
]
MaxRuns = Annotated[
    int,
    typer.Option(
        "--max-runs",
        help="Refuse more simulations than this in one command (replications, variants, their product).",
        parser=_whole_number(1),
        metavar="N",
    ),
]


WorkerCount = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="Run simulations in this many processes at once (default: one per core); results are the same "
        "whatever the number.",
        parser=_whole_number(1),
        metavar="N",
        show_default=False,
    ),
]
Cluster = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        help="Run the simulations on the Dask cluster whose scheduler is at this address instead of on this "
        "machine, unless --workers is given (needs pip install 'busim[cluster]'; docs/capacity.md#on-a-cluster).",
        envvar=SCHEDULER_ADDRESS_VARIABLE,
        metavar="tcp://HOST:8786",
        show_default=False,
    ),
]


def batch_workers(
    workers: int | None, cluster: str | None, scenarios: list[Scenario], runs: int, max_memory: float | None
) -> AbstractContextManager[Workers]:
    """The workers for a command's ``runs`` runs of ``scenarios``: ``--workers`` (None: one per core, where
    the batch is work enough) or, without it, ``--cluster``. Started before the command's progress bar, so
    that workers forked from this process copy none of its threads.

    Raises:
        BusimError: the cluster cannot be used.
    """
    if runs < 2 or not scenarios:
        return nullcontext(InProcess())
    largest = max(scenarios, key=memory_needed_bytes)
    return as_workers(
        affordable_workers(workers, largest, max_memory, runs), cluster if workers is None else None, runs
    )


def _check_runs(runs: int, max_runs: int, messages_per_run: float, what: str) -> None:
    """Refuse more runs than ``max_runs``, saying what they would cost.

    Raises:
        BusimError: ``runs`` exceeds ``max_runs``.
    """
    if runs <= max_runs:
        return
    total = runs * messages_per_run
    hours = total / ROUGH_MESSAGES_PER_S / 3600
    raise BusimError(
        f"{what} would be {runs:,} simulations of about {messages_per_run:,.0f} messages each, "
        f"{total:,.0f} messages in all: about {hours:,.1f} hours at {ROUGH_MESSAGES_PER_S:,} messages a second; "
        f"the limit is {max_runs:,} (raise it with --max-runs)"
    )


def _fail(error: BusimError) -> NoReturn:
    _report(error)
    raise typer.Exit(EXIT_BAD_INPUT)


def _wrote(paths: list[Path], folder: Path, latest: bool = False) -> Text:
    """What a command wrote into ``folder``: its documents by name, its charts counted; ``latest``:
    the folder is its scenario's newest run."""
    charts = [path for path in paths if path.suffix in CHART_SUFFIXES]
    names = [path.name for path in paths if path not in charts]
    documents = sorted(names, key=lambda name: DOCUMENT_NAMES.index(name) if name in DOCUMENT_NAMES else len(names))
    if charts:
        kinds = sorted({path.suffix[1:].upper() for path in charts})
        count = len({path.stem for path in charts})
        documents.append(f"{counted(count, 'chart')} ({', '.join(kinds)})")
    where = f"{folder} ({folder.parent / LATEST})" if latest else str(folder)
    return Text(f"Wrote {', '.join(documents)} in {where}")  # as written: a folder's name may hold [/] or :smile:


def _completing(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    """Shell completion for an option that takes one of ``choices``."""
    return lambda incomplete: [choice for choice in choices if choice.startswith(incomplete)]


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"busim {__version__}")
        raise typer.Exit()


@app.callback(epilog="New here? busim init writes a scenario to start from; busim run FILE simulates it.")
def main_options(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_show_version, is_eager=True)
    ] = False,
) -> None:
    """Simulate an event bus and see what its latency, duplicates, losses and outages do to your services."""


@app.command()
def init(
    name: Annotated[
        str | None,
        typer.Argument(
            help=f"The scenario's name; the file is NAME.yaml (default: {DEFAULT_NAME}).",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    preset: Annotated[
        str,
        typer.Option(
            "--preset",
            help="The broker preset (busim presets lists them).",
            metavar="PRESET",
            autocompletion=_completing(PRESET_NAMES),
        ),
    ] = DEFAULT_PRESET,
) -> None:
    """Write a starter scenario, commented key by key, that runs as it is."""
    try:
        check_preset(preset)
        path = starter_path(name)
        text = starter_text(path.stem, preset, schema_reference(path, SCHEMA_FILE))
        path.parent.mkdir(parents=True, exist_ok=True)  # NAME may be a path, into folders not made yet
        with path.open("x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        _fail(BusimError(f"{path} already exists; give another NAME, or move it away first"))
    except OSError as error:
        _fail(BusimError(f"cannot write {path}: {error.strerror or error}"))
    except BusimError as error:
        _fail(error)
    typer.echo(f"Wrote {path}: run it with busim run {path}")


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="The scenario file (YAML).", show_default=False, metavar="FILE")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder.", show_default="runs/<scenario name>/", metavar="DIR"),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", help="Seed for this run, instead of the scenario's.", parser=_whole_number(0), metavar="N"
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a scenario key, e.g. broker.duplication=0.01 or consumers.inventory.instances=8. "
            "Repeatable.",
        ),
    ] = None,
    max_messages: Annotated[
        int,
        typer.Option(
            "--max-messages",
            help="Refuse runs whose consumer groups would handle more messages, or serve more reads, than this "
            "(memory guard).",
            parser=_whole_number(1),
            metavar="N",
        ),
    ] = MAX_MESSAGES,
    max_memory: MaxMemory = None,
    max_runs: MaxRuns = MAX_RUNS,
    workers: WorkerCount = None,
    cluster: Cluster = None,
    replications: Annotated[
        int | None,
        typer.Option(
            "--replications",
            help="Run this many replications on seeds spawned from the seed, and report every figure as a mean "
            "with its 95% confidence interval (default: the scenario's replications, 1).",
            parser=_whole_number(1, MAX_REPLICATIONS),
            metavar="N",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json to stdout and nothing else.")] = False,
    charts: Annotated[
        bool, typer.Option("--charts/--no-charts", help="Write the charts (PNG and SVG) into the output folder.")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    fail_on_violation: Annotated[
        bool,
        typer.Option(
            "--fail-on-violation",
            help="Exit with code 1 when an invariant of the scenario fails (in any replication), naming it on "
            "stderr; for a scenario without invariants, when the run departs from exactly-once processing "
            "(drift, duplicate effects, losses, dead letters, entries left pending unprocessed, wrong rejections, "
            "or work left when it stopped).",
        ),
    ] = False,
    trace: Annotated[
        bool,
        typer.Option(
            "--trace",
            help="Also write every message's deliveries: trace.jsonl, and trace.json for Perfetto or chrome://tracing.",
        ),
    ] = False,
    variant: Annotated[
        str | None,
        typer.Option(
            "--variant",
            help="Run this variant of the file's variants: block (the ones busim compare FILE runs), after any --set.",
            metavar="NAME",
        ),
    ] = None,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker",
            help="Run the scenario for real, in wall-clock time, against this broker instead of simulating it: "
            "amqp://USER:PASSWORD@HOST:5672/ (RabbitMQ), redis://HOST:6379/0 (Redis Streams) or nats://HOST:4222 "
            "(NATS JetStream). See docs/real-brokers.md.",
            metavar="URL",
        ),
    ] = None,
    state_redis: Annotated[
        str,
        typer.Option("--state-redis", help="With --broker: the Redis where consumers keep their state.", metavar="URL"),
    ] = DEFAULT_REDIS_URL,
    state_postgres: Annotated[
        str,
        typer.Option(
            "--state-postgres",
            help="With --broker: the PostgreSQL where consumers keep state that needs transactions "
            "(dedup atomic with the effects).",
            metavar="URL",
        ),
    ] = DEFAULT_POSTGRES_URL,
) -> None:
    """Simulate a scenario (or, with --broker, run it against a real broker), print its results and write them to the
    output folder."""
    console = Console()
    try:
        loaded = load_variant(file, variant, overrides or []) if variant else load_scenario(file, overrides or [])
        if broker is not None:
            _check_real_options(loaded, broker, replications)
        check_size(loaded.scenario, max_messages, max_memory)
        count = replications if replications is not None else loaded.scenario.replications
        _check_runs(count, max_runs, expected_group_messages(loaded.scenario), counted(count, "replication"))
        if trace and count > 1:
            how = "drop --replications" if replications is not None else "add --replications 1"
            raise BusimError(
                f"--trace records a single run, not {count} replications; {how} (and --seed for one replication's seed)"
            )
        output = _claim(out, Path("runs") / run_folder_name(loaded), f"busim run {file}", [file])
    except BusimError as error:
        _fail(error)
    show = not (quiet or as_json)
    if not quiet:
        tell_left_out([(None, loaded.left_out)])
    if broker is not None:
        stores = StoreURLs(redis=state_redis, postgres=state_postgres)
        _run_real(
            console, loaded, broker, stores, seed, output, show, as_json, charts, trace, out is None, fail_on_violation
        )
        return
    with _interruptible(output):
        with (
            _told(output),
            batch_workers(workers, cluster, [loaded.scenario], count, max_memory) as pool,
            run_progress(console, loaded.scenario, count, enabled=show and console.is_terminal) as progress,
        ):
            result = run_scenario(
                loaded,
                count,
                seed,
                progress.on_run,
                progress.on_progress if count == 1 else None,
                max_messages=max_messages,
                max_memory_bytes=max_memory,
                workers=pool,
            )
        text = results_json(result)
        _deliver(
            console,
            output,
            out is None,
            text,
            lambda staging: _write_run(result, text, staging, charts, trace),
            lambda: render_outcome(console, result),
            as_json,
            show,
        )
    if fail_on_violation and result.failures:
        for failure in result.failures:
            typer.echo(f"busim: {failure}", err=True)
        raise typer.Exit(EXIT_VIOLATION)


def _check_real_options(loaded: LoadedScenario, broker: str, replications: int | None) -> None:
    """Refuse what a real run cannot do before anything starts, then check the scenario for the broker."""
    from busim.loadtest.api import check_real  # the brokers' clients load only for a real run

    if replications is not None and replications > 1:
        raise BusimError("--broker runs the scenario once, for real; drop --replications")
    check_real(loaded, broker)


def _run_real(
    console: Console,
    loaded: LoadedScenario,
    broker: str,
    stores: StoreURLs,
    seed: int | None,
    output: OutputFolder,
    show: bool,
    as_json: bool,
    charts: bool,
    trace: bool,
    own_folder: bool,
    fail_on_violation: bool,
) -> None:
    """``busim run --broker``: run for real, show it live, write the same files as a simulated run.

    The first Ctrl-C (or SIGTERM) stops publishing; the run drains for at most its drain_timeout, writes its
    results marked partial and exits 130 (143). A second Ctrl-C stops at once, writing nothing. Either way
    the run deletes what it created on the broker and in the stores.
    """
    from busim.loadtest.api import load_test_async

    for client in ("aio_pika", "aiormq", "nats", "redis", "psycopg"):
        # The clients log what they meet (a refused connection, a reconnect); the run reports it in its own words.
        logging.getLogger(client).setLevel(logging.CRITICAL)
    scenario = loaded.scenario
    signalled: list[int] = []

    async def main() -> Result:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def interrupted(signal_number: int) -> None:
            signalled.append(signal_number)
            if len(signalled) == 1:
                stop.set()
                drain = format_duration(scenario.drain_timeout)
                typer.echo(
                    f"busim: stopping: no more publishing; draining for at most {drain}, then the results, marked "
                    "partial (Ctrl-C again to stop now, writing nothing)",
                    err=True,
                )
            else:
                if len(signalled) == 2:
                    typer.echo("busim: stopping now; deleting what the run created first", err=True)
                task.cancel()

        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, interrupted, number)
        with real_run_progress(console, scenario, redact(broker), enabled=show and console.is_terminal) as on_live:
            return await load_test_async(loaded, broker, seed, stores, on_live, stop)

    with _interruptible(output):
        try:
            result = asyncio.run(main())
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None
        except BusimError as error:  # an unreachable broker or store, an instance that failed
            output.abandon()
            _fail(error)
        text = results_json(result)
        written = _write(
            output, lambda staging: _write_run(result, text, staging, charts, trace), own_folder=own_folder
        )
    if as_json:
        sys.stdout.write(text)
    elif show:
        render_outcome(console, result)
        console.print(_wrote(written, output.path, own_folder), style="dim", highlight=False, soft_wrap=True)
    if signalled:
        code = EXIT_TERMINATED if signalled[0] == signal.SIGTERM else EXIT_INTERRUPTED
        typer.echo(
            f"busim: {'terminated' if code == EXIT_TERMINATED else 'interrupted'}; the partial results are in "
            f"{output.path}",
            err=True,
        )
        raise typer.Exit(code)
    if fail_on_violation and result.failures:
        for failure in result.failures:
            typer.echo(f"busim: {failure}", err=True)
        raise typer.Exit(EXIT_VIOLATION)


def _write_run(result: Result | Replications, results_text: str, folder: Path, charts: bool, trace: bool) -> None:
    """A run's files: results.json and scenario.yaml, and for a single run its series, report, charts and trace."""
    write_run(result, folder, results_text)
    if isinstance(result, Result) and result.real is not None and result.record is not None:
        from busim.loadtest.archive import write_record  # a real run cannot be simulated again: keep its record

        recorded = result.real.generator.recorded
        assert recorded is not None, "a run's own figures say which copies its record holds"
        write_record(result.record, folder, recorded)
    if isinstance(result, Result):
        from busim.report.run_report import write_report  # matplotlib loads only here

        write_series(result, folder)
        write_report(result, folder, charts)
        if trace and result.record is not None:
            write_trace(result.record, folder)


@app.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Scenario files to check.", show_default=False, metavar="FILE...")
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override a key in every file before checking. Repeatable."),
    ] = None,
) -> None:
    """Check scenario files and report every problem, with its line and key."""
    failed = False
    for file in files:
        try:
            loaded = load_scenario(file, overrides or [])
            if loaded.scenario.variants:
                load_variants([file], [], overrides or [])  # each variant must be a valid scenario too
        except BusimError as error:
            failed = True
            _report(error)
        else:
            typer.echo(f"{file}: ok")
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


def tell_left_out(left_out: list[tuple[str | None, tuple[str, ...]]]) -> None:
    """Say on stderr what the overrides leave out of the file, for each ``(name, left out)`` of the scenarios
    run: once when every one leaves out the same, else for each that leaves out anything, naming it
    (``variant broker.preset=kafka``)."""
    if len({out for _, out in left_out}) == 1:
        left_out = [(None, left_out[0][1])]
    for name, out in left_out:
        if out:
            named = f" ({name})" if name else ""
            typer.echo(f"busim: the overrides leave out {'; '.join(out)}{named}", err=True)


@app.command(name="compare")
def compare_command(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Scenario files (one to vary, or several to compare) and run folders (finished runs, "
            "simulated or real, compared as they ran).",
            metavar="PATH...",
        ),
    ],
    vary: Annotated[
        list[str] | None,
        typer.Option(
            "--vary",
            metavar="KEY=V1,V2",
            help="Run the file once per value, e.g. broker.preset=kafka,rabbitmq, or per value of a range: "
            "1..8 (every integer), 1..64:x2 (1, 2, 4, ..., 64), 100/s..5000/s:10 (10 values, both ends "
            "included), 0..0.1:+0.02, 10ms..1s:x10. Several make a grid. Not for run folders.",
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a scenario key in every variant simulated (not in run folders); a broker key of "
            "one preset only in the --vary points of the presets that take it. Repeatable.",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="The seed every variant shares.", parser=_whole_number(0), metavar="N"),
    ] = None,
    replications: Annotated[
        int | None,
        typer.Option(
            "--replications",
            help="Replicate every variant on the same N seeds and compare means with confidence intervals.",
            parser=_whole_number(1, MAX_REPLICATIONS),
            metavar="N",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder.", show_default="runs/compare-<scenario name>/", metavar="DIR"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print compare.json to stdout and nothing else.")] = False,
    charts: Annotated[
        bool, typer.Option("--charts/--no-charts", help="Write the comparison charts (PNG and SVG).")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    max_memory: MaxMemory = None,
    max_runs: MaxRuns = MAX_RUNS,
    workers: WorkerCount = None,
    cluster: Cluster = None,
) -> None:
    """Run variants of a scenario on the same seeds and show them side by side, beside finished runs.

    The variants are several files, a grid of --vary values, or the variants: block of one file. A run
    folder (busim run's output, simulated or against a real broker) is read back as it ran, not simulated
    again; each column then says whether it is real or simulated.
    """
    console = Console()
    try:
        scenario_files = [_scenario_file(path) for path in files if not path.is_dir()]
        folders = [path for path in files if path.is_dir()]
        if not scenario_files:
            _check_for_scenarios(vary, overrides, seed, replications)
        finished = {path: finished_run(path) for path in folders}
        variants = (
            load_variants(scenario_files, vary or [], overrides or [], max_runs, finished_runs=len(folders))
            if scenario_files
            else []
        )
        entries = _in_given_order(files, variants, finished)
        if len(entries) < 2:
            names = ", ".join(run.name for run in finished.values())
            raise BusimError(f"a comparison needs two or more variants (got {names})")
        check_names(entries)
        check_comparable([(variant.name, variant.loaded.scenario) for variant in variants] + _scenarios(finished))
        for variant in variants:
            check_size(variant.loaded.scenario, MAX_MESSAGES, max_memory)
        count = replications if replications is not None else _replications(variants)
        largest = max((expected_group_messages(variant.loaded.scenario) for variant in variants), default=0)
        _check_runs(
            len(variants) * count,
            max_runs,
            largest,
            f"{counted(len(variants), 'variant')} x {counted(count, 'replication')}",
        )
        first = variants[0].loaded.scenario if variants else next(iter(finished.values())).outcome.scenario
        runs_folder = Path("runs") / f"compare-{first.name}"
        inputs = scenario_files + [Path(run.folder) / RESULTS_FILE for run in finished.values() if run.folder]
        output = _claim(out, runs_folder, f"busim compare {' '.join(map(str, files))}", inputs)
    except BusimError as error:
        _fail(error)
    show = not (quiet or as_json)
    if not quiet:
        tell_left_out([(f"variant {variant.name}", variant.loaded.left_out) for variant in variants])
    runs = len(variants) * count
    with _interruptible(output):
        with (
            _told(output),
            batch_workers(workers, cluster, [v.loaded.scenario for v in variants], runs, max_memory) as pool,
            count_progress(console, "comparing", runs, enabled=show and console.is_terminal) as bar,
        ):
            comparison = compare(
                entries,
                seed,
                replications,
                on_run=bar.run_done if bar else None,
                max_memory_bytes=max_memory,
                workers=pool,
            )

        text = comparison_json(comparison)

        def write(staging: Path) -> None:
            write_comparison(comparison, staging, text)
            from busim.report.run_report import write_comparison_report  # matplotlib loads only for reports

            write_comparison_report(comparison, staging, charts)

        _deliver(
            console, output, out is None, text, write, lambda: render_comparison(console, comparison), as_json, show
        )


def _check_for_scenarios(
    vary: list[str] | None, overrides: list[str] | None, seed: int | None, replications: int | None
) -> None:
    """Refuse the options that change a simulation when every variant is a run folder: nothing would use them.

    Raises:
        BusimError: one such option is given.
    """
    given = [
        option
        for option, value in (
            ("--vary", vary),
            ("--set", overrides),
            ("--seed", seed),
            ("--replications", replications),
        )
        if value is not None and value != []
    ]
    if given:
        raise BusimError(
            f"{given[0]}: applies to scenario files, and every one given is a run folder, compared as it ran; "
            "give a scenario file to simulate beside them, or drop it"
        )


def _scenario_file(path: Path) -> Path:
    """``path``, given to busim compare and not a folder: a scenario file.

    Raises:
        BusimError: it does not exist, or its name does not end in .yaml or .yml (results.json, a chart).
    """
    if not path.exists() and not path.is_symlink():
        raise BusimError(f"{path}: no such scenario file or run folder")
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise BusimError(
            f"{path}: neither a scenario file (.yaml) nor a run folder; give scenario files and the output "
            "folders of busim run"
        )
    return path


def _in_given_order(files: list[Path], variants: list[Variant], finished: dict[Path, FinishedRun]) -> list[Any]:
    """The variants to simulate and the finished runs, as the command line gives them: one file's variants
    where the file stands, several files' one each."""
    several = len(files) - len(finished) > 1
    pending = iter(variants)
    entries: list[Any] = []
    for path in files:
        if path in finished:
            entries.append(finished[path])
        elif several:
            entries.append(next(pending))
        else:
            entries.extend(pending)
    return entries


def _scenarios(finished: dict[Path, FinishedRun]) -> list[tuple[str, Scenario]]:
    return [(run.name, run.outcome.scenario) for run in finished.values()]


def _replications(variants: list[Variant]) -> int:
    """How many replications the simulated variants run by default: the first one's (1 with none)."""
    return variants[0].loaded.scenario.replications if variants else 1


@app.command(name="report")
def report_command(
    folder: Annotated[Path, typer.Argument(help="The output folder of a busim run.", metavar="RUN_DIR")],
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="Draw the charts (PNG and SVG) too.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Draw a run's or a comparison's charts and reports again from its results, without simulating.

    Also writes a run's series.csv if the folder lacks it.
    """
    from busim.report.run_report import is_report_file, write_comparison_report, write_report

    folder = resolve_run_folder(folder)
    try:
        if is_comparison_folder(folder):
            comparison = read_comparison_folder(folder)

            def write(staging: Path) -> None:
                write_comparison_report(comparison, staging, charts)
        else:
            result = read_run_folder(folder, "report").result
            missing_series = not (folder / SERIES_FILE).exists()  # from a busim before series.csv

            def write(staging: Path) -> None:
                write_report(result, staging, charts)
                if missing_series:
                    write_series(result, staging)

        output = OutputFolder.claim(folder, f"busim report {folder}")
    except BusimError as error:
        _fail(error)
    with _interruptible(output):
        written = _write(output, write, replaces=is_report_file)
    if not quiet:
        Console().print(_wrote(written, output.path), style="dim", highlight=False, soft_wrap=True)


@app.command(name="calibrate")
def calibrate_command(
    folder: Annotated[
        Path, typer.Argument(help="The output folder of a real run (busim run FILE --broker URL).", metavar="RUN_DIR")
    ],
    replications: Annotated[
        int,
        typer.Option(
            "--replications",
            help="Simulate the scenario on N seeds, each publishing the real run's messages.",
            parser=_whole_number(2, MAX_REPLICATIONS),
            metavar="N",
        ),
    ] = DEFAULT_CALIBRATION_REPLICATIONS,
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="Draw the charts (PNG and SVG) too.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Set a real run's figures beside simulations of its scenario: how close is the simulation?

    Simulates the scenario as declared, then fitted to the run (the broker's latency, the consumers'
    per-message cost and restart time as measured), and writes calibration.md, calibration.html,
    calibration.json, charts and calibrated.yaml (the fitted scenario) into the run's folder.
    """
    from busim.report.calibration import is_calibration_file, write_calibration

    console = Console()
    show = not quiet
    try:
        folder, _, _ = read_real_run(folder)  # before claiming it: claiming makes a missing folder
        output = OutputFolder.claim(folder, f"busim calibrate {folder}")
    except BusimError as error:
        _fail(error)
    with _interruptible(output):
        with count_progress(console, "calibrating", 2 * replications, enabled=show and console.is_terminal) as bar:
            try:
                run = calibrate(folder, replications, on_run=bar.run_done if bar else None)
            except BusimError as error:
                _fail(error)

        def write(staging: Path) -> None:
            write_calibration(run, staging, charts)
            (staging / CALIBRATED_FILE).write_text(calibrated_scenario_yaml(run.fitted, str(folder)), encoding="utf-8")

        written = _write(output, write, replaces=lambda name: name == CALIBRATED_FILE or is_calibration_file(name))
    if show:
        render_calibration(console, run)
        console.print(_wrote(written, output.path), style="dim", highlight=False, soft_wrap=True)


@app.command()
def explain(
    folder: Annotated[Path, typer.Argument(help="The output folder of a busim run.", metavar="RUN_DIR")],
    message: Annotated[
        int | None,
        typer.Option("--message", help="Tell this message's story.", parser=_whole_number(0), metavar="ID"),
    ] = None,
    anomaly: Annotated[
        str | None,
        typer.Option(
            "--anomaly",
            help="Tell the stories of the messages with this anomaly, worst first; each kind in its order: "
            f"{anomaly_orders()}. Ties go in publish order.",
            metavar="KIND",
            autocompletion=_completing(ANOMALY_KINDS),
        ),
    ] = None,
    consumer: Annotated[
        str | None,
        typer.Option("--consumer", help="Only this consumer group (default: all).", metavar="NAME"),
    ] = None,
    top: Annotated[
        int,
        typer.Option(
            "--top",
            help="How many stories --anomaly tells, the worst first in the kind's order (see --anomaly).",
            parser=_whole_number(1),
            metavar="N",
        ),
    ] = DEFAULT_TOP,
    max_messages: Annotated[
        int,
        typer.Option(
            "--max-messages",
            help="Refuse runs whose consumer groups would handle more messages than this (memory guard).",
            parser=_whole_number(1),
            metavar="N",
        ),
    ] = MAX_MESSAGES,
) -> None:
    """Tell what happened to a run's messages, one by one, by simulating its folder's scenario.yaml again.

    Without --message or --anomaly, count the messages with each anomaly per consumer.
    """
    try:
        folder = resolve_run_folder(folder)
        run_folder = read_run_folder(folder, "explain")
        anomaly = anomaly_kind(anomaly) if anomaly is not None else None
        check_request(run_folder.result, message, anomaly, consumer)
        if run_folder.result.mode == "real":
            from busim.loadtest.api import replayed  # a real run kept its record: nothing to simulate
            from busim.loadtest.archive import read_record

            result = replayed(read_record(folder, run_folder.loaded.scenario), run_folder.result)
        else:
            status = Console(stderr=True)
            with simulation_progress(status, run_folder.loaded.scenario, enabled=status.is_terminal) as on_progress:
                result = simulate(run_folder.loaded, on_progress=on_progress, max_messages=max_messages)
        check_replay(result, run_folder.result, folder)
    except BusimError as error:
        _fail(error)
    render_explanation(Console(), result, folder, message, anomaly, consumer, top)


@app.command()
def presets(
    name: Annotated[
        str | None,
        typer.Argument(
            help="A preset to show in full.",
            show_default=False,
            metavar="PRESET",
            autocompletion=_completing(PRESET_NAMES),
        ),
    ] = None,
) -> None:
    """List the broker presets, or show one preset's keys, defaults and their sources."""
    console = Console()
    if name is None:
        console.print(presets_table())
        return
    if name not in PRESETS:
        _fail(BusimError(unknown_preset(name)))
    render_preset(console, name)


@app.command()
def schema(
    path: Annotated[
        bool, typer.Option("--path", help="Print where the schema file is, for an editor's settings, instead.")
    ] = False,
) -> None:
    """Print the JSON Schema of scenario files, with which editors complete and check keys."""
    typer.echo(str(SCHEMA_FILE) if path else SCHEMA_FILE.read_text(encoding="utf-8"), nl=path)


import busim.planning_cli  # noqa: E402, F401  (registers sweep and capacity, which share this module's helpers)


def main() -> None:
    """The console script: run the app; a bug keeps its traceback and exits with its own code."""
    try:
        app()
    except Exception:
        traceback.print_exc()
        print(
            "busim: internal error: this is a bug in busim, not in your scenario; "
            "please report it with the traceback above",
            file=sys.stderr,
        )
        sys.exit(EXIT_INTERNAL_ERROR)
