"""gunicorn's access log, with the same lines for a fraction of the CPU (``chute web``'s ``--logger-class``).

gunicorn builds every access line from a dict of all its atoms — every request and response
header and every WSGI environ variable, each key formatted and lowered — wrapped in a
case-insensitive mapping, then formats its log format against that. For a small GET that was
about 60 µs of a worker's CPU, 5–7 % of chute's status GET. :class:`AccessLogger` writes the
line of gunicorn's default format (Apache's combined log format) directly from the six values it
shows, through the same ``gunicorn.access`` logger, so its handlers, ``--access-logfile``,
syslog and reopening on USR1 are gunicorn's own and ops read exactly the lines they read before.
A different ``--access-logformat`` (e.g. in ``GUNICORN_CMD_ARGS``) is formatted by gunicorn as
always.
"""

from __future__ import annotations

import datetime
import traceback
from typing import Any

from gunicorn import glogging
from gunicorn.config import AccessLogFormat

#: The format this logger writes without gunicorn's atoms (gunicorn's default).
COMBINED = AccessLogFormat.default


class AccessLogger(glogging.Logger):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's Logger; only :meth:`access` differs, and only for the default format."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: datetime.timedelta) -> None:
        if self.cfg.access_log_format != COMBINED:
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        try:
            status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
            sent = getattr(resp, "sent", None)
            line = '%s - %s %s "%s %s %s" %s %s "%s" "%s"' % (  # noqa: UP031 (gunicorn's own way, one pass)
                environ.get("REMOTE_ADDR", "-"),
                self._get_user(environ) or "-",
                self.now(),
                environ["REQUEST_METHOD"],
                environ["RAW_URI"],
                environ["SERVER_PROTOCOL"],
                status,
                "-" if sent is None else sent,
                environ.get("HTTP_REFERER", "-"),
                environ.get("HTTP_USER_AGENT", "-"),
            )
            self.access_log.info("%s", line)
        except Exception:
            self.error(traceback.format_exc())
