"""Browser upload tokens: a tenant's backend mints them, a browser uploads with them.

A token is self-contained and signed (itsdangerous, keyed by ``CHUTE_SECRET_KEY``): its
tenant, its id, its expiry and its scope travel inside it, so checking one needs no database
round trip. The only row a token ever has counts what it used (files and bytes), so its
limits hold across requests and processes — the model is S3's presigned POST policy and
Transloadit's signed params, with a counter beside them.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy import BigInteger, ForeignKey, Integer, String, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.db import Base
from models.errors import Forbidden, TooLarge, Unauthorized, UnsupportedMediaType

#: Every upload token starts with this, so a server tells it from an API key at a glance.
TOKEN_PREFIX = "chute_ut."
#: itsdangerous salts: a token of one kind never verifies as another.
TOKEN_SALT, DOWNLOAD_SALT = "chute.upload-token", "chute.download-url"


@dataclass(frozen=True)
class TokenScope:
    """What an upload token allows; ``None`` limits are the server's own."""

    max_file_size: int | None = None
    max_total_size: int | None = None
    max_files: int | None = None
    #: MIME types or patterns (``image/*``) the file's bytes may be; None: any.
    allowed_types: tuple[str, ...] | None = None
    #: Fixed by the minting backend: the browser cannot choose another.
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = field(default=None, hash=False)

    def allows_type(self, mime: str | None) -> bool:
        """True when ``mime`` matches an allowed type (a missing type is decided later, on the bytes)."""
        return type_allowed(mime, self.allowed_types)


def type_allowed(mime: str | None, allowed: tuple[str, ...] | list[Any] | None) -> bool:
    if not allowed or not mime:
        return True
    mime = mime.split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatchcase(mime, str(pattern).lower()) for pattern in allowed)


@dataclass(frozen=True)
class UploadToken:
    """A verified token."""

    id: str
    tenant_id: str
    expires_at: float
    scope: TokenScope


def sign_token(secret: str, token: UploadToken) -> str:
    payload = {"i": token.id, "t": token.tenant_id, "e": int(token.expires_at), "s": _compact(asdict(token.scope))}
    return TOKEN_PREFIX + URLSafeSerializer(secret, salt=TOKEN_SALT).dumps(payload)


def verify_token(secret: str, raw: str, now: float | None = None) -> UploadToken:
    """The token ``raw`` stands for.

    Raises:
        Unauthorized: forged, malformed (``invalid_token``) or expired (``token_expired``).
    """
    if not secret or not raw.startswith(TOKEN_PREFIX):
        raise Unauthorized("invalid upload token", code="invalid_token")
    try:
        payload = URLSafeSerializer(secret, salt=TOKEN_SALT).loads(raw[len(TOKEN_PREFIX) :])
        scope = payload["s"]
        token = UploadToken(
            id=str(payload["i"]),
            tenant_id=str(payload["t"]),
            expires_at=float(payload["e"]),
            scope=TokenScope(
                max_file_size=scope.get("max_file_size"),
                max_total_size=scope.get("max_total_size"),
                max_files=scope.get("max_files"),
                allowed_types=tuple(scope["allowed_types"]) if scope.get("allowed_types") else None,
                webhook_url=scope.get("webhook_url"),
                metadata=scope.get("metadata"),
            ),
        )
    except (BadSignature, KeyError, TypeError, ValueError, AttributeError):
        raise Unauthorized("invalid upload token", code="invalid_token") from None
    if token.expires_at <= (time.time() if now is None else now):
        raise Unauthorized("the upload token has expired", code="token_expired")
    return token


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --- short-lived download URLs -----------------------------------------------------------


def sign_download(secret: str, tenant_id: str, job_id: str, name: str) -> str:
    """A signature for one stored object of one job (``name`` "" is the original)."""
    return URLSafeTimedSerializer(secret, salt=DOWNLOAD_SALT).dumps([tenant_id, job_id, name])


