"""The folders busim writes into: its own, one run at a time, written whole or not at all.

A folder belongs to busim when busim made it: its manifest
(:data:`MANIFEST_FILE`) lists every file busim wrote there, with the hash of
what it wrote. busim refuses a folder that holds other files and no
manifest, never writes over a file it did not write or that was changed
since, and never over the scenario it is reading. Writing into its own
folder again replaces exactly the files of the earlier run.

A run claims its folder before it simulates (so a folder it cannot write is
found at once): it takes the folder's lock (:data:`LOCK_FILE`, so that a
second run into the same folder is refused, naming the first) and a staging
folder inside it. Every file is written there first. Committing moves them
into place, results.json last, with the interrupt signals held back: a
folder with results.json is complete, and an interrupted run leaves the
folder as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from busim.errors import OutputError
from busim.scenario import LoadedScenario

MANIFEST_FILE = ".busim-manifest.json"
LOCK_FILE = ".busim.lock"
STAGING_PREFIX = ".busim-staging-"
LATEST = "latest"  # in a scenario's folder of runs: the link to the newest
MANIFEST_SCHEMA = "busim.manifest/1"
# The files that say a folder is complete: each command's own document, moved into place last.
RESULTS_LAST = ("results.json", "compare.json", "sweep.json", "capacity.json")
# The documents busim writes (besides charts, .png and .svg); what earlier versions wrote without a
# manifest is taken over by these names.
DOCUMENT_NAMES = (
    "results.json",
    "scenario.yaml",
    "series.csv",
    "report.md",
    "report.html",
    "trace.jsonl",
    "trace.json",
    "compare.json",
    "compare.md",
    "compare.html",
    "sweep.json",
    "sweep.csv",
    "sweep.md",
    "capacity.json",
    "capacity.md",
)
CHART_SUFFIXES = (".png", ".svg")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _failed(folder: Path, error: OSError) -> OutputError:
    return OutputError(f"cannot write the results to {folder}: {error.strerror or error}")


@dataclass(frozen=True)
class Manifest:
    """What busim wrote in a folder: file name -> SHA-256 of its content (None: taken over unhashed)."""

    files: dict[str, str | None]
    command: str = ""
    written_at: str = ""

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        """The folder's manifest, or None when it has none.

        Raises:
            OutputError: there is a manifest, but not one busim could have written.
        """
        path = folder / MANIFEST_FILE
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise OutputError(f"{path}: cannot read busim's list of the files it wrote here ({error})") from None
        files = document.get("files") if isinstance(document, dict) else None
        if document.get("schema") != MANIFEST_SCHEMA or not isinstance(files, dict):
            raise OutputError(f"{path}: not a list of files busim wrote; remove it or choose another folder")
        return cls(
            files={str(name): digest if isinstance(digest, str) else None for name, digest in files.items()},
            command=str(document.get("command", "")),
            written_at=str(document.get("written_at", "")),
        )

    def write(self, folder: Path) -> None:
        document = {
            "schema": MANIFEST_SCHEMA,
            "command": self.command,
            "written_at": self.written_at,
            "files": dict(sorted(self.files.items())),
        }
        _write_atomically(folder / MANIFEST_FILE, json.dumps(document, indent=2) + "\n")


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _busim_results(path: Path) -> bool:
    """Whether the folder's results.json, compare.json, sweep.json or capacity.json is a document busim wrote."""
    for name in RESULTS_LAST:
        try:
            document = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and str(document.get("schema", "")).startswith("busim."):
            return True
    return False


def _check_names(path: Path, owned: dict[str, str | None], names: Iterable[str]) -> None:
    """Refuse to write ``names`` where one is a file busim did not write."""
    for name in names:
        if (path / name).exists() and name not in owned:
            raise OutputError(f"{path / name} was not written by busim; move it away, or choose another --out")


