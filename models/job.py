"""Jobs and their state transitions: ``queued → processing → completed | failed | cancelled``.

The database is the source of truth. A message may be lost or delivered twice; each stage
records what it did (``*_at`` markers) in the same transaction as its output, so running a
stage twice never redoes or doubles it, and attempts are counted here rather than in the
message (a SIGKILLed worker's message comes back without its retry counter moving).
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, Session, defer, mapped_column
from sqlalchemy.sql.expression import BindParameter, ColumnElement

from models import job_events
from models.db import Base, database, of_tenant, read_scope, utcnow, without_flush
from models.errors import BadRequest, Conflict, NotFound
from models.fastread import FastRead
from models.ids import new_id
from models.upload import COMPLETE, ReceivedFile, Upload

#: Job states.
QUEUED, PROCESSING, COMPLETED, FAILED, CANCELLED = "queued", "processing", "completed", "failed", "cancelled"
#: A job in flight, as SQL: the condition of the partial index ``ix_jobs_in_flight`` and of the
#: count that reads it (``models.quota.IN_FLIGHT``), the same text so that its plans can use it.
IN_FLIGHT_SQL = f"status IN ('{QUEUED}', '{PROCESSING}')"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})

#: The pipeline's stages, in order.
STAGES = ("assemble", "upload", "extract", "notify")

#: The slice of overall progress each stage fills, so progress reads as one 0..1 bar.
STAGE_SPAN = {"assemble": (0.0, 0.15), "upload": (0.15, 0.8), "extract": (0.8, 0.97), "notify": (0.97, 1.0)}


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    stage: Mapped[str | None] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    #: Stage runs started for this job (3 for a clean run, 2 for a kind extract does not parse;
    #: retries and redeliveries add to it).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Runs of the current stage (deliveries, retries and redeliveries alike); informational.
    stage_attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: The run of the current stage in flight (a token per delivery), None once its end is
    #: recorded. Still set when the next delivery comes: that run died without finishing.
    run_id: Mapped[str | None] = mapped_column(String(32))
    #: ``host:pid`` of the process running the stage (ops, and the fault suite's killer).
    run_owner: Mapped[str | None] = mapped_column(String(255))
    #: Whether that run has a process to itself (so its death is the job's own fault).
    run_isolated: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Runs of the current stage lost with a process that also ran other jobs: the job *may*
    #: have killed it; its next runs get a process of their own (never fails the job by itself).
    lost_runs: Mapped[int] = mapped_column(Integer, default=0)
    #: Isolated runs of the current stage whose process died, as the worker watching it saw:
    #: checked against ``max_stage_crashes``.
    crashes: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    #: The MIME type found in the file's bytes, and its kind (pdf, image, other).
    detected_type: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: When the first stage's message was confirmed by the broker (None: re-send it).
    enqueued_at: Mapped[datetime | None]
    assembled_at: Mapped[datetime | None]
    uploaded_at: Mapped[datetime | None]
    extracted_at: Mapped[datetime | None]
    object_bucket: Mapped[str | None] = mapped_column(String(255))
    object_key: Mapped[str | None] = mapped_column(Text)
    #: An S3 multipart upload in flight, and the parts it has: [[number, etag], ...].
    multipart_id: Mapped[str | None] = mapped_column(Text)
    parts: Mapped[list[Any] | None]
    result: Mapped[dict[str, Any] | None]
    #: The upload token whose upload made this job (None: an API key).
    credential_id: Mapped[str | None] = mapped_column(String(40), index=True)

    __table_args__ = (
        #: Live progress reads a tenant's jobs changed since a moment (``changed_since``).
        Index("ix_jobs_tenant_id_updated_at", "tenant_id", "updated_at"),
        #: Every submit counts the tenant's jobs in flight (``models.quota.IN_FLIGHT``): with only
        #: the tenant's and the status's indexes, that read every queued job of every tenant, so
        #: one tenant's backlog slowed the others' submits. This one holds the jobs in flight only.
        Index("ix_jobs_in_flight", "tenant_id", postgresql_where=text(IN_FLIGHT_SQL), sqlite_where=text(IN_FLIGHT_SQL)),
    )

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def error(self) -> dict[str, Any] | None:
        if self.error_code is None:
            return None
        return {"code": self.error_code, "message": self.error_message}


def create_job(session: Session, upload: Upload) -> str:
    """The job of a completed upload (the caller holds the upload's row lock); returns its id."""
    job_id = new_job_id()
    insert_job(session, job_id, upload)
    upload.status = COMPLETE
    upload.completed_at = utcnow()
    upload.job_id = job_id
    session.flush()
    return job_id


def new_job_id() -> str:
    return new_id("job")


def insert_job(session: Session, job_id: str, received: ReceivedFile | Upload) -> None:
    """The job of an upload (a file received whole, ``upload.record_received_file``, or a
    completed upload's row), as one table insert, announced as queued."""
    values, state = job_row(job_id, received)
    session.execute(_ADD_JOB, values)
    job_events.announce(session, [state])


def job_row(job_id: str, received: ReceivedFile | Upload) -> tuple[dict[str, Any], job_events.JobState]:
    """What ``insert_job`` inserts, and the state it announces."""
    now = utcnow()
    values = {"id": job_id, "tenant_id": received.tenant_id, "upload_id": received.id, "filename": received.filename,
              "content_type": received.content_type, "size": received.size, "sha256": received.sha256,
              "webhook_url": received.webhook_url, "metadata": received.meta, "credential_id": received.credential_id,
              "status": QUEUED, "progress": 0.0, "attempts": 0, "stage_attempts": 0, "lost_runs": 0, "crashes": 0,
              "run_isolated": False, "created_at": now, "updated_at": now}  # fmt: skip
    return values, job_events.JobState(job_id, received.tenant_id, QUEUED, None, 0.0, None, None, now,
                                       received.credential_id)  # fmt: skip


#: Columns a job view never shows (the result can be large); left unloaded by ``view_only``.
HEAVY_COLUMNS = (Job.result, Job.parts)

#: The jobs table, for the workers' hot paths: single Core statements, no unit of work.
JOBS: Table = Base.metadata.tables["jobs"]
_ADD_JOB = insert(JOBS)

#: The columns of a ``job_events.JobState``, in its order.
STATE_COLUMNS = tuple(JOBS.c[name] for name in job_events.STATE_COLUMN_NAMES)


@event.listens_for(Session, "after_flush")
def _announce_changes(session: Session, _context: object) -> None:
    """Every job created or moved by an ORM flush is announced in the same transaction."""
    jobs = [j for j in session.new if isinstance(j, Job)]
    jobs += [j for j in session.dirty if isinstance(j, Job) and job_events.state_changed(j)]
    job_events.announce(session, [job_events.JobState.of(j) for j in jobs])


def changed_since(
    session: Session, tenant_ids: list[str], since: datetime, limit: int, credential_id: str | None = None
) -> list[job_events.JobState]:
    """The states of the tenants' jobs (only ``credential_id``'s, if given) updated after ``since``,
    oldest change first (resume and polling)."""
    query = select(*STATE_COLUMNS).where(Job.tenant_id.in_(tenant_ids), Job.updated_at > since)
    if credential_id is not None:
        query = query.where(Job.credential_id == credential_id)
    return [job_events.JobState.from_row(row) for row in session.execute(query.order_by(Job.updated_at).limit(limit))]


def get_job(session: Session, tenant_id: str, job_id: str, *, for_update: bool = False, view_only: bool = False) -> Job:
    """The tenant's job (``view_only``: without the columns a job view does not show).

    Raises:
        NotFound: no such job for this tenant (also another tenant's).
    """
    query = select(Job).where(Job.id == job_id)  # the tenant is checked on the row: of_tenant
    if view_only:
        query = query.options(*(defer(column) for column in HEAVY_COLUMNS))
    if for_update:
        query = query.with_for_update()
    job = of_tenant(session.scalar(query), tenant_id)
    if job is None:
        raise NotFound(f"no job {job_id}", code="job_not_found")
    return job


def load_job(session: Session, job_id: str, *, for_update: bool = False, view_only: bool = False) -> Job | None:
    """A job by id alone, for the workers (``view_only``: without the columns a job view does not show)."""
    query = select(Job).where(Job.id == job_id)
    if view_only:
        query = query.options(*(defer(column) for column in HEAVY_COLUMNS))
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """The columns of a job a stage works from, as one row read them (not a live ORM object).

    The client's metadata and the result are left out: no stage reads them.
    """

    id: str
    tenant_id: str
    upload_id: str
    filename: str
    content_type: str | None
    size: int
    sha256: str | None
    status: str
    stage: str | None
    detected_type: str | None
    kind: str | None
    object_bucket: str | None
    object_key: str | None
    multipart_id: str | None
    parts: list[Any] | None
    assembled_at: datetime | None
    uploaded_at: datetime | None
    extracted_at: datetime | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


#: The columns of a ``JobSnapshot``, in its order.
SNAPSHOT_COLUMNS = tuple(JOBS.c[field.name] for field in fields(JobSnapshot))


def snapshot(session: Session, job_id: str, *, for_update: bool = False) -> JobSnapshot | None:
    """A job's ``JobSnapshot`` by id (None: no such job)."""
    query = select(*SNAPSHOT_COLUMNS).where(JOBS.c.id == job_id)
    if for_update:
        query = query.with_for_update()
    row = session.execute(query).first()
    return JobSnapshot(*row) if row is not None else None


class StageVerdict:
    """What ``begin_stage`` decided: run, skip (already done, or the job is over)."""

    RUN, DONE, SKIP = "run", "done", "skip"


@dataclass(frozen=True)
class StageRun:
    """One run of a stage as ``begin_stage`` admitted it.

    Attributes:
        verdict: A ``StageVerdict``.
        run_id: The run's token (``finish_run`` and ``record_crash`` name it).
        isolate: Run the stage in a process of its own: an earlier run was lost with its process.
        job: The job as the run found it (after its start was recorded); None for ``SKIP``.
    """

    verdict: str
    run_id: str | None = None
    isolate: bool = False
    job: JobSnapshot | None = None


STAGE_MARKERS = {"assemble": "assembled_at", "upload": "uploaded_at", "extract": "extracted_at"}


def begin_stage(session: Session, job_id: str, stage: str, owner: str) -> StageRun:
    """Start a run of ``stage``: mark the job processing and remember the run in flight.

    A delivery that finds the previous run of the same stage still in flight (no end recorded)
    counts it as lost: its process died, or this is a duplicate of a message still running.
    Either way nothing proves that this job is to blame (whichever job kills a worker, all of
    its jobs come back), so the job is not charged; its next runs are isolated instead, and only
    the death of an isolated run's own process is a crash (``record_crash``, by the worker that
    watched it). Dramatiq retries are not counted at all: they end their run (``finish_run``)
    before the retry is sent.

    One ``UPDATE … RETURNING`` does it (the row's lock is taken by the update itself), and on
    PostgreSQL it also announces the job's new state when that changed; the row it returns is
    what the stage works from, so the stage need not read the job again. The
    caller commits: the run must be recorded before its work starts. That commit does not wait
    for the disk (``models.db.without_flush``, in the statement): only a crash of the database
    server could lose the start, which then undercounts one attempt of a redelivered message.

    Returns:
        ``RUN`` to do the work; ``DONE`` when the stage already finished (a redelivery: the
        actor returns at once so the pipeline moves on); ``SKIP`` when the job is gone or over.
    """
    now = utcnow()
    run_id = uuid.uuid4().hex
    params = {"job_id": job_id, "run_id": run_id, "owner": owner, "now": now}
    row = _begin_statement(stage, job_events.notifies(session)).within(session, **params)
    if row is None:
        job = snapshot(session, job_id)
        if job is None or job.terminal or not stage_done(job, stage):
            return StageRun(StageVerdict.SKIP)
        return StageRun(StageVerdict.DONE, job=job)
    width = len(SNAPSHOT_COLUMNS)
    return StageRun(StageVerdict.RUN, run_id, bool(row[width]), JobSnapshot(*row[:width]))


def _not_ended() -> ColumnElement[bool]:
    """``status`` is not a terminal one (spelled out: an expanding IN would be compiled per call)."""
    return and_(*(JOBS.c.status != literal(status) for status in sorted(TERMINAL)))


def _param(name: str, column: str) -> BindParameter[Any]:
    return bindparam(name, type_=JOBS.c[column].type)


@functools.cache
def _begin_statement(stage: str, notifies: bool) -> FastRead:
    """``begin_stage``'s statement for ``stage``, built once (parameters: job_id, run_id, owner, now),
    run on the session's own driver connection (``FastRead.within``): through the session, its
    execution machinery cost three times the round trip on every stage of every job.

    With ``notifies`` (PostgreSQL) it also announces the job's new state when a client could
    tell it apart from the one before (``job_events.notify_column``, evaluated only then): the
    announcement is in the same round trip, and still only delivered if the start commits.
    """
    c = JOBS.c
    marker = STAGE_MARKERS.get(stage)
    low = literal(STAGE_SPAN[stage][0])
    same = c.stage == literal(stage)  # NULL (a queued job) counts as another stage, as in Python
    isolated = and_(same, or_(c.run_id.is_not(None), c.lost_runs > 0, c.crashes > 0))
    # The visible state before the update, so that only a change is announced.
    # It also makes the start's commit not wait for the disk (models.db.without_flush: the
    # README's "Which commits wait for the disk"): the run's end, committed durably, follows it.
    before = select(c.id, c.status, c.stage, c.progress, without_flush().label("without_flush")).where(
        c.id == bindparam("job_id")
    ).with_for_update()
    before_cte = before.cte("before")
    now = _param("now", "updated_at")
    changed = or_(*(before_cte.c[name].is_distinct_from(c[name]) for name in ("status", "stage", "progress")))
    announced = case((changed, job_events.notify_column([c[name] for name in job_events.STATE_COLUMN_NAMES])))
    statement = (
        update(JOBS)
        .where(c.id == before_cte.c.id, _not_ended(), *([c[marker].is_(None)] if marker else []))
        .values(
            status=literal(PROCESSING),
            stage=literal(stage),
            stage_attempts=case((same, c.stage_attempts + 1), else_=1),
            lost_runs=case((and_(same, c.run_id.is_not(None)), c.lost_runs + 1), (same, c.lost_runs), else_=0),
            crashes=case((same, c.crashes), else_=0),
            attempts=c.attempts + 1,
            run_isolated=case((isolated, True), else_=False),
            run_id=_param("run_id", "run_id"),
            # An isolated run's child names itself (claim_run).
            run_owner=case((isolated, None), else_=_param("owner", "run_owner")),
            started_at=func.coalesce(c.started_at, now),
            progress=case((c.progress < low, low), else_=c.progress),
            updated_at=now,
        )
        .returning(*SNAPSHOT_COLUMNS, c.run_isolated, *([announced.label("announced")] if notifies else []))
    )
    return FastRead(statement)


def stage_done(job: Job | JobSnapshot, stage: str) -> bool:
    """Whether ``stage`` has finished for ``job`` (its marker is set)."""
    marker = STAGE_MARKERS.get(stage)
    return marker is not None and getattr(job, marker) is not None


def claim_run(session: Session, job_id: str, run_id: str, owner: str) -> None:
    """Name the process that now runs ``run_id`` (the isolated child)."""
    session.execute(update(Job).where(Job.id == job_id, Job.run_id == run_id).values(run_owner=owner))


def finish_run(session: Session, job_id: str, run_id: str) -> None:
    """Record that a run ended (done, failed or to be retried): it did not crash."""
    session.execute(update(Job).where(Job.id == job_id, Job.run_id == run_id).values(run_id=None, run_owner=None))


def record_crash(session: Session, job_id: str, run_id: str) -> int:
    """Record that an isolated run's process died while it ran this job alone (even if a
    duplicate delivery has started another run since); returns the stage's crashes so far."""
    job = load_job(session, job_id, for_update=True)
    if job is None or job.terminal:
        return 0
    job.crashes += 1
    if job.run_id == run_id:
        job.run_id = job.run_owner = None
    return job.crashes


def record_object(session: Session, job_id: str, key: str, bucket: str) -> None:
    """Record where the job's file is stored (before it is: a cancel then knows what to remove)."""
    session.execute(update(JOBS).where(JOBS.c.id == job_id).values(object_key=key, object_bucket=bucket))


def record_multipart(session: Session, job_id: str, multipart_id: str) -> str:
    """Record the job's multipart upload unless a run recorded one already; returns the one recorded
    ("" if the job is gone)."""
    c = JOBS.c
    session.execute(update(JOBS).where(c.id == job_id, c.multipart_id.is_(None)).values(multipart_id=multipart_id,
                                                                                        parts=[]))  # fmt: skip
    return session.scalar(select(c.multipart_id).where(c.id == job_id)) or ""


def record_parts(session: Session, job_id: str, parts: list[list[Any]]) -> bool:
    """Record the parts stored so far; False if the job was cancelled (or is gone)."""
    c = JOBS.c
    done = session.execute(update(JOBS).where(c.id == job_id, c.status != CANCELLED).values(parts=parts))
    return bool(done.rowcount)  # type: ignore[attr-defined]


def forget_multipart(session: Session, job_id: str) -> None:
    """Forget a multipart upload the store lost (the retry starts a new one)."""
    session.execute(update(JOBS).where(JOBS.c.id == job_id).values(multipart_id=None, parts=None))


def report_progress(session: Session, job_id: str, stage: str, fraction: float) -> None:
    """Move the job's progress to ``fraction`` of ``stage``; progress never goes backwards."""
    low, high = STAGE_SPAN[stage]
    value = round(low + (high - low) * min(max(fraction, 0.0), 1.0), 4)
    rows = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == PROCESSING)
        .values(progress=case((Job.progress < value, value), else_=Job.progress), updated_at=utcnow())
        .returning(*STATE_COLUMNS)
    )
    job_events.announce(session, [job_events.JobState.from_row(row) for row in rows])


