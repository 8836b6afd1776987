"""The local services the real-broker tests run against, and how a missing one is reported.

Each test asks for the services it needs by fixture. Where a service does
not answer, the test skips with a message naming it; under CI (``CI=true``)
it fails instead, so that a missing service can never pass unnoticed.
"""

from __future__ import annotations

import os
import socket

import pytest

SERVICES = {
    "redis": ("Redis", "127.0.0.1", 6379, "redis://127.0.0.1:6379/0"),
    "rabbitmq": ("RabbitMQ", "127.0.0.1", 5672, "amqp://guest:guest@127.0.0.1:5672/"),
    "nats": ("NATS JetStream", "127.0.0.1", 4222, "nats://127.0.0.1:4222"),
    "postgres": ("PostgreSQL", "127.0.0.1", 5432, "postgresql://postgres@127.0.0.1:5432/postgres"),
}


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require(service: str) -> str:
    """The URL of ``service``; skips the test (fails it under CI) when the service does not answer."""
    title, host, port, url = SERVICES[service]
    if not _answers(host, port):
        message = f"{title} is not running on {host}:{port}; the real-broker tests need it"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"{message} (CI=true: a missing service fails the run)", pytrace=False)
        pytest.skip(message)
    return url


@pytest.fixture
def redis_url() -> str:
    return require("redis")


@pytest.fixture
def amqp_url() -> str:
    return require("rabbitmq")


@pytest.fixture
def nats_url() -> str:
    return require("nats")


@pytest.fixture
def postgres_url() -> str:
    return require("postgres")
