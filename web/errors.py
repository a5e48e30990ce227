"""ApiError rendering: every error is ``{"error": {"code", "message", "details"}}`` with its status.

Domain errors map to statuses by class; Werkzeug's own HTTP errors (404 route, 405, 413 from
MAX_CONTENT_LENGTH, 400/415 from get_json) get the same JSON shape; anything unexpected is
logged and answered 500 without leaking internals.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq.errors
import sqlalchemy.exc
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from models import errors
from web.event_hub import TenantStreamLimit, TooManyStreams

log = logging.getLogger(__name__)

#: HTTP status of each domain error family.
STATUS: dict[type[Exception], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.TooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.Invalid: 422,
    errors.FileRejected: 422,
    errors.QuotaExceeded: 429,
    errors.RateLimited: 429,
    errors.BrokerUnavailable: 503,
    errors.StorageUnavailable: 503,
    TooManyStreams: 503,
    TenantStreamLimit: 429,
    errors.StagingFull: 507,
}

#: Codes of Werkzeug's errors where its name would say less than chute's own code does.
HTTP_CODES: dict[int, str] = {413: "body_too_large"}


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> ResponseReturnValue:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="chute"'
    return response


def _status_of(error: Exception) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def register(app: Flask) -> None:
    @app.errorhandler(errors.ChuteError)
    def chute_error(error: errors.ChuteError) -> ResponseReturnValue:
        response = error_response(_status_of(error), error.code, error.message, error.details)
        if isinstance(error, errors.RateLimited):
            response.headers["Retry-After"] = str(error.retry_after)  # type: ignore[union-attr]
        return response

    @app.errorhandler(errors.TransientError)
    def transient_error(error: errors.TransientError) -> ResponseReturnValue:
        log.warning("dependency unavailable: %s", error)
        response = error_response(_status_of(error), error.code, error.message)
        response.headers["Retry-After"] = str(error.retry_after)  # type: ignore[union-attr]
        return response

    @app.errorhandler(dramatiq.errors.BrokerError)
    def broker_error(error: Exception) -> ResponseReturnValue:
        log.warning("broker unavailable: %s", error)
        response = error_response(503, "broker_unavailable", "the message broker is unavailable; try again")
        response.headers["Retry-After"] = "5"  # type: ignore[union-attr]
        return response

    @app.errorhandler(sqlalchemy.exc.OperationalError)
    @app.errorhandler(sqlalchemy.exc.InterfaceError)
    @app.errorhandler(sqlalchemy.exc.TimeoutError)  # no pooled connection came free in time
    def database_error(error: Exception) -> ResponseReturnValue:
        log.warning("database unavailable: %s", error)
        response = error_response(503, "database_unavailable", "the database is unavailable; try again")
        response.headers["Retry-After"] = "5"  # type: ignore[union-attr]
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> ResponseReturnValue:
        status = error.code or 500
        code = HTTP_CODES.get(status) or (error.name or "error").lower().replace(" ", "_").replace("'", "")
        response = error_response(status, code, error.description or error.name)
        # Werkzeug's own headers stay: 405 names the methods the URL takes in Allow.
        for name, value in error.get_headers():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value  # type: ignore[union-attr]
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> ResponseReturnValue:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an unexpected error occurred")