def _infrastructure(name: str) -> bool:
    """busim's own bookkeeping in a folder: never a result, never the user's."""
    return name in (MANIFEST_FILE, LOCK_FILE) or name.startswith(STAGING_PREFIX) or name.endswith(".tmp")


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs; they are delivered when it ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class OutputFolder:
    """A folder busim has claimed for one run's files: locked, with a staging folder to write into.

    Use :meth:`claim`, write into :attr:`staging`, then :meth:`commit`; or
    :meth:`abandon` (also on leaving a ``with`` block by an exception), which
    leaves the folder as it was.
    """

    def __init__(self, path: Path, command: str, created: bool, lock: int, manifest: Manifest | None) -> None:
        self.path = path
        self.command = command
        self._created = created  # busim made the folder for this run: abandoning it removes it
        self._lock = lock
        self._manifest = manifest
        self.staging = path / f"{STAGING_PREFIX}{os.getpid()}"
        self._done = False
        self._committed = False

    # ------------------------------------------------------------ claiming
    @classmethod
    def claim(cls, path: Path, command: str, inputs: Iterable[Path] = (), fresh: bool = False) -> OutputFolder:
        """Claim ``path`` for a run: create it if need be, check that busim may write there, lock it.

        ``inputs`` are files the run reads, never to be written over;
        ``fresh``: ``path`` was just made for this run (by :func:`new_run_folder`).

        Raises:
            OutputError: the folder holds files busim did not write, would
                lose an input or a changed file, is being written by another
                run, or cannot be created or written.
        """
        created = fresh or not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _failed(path, error) from None
        if not path.is_dir():
            raise OutputError(f"{path}: not a folder; give a folder for the results with --out")
        inputs = list(inputs)
        # Checked before the lock is taken, so that busim writes nothing into a folder it may not use, and
        # again once it holds the lock, in case another run changed the folder in between.
        cls._check_inputs(path, cls._owned(path, Manifest.read(path)), inputs)
        lock = cls._lock_folder(path, command, created)
        try:
            manifest = Manifest.read(path)
            owned = cls._owned(path, manifest)
            cls._check_inputs(path, owned, inputs)
            folder = cls(path, command, created, lock, manifest)
            for stale in path.glob(f"{STAGING_PREFIX}*"):  # left by a run that was killed: the lock is ours now
                shutil.rmtree(stale, ignore_errors=True)
            folder.staging.mkdir()
        except OSError as error:
            cls._release(path, lock, created)
            raise _failed(path, error) from None
        except OutputError:
            cls._release(path, lock, created)
            raise
        return folder

    @staticmethod
    def _lock_folder(path: Path, command: str, created: bool) -> int:
        lock_path = path / LOCK_FILE
        try:
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise _failed(path, error) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 4096).decode("utf-8", "replace").strip() or "another busim run"
            os.close(descriptor)
            raise OutputError(
                f"{path} is being written by {holder}; wait for it to finish, or choose another folder with --out"
            ) from None
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"busim (pid {os.getpid()}, since {started}): {command}\n".encode(), 0)
        return descriptor

    @staticmethod
    def _release(path: Path, lock: int, created: bool) -> None:
        """Let go of the lock (its note of who holds it cleared); a folder made for this run goes again if
        nothing else is in it."""
        with contextlib.suppress(OSError):
            os.ftruncate(lock, 0)
        if created:
            with contextlib.suppress(OSError):
                (path / LOCK_FILE).unlink()
        os.close(lock)
        if created:
            with contextlib.suppress(OSError):
                path.rmdir()

    @staticmethod
    def _owned(path: Path, manifest: Manifest | None) -> dict[str, str | None]:
        """The files of the folder busim wrote, with their hashes, after checking that it may write there.

        Raises:
            OutputError: the folder holds files busim did not write and no manifest of its own.
        """
        present = sorted(entry.name for entry in path.iterdir() if not _infrastructure(entry.name))
        if manifest is not None:
            return {name: digest for name, digest in manifest.files.items() if name in present}
        legacy = [name for name in present if name in DOCUMENT_NAMES or name.endswith(CHART_SUFFIXES)]
        if len(legacy) == len(present) and _busim_results(path):
            # Written by a busim from before manifests: take over the files it would have written, by name.
            return dict.fromkeys(legacy)
        if present:
            shown = ", ".join(present[:5]) + (f" and {len(present) - 5} more" if len(present) > 5 else "")
            raise OutputError(
                f"{path} holds files busim did not write ({shown}); give an empty or new folder with --out"
            )
        return {}

    @staticmethod
    def _check_inputs(path: Path, owned: dict[str, str | None], inputs: Iterable[Path]) -> None:
        """Refuse to touch an input, a file busim did not write, or one changed since busim wrote it."""
        folder = path.resolve()
        for source in inputs:
            resolved = Path(source).resolve()
            if resolved.parent == folder and (resolved.name in owned or resolved.name in DOCUMENT_NAMES):
                raise OutputError(
                    f"{path} would lose the scenario being run, {source}: busim replaces the files of its earlier "
                    "run there; copy the scenario elsewhere first, or choose another folder with --out"
                )
        _check_names(path, owned, DOCUMENT_NAMES)
        for name, digest in owned.items():
            if digest is not None and (path / name).is_file() and _sha256(path / name) != digest:
                raise OutputError(
                    f"{path / name} was changed since busim wrote it; move it away, or choose another --out"
                )

    # ------------------------------------------------------------ committing
    def commit(self, replaces: Callable[[str], bool] = lambda _name: True) -> list[Path]:
        """Move the staged files into the folder and record them; return their final paths.

        The files of the earlier run that ``replaces`` selects are removed
        (results.json first, so the folder never pairs old results with new
        files), the staged ones moved in (results.json last) and the
        manifest written; SIGINT and SIGTERM wait until it is done.

        Raises:
            OutputError: a file cannot be moved or removed.
        """
        staged = sorted(entry.name for entry in self.staging.iterdir())
        _check_names(self.path, self._owned(self.path, self._manifest), staged)
        last = [name for name in staged if name in RESULTS_LAST]
        first = [name for name in staged if name not in RESULTS_LAST]
        earlier = dict(self._manifest.files) if self._manifest is not None else {}
        earlier = {name: digest for name, digest in earlier.items() if (self.path / name).exists()}
        if self._manifest is None:
            earlier = self._owned(self.path, None)  # a legacy folder's files, taken over
        going = [name for name in earlier if replaces(name) and name not in staged]
        kept = {name: digest for name, digest in earlier.items() if not replaces(name)}
        written = {name: _sha256(self.staging / name) for name in staged}
        try:
            with signals_held():
                # Listed before anything moves: a run stopped halfway leaves a folder the next one can clean.
                Manifest({**earlier, **written}, self.command, time.strftime("%Y-%m-%d %H:%M:%S")).write(self.path)
                for name in [*RESULTS_LAST, *going]:
                    if name in earlier and replaces(name):
                        (self.path / name).unlink(missing_ok=True)
                for name in [*first, *last]:
                    os.replace(self.staging / name, self.path / name)
                Manifest({**kept, **written}, self.command, time.strftime("%Y-%m-%d %H:%M:%S")).write(self.path)
                self.staging.rmdir()
                self._committed = True
                self._finish()
        except OSError as error:
            raise _failed(self.path, error) from None
        return [self.path / name for name in [*first, *last]]

    @property
    def committed(self) -> bool:
        """Whether the run's files are in place."""
        return self._committed

    def abandon(self) -> None:
        """Drop what was staged and let go of the folder, as it was before the run."""
        if self._done:
            return
        shutil.rmtree(self.staging, ignore_errors=True)
        self._finish()

    def _finish(self) -> None:
        self._done = True
        empty = not any(not _infrastructure(entry.name) for entry in self.path.iterdir())
        self._release(self.path, self._lock, self._created and empty)

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, *exception: object) -> None:
        self.abandon()


