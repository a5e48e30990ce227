"""Real headless Chromium for the browser tests: Debian's ``chromium`` driven by Python Playwright.

Playwright's own browser download cannot run here, so Playwright starts the system binary
(``CHUTE_TEST_CHROMIUM``, default /usr/bin/chromium) with a fresh profile directory per test.
Every test gets a page whose JavaScript errors and failed console messages fail the test.
Without Chromium or Playwright the tests skip on a laptop, and fail under CI (CI=true).
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

#: The browser binary (Debian's package puts it here).
CHROMIUM = os.environ.get("CHUTE_TEST_CHROMIUM", "/usr/bin/chromium")
#: Quiet, deterministic, sandbox-free (containers) and with no traffic of its own.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
#: Default wait of every Playwright action and expectation, in ms (a loaded, shared machine).
TIMEOUT_MS = 60_000


def require_chromium() -> None:
    """Skip (or fail under CI) when the browser or Playwright is missing."""
    problem = None
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Playwright is not installed (pip install playwright)"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem + " (CI must run the browser tests)")
        pytest.skip(problem)


class PageErrors:
    """JavaScript exceptions and console errors seen on a page (but those a test caused on purpose)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.expected: list[str] = []

    def allow(self, fragment: str) -> None:
        """Errors containing ``fragment`` are expected (say, connections the test itself cuts)."""
        self.expected.append(fragment)

    def check(self) -> None:
        unexpected = [m for m in self.messages if not any(f in m for f in self.expected)]
        assert not unexpected, "the page reported errors:\n" + "\n".join(unexpected)


@pytest.fixture
def browser_context(tmp_path: Path) -> Iterator[Any]:
    """A Chromium with a fresh profile (its own --user-data-dir), closed after the test."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
def page(browser_context: Any, page_errors: PageErrors) -> Iterator[Any]:
    """The context's page; at the end of the test it must have reported no error."""
    page = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    page.on("pageerror", lambda error: page_errors.messages.append(f"uncaught: {error}"))
    page.on("console", lambda m: m.type == "error" and page_errors.messages.append(f"console: {m.text}"))
    yield page
    page_errors.check()


def drop_files(page: Any, selector: str, files: list[tuple[str, str, bytes]]) -> None:
    """Drop ``(name, mime type, bytes)`` files on ``selector`` as a person dragging them from the desktop would."""
    payload = [{"name": n, "type": t, "data": base64.b64encode(b).decode()} for n, t, b in files]
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const raw = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([raw], f.name, { type: f.type, lastModified: 1700000000000 }));
            }
            return transfer;
        }""",
        payload,
    )
    for event in ("dragenter", "dragover", "drop"):
        page.dispatch_event(selector, event, {"dataTransfer": transfer})


def poll(page: Any, predicate: Callable[[], Any], timeout: float = TIMEOUT_MS / 1000, what: str = "condition") -> Any:
    """Call ``predicate`` until it is truthy, letting the page run meanwhile; returns its value.

    Waiting through the page (not time.sleep) matters: Playwright's sync API runs route handlers
    and event listeners only while the test is inside a Playwright call.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        page.wait_for_timeout(100)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def wait_for(page: Any, expression: str, timeout: float = TIMEOUT_MS / 1000, what: str = "") -> Any:
    """Poll a JavaScript expression until it is truthy; returns its value.

    (Playwright's wait_for_function evaluates strings with eval, which chute's Content-Security-Policy
    rightly forbids; page.evaluate goes through the DevTools protocol instead.)
    """
    return poll(page, lambda: page.evaluate(expression), timeout, what or expression)