class Advance:
    """What ``advance_stage`` found: the job moved on, had ended, or another run had moved it."""

    ADVANCED, ENDED, DONE = "advanced", "ended", "done"


def advance_stage(job_id: str, finished_stage: str, *, through: str | None = None, **values: Any) -> str:
    """Record that ``finished_stage`` is done (with ``values``, its output columns) and the next
    stage is up, in one ``UPDATE … RETURNING`` that is a transaction of its own, committed before
    this returns; the run in flight ends with it.

    One statement on the driver's connection (``models.fastread``), on every stage of every job:
    through a session, with its BEGIN and COMMIT and Core's execution machinery, it cost 700 µs
    of CPU against 190 (bench/README.md). Its commit waits for the disk: the stage's output
    must outlive a crash of the database server.

    Parameters:
        through: a later stage whose work ``finished_stage`` did as well (its output is among
            ``values``): it is marked done too, and the stage after it is up.

    Returns:
        An ``Advance``: ``ADVANCED``; ``ENDED`` when the job ended (cancelled) or is gone, and
        nothing was written; ``DONE`` when another run of the stage recorded it first.
    """
    notifies = job_events.notifies(database().engine)
    statement = _advance_statement(finished_stage, through or finished_stage, tuple(sorted(values)), notifies)
    if statement.one_or_none(**values, job_id=job_id, now=utcnow()) is not None:
        return Advance.ADVANCED
    with read_scope() as session:
        job = snapshot(session, job_id)
    return Advance.ENDED if job is None or job.terminal else Advance.DONE


