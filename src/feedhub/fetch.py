"""Downloading feeds: conditional GET, redirects, limits and the address guard.

This is the only module that talks HTTP (httpx). ``Fetcher.fetch`` either returns a
``FetchResult`` (200 with the body, or 304) or raises a ``FetchError`` subclass that carries the
requested URL and chains the cause; httpx's exceptions never leave this module.

Choices worth knowing:

* Redirects are followed here, not by httpx, so that every hop passes the address guard
  (``fetch_guard``), is counted against ``max_redirects`` and is checked for loops. The
  conditional headers go with every hop: the validators the caller stored came from the final URL.
* Connections are kept alive between fetches, in one small pool per origin
  (``fetch_http11``: h11 over asyncio, because a 304 through ``httpx.AsyncClient`` cost about
  five times the CPU). At most ``concurrency`` connections are in use at once (the semaphores
  see to that, so a pool never makes a request wait); up to ``4 * per_host`` per origin stay
  idle. A pool only as large as ``concurrency`` keeps closing one host's idle connection to
  open another's once feeds spread over more hosts than slots: 2,000 fetches over 8 hosts in
  random order opened 1,991 connections that way, and 16 with the larger idle allowance.
  No cookies are kept (feeds do not need them, and a shared jar would leak between sources);
  proxy and certificate settings from the environment are ignored.
* An injected ``transport`` (tests: ``httpx.MockTransport``) is driven through an
  ``httpx.AsyncClient`` instead; both paths raise httpx's exception classes, mapped once here.
* Limits: at most ``per_host`` requests per host name and ``concurrency`` in all. A hop waits
  for its host's slot first and only then takes a global slot, so requests queued behind a busy
  host do not hold global slots that other hosts could use. Slots are held per hop, never while
  waiting for another, so redirect chains cannot deadlock.
* Deadlines: ``connect_timeout`` and ``read_timeout`` (each socket read) are httpx's; the
  ``total_timeout`` covers the whole exchange, every hop and the body, from the moment the first
  hop got its slots (time queued behind our own limits is not the server's fault).
* Body cap: the body is streamed and decompressed here (not by httpx) with
  ``zlib``'s ``max_length``, so neither the bytes received nor the decoded bytes can pass
  ``max_body_bytes`` by more than one read; a gzip bomb stops at the cap instead of expanding a
  whole 64 KiB read a thousandfold. A Content-Length over the cap is refused before reading.
* Only status 200 is a feed. 304 returns the validators the server sent, falling back to the
  ones the caller sent when the server omits them (many do), so they are never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import http.cookiejar
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType

import httpcore
import httpx

from feedhub.errors import (
    BlockedAddressError,
    BodyTooLargeError,
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    RateLimited,
    SourceGone,
    TooManyRedirects,
    TransportError,
)
from feedhub.fetch_guard import (
    AddressBlocked,
    AddressGuard,
    AddressPolicy,
    BodyOverCap,
    CappedDecoder,
    GuardedTransport,
    Resolver,
    Slots,
    UnsupportedEncoding,
    default_ssl_context,
)
from feedhub.fetch_http11 import Http11Pool, Reply
from feedhub.models import FetchResult
from feedhub.settings import FetchSettings

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, "
    "application/json;q=0.8, */*;q=0.1"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_DRAIN_LIMIT = 16 * 1024
_IDLE_PER_SLOT = 4


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class _Redirect:
    status: int
    location: str


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int  # 200 or 304
    headers: dict[str, str]
    content: bytes | None


class _HttpxReply:
    """``fetch_http11.Reply``'s surface over an httpx response (the injected-transport path)."""

    __slots__ = ("status", "headers", "_response")

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers = dict(response.headers.items())
        self._response = response

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._response.is_stream_consumed:  # e.g. httpx.MockTransport hands over a read body
            yield self._response.content
            return
        async for raw in self._response.aiter_raw():
            yield raw

    async def discard(self, limit: int | None = None) -> None:
        declared = self.headers.get("content-length", "")
        if limit is None or (declared.isdigit() and int(declared) <= limit):
            await self._response.aread()

    async def aclose(self) -> None:
        await self._response.aclose()


