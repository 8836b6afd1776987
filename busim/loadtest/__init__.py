"""Load-test a real broker: run a scenario in wall-clock time against RabbitMQ, Redis Streams or NATS JetStream.

Unlike :mod:`busim.engine`, this package does I/O: it talks to brokers and
state stores, starts and kills consumer processes, and writes journals. What
it produces is the engine's own :class:`~busim.engine.records.RunRecord`, so
that the same analysis, reports and comparisons read a real run as a
simulated one.

- :mod:`~busim.loadtest.target`: the broker URL, its driver, its redacted form.
- :mod:`~busim.loadtest.schedule`: what to publish and when (the simulation's own arrivals).
- :mod:`~busim.loadtest.drivers`: one module per broker, behind :class:`~busim.loadtest.drivers.base.Driver`.
- :mod:`~busim.loadtest.stores`: consumers' state and dedup stores (Redis, PostgreSQL).
- :mod:`~busim.loadtest.journal`: what every process logs, durably enough to survive SIGKILL.
- :mod:`~busim.loadtest.worker`: one consumer instance, an OS process.
- :mod:`~busim.loadtest.supervisor`: starts, kills and restarts the instances.
- :mod:`~busim.loadtest.record`: the journals merged into a RunRecord.
- :mod:`~busim.loadtest.runner`: one real run, start to clean-up.
"""
