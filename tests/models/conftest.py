"""Fixtures of the models' tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from models.db import Base, database
from models.settings import Settings, configure
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
