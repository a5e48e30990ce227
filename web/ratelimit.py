"""Rate limits, shared by every web process: per tenant, per credential and class of route, and
per client address where no valid credential is shown.

The counting is the ``limits`` library's (sliding-window counters: one round trip to Redis per
limit, smooth at window edges); the counters live in Redis (``CHUTE_REDIS_URL``) so every web
process and host shares them, or in process memory when no Redis is configured (``chute dev``).

A request over a limit gets 429 ``rate_limited`` with ``Retry-After``; every limited response
carries the IETF ``RateLimit-Policy`` and ``RateLimit`` headers (draft-ietf-httpapi-ratelimit-headers)
naming the policy closest to running out. If Redis does not answer, requests pass (logged): an
outage of the limiter must not become an outage of the API.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from functools import cache

from flask import Response, g, request
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from models.errors import RateLimited
from models.settings import Settings, current_settings

log = logging.getLogger(__name__)

#: Classes of route, each with its own per-credential limit (a setting ``rate_limit_<class>``).
ROUTE_CLASSES = ("read", "write", "upload", "replay")
#: Paths in a class of their own (others go by method: GET/HEAD read, PUT/PATCH upload, else write).
REPLAY_PATH = re.compile(r"^/v1/jobs/[^/]+/deliveries$")
#: Tells chute's front (``web.front``) that a credential is refused for a while, as
#: ``<class or *> <seconds>``, so the front answers its next requests itself, at no cost to gunicorn.
THROTTLE_HEADER = "X-Chute-Throttle"
#: Paths no limit applies to: probes and scrapers must always be answered.
UNLIMITED_PATHS = frozenset({"/healthz", "/metrics"})
#: Seconds Redis may take before a request passes unlimited.
REDIS_TIMEOUT = 0.5


@dataclass(frozen=True)
class Policy:
    """One named limit: ``name`` is what the RateLimit headers call it."""

    name: str
    item: RateLimitItem
    identifiers: tuple[str, ...]


@dataclass(frozen=True)
class Standing:
    """Where a request stands against one policy after counting it."""

    policy: Policy
    allowed: bool
    remaining: int
    reset_in: int


class Limiter:
    """The ``limits`` strategy on the configured storage."""

    def __init__(self, settings: Settings):
        if settings.redis_url:
            storage = storage_from_string(
                settings.redis_url,
                key_prefix=settings.rate_limit_prefix,
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
            )
        else:
            storage = storage_from_string("memory://")
        self.strategy = SlidingWindowCounterRateLimiter(storage)
        self.settings = settings

    def items(self, spec: str) -> list[RateLimitItem]:
        return _parse(spec)

    def count(self, policies: list[Policy]) -> list[Standing] | None:
        """Count one request against every policy; None when the storage failed (fail open)."""
        out = []
        try:
            for policy in policies:
                allowed = self.strategy.hit(policy.item, *policy.identifiers)
                stats = self.strategy.get_window_stats(policy.item, *policy.identifiers)
                reset_in = max(1, math.ceil(stats.reset_time - time.time()))
                out.append(Standing(policy, allowed, max(0, stats.remaining), reset_in))
        except Exception:
            log.warning("rate limiter storage failed; this request passes unlimited", exc_info=True)
            return None
        return out

    def exhausted(self, policies: list[Policy]) -> Standing | None:
        """The first policy with nothing left (without counting), or None."""
        try:
            for policy in policies:
                if not self.strategy.test(policy.item, *policy.identifiers):
                    stats = self.strategy.get_window_stats(policy.item, *policy.identifiers)
                    return Standing(policy, False, 0, max(1, math.ceil(stats.reset_time - time.time())))
        except Exception:
            log.warning("rate limiter storage failed; this request passes unlimited", exc_info=True)
        return None


@cache
def _parse(spec: str) -> list[RateLimitItem]:
    return list(parse_many(spec)) if spec.strip() else []


@cache
def _limiter(settings: Settings) -> Limiter:
    return Limiter(settings)


#: The last settings asked for and their limiter. ``_limiter``'s cache hashes a Settings, every
#: field of it, on each call: about 1 % of a status GET's CPU, asked three times per request.
_last: tuple[Settings, Limiter] | None = None


def limiter() -> Limiter:
    global _last
    settings, last = current_settings(), _last
    if last is not None and last[0] is settings:
        return last[1]
    made = _limiter(settings)
    _last = (settings, made)
    return made


def _policies(scope: str, spec: str, identifiers: tuple[str, ...]) -> list[Policy]:
    """One policy per item of ``spec``, named ``{scope}-{seconds}s`` (unique within a response)."""
    return [Policy(f"{scope}-{item.get_expiry()}s", item, (scope, *identifiers)) for item in limiter().items(spec)]


def classify(method: str, path: str) -> str:
    """The class of route of a request (the front classifies with it too)."""
    if method == "POST" and REPLAY_PATH.match(path):
        return "replay"
    if method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    if method in ("PUT", "PATCH"):
        return "upload"
    return "write"


def route_class() -> str:
    return classify(request.method, request.path)


def client_address() -> str:
    return request.remote_addr or "unknown"


def anonymous_policies() -> list[Policy]:
    return _policies("address", current_settings().rate_limit_anonymous, (client_address(),))


def _refuse(standing: Standing, who: str) -> RateLimited:
    g.rate_limit = [standing]
    return RateLimited(
        f"too many requests {who}; try again in {standing.reset_in} s",
        retry_after=standing.reset_in,
        details={
            "policy": standing.policy.name,
            "limit": standing.policy.item.amount,
            "retry_after": standing.reset_in,
        },
    )


def count_failed_auth() -> None:
    """Count a request without a valid credential against its address.

    Raises:
        RateLimited: the address went over ``rate_limit_anonymous`` with this request.
    """
    standings = limiter().count(anonymous_policies())
    if standings:
        g.rate_limit = standings
        refused = next((s for s in standings if not s.allowed), None)
        if refused is not None:
            raise _refuse(refused, "without a valid credential from this address")


def count_request(tenant_id: str, credential_id: str) -> None:
    """Count an authenticated request against its tenant and its credential's class of route.

    Raises:
        RateLimited: over one of them.
    """
    settings = current_settings()
    kind = route_class()
    policies = _policies("tenant", settings.rate_limit_tenant, (tenant_id,)) + _policies(
        f"key-{kind}", getattr(settings, f"rate_limit_{kind}"), (credential_id,)
    )
    standings = limiter().count(policies)
    if standings:
        g.rate_limit = standings
        refused = next((s for s in standings if not s.allowed), None)
        if refused is not None:
            raise _refuse(refused, f"for this {'tenant' if refused.policy.name.startswith('tenant') else 'credential'}")


def limit_public() -> None:
    """A ``before_request`` hook: public routes outside /v1 (but probes) count per address, in a
    budget of their own (a page polled often must not use up the failed-auth budget).

    Raises:
        RateLimited: the address is over ``rate_limit_public``.
    """
    if request.path.startswith("/v1/") or request.path in UNLIMITED_PATHS:
        return
    policies = _policies("public", current_settings().rate_limit_public, (client_address(),))
    standings = limiter().count(policies)
    if standings:
        g.rate_limit = standings
        refused = next((s for s in standings if not s.allowed), None)
        if refused is not None:
            raise _refuse(refused, "from this address")


def add_headers(response: Response) -> Response:
    """An ``after_request`` hook: the IETF RateLimit headers of the policies this request counted."""
    standings: list[Standing] | None = g.get("rate_limit")
    if not standings:
        return response
    response.headers["RateLimit-Policy"] = ", ".join(
        f'"{s.policy.name}";q={s.policy.item.amount};w={s.policy.item.get_expiry()}' for s in standings
    )
    tightest = min(standings, key=lambda s: (s.allowed, s.remaining / max(1, s.policy.item.amount)))
    response.headers["RateLimit"] = f'"{tightest.policy.name}";r={tightest.remaining};t={tightest.reset_in}'
    if not tightest.allowed:
        response.headers["Retry-After"] = str(tightest.reset_in)
        if g.get("credential") is not None:
            scope = "*" if tightest.policy.name.startswith("tenant-") else route_class()
            response.headers[THROTTLE_HEADER] = f"{scope} {tightest.reset_in} {tightest.policy.name}"
    return response
