"""The SSRF guard for webhook URLs.

A webhook URL is chosen by a client, but the request is sent from inside our network: without a
guard, ``http://169.254.169.254/`` (cloud metadata), ``http://localhost:5672/`` or
``http://10.0.0.7/admin`` would let a client make the worker talk to things only it can reach.

The guard refuses any host that resolves to a non-global address, unless an operator allowed the
host name, the address or its range. It checks twice, because DNS can change between the two moments
(DNS rebinding):

1. :meth:`UrlGuard.check_url` when the URL is accepted (the API answers 422 ``webhook_url_refused``);
2. :meth:`UrlGuard.pool_manager` gives connections that re-check the address *actually connected
   to*, just before the first byte is sent.

The URL is parsed with urllib3's parser, the same one that later connects, so that the guard and the
client cannot disagree about which host a tricky URL names (``http://a\\@b/``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from models.errors import Invalid

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

#: The error code of every refusal (also used by the web layer and recorded on failed deliveries).
REFUSED = "webhook_url_refused"

#: The allow-list keyword that stands for the loopback networks and the name "localhost".
LOOPBACK = "loopback"

#: Ranges that ``ipaddress`` (3.11) does not flag but that must not be reached: shared address space
#: (carrier-grade NAT) is internal to a provider's network.
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")

#: NAT64 well-known prefix: the last 32 bits are an IPv4 address that a NAT64 gateway will reach.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

_LOOPBACK_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.IPv4Network("127.0.0.0/8"),
    ipaddress.IPv6Network("::1/128"),
)

_DEFAULT_PORTS = {"http": 80, "https": 443}


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (both families), without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse_ip(text: str) -> IPAddress | None:
    """An address from a URL host or a socket: brackets and an IPv6 zone (``%eth0``) are dropped."""
    text = text.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address will in effect reach (mapped, NAT64 or 6to4), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _why_not_global(ip: IPAddress) -> str | None:
    """The kind of non-global address ``ip`` is ("loopback", "private" ...), or None if it is global."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        inner = _why_not_global(embedded)
        return f"{inner}, embeds {embedded}" if inner else None
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "shared address space"
    if ip.is_private or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local):
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


def _normalize_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


