"""The hottest single statements on the driver's own connection: prebuilt, no Core machinery around them.

``GET /v1/jobs/{id}`` is what clients poll. Run through a Core ``Connection``, its one select cost
about three times the CPU of the driver's own work (a Connection and its autocommit checkout, an
execution context, a result with its row processors, a rollback on return). :class:`FastRead`
runs the same statement, compiled once, as a prepared statement straight on a pooled psycopg
connection put in autocommit mode, and does by hand what the engine would have done: the
watchdog's deadline on the round trip (``models.dbwatch``), a lost connection dropped (and the
pool's older ones marked stale, as after any disconnect), and driver errors raised as SQLAlchemy's
(the API answers those with 503).

The same holds for a write that is a transaction of one statement (``writes=True``): run in
autocommit mode, the statement is its own transaction, with no BEGIN and no COMMIT round trip.
The broker's confirmation of a job's first message, recorded on every job a client starts
(``models.job.mark_enqueued``), is one: through a session it cost as much web CPU as the
publish itself. A stage's end (``models.job.advance_stage``) is another.

Inside a session's transaction (:meth:`FastRead.within`, :meth:`FastRead.all_within`) the
statement runs on the session's own connection and is committed or rolled back with the rest of
its work: a stage run's start, a job's completion and the reads a stage starts from. Through
``Session.execute`` those cost about four times psycopg's own execute (26 % of a worker's samples
against 6.5 %): an execution context, bind processing and a result per statement.

The values are bound as Core would bind them: each parameter's type's bind processor (a JSON
column's, a UTC timestamp's check) is looked up once, when the statement is built, and applied
to that parameter alone. Results get no processing, so only statements whose selected columns
need none on PostgreSQL come this way (psycopg parses JSON and returns aware datetimes itself).
Anywhere else (SQLite, the embedded default) the same statement runs through Core, with its
processors, in a transaction of its own when it writes.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from typing import Any

from psycopg import Connection as DriverConnection
from psycopg import Cursor
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Insert, Select, Update
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from models.db import Database, connection_lost, database, read_connection
from models.dbwatch import watchdog_of


class FastRead:
    """A statement of at most one row, run on the driver's connection where that is PostgreSQL.

    Parameters:
        statement: a Core select, or an update or insert with RETURNING, whose parameters are
            named ``bindparam``s.
        writes: the statement changes rows: it commits by itself (autocommit on PostgreSQL, a
            transaction of its own elsewhere).
    """

    def __init__(self, statement: Select[Any] | Update | Insert, *, writes: bool = False):
        self.statement = statement
        self.writes = writes
        dialect = pg_psycopg.dialect()
        compiled = statement.compile(dialect=dialect)
        if compiled.insert_prefetch or compiled.update_prefetch:  # Core computes these per execution
            names = ", ".join(c.name for c in [*compiled.insert_prefetch, *compiled.update_prefetch])
            raise ValueError(f"the statement leaves {names} to a Python default or onupdate: set it in the statement")
        if any(bind.expanding for bind in compiled.binds.values()):  # rendered per execution by Core only
            raise ValueError("the statement has an expanding IN parameter: write its values as literals")
        self.sql = str(compiled)
        #: Each parameter's bind processor, where its type has one (JSON, ``UtcDateTime``,
        #: Boolean): what Core's execution would apply on every call, looked up once.
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if name in compiled.params and processor is not None:
                self.processors[name] = processor
        #: The values the statement carries itself (its LIMITs, the NULLs and constants it writes),
        #: beside the caller's (the ``bindparam``s without a value, which the caller must give).
        self.constants = {
            name: self._bound(name, bind.effective_value)
            for name, bind in compiled.binds.items()
            if name in compiled.params and not bind.required
        }
        #: The row's type, made once: psycopg's ``namedtuple_row`` reads the names off each result.
        self.row_type = namedtuple("Row", [str(name) for name in statement.exported_columns.keys()])  # type: ignore[misc]

    def _bound(self, name: str, value: Any) -> Any:
        processor = self.processors.get(name)
        return value if processor is None else processor(value)

    def _values(self, params: dict[str, Any]) -> dict[str, Any]:
        """The statement's constants and the caller's ``params``, bound as Core would bind them."""
        return {**self.constants, **{name: self._bound(name, value) for name, value in params.items()}}

    def one_or_none(self, **params: Any) -> Any:
        """The row (one attribute per selected column's name or label), or None.

        Raises:
            sqlalchemy.exc.DBAPIError: the database failed (OperationalError when unreachable).
        """
        db = database()
        if db.engine.dialect.driver != "psycopg":
            if self.writes:
                with db.engine.begin() as connection:
                    return connection.execute(self.statement, params).one_or_none()
            with read_connection() as connection:
                return connection.execute(self.statement, params).one_or_none()
        return _fetch_one(db, self.sql, self._values(params), self.row_type)

    def within(self, session: Session, **params: Any) -> Any:
        """The row (or None), the statement run inside ``session``'s transaction: on its
        connection's driver where that is psycopg, else through the session. What the session
        holds unflushed is flushed first (unless autoflush is off), and the session commits or
        rolls the statement back with the rest of its work, as any statement of its.

        Raises:
            sqlalchemy.exc.DBAPIError: the database failed (OperationalError when unreachable).
        """
        connection = _flushed(session)
        if connection.dialect.driver != "psycopg":
            return session.execute(self.statement, params).one_or_none()
        rows = _fetch_within(connection, self.sql, self._values(params), self.row_type, every=False)
        return rows[0] if rows else None

    def all_within(self, session: Session, **params: Any) -> list[Any]:
        """Every row, as :meth:`within` runs the statement (for a select of several rows)."""
        connection = _flushed(session)
        if connection.dialect.driver != "psycopg":
            return list(session.execute(self.statement, params).all())
        return _fetch_within(connection, self.sql, self._values(params), self.row_type, every=True)


def _flushed(session: Session) -> Connection:
    """The session's connection, once what it holds unflushed is written (unless autoflush is
    off), as ``Session.execute`` would do it: the statement sees the session's pending rows."""
    if session.autoflush:
        session.flush()
    return session.connection()


