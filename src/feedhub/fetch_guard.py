"""What keeps a fetch safe and bounded: the address guard, the capped decoder, the slots.

The address guard: feeds may only be fetched from public addresses unless the operator allows.

A feed URL is operator- or publisher-controlled input (redirects included), so without a guard a
feed could make the server read its own admin ports or the cloud metadata endpoint. The check
must run on the *resolved* address, and the connection must go to exactly the address that was
checked; checking a name and then letting the HTTP stack resolve it again leaves a DNS-rebinding
gap.

How the connection is pinned: the fetcher's own connections (``fetch_http11``) call
``AddressGuard.addresses`` for every new connection and connect to one of the IPs it returns,
with TLS ``server_hostname`` set to the URL's host name. An httpx transport gets the same through
``GuardedTransport``: its httpcore connection pool is given ``GuardedBackend`` as its
network backend. httpcore calls ``connect_tcp(host, port)`` with the URL's host name for every new
connection, and TLS is then started on that stream with ``server_hostname`` set to the same host
name. The backend resolves the name itself, drops the addresses the policy refuses, and connects
to an allowed *IP*; so the checked address is the connected address, while the Host header, SNI
and certificate verification all still use the name. This works the same for http and https and
for every redirect hop, since each new connection passes through it. Kept-alive connections are
reused only for the same scheme, host and port, and were checked when they were opened.

httpx has no public hook for the network backend, so ``GuardedTransport`` replaces the pool of an
``httpx.AsyncHTTPTransport`` (the ``_pool`` attribute, stable across httpx 0.2x; the pin in
pyproject keeps it so, and the tests fail if the guard is bypassed).

``CappedDecoder`` undoes gzip/deflate with ``zlib``'s ``max_length``, so a small compressed body
cannot expand past the cap in memory before the cap is checked. ``Slots`` are the global and
per-host semaphores.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import ipaddress
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressBlocked(Exception):
    """Raised inside the transport; the fetcher turns it into ``BlockedAddressError``."""

    def __init__(self, host: str, addresses: Sequence[str]) -> None:
        self.host = host
        self.addresses = tuple(addresses)
        if parse_ip(host) is not None:
            message = f"{host} is not a public address"
        else:
            message = f"{host} resolves to {', '.join(self.addresses)}: no public address"
        super().__init__(f"{message} (allow it with fetch.allowlist)")


async def system_resolver(host: str, port: int) -> list[str]:
    """The event loop's ``getaddrinfo`` (a thread), addresses in the order the system prefers."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_ip(host: str) -> IPAddress | None:
    """The host as an IP address, or None when it is a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True for globally routable unicast addresses.

    ``is_global`` alone is not enough: Python counts multicast (224.0.0.0/4, ff00::/8) as
    global. IPv6 forms that carry an IPv4 address are judged by that IPv4 address.
    """
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return is_public(embedded)
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


class AddressPolicy:
    """Which hosts and addresses may be contacted: ``fetch.allow_private_networks`` and
    ``fetch.allowlist`` (host names, ``*`` wildcards allowed, or IP networks)."""

    def __init__(self, *, allow_private: bool = False, allowlist: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        names: list[str] = []
        for entry in allowlist:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.append(entry.lower().rstrip("."))
        self._networks = tuple(networks)
        self._names = tuple(names)

    def host_allowed(self, host: str) -> bool:
        """An allowlisted host name may resolve to any address."""
        if self.allow_private:
            return True
        name = host.lower().rstrip(".")
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self._names)

    def address_allowed(self, ip: IPAddress) -> bool:
        if self.allow_private or is_public(ip):
            return True
        candidates = [ip]
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            candidates.append(embedded)
        return any(c in net for c in candidates for net in self._networks)