@functools.cache
def _advance_statement(finished_stage: str, last_stage: str, columns: tuple[str, ...], notifies: bool) -> FastRead:
    """``advance_stage``'s statement, built once per span of stages and set of output columns;
    with ``notifies`` (PostgreSQL), the update in a CTE whose row is announced by the select
    that returns it: one round trip for both. Elsewhere listeners poll: nothing is announced."""
    c = JOBS.c
    marker = STAGE_MARKERS[finished_stage]
    done = STAGES[STAGES.index(finished_stage) : STAGES.index(last_stage) + 1]
    following = STAGES[STAGES.index(last_stage) + 1]
    low = literal(STAGE_SPAN[following][0])
    now = _param("now", "updated_at")
    statement = (
        update(JOBS)
        .where(c.id == bindparam("job_id"), _not_ended(), c[marker].is_(None))
        .values(
            **{column: _param(column, column) for column in columns},
            **{STAGE_MARKERS[stage]: now for stage in done},
            stage=literal(following),
            stage_attempts=0,
            lost_runs=0,
            crashes=0,
            run_id=None,
            run_owner=None,
            run_isolated=False,
            progress=case((c.progress < low, low), else_=c.progress),
            updated_at=now,
        )
    )
    if not notifies:
        return FastRead(statement.returning(c.id), writes=True)
    moved = statement.returning(*STATE_COLUMNS).cte("moved")
    return FastRead(select(moved.c.id, job_events.notify_column(list(moved.c))), writes=True)


