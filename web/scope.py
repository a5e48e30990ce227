"""What the caller's credential adds to a new upload: an upload token's limits and fixed fields.

Called by every view that opens an upload (the chunk API and tus), in the transaction that
inserts it, so a refused upload reserves nothing and a file over the limit is refused before
any of its bytes are stored.

The type a token allows is checked twice: the declared type here (the browser's guess from
the file name: refused at once with 415 ``type_not_allowed``), and the type detected from the
bytes by assemble (``allowed_types`` travels on the upload: the job fails ``type_not_allowed``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from models.errors import Forbidden
from models.tokens import check_file, reserve
from web.auth import credential


def admit_upload(
    session: Session,
    *,
    size: int | None,
    content_type: str | None,
    webhook_url: str | None,
    metadata: dict[str, Any] | None,
    files: int = 1,
    reserve_bytes: bool = True,
) -> dict[str, Any]:
    """The fields to open the upload with (``webhook_url``, ``metadata``, ``credential_id``,
    ``allowed_types``), after counting it against an upload token.

    ``size`` None: not known yet (tus defer-length; counted when declared). ``reserve_bytes``
    False: the bytes were counted already (a tus final upload made of partial ones).

    Raises:
        TooLarge, UnsupportedMediaType, Forbidden: outside the token's scope.
    """
    cred = credential()
    fields: dict[str, Any] = {"webhook_url": webhook_url, "metadata": metadata}
    token = cred.token
    if token is None:
        return fields
    scope = token.scope
    check_file(scope, size, content_type)
    if webhook_url is not None and webhook_url != scope.webhook_url:
        raise Forbidden("this upload token fixes the webhook_url", code="token_fixed_field",
                        details={"field": "webhook_url"})  # fmt: skip
    if scope.webhook_url is not None:
        fields["webhook_url"] = scope.webhook_url
    if scope.metadata is not None:
        fields["metadata"] = {**(metadata or {}), **scope.metadata}
    expires = datetime.fromtimestamp(token.expires_at, UTC)
    reserve(session, token, expires, files=files, size=(size or 0) if reserve_bytes else 0)
    fields["credential_id"] = token.id
    fields["allowed_types"] = list(scope.allowed_types) if scope.allowed_types else None
    return fields


def admit_length(session: Session, size: int, content_type: str | None) -> None:
    """Count a length declared late (tus defer-length) against an upload token.

    Raises:
        TooLarge, Forbidden: outside the token's scope.
    """
    token = credential().token
    if token is None:
        return
    check_file(token.scope, size, content_type)
    reserve(session, token, datetime.fromtimestamp(token.expires_at, UTC), files=0, size=size)


def max_file_size(default: int) -> int:
    """The largest file this caller may send: the server's limit, or a token's lower one."""
    token = credential().token
    if token is not None and token.scope.max_file_size is not None:
        return min(default, token.scope.max_file_size)
    return default
