"""Bearer API keys: every /v1 request names its tenant by its key.

Lookups are cached for ``api_key_cache_seconds`` (keyed by the key's hash), which saves a
database round trip per request; a deleted or revoked key keeps working that long at most.
"""

from __future__ import annotations

import threading
import time

from flask import g, request

from models.db import read_scope
from models.errors import Unauthorized
from models.settings import current_settings
from models.tenant import authenticate, hash_key

#: Most keys the cache holds; past that it starts over (a flood of bad keys is never cached).
CACHE_SIZE = 1024

_cache: dict[str, tuple[float, str, str]] = {}
_lock = threading.Lock()


def require_tenant() -> None:
    """A ``before_request`` hook: sets ``g.tenant_id`` and ``g.tenant_name`` or raises 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("send 'Authorization: Bearer <api key>'", code="missing_api_key")
    digest = hash_key(key)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(digest)
    if hit is None or hit[0] < now:
        with read_scope() as session:
            tenant = authenticate(session, key)
            hit = (now + current_settings().api_key_cache_seconds, tenant.id, tenant.name)
        with _lock:
            if len(_cache) >= CACHE_SIZE:
                _cache.clear()
            _cache[digest] = hit
    g.tenant_id, g.tenant_name = hit[1], hit[2]


def tenant_id() -> str:
    return str(g.tenant_id)
