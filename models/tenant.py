"""Tenants, their API keys (stored as hashes, never the key) and their webhook signing secrets
(stored sealed: ``models.sealing``)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.db import Base, utcnow
from models.errors import NotFound, Unauthorized
from models.ids import new_id
from models.sealing import seal, unseal

#: Every API key starts with this, so a leaked key is easy to grep for.
API_KEY_PREFIX = "chute_"


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: The signing secret, sealed (Fernet); read and set through ``webhook_secret``.
    sealed_webhook_secret: Mapped[str] = mapped_column("webhook_secret", Text)
    #: The secret before the last rotation, still signed with until ``previous_secret_expires_at``.
    sealed_previous_webhook_secret: Mapped[str | None] = mapped_column("previous_webhook_secret", Text)
    previous_secret_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Browser origins allowed to call the API with this tenant's credentials (CORS).
    cors_origins: Mapped[list[Any] | None]
    #: The tenant's own quotas and retention; None: the settings' defaults.
    max_open_uploads: Mapped[int | None] = mapped_column(Integer)
    max_staged_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_jobs_in_flight: Mapped[int | None] = mapped_column(Integer)
    max_file_size: Mapped[int | None] = mapped_column(BigInteger)
    #: Days jobs, objects and derivatives are kept (0: for ever).
    retention_days: Mapped[float | None] = mapped_column(Float)

    @property
    def webhook_secret(self) -> str:
        return unseal(self.sealed_webhook_secret)

    @webhook_secret.setter
    def webhook_secret(self, value: str) -> None:
        self.sealed_webhook_secret = seal(value)

    @property
    def previous_webhook_secret(self) -> str | None:
        sealed = self.sealed_previous_webhook_secret
        return unseal(sealed) if sealed else None

    @previous_webhook_secret.setter
    def previous_webhook_secret(self, value: str | None) -> None:
        self.sealed_previous_webhook_secret = seal(value) if value else None

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        """The secrets to sign with: the current one, plus the previous one during the overlap."""
        return signing_secrets(
            self.sealed_webhook_secret, self.sealed_previous_webhook_secret, self.previous_secret_expires_at, now
        )


def signing_secrets(
    sealed: str, sealed_previous: str | None, previous_expires_at: datetime | None, now: datetime | None = None
) -> list[str]:
    """``Tenant.signing_secrets`` from the row's columns, for callers that read them without an
    ORM object (a webhook attempt reads them with its event in one Core select)."""
    now = now or utcnow()
    out = [unseal(sealed)]
    previous = unseal(sealed_previous) if sealed_previous else None
    if previous and previous_expires_at and now < previous_expires_at:
        out.append(previous)
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
    #: A name people give the key ("ci", "laptop"), shown in listings.
    name: Mapped[str | None] = mapped_column(String(200))
    #: When the key last authenticated a request (written at most every ``LAST_USED_RESOLUTION``).
    last_used_at: Mapped[datetime | None]


class AuthState(Base):
    """One row: a counter bumped by every revocation, which every web process polls.

    A process that sees it move forgets every cached credential, so a revoked key stops
    working within ``revocation_check_seconds`` everywhere, on any database chute runs on.
    """

    __tablename__ = "auth_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revocation_generation: Mapped[int] = mapped_column(Integer, default=0)


#: The id of AuthState's one row.
AUTH_STATE_ID = 1
#: ``last_used_at`` is written at most this often per key (a write per request would cost more
#: than the request).
LAST_USED_RESOLUTION = timedelta(minutes=1)


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


def issue_key(session: Session, tenant_name: str, key_name: str | None = None) -> IssuedKey:
    """Create the tenant if it is new, and a new API key (called ``key_name``) for it."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(id=new_id("ten"), name=tenant_name, webhook_secret=new_webhook_secret())
        session.add(tenant)
        session.flush()
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(24)
    session.add(
        ApiKey(id=new_id("key"), tenant_id=tenant.id, key_hash=hash_key(api_key), prefix=api_key[:12], name=key_name)
    )
    session.flush()
    return IssuedKey(tenant.name, tenant.id, api_key, tenant.webhook_secret)