def verify_download(secret: str, signature: str, job_id: str, name: str, max_age: int) -> str:
    """The tenant a download signature was made for.

    Raises:
        Unauthorized: forged, for another object, or older than ``max_age`` seconds.
    """
    try:
        tenant_id, signed_job, signed_name = URLSafeTimedSerializer(secret, salt=DOWNLOAD_SALT).loads(
            signature, max_age=max_age
        )
    except (BadSignature, ValueError, TypeError):
        raise Unauthorized("the download link is invalid or has expired", code="invalid_signature") from None
    if signed_job != job_id or signed_name != name:
        raise Unauthorized("the download link is for another file", code="invalid_signature")
    return str(tenant_id)


# --- usage -------------------------------------------------------------------------------


class TokenUsage(Base):
    """Files and bytes a token has used (what it reserved when uploads were opened)."""

    __tablename__ = "upload_token_usage"

    token_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    files: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    #: After this the row counts nothing any more (the token is dead) and may be dropped.
    expires_at: Mapped[datetime]


def check_file(scope: TokenScope, size: int | None, content_type: str | None) -> None:
    """Refuse up front what one file's declaration already shows to be out of scope.

    Raises:
        TooLarge: ``size`` over the token's per-file limit (``file_too_large``).
        UnsupportedMediaType: a declared type the token does not allow (``type_not_allowed``).
    """
    if size is not None and scope.max_file_size is not None and size > scope.max_file_size:
        raise TooLarge(
            f"the file ({size} bytes) is over this token's limit of {scope.max_file_size} bytes",
            code="file_too_large",
            details={"max_file_size": scope.max_file_size},
        )
    if not scope.allows_type(content_type):
        raise UnsupportedMediaType(
            f"this token does not allow {content_type} files",
            code="type_not_allowed",
            details={"allowed_types": list(scope.allowed_types or ())},
        )


def reserve(session: Session, token: UploadToken, expires_at: datetime, *, files: int, size: int) -> None:
    """Count ``files`` and ``size`` bytes against the token, atomically across processes.

    Runs in the transaction that opens the upload, so a refused upload reserves nothing.

    Raises:
        Forbidden: the token has used up its files (``token_files_exhausted``).
        TooLarge: the bytes would pass its total (``token_size_exhausted``).
    """
    if not files and not size:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values = {"token_id": token.id, "tenant_id": token.tenant_id, "files": 0, "bytes": 0, "expires_at": expires_at}
    session.execute(insert(TokenUsage).values(**values).on_conflict_do_nothing(index_elements=[TokenUsage.token_id]))
    query = update(TokenUsage).where(TokenUsage.token_id == token.id)
    if token.scope.max_files is not None and files:
        query = query.where(TokenUsage.files + files <= token.scope.max_files)
    if token.scope.max_total_size is not None and size:
        query = query.where(TokenUsage.bytes + size <= token.scope.max_total_size)
    done = session.execute(query.values(files=TokenUsage.files + files, bytes=TokenUsage.bytes + size))
    if done.rowcount == 1:  # type: ignore[attr-defined]
        return
    used = session.execute(
        select(TokenUsage.files, TokenUsage.bytes).where(TokenUsage.token_id == token.id)
    ).one()
    if token.scope.max_files is not None and used.files + files > token.scope.max_files:
        raise Forbidden(
            f"this token has already opened its {token.scope.max_files} files",
            code="token_files_exhausted",
            details={"max_files": token.scope.max_files, "used": used.files},
        )
    raise TooLarge(
        f"{size} more bytes would pass this token's total of {token.scope.max_total_size} bytes",
        code="token_size_exhausted",
        details={"max_total_size": token.scope.max_total_size, "used": used.bytes},
    )


def drop_dead_usage(session: Session, now: datetime) -> int:
    """Forget the counts of tokens that have expired (they can never be used again)."""
    return int(session.execute(delete(TokenUsage).where(TokenUsage.expires_at < now)).rowcount)  # type: ignore[attr-defined]
