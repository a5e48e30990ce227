"""Which exceptions are worth retrying: the Retries middleware's ``retry_when``."""

from __future__ import annotations

import dramatiq
import sqlalchemy.exc
import urllib3.exceptions
from dramatiq.middleware import MiddlewareError, TimeLimitExceeded

from actors.extraction.sandbox import ChildError
from models.errors import ChuteError, TransientError


class BookkeepingFailed(MiddlewareError):
    """The database could not record the start of a stage, so the stage must not run.

    A ``MiddlewareError``: Dramatiq logs and swallows any other exception raised in a
    ``before_process_message`` hook and runs the actor anyway (uncounted, unchecked); this
    one it lets through, the actor is not called, and Retries retries the message.
    """


class StageCrashed(TransientError):
    """A stage's isolated process died (a signal, the OOM killer) before it answered."""

    code = "stage_crashed"


#: Failures of the things we depend on (network, storage, database, broker, a slow run):
#: retried with exponential backoff and jitter. Anything else is a bug or a bad file and
#: fails the job at once, instead of burning retries.
TRANSIENT = (
    TransientError,
    BookkeepingFailed,
    dramatiq.Retry,
    dramatiq.errors.BrokerConnectionError,
    ConnectionError,
    TimeoutError,
    TimeLimitExceeded,
    ChildError,  # an extraction child that died without a reply: the machine's fault, not the file's
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    urllib3.exceptions.HTTPError,
)


def is_transient(exception: BaseException) -> bool:
    return isinstance(exception, TRANSIENT) and not isinstance(exception, ChuteError)


def retry_when(max_retries: int):  # type: ignore[no-untyped-def]
    """A ``retry_when`` predicate: transient errors, up to ``max_retries`` times."""

    def predicate(retries: int, exception: BaseException) -> bool:
        return retries < max_retries and is_transient(exception)

    return predicate
