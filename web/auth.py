"""Who is calling: every /v1 request carries a credential, and ``g.credential`` says which.

Three kinds of credential name a tenant:

- ``api_key``: the tenant's own key (``Authorization: Bearer chute_…``), for its backend; it
  may do everything. Lookups are cached for ``api_key_cache_seconds`` (keyed by the key's
  hash), which saves a database round trip per request. Revocation still takes effect within
  ``revocation_check_seconds``: each process polls the counter (``AuthState``) every revocation
  bumps, and forgets its whole cache when it moves. ``last_used_at`` is written at most once a
  minute per key and process.
- ``upload_token``: a short-lived signed token (``Bearer chute_ut.…``, see models/tokens.py)
  a browser holds. It may call only the endpoints in :data:`TOKEN_ENDPOINTS` (creating and
  sending uploads, reading the jobs it made), and only on uploads and jobs it created: any
  ``upload_id`` or ``job_id`` in the path is checked here, once, before the view runs, so a
  view needs no code of its own for it (another token's id is 404, as another tenant's is).
- ``signed_url``: a ``?signature=`` on a download link (no header at all: an ``<img src>``),
  valid for one object of one job for ``presign_ttl_seconds``.

``g.tenant_id`` is set for all three; ``g.credential.id`` is what per-credential limits key on:
every authenticated request is counted against its tenant's and its credential's rate limits
(``web.ratelimit``), and a request without a valid credential against its client address.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from flask import g, request, url_for
from sqlalchemy import select

from models import job as jobs
from models import upload as uploads
from models.db import of_tenant, read_scope, session_scope, utcnow
from models.errors import Forbidden, NotFound, Unauthorized
from models.settings import current_settings
from models.tenant import (
    LAST_USED_RESOLUTION,
    KeyIdentity,
    authenticate,
    hash_key,
    revocation_generation,
    touch_key,
)
from models.tokens import TOKEN_PREFIX, TokenScope, UploadToken, sign_download, verify_download, verify_token
from web import ratelimit

#: Most keys the cache holds; past that it starts over (a flood of bad keys is never cached).
CACHE_SIZE = 1024

#: Credential kinds.
API_KEY, UPLOAD_TOKEN, SIGNED_URL = "api_key", "upload_token", "signed_url"

#: Endpoints an upload token may call: create and send uploads, read what it created.
TOKEN_ENDPOINTS: set[str] = {
    "uploads.create", "uploads.put_chunk", "uploads.show", "uploads.complete", "uploads.status",
    "uploads.cancel", "jobs.show", "jobs.result", "jobs.download", "jobs.derivative",
    "tus.create", "tus.head", "tus.patch", "tus.terminate",
}  # fmt: skip
#: Endpoints a signed URL opens (without any header).
SIGNED_URL_ENDPOINTS: set[str] = {"jobs.download", "jobs.derivative"}


@dataclass(frozen=True)
class Credential:
    """The caller: its kind, its tenant, an id per credential, and a token's scope."""

    kind: str
    tenant_id: str
    #: ``key:<hash prefix>``, the token's id, or ``url:<job>``: what per-credential limits count.
    id: str
    #: An upload token's scope (None for an API key).
    scope: TokenScope | None = None
    token: UploadToken | None = None

    @property
    def creator(self) -> str | None:
        """The token id that uploads and jobs are restricted to (None: the whole tenant)."""
        return self.token.id if self.token is not None else None


@dataclass
class _Entry:
    expires: float
    identity: KeyIdentity
    #: The key's credential, made once per lookup (not hashed again per request).
    credential: Credential
    #: When this process last wrote the key's ``last_used_at`` (or read it).
    last_used_at: datetime | None


_cache: dict[str, _Entry] = {}
_lock = threading.Lock()
#: The revocation counter this process last saw, and when it next asks again.
_generation: list[float] = [-1, 0.0]


def token_allowed(*endpoints: str) -> None:
    """Let upload tokens call ``endpoints`` too (``blueprint.view`` names)."""
    TOKEN_ENDPOINTS.update(endpoints)


def require_tenant() -> None:
    """A ``before_request`` hook: sets ``g.credential``, ``g.tenant_id`` (and ``g.tenant_name``
    for an API key) or raises 401; an upload token outside its scope gets 403 or 404; a tenant or
    credential over its rate limit, or an address sending bad credentials, gets 429."""
    try:
        _authenticate()
    except Unauthorized:
        ratelimit.count_failed_auth()
        raise
    ratelimit.count_request(g.tenant_id, g.credential.id)


