"""Where simulations run: in this process, on this machine's cores, or on a Dask cluster.

A simulation is a scenario and a seed, and nothing else decides its
outcome: the same :class:`Simulation` gives the same result in any process
on any machine with the same busim. So a batch of simulations (the
replications of a run, the variants of a comparison, the points of a
sweep) can go to whatever workers there are, and its results, put back in
the batch's order, are the same whatever the number of workers.

Results come back without their record (every delivery of the run): the
figures of a batch are in the summaries, and a record is as large as the
run. ``simulate(scenario, seed)`` gives any one run again, record and all.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from busim.errors import BusimError

if TYPE_CHECKING:
    from busim.results import Result, Source
    from busim.scenario import Scenario

# Where a cluster's address comes from when none is given: the variable Dask's own clients read.
SCHEDULER_ADDRESS_VARIABLE = "DASK_SCHEDULER_ADDRESS"
CLUSTER_EXTRA = "pip install 'busim[cluster]'"
CONNECT_TIMEOUT_S = 10.0

RunDone = Callable[[int, int], None]  # (runs done, runs in all)


@dataclass(frozen=True)
class Simulation:
    """One run to make: the scenario (checked for size beforehand), its seed, and, where every run of a
    batch publishes the same messages, the publishers' seed."""

    scenario: Scenario
    seed: int
    source: Source | None = None
    publishing_seed: int | None = None


def simulated(simulation: Simulation) -> Result:
    """The result of ``simulation``, without its record: what a worker sends back."""
    from busim.api import simulate_checked  # the API imports this module

    result = simulate_checked(simulation.scenario, simulation.source, simulation.seed, None, simulation.publishing_seed)
    return replace(result, record=None)


class Workers(Protocol):
    """Runs batches of simulations and gives their results in the batch's order."""

    count: int  # how many simulations run at once

    def run(self, simulations: Sequence[Simulation], on_run: RunDone | None = None) -> list[Result]:
        """The results of ``simulations``, in their order; ``on_run(done, total)`` after each finishes."""
        ...


class InProcess:
    """One simulation after another, in this process."""

    count = 1

    def run(self, simulations: Sequence[Simulation], on_run: RunDone | None = None) -> list[Result]:
        results = []
        for done, simulation in enumerate(simulations, start=1):
            results.append(simulated(simulation))
            if on_run is not None:
                on_run(done, len(simulations))
        return results


