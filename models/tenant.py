"""Tenants, their API keys (stored as hashes, never the key) and their webhook signing secrets."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.db import Base, utcnow
from models.errors import NotFound, Unauthorized
from models.ids import new_id

#: Every API key starts with this, so a leaked key is easy to grep for.
API_KEY_PREFIX = "chute_"


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    webhook_secret: Mapped[str] = mapped_column(String(100))
    #: The secret before the last rotation, still signed with until ``previous_secret_expires_at``.
    previous_webhook_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Browser origins allowed to call the API with this tenant's credentials (CORS).
    cors_origins: Mapped[list[Any] | None]

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        """The secrets to sign with: the current one, plus the previous one during the overlap."""
        now = now or utcnow()
        out = [self.webhook_secret]
        if self.previous_webhook_secret and self.previous_secret_expires_at and now < self.previous_secret_expires_at:
            out.append(self.previous_webhook_secret)
        return out


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters of the key, to tell keys apart in a listing.
    prefix: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


@dataclass(frozen=True)
class IssuedKey:
    """What ``chute keys create`` prints once."""

    tenant: str
    tenant_id: str
    api_key: str
    webhook_secret: str


def hash_key(api_key: str) -> str:
    # API keys carry 192 random bits, so a fast hash is enough (no password stretching).
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def issue_key(session: Session, tenant_name: str) -> IssuedKey:
    """Create the tenant if it is new, and a new API key for it."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(id=new_id("ten"), name=tenant_name, webhook_secret=new_webhook_secret())
        session.add(tenant)
        session.flush()
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(24)
    session.add(ApiKey(id=new_id("key"), tenant_id=tenant.id, key_hash=hash_key(api_key), prefix=api_key[:12]))
    session.flush()
    return IssuedKey(tenant.name, tenant.id, api_key, tenant.webhook_secret)


def rotate_secret(session: Session, tenant_name: str, overlap: timedelta) -> Tenant:
    """Issue a new webhook secret; the old one keeps signing for ``overlap``.

    Raises:
        NotFound: no tenant of that name.
    """
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        raise NotFound(f"no tenant named {tenant_name!r}")
    tenant.previous_webhook_secret = tenant.webhook_secret
    tenant.previous_secret_expires_at = utcnow() + overlap
    tenant.webhook_secret = new_webhook_secret()
    session.flush()
    return tenant


def authenticate(session: Session, api_key: str) -> Tenant:
    """The tenant that owns ``api_key``.

    Raises:
        Unauthorized: unknown or revoked key.
    """
    row = session.execute(
        select(Tenant)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == hash_key(api_key), ApiKey.revoked_at.is_(None))
    ).scalar_one_or_none()
    if row is None:
        raise Unauthorized("invalid API key")
    return row