def _end(job: Job, status: str) -> None:
    job.status = status
    job.completed_at = utcnow()
    job.run_id = job.run_owner = None


def complete(job: Job) -> None:
    _end(job, COMPLETED)
    job.stage = None
    job.progress = 1.0


def fail(job: Job, code: str, message: str) -> None:
    _end(job, FAILED)
    job.error_code = code
    job.error_message = message[:2000]


def cancel(job: Job) -> None:
    """Cancel a job that has not ended.

    Raises:
        Conflict: the job already ended.
    """
    if job.terminal:
        raise Conflict(f"the job is already {job.status}", code="job_finished", details={"status": job.status})
    _end(job, CANCELLED)


def list_jobs(
    session: Session, tenant_id: str, *, status: str | None, limit: int, cursor: str | None
) -> tuple[list[Job], str | None]:
    """The tenant's jobs, newest first, ``limit`` a page; the cursor is opaque to clients.

    Raises:
        BadRequest: a cursor this function did not make.
    """
    query = select(Job).where(Job.tenant_id == tenant_id).options(*(defer(column) for column in HEAVY_COLUMNS))
    if status:
        query = query.where(Job.status == status)
    if cursor:
        created_at, job_id = _decode_cursor(cursor)
        query = query.where((Job.created_at < created_at) | ((Job.created_at == created_at) & (Job.id < job_id)))
    rows = list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)))
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


