"""The fetcher against a real HTTP server on 127.0.0.1 (and 127.0.0.2 as the "private" target)."""

from __future__ import annotations

import asyncio
import gzip
import inspect
import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

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
from feedhub.fetch import Fetcher, parse_retry_after
from feedhub.fetch_guard import (
    AddressBlocked,
    AddressGuard,
    AddressPolicy,
    BodyOverCap,
    CappedDecoder,
    GuardedTransport,
    Slots,
    is_public,
)
from feedhub.settings import FetchSettings
from tests.support_httpserver import ETAG, FEED, LAST_MODIFIED, LocalHTTPServer

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CAP = 64 * 1024


def settings(**overrides: Any) -> FetchSettings:
    values: dict[str, Any] = {
        "allowlist": ("127.0.0.1",),
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "total_timeout": 5.0,
        "max_body_bytes": CAP,
    }
    values.update(overrides)
    return FetchSettings(**values)


def fetcher(**overrides: Any) -> Fetcher:
    resolver = overrides.pop("resolver", None)
    return Fetcher(
        settings(**overrides), user_agent="feedhub-test/1.0", clock=lambda: NOW, resolver=resolver
    )


class Resolver:
    """Gives its answers in turn (the last one from then on) and records every question."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


@pytest.fixture(scope="module")
def live() -> Iterator[LocalHTTPServer]:
    server = LocalHTTPServer(("127.0.0.1", "127.0.0.2")).start()
    yield server
    server.stop()


@pytest.fixture
def srv(live: LocalHTTPServer) -> LocalHTTPServer:
    live.reset()
    return live


@pytest.fixture
async def fetch() -> AsyncIterator[Fetcher]:
    async with fetcher() as f:
        yield f


def test_public_surface() -> None:
    params = inspect.signature(Fetcher.__init__).parameters
    assert list(params) == ["self", "settings", "user_agent", "clock", "transport", "resolver"]
    assert all(params[name].kind is inspect.Parameter.KEYWORD_ONLY for name in list(params)[2:])
    assert list(inspect.signature(Fetcher.fetch).parameters) == [
        "self",
        "url",
        "etag",
        "last_modified",
    ]


# -- success, validators, encodings ---------------------------------------------------------


async def test_200_returns_body_validators_and_headers(
    srv: LocalHTTPServer, fetch: Fetcher
) -> None:
    url = srv.url("/feed")
    result = await fetch.fetch(url)
    assert (result.status, result.content) == (200, FEED)
    assert result.url == result.requested_url == url
    assert (result.etag, result.last_modified) == (ETAG, LAST_MODIFIED)
    assert result.headers["content-type"].startswith("application/rss+xml")
    assert not result.not_modified and result.redirects == () and result.permanent_redirect is None
    assert 0 < result.elapsed < 2


async def test_request_headers(srv: LocalHTTPServer, fetch: Fetcher) -> None:
    await fetch.fetch(srv.url("/feed"))
    (request,) = srv.requests
    assert request.headers["user-agent"] == "feedhub-test/1.0"
    assert "application/rss+xml" in request.headers["accept"]
    assert "application/atom+xml" in request.headers["accept"]
    assert request.headers["accept-encoding"] == "gzip, deflate"
    assert "if-none-match" not in request.headers and "if-modified-since" not in request.headers
    assert "cookie" not in request.headers


async def test_304_via_etag(srv: LocalHTTPServer, fetch: Fetcher) -> None:
    first = await fetch.fetch(srv.url("/feed?only=etag"))
    assert first.last_modified is None
    second = await fetch.fetch(srv.url("/feed?only=etag"), etag=first.etag)
    assert second.status == 304 and second.not_modified and second.content is None
    assert second.etag == ETAG
    assert srv.requests[-1].headers["if-none-match"] == ETAG


async def test_304_via_last_modified(srv: LocalHTTPServer, fetch: Fetcher) -> None:
    first = await fetch.fetch(srv.url("/feed?only=lm"))
    assert first.etag is None
    second = await fetch.fetch(srv.url("/feed?only=lm"), last_modified=first.last_modified)
    assert second.status == 304 and second.content is None
    assert second.last_modified == LAST_MODIFIED
    assert srv.requests[-1].headers["if-modified-since"] == LAST_MODIFIED


async def test_changed_etag_gives_200(srv: LocalHTTPServer, fetch: Fetcher) -> None:
    result = await fetch.fetch(srv.url("/feed?etag=%22v2%22"), etag=ETAG)
    assert result.status == 200 and result.etag == '"v2"'


async def test_304_without_validators_keeps_the_ones_sent(
    srv: LocalHTTPServer, fetch: Fetcher
) -> None:
    result = await fetch.fetch(srv.url("/status?code=304"), etag='"x"', last_modified=LAST_MODIFIED)
    assert result.status == 304
    assert (result.etag, result.last_modified) == ('"x"', LAST_MODIFIED)


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/deflate?raw=1"])
async def test_compressed_bodies_are_decoded(
    srv: LocalHTTPServer, fetch: Fetcher, path: str
) -> None:
    result = await fetch.fetch(srv.url(path))
    assert result.content == FEED
    assert result.headers["content-encoding"] in ("gzip", "deflate")


@pytest.mark.parametrize("encoding", ["gzip", "br"])
async def test_undecodable_body_is_a_transport_error(
    srv: LocalHTTPServer, fetch: Fetcher, encoding: str
) -> None:
    url = srv.url(f"/mislabeled?encoding={encoding}")
    with pytest.raises(TransportError) as caught:
        await fetch.fetch(url)
    assert caught.value.url == url


async def test_connection_is_kept_alive(srv: LocalHTTPServer, fetch: Fetcher) -> None:
    for _ in range(3):
        await fetch.fetch(srv.url("/feed"))
        await fetch.fetch(srv.url("/hops?codes=302"))
        with pytest.raises(HTTPStatusError):
            await fetch.fetch(srv.url("/status?code=404"))
    assert len(srv.requests) == 12
    assert srv.stats.connections == {"127.0.0.1": 1}


# -- redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [302, 307])
async def test_temporary_redirect(srv: LocalHTTPServer, fetch: Fetcher, code: int) -> None:
    result = await fetch.fetch(srv.url(f"/hops?codes={code}"))
    assert result.status == 200 and result.content == FEED
    assert result.url == srv.url("/feed") and result.redirects == (srv.url("/feed"),)
    assert result.permanent_redirect is None


async def test_permanent_redirects_are_reported(srv: LocalHTTPServer, fetch: Fetcher) -> None:
    result = await fetch.fetch(srv.url("/hops?codes=301,308"))
    assert result.redirects == (srv.url("/hops?codes=308"), srv.url("/feed"))
    assert result.permanent_redirect == srv.url("/feed") == result.url


async def test_one_temporary_hop_makes_the_chain_temporary(
    srv: LocalHTTPServer, fetch: Fetcher
) -> None:
    result = await fetch.fetch(srv.url("/hops?codes=301,307"))
    assert result.url == srv.url("/feed") and result.permanent_redirect is None


async def test_validators_follow_redirects(srv: LocalHTTPServer, fetch: Fetcher) -> None:
    result = await fetch.fetch(srv.url("/hops?codes=301"), etag=ETAG)
    assert result.status == 304 and result.url == srv.url("/feed")
    assert [r.headers.get("if-none-match") for r in srv.requests] == [ETAG, ETAG]


async def test_redirect_loop(srv: LocalHTTPServer) -> None:
    async with fetcher(max_redirects=10) as f:
        with pytest.raises(TooManyRedirects, match="loop") as caught:
            await f.fetch(srv.url("/loop-a"))
    assert caught.value.url == srv.url("/loop-a")
    assert [r.path for r in srv.requests] == ["/loop-a", "/loop-b"]


async def test_too_many_redirects(srv: LocalHTTPServer) -> None:
    async with fetcher(max_redirects=2) as f:
        assert (await f.fetch(srv.url("/hops?codes=301,302"))).status == 200
        with pytest.raises(TooManyRedirects, match="more than 2"):
            await f.fetch(srv.url("/hops?codes=301,302,301"))


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/feed"])
async def test_redirect_to_other_scheme_is_refused(
    srv: LocalHTTPServer, fetch: Fetcher, target: str
) -> None:
    with pytest.raises(FetchError, match="only http and https"):
        await fetch.fetch(srv.url(f"/redirect?code=302&to={target}"))


# -- status codes ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [404, 500, 204])
async def test_other_statuses_are_http_errors(
    srv: LocalHTTPServer, fetch: Fetcher, code: int
) -> None:
    url = srv.url(f"/status?code={code}")
    with pytest.raises(HTTPStatusError) as caught:
        await fetch.fetch(url)
    assert type(caught.value) is HTTPStatusError
    assert (caught.value.status, caught.value.url) == (code, url)


async def test_410_is_source_gone(srv: LocalHTTPServer, fetch: Fetcher) -> None:
    with pytest.raises(SourceGone) as caught:
        await fetch.fetch(srv.url("/status?code=410"))
    assert caught.value.status == 410


async def test_429_with_retry_after_seconds(srv: LocalHTTPServer, fetch: Fetcher) -> None:
    with pytest.raises(RateLimited) as caught:
        await fetch.fetch(srv.url("/status?code=429&retry_after=120"))
    assert caught.value.status == 429
    assert caught.value.retry_after == NOW + timedelta(seconds=120)


async def test_503_with_http_date_retry_after(srv: LocalHTTPServer, fetch: Fetcher) -> None:
    with pytest.raises(RateLimited) as caught:
        await fetch.fetch(srv.url("/busy-until?seconds=3600"))
    assert caught.value.status == 503
    expected = datetime.now(UTC) + timedelta(seconds=3600)
    assert caught.value.retry_after is not None
    assert abs((caught.value.retry_after - expected).total_seconds()) < 5


@pytest.mark.parametrize("value", [None, "soon", "-5", "1.5"])
async def test_503_without_usable_retry_after(
    srv: LocalHTTPServer, fetch: Fetcher, value: str | None
) -> None:
    query = "" if value is None else f"&retry_after={value}"
    with pytest.raises(RateLimited) as caught:
        await fetch.fetch(srv.url(f"/status?code=503{query}"))
    assert caught.value.retry_after is None


def test_parse_retry_after() -> None:
    assert parse_retry_after("0", NOW) == NOW
    assert parse_retry_after(" 90 ", NOW) == NOW + timedelta(seconds=90)
    assert parse_retry_after("Fri, 02 Jan 2026 04:00:00 GMT", NOW) == datetime(
        2026, 1, 2, 4, tzinfo=UTC
    )
    assert parse_retry_after("Fri, 02 Jan 2026 12:00:00 +0800", NOW) == datetime(
        2026, 1, 2, 4, tzinfo=UTC
    )
    for garbled in (None, "", "tomorrow", "-1", "9" * 30, "Fri, 99 Foo 2026"):
        assert parse_retry_after(garbled, NOW) is None


# -- time and size limits -------------------------------------------------------------------


@pytest.mark.timeout(10)
async def test_stall_mid_body_times_out_quickly(srv: LocalHTTPServer) -> None:
    async with fetcher(read_timeout=0.2, max_body_bytes=1024 * 1024) as f:
        start = time.monotonic()
        with pytest.raises(FetchTimeout) as caught:
            await f.fetch(srv.url("/stall?length=100000&send=500"))
    assert time.monotonic() - start < 1.5
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


@pytest.mark.timeout(10)
async def test_total_timeout_covers_a_slow_drip(srv: LocalHTTPServer) -> None:
    async with fetcher(read_timeout=1.0, total_timeout=0.3) as f:
        start = time.monotonic()
        with pytest.raises(FetchTimeout, match="total_timeout"):
            await f.fetch(srv.url("/drip?interval=0.02"))
    assert time.monotonic() - start < 1.0
    assert srv.finished("/drip").wait(2)


@pytest.mark.timeout(10)
async def test_endless_body_is_aborted_at_the_cap(srv: LocalHTTPServer, fetch: Fetcher) -> None:
    with pytest.raises(BodyTooLargeError, match="received"):
        await fetch.fetch(srv.url("/endless"))
    assert srv.finished("/endless").wait(5), "the server is still sending"
    assert srv.stats.body_bytes_sent["/endless"] < 32 * 1024 * 1024


async def test_large_chunked_body_is_not_read_to_the_end(
    srv: LocalHTTPServer, fetch: Fetcher
) -> None:
    size = 64 * 1024 * 1024
    with pytest.raises(BodyTooLargeError):
        await fetch.fetch(srv.url(f"/big?size={size}"))
    assert srv.finished("/big").wait(5)
    assert srv.stats.body_bytes_sent["/big"] < size


@pytest.mark.timeout(10)
async def test_content_length_over_cap_is_refused_before_reading(srv: LocalHTTPServer) -> None:
    # The server sends headers only; reading the body would end in the read timeout instead.
    async with fetcher(read_timeout=3.0) as f:
        start = time.monotonic()
        with pytest.raises(BodyTooLargeError, match="Content-Length"):
            await f.fetch(srv.url(f"/declared?length={CAP + 1}"))
    assert time.monotonic() - start < 1.0


async def test_body_exactly_at_cap_is_accepted(srv: LocalHTTPServer, fetch: Fetcher) -> None:
    result = await fetch.fetch(srv.url(f"/big?size={CAP}"))
    assert result.content is not None and len(result.content) == CAP


async def test_gzip_bomb_stops_at_the_decoded_cap(srv: LocalHTTPServer, fetch: Fetcher) -> None:
    with pytest.raises(BodyTooLargeError, match="decoded"):
        await fetch.fetch(srv.url(f"/bomb?size={16 * 1024 * 1024}"))


@pytest.mark.parametrize("split", [1, 7, 4096])
def test_capped_decoder_in_pieces(split: int) -> None:
    body = gzip.compress(FEED)
    decoder = CappedDecoder("gzip", cap=len(FEED))
    for i in range(0, len(body), split):
        decoder.feed(body[i : i + split])
    assert decoder.finish() == FEED
    over = CappedDecoder("gzip", cap=len(FEED) - 1)
    with pytest.raises(BodyOverCap):
        over.feed(body)
        over.finish()


# -- concurrency ----------------------------------------------------------------------------


async def test_per_host_limit(srv: LocalHTTPServer) -> None:
    async with fetcher(per_host=2, concurrency=10) as f:
        results = await asyncio.gather(*(f.fetch(srv.url(f"/slow?n={i}")) for i in range(8)))
    assert [r.status for r in results] == [200] * 8
    assert srv.stats.max_active == 2


async def test_host_slots_are_dropped_when_idle() -> None:
    slots = Slots(total=4, per_host=1)
    async with slots.hold("a.test"), slots.hold("b.test"):
        assert len(slots._hosts) == 2
    assert slots._hosts == {}


async def test_global_limit_across_hosts(srv: LocalHTTPServer) -> None:
    async with fetcher(per_host=3, concurrency=4, allowlist=("127.0.0.0/30",)) as f:
        hosts = ("127.0.0.1", "127.0.0.2")
        urls = [srv.url(f"/slow?n={i}", host) for i in range(4) for host in hosts]
        results = await asyncio.gather(*(f.fetch(u) for u in urls))
    assert len(results) == 8
    assert srv.stats.max_active == 4


# -- the address guard ----------------------------------------------------------------------


async def test_redirect_to_private_address_is_blocked_without_connecting(
    srv: LocalHTTPServer, fetch: Fetcher
) -> None:
    private = srv.url("/feed", "127.0.0.2")
    url = srv.url(f"/redirect?code=302&to={private}")
    with pytest.raises(BlockedAddressError) as caught:
        await fetch.fetch(url)
    assert caught.value.url == url and "127.0.0.2" in caught.value.message
    assert srv.stats.connections.get("127.0.0.2", 0) == 0
    # Control: once allowed, the same redirect does reach 127.0.0.2.
    async with fetcher(allowlist=("127.0.0.0/30",)) as f:
        assert (await f.fetch(url)).url == private
    assert srv.stats.connections["127.0.0.2"] == 1


async def test_redirect_to_ipv4_mapped_loopback_is_blocked(
    srv: LocalHTTPServer, fetch: Fetcher
) -> None:
    with pytest.raises(BlockedAddressError, match="::ffff:127.0.0.2"):
        await fetch.fetch(srv.url(f"/redirect?code=301&to=http://[::ffff:127.0.0.2]:{srv.port}/"))
    assert srv.stats.connections == {"127.0.0.1": 1}


async def test_loopback_is_blocked_by_default(srv: LocalHTTPServer) -> None:
    async with fetcher(allowlist=()) as f:
        with pytest.raises(BlockedAddressError):
            await f.fetch(srv.url("/feed"))
    assert srv.stats.connections == {}


async def test_allow_private_networks(srv: LocalHTTPServer) -> None:
    async with fetcher(allowlist=(), allow_private_networks=True) as f:
        assert (await f.fetch(srv.url("/feed", "127.0.0.2"))).status == 200


# End to end, names resolve only to loopback addresses: were the guard broken, the test would
# still touch nothing beyond 127.0.0.0/8. Other private ranges are checked on the guard alone.
@pytest.mark.parametrize("answer", [["127.0.0.2"], ["::1"], ["::ffff:127.0.0.2"]])
async def test_name_resolving_to_private_address_is_blocked(
    srv: LocalHTTPServer, answer: list[str]
) -> None:
    resolver = Resolver(answer)
    async with fetcher(resolver=resolver) as f:
        with pytest.raises(BlockedAddressError, match="feed.test resolves to"):
            await f.fetch(f"http://feed.test:{srv.port}/feed")
    assert resolver.calls == [("feed.test", srv.port)]
    assert srv.stats.connections == {}


@pytest.mark.parametrize(
    "answer",
    [
        ["192.168.1.20"],
        ["10.0.0.1", "172.16.5.4"],
        ["169.254.169.254"],
        ["fe80::1"],
        ["::ffff:10.1.2.3"],
        ["fd00::1"],
        ["0.0.0.0"],
    ],
)
async def test_guard_refuses_private_answers(answer: list[str]) -> None:
    guard = AddressGuard(AddressPolicy(allowlist=["127.0.0.1"]), Resolver(answer))
    with pytest.raises(AddressBlocked) as caught:
        await guard.addresses("feed.test", 80)
    assert caught.value.addresses == tuple(answer)


async def test_guard_keeps_only_allowed_answers() -> None:
    guard = AddressGuard(AddressPolicy(), Resolver(["10.0.0.1", "8.8.8.8", "::ffff:1.1.1.1"]))
    assert await guard.addresses("feed.test", 80) == ["8.8.8.8", "1.1.1.1"]


async def test_connects_to_the_checked_address_with_the_name_kept(srv: LocalHTTPServer) -> None:
    # feed.test exists nowhere but in this resolver, so success means the connection went to
    # an address that was checked; 127.0.0.2 listens on the same port but is not allowed.
    resolver = Resolver(["127.0.0.2", "127.0.0.1"])
    port = srv.port
    async with fetcher(resolver=resolver) as f:
        result = await f.fetch(f"http://feed.test:{port}/feed")
    assert result.status == 200
    assert srv.requests[0].headers["host"] == f"feed.test:{port}"
    assert srv.stats.connections == {"127.0.0.1": 1}


async def test_every_new_connection_is_checked_again(srv: LocalHTTPServer) -> None:
    # DNS rebinding: the second answer points somewhere private.
    resolver = Resolver(["127.0.0.1"], ["127.0.0.2"])
    url = f"http://feed.test:{srv.port}/feed?close=1"
    async with fetcher(resolver=resolver) as f:
        assert (await f.fetch(url)).status == 200
        with pytest.raises(BlockedAddressError):
            await f.fetch(url)
    assert len(resolver.calls) == 2
    assert srv.stats.connections == {"127.0.0.1": 1}


async def test_ip_literal_skips_the_resolver(srv: LocalHTTPServer) -> None:
    resolver = Resolver(["192.168.0.1"])
    async with fetcher(resolver=resolver) as f:
        assert (await f.fetch(srv.url("/feed"))).status == 200
    assert resolver.calls == []


@pytest.mark.parametrize("entry", ["feed.test", "*.test"])
async def test_allowlisted_host_name(srv: LocalHTTPServer, entry: str) -> None:
    resolver = Resolver(["127.0.0.2"])
    async with fetcher(resolver=resolver, allowlist=(entry,)) as f:
        result = await f.fetch(f"http://feed.test:{srv.port}/feed")
    assert result.status == 200
    async with fetcher(resolver=resolver, allowlist=(entry,)) as f:
        with pytest.raises(BlockedAddressError):
            await f.fetch(f"http://other.example:{srv.port}/feed")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.255.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("240.0.0.1", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("2001:db8::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:192.168.0.1", False),
        ("64:ff9b::a00:1", False),
        ("2002:c0a8:101::1", False),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_policy_networks_match_ipv4_mapped_addresses() -> None:
    policy = AddressPolicy(allowlist=["127.0.0.1/32", "fd00::/8"])
    assert policy.address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert policy.address_allowed(ipaddress.ip_address("fd12::1"))
    assert not policy.address_allowed(ipaddress.ip_address("127.0.0.2"))


# -- transport failures and bad URLs ---------------------------------------------------------


async def test_connection_refused(fetch: Fetcher) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/feed"
    with pytest.raises(TransportError) as caught:
        await fetch.fetch(url)
    assert caught.value.url == url
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("path", ["/garbage", "/truncated"])
async def test_protocol_errors(srv: LocalHTTPServer, fetch: Fetcher, path: str) -> None:
    with pytest.raises(TransportError) as caught:
        await fetch.fetch(srv.url(path))
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)


async def test_dns_failure_is_a_transport_error() -> None:
    async def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async with fetcher(resolver=failing) as f:
        with pytest.raises(TransportError, match="cannot resolve nowhere.test"):
            await f.fetch("http://nowhere.test/feed")


async def test_slow_dns_is_a_timeout() -> None:
    async def hanging(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return ["127.0.0.1"]

    async with fetcher(resolver=hanging, connect_timeout=0.1) as f:
        with pytest.raises(FetchTimeout):
            await f.fetch("http://slow.test/feed")


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://127.0.0.1/feed", "feed.xml", "http:///nohost", "http://[::1"],
)
async def test_unfetchable_urls(fetch: Fetcher, url: str) -> None:
    with pytest.raises(FetchError) as caught:
        await fetch.fetch(url)
    assert type(caught.value) is FetchError and caught.value.url == url


# -- an injected transport still gets the guard ---------------------------------------------


async def test_injected_transport_is_guarded_before_sending() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=b"<rss/>")

    for allowed in (False, True):
        f = Fetcher(
            settings(allowlist=(), allow_private_networks=allowed),
            user_agent="t",
            transport=httpx.MockTransport(handler),
        )
        async with f:
            if allowed:
                assert (await f.fetch("http://10.0.0.1/feed")).content == b"<rss/>"
            else:
                with pytest.raises(BlockedAddressError):
                    await f.fetch("http://10.0.0.1/feed")
    assert seen == ["http://10.0.0.1/feed"]


# -- https: SNI and certificate checks use the name, the socket the checked address -----------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = (
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
        " -subj /CN=feed.test -addext subjectAltName=DNS:feed.test"
    )
    subprocess.run(
        [*command.split(), "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_live(tls_files: tuple[Path, Path]) -> Iterator[LocalHTTPServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    server = LocalHTTPServer(("127.0.0.1",), tls=context).start()
    yield server
    server.stop()


async def test_https_through_the_guard(
    tls_live: LocalHTTPServer, tls_files: tuple[Path, Path]
) -> None:
    tls_live.reset()
    resolver = Resolver(["127.0.0.1"])
    guard = AddressGuard(AddressPolicy(allowlist=["127.0.0.1"]), resolver)
    client_context = ssl.create_default_context(cafile=str(tls_files[0]))
    transport = GuardedTransport(
        guard, limits=httpx.Limits(max_connections=2), ssl_context=client_context
    )
    port = tls_live.port
    async with Fetcher(settings(), user_agent="t", transport=transport, resolver=resolver) as f:
        result = await f.fetch(f"https://feed.test:{port}/feed")
    assert result.content == FEED
    assert tls_live.stats.sni == ["feed.test"]
    assert tls_live.requests[0].headers["host"] == f"feed.test:{port}"
    assert resolver.calls == [("feed.test", port)]


async def test_https_certificate_is_verified(tls_live: LocalHTTPServer) -> None:
    resolver = Resolver(["127.0.0.1"])
    async with fetcher(resolver=resolver) as f:
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await f.fetch(f"https://feed.test:{tls_live.port}/feed")
