"""Each tenant's allowed browser origins (CORS), kept on its tenant row."""

from __future__ import annotations

import re

from sqlalchemy import null, select, update
from sqlalchemy.orm import Session

from models.errors import Invalid
from models.tenant import Tenant

#: Most origins one tenant may list.
MAX_ORIGINS = 50
#: A DNS name (or IPv4 address) as a browser writes it in an origin: dot-separated labels of
#: letters, digits and inner hyphens (IDNs in their xn-- form).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = rf"{_LABEL}(?:\.{_LABEL})*"
#: An IPv6 address in brackets, in every form RFC 4291 allows but the embedded-IPv4 and zone ones
#: (a browser writes them compressed, RFC 5952). Not "any of [0-9a-f:]": ``http://[`` is no URL,
#: and a client parsing such an origin (Python's urlsplit, a browser) refuses it.
_H16 = "[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join((
    rf"(?:{_H16}:){{7}}{_H16}",
    rf"(?:{_H16}:){{1,7}}:",
    *(rf"(?:{_H16}:){{1,{7 - n}}}(?::{_H16}){{{n}}}" for n in range(1, 7)),
    rf":(?::{_H16}){{1,7}}",
    "::",
))  # fmt: skip
#: A TCP port, 0–65535.
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)"
#: ``scheme://host[:port]`` as a browser sends it in ``Origin`` (RFC 6454; an optional trailing
#: ``/`` is dropped), or ``*``. The API's schema states this very pattern.
ORIGIN_PATTERN = rf"^(?:\*|[hH][tT][tT][pP][sS]?://(?:{_HOSTNAME}|\[(?:{_IPV6})\])(?::{_PORT})?/?)$"
ORIGIN = re.compile(ORIGIN_PATTERN)
#: Any origin.
ANY = "*"


def normalize(origins: list[str]) -> list[str]:
    """Lower-cased, de-duplicated origins.

    Raises:
        Invalid: not origins, or too many.
    """
    if len(origins) > MAX_ORIGINS:
        raise Invalid(f"at most {MAX_ORIGINS} origins", code="too_many_origins")
    out: list[str] = []
    for origin in origins:
        value = origin.strip().lower()
        if not ORIGIN.fullmatch(value):
            raise Invalid(f"{origin!r} is not an origin like https://app.example.com", code="invalid_origin",
                          details={"origin": origin})  # fmt: skip
        value = value.rstrip("/")
        if value not in out:
            out.append(value)
    return out


def set_origins(session: Session, tenant_id: str, origins: list[str]) -> list[str]:
    """Replace the tenant's origins; returns them normalized."""
    clean = normalize(origins)
    session.execute(update(Tenant).where(Tenant.id == tenant_id).values(cors_origins=clean or null()))
    return clean


def origins_of(session: Session, tenant_id: str) -> list[str]:
    return list(session.scalar(select(Tenant.cors_origins).where(Tenant.id == tenant_id)) or [])


def every_tenant_origins(session: Session) -> dict[str, frozenset[str]]:
    """tenant id → its origins, for every tenant that has any."""
    rows = session.execute(select(Tenant.id, Tenant.cors_origins).where(Tenant.cors_origins.is_not(None)))
    return {tenant_id: frozenset(origins or ()) for tenant_id, origins in rows}