#: A page cursor: the last job's creation time (microseconds since the epoch) and id, so every
#: string of this shape is a cursor (the API's document states the pattern; nothing else is 400).
CURSOR = r"^[0-9]{1,17}-[0-9a-f]{24}$"
_CURSOR = re.compile(CURSOR)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _encode_cursor(job: Job) -> str:
    micros = (job.created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}-{job.id.removeprefix('job_')}"


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, job id) a cursor carries.

    Raises:
        BadRequest: ``invalid_cursor``: not a cursor's shape (checked before SQL sees it).
    """
    if not _CURSOR.fullmatch(cursor):
        raise BadRequest("the cursor is not valid", code="invalid_cursor")
    micros, hex_id = cursor.split("-")
    return _EPOCH + timedelta(microseconds=int(micros)), f"job_{hex_id}"


def unpublished_jobs(session: Session, older_than: datetime) -> list[str]:
    """Queued jobs whose first message was never confirmed, created before ``older_than``."""
    query = select(Job.id).where(Job.status == QUEUED, Job.enqueued_at.is_(None), Job.created_at < older_than)
    return list(session.scalars(query.limit(1000)))


def lost_jobs(session: Session, idle_since: datetime, stalled_since: datetime) -> list[tuple[str, str]]:
    """Jobs whose message may be gone, with the stage to send again.

    A message the broker confirmed can still be lost (a queue deleted, a node's disk lost), so
    any job that waits with no run in flight (queued, or processing between two stages) and
    has not changed since ``idle_since`` is re-sent; a run in flight that has not changed since
    ``stalled_since`` is re-sent too. A duplicate of a message that was only slow is harmless:
    every stage is idempotent.
    """
    waiting = (Job.run_id.is_(None)) & (Job.updated_at < idle_since) & (
        (Job.status == PROCESSING) | ((Job.status == QUEUED) & Job.enqueued_at.is_not(None))
    )
    running = (Job.status == PROCESSING) & Job.run_id.is_not(None) & (Job.updated_at < stalled_since)
    query = select(Job.id, Job.stage).where(waiting | running)
    return [(job_id, stage or STAGES[0]) for job_id, stage in session.execute(query.limit(1000))]


def not_extracting(session: Session, job_ids: list[str]) -> list[str]:
    """Of ``job_ids`` (found with extract scratch space), those that no extract run still needs."""
    if not job_ids:
        return []
    running = select(Job.id).where(Job.id.in_(job_ids), Job.status == PROCESSING, Job.extracted_at.is_(None))
    busy = set(session.scalars(running))
    return [job_id for job_id in job_ids if job_id not in busy]


def touch(session: Session, job_id: str) -> None:
    """Record that something happened to the job (a re-send), so the next sweep waits again."""
    session.execute(_TOUCH, {"job_id": job_id, "now": utcnow()})


def mark_enqueued(job_id: str) -> bool:
    """Record that the broker confirmed the job's pipeline (the sweeper re-sends it until then),
    in a transaction of its own; False when it was recorded before (or the job is gone).

    One statement, committed by itself on the driver's connection (``models.fastread``): it
    follows the publish of every job a client starts. Its commit does not wait for the disk
    (``models.db.without_flush``, in the statement: the mark is its transaction's only write):
    lost with the database server, the sweeper re-sends the job, which is harmless.
    """
    return _ENQUEUED.one_or_none(job_id=job_id, now=utcnow()) is not None


# Table statements, built once: an ``update(Job)`` through the session is an ORM bulk update,
# which works out what to synchronise in the session on every call.
_TOUCH = update(JOBS).where(JOBS.c.id == bindparam("job_id")).values(updated_at=_param("now", "updated_at"))
#: ``mark_enqueued``'s statement. ``updated_at`` is set in it: a statement run on the driver's
#: connection gets no ``onupdate`` from SQLAlchemy.
_ENQUEUED = FastRead(
    update(JOBS)
    .where(JOBS.c.id == bindparam("job_id"), JOBS.c.enqueued_at.is_(None),
           select(without_flush()).scalar_subquery() == literal("off"))  # evaluated once  # fmt: skip
    .values(enqueued_at=_param("now", "enqueued_at"), updated_at=_param("now", "updated_at"))
    .returning(JOBS.c.id),
    writes=True,
)


def reopen(job: Job) -> str:
    """Put a failed job back to work at the stage it failed in (an operator's retry).

    Returns:
        The stage to send the job to.

    Raises:
        Conflict: the job did not fail, or its bytes are gone: a job that failed before its
            file was stored has had its staged chunks removed, so only the client can send it again.
    """
    if job.status != FAILED:
        raise Conflict(f"only a failed job can be retried; this one is {job.status}", code="job_not_failed",
                       details={"status": job.status})  # fmt: skip
    if job.uploaded_at is None:
        raise Conflict("the job failed before its file was stored and its chunks are gone: upload it again",
                       code="job_not_retryable", details={"stage": job.stage})  # fmt: skip
    job.status = PROCESSING
    job.error_code = job.error_message = job.completed_at = None
    job.stage = job.stage if job.stage in ("extract", "notify") else "extract"
    job.stage_attempts = job.lost_runs = job.crashes = 0
    job.run_id = job.run_owner = None
    job.run_isolated = False
    return job.stage
