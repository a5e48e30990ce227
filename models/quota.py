"""Per-tenant quotas: open uploads, staged bytes, jobs in flight, largest file.

A check takes the tenant's row lock, so two requests of one tenant cannot both pass the last
free slot; other tenants are never waited on. The limits are the tenant's own values where set
(``chute tenants set``), else the settings'.

- open uploads: uploads still ``receiving``;
- staged bytes: the bytes those uploads declared (reserved up front, so a tenant cannot claim
  terabytes of staging disk without sending a byte);
- jobs in flight: jobs ``queued`` or ``processing``;
- largest file: one upload's declared size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session

from models import job as jobs
from models import upload as uploads
from models.db import Base
from models.errors import QuotaExceeded, TooLarge
from models.fastread import FastRead
from models.settings import Settings


@dataclass(frozen=True)
class Limits:
    open_uploads: int
    staged_bytes: int
    jobs_in_flight: int
    max_file_size: int
    retention_days: float


@dataclass(frozen=True)
class Usage:
    open_uploads: int
    staged_bytes: int
    jobs_in_flight: int


class LimitColumns(Protocol):
    """A tenant's own limits, by name: the ORM object, or the row of ``_LOCKED_LIMITS``."""

    @property
    def max_open_uploads(self) -> int | None: ...
    @property
    def max_staged_bytes(self) -> int | None: ...
    @property
    def max_jobs_in_flight(self) -> int | None: ...
    @property
    def max_file_size(self) -> int | None: ...
    @property
    def retention_days(self) -> float | None: ...


def limits_of(tenant: LimitColumns, settings: Settings) -> Limits:
    """The tenant's limits, its own where set."""
    def pick(own: Any, default: Any) -> Any:
        return default if own is None else own

    return Limits(
        open_uploads=pick(tenant.max_open_uploads, settings.quota_open_uploads),
        staged_bytes=pick(tenant.max_staged_bytes, settings.quota_staged_bytes),
        jobs_in_flight=pick(tenant.max_jobs_in_flight, settings.quota_jobs_in_flight),
        max_file_size=min(pick(tenant.max_file_size, settings.max_upload_size), settings.max_upload_size),
        retention_days=pick(tenant.retention_days, settings.retention_days),
    )


#: The tenant's open uploads and the bytes they declared. The condition is the partial index
#: ``ix_uploads_open``'s own SQL, not a bound status, so that every plan, a prepared statement's
#: generic one too, can read that index alone (a bound value does not prove the index's condition).
OPEN_UPLOADS = select(func.count(), func.coalesce(func.sum(uploads.Upload.size), 0)).where(
    uploads.Upload.tenant_id == bindparam("tenant_id"), text(uploads.OPEN_SQL)
)


def usage_of(session: Session, tenant_id: str) -> Usage:
    open_count, staged = session.execute(OPEN_UPLOADS, {"tenant_id": tenant_id}).one()
    return Usage(open_uploads=int(open_count), staged_bytes=int(staged), jobs_in_flight=in_flight(session, tenant_id))


_JOBS = Base.metadata.tables["jobs"].c
#: The tenant's jobs in flight: the only count starting jobs needs (built once). Also the first
#: CTE of ``models.received_job``'s statement, which makes its own inserts depend on it.
#: The condition is the partial index ``ix_jobs_in_flight``'s own SQL, not bound statuses: an IN
#: of bound values is expanded by Core at each execution, which ``FastRead`` (that runs the
#: received job's statement) does not do; and the planner can read the count off that index alone.
IN_FLIGHT = select(func.count().label("in_flight")).where(
    _JOBS.tenant_id == bindparam("tenant_id"), text(jobs.IN_FLIGHT_SQL)
)


