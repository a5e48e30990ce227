"""Alembic's environment: runs migrations on the URL that ``migrations.alembic_config`` set."""

from __future__ import annotations

from alembic import context

from models.db import make_engine
from models.schema import Base

config = context.config
target_metadata = Base.metadata


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = make_engine(url, timeouts=False)  # a migration may rewrite a large table
    with engine.connect() as connection:
        # render_as_batch: SQLite alters tables by copying them; batch mode does that for us.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
