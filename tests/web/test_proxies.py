"""Forwarded headers are applied for trusted peers only, and each peer's verdict is remembered."""

from __future__ import annotations

from typing import Any

from web import proxies
from web.proxies import TrustedProxyFix


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']}".encode()]


def call(fix: TrustedProxyFix, peer: str) -> bytes:
    environ = {"REMOTE_ADDR": peer, "wsgi.url_scheme": "http", "HTTP_X_FORWARDED_FOR": "203.0.113.9",
               "HTTP_X_FORWARDED_PROTO": "https", "HTTP_HOST": "api.example"}  # fmt: skip
    return b"".join(fix(environ, lambda *a: None))


def test_only_trusted_peers_forward_and_verdicts_stay_right_when_remembered() -> None:
    fix = TrustedProxyFix(app, ["10.0.0.0/8", "::1"])
    for _ in range(2):  # the second time from memory
        assert call(fix, "10.1.2.3") == b"203.0.113.9 https"
        assert call(fix, "::1") == b"203.0.113.9 https"
        assert call(fix, "192.0.2.1") == b"192.0.2.1 http"
        assert call(fix, "not an address") == b"not an address http"


def test_the_memory_of_verdicts_is_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(proxies, "MAX_REMEMBERED", 3)
    fix = TrustedProxyFix(app, ["10.0.0.0/8"])
    for n in range(10):
        assert fix.trusts(f"10.0.0.{n}")
        assert fix._verdict.cache_info().currsize <= 3
    assert not fix.trusts("192.0.2.1")
