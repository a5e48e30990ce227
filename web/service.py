"""Service endpoints: liveness, readiness of every dependency, Prometheus metrics, the API description."""

from __future__ import annotations

import os
import time
from functools import cache
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from flask.typing import ResponseReturnValue
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import text

from actors.extraction.ocr import probe
from actors.storage import open_store
from models.db import database
from models.settings import current_settings
from web.collectors import StateCollector
from web.contract import Reply, operation
from web.openapi import openapi_document
from web.schemas.common import ErrorBody, ErrorDetail
from web.schemas.service import Check, Health, Ocr, Readiness

bp = Blueprint("service", __name__)

REQUESTS = Counter("chute_http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram("chute_http_request_seconds", "HTTP request latency", ["method", "endpoint"])


@bp.get("/healthz")
@operation("getHealth", tags=["service"], summary="The process is up", responses={200: Health}, auth=None)
def healthz() -> Health:
    return Health(status="ok")


def _check(name: str, fn: Any) -> Check:
    started = time.perf_counter()
    try:
        fn()
        return Check(name=name, ok=True, ms=round((time.perf_counter() - started) * 1000, 1))
    except Exception as e:
        return Check(name=name, ok=False, error=str(e)[:300])


@bp.get("/readyz")
@operation(
    "getReadiness",
    tags=["service"],
    summary="The database, the broker and the object store answer",
    description="200 with each dependency's answer time; 503 `not_ready` (the error shape) naming in "
    "`details.checks` the dependency that does not answer.",
    responses={200: Reply(Readiness, "ready")},
    errors={503: ["not_ready"]},
    auth=None,
)
def readyz() -> Readiness | tuple[ErrorBody, int, dict[str, str]]:
    """200 when the database, the broker and the store answer; 503 naming what does not."""
    from actors.broker import broker, ping_broker

    settings = current_settings()

    def db() -> None:
        with database().engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    checks = [
        _check("database", db),
        _check("broker", lambda: ping_broker(broker)),
        _check("storage", lambda: open_store(settings.storage_url).ping()),
    ]
    engine = probe(tuple(settings.ocr_languages))
    ocr = Ocr(available=engine.available, version=engine.version, languages=list(engine.languages),
              problem=engine.problem)  # fmt: skip
    if all(c.ok for c in checks):
        return Readiness(status="ready", checks=checks, ocr=ocr)
    failing = ", ".join(c.name for c in checks if not c.ok)
    details = {"checks": [c.model_dump() for c in checks], "ocr": ocr.model_dump()}
    error = ErrorBody(error=ErrorDetail(code="not_ready", message=f"not answering: {failing}", details=details))
    return error, 503, {"Retry-After": "5"}


@bp.get("/metrics")
@operation(
    "getMetrics",
    tags=["service"],
    summary="Prometheus metrics",
    responses={200: Reply(None, "the exposition format", media_type=CONTENT_TYPE_LATEST, schema={"type": "string"})},
    auth=None,
)
def metrics() -> ResponseReturnValue:
    """This process's metrics, or every gunicorn worker's when ``chute web`` set up multiprocess mode."""
    state = CollectorRegistry()
    state.register(StateCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # prometheus_client's own switch, set by ``chute web``
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        own = generate_latest(registry)
    else:
        own = generate_latest()
    return Response(own + generate_latest(state), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/openapi.json")
@operation(
    "getOpenApi",
    tags=["service"],
    summary="This document",
    responses={200: Reply(None, "OpenAPI 3.1", schema={"type": "object"})},
    auth=None,
)
def openapi() -> ResponseReturnValue:
    return openapi_document(current_app)


def start_timer() -> None:
    g.started = time.perf_counter()


def record_request(response: Response) -> Response:
    endpoint = request.endpoint or "unknown"
    _requests(request.method, endpoint, response.status_code).inc()
    if "started" in g:
        _latency(request.method, endpoint).observe(time.perf_counter() - g.started)
    return response


# prometheus_client finds a series by its labels under a lock on every call: each series is
# looked up once per process instead (a few microseconds of every request).
@cache
def _requests(method: str, endpoint: str, status: int) -> Counter:
    return REQUESTS.labels(method, endpoint, str(status))


@cache
def _latency(method: str, endpoint: str) -> Histogram:
    return LATENCY.labels(method, endpoint)