class Fetcher:
    """Downloads feeds with bounded concurrency; one per process, shared by all sources.

    ``transport`` replaces the fetcher's own guarded connections with an httpx client over it
    (tests use ``httpx.MockTransport``); unless it is a ``GuardedTransport``, the address guard
    then checks each hop's host before the request, through ``resolver``, but cannot pin the
    connection, which the given transport makes itself.
    """

    def __init__(
        self,
        settings: FetchSettings,
        *,
        user_agent: str,
        clock: Callable[[], datetime] = _utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        policy = AddressPolicy(
            allow_private=settings.allow_private_networks, allowlist=settings.allowlist
        )
        self._guard = AddressGuard(policy, resolver)
        self._check_before_send = transport is not None and not isinstance(
            transport, GuardedTransport
        )
        base = {"User-Agent": user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
        self._headers = [(k.lower().encode(), v.encode()) for k, v in base.items()]
        self._http: Http11Pool | None = None
        self._client: httpx.AsyncClient | None = None
        if transport is None:
            self._http = Http11Pool(
                self._guard,
                ssl_context=default_ssl_context,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                max_idle=_IDLE_PER_SLOT * settings.per_host,
            )
        else:
            self._client = httpx.AsyncClient(
                transport=transport,
                follow_redirects=False,
                trust_env=False,
                cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
                timeout=httpx.Timeout(
                    connect=settings.connect_timeout,
                    read=settings.read_timeout,
                    write=settings.read_timeout,
                    pool=settings.total_timeout,
                ),
                headers=base,
            )
        self._slots = Slots(settings.concurrency, settings.per_host)

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._client is not None:
            await self._client.aclose()

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET ``url`` conditionally; see the module docstring for limits and errors."""
        current = _check_url(url, url)
        headers: list[tuple[bytes, bytes]] = []
        if etag:
            headers.append((b"if-none-match", etag.encode("latin-1", "replace")))
        if last_modified:
            headers.append((b"if-modified-since", last_modified.encode("latin-1", "replace")))
        hops: list[str] = []
        permanent = True
        seen = {current}
        loop = asyncio.get_running_loop()
        started: float | None = None
        try:
            async with asyncio.timeout(None) as deadline:
                while True:
                    async with self._slots.hold(current.host):
                        if started is None:
                            started = time.perf_counter()
                            deadline.reschedule(loop.time() + self._settings.total_timeout)
                        outcome = await self._exchange(url, current, headers)
                    if isinstance(outcome, _Answer):
                        break
                    current = self._follow(url, current, outcome, seen, len(hops))
                    hops.append(str(current))
                    permanent = permanent and outcome.status in _PERMANENT
        except TimeoutError as exc:
            total = self._settings.total_timeout
            raise FetchTimeout(url, f"not done within total_timeout ({total:g}s)") from exc
        assert started is not None
        status, response_headers = outcome.status, outcome.headers
        return FetchResult(
            requested_url=url,
            url=str(current),
            status=status,
            content=outcome.content,
            headers=response_headers,
            elapsed=time.perf_counter() - started,
            etag=response_headers.get("etag") or (etag if status == 304 else None),
            last_modified=response_headers.get("last-modified")
            or (last_modified if status == 304 else None),
            permanent_redirect=str(current) if hops and permanent else None,
            redirects=tuple(hops),
        )

    def _follow(
        self, url: str, current: httpx.URL, redirect: _Redirect, seen: set[httpx.URL], count: int
    ) -> httpx.URL:
        try:
            target = current.join(redirect.location).copy_with(fragment=None)
        except (httpx.InvalidURL, ValueError) as exc:
            raise FetchError(url, f"bad redirect Location {redirect.location!r}") from exc
        target = _check_url(url, str(target))
        if target in seen:
            raise TooManyRedirects(url, f"redirect loop at {target}")
        if count >= self._settings.max_redirects:
            raise TooManyRedirects(url, f"more than {self._settings.max_redirects} redirects")
        seen.add(target)
        return target

    async def _exchange(
        self, url: str, current: httpx.URL, headers: list[tuple[bytes, bytes]]
    ) -> _Redirect | _Answer:
        """One request and its answer; redirects are returned, other failures raised."""
        where = "" if str(current) == url else f" (at {current})"
        try:
            reply = await self._send(current, headers)
        except AddressBlocked as exc:
            raise BlockedAddressError(url, f"{exc}{where}") from exc
        except (httpx.TimeoutException, httpcore.TimeoutException) as exc:
            raise FetchTimeout(url, f"{type(exc).__name__}{where}: {exc}") from exc
        except (httpx.TransportError, httpcore.ConnectError) as exc:
            raise TransportError(url, f"{type(exc).__name__}{where}: {exc}") from exc
        try:
            status = reply.status
            if status == 304:
                # A 304 has no body; reading the (empty) rest keeps the connection alive.
                with contextlib.suppress(httpx.HTTPError):
                    await reply.discard()
                return _Answer(status, reply.headers, None)
            if status != 200:
                # A short redirect or error body is read so that the connection can be kept
                # alive; a longer one closes it. Errors here do not matter: the status says
                # what happened.
                with contextlib.suppress(httpx.HTTPError):
                    await reply.discard(_DRAIN_LIMIT)
            if status in _REDIRECTS:
                location = reply.headers.get("location")
                if not location:
                    raise HTTPStatusError(url, status, f"HTTP {status} without Location{where}")
                return _Redirect(status, location)
            if status != 200:
                raise self._status_error(url, reply)
            content = await self._read_body(url, reply, where)
            return _Answer(status, reply.headers, content)
        finally:
            await reply.aclose()

    async def _send(
        self, current: httpx.URL, headers: list[tuple[bytes, bytes]]
    ) -> Reply | _HttpxReply:
        if self._http is not None:
            return await self._http.get(current, [*self._headers, *headers])
        assert self._client is not None
        if self._check_before_send:
            port = current.port or (443 if current.scheme == "https" else 80)
            await self._guard.addresses(current.host, port, self._settings.connect_timeout)
        try:
            request = self._client.build_request("GET", current, headers=headers)
            response = await self._client.send(request, stream=True)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # A kept-alive connection the server had just closed fails before any answer:
            # a GET is safe to send once more, on a fresh connection.
            request = self._client.build_request("GET", current, headers=headers)
            response = await self._client.send(request, stream=True)
        return _HttpxReply(response)

    def _status_error(self, url: str, reply: Reply | _HttpxReply) -> HTTPStatusError:
        status = reply.status
        if status in (429, 503):
            retry = parse_retry_after(reply.headers.get("retry-after"), self._clock())
            return RateLimited(url, status, retry)
        if status == 410:
            return SourceGone(url, status, "HTTP 410 Gone")
        return HTTPStatusError(url, status)

    async def _read_body(self, url: str, reply: Reply | _HttpxReply, where: str) -> bytes:
        cap = self._settings.max_body_bytes
        declared = reply.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise BodyTooLargeError(url, f"Content-Length {declared} > {cap} bytes{where}")
        encoding = reply.headers.get("content-encoding", "")
        try:
            decoder = CappedDecoder(encoding, cap)
            received = 0
            async for raw in reply.chunks():
                received += len(raw)
                if received > cap:
                    raise BodyTooLargeError(url, f"more than {cap} bytes received{where}")
                decoder.feed(raw)
            return decoder.finish()
        except BodyOverCap as exc:
            raise BodyTooLargeError(url, f"more than {cap} bytes once decoded{where}") from exc
        except (zlib.error, UnsupportedEncoding) as exc:
            raise TransportError(url, f"cannot decode the body{where}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise FetchTimeout(url, f"{type(exc).__name__} reading the body{where}") from exc
        except httpx.TransportError as exc:
            raise TransportError(url, f"{type(exc).__name__} reading the body{where}") from exc


@functools.lru_cache(maxsize=4096)
def _parse_url(text: str) -> httpx.URL:
    """Parsing costs more than a 304 exchange itself; the same feed URLs come back every poll
    (``httpx.URL`` is immutable, so sharing one is safe)."""
    return httpx.URL(text)


def _check_url(url: str, candidate: str) -> httpx.URL:
    """Only absolute http(s) URLs with a host; ``file://`` belongs to another source type."""
    try:
        parsed = _parse_url(candidate)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchError(url, f"invalid URL {candidate!r}") from exc
    if parsed.scheme not in ("http", "https"):
        scheme = parsed.scheme or "no"
        raise FetchError(url, f"{scheme} scheme in {candidate!r}: only http and https are fetched")
    if not parsed.host:
        raise FetchError(url, f"no host in {candidate!r}")
    return parsed


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """Retry-After as an aware UTC time: delta-seconds from ``now``, or an HTTP-date.

    Garbled, absent or absurd values give None (the scheduler then applies its own backoff).
    """
    if value is None:
        return None
    value = value.strip()
    try:
        if value.isdigit():
            return now + timedelta(seconds=int(value))
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)