def _worker_signals() -> None:
    """In a worker process: Ctrl-C is for the command, which stops the workers itself, and SIGTERM (how it
    stops them) ends the worker at once, whatever handler a forked worker inherited from the command."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class ProcessPool:
    """``count`` worker processes on this machine, started once and kept for every batch until closed.

    Raises:
        BusimError: the workers could not start, or died (a script that starts runs on workers outside
            ``if __name__ == "__main__":``, which each worker runs again as it starts).
    """

    def __init__(self, count: int) -> None:
        if count < 2:
            raise ValueError(f"a process pool needs two or more workers (got {count})")
        self.count = count
        self._pool = ProcessPoolExecutor(count, mp_context=_start_method(), initializer=_worker_signals)

    def run(self, simulations: Sequence[Simulation], on_run: RunDone | None = None) -> list[Result]:
        # One simulation per task, taken as workers free up: runs differ too much in length to split evenly.
        futures: dict[Future[Result], int] = {}
        results: list[Result | None] = [None] * len(simulations)
        try:
            for index, simulation in enumerate(simulations):
                futures[self._pool.submit(simulated, simulation)] = index
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if on_run is not None:
                    on_run(done, len(simulations))
        except BrokenProcessPool:
            raise _workers_stopped() from None
        except OSError:
            # A worker that dies while the next is starting can break the pool between submit's check and
            # the new worker's start, which then fails on the pool's closed task queue: the same stop.
            if any(_failed_for_a_stopped_worker(future) for future in futures):
                raise _workers_stopped() from None
            raise
        return [result for result in results if result is not None]

    def close(self) -> None:
        """Stop the workers, at once: what they are running is not needed any more."""
        terminate = getattr(self._pool, "terminate_workers", None)  # Python 3.14 and later
        if terminate is not None:
            terminate()
            return
        processes = list((self._pool._processes or {}).values())  # before shutdown forgets them
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()


def _workers_stopped() -> BusimError:
    return BusimError(
        "the worker processes stopped before their runs were done: in a Python script, start runs on "
        "workers under if __name__ == '__main__': (each worker imports the script again as it starts), "
        "or give workers=1"
    )


def _failed_for_a_stopped_worker(future: Future[Result]) -> bool:
    return future.done() and not future.cancelled() and isinstance(future.exception(), BrokenProcessPool)


def _start_method() -> multiprocessing.context.BaseContext:
    """How worker processes start: as forks of this process on Linux while it runs no other thread (at once,
    with busim loaded), else as fresh interpreters (forkserver, else spawn): a fork copies whatever locks
    other threads hold, such as a progress bar's, and macOS's system libraries do not survive one."""
    methods = multiprocessing.get_all_start_methods()
    if sys.platform == "linux" and "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["busim.api"])  # imported once, forked into each worker
        return context
    return multiprocessing.get_context("spawn")


class DaskCluster:
    """The workers of a Dask distributed cluster, reached through its scheduler at ``address``.

    Raises:
        BusimError: Dask is not installed, the scheduler cannot be reached, it has no workers, or a
            worker runs another version of busim (or none).
    """

    def __init__(self, address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise BusimError(f"--cluster {address}: running on a Dask cluster needs Dask: {CLUSTER_EXTRA}") from None
        _check_address(address)
        try:
            self._client = Client(address, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise BusimError(
                f"--cluster {address}: cannot reach a Dask scheduler there ({error}); start one with "
                f"'dask scheduler' and its workers with 'dask worker {address}' (docs/capacity.md#on-a-cluster)"
            ) from None
        self.address = address
        try:
            self.count = self._check_workers()
        except BaseException:
            self._client.close()
            raise

    def _check_workers(self) -> int:
        """How many threads the cluster's workers run, once every worker is seen to run this busim."""
        from importlib.metadata import version

        from busim.version import __version__

        workers = self._client.scheduler_info()["workers"]
        if not workers:
            raise BusimError(
                f"--cluster {self.address}: the scheduler has no workers; start some with "
                f"'dask worker {self.address}' on machines where busim is installed (docs/capacity.md#on-a-cluster)"
            )
        versions = self._client.run(version, "busim", on_error="return")
        wrong = {
            worker: found
            for worker, found in versions.items()
            if isinstance(found, BaseException) or found != __version__
        }
        if wrong:
            listed = "; ".join(
                f"{worker}: {'no busim' if isinstance(found, BaseException) else f'busim {found}'}"
                for worker, found in sorted(wrong.items())
            )
            raise BusimError(
                f"--cluster {self.address}: every worker needs busim {__version__}, as here, for its runs to be "
                f"the ones this machine would make ({listed})"
            )
        return sum(worker.get("nthreads", 1) for worker in workers.values())

    def run(self, simulations: Sequence[Simulation], on_run: RunDone | None = None) -> list[Result]:
        from distributed import as_completed

        futures = self._client.map(simulated, list(simulations), pure=False)
        position = {future.key: index for index, future in enumerate(futures)}
        results: list[Result | None] = [None] * len(simulations)
        finished = as_completed(futures, loop=self._client.loop, with_results=True)
        try:
            for done, (future, result) in enumerate(finished, start=1):
                results[position[future.key]] = result
                if on_run is not None:
                    on_run(done, len(simulations))
        except BaseException:
            self._client.cancel(futures)  # an error or Ctrl-C: the rest are not wanted
            raise
        return [result for result in results if result is not None]

    def close(self) -> None:
        self._client.close()


def _check_address(address: str) -> None:
    """Refuse what is no scheduler's address before a client tries it (and leaves a thread behind).

    Raises:
        BusimError: the address has an unknown scheme, or no host and port.
    """
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address)
        get_backend(scheme)
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except (ValueError, TypeError) as error:
        raise BusimError(
            f"--cluster {address}: not a scheduler's address ({error}); give one such as tcp://HOST:8786"
        ) from None


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def workers_for(count: int | None = 1, cluster: str | None = None, runs: int | None = None) -> Iterator[Workers]:
    """The workers for a batch: the Dask cluster at ``cluster`` if given, else ``count`` processes on this
    machine (None: one per core), never more than ``runs`` simulations need; closed on leaving.

    Raises:
        ValueError: ``count`` is below 1.
        BusimError: the cluster cannot be used (see :class:`DaskCluster`).
    """
    if count is not None and count < 1:
        raise ValueError(f"workers must be 1 or more (got {count})")
    if cluster is not None:
        workers: Workers = DaskCluster(cluster)
    else:
        wanted = cores() if count is None else count
        if runs is not None:
            wanted = min(wanted, runs)
        workers = ProcessPool(wanted) if wanted > 1 else InProcess()
    try:
        yield workers
    finally:
        if isinstance(workers, ProcessPool | DaskCluster):
            workers.close()


def as_workers(workers: int | Workers | None, cluster: str | None, runs: int) -> AbstractContextManager[Workers]:
    """``workers`` as a context: workers at hand are used as they are (and left open), a count or None starts
    them (see :func:`workers_for`)."""
    if isinstance(workers, int) or workers is None:
        return workers_for(workers, cluster, runs)
    return _borrowed(workers)


@contextmanager
def _borrowed(workers: Workers) -> Iterator[Workers]:
    yield workers
