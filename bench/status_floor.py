"""A gunicorn config for ``bench api``'s floor: chute's status GET with its database read taken away.

The status GET reads the job's row from PostgreSQL on every request; the Celery peer reads
Redis and the bare app reads nothing. To show what that read costs inside the real server (the
thread that waits for PostgreSQL, the driver, the pool), ``bench api`` runs a second ``chute
web`` of this tree whose workers answer the read of a finished job from memory after the first
time: the same front, gunicorn, Flask, auth, contract, model and JSON, minus the round trip.

Loaded through ``GUNICORN_CMD_ARGS="--config python:bench.status_floor"`` (gunicorn's own way
to add a config; chute's command line has none), so chute's code has no hook for it. Never a
way to serve anything: a bench measurement only. A job's row is kept once it is completed and
its webhook delivered, after which nothing in the bench changes it.
"""

from __future__ import annotations

from typing import Any

#: The environment that loads this config into ``chute web``'s gunicorn.
GUNICORN_CMD_ARGS = "--config python:bench.status_floor"


class _RowsFromMemory:
    """The status read's ``one_or_none``, answering a finished job's row from memory."""

    def __init__(self, read: Any):
        self.read = read
        self.rows: dict[str, Any] = {}

    def one_or_none(self, *, job_id: str) -> Any:
        row = self.rows.get(job_id)
        if row is None:
            row = self.read.one_or_none(job_id=job_id)
            if row is not None and row.status == "completed" and row.webhook_status == "delivered":
                self.rows[job_id] = row
        return row


def post_worker_init(worker: Any) -> None:
    """gunicorn's hook, in each worker once the app is loaded: the status read goes through memory."""
    import models.views

    models.views._STATUS_READ = _RowsFromMemory(models.views._STATUS_READ)  # type: ignore[assignment]
