"""Request and response models, one module per resource (pydantic v2).

They are the API's one source of truth: ``web.contract`` validates requests through them and
renders the responses views return, and ``web.openapi`` writes the OpenAPI document from them.
The two functions here apply the same rules to values that arrive outside a model (tus's
``Upload-Metadata`` header, a multipart part's filename).
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from models.errors import Invalid


def filename(value: str | None) -> str:
    """A client's file name as a filename field takes it; a path keeps its base name.

    Raises:
        Invalid: ``invalid_filename``: empty, over 255 characters, or unsafe characters.
    """
    from web.schemas.common import filename as checked

    base = (value or "").replace("\\", "/").rsplit("/", 1)[-1]
    try:
        return checked(base)
    except ValueError as e:
        raise Invalid(str(e), code="invalid_filename", details={"filename": base[:300]}) from None


def metadata(value: Any) -> dict[str, Any] | None:
    """The client's metadata object, bounded as createUpload's ``metadata`` is.

    Raises:
        Invalid: ``invalid_field`` naming what is wrong.
    """
    if value is None:
        return None
    from web.schemas.uploads import Metadata

    try:
        return dict(TypeAdapter(Metadata).validate_python(value, strict=True))
    except ValidationError as e:
        errors = [{"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in e.errors()[:20]]
        raise Invalid("metadata is not a valid metadata object", code="invalid_field",
                      details={"field": "metadata", "errors": errors}) from None  # fmt: skip
