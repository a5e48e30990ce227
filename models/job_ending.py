"""The notify stage's statements: complete an extracted job and record its webhook event.

notify runs once per job, and loading the job as an ORM object, completing it through the unit
of work and adding the event cost more than the work itself. These are single Core statements,
built once: the completing ``UPDATE … RETURNING`` takes the row lock that the ORM's
``SELECT … FOR UPDATE`` took, and returns what the event's body shows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.orm import Session

from models import job_events
from models.db import Base, utcnow
from models.delivery import PENDING
from models.fastread import FastRead
from models.job import COMPLETED, JOBS, PROCESSING
from models.views import VIEW_COLUMNS

_events = Base.metadata.tables["webhook_events"]
#: A job view's columns and the rest of a ``JobState``'s.
ENDING_COLUMNS = (*VIEW_COLUMNS, JOBS.c.tenant_id, JOBS.c.updated_at, JOBS.c.credential_id)

_NOW = bindparam("now", type_=JOBS.c.updated_at.type)
_COMPLETE = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("job_id"), JOBS.c.status == PROCESSING, JOBS.c.extracted_at.is_not(None))
    .values(status=COMPLETED, completed_at=_NOW, updated_at=_NOW, stage=None, progress=1.0, run_id=None, run_owner=None)
    .returning(*ENDING_COLUMNS)
)
_COMPLETED = _COMPLETE.cte("completed")
#: The completion as run (``FastRead.within``: once per job, no execution machinery): on
#: PostgreSQL with the NOTIFY of the job's new state in the one round trip; elsewhere listeners
#: poll, and nothing is announced.
_ANNOUNCED = job_events.notify_column([_COMPLETED.c[name] for name in job_events.STATE_COLUMN_NAMES])
_COMPLETING = {True: FastRead(select(*_COMPLETED.c, _ANNOUNCED.label("notified"))), False: FastRead(_COMPLETE)}
_READ = select(*ENDING_COLUMNS).where(JOBS.c.id == bindparam("job_id")).with_for_update()
_EVENT = select(_events.c.id, _events.c.status, _events.c.attempts).where(
    _events.c.job_id == bindparam("job_id"), _events.c.type == bindparam("kind")
)
#: The columns an event is recorded with (every other one has a server default or is NULL).
_EVENT_COLUMNS = ("id", "job_id", "tenant_id", "type", "url", "payload", "status", "attempts", "created_at")
#: One insert, run on the session's driver connection (``FastRead.within``): through
#: ``Session.execute`` it took more of the notify stage's CPU than the job's completion beside it.
_ADD_EVENT = FastRead(
    insert(_events)
    .values({name: bindparam(name, type_=_events.c[name].type) for name in _EVENT_COLUMNS})
    .returning(_events.c.id)
)


def complete_or_read(session: Session, job_id: str) -> tuple[Row[*tuple[Any, ...]] | None, bool]:
    """Complete the job if it is extracted and processing, else read it; either way it is locked
    until the transaction ends (a duplicate notify waits, then sees the event).

    Returns:
        The job's row of :data:`ENDING_COLUMNS` (None: no such job), and whether this call
        completed it.
    """
    row = _COMPLETING[job_events.notifies(session)].within(session, job_id=job_id, now=utcnow())
    if row is not None:
        return row, True
    return session.execute(_READ, {"job_id": job_id}).first(), False


def find_event(session: Session, job_id: str, kind: str) -> tuple[str, bool] | None:
    """The job's ``kind`` event, if it has one: its id, and whether it still waits for its first attempt."""
    row = session.execute(_EVENT, {"job_id": job_id, "kind": kind}).first()
    return None if row is None else (row.id, row.status == PENDING and row.attempts == 0)


def add_event(session: Session, job: Row[*tuple[Any, ...]], kind: str, event_id: str, payload: str) -> None:
    """Record the job's ``kind`` event, pending its first attempt, with the exact body every attempt sends."""
    _ADD_EVENT.within(session, id=event_id, job_id=job.id, tenant_id=job.tenant_id, type=kind, url=job.webhook_url,
                      payload=payload, status=PENDING, attempts=0, created_at=utcnow())  # fmt: skip
