"""Broker drivers: one module per broker, each behind :class:`~busim.loadtest.drivers.base.Driver`."""
