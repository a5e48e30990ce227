"""Service endpoints: liveness, readiness of every dependency, Prometheus metrics, the API description."""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Blueprint, Response, g, request
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

from actors.storage import open_store
from models.db import database
from models.settings import current_settings
from web.openapi import DOCS_HTML, openapi_document

bp = Blueprint("service", __name__)

REQUESTS = Counter("chute_http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram("chute_http_request_seconds", "HTTP request latency", ["method", "endpoint"])


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return {"status": "ok"}


def _check(name: str, fn: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        fn()
        return {"name": name, "ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    except Exception as e:
        return {"name": name, "ok": False, "error": str(e)[:300]}


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
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
    ok = all(c["ok"] for c in checks)
    return {"status": "ready" if ok else "unavailable", "checks": checks}, 200 if ok else 503


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """This process's metrics, or every gunicorn worker's when ``chute web`` set up multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # prometheus_client's own switch, set by ``chute web``
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return openapi_document()


@bp.get("/docs")
def docs() -> ResponseReturnValue:
    return Response(DOCS_HTML, mimetype="text/html")


def start_timer() -> None:
    g.started = time.perf_counter()


def record_request(response: Response) -> Response:
    endpoint = request.endpoint or "unknown"
    REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
    if "started" in g:
        LATENCY.labels(request.method, endpoint).observe(time.perf_counter() - g.started)
    return response
