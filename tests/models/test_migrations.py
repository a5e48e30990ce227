"""The Alembic migrations are the schema's only source: they must build exactly what the models
declare, on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from migrations import upgrade
from models.schema import Base
from tests.support import services


def assert_schema_matches_models(url: str) -> None:
    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)
    finally:
        engine.dispose()


def test_migrations_match_the_models_on_sqlite(tmp_path: Path) -> None:
    assert_schema_matches_models(f"sqlite:///{tmp_path}/m.db")


def test_migrations_match_the_models_on_postgresql() -> None:
    if not services.port_open("127.0.0.1", 5432):
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    with services.postgres_database() as url:
        assert_schema_matches_models(url)
        upgrade(url)  # running it again is a no-op


def test_the_quota_indexes_come_down_and_go_up_again(tmp_path: Path) -> None:
    """Revisions 0008 and 0009 build their indexes outside the migration's transaction (concurrently
    on PostgreSQL): their downgrades must work too, and leave the schema that 0002 made."""
    from alembic import command

    from migrations import alembic_config

    urls = [f"sqlite:///{tmp_path}/m.db"]
    with contextlib.ExitStack() as stack:
        if services.port_open("127.0.0.1", 5432):
            urls.append(stack.enter_context(services.postgres_database()))
        for url in urls:
            upgrade(url)
            command.downgrade(alembic_config(url), "0002")
            engine = create_engine(url)
            try:
                names = {index["name"] for table in ("jobs", "uploads") for index in inspect(engine).get_indexes(table)}
            finally:
                engine.dispose()
            assert not names & {"ix_jobs_in_flight", "ix_uploads_open"}, url
            assert_schema_matches_models(url)  # upgraded again, to the models' schema
