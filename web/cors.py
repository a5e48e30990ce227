"""CORS: which browser origins may call the API, per tenant.

A preflight carries no credential, so it cannot name a tenant: it is answered (204, no
credential asked) for an origin that *some* tenant allows, or that ``CHUTE_CORS_ORIGINS``
allows for all. The real request then carries its credential, and its answer opens to the
origin only if that tenant (or the setting) allows it — a browser reads nothing otherwise.
Answers expose ``Location``, the tus headers and ``Chute-Job-Id``/``Chute-Job-Url``. No
cookies are ever involved (credentials travel in ``Authorization``), so
``Access-Control-Allow-Credentials`` is never sent.

flask-cors takes a fixed list of origins; per-tenant lists read from the database need these
two small hooks instead.
"""

from __future__ import annotations

import threading
import time

from flask import Blueprint, Flask, Response, g, request
from flask.typing import ResponseReturnValue

from models import cors
from models.db import read_scope, session_scope
from models.settings import current_settings
from web.auth import require_tenant, tenant_id
from web.contract import operation
from web.schemas.cors import CorsOrigins
from web.tus_protocol import REQUEST_HEADERS, RESPONSE_HEADERS

#: Request headers a browser may send (besides the CORS-safelisted ones).
ALLOW_HEADERS = ", ".join(("Authorization", "Content-Type", "Content-Digest", "Last-Event-ID", *REQUEST_HEADERS))
ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
#: Answer headers a browser's script may read.
EXPOSE_HEADERS = ", ".join(("Retry-After", "Content-Disposition", *RESPONSE_HEADERS))


class OriginCache:
    """Every tenant's origins, re-read from the database at most every ``ttl`` seconds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded_at = -1e18
        self.by_tenant: dict[str, frozenset[str]] = {}
        self.any_tenant: frozenset[str] = frozenset()

    def _fresh(self) -> None:
        ttl = current_settings().api_key_cache_seconds
        if time.monotonic() - self.loaded_at < ttl:
            return
        with read_scope() as session:
            by_tenant = cors.every_tenant_origins(session)
        with self.lock:
            self.by_tenant = by_tenant
            self.any_tenant = frozenset().union(*by_tenant.values()) if by_tenant else frozenset()
            self.loaded_at = time.monotonic()

    def invalidate(self) -> None:
        self.loaded_at = -1e18

    def allows(self, origin: str, tenant: str | None) -> bool:
        """``tenant`` None: does any tenant allow ``origin`` (preflights, unauthenticated answers)?"""
        configured = current_settings().cors_origins
        if cors.ANY in configured or origin in configured:
            return True
        self._fresh()
        allowed = self.any_tenant if tenant is None else self.by_tenant.get(tenant, frozenset())
        return cors.ANY in allowed or origin in allowed


origins = OriginCache()


def preflight() -> ResponseReturnValue | None:
    """An app ``before_request`` hook: answer a CORS preflight before any credential is asked."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return None
    response = Response(status=204)
    origin = request.headers.get("Origin", "").lower()
    response.headers["Vary"] = "Origin"
    if origin and origins.allows(origin, None):
        response.headers.update({
            "Access-Control-Allow-Origin": request.headers["Origin"],
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": str(current_settings().cors_max_age_seconds),
        })  # fmt: skip
    return response


def open_answer(response: Response) -> Response:
    """An app ``after_request`` hook: let an allowed origin read the answer."""
    origin = request.headers.get("Origin")
    if not origin or "Access-Control-Allow-Origin" in response.headers:
        return response
    response.vary.add("Origin")
    if origins.allows(origin.lower(), g.get("tenant_id")):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    return response


def register(app: Flask) -> None:
    app.before_request(preflight)
    app.after_request(open_answer)
    app.register_blueprint(bp)


bp = Blueprint("cors", __name__, url_prefix="/v1/cors-origins")
bp.before_request(require_tenant)


@bp.get("")
@operation("getCorsOrigins", tags=["cors"], summary="The browser origins this tenant allows",
           responses={200: CorsOrigins}, errors={403: ["token_scope"]})  # fmt: skip
def show() -> CorsOrigins:
    with read_scope() as session:
        return CorsOrigins(origins=cors.origins_of(session, tenant_id()))


@bp.put("")
@operation(
    "setCorsOrigins", tags=["cors"], summary="Replace the browser origins this tenant allows",
    description="Origins like https://app.example.com (no path), or * for any. Other web processes see the change "
    "within CHUTE_API_KEY_CACHE_SECONDS.",
    body=CorsOrigins, responses={200: CorsOrigins},
    errors={403: ["token_scope"], 422: ["invalid_origin", "too_many_origins"]},
)
def replace(body: CorsOrigins) -> CorsOrigins:
    with session_scope() as session:
        clean = cors.set_origins(session, tenant_id(), body.origins)
    origins.invalidate()
    return CorsOrigins(origins=clean)
