"""chute's domain: settings, the database and the models' state transitions.

Imports neither Flask nor Dramatiq. Importing this package registers every table on
``Base.metadata`` (Alembic's autogenerate and the tests rely on that).
"""

from models import delivery, job, tenant, upload  # noqa: F401
