"""chute's domain: settings, the database and the models' state transitions.

Imports neither Flask nor Dramatiq. The package import itself is empty, so light users (the
extraction child needs only ``models.errors``) do not load SQLAlchemy; ``models.schema``
imports every model, for Alembic and for anything that needs all tables on ``Base.metadata``.
"""
