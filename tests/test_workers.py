"""Where simulations run: the same results in this process, on two worker processes, and on a Dask cluster."""

import dataclasses
import math
import subprocess
import sys
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pytest

import busim
from busim.errors import BusimError
from busim.planning.runner import sweep
from busim.workers import DaskCluster, InProcess, ProcessPool, Simulation, workers_for
from tests.conftest import SCENARIOS

pytestmark = pytest.mark.xdist_group("workers")

SMALL = [
    "duration=20s",
    "publishers.order-service.rate=[{at: 0s, rate: 50/s}, {at: 5s, rate: 400/s}, {at: 15s, rate: 50/s}]",
]
VARY = ["consumers.inventory.instances=1..4:x2", "broker.preset=rabbitmq,kafka"]


def small_flash_sale() -> busim.Scenario:
    return busim.load(SCENARIOS / "flash-sale.yaml", SMALL)


def figures(outcome) -> list:
    """Every run's summary: what must not depend on where the runs ran."""
    results = outcome.results if isinstance(outcome, busim.Replications) else (outcome,)
    return [result.summary for result in results]


def sweep_figures(result) -> list:
    return [(point.name, figures(point.outcome)) for point in result.points]


@pytest.fixture(scope="module")
def one_worker_sweep():
    return sweep(SCENARIOS / "flash-sale.yaml", VARY, SMALL, replications=2, seed=5, workers=1)


def test_replications_on_two_workers_are_those_of_one():
    scenario = small_flash_sale()
    alone = busim.replicate(scenario, 3, seed=9, workers=1)
    shared = busim.replicate(scenario, 3, seed=9, workers=2)
    assert shared.seeds == alone.seeds
    assert figures(shared) == figures(alone)
    assert all(result.record is None for result in shared.results)


def test_a_comparison_on_two_workers_is_that_of_one():
    variants = busim.variants(SCENARIOS / "flash-sale.yaml", ["broker.preset=rabbitmq,kafka"], SMALL)
    alone = busim.compare(variants, seed=3, replications=2, workers=1)
    shared = busim.compare(variants, seed=3, replications=2, workers=2)
    assert [figures(outcome) for outcome in shared.outcomes] == [figures(outcome) for outcome in alone.outcomes]


def test_a_sweep_on_two_workers_is_that_of_one(one_worker_sweep):
    shared = sweep(SCENARIOS / "flash-sale.yaml", VARY, SMALL, replications=2, seed=5, workers=2)
    assert [point.name for point in one_worker_sweep.points] == [
        "instances=1 preset=rabbitmq",
        "instances=1 preset=kafka",
        "instances=2 preset=rabbitmq",
        "instances=2 preset=kafka",
        "instances=4 preset=rabbitmq",
        "instances=4 preset=kafka",
    ]
    assert sweep_figures(shared) == sweep_figures(one_worker_sweep)
    assert shared.rows() == one_worker_sweep.rows()


def test_a_sweep_on_a_dask_cluster_is_the_one_made_here(one_worker_sweep):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        remote = sweep(
            SCENARIOS / "flash-sale.yaml", VARY, SMALL, replications=2, seed=5, cluster=cluster.scheduler_address
        )
    assert sweep_figures(remote) == sweep_figures(one_worker_sweep)


def test_every_point_of_a_sweep_runs_on_the_same_seeds(one_worker_sweep):
    seeds = {point.outcome.seeds for point in one_worker_sweep.points}
    assert seeds == {busim.api.replication_seeds(5, 2)}


def test_an_unreachable_scheduler_is_named():
    with pytest.raises(BusimError) as refused:
        DaskCluster("tcp://127.0.0.1:9", timeout_s=0.5)
    assert str(refused.value) == (
        "--cluster tcp://127.0.0.1:9: cannot reach a Dask scheduler there (Timed out trying to connect to "
        "tcp://127.0.0.1:9 after 0.5 s); start one with 'dask scheduler' and its workers with "
        "'dask worker tcp://127.0.0.1:9' (docs/capacity.md#on-a-cluster)"
    )


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "missing port number in address '127.0.0.1'"),
        (
            "htp://127.0.0.1:8786",
            "unknown address scheme 'htp' (known schemes: ['inproc', 'tcp', 'tls', 'ucx', 'ws', 'wss'])",
        ),
    ],
)
def test_what_is_no_schedulers_address_is_refused_at_once(address, why):
    with pytest.raises(BusimError) as refused:
        DaskCluster(address, timeout_s=0.5)
    assert (
        str(refused.value)
        == f"--cluster {address}: not a scheduler's address ({why}); give one such as tcp://HOST:8786"
    )


