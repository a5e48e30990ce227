"""Browser tests: real headless Chromium (tests/support/browser.py) against chute web and chute
worker as real processes on PostgreSQL, RabbitMQ and the S3 server (the end-to-end stack)."""

from __future__ import annotations

from tests.e2e.conftest import stack  # noqa: F401  (the same real stack, started for these tests)
from tests.support.browser import browser_context, page, page_errors  # noqa: F401
