"""A file received whole (``POST /v1/jobs``) and its job, recorded in one statement.

Each file of such a request was four statements in its transaction: the upload's row, its one
chunk's row, the job's row and the job's ``NOTIFY``. On PostgreSQL they are one statement of
data-modifying CTEs (the inserts) whose select sends the notification: one round trip, and
SQLAlchemy's per-statement work once instead of four times, on the request every client of
the one-shot API makes. Foreign keys are checked at the statement's end, when every row is
there. Elsewhere (SQLite, which has neither writing CTEs nor NOTIFY) the statements run one by
one, as before.

The request's first file also carries the tenant's jobs-in-flight check (:class:`Reservation`):
the count is the statement's first CTE, and the inserts happen only if it leaves room, so the
check costs no round trip of its own. It is correct because the tenant's row was locked by an
earlier statement of the transaction (``quota.lock_limits``): a statement's snapshot is taken
when it starts, after that lock, so it sees every job a concurrent request of the tenant
committed. (In the lock's own statement it would not: its snapshot predates the wait.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Table, bindparam, case, func, insert, literal, select, true
from sqlalchemy.orm import Session

from models import job as jobs
from models import job_events, quota
from models import upload as uploads
from models.fastread import FastRead
from models.settings import Settings


@dataclass(frozen=True)
class Reservation:
    """The jobs-in-flight check of a request that starts ``count`` jobs, made with its first
    file's rows (``limits``: the tenant's, read with its row locked)."""

    limits: quota.Limits
    count: int


def _inserted(table: Table, columns: tuple[str, ...], prefix: str, name: str, source: Any = None) -> Any:
    """An insert of ``columns`` of ``table`` from parameters ``<prefix><column>``, as a CTE;
    with ``source`` (a CTE), one row per row of it (none when it has none).

    SQLAlchemy fills a column's Python-side default in a statement's own insert, not in one
    nested in a CTE: the other columns' constant defaults are written into the statement here.
    """
    values: dict[str, Any] = {c: bindparam(prefix + c, type_=table.c[c].type) for c in columns}
    for column in table.columns:
        if column.name in values or column.default is None:
            continue
        if not column.default.is_scalar:  # a value per row (a timestamp): the caller's row must carry it
            raise ValueError(f"{table.name}.{column.name} needs a value in the row")
        values[column.name] = literal(column.default.arg, type_=column.type)  # type: ignore[attr-defined]
    if source is None:
        return insert(table).values(values).returning(*table.primary_key.columns).cte(name)
    rows = select(*(value.label(key) for key, value in values.items())).select_from(source)
    return insert(table).from_select(list(values), rows).returning(*table.primary_key.columns).cte(name)


@cache
def _statement(
    upload: tuple[str, ...], chunk: tuple[str, ...] | None, job: tuple[str, ...], reserving: bool
) -> FastRead:
    """The statement for rows of these columns, built once each (with a chunk and without), run on
    the session's driver connection (``FastRead``): no execution context and no result object per
    request (with the tenant's lock, also a ``FastRead``, a request's transaction took 295 µs of
    CPU in one process, against 422 through the session).

    ``reserving``: the rows only if the tenant's jobs in flight (parameter ``tenant_id``) and
    ``r_count`` more stay within ``r_limit``; it returns the count, and the job's id (None:
    refused), and announces only a job it made.
    """
    notify = func.pg_notify(bindparam("channel"), bindparam("payload"))
    admitted = in_flight = None
    if reserving:
        in_flight = quota.IN_FLIGHT.cte("in_flight")
        room = in_flight.c.in_flight + bindparam("r_count") <= bindparam("r_limit")
        admitted = select(in_flight.c.in_flight).where(room).cte("admitted")
    upload_cte = _inserted(uploads.UPLOADS_TABLE, upload, "u_", "upload", admitted)
    after_upload = upload_cte if reserving else None  # no upload row, no chunk or job row either
    ctes = [upload_cte]
    if chunk is not None:
        ctes.append(_inserted(uploads.CHUNKS_TABLE, chunk, "c_", "chunk", after_upload))
    job_cte = _inserted(jobs.JOBS, job, "j_", "job", after_upload)
    ctes.append(job_cte)
    if in_flight is None:
        return FastRead(select(notify).add_cte(*ctes))
    return FastRead(
        select(in_flight.c.in_flight, job_cte.c.id, case((job_cte.c.id.is_not(None), notify)).label("notified"))
        .select_from(in_flight.outerjoin(job_cte, true()))
        .add_cte(*ctes)
    )


def record_received_job(
    session: Session,
    tenant_id: str,
    settings: Settings,
    arrival: uploads.FileArrival,
    reservation: Reservation | None = None,
) -> uploads.ReceivedFile:
    """``uploads.record_received_file`` then ``jobs.insert_job``: the same rows and notification;
    with ``reservation``, only if the tenant may start that many more jobs.

    Raises:
        TooLarge: the size over ``max_upload_size``.
        Invalid: an unknown OCR mode.
        QuotaExceeded: ``jobs_in_flight_quota_exceeded`` (429), nothing recorded.
    """
    if not job_events.notifies(session):
        if reservation is not None:
            quota.check_in_flight(reservation.limits, quota.in_flight(session, tenant_id), reservation.count)
        received = uploads.record_received_file(session, tenant_id, settings, arrival)
        jobs.insert_job(session, arrival.job_id, received)
        return received
    received, upload_row, chunk_row = uploads.received_file_rows(tenant_id, settings, arrival)
    job_row, state = jobs.job_row(arrival.job_id, received)
    params = {f"u_{k}": v for k, v in upload_row.items()}
    params |= {f"j_{k}": v for k, v in job_row.items()}
    params |= {"channel": job_events.CHANNEL, "payload": state.payload()}
    if chunk_row is not None:
        params |= {f"c_{k}": v for k, v in chunk_row.items()}
    chunk = None if chunk_row is None else tuple(chunk_row)
    statement = _statement(tuple(upload_row), chunk, tuple(job_row), reservation is not None)
    if reservation is None:
        statement.within(session, **params)
        return received
    params |= {"tenant_id": tenant_id, "r_count": reservation.count, "r_limit": reservation.limits.jobs_in_flight}
    in_flight, job_id, _ = statement.within(session, **params)
    if job_id is None:
        quota.check_in_flight(reservation.limits, int(in_flight), reservation.count)  # raises: the same test
        raise AssertionError(f"{tenant_id}: jobs refused by the statement, admitted by check_in_flight")
    return received