def _authenticate() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if not header and "signature" in request.args and request.endpoint in SIGNED_URL_ENDPOINTS:
        _set(_signed_url())
        return
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized("send 'Authorization: Bearer <api key or upload token>'", code="missing_api_key")
    if secret.startswith(TOKEN_PREFIX):
        token = verify_token(current_settings().secret_key, secret)
        _set(Credential(UPLOAD_TOKEN, token.tenant_id, token.id, token.scope, token))
        _check_token_scope(token)
        return
    entry = _api_key(secret)
    g.tenant_name = entry.identity.tenant_name
    _set(entry.credential)


def _set(credential: Credential) -> None:
    g.credential = credential
    g.tenant_id = credential.tenant_id


def _check_revocations(now: float) -> None:
    """Forget every cached key when one was revoked anywhere (polled, at most every
    ``revocation_check_seconds``, by one thread at a time)."""
    if now < _generation[1]:
        return
    with _lock:
        if now < _generation[1]:
            return
        _generation[1] = now + current_settings().revocation_check_seconds
    with read_scope() as session:
        generation = revocation_generation(session)
    with _lock:
        if generation != _generation[0]:
            _cache.clear()
            _generation[0] = generation


def forget_cached_credentials() -> None:
    """Drop this process's cache now (after a revocation made here)."""
    with _lock:
        _cache.clear()
        _generation[1] = 0.0


def _api_key(key: str) -> _Entry:
    digest = hash_key(key)
    now = time.monotonic()
    _check_revocations(now)
    with _lock:
        hit = _cache.get(digest)
    if hit is None or hit.expires < now:
        with read_scope() as session:
            identity = authenticate(session, key)
        credential = Credential(API_KEY, identity.tenant_id, "key:" + digest[:16])
        hit = _Entry(now + current_settings().api_key_cache_seconds, identity, credential, identity.last_used_at)
        with _lock:
            if len(_cache) >= CACHE_SIZE:
                _cache.clear()
            _cache[digest] = hit
    _note_use(hit)
    return hit


def _note_use(entry: _Entry) -> None:
    """Write the key's ``last_used_at`` at most every ``LAST_USED_RESOLUTION`` per process."""
    now = utcnow()
    if entry.last_used_at is not None and now - entry.last_used_at < LAST_USED_RESOLUTION:
        return
    entry.last_used_at = now
    with session_scope() as session:
        touch_key(session, entry.identity.key_id, now)


def _signed_url() -> Credential:
    args = request.view_args or {}
    job_id, name = str(args.get("job_id", "")), str(args.get("name", ""))
    settings = current_settings()
    tenant = verify_download(settings.secret_key, request.args["signature"], job_id, name, settings.presign_ttl_seconds)
    return Credential(SIGNED_URL, tenant, f"url:{job_id}")


def _check_token_scope(token: UploadToken) -> None:
    """Refuse endpoints a token may not call (403) and ids it did not create (404)."""
    if request.endpoint not in TOKEN_ENDPOINTS:
        raise Forbidden("an upload token may only upload and read its own jobs", code="token_scope")
    args = request.view_args or {}
    with read_scope() as session:
        # By the id alone, the tenant checked on the row (models.db.of_tenant says why).
        if "upload_id" in args:
            upload = uploads.Upload
            row = of_tenant(session.execute(
                select(upload.credential_id, upload.tenant_id).where(upload.id == args["upload_id"])
            ).one_or_none(), token.tenant_id)  # fmt: skip
            if row is None or row.credential_id != token.id:
                raise NotFound(f"no upload {args['upload_id']}", code="upload_not_found")
        if "job_id" in args:
            job = jobs.Job
            row = of_tenant(session.execute(
                select(job.credential_id, job.tenant_id).where(job.id == args["job_id"])
            ).one_or_none(), token.tenant_id)  # fmt: skip
            if row is None or row.credential_id != token.id:
                raise NotFound(f"no job {args['job_id']}", code="job_not_found")


def download_url(endpoint: str, job_id: str, name: str | None = None) -> str:
    """An absolute URL of a job's original (``jobs.download``) or derivative, signed for
    ``presign_ttl_seconds`` so it works without a header (an ``<img src>``, a plain link)."""
    settings = current_settings()
    args: dict[str, str] = {"job_id": job_id}
    if name is not None:
        args["name"] = name
    if settings.secret_key:
        args["signature"] = sign_download(settings.secret_key, tenant_id(), job_id, name or "")
    return url_for(endpoint, _external=True, **args)


def tenant_id() -> str:
    return str(g.tenant_id)


def credential() -> Credential:
    return g.credential  # type: ignore[no-any-return]