def rotate_secret(session: Session, tenant_name: str, overlap: timedelta) -> Tenant:
    """Issue a new webhook secret; the old one keeps signing for ``overlap``.

    Raises:
        NotFound: no tenant of that name.
    """
    tenant = tenant_by_name(session, tenant_name)
    tenant.previous_webhook_secret = tenant.webhook_secret
    tenant.previous_secret_expires_at = utcnow() + overlap
    tenant.webhook_secret = new_webhook_secret()
    session.flush()
    return tenant


@dataclass(frozen=True)
class KeyIdentity:
    """Whose an API key is: the tenant, and the key's own id and last use."""

    tenant_id: str
    tenant_name: str
    key_id: str
    last_used_at: datetime | None


def authenticate(session: Session, api_key: str) -> KeyIdentity:
    """Whose ``api_key`` is.

    Raises:
        Unauthorized: unknown or revoked key.
    """
    row = session.execute(
        select(Tenant.id, Tenant.name, ApiKey.id, ApiKey.last_used_at)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == hash_key(api_key), ApiKey.revoked_at.is_(None))
    ).one_or_none()
    if row is None:
        raise Unauthorized("invalid API key")
    return KeyIdentity(*row)


def tenant_by_name(session: Session, tenant_name: str) -> Tenant:
    """Raises NotFound when there is no tenant of that name."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        raise NotFound(f"no tenant named {tenant_name!r}", code="tenant_not_found")
    return tenant


def list_keys(session: Session, tenant_id: str) -> list[ApiKey]:
    """The tenant's keys, revoked ones included, oldest first."""
    query = select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at, ApiKey.id)
    return list(session.scalars(query))


def revoke_key(session: Session, tenant_id: str, key: str) -> ApiKey:
    """Revoke the tenant's key named by its id or its prefix, and tell every process.

    Revoking a revoked key changes nothing and is not an error.

    Raises:
        NotFound: no such key for this tenant (also another tenant's).
    """
    row = session.scalar(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id, (ApiKey.id == key) | (ApiKey.prefix == key)).limit(2)
    )
    if row is None:
        raise NotFound(f"no API key {key!r}", code="key_not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        bump_revocation_generation(session)
    session.flush()
    return row


def bump_revocation_generation(session: Session) -> None:
    """Make every web process forget its cached credentials (in the caller's transaction)."""
    bumped = session.execute(
        update(AuthState)
        .where(AuthState.id == AUTH_STATE_ID)
        .values(revocation_generation=AuthState.revocation_generation + 1)
    )
    if bumped.rowcount == 0:  # type: ignore[attr-defined]
        session.add(AuthState(id=AUTH_STATE_ID, revocation_generation=1))
        session.flush()


def revocation_generation(session: Session) -> int:
    return session.scalar(select(AuthState.revocation_generation).where(AuthState.id == AUTH_STATE_ID)) or 0


def touch_key(session: Session, credential_id: str, now: datetime) -> None:
    """Record that the key was used (callers write it at most every ``LAST_USED_RESOLUTION``)."""
    session.execute(update(ApiKey).where(ApiKey.id == credential_id).values(last_used_at=now))


def reseal_secrets(session: Session) -> int:
    """Re-encrypt every tenant's secrets under the current key; returns how many tenants."""
    from models.sealing import reseal

    count = 0
    for tenant in session.scalars(select(Tenant)):
        tenant.sealed_webhook_secret = reseal(tenant.sealed_webhook_secret)
        if tenant.sealed_previous_webhook_secret:
            tenant.sealed_previous_webhook_secret = reseal(tenant.sealed_previous_webhook_secret)
        count += 1
    session.flush()
    return count
