"""Browser tests: real headless Chromium (tests/support/browser.py) against chute web and chute
worker as real processes on this run's PostgreSQL database and RabbitMQ queues.

Objects are kept in a directory store here (chute dev's), which chute serves itself; the e2e
tests cover S3 and the signed links that let an ``<img src>`` follow its presigned redirect.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, _require_services, running_stack
from tests.support.browser import browser_context, page, page_errors  # noqa: F401


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _require_services()
    log_dir = tmp_path_factory.mktemp("browser")
    with running_stack(log_dir, f"file://{log_dir / 'objects'}") as stack:
        yield stack
