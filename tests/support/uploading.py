"""Client-side helpers shared by the web and end-to-end tests: digests and chunked uploads."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable
from typing import Any


def content_digest(data: bytes) -> str:
    """An RFC 9530 Content-Digest header value."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


def chunks_of(data: bytes, chunk_size: int) -> list[bytes]:
    return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunked_upload(
    request: Callable[..., Any],
    data: bytes,
    *,
    filename: str,
    chunk_size: int,
    order: Iterable[int] | None = None,
    complete: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    """Create an upload, send its chunks (in ``order``), and complete it.

    ``request(method, path, json=..., data=..., headers=...)`` returns ``(status, body)``:
    the same helper drives Flask's test client and a real HTTP client.
    """
    status, created = request(
        "POST", "/v1/uploads",
        json={"filename": filename, "size": len(data), "chunk_size": chunk_size, "sha256": sha256(data), **fields},
    )  # fmt: skip
    assert status == 201, created
    upload_id = created["upload_id"]
    pieces = chunks_of(data, chunk_size)
    for index in order if order is not None else range(len(pieces)):
        status, body = request(
            "PUT", f"/v1/uploads/{upload_id}/chunks/{index}", data=pieces[index],
            headers={"Content-Digest": content_digest(pieces[index]), "Content-Type": "application/octet-stream"},
        )  # fmt: skip
        assert status == 200, body
        assert body == {"index": index, "size": len(pieces[index]), "sha256": sha256(pieces[index])}
    out: dict[str, Any] = {"upload_id": upload_id, "created": created}
    if complete:
        status, body = request("POST", f"/v1/uploads/{upload_id}/complete")
        assert status == 202, body
        out.update(body)
    return out
