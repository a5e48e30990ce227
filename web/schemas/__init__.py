"""Request parsing and validation: turn JSON and query strings into typed values, or 4xx."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import request

from models.errors import BadRequest, Invalid, UnsupportedMediaType

SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
#: Metadata is the client's own; bounded so it cannot bloat rows and webhooks.
MAX_METADATA_BYTES = 4096


def json_body() -> dict[str, Any]:
    """The request's JSON object.

    Raises:
        UnsupportedMediaType: not application/json.
        BadRequest: not parseable, or not an object.
    """
    if not request.is_json:
        raise UnsupportedMediaType("send application/json", code="unsupported_media_type")
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequest("the body is not valid JSON", code="invalid_json")
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    return body


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise Invalid(f"'{name}' is required", code="missing_field", details={"field": name})
        return None
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise Invalid(f"'{name}' has the wrong type", code="invalid_field", details={"field": name})
    return value


def filename(value: str | None) -> str:
    name = (value or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or len(name) > 255 or any(ord(c) < 32 for c in name):
        raise Invalid("filename must be 1 to 255 printable characters", code="invalid_filename")
    return name


def sha256_hex(value: str | None) -> str | None:
    if value is not None and not SHA256_HEX.match(value):
        raise Invalid("sha256 must be 64 hex digits", code="invalid_sha256", details={"field": "sha256"})
    return value.lower() if value else None


def metadata(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid("metadata must be an object", code="invalid_field", details={"field": "metadata"})
    if len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise Invalid(f"metadata is over {MAX_METADATA_BYTES} bytes", code="metadata_too_large")
    return value


def int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"'{name}' must be an integer", code="invalid_query") from None
    if not low <= value <= high:
        raise BadRequest(f"'{name}' must be between {low} and {high}", code="invalid_query")
    return value
