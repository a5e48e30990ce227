"""The domain's exception tree.

Every error a client can act on carries a stable snake_case ``code``; the web layer maps
the class to an HTTP status and the pipeline records the code on the failed job. Errors
split in two families: :class:`ChuteError` subclasses are *permanent* (retrying cannot
help, so the job fails at once) and :class:`TransientError` subclasses are retried with
backoff by Dramatiq's Retries middleware.
"""

from __future__ import annotations

from typing import Any


class ChuteError(Exception):
    """A permanent, client-visible error with a stable code."""

    #: The default snake_case code of this error family.
    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details or {}


class BadRequest(ChuteError):
    """The request is malformed (400)."""

    code = "bad_request"


class Unauthorized(ChuteError):
    """No valid API key (401)."""

    code = "unauthorized"


class Forbidden(ChuteError):
    """The credential is valid but may not do this (403): an upload token outside its scope."""

    code = "forbidden"


class NotFound(ChuteError):
    """No such resource for this tenant (404, also for another tenant's ids)."""

    code = "not_found"


class Conflict(ChuteError):
    """The resource is in a state that forbids the operation (409)."""

    code = "conflict"


class Gone(ChuteError):
    """The resource existed but is no longer usable, for good (410): an expired upload."""

    code = "gone"


class TooLarge(ChuteError):
    """A body or a declared size is over a limit (413)."""

    code = "too_large"


class UnsupportedMediaType(ChuteError):
    """The request body's media type is not accepted (415)."""

    code = "unsupported_media_type"


class Invalid(ChuteError):
    """Well-formed but invalid input (422)."""

    code = "invalid"


class FileRejected(ChuteError):
    """A file that cannot be processed: the job fails at once with this code.

    Codes in use: ``checksum_mismatch``, ``incomplete_upload``, ``corrupt_file``,
    ``unsupported_file``, ``file_too_large``, ``too_many_attempts``.
    """

    code = "file_rejected"


class QuotaExceeded(ChuteError):
    """A per-tenant quota is used up (429); ``details`` names the quota, its limit and the use."""

    code = "quota_exceeded"


class RateLimited(ChuteError):
    """Too many requests in a window (429); the client may retry after ``retry_after`` seconds."""

    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: int, code: str | None = None, details: dict[str, Any] | None = None
    ):
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after


class TransientError(Exception):
    """A failure worth retrying: network, storage 5xx, broker or database hiccups."""

    code: str = "transient_error"
    #: Seconds a client should wait before trying again (the ``Retry-After`` header).
    retry_after: int = 5

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class StorageUnavailable(TransientError):
    """The object store did not answer or answered with a server error."""

    code = "storage_unavailable"


class BrokerUnavailable(TransientError):
    """A message could not be published (the web layer answers 503)."""

    code = "broker_unavailable"


class MultipartGone(StorageUnavailable):
    """The store no longer knows a multipart upload (aborted elsewhere, or expired): start over."""

    code = "multipart_gone"


class StagingFull(TransientError):
    """The staging disk is full (507): nothing was kept; try again once uploads have drained."""

    code = "insufficient_storage"
    retry_after = 30
