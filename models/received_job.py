"""A file received whole (``POST /v1/jobs``) and its job, recorded in one statement.

Each file of such a request was four statements in its transaction: the upload's row, its one
chunk's row, the job's row and the job's ``NOTIFY``. On PostgreSQL they are one statement of
data-modifying CTEs (the inserts) whose select sends the notification: one round trip, and
SQLAlchemy's per-statement work once instead of four times, on the request every client of
the one-shot API makes. Foreign keys are checked at the statement's end, when every row is
there. Elsewhere (SQLite, which has neither writing CTEs nor NOTIFY) the statements run one by
one, as before.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Select, Table, bindparam, func, insert, literal, select
from sqlalchemy.orm import Session

from models import job as jobs
from models import job_events
from models import upload as uploads
from models.settings import Settings


def _inserted(table: Table, columns: tuple[str, ...], prefix: str, name: str) -> Any:
    """An insert of ``columns`` of ``table`` from parameters ``<prefix><column>``, as a CTE.

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
    return insert(table).values(values).returning(*table.primary_key.columns).cte(name)


@cache
def _statement(upload: tuple[str, ...], chunk: tuple[str, ...] | None, job: tuple[str, ...]) -> Select[Any]:
    """The statement for rows of these columns (the same every time: built once each, with a
    chunk and without, as SQLAlchemy's compiled cache wants)."""
    ctes = [_inserted(uploads.UPLOADS_TABLE, upload, "u_", "upload")]
    if chunk is not None:
        ctes.append(_inserted(uploads.CHUNKS_TABLE, chunk, "c_", "chunk"))
    ctes.append(_inserted(jobs.JOBS, job, "j_", "job"))
    return select(func.pg_notify(bindparam("channel"), bindparam("payload"))).add_cte(*ctes)


def record_received_job(
    session: Session, tenant_id: str, settings: Settings, arrival: uploads.FileArrival
) -> uploads.ReceivedFile:
    """``uploads.record_received_file`` then ``jobs.insert_job``: the same rows and notification.

    Raises:
        TooLarge: the size over ``max_upload_size``.
        Invalid: an unknown OCR mode.
    """
    if not job_events.notifies(session):
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
    session.execute(_statement(tuple(upload_row), chunk, tuple(job_row)), params)
    return received
