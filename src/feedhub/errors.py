"""The one exception tree of feedhub.

    FeedhubError
    ├── ConfigError            bad YAML, unknown key, duplicate id, ... (carries file:line)
    ├── FetchError             anything that stopped a feed download (carries the URL)
    │   ├── BlockedAddressError    the host resolves to a private/loopback/link-local address
    │   ├── TooManyRedirects
    │   ├── BodyTooLargeError      the body passed ``fetch.max_body_bytes``; download aborted
    │   ├── FetchTimeout           connect, read or total deadline passed
    │   ├── TransportError         DNS, connection refused, TLS, protocol errors
    │   └── HTTPStatusError        a status we do not treat as success (carries status)
    │       ├── RateLimited            429/503, with the server's Retry-After if it sent one
    │       └── SourceGone             410: the source is disabled
    ├── ParseError             the bytes are not a feed we can read (carries the URL)
    └── StorageError           the database refused or failed (cause chained)

Errors from third-party libraries are wrapped once, where they enter (fetch, parse, storage),
with ``raise ... from``, so callers only ever catch ``FeedhubError`` subclasses.
"""

from __future__ import annotations

from datetime import datetime


class FeedhubError(Exception):
    """Root of every error feedhub raises on purpose."""


class ConfigError(FeedhubError):
    """The configuration file is invalid.

    ``problems`` lists every problem found, each already formatted as ``file:line: key: message``.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class FetchError(FeedhubError):
    """A feed could not be downloaded."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.message = message
        super().__init__(f"{url}: {message}")


class BlockedAddressError(FetchError):
    """The URL resolves to an address the fetch guard refuses."""


class TooManyRedirects(FetchError):
    """The redirect chain is longer than allowed, or loops."""


class BodyTooLargeError(FetchError):
    """The response body passed the configured cap; the download was aborted."""


class FetchTimeout(FetchError):
    """A connect, read or total deadline passed."""


class TransportError(FetchError):
    """DNS, connection, TLS or protocol failure."""


class HTTPStatusError(FetchError):
    """The server answered with a status that is not a feed."""

    def __init__(self, url: str, status: int, message: str | None = None) -> None:
        self.status = status
        super().__init__(url, message or f"HTTP {status}")


class RateLimited(HTTPStatusError):
    """429 or 503; ``retry_after`` is when the server asked us to come back, if it said."""

    def __init__(self, url: str, status: int, retry_after: datetime | None) -> None:
        self.retry_after = retry_after
        extra = f", retry after {retry_after.isoformat()}" if retry_after else ""
        super().__init__(url, status, f"HTTP {status}{extra}")


class SourceGone(HTTPStatusError):
    """410 Gone: the publisher removed the feed for good."""


class ParseError(FeedhubError):
    """The document is not a feed feedhub can read."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.message = message
        super().__init__(f"{url}: {message}")


class StorageError(FeedhubError):
    """The database failed; the cause is chained."""
