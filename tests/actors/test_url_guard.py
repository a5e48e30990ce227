"""The SSRF guard: URL checks with a fake resolver (the machines have no external network), and the
connect-time check against a real receiver on loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from actors.url_guard import UrlGuard
from actors.webhooks import deliver
from models.errors import Invalid
from tests.support.webhook_receiver import Reply, WebhookReceiver

#: A public address (example.com's); only ever given by the fake resolver, never connected to.
PUBLIC = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

DNS: dict[str, list[str]] = {
    "hooks.example.com": [PUBLIC, PUBLIC_V6],
    "mixed.example.com": [PUBLIC, "10.0.0.5"],
    "metadata.example.com": ["169.254.169.254"],
    "internal.example.com": ["10.1.2.3"],
    "other-internal.example.com": ["10.2.0.1"],
    "hooks.internal": ["10.9.9.9"],
    "empty.example.com": [],
}


def fake_resolver(host: str, port: int) -> list[str]:
    try:
        return DNS[host]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


def refusal(guard: UrlGuard, url: str) -> str:
    """The reason ``guard`` gives for refusing ``url`` (and that it is the documented error)."""
    with pytest.raises(Invalid) as info:
        guard.check_url(url)
    assert info.value.code == "webhook_url_refused"
    assert info.value.details["url"] == url
    return str(info.value.details["reason"])


@pytest.fixture
def guard() -> UrlGuard:
    return UrlGuard(resolver=fake_resolver)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://127.8.9.10:8080/", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1%25eth0]/", "link-local"),
        ("http://100.64.0.1/", "shared"),
        ("http://224.0.0.1/", "multicast"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://[fd00::1]/", "private"),
        ("http://240.0.0.1/", "240.0.0.1 ("),  # reserved (Python 3.11 calls 240/4 private)
        ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[64:ff9b::a00:1]/", "private"),  # NAT64 to 10.0.0.1
        ("http://[2002:c0a8:101::1]/", "private"),  # 6to4 of 192.168.1.1
        ("https://metadata.example.com/", "link-local"),
    ],
)
def test_non_global_addresses_are_refused(guard: UrlGuard, url: str, kind: str) -> None:
    assert kind in refusal(guard, url)


def test_localhost_and_numeric_hosts_are_refused_with_the_system_resolver() -> None:
    guard = UrlGuard()  # resolving these needs no network
    assert "loopback" in refusal(guard, "http://localhost:8000/hook")
    assert "127.0.0.1" in refusal(guard, "http://2130706433/")  # inet_aton's decimal form
    assert "127.0.0.1" in refusal(guard, "http://0x7f.1/")


def test_every_address_of_a_host_is_checked(guard: UrlGuard) -> None:
    reason = refusal(guard, "https://mixed.example.com/hook")
    assert reason == "mixed.example.com resolves to 10.0.0.5 (private)"


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/hook",
        "http://HOOKS.example.com.:8080/x?y=1",
        f"http://{PUBLIC}/",
        f"https://[{PUBLIC_V6}]:8443/",
    ],
)
def test_public_addresses_are_accepted(guard: UrlGuard, url: str) -> None:
    guard.check_url(url)


def test_the_resolver_gets_the_port(guard: UrlGuard) -> None:
    calls: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return [PUBLIC]

    guard = UrlGuard(resolver=resolver)
    for url in ("http://a.example/", "https://b.example/", "https://c.example:8443/"):
        guard.check_url(url)
    assert calls == [("a.example", 80), ("b.example", 443), ("c.example", 8443)]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://hooks.example.com/", "scheme"),
        ("hooks.example.com/hook", "scheme"),
        ("//hooks.example.com/hook", "scheme"),
        ("http://user:secret@hooks.example.com/", "credentials"),
        ("http://user@hooks.example.com/", "credentials"),
        ("http:///hook", "no host"),
        ("http://", "no host"),
        ("http://hooks.example.com:99999/", "malformed"),
        ("http://hooks.example.com\\@127.0.0.1/", "backslash"),
        ("http://hooks.example.com /", "whitespace"),
        ("http://nowhere.example.com/", "does not resolve"),
        ("http://empty.example.com/", "does not resolve"),
    ],
)
def test_malformed_or_unsupported_urls_are_refused(guard: UrlGuard, url: str, reason: str) -> None:
    assert reason in refusal(guard, url)


def test_an_allowed_host_name_skips_the_address_check() -> None:
    guard = UrlGuard(["hooks.internal"], resolver=fake_resolver)
    guard.check_url("http://hooks.internal/hook")
    guard.check_url("http://HOOKS.Internal./hook")
    guard.check_address("hooks.internal", "10.9.9.9")
    assert "private" in refusal(guard, "http://internal.example.com/")


def test_an_allowed_range_admits_its_addresses_only() -> None:
    guard = UrlGuard(["10.1.0.0/16", "169.254.10.10"], resolver=fake_resolver)
    guard.check_url("http://internal.example.com/")
    guard.check_url("http://10.1.200.1/")
    guard.check_url("http://169.254.10.10/")
    assert "10.2.0.1" in refusal(guard, "http://other-internal.example.com/")
    assert "169.254.169.254" in refusal(guard, "http://169.254.169.254/")


def test_loopback_allows_loopback_and_nothing_else() -> None:
    guard = UrlGuard(["loopback"])
    for url in ("http://127.0.0.1:8000/", "http://[::1]/", "http://localhost/", "http://[::ffff:127.0.0.1]/"):
        guard.check_url(url)
    guard.check_address("example.com", "127.0.0.1")
    for url in ("http://10.0.0.1/", "http://169.254.169.254/", "http://0.0.0.0/"):
        refusal(guard, url)


def test_check_address_refuses_with_host_and_address() -> None:
    with pytest.raises(Invalid) as info:
        UrlGuard().check_address("hooks.example.com", "::ffff:10.0.0.1")
    assert info.value.code == "webhook_url_refused"
    assert info.value.details["host"] == "hooks.example.com"
    assert info.value.details["address"] == "::ffff:10.0.0.1"
    assert "private" in info.value.details["reason"]
    UrlGuard().check_address("hooks.example.com", PUBLIC)
    with pytest.raises(Invalid):
        UrlGuard().check_address("hooks.example.com", "not-an-address")


# -- at connect time -------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def test_the_address_actually_connected_to_is_checked(receiver: WebhookReceiver) -> None:
    """DNS rebinding: "localhost" looked public when the URL was accepted, but connects to loopback."""
    guard = UrlGuard(resolver=lambda host, port: [PUBLIC])
    for scheme in ("http", "https"):  # https: refused before the TLS handshake
        url = f"{scheme}://localhost:{receiver.port}/hook"
        guard.check_url(url)
        with guard.pool_manager(0.5) as pool:
            outcome = deliver(url, b"{}", {"content-type": "application/json"}, timeout=0.5, pool=pool)
        assert (outcome.ok, outcome.status_code, outcome.retryable) == (False, None, False)
        assert outcome.error is not None and outcome.error.startswith("address refused: ")
        assert "loopback" in outcome.error and ("127.0.0.1" in outcome.error or "::1" in outcome.error)
    time.sleep(0.1)
    assert receiver.requests == []


def test_the_guarded_pool_connects_to_allowed_addresses_and_never_redirects(receiver: WebhookReceiver) -> None:
    receiver.script(Reply.redirect(receiver.url("/elsewhere")))
    with UrlGuard(["127.0.0.0/8"]).pool_manager(0.5) as pool:
        response = pool.request("POST", receiver.url(), body=b"{}", redirect=True)
        assert response.status == 302
        response = pool.request("POST", receiver.url(), body=b"{}")
        assert response.status == 200
    assert [r.path for r in receiver.wait_for(2)] == ["/hook", "/hook"]