_TENANTS = Base.metadata.tables["tenants"].c
#: The tenant's own limits, its row locked so that concurrent requests are checked one after the
#: other (the columns only: the tenant's secrets and the rest are not needed here).
_LOCKED_LIMITS = (
    select(_TENANTS.max_open_uploads, _TENANTS.max_staged_bytes, _TENANTS.max_jobs_in_flight, _TENANTS.max_file_size,
           _TENANTS.retention_days)  # fmt: skip
    .where(_TENANTS.id == bindparam("tenant_id"))
    .with_for_update()
)


_LOCKED_LIMITS_READ = FastRead(_LOCKED_LIMITS)


def _locked_tenant(session: Session, tenant_id: str) -> Any:
    """The tenant's row of limits, locked, read on the session's driver connection (``FastRead``)."""
    row = _LOCKED_LIMITS_READ.within(session, tenant_id=tenant_id)
    if row is None:
        raise NoResultFound(f"tenant {tenant_id} is gone")
    return row


def _exceeded(quota: str, limit: int, used: int, message: str) -> QuotaExceeded:
    return QuotaExceeded(
        message, code=f"{quota}_quota_exceeded", details={"quota": quota, "limit": limit, "used": used}
    )


def check_file_size(limits: Limits, size: int) -> None:
    """Raises TooLarge (``file_too_large``) for a file over the tenant's largest file."""
    if size > limits.max_file_size:
        raise TooLarge(
            f"size {size} is over the limit of {limits.max_file_size} bytes",
            code="file_too_large",
            details={"max_upload_size": limits.max_file_size},
        )


def reserve_upload(session: Session, tenant_id: str, settings: Settings, size: int) -> None:
    """Check that the tenant may open an upload of ``size`` bytes (one that stays receiving, so it
    counts against open uploads and staged bytes).

    Raises:
        TooLarge: over the largest file (413 ``file_too_large``).
        QuotaExceeded: ``open_uploads_quota_exceeded`` or ``staged_bytes_quota_exceeded`` (429).
    """
    limits = limits_of(_locked_tenant(session, tenant_id), settings)
    check_file_size(limits, size)
    used = usage_of(session, tenant_id)
    if used.open_uploads + 1 > limits.open_uploads:
        raise _exceeded("open_uploads", limits.open_uploads, used.open_uploads,
                        f"{used.open_uploads} uploads are open; complete or cancel some first")  # fmt: skip
    if used.staged_bytes + size > limits.staged_bytes:
        raise _exceeded("staged_bytes", limits.staged_bytes, used.staged_bytes,
                        f"open uploads already reserve {used.staged_bytes} bytes of staging")  # fmt: skip


def lock_limits(session: Session, tenant_id: str, settings: Settings) -> Limits:
    """The tenant's limits, its row locked for the rest of the transaction: a check made after
    this, in a later statement, sees every job a concurrent request of the tenant committed."""
    return limits_of(_locked_tenant(session, tenant_id), settings)


def check_in_flight(limits: Limits, in_flight: int, count: int) -> None:
    """Raises QuotaExceeded (``jobs_in_flight_quota_exceeded``, 429) when ``count`` more jobs
    would take the tenant's ``in_flight`` over its limit."""
    if in_flight + count > limits.jobs_in_flight:
        raise _exceeded("jobs_in_flight", limits.jobs_in_flight, in_flight,
                        f"{in_flight} jobs are queued or processing; wait for some to finish")  # fmt: skip


def in_flight(session: Session, tenant_id: str) -> int:
    """The tenant's jobs queued or processing."""
    return int(session.execute(IN_FLIGHT, {"tenant_id": tenant_id}).scalar_one())


def reserve_jobs(session: Session, tenant_id: str, settings: Settings, count: int = 1) -> Limits:
    """Check that the tenant may start ``count`` more jobs; the tenant's limits, for the rest of
    the transaction's checks (its row is locked: they cannot change meanwhile).

    Raises:
        QuotaExceeded: ``jobs_in_flight_quota_exceeded`` (429).
    """
    limits = lock_limits(session, tenant_id, settings)
    check_in_flight(limits, in_flight(session, tenant_id), count)
    return limits