class AddressGuard:
    """Resolves a host once and returns only the addresses the policy allows."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver | None = None) -> None:
        self.policy = policy
        self._resolver = resolver or system_resolver

    async def addresses(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        """Allowed addresses to connect to, in preference order.

        Raises ``AddressBlocked`` when none is allowed, ``httpcore.ConnectError`` when the name
        does not resolve and ``httpcore.ConnectTimeout`` when resolving takes too long. An IP
        literal is judged as it is, without asking the resolver.
        """
        literal = parse_ip(host)
        if literal is not None:
            if not self.policy.address_allowed(literal):
                raise AddressBlocked(host, [_shown(literal)])
            return [_connectable(literal)]
        try:
            async with asyncio.timeout(timeout):
                found = await self._resolver(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        ips = [ip for ip in map(parse_ip, found) if ip is not None]
        if not ips:
            raise httpcore.ConnectError(f"{host} has no address")
        if self.policy.host_allowed(host):
            return [_connectable(ip) for ip in ips]
        allowed = [_connectable(ip) for ip in ips if self.policy.address_allowed(ip)]
        if not allowed:
            raise AddressBlocked(host, [_shown(ip) for ip in ips])
        return allowed


def _shown(ip: IPAddress) -> str:
    """``::ffff:10.1.2.3`` rather than Python's ``::ffff:a01:203``."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def _connectable(ip: IPAddress) -> str:
    """Connect to an IPv4-mapped address over IPv4: the socket layer may lack dual-stack."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, then connects to the checked IP (see the module docstring)."""

    def __init__(self, guard: AddressGuard, inner: httpcore.AsyncNetworkBackend | None = None):
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.addresses(host, port, timeout)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:  # in order, each with the full connect timeout
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol("unix sockets are not used for feeds")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle takes tens of milliseconds; every transport can share the result."""
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every connection goes through ``GuardedBackend``.

    Never reads proxy settings or certificate paths from the environment: a proxy would connect
    on our behalf to addresses the guard never saw. ``ssl_context`` is for tests with their own
    certificate authority; by default the certifi bundle is used, as httpx does.
    """

    def __init__(
        self,
        guard: AddressGuard,
        *,
        limits: httpx.Limits,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        context = ssl_context or default_ssl_context()
        super().__init__(verify=context, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(guard),
        )


class BodyOverCap(Exception):
    """The decoded body passed the cap."""


class UnsupportedEncoding(Exception):
    """A Content-Encoding we did not ask for and cannot decode."""


class CappedDecoder:
    """Content-Encoding decoding that never produces more than ``cap`` bytes.

    ``deflate`` is meant to be zlib-wrapped but some servers send a bare deflate stream; like
    browsers (and httpx), fall back to that when the zlib header is missing.
    """

    def __init__(self, encoding: str, cap: int) -> None:
        codings = [c.strip().lower() for c in encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}")
        self._coding = codings[0] if codings else None
        self._zlib: zlib._Decompress | None = None
        if self._coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif self._coding == "deflate":
            self._zlib = zlib.decompressobj()
        self._fresh = True
        self._cap = cap
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        if self._zlib is None:
            self._add(data)
            return
        try:
            out = self._zlib.decompress(data, self._cap - self._size + 1)
        except zlib.error:
            if not (self._fresh and self._coding == "deflate"):
                raise
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._zlib.decompress(data, self._cap - self._size + 1)
        self._fresh = False
        self._add(out)

    def finish(self) -> bytes:
        if self._zlib is not None:
            self._add(self._zlib.flush())
        return b"".join(self._parts)

    def _add(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._cap:
            raise BodyOverCap
        if data:
            self._parts.append(data)


class Slots:
    """A global semaphore plus one per host name, created on demand and dropped when idle."""

    def __init__(self, total: int, per_host: int) -> None:
        self._global = asyncio.Semaphore(total)
        self._per_host = per_host
        self._hosts: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[None]:
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._hosts[host] = (asyncio.Semaphore(self._per_host), [0])
        semaphore, users = entry
        users[0] += 1
        try:
            async with semaphore, self._global:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._hosts[host]
