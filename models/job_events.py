"""A job's visible state as an event: what live progress (Server-Sent Events) streams to clients.

On PostgreSQL every change of a job's status, stage, progress or error sends a ``NOTIFY`` on
:data:`CHANNEL` from the very transaction that makes it, so it is delivered when (and only if)
the change commits, in commit order, with no broker beside the database. Web processes LISTEN
on one connection each and fan the notifications out to their streams. SQLite has no NOTIFY:
there the web process polls ``jobs.updated_at`` (:func:`models.job.changed_since`) instead.

This module knows nothing of the ``Job`` class (models.job imports it, not the reverse): it
reads the few attributes a state needs from any object that has them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Engine, Text, cast, func, inspect
from sqlalchemy.orm import Session

#: The PostgreSQL notification channel of job state changes.
CHANNEL = "chute_jobs"

#: A notification's payload must stay under PostgreSQL's 8000 bytes: error messages are cut to this.
MAX_ERROR_MESSAGE = 1000

#: The notification, in psycopg's own placeholder style (see ``announce``).
_NOTIFY = "SELECT pg_notify(%s, %s)"

#: The jobs table's columns that make a ``JobState``, in its order.
STATE_COLUMN_NAMES = ("id", "tenant_id", "status", "stage", "progress", "error_code", "error_message", "updated_at",
                      "credential_id")  # fmt: skip
#: Job attributes whose change is an event (``updated_at`` alone is not: a re-send touches it).
WATCHED = ("status", "stage", "progress", "error_code")

#: Job states that end a job (as models.job.TERMINAL, repeated to keep the import one way).
TERMINAL = frozenset({"completed", "failed", "cancelled"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def cursor_of(moment: datetime) -> int:
    """Microseconds since the epoch: the ``id`` of an event, and what ``Last-Event-ID`` resumes from."""
    return (moment - _EPOCH) // _MICROSECOND


def moment_of(cursor: int) -> datetime:
    return _EPOCH + cursor * _MICROSECOND


@dataclass(frozen=True)
class JobState:
    """What a client sees of a job as it moves: small enough for a NOTIFY payload."""

    job_id: str
    tenant_id: str
    status: str
    stage: str | None
    progress: float
    error_code: str | None
    error_message: str | None
    updated_at: datetime
    #: The upload token that made the job (None: an API key): a token sees only its own jobs.
    credential_id: str | None = None

    @classmethod
    def of(cls, job: Any) -> JobState:
        """The state of a ``models.job.Job`` (this module does not import it: models.job imports this one)."""
        return cls(job.id, job.tenant_id, job.status, job.stage, float(job.progress or 0.0), job.error_code,
                   job.error_message, job.updated_at, job.credential_id)  # fmt: skip

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> JobState:
        """A state from a row of ``models.job.STATE_COLUMNS``."""
        return cls(*row)

    @property
    def cursor(self) -> int:
        return cursor_of(self.updated_at)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def visible(self) -> tuple[Any, ...]:
        """What a client can tell apart: two states with the same ``visible`` are one event."""
        stage = self.stage if self.status == "processing" else None
        return self.status, stage, round(self.progress, 4), self.error_code

    def payload(self) -> str:
        # notify_column builds the same array in SQL: change both together.
        message = self.error_message[:MAX_ERROR_MESSAGE] if self.error_message else self.error_message
        return json.dumps([self.job_id, self.tenant_id, self.status, self.stage, self.progress, self.error_code,
                           message, self.cursor, self.credential_id], separators=(",", ":"))  # fmt: skip

    @classmethod
    def from_payload(cls, payload: str) -> JobState:
        """Raises ValueError (or TypeError) on a payload this module did not make."""
        job_id, tenant_id, status, stage, progress, error_code, message, cursor, credential_id = json.loads(payload)
        return cls(str(job_id), str(tenant_id), str(status), stage, float(progress), error_code, message,
                   moment_of(int(cursor)), credential_id)  # fmt: skip


def state_changed(job: object) -> bool:
    """True when one of a flushed job's :data:`WATCHED` attributes changed."""
    attrs = inspect(job).attrs
    return any(attrs[name].history.has_changes() for name in WATCHED)


def notify_column(state: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
    """PostgreSQL: the NOTIFY of a row's state as a column of a statement, so that a statement
    that moves a job announces it in the same round trip (``announce`` costs one of its own).

    ``state`` are a row's columns in ``JobState``'s order; the payload is ``JobState.payload``'s
    array built in SQL (``from_payload`` reads either; ``cursor`` is exact: timestamps have
    microseconds, and ``extract(epoch …)`` is numeric).
    """
    job_id, tenant_id, status, stage, progress, error_code, error_message, updated_at, credential_id = state
    cursor = cast(func.extract("epoch", updated_at) * 1_000_000, BigInteger)
    payload = func.json_build_array(job_id, tenant_id, status, stage, progress, error_code,
                                    func.left(error_message, MAX_ERROR_MESSAGE), cursor, credential_id)  # fmt: skip
    return func.pg_notify(CHANNEL, cast(payload, Text))


def notifies(bind: Session | Engine) -> bool:
    """Whether the database (a session's, or an engine's) takes NOTIFY (PostgreSQL); others'
    listeners poll."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name == "postgresql"


def announce(session: Session, states: list[JobState]) -> None:
    """NOTIFY listeners of ``states`` when the session's transaction commits (PostgreSQL only).

    A no-op on other databases, whose listeners poll.
    """
    if not states or not notifies(session):
        return
    # The driver's own SQL, in the session's transaction: a stage announces on every move, and
    # compiling a ``text()`` each time cost twice the execution. It still goes through the
    # engine's events, so the watchdog (``models.dbwatch``) guards it like any statement.
    connection = session.connection()
    for state in states:
        connection.exec_driver_sql(_NOTIFY, (CHANNEL, state.payload()))