# ---------------------------------------------------------------- a scenario's runs, each in a folder of its own
def run_folder_name(loaded: LoadedScenario) -> str:
    """The folder of a scenario's runs in ``runs/``: its name, and for a variant ``<name>@<variant>``, so
    that a variant's runs keep a ``latest`` of their own and the scenario's stays as it was."""
    name = loaded.scenario.name
    return f"{name}@{loaded.variant}" if loaded.variant else name


def new_run_folder(parent: Path) -> Path:
    """A new, empty folder of its own for one run inside ``parent`` (``runs/<name>/20261206-014512``).

    Raises:
        OutputError: ``parent`` cannot be created or written, or its ``latest``
            is not the link busim keeps there.
    """
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _failed(parent, error) from None
    latest = parent / LATEST
    if latest.exists() and not latest.is_symlink():
        raise OutputError(f"{latest} is not the link to the newest run that busim keeps there; move it away")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for number in range(1, 1000):
        candidate = parent / (stamp if number == 1 else f"{stamp}-{number}")
        try:
            candidate.mkdir()  # exclusive: two runs started in the same second get a folder each
            return candidate
        except FileExistsError:
            continue
        except OSError as error:
            raise _failed(parent, error) from None
    raise OutputError(f"{parent}: too many runs started at {stamp}")


def point_latest(folder: Path) -> None:
    """Make ``latest`` beside ``folder`` point at it; quietly nothing where links cannot be made."""
    latest = folder.parent / LATEST
    temporary = folder.parent / f".{LATEST}.{os.getpid()}.tmp"
    try:
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(folder.name, target_is_directory=True)
        os.replace(temporary, latest)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()


def resolve_run_folder(path: Path) -> Path:
    """``path``, or the newest run it keeps (its ``latest``) when it is a scenario's folder of runs."""
    latest = path / LATEST
    if not (path / "results.json").exists() and latest.is_dir():
        return latest
    return path
