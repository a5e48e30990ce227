"""Alembic environment and versions: the schema's only source in production.

``upgrade()`` is what ``chute migrate`` (and ``chute dev`` at start) runs.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

#: This folder: Alembic's script_location.
HERE = Path(__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    # ConfigParser interpolation would choke on a "%" in a password.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)