class UrlGuard:
    """Refuses webhook URLs whose host resolves to a non-global address.

    Non-global means loopback, private, link-local (cloud metadata), shared 100.64/10, multicast,
    reserved, unspecified, and the IPv6 forms that embed such an IPv4 address (IPv4-mapped, NAT64,
    6to4).

    Parameters:
        allowed: exceptions: host names (``"hooks.internal"``, matched exactly, case-insensitive),
            IP addresses, CIDR ranges (``"10.1.0.0/16"``), or the word ``"loopback"`` (127.0.0.0/8,
            ::1 and the name ``localhost``; what ``chute dev`` and the tests use).
        resolver: ``(host, port) -> [address, ...]``; defaults to the system resolver. Tests pass a
            fake one because the machines have no external network.
    """

    def __init__(self, allowed: Sequence[str] = (), *, resolver: Resolver | None = None) -> None:
        self._resolver: Resolver = resolver or system_resolver
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip() for e in allowed):
            if not entry:
                continue
            if entry.lower() == LOOPBACK:
                hosts.add("localhost")
                networks.extend(_LOOPBACK_NETWORKS)
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(_normalize_host(entry))
        self.allowed_hosts: frozenset[str] = frozenset(hosts)
        self.allowed_networks: tuple[IPNetwork, ...] = tuple(networks)

    def __repr__(self) -> str:
        allowed = sorted(self.allowed_hosts) + [str(n) for n in self.allowed_networks]
        return f"UrlGuard(allowed={allowed!r})"

    def check_url(self, url: str) -> None:
        """Refuse ``url`` unless it is http(s), names a host, carries no credentials, and every address
        its host resolves to is global or allowed.

        All addresses are checked, not the first: the client would try them in turn.

        Raises:
            Invalid: code ``webhook_url_refused``, details ``{"url", "reason"}``.
        """

        def refuse(reason: str) -> Invalid:
            return Invalid(f"webhook URL refused: {reason}", code=REFUSED, details={"url": url, "reason": reason})

        if any(c.isspace() or ord(c) < 0x20 or c == "\\" for c in url):
            raise refuse("the URL contains whitespace, control characters or backslashes")
        try:
            parsed = parse_url(url)
        except LocationParseError as e:
            raise refuse(f"malformed URL: {e}") from None
        scheme = (parsed.scheme or "").lower()
        if scheme not in _DEFAULT_PORTS:
            raise refuse(f"scheme must be http or https, not {scheme or 'missing'!r}")
        if parsed.auth is not None or "@" in (parsed.netloc or ""):
            raise refuse("credentials in the URL are not accepted")
        if not parsed.host:
            raise refuse("the URL has no host")
        host = _normalize_host(parsed.host)
        if host in self.allowed_hosts:
            return
        literal = _parse_ip(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = self._resolver(host, parsed.port or _DEFAULT_PORTS[scheme])
            except (OSError, UnicodeError) as e:
                raise refuse(f"{host} does not resolve ({e})") from None
            if not addresses:
                raise refuse(f"{host} does not resolve")
        for address in addresses:
            reason = self._refusal(address)
            if reason is not None and literal is not None:
                raise refuse(f"address {reason} is not allowed")
            if reason is not None:
                raise refuse(f"{host} resolves to {reason}")

    def check_address(self, host: str, address: str) -> None:
        """Refuse connecting to ``address`` for ``host`` unless one of them is allowed or the address
        is global. Called with the peer address of every new connection.

        Raises:
            Invalid: code ``webhook_url_refused``, details ``{"host", "address", "reason"}``.
        """
        if _normalize_host(host) in self.allowed_hosts:
            return
        reason = self._refusal(address)
        if reason is not None:
            raise Invalid(
                f"webhook address refused: {reason}",
                code=REFUSED,
                details={"host": host, "address": address, "reason": reason},
            )

    def pool_manager(self, timeout: float, maxsize: int = 1) -> urllib3.PoolManager:
        """A PoolManager for webhook deliveries whose connections check the peer address.

        Redirects are never followed (a redirect could point anywhere, and the receiver should fix its
        URL instead) and nothing is retried inside urllib3: one call, one attempt.

        Parameters:
            timeout: connect and read timeout, in seconds, of each socket operation.
            maxsize: keep-alive connections kept per destination (more may be open at once; the
                extra ones are closed after their request).
        """
        return _GuardedPoolManager(
            self,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=False,
            maxsize=maxsize,
        )

    def _refusal(self, address: str) -> str | None:
        """Why connecting to ``address`` is refused ("127.0.0.1 (loopback)"), or None if it is allowed."""
        ip = _parse_ip(address)
        if ip is None:
            return f"{address!r} is not an IP address"
        candidates = [ip]
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            candidates.append(embedded)
        if any(c in net for c in candidates for net in self.allowed_networks if c.version == net.version):
            return None
        kind = _why_not_global(ip)
        return None if kind is None else f"{ip} ({kind})"


class _GuardedConnectionMixin:
    """Checks the peer of each new socket with the guard, before TLS and before any byte is sent."""

    url_guard: UrlGuard
    host: str

    def __init__(self, *args: Any, url_guard: UrlGuard, **kwargs: Any) -> None:
        self.url_guard = url_guard
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        try:
            self.url_guard.check_address(self.host, str(sock.getpeername()[0]))
        except BaseException:
            sock.close()
            raise
        return sock


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedPoolManager(urllib3.PoolManager):
    """A PoolManager whose pools make guarded connections and that never follows redirects.

    The guard reaches the connections through the pool's ``conn_kw`` (not the PoolManager's keyword
    arguments: those become the pool key, which has a fixed set of fields).
    """

    def __init__(self, guard: UrlGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url_guard = guard
        self.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }

    def _new_pool(
        self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None
    ) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.conn_kw["url_guard"] = self.url_guard
        return pool

    def urlopen(  # type: ignore[override]
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse:
        del redirect  # the policy is fixed: a redirect is an answer, not an instruction
        return super().urlopen(method, url, redirect=False, **kw)
