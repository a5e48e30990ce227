"""Engine, declarative Base and ``session_scope()``: the database without a Flask app context.

The engine is built lazily from the current settings, so importing models never connects.
SQLite (the embedded default) is tuned for a web process and worker threads writing at once:
WAL journal, a busy timeout, and foreign keys on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg
from sqlalchemy import JSON, Connection, DateTime, Engine, MetaData, String, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from models.dbwatch import Watchdog
from models.settings import current_settings

#: A round trip is cut this long after PostgreSQL would have cancelled its statement itself.
WATCHDOG_GRACE_SECONDS = 2.0

#: Constraint names that Alembic can rely on, on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class _Owned(Protocol):
    @property
    def tenant_id(self) -> str: ...


_Row = TypeVar("_Row", bound=_Owned)


def of_tenant(row: _Row | None, tenant_id: str) -> _Row | None:
    """``row`` (anything with a ``tenant_id``) when it is the tenant's; None otherwise, as if missing.

    A tenant's row is looked up by its primary key alone, and its tenant checked here, rather
    than by ``id = … AND tenant_id = …``: a PostgreSQL planner without statistics on the table (a
    new database before autovacuum's first ANALYZE, or one just restored from a dump) weighs
    the two indexes alike and may take the tenant's, filtering every row of the tenant for the
    one id. A status GET read all 400 of a benchmark tenant's jobs that way
    (``tests/models/test_lookup_plans.py``).
    """
    return row if row is not None and row.tenant_id == tenant_id else None


def connection_lost(error: BaseException) -> bool:
    """An ``OperationalError`` of psycopg's own, with no SQLSTATE from the server: the connection
    is gone, though the driver may not know it yet. psycopg raises one ("connection socket
    closed") when the socket fails before it read the server's last message, and then still
    holds the connection as neither closed nor broken, which is all SQLAlchemy's
    ``is_disconnect`` asks; a rollback on it failed again ("another command is already in
    progress") and hid the first error. The server's own errors (a statement timeout, a
    constraint) carry a SQLSTATE and are not this.
    """
    return isinstance(error, psycopg.OperationalError) and error.sqlstate is None


def _lost_is_a_disconnect(context: Any) -> None:
    """``handle_error``: Core invalidates a connection :func:`connection_lost` says is gone."""
    if not context.is_disconnect and connection_lost(context.original_exception):
        context.is_disconnect = True


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str, *, timeouts: bool = True) -> Engine:
    """An engine for ``url``; for a SQLite file, its directory is created.

    ``timeouts=False`` leaves statements unbounded (migrations may rewrite large tables).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # No pre-ping (a round trip per checkout); connections are recycled instead, and a dead
        # one fails its transaction: workers retry it, the API answers 503. A database that does
        # not answer fails as soon: connecting, each statement and the wait for a pooled
        # connection have timeouts, and a round trip with no answer at all is cut (dbwatch).
        settings = current_settings()
        statement_ms = int(settings.database_statement_timeout_seconds * 1000) if timeouts else 0
        engine = create_engine(
            url,
            pool_recycle=300,
            pool_size=10,
            max_overflow=20,
            pool_timeout=settings.database_pool_timeout_seconds,
            connect_args={
                "connect_timeout": settings.database_connect_timeout_seconds,
                "options": f"-c statement_timeout={statement_ms}",
            },
        )
        event.listen(engine, "handle_error", _lost_is_a_disconnect)
        if timeouts:
            Watchdog(settings.database_statement_timeout_seconds + WATCHDOG_GRACE_SECONDS).install(engine)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself (pysqlite's own transaction handling defers it),
        # so that "BEGIN IMMEDIATE" below takes the write lock up front instead of failing
        # with "database is locked" on the first write of a read-then-write transaction.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Reads need no transaction on PostgreSQL: autocommit saves the BEGIN and COMMIT round
        # trips. SQLite keeps its ordinary sessions (its BEGIN IMMEDIATE hook runs on every begin).
        readers = self.engine if self.engine.dialect.name == "sqlite" else self.engine.execution_options(
            isolation_level="AUTOCOMMIT"
        )
        self.readers = readers
        self.read_sessions = sessionmaker(readers, expire_on_commit=False)

    def dispose(self) -> None:
        self.engine.dispose()


_lock = threading.Lock()
_database: Database | None = None


def database() -> Database:
    """The process's database, built from the current settings on first use."""
    global _database
    with _lock:
        url = current_settings().database_url
        if _database is None or _database.url != url:
            if _database is not None:
                _database.dispose()
            _database = Database(url)
        return _database


@contextmanager
def read_scope() -> Iterator[Session]:
    """A session for reading only (nothing it changes is written)."""
    session = database().read_sessions()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@contextmanager
def read_connection() -> Iterator[Connection]:
    """A connection for Core reads only, without a session: the hottest reads (the status GET)
    need no unit of work, and a session's begin, rollback and close cost as much as the query."""
    with database().readers.connect() as connection:
        try:
            yield connection
        finally:
            connection.rollback()  # nothing to undo on PostgreSQL (autocommit); ends SQLite's read


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    session = database().sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class without_flush(FunctionElement[str]):  # noqa: N801 (named as SQL functions are)
    """In a statement: let its transaction's commit return before its WAL reaches the disk
    (PostgreSQL's ``set_config('synchronous_commit', 'off', true)``: for this transaction
    alone; ``'off'`` and nothing more elsewhere). In the statement itself, not a ``SET LOCAL``
    before it: the round trip is saved on the hottest transactions.

    Only for a transaction whose loss in a crash of the database server itself is harmless:
    what it wrote is visible to everyone at once as usual, the server cannot be left
    inconsistent, and the next ordinary commit on the server flushes it too. A stage run's
    start (``models.job.begin_stage``) is one: the run's end, committed durably, follows it, and
    a start lost with the server only undercounts one attempt of a message that is then
    redelivered. It saves a disk flush (a few milliseconds) on every stage of every job. The
    expression must be evaluated: in a materialized CTE's select list, or a scalar subquery.
    """

    type = String()
    name = "without_flush"
    inherit_cache = True


@compiles(without_flush)
def _without_flush_elsewhere(element: without_flush, compiler: Any, **kw: Any) -> str:
    return "'off'"


@compiles(without_flush, "postgresql")
def _without_flush_on_postgres(element: without_flush, compiler: Any, **kw: Any) -> str:
    return "set_config('synchronous_commit', 'off', true)"


def commit_with_flush(session: Session) -> None:
    """Undo :class:`without_flush` for this transaction: it wrote something a crash of the
    database server must not lose after all."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.connection().exec_driver_sql(_SYNCHRONOUS_COMMIT_ON)  # watched like any statement


_SYNCHRONOUS_COMMIT_ON = "SET LOCAL synchronous_commit TO ON"
