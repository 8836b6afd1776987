"""Broker drivers: one module per broker, each behind :class:`~busim.loadtest.drivers.base.Driver`.

A driver's module is imported only when a run uses it, so that a run
against one broker needs nothing of the others' clients loaded.
"""

from __future__ import annotations

import importlib

from busim.loadtest.drivers.base import Driver

# scheme -> (module, class)
_DRIVERS = {
    "amqp": ("busim.loadtest.drivers.rabbitmq", "RabbitMQDriver"),
    "amqps": ("busim.loadtest.drivers.rabbitmq", "RabbitMQDriver"),
    "redis": ("busim.loadtest.drivers.redis_streams", "RedisStreamsDriver"),
    "rediss": ("busim.loadtest.drivers.redis_streams", "RedisStreamsDriver"),
    "nats": ("busim.loadtest.drivers.nats", "NatsDriver"),
}
SCHEMES = tuple(_DRIVERS)


def driver_class(scheme: str) -> type[Driver]:
    """The driver of URL scheme ``scheme`` (one of :data:`SCHEMES`)."""
    module, name = _DRIVERS[scheme]
    return getattr(importlib.import_module(module), name)
