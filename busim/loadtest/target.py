"""The broker a real run targets: its URL, the driver its scheme picks, and the URL as it may be shown.

A URL's password never leaves this module in clear: everything a run shows
or writes uses :attr:`BrokerTarget.redacted`, and the consumer instances get
the URL through their environment, not a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from busim.errors import BusimError
from busim.loadtest.drivers import SCHEMES, driver_class
from busim.loadtest.drivers.base import Driver
from busim.scenario.loader import Document, foreign_broker_keys
from busim.scenario.schema import Scenario

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class StoreURLs:
    """Where the consumers keep their state: Redis by default, PostgreSQL for transactional effects."""

    redis: str = DEFAULT_REDIS_URL
    postgres: str = DEFAULT_POSTGRES_URL

    def of(self, kind: str) -> str:
        return self.redis if kind == "redis" else self.postgres


class BrokerURLError(BusimError):
    """``--broker`` is not a URL busim can drive, or does not suit the scenario's broker."""


class UnreachableError(BusimError):
    """The broker or a state store does not answer at its URL."""

    @classmethod
    def of(cls, what: str, url: str, error: BaseException) -> UnreachableError:
        """``cannot reach WHAT at URL: why``, the URL's password left out everywhere, the error's text too."""
        why = scrub(str(error) or type(error).__name__, [url])
        return cls(f"cannot reach {what} at {redact(url)}: {why}")


@dataclass(frozen=True)
class BrokerTarget:
    url: str = ""
    scheme: str = ""

    @classmethod
    def parse(cls, url: str) -> BrokerTarget:
        """Raises :class:`BrokerURLError` for a URL without a known scheme or host."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as error:
            raise BrokerURLError(f"--broker {redact(url)}: not a URL ({error})") from None
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            known = ", ".join(f"{name}://" for name in SCHEMES)
            raise BrokerURLError(
                f"--broker {redact(url)}: busim drives {known}, not {scheme or 'a URL without a scheme'}"
            )
        if not parts.hostname:
            raise BrokerURLError(f"--broker {redact(url)}: the URL names no host")
        return cls(url, scheme)

    @property
    def driver(self) -> type[Driver]:
        return driver_class(self.scheme)

    @property
    def redacted(self) -> str:
        return redact(self.url)

    def check_preset(self, scenario: Scenario, document: Document | None = None) -> None:
        """Refuse a scenario whose broker preset is not one this URL's broker realises.

        The message says which override runs it, and which broker keys of the
        file (``document``, when known) that override leaves out.
        """
        driver = self.driver
        preset = scenario.broker.preset
        if preset in driver.presets:
            return
        presets = " or ".join(driver.presets)
        target = driver.presets[0]
        foreign = foreign_broker_keys(document, target) if document is not None else []
        leaves = f", which leaves out its broker.{', '.join(foreign)} ({target} takes no such keys)" if foreign else ""
        raise BrokerURLError(
            f"--broker {self.redacted}: the scenario's broker is preset {preset}, but {self.scheme}:// is "
            f"{driver.title}, which runs preset {presets}; add --set broker.preset={target} "
            f"to run this scenario against it{leaves}"
        )


def _secrets(url: str) -> list[str]:
    """What in ``url`` must not be shown: its password (or a NATS token, given as the user alone), and the
    values of password and token query parameters, each as written and decoded."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
        if parts.scheme.lower() == "nats" and parts.username and not parts.password:
            found.append(parts.username)  # nats://TOKEN@host
    except ValueError:
        return []
    found += [value for key, value in parse_qsl(parts.query) if key.lower() in _SECRET_PARAMETERS]
    return [text for secret in found if secret for text in dict.fromkeys((secret, unquote(secret)))]


_SECRET_PARAMETERS = ("password", "pass", "token", "auth_token")


def scrub(text: str, urls: list[str]) -> str:
    """``text`` with every secret of ``urls`` replaced by ``***``."""
    for url in urls:
        for secret in sorted(_secrets(url), key=len, reverse=True):
            text = text.replace(secret, "***")
    return text


def redact(url: str) -> str:
    """``url`` with its password, token or password query parameters replaced by ``***``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "<a URL that cannot be read>"
    secrets = _secrets(url)
    if not secrets:
        return url
    user = parts.username or ""
    if parts.password is not None:
        user = f"{user}:***"
    elif user in secrets:
        user = "***"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{user}@{host}" if user else host
    query = "&".join(
        f"{key}={'***' if key.lower() in _SECRET_PARAMETERS else value}" for key, value in parse_qsl(parts.query)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))
