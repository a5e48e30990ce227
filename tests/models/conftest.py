"""Fixtures of the models' tests."""

from __future__ import annotations

import pytest

from models.db import session_scope
from models.settings import Settings
from models.tenant import issue_key
from tests.actors.test_stages import staged_job
from tests.conftest import TenantKeys


@pytest.fixture
def postgres_job(settings: Settings, on_postgres: str) -> str:
    """A job whose chunks are staged, on PostgreSQL; its id."""
    with session_scope() as session:
        issued = issue_key(session, "acme")
    return staged_job(settings, TenantKeys(issued.tenant, issued.tenant_id, issued.api_key, issued.webhook_secret))


@pytest.fixture(params=["sqlite", "postgresql"])
def keys(request: pytest.FixtureRequest, tenant: TenantKeys) -> TenantKeys:
    """A tenant on the unit tests' SQLite, or on PostgreSQL (whose statements may differ)."""
    if request.param == "sqlite":
        return tenant
    request.getfixturevalue("on_postgres")
    with session_scope() as session:
        issued = issue_key(session, "acme")
    return TenantKeys(issued.tenant, issued.tenant_id, issued.api_key, issued.webhook_secret)