#: Where a pooled connection keeps its cursor for these reads (the pool's per-connection ``info``,
#: emptied when the connection is invalidated): making a cursor was ~2 % of a status GET.
_CURSOR = "chute.fastread.cursor"


def _cursor(pooled: Any, connection: DriverConnection[Any]) -> Cursor[Any]:
    cursor: Cursor[Any] | None = pooled.info.get(_CURSOR)
    if cursor is None or cursor.connection is not connection or cursor.closed:
        cursor = pooled.info[_CURSOR] = connection.cursor()
    return cursor


def _fetch_one(db: Database, sql: str, params: dict[str, Any], row_type: Any) -> Any:
    """The statement on a pooled connection of its own, in autocommit mode: its row, or None."""
    dialect = db.engine.dialect
    error = dialect.loaded_dbapi.Error
    try:
        pooled = db.engine.raw_connection()
    except error as e:
        raise _wrapped(e, sql, params, dialect, invalidated=False) from e
    connection: DriverConnection[Any] = pooled.driver_connection  # type: ignore[assignment]
    try:
        connection.autocommit = True  # no BEGIN, no COMMIT or ROLLBACK: one statement is its own transaction
        rows = _execute(pooled, connection, watchdog_of(db.engine), sql, params, row_type, every=False)
        return rows[0] if rows else None
    except error as e:
        lost = _lost(dialect, e, pooled)
        if lost:  # as a Core Connection does: this connection goes, and every older pooled one is stale
            db.engine.pool._invalidate(pooled, e)
        raise _wrapped(e, sql, params, dialect, invalidated=lost) from e
    finally:
        if pooled.is_valid:
            if connection.info.transaction_status == TransactionStatus.IDLE:
                connection.autocommit = False  # as the pool's other users expect it
            else:  # interrupted mid round trip: its answer would greet the next user
                pooled.invalidate()
        pooled.close()


def _fetch_within(connection: Connection, sql: str, params: dict[str, Any], row_type: Any, *, every: bool) -> list[Any]:
    """The statement on a Core connection, in its transaction: no checkout, no autocommit, and a
    lost connection invalidated as the Core connection would do it itself. The first row at most
    (``every=False``), or all of them."""
    dialect = connection.dialect
    error = dialect.loaded_dbapi.Error
    pooled = connection.connection
    driver: DriverConnection[Any] = pooled.driver_connection  # type: ignore[assignment]
    try:
        return _execute(pooled, driver, watchdog_of(connection.engine), sql, params, row_type, every=every)
    except error as e:
        lost = _lost(dialect, e, pooled)
        if lost:  # as Core's own handling does: every older pooled connection is stale, this one goes
            connection.engine.pool._invalidate(pooled, e)
            connection.invalidate(e)
        raise _wrapped(e, sql, params, dialect, invalidated=lost) from e


def _execute(
    pooled: Any, driver: DriverConnection[Any], watchdog: Any, sql: str, params: dict[str, Any], row_type: Any,
    *, every: bool,
) -> list[Any]:
    """Run the prepared statement under the watchdog's deadline; its first row at most, or all of
    them. Driver errors go to the caller, which knows what a lost connection means for it."""
    if watchdog is not None:
        watchdog.arm(driver)
    try:
        cursor = _cursor(pooled, driver)
        cursor.execute(sql, params, prepare=True)
        if every:
            return [row_type._make(values) for values in cursor.fetchall()]
        values = cursor.fetchone()
        return [] if values is None else [row_type._make(values)]
    finally:
        if watchdog is not None:
            watchdog.disarm(driver)


def _lost(dialect: Any, error: Exception, pooled: Any) -> bool:
    """Whether ``error`` means the connection is gone, as Core decides it on this engine (the
    dialect's test, then ``models.db.connection_lost``, which its ``handle_error`` adds)."""
    return bool(dialect.is_disconnect(error, pooled, None)) or connection_lost(error)


def _wrapped(error: Exception, sql: str, params: dict[str, Any], dialect: Any, *, invalidated: bool) -> BaseException:
    """The driver's error as SQLAlchemy's (``OperationalError`` for a database that is down)."""
    return DBAPIError.instance(
        sql, params, error, dialect.loaded_dbapi.Error, connection_invalidated=invalidated, dialect=dialect
    )
