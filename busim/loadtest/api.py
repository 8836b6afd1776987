"""Load-test a real broker from Python: :func:`load_test`, as ``busim run --broker URL`` does.

    >>> import busim
    >>> scenario = busim.load("scenarios/flash-sale.yaml", ["broker.outages=[]"])
    >>> result = busim.load_test(scenario, "amqp://guest:guest@127.0.0.1:5672/")
    >>> result.mode, result.real.generator.lag_s.p99

The result is the same :class:`~busim.results.Result` a simulation gives,
with ``mode == "real"`` and :attr:`~busim.results.Result.real` holding what
only a real run has.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import numpy as np

from busim.analysis import summarize
from busim.analysis.latency import LatencySummary
from busim.analysis.real import RealFigures, first_sent, generator_figures, latency_from_send
from busim.analysis.summary import Summary
from busim.engine.records import RunRecord
from busim.loadtest.refusals import check
from busim.loadtest.runner import LiveFigures, RealRun, run_real
from busim.loadtest.target import BrokerTarget, StoreURLs
from busim.results import MessageCounts, Result, RunMetadata, Source
from busim.scenario import LoadedScenario, Scenario

_ABSENT = LatencySummary.of(np.empty(0))


def check_real(scenario: Scenario | LoadedScenario, broker: str) -> tuple[Scenario, Source, BrokerTarget]:
    """The scenario, its source and the target, once checked for a real run on ``broker``.

    Raises:
        BrokerURLError: the URL is not one busim drives, or its broker does not match the scenario's preset.
        ScenarioError: every key the broker's driver cannot realise, each at its place in the file.
    """
    target = BrokerTarget.parse(broker)
    if isinstance(scenario, LoadedScenario):
        source = Source(scenario.file, scenario.sha256, scenario.overrides, scenario.variant, scenario.left_out)
        loaded, document, where = scenario.scenario, scenario.document, scenario.file
    else:
        from busim.api import check_references  # as a scenario built in code is checked for a simulation

        check_references(scenario)
        source, loaded, document, where = Source(), scenario, None, "<scenario>"
    target.check_preset(loaded, document)
    check(loaded, target.driver, where, document)
    return loaded, source, target


async def load_test_async(
    scenario: Scenario | LoadedScenario,
    broker: str,
    seed: int | None = None,
    stores: StoreURLs | None = None,
    on_live: Callable[[LiveFigures], None] | None = None,
    stop: asyncio.Event | None = None,
) -> Result:
    """Run ``scenario`` against the broker at ``broker`` in wall-clock time; see :func:`load_test`."""
    from busim.api import fresh_seed

    loaded, source, target = check_real(scenario, broker)
    if seed is None:
        seed = loaded.seed if loaded.seed is not None else fresh_seed()
    loaded = loaded.model_copy(update={"seed": seed})
    real = await run_real(loaded, target, stores or StoreURLs(), on_live, stop)
    return result_of(real, source)


def load_test(
    scenario: Scenario | LoadedScenario,
    broker: str,
    seed: int | None = None,
    stores: StoreURLs | None = None,
    on_live: Callable[[LiveFigures], None] | None = None,
) -> Result:
    """Run ``scenario`` against the real broker at URL ``broker`` (``amqp://``, ``redis://``, ``nats://``).

    The seed is ``seed`` if given, else the scenario's, else a fresh one: the
    same seed publishes the same schedule as its simulation. ``stores`` says
    where the consumers keep their state. Raises as :func:`check_real` says.
    """
    return asyncio.run(load_test_async(scenario, broker, seed, stores, on_live))


def result_of(real: RealRun, source: Source) -> Result:
    """A real run as the :class:`Result` every report reads: the record's figures, and what only a real run has."""
    record = real.record
    summary = _without_unobserved(summarize(record))
    generator = real.generator
    messages = record.messages
    sent = first_sent(real.generator.copy_message, generator.sent_s, len(messages))
    emitted = messages.emitter >= 0
    sent[emitted] = messages.publish_s[emitted]  # a consumer publishes what it emits as its processing ends
    return Result(
        scenario=record.scenario,
        summary=summary,
        sim_time_s=record.sim_time_s,
        drained=record.drained,
        messages=MessageCounts(published=int(np.count_nonzero(~emitted)), emitted=int(np.count_nonzero(emitted))),
        source=source,
        run=RunMetadata.took(real.wall_time_s),
        record=record,
        real=RealFigures(
            broker=real.broker,
            driver=real.driver,
            run_id=real.run_id,
            partial=real.partial,
            stores=real.stores,
            generator=generator_figures(
                generator.due_s, generator.sent_s, generator.refused, generator.waited_for_broker_s
            ),
            latency_from_send_s=latency_from_send(record, sent),
        ),
    )


def replayed(record: RunRecord, then: Result) -> Result:
    """A real run's result rebuilt from the record it kept, to check against its results.json (``then``)."""
    return dataclasses.replace(then, summary=_without_unobserved(summarize(record)), record=record)


def _without_unobserved(summary: Summary) -> Summary:
    """The summary with the latency parts a real broker cannot show left absent, not invented."""
    consumers = {
        name: dataclasses.replace(
            consumer,
            latency_s=dataclasses.replace(consumer.latency_s, broker=_ABSENT, queue_wait=_ABSENT),
        )
        for name, consumer in summary.consumers.items()
    }
    return dataclasses.replace(summary, consumers=consumers)