def test_a_script_that_starts_workers_without_a_main_guard_is_told_so(tmp_path):
    script = tmp_path / "unguarded.py"
    # A thread running (as in a notebook or an app) makes the workers fresh interpreters, which import the
    # script again as they start; a fork, where busim may make one, would not.
    script.write_text(
        "import threading\n"
        "import busim\n"
        "threading.Thread(target=threading.Event().wait, args=(30,), daemon=True).start()\n"
        f"scenario = busim.load({str(SCENARIOS / 'flash-sale.yaml')!r}, {SMALL!r})\n"
        "busim.replicate(scenario, 2, seed=1, workers=2)\n",
        encoding="utf-8",
    )
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1
    assert (
        "busim.errors.BusimError: the worker processes stopped before their runs were done: in a Python script, "
        "start runs on workers under if __name__ == '__main__': (each worker imports the script again as it "
        "starts), or give workers=1"
    ) in ran.stderr.splitlines()


def test_a_command_that_ran_on_workers_stops_them_without_a_word_on_stderr(tmp_path):
    # The command handles SIGTERM itself; workers forked from it must not inherit that handler, or the
    # SIGTERM that stops them at the end raises inside each one and prints its traceback.
    sets = [arg for assignment in SMALL for arg in ("--set", assignment)]
    vary = ["--vary", "consumers.inventory.instances=1,2", "--workers", "2", "--out", str(tmp_path / "compared")]
    ran = subprocess.run(
        [sys.executable, "-m", "busim", "compare", str(SCENARIOS / "flash-sale.yaml"), *sets, *vary, "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (ran.returncode, ran.stderr) == (0, "")
    assert (tmp_path / "compared" / "compare.json").exists()


class _PoolBreakingOnSecondSubmit:
    """A process pool whose first worker dies while the second starts: the first task fails as broken and
    the second worker's start finds the task queue closed (CPython checks for a broken pool before it
    starts a worker, without a lock against the thread that breaks it)."""

    def __init__(self, *, breaks: bool) -> None:
        self.breaks = breaks
        self.submitted: list[Future] = []

    def submit(self, fn, *args):
        if self.submitted:
            if self.breaks:
                self.submitted[0].set_exception(BrokenProcessPool("a process was terminated abruptly"))
            raise OSError("handle is closed")
        self.submitted.append(Future())
        return self.submitted[0]


@pytest.mark.parametrize("breaks", [True, False])
def test_a_pool_that_breaks_while_a_worker_starts_is_told_as_a_stop_and_any_other_os_error_kept(breaks):
    pool = ProcessPool(2)
    pool._pool.shutdown()
    pool._pool = _PoolBreakingOnSecondSubmit(breaks=breaks)
    simulations = [Simulation(small_flash_sale(), seed) for seed in (1, 2)]
    with pytest.raises(BusimError if breaks else OSError) as stopped:
        pool.run(simulations)
    assert str(stopped.value) == (
        "the worker processes stopped before their runs were done: in a Python script, start runs on workers "
        "under if __name__ == '__main__': (each worker imports the script again as it starts), or give workers=1"
        if breaks
        else "handle is closed"
    )


def test_a_cluster_without_dask_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(BusimError) as refused:
        DaskCluster("tcp://127.0.0.1:8786")
    assert str(refused.value) == (
        "--cluster tcp://127.0.0.1:8786: running on a Dask cluster needs Dask: pip install 'busim[cluster]'"
    )


def test_one_worker_runs_in_this_process_and_never_more_workers_than_runs():
    with workers_for(1) as alone:
        assert isinstance(alone, InProcess)
    with workers_for(8, runs=1) as capped:
        assert isinstance(capped, InProcess)
    with workers_for(8, runs=2) as pool:
        assert isinstance(pool, ProcessPool)
        assert pool.count == 2
    with pytest.raises(ValueError, match=r"workers must be 1 or more \(got 0\)"), workers_for(0):
        pass


def test_workers_are_limited_to_the_runs_that_fit_in_memory():
    scenario = small_flash_sale()
    needed = busim.api.memory_needed_bytes(scenario)
    assert busim.api.affordable_workers(4, scenario, 2.5 * needed, runs=8) == 2
    assert busim.api.affordable_workers(4, scenario, 0.5 * needed, runs=8) == 1
    assert busim.api.affordable_workers(4, scenario, 100 * needed, runs=8) == 4


def test_one_core_per_worker_only_where_the_batch_is_work_enough(monkeypatch):
    monkeypatch.setattr(busim.api, "cores", lambda: 2)
    scenario = small_flash_sale()
    per_run = busim.api.expected_group_messages(scenario)
    enough = math.ceil(busim.api.PARALLEL_MESSAGES / per_run)
    assert busim.api.affordable_workers(None, scenario, None, runs=enough - 1) == 1
    assert busim.api.affordable_workers(None, scenario, None, runs=enough) == 2
    assert busim.api.affordable_workers(3, scenario, None, runs=1) == 3  # a count given is kept


def test_a_replication_keeps_its_figures_and_its_seed_gives_its_record_again():
    scenario = small_flash_sale()
    replications = busim.replicate(scenario, 2, seed=4, workers=1)
    again = busim.simulate(scenario, seed=replications.seeds[1])
    assert again.record is not None
    assert dataclasses.replace(again, record=None, run=replications.results[1].run) == replications.results[1]
