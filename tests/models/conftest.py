"""Fixtures of the models' tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from models.db import Base, database, session_scope
from models.settings import Settings, configure
from models.tenant import issue_key
from tests.actors.test_stages import staged_job
from tests.conftest import TenantKeys
from tests.support import services


@pytest.fixture
def on_postgres(settings: Settings) -> Iterator[str]:
    """The settings moved to a fresh PostgreSQL database with chute's tables; yields its URL."""
    with services.postgres_database() as url:
        configure(dataclasses.replace(settings, database_url=url))
        try:
            Base.metadata.create_all(database().engine)
            yield url
        finally:
            database().dispose()
            configure(settings)


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
