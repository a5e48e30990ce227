"""Each tenant's allowed browser origins (CORS), kept on its tenant row."""

from __future__ import annotations

import re

from sqlalchemy import null, select, update
from sqlalchemy.orm import Session

from models.errors import Invalid
from models.tenant import Tenant

#: Most origins one tenant may list.
MAX_ORIGINS = 50
#: ``scheme://host[:port]`` as a browser sends it in ``Origin`` (no path, no trailing slash).
ORIGIN = re.compile(r"^https?://[a-z0-9.\-\[\]:]+$")
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
        value = origin.strip().lower().rstrip("/")
        if value != ANY and not ORIGIN.match(value):
            raise Invalid(f"{origin!r} is not an origin like https://app.example.com", code="invalid_origin",
                          details={"origin": origin})  # fmt: skip
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
