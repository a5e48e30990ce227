"""A client-side deadline on PostgreSQL round trips: a server that stops answering is cut off.

``statement_timeout`` makes PostgreSQL cancel a slow statement, and ``connect_timeout`` bounds
connecting, but a server that does not run at all (a paused container, a host that hangs)
answers neither: its kernel still acknowledges every packet, so the client waits for ever and
each API thread with it. This watchdog gives every statement, commit and rollback a deadline;
when one passes, it shuts the connection's socket down, the driver fails with an
OperationalError (the API answers 503, a worker retries) and the pool drops the connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import weakref
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)

#: How often the watchdog looks for expired deadlines.
TICK_SECONDS = 0.25

#: The watchdog installed on each engine, for reads that bypass the engine's events (models.fastread).
_installed: weakref.WeakKeyDictionary[Engine, Watchdog] = weakref.WeakKeyDictionary()


def watchdog_of(engine: Engine) -> Watchdog | None:
    """The watchdog :meth:`Watchdog.install` put on ``engine`` (None: its round trips are not watched)."""
    return _installed.get(engine)


class Watchdog:
    """Deadlines per DBAPI connection, checked by one daemon thread.

    Parameters:
        seconds: How long one round trip may take before its socket is shut down.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadlines: dict[int, tuple[float, int]] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def arm(self, dbapi_connection: Any) -> None:
        fd = _socket_fd(dbapi_connection)
        if fd is None:
            return
        with self.lock:
            self.deadlines[id(dbapi_connection)] = (time.monotonic() + self.seconds, fd)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._watch, name="chute-db-watchdog", daemon=True)
                self.thread.start()

    def disarm(self, dbapi_connection: Any) -> None:
        with self.lock:
            self.deadlines.pop(id(dbapi_connection), None)

    def _watch(self) -> None:
        while True:
            time.sleep(TICK_SECONDS)
            now = time.monotonic()
            with self.lock:
                expired = [(key, fd) for key, (deadline, fd) in self.deadlines.items() if deadline < now]
                for key, _ in expired:
                    del self.deadlines[key]
            for _, fd in expired:
                log.warning("database gave no answer in %.0f s: cutting its connection", self.seconds)
                _shutdown(fd)

    def install(self, engine: Engine) -> None:
        """Arm before each statement, commit and rollback; disarm when it returns or fails."""
        _installed[engine] = self

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, *args: Any) -> None:
            self.arm(conn.connection.dbapi_connection)

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, *args: Any) -> None:
            self.disarm(conn.connection.dbapi_connection)

        @event.listens_for(engine, "handle_error")
        def _error(context: Any) -> None:
            if context.connection is not None and context.connection.connection is not None:
                self.disarm(context.connection.connection.dbapi_connection)

        @event.listens_for(engine, "commit")
        @event.listens_for(engine, "rollback")
        def _ending(conn: Any) -> None:
            if not conn.invalidated:  # an invalidated connection's rollback sends nothing
                self.arm(conn.connection.dbapi_connection)

        @event.listens_for(engine.pool, "checkin")
        def _checkin(dbapi_connection: Any, record: Any) -> None:
            if dbapi_connection is not None:
                self.disarm(dbapi_connection)


def _socket_fd(dbapi_connection: Any) -> int | None:
    pgconn = getattr(dbapi_connection, "pgconn", None)  # psycopg 3
    try:
        return int(pgconn.socket) if pgconn is not None else None
    except Exception:  # closed or broken: nothing to watch
        return None


def _shutdown(fd: int) -> None:
    """Shut the socket down (not close: the driver still owns the descriptor)."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()
