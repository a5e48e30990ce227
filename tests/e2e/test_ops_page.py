"""The ops page driven in headless Chromium against the real stack: sign in with the admin token,
read the stages, retry a failed job and cancel a stuck one from the page.

Debian's chromium through Python Playwright (Playwright's own browser download cannot work here).
Without chromium this skips on a laptop and fails under CI.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ADMIN_TOKEN, Stack
from tests.e2e.test_pipeline import wait_for_job
from tests.support.browser import browser_context  # noqa: F401, F811  (the fixture)
from tests.support.uploading import chunked_upload

#: Bytes that look like a PDF but are not one: extract fails them ``corrupt_file`` after storing them.
CORRUPT_PDF = b"%PDF-1.7\n" + b"\x00 not a pdf at all " * 40
#: Milliseconds Playwright waits for the page to show something (generous: the machine is shared).
WAIT_MS = 30_000


@pytest.fixture
def page(browser_context: Any) -> Any:  # noqa: F811
    """A page of Debian's chromium with a fresh profile (tests/support/browser.py)."""
    return browser_context.new_page()


def _row(page: Any, table: str, key: str) -> Any:
    return page.locator(f"#{table} tbody tr[data-key='{key}']")


def test_ops_page_shows_the_pipeline_and_retries_and_cancels(stack: Stack, page: Any) -> None:
    failed = chunked_upload(stack.call, CORRUPT_PDF, filename="broken.pdf", chunk_size=256)["job_id"]
    job = wait_for_job(stack, failed)
    assert job["error"]["code"] == "corrupt_file", job

    page.goto(stack.base_url + "/ops")
    page.fill("#token", "a tenant key is not the admin token")
    page.click("#login-form button")
    expect(page.locator("#error")).to_have_text(re.compile(r"admin token"), timeout=WAIT_MS)
    assert page.is_visible("#login") and not page.is_visible("#board")

    page.fill("#token", ADMIN_TOKEN)
    page.click("#login-form button")
    page.wait_for_selector("#board:not(.hidden)", timeout=WAIT_MS)
    stages = page.locator("#stages tbody tr")
    stages.first.wait_for(timeout=WAIT_MS)
    assert [r.get_attribute("data-key") for r in stages.all()] == ["assemble", "upload", "extract", "notify"]
    workers = _row(page, "stages", "extract").locator("td").nth(6).inner_text()
    assert int(workers) >= 1, "the stack's worker consumes extract"
    _row(page, "failures", "corrupt_file").wait_for(timeout=WAIT_MS)

    # retry the failed job from the page: extract runs again on the stored file (and fails again)
    row = _row(page, "failed", failed)
    row.wait_for(timeout=WAIT_MS)
    assert row.locator("td").nth(3).inner_text() == "corrupt_file"
    row.get_by_role("button", name="retry").click()
    expect(page.locator("#status")).to_have_text(re.compile(r"^retry: done"), timeout=WAIT_MS)
    deadline = time.monotonic() + 60
    while stack.call("GET", f"/v1/jobs/{failed}")[1]["attempts"] <= job["attempts"]:
        assert time.monotonic() < deadline, "the retried job did not run again"
        time.sleep(0.2)
    assert wait_for_job(stack, failed)["error"]["code"] == "corrupt_file"

    # a job stuck in upload while S3 is unreachable: cancel it from the page
    stack.proxy.cut()
    try:
        stuck = chunked_upload(stack.call, b"stuck\n" * 100, filename="stuck.txt", chunk_size=256)["job_id"]
        row = _row(page, "in-flight", stuck)
        row.wait_for(timeout=WAIT_MS)  # the page polls every 5 s
        row.get_by_role("button", name="cancel").click()
        expect(page.locator("#status")).to_have_text(re.compile(r"^cancel: done"), timeout=WAIT_MS)
        assert stack.call("GET", f"/v1/jobs/{stuck}")[1]["status"] == "cancelled"
    finally:
        stack.proxy.restore()
