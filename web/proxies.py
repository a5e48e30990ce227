"""Forwarded headers, believed only from the proxies ops name (``CHUTE_TRUSTED_PROXIES``).

Behind a proxy, the scheme, host and client address a request arrived with are in
``X-Forwarded-*`` headers; werkzeug's ProxyFix applies them, so ``Location`` headers and
result URLs say ``https://api.example.com`` instead of ``http://10.0.3.7:8000``. Anyone can
send those headers, so they are applied only when the connection comes from a trusted address.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Peer addresses whose verdict is remembered (the least recently seen are forgotten first).
MAX_REMEMBERED = 4096


class TrustedProxyFix:
    """A WSGI middleware: ProxyFix (one hop of each header) for trusted peers, the app alone otherwise.

    Parameters:
        app: The WSGI app.
        trusted: IP addresses or CIDR networks of the proxies in front of chute.
    """

    def __init__(self, app: Any, trusted: Iterable[str]):
        self.app = app
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)
        self.networks: list[Network] = [ipaddress.ip_network(t.strip(), strict=False) for t in trusted if t.strip()]
        #: Verdicts by peer address: parsing an address on every request was ~3 % of a status GET in Flask.
        self._verdict = functools.lru_cache(maxsize=MAX_REMEMBERED)(self._trusted)

    def trusts(self, address: str | None) -> bool:
        return self._verdict(address or "")

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.networks and self.trusts(environ.get("REMOTE_ADDR")):
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)
